"""Where does each method end against the retrain reference, on the requests people make? (issue 9)

Every request type × every registered method, each at the Studio's defaults
(``DEFAULTS.method_settings``, the default stop rules ``DEFAULT_STOP``, at most
``DEFAULTS.max_steps`` steps), exactly as the CLI and the app run them: the run measures
itself on the probe, stops at the reference (or before the first step when nothing needs
to change) or when degradation becomes unavoidable, and the outcome is the step closest
to the reference. Printed per row: steps taken, why it stopped, the reported (closest)
step, forget / retain / test accuracy on the whole splits, and the distance to the
reference (the largest gap in accuracy points over the three).

Requests: on digits, one class, the class with ρ = 0.5 and 0.75 swapped for other classes,
a random 5 %, and 48 scattered ids of which 9 are test ids (forgotten: the 39 training
ids); on Rotten Tomatoes, one class with ρ = 0.5. Targets: the default method within 3
points on the class, random-5 % and scattered-id requests; HAMU-Q no farther than GDiff at
ρ = 0.75.

A second table compares the trade-off itself at ρ ≥ 0.5, where the paper says HAMU earns
its keep: HAMU-Q and GDiff at their defaults on the same paired batches (``compare_methods``,
no stop rule, 60 steps), and at each forget-loss gain both reached, the retain-loss cost of
each (GDiff's interpolated along its path). Target: HAMU-Q's cost no larger than GDiff's.

Asserts nothing. Run: ``python bench/bench_outcomes.py [--methods hamu-q,gdiff]
[--requests class,rho75] [--no-tradeoff]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from hamu_core.config import DEFAULTS
from hamu_core.evaluation.metrics import SPLITS, sample_outputs
from hamu_core.evaluation.target import reference_distance
from hamu_core.models.training import retain_ids
from hamu_core.rules.registry import METHODS
from hamu_core.runs.compare import compare_methods
from hamu_core.runs.experiment import ExperimentSpec, ForgetChoice, prepare, unlearning_run
from hamu_core.runs.unlearner import DEFAULT_STOP


def scattered_ids(dataset: str, n_train: int = 39, n_test: int = 9, seed: int = 7) -> tuple[int, ...]:
    """A user's list: training ids scattered over the data, with a few test ids mixed in."""
    data = prepare(ExperimentSpec(forget=ForgetChoice("class", cls="0"), dataset=dataset), with_retrain=False).data
    rng = np.random.default_rng(seed)
    ids = np.r_[rng.choice(data.train_ids, n_train, replace=False), rng.choice(data.test_ids, n_test, replace=False)]
    return tuple(int(i) for i in rng.permutation(ids))


def requests() -> dict[str, tuple[str, ForgetChoice]]:
    """Request name → (dataset, forget choice)."""
    return {
        "class 3": ("digits", ForgetChoice("class", cls="3")),
        "rho 0.5": ("digits", ForgetChoice("rho", cls="3", rho=0.5)),
        "rho 0.75": ("digits", ForgetChoice("rho", cls="3", rho=0.75)),
        "random 5%": ("digits", ForgetChoice("random", fraction=0.05)),
        "48 scattered ids": ("digits", ForgetChoice("ids", ids=scattered_ids("digits"))),
        "text rho 0.5": ("rotten-tomatoes", ForgetChoice("rho", cls="fresh", rho=0.5)),
    }


def accuracies(model, data, forget_ids) -> dict[str, float]:
    ids = {"forget": forget_ids, "retain": retain_ids(data, forget_ids), "test": data.test_ids}
    return {f"{split}_acc": sample_outputs(model, data, ids[split]).accuracy for split in SPLITS}


def outcome(spec: ExperimentSpec, stop_when=DEFAULT_STOP, max_steps: int = DEFAULTS.max_steps) -> dict:
    """One run as the CLI runs it, summarised on the whole splits."""
    prepared = prepare(spec)
    run = unlearning_run(prepared.data, prepared.original, prepared.forget_ids, spec.method, spec.rule_settings(),
                         seed=spec.seed, reference=prepared.retrain)
    start = time.perf_counter()
    for _ in run.steps(max_steps, stop_when):
        pass
    seconds = time.perf_counter() - start
    reported = run.closest_step_
    now = accuracies(run.model_at(reported), prepared.data, prepared.forget_ids)
    reference = accuracies(prepared.retrain, prepared.data, prepared.forget_ids)
    return {"steps": len(run.history_), "stop": run.stop_.kind, "reported": reported, **now,
            "distance": reference_distance(now, reference), **{f"ref_{k}": v for k, v in reference.items()},
            "seconds": seconds}


TRADEOFF_RHOS = (0.5, 0.75, 1.0)
TRADEOFF_SEEDS = (0, 1)  # selection seeds: different forget sets of the same hardness
TRADEOFF_STEPS = 60
TRADEOFF_POINTS = 8  # forget-loss gains compared per run


def tradeoff_rows() -> list[dict]:
    """HAMU-Q's and GDiff's retain-loss cost at equal forget-loss gains, per ρ and selection seed."""
    rows = []
    for rho in TRADEOFF_RHOS:
        for seed in TRADEOFF_SEEDS:
            spec = ExperimentSpec(forget=ForgetChoice("rho", cls="3", rho=rho, seed=seed))
            prepared = prepare(spec, with_retrain=False)
            retain = prepared.data.tensors(retain_ids(prepared.data, prepared.forget_ids))
            specs = [(m, m, DEFAULTS.method_settings(m)) for m in ("hamu-q", "gdiff")]
            paths = compare_methods(specs, model=prepared.original, retain=retain,
                                    forget=prepared.data.tensors(prepared.forget_ids), seed=0,
                                    steps=TRADEOFF_STEPS).trajectories
            hamu, gdiff = (paths[paths["label"] == m].sort_values("forget_loss_gain") for m in ("hamu-q", "gdiff"))
            top = min(hamu["forget_loss_gain"].max(), gdiff["forget_loss_gain"].max())
            gains = np.linspace(0, top, TRADEOFF_POINTS + 1)[1:]
            cost = {name: np.interp(gains, path["forget_loss_gain"], path["retain_loss_change"])
                    for name, path in (("hamu-q", hamu), ("gdiff", gdiff))}
            rows.append({"rho": rho, "seed": seed, "max common gain": top,
                         "hamu-q no worse": int(np.sum(cost["hamu-q"] <= cost["gdiff"] + 1e-9)),
                         "of": TRADEOFF_POINTS, "mean cost hamu-q": float(cost["hamu-q"].mean()),
                         "mean cost gdiff": float(cost["gdiff"].mean())})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--requests", default="", help="comma-separated substrings of request names (default all)")
    parser.add_argument("--no-tradeoff", action="store_true", help="skip the HAMU-Q vs GDiff trade-off table")
    args = parser.parse_args()
    methods = args.methods.split(",")
    chosen = {name: req for name, req in requests().items()
              if not args.requests or any(part in name for part in args.requests.split(","))}
    rows = []
    for name, (dataset, forget) in chosen.items():
        for method in methods:
            spec = ExperimentSpec(forget=forget, dataset=dataset, method=method)
            rows.append({"request": name, "method": method, **outcome(spec)})
            print(f"  {name:<17} {method:<9} done", flush=True)
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    default = table[table["method"] == DEFAULTS.method].set_index("request")["distance"]
    print(f"\ndefault method {DEFAULTS.method}: distance (points) per request: "
          + ", ".join(f"{k} {v:.1f}" for k, v in default.items()))
    if {"hamu-q", "gdiff"} <= set(methods) and "rho 0.75" in chosen:
        at = table[table["request"] == "rho 0.75"].set_index("method")["distance"]
        print(f"rho 0.75: HAMU-Q {at['hamu-q']:.1f} points vs GDiff {at['gdiff']:.1f} points from the reference")
    if not args.no_tradeoff:
        trade = pd.DataFrame(tradeoff_rows())
        print("\nretain-loss cost at equal forget-loss gain, HAMU-Q vs GDiff (60 steps, same batches):")
        print(trade.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        print(f"HAMU-Q no worse than GDiff at {trade['hamu-q no worse'].sum()} of {trade['of'].sum()} matched gains")


if __name__ == "__main__":
    main()
