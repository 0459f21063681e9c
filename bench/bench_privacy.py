"""What per-sample privacy evidence costs, and what it finds (issue 10).

(a) Shadow bank: K = 16 shadows of the Studio's default recipe (MLP, ``TrainConfig()``) on
digits, built from an empty cache with 1 and with 2 worker processes (process start-up
included: a user waits for it too), and loaded from the cache.
(b) Attack time per model: ``audit`` with every attack on the three models, divided by
three; the first call includes the bank's one stacked forward pass (cached on the bank).
(c) U-LiRA: unlearning the 16 shadows with HAMU-Q for the class request's steps, 1 and 2 workers.
(d) TPR at 1 % FPR, forget vs test samples, of the loss attack, offline and online LiRA,
RMIA (online, and offline with the fitted a) and U-LiRA on the original model, HAMU-Q and
GDiff at the step closest to the reference (Studio defaults, default stop rules, at most
300 steps) and the retrained model, for a class, a random-5 % and a ρ = 0.5 request. The
U-LiRA shadows follow each method; the original and retrain rows use HAMU-Q's.
Asserts nothing about time. Run: ``python bench/bench_privacy.py``.
"""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np
import torch

from hamu_core.audit import attack_scores as S
from hamu_core.audit.attacks import FPR_LEVELS, POPULATION, audit, unlearn_shadows
from hamu_core.audit.shadows import DEFAULT_SHADOWS, build_bank
from hamu_core.config import DEFAULTS
from hamu_core.evaluation.privacy import Estimate
from hamu_core.evaluation.roc import tpr_at_fpr
from hamu_core.runs.experiment import ExperimentSpec, ForgetChoice, prepare, unlearning_run
from hamu_core.runs.unlearner import DEFAULT_STOP

REQUESTS = {"class 3": ForgetChoice("class", cls="3"), "random 5%": ForgetChoice("random", fraction=0.05),
            "class 3, rho 0.5": ForgetChoice("rho", cls="3", rho=0.5)}
METHODS = ("hamu-q", "gdiff")
COLUMNS = ("loss", "lira_offline", "lira", "rmia", "rmia_offline", "ulira")
LEVEL = FPR_LEVELS[-1]


def timed(call):
    start = time.perf_counter()
    value = call()
    return value, time.perf_counter() - start


def bank_times(spec: ExperimentSpec) -> None:
    prepared = prepare(spec, with_retrain=False)
    print(f"(a) shadow bank, K = {DEFAULT_SHADOWS}, digits, MLP, TrainConfig() (20 epochs), from an empty cache")
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as folder:
            os.environ["HAMU_DATA_DIR"] = folder
            _, seconds = timed(lambda: build_bank(prepared.data, spec.model, spec.train, workers=workers))
            _, loaded = timed(lambda: build_bank(prepared.data, spec.model, spec.train, workers=workers))
        print(f"    workers {workers}: {seconds:6.1f} s   (loading the cached bank: {loaded:.2f} s)")


def closest_model(prepared, spec: ExperimentSpec, method: str):
    run = unlearning_run(prepared.data, prepared.original, prepared.forget_ids, method,
                         DEFAULTS.method_settings(method), seed=spec.seed, reference=prepared.retrain)
    for _ in run.steps(DEFAULTS.max_steps, DEFAULT_STOP):
        pass
    return run.model_at(run.closest_step_), run.closest_step_, run.stop_.kind


def rmia_offline_tpr(model, prepared, bank, seed: int = 0) -> float:
    """TPR at 1 % FPR of RMIA with the offline reference (OUT shadows and the fitted a), for comparison."""
    data, forget, test = prepared.data, prepared.forget_ids, np.sort(prepared.data.test_ids)
    ids = np.r_[forget, test]
    stat = bank.confidence(data)
    a = S.offline_a(stat, bank.masks)
    reference = S.reference_log_probability(stat, bank.masks, offline=True, a=a)
    population = np.sort(np.random.default_rng(seed).choice(bank.pool_ids, min(POPULATION, len(bank.pool_ids)),
                                                            replace=False))
    log_p = {}
    for name, chosen in (("x", ids), ("z", population)):
        x, y = data.tensors(chosen)
        with torch.no_grad():
            log_p[name] = S.log_probability(S.logit_confidence(model(x), y))
    scores = S.rmia(log_p["x"], reference[bank.positions(ids)], log_p["z"], reference[bank.positions(population)])
    return tpr_at_fpr(scores[:len(forget)], scores[len(forget):], LEVEL)


def cell(estimate: Estimate) -> str:
    return f"{estimate.value:5.1%} [{estimate.low:4.1%}, {estimate.high:5.1%}]"


def request_table(name: str, choice: ForgetChoice) -> None:
    spec = ExperimentSpec(forget=choice)
    prepared = prepare(spec)
    bank = build_bank(prepared.data, spec.model, spec.train, workers=2)
    rows = {}
    for method in METHODS:
        current, step, stop = closest_model(prepared, spec, method)
        shadows, ulira_seconds = timed(lambda: unlearn_shadows(bank, prepared.data, prepared.forget_ids, method,
                                                               DEFAULTS.method_settings(method), step, spec.seed))
        models = {"original": prepared.original, "current": current, "retrain": prepared.retrain}
        result, seconds = timed(lambda: audit(models, prepared.data, prepared.forget_ids, bank,
                                              unlearned_shadows=shadows, seed=spec.seed))
        print(f"    {name}, {method}: step {step} ({stop}); U-LiRA shadows {ulira_seconds:.1f} s; "
              f"audit {seconds:.2f} s ({seconds / 3:.2f} s per model)")
        targets = {"original": "original", "current": method, "retrain": "retrain"}
        for model, label in targets.items():
            if label in rows:
                continue
            row = {attack: cell(result.result(attack, model).tpr[LEVEL]) for attack in result.attacks}
            row["rmia_offline"] = f"{rmia_offline_tpr(models[model], prepared, bank):5.1%}"
            rows[label] = row
        if method == METHODS[0]:
            strongest = result.strongest()
            verdict = result.verdict()
    n_test = len(prepared.data.test_ids)
    print(f"\n    {name}: {len(prepared.forget_ids)} forget vs {n_test} test samples, TPR at {LEVEL:.0%} FPR "
          f"(95% intervals; 1% FPR = {int(LEVEL * n_test)} false positives)")
    print("    " + f"{'model':<9}" + "".join(f"{c:>24}" for c in COLUMNS))
    for label in ("original", *METHODS, "retrain"):
        print("    " + f"{label:<9}" + "".join(f"{rows[label].get(c, ''):>24}" for c in COLUMNS))
    print(f"    strongest (HAMU-Q audit): {strongest}\n    verdict: {verdict}\n")


def attack_and_ulira_times(spec: ExperimentSpec) -> None:
    prepared = prepare(spec)
    bank = build_bank(prepared.data, spec.model, spec.train, workers=2)
    current, step, _ = closest_model(prepared, spec, "hamu-q")
    models = {"original": prepared.original, "current": current, "retrain": prepared.retrain}
    print(f"(b) attack time per model (digits class 3: {len(prepared.forget_ids)} forget + "
          f"{len(prepared.data.test_ids)} test samples, K = {len(bank)}, 200 bootstrap resamples)")
    _, first = timed(lambda: audit(models, prepared.data, prepared.forget_ids, bank,
                                   attacks=("loss", "lira_offline", "lira", "rmia")))
    _, again = timed(lambda: audit(models, prepared.data, prepared.forget_ids, bank,
                                   attacks=("loss", "lira_offline", "lira", "rmia")))
    print(f"    four attacks, first audit on a fresh bank (stacked forward pass included): {first / 3:.2f} s per model")
    print(f"    four attacks, bank statistic cached: {again / 3:.2f} s per model")
    print(f"(c) U-LiRA: {len(bank)} shadows unlearned with HAMU-Q for {step} steps (digits class 3)")
    for workers in (1, 2):
        shadows, seconds = timed(lambda: unlearn_shadows(bank, prepared.data, prepared.forget_ids, "hamu-q",
                                                         DEFAULTS.method_settings("hamu-q"), step, spec.seed,
                                                         workers=workers))
        print(f"    workers {workers}: {seconds:5.1f} s")
    _, seconds = timed(lambda: audit(models, prepared.data, prepared.forget_ids, bank, attacks=("ulira",),
                                     unlearned_shadows=shadows))
    print(f"    U-LiRA scoring once the shadows are unlearned: {seconds / 3:.2f} s per model\n")


def main() -> None:
    torch.set_num_threads(1)
    spec = ExperimentSpec(forget=REQUESTS["class 3"])
    bank_times(spec)
    with tempfile.TemporaryDirectory() as folder:
        os.environ["HAMU_DATA_DIR"] = folder
        attack_and_ulira_times(spec)
        print("(d) TPR at 1% FPR, forget (members) vs test (non-members)")
        for name, choice in REQUESTS.items():
            request_table(name, choice)


if __name__ == "__main__":
    main()
