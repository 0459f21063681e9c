"""Do the Studio's defaults make the demo convincing? (issue 4, "Defaults that make the demo convincing")

Two checks on scikit-learn's digits with exactly what the app starts from
(``hamu_core.config.DEFAULTS``: the MLP, ``TrainConfig()``, HAMU-Q's settings, 256 retain
samples per step and the whole forget set every step, seed 0):

1. Forget one class with HAMU-Q for 100 steps and print forget / retain / test accuracy at
   steps 0, 25, 50 and 100 beside the retrain reference's (the model trained on the retain
   set alone). Goal: forget accuracy at the reference's within about 100 steps, retain
   accuracy within a few points of it.
2. ρ-mixing (``selection.select_rho_mix``): the class with a fraction ρ swapped for random
   samples of other classes, ρ ∈ {0, 0.25, 0.5, 0.75, 1}, over a few selection seeds. For each
   ρ: mean κ and mean cos θ_rf over the run's steps, and the final trade-off (gain in forget
   loss, change in retain loss, on the whole forget and retain sets). Then the Spearman
   correlation of κ̄ (and of cos θ_rf) with ρ over all runs. Goal: κ rises with ρ and the
   trade-off gets worse.

Measures quality, not time; asserts nothing. Run: ``python bench/bench_demo_defaults.py [--cls 3]``.
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
import torch
from scipy.stats import spearmanr

from hamu_core.config import DEFAULTS
from hamu_core.data.builtin import BUILTIN_DATASETS
from hamu_core.data.labelled import LabelledData
from hamu_core.data.selection import select_class, select_rho_mix
from hamu_core.evaluation.metrics import sample_outputs
from hamu_core.models.architectures import ModelConfig
from hamu_core.models.checkpoint import cached_train
from hamu_core.models.training import TrainConfig, retain_ids
from hamu_core.rules.registry import make_rule
from hamu_core.runs.unlearner import UnlearningRun

STEPS = 100
CHECKPOINTS = (0, 25, 50, 100)
RHOS = (0.0, 0.25, 0.5, 0.75, 1.0)


def split_numbers(model, data: LabelledData, forget_ids: np.ndarray) -> dict[str, tuple[float, float]]:
    """(accuracy, mean loss) on the whole forget, retain and test sets."""
    ids = {"forget": forget_ids, "retain": retain_ids(data, forget_ids), "test": data.test_ids}
    out = {}
    for split, split_ids in ids.items():
        outputs = sample_outputs(model, data, split_ids)
        out[split] = (outputs.accuracy, float(outputs.loss.mean()))
    return out


def default_run(data: LabelledData, original, forget_ids: np.ndarray) -> UnlearningRun:
    """The run the Unlearn page starts for HAMU-Q with the default settings."""
    rule = make_rule(DEFAULTS.method, **DEFAULTS.method_settings(DEFAULTS.method))
    return UnlearningRun(rule, model=original, retain=data.tensors(retain_ids(data, forget_ids)),
                         forget=data.tensors(forget_ids), seed=DEFAULTS.seed,
                         retain_batch_size=DEFAULTS.retain_batch_size)


def forget_one_class(data: LabelledData, original, cls: int) -> None:
    forget_ids = select_class(data, cls)
    retrain = cached_train(data, forget_ids, ModelConfig(arch=DEFAULTS.arch), TrainConfig(seed=DEFAULTS.seed), "retrain")
    reference = split_numbers(retrain, data, forget_ids)
    run = default_run(data, original, forget_ids)
    print(f"\n1. HAMU-Q defaults {DEFAULTS.method_settings(DEFAULTS.method)}, forgetting class {cls} "
          f"({len(forget_ids)} samples), {STEPS} steps")
    print(f"{'step':>8} {'forget acc':>11} {'retain acc':>11} {'test acc':>9} {'infeasible so far':>18}")
    first_at_reference = None
    for step in range(STEPS + 1):
        if step:
            run.step()
        forget_acc = sample_outputs(run.model_, data, forget_ids).accuracy
        if first_at_reference is None and forget_acc <= reference["forget"][0]:
            first_at_reference = step
        if step in CHECKPOINTS:
            now = split_numbers(run.model_, data, forget_ids)
            infeasible = sum(not r.feasible for r in run.history_)
            print(f"{step:>8} {now['forget'][0]:>11.3f} {now['retain'][0]:>11.3f} {now['test'][0]:>9.3f} "
                  f"{infeasible:>18}")
    print(f"{'retrain':>8} {reference['forget'][0]:>11.3f} {reference['retain'][0]:>11.3f} "
          f"{reference['test'][0]:>9.3f}")
    print(f"forget accuracy first at or below the reference's at step {first_at_reference}; "
          f"retain accuracy gap to the reference after {STEPS} steps: "
          f"{100 * (now['retain'][0] - reference['retain'][0]):+.1f} points")


def rho_mixing(data: LabelledData, original, cls: int, seeds: tuple[int, ...]) -> None:
    print(f"\n2. ρ-mixing on class {cls}, HAMU-Q defaults, {STEPS} steps, selection seeds {seeds}")
    print(f"{'rho':>5} {'mean kappa':>11} {'mean cos':>9} {'forget-loss gain':>17} {'retain-loss change':>19} "
          f"{'retain acc':>11}")
    rhos, kappas, cosines = [], [], []
    for rho in RHOS:
        rows = []
        for seed in seeds:
            forget_ids = select_rho_mix(data, cls, rho, seed=seed)
            before = split_numbers(original, data, forget_ids)
            run = default_run(data, original, forget_ids)
            run.run(STEPS)
            after = split_numbers(run.model_, data, forget_ids)
            kappa = statistics.fmean(r.kappa for r in run.history_)
            cos = statistics.fmean(r.cos_rf for r in run.history_)
            rows.append((kappa, cos, after["forget"][1] - before["forget"][1],
                         after["retain"][1] - before["retain"][1], after["retain"][0]))
            rhos.append(rho)
            kappas.append(kappa)
            cosines.append(cos)
        mean = [statistics.fmean(col) for col in zip(*rows)]
        print(f"{rho:>5.2f} {mean[0]:>11.4f} {mean[1]:>9.3f} {mean[2]:>17.3f} {mean[3]:>19.4f} {mean[4]:>11.3f}")
    print(f"Spearman correlation with ρ over {len(rhos)} runs: κ̄ {spearmanr(rhos, kappas).statistic:.2f}, "
          f"mean cos θ_rf {spearmanr(rhos, cosines).statistic:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cls", type=int, default=3, help="class to forget (digits: 0-9)")
    parser.add_argument("--seeds", type=int, default=3, help="ρ-mixing selection seeds per ρ")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (2 shared cores here)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = BUILTIN_DATASETS[DEFAULTS.dataset]()
    original = cached_train(data, None, ModelConfig(arch=DEFAULTS.arch), TrainConfig(seed=DEFAULTS.seed), "original")
    forget_one_class(data, original, args.cls)
    rho_mixing(data, original, args.cls, tuple(range(args.seeds)))


if __name__ == "__main__":
    main()
