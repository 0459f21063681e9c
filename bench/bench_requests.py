"""Sequential deletion requests: is answering each one much faster than retraining, and how far does the chain drift?

Three requests on digits, as a data-protection officer would get them (issue 11): class 3,
then a random 5 % (seed 1, so it mostly names new samples), then 20 scattered training ids.
Each is unlearned with the Studio's defaults (``DEFAULTS.method``, its settings,
``DEFAULT_STOP``, at most ``DEFAULTS.max_steps`` steps) on the model the previous request
handed on (``hamu_core.runs.ledger.run_ledger``).

Per request: the seconds spent unlearning (building the run, stepping, recovering the
reported step) against the seconds of retraining without every set forgotten so far, timed
directly with ``training.train_model`` on the same recipe (the ledger's own references come
from the disk cache after a first pass, so its ``retrain_seconds`` would say "cached"); the
speed-up; and the gap to the retrain-after-each reference (``distance`` on this request's
forget set, ``drift`` on the union of every set so far, both in accuracy points).

Target: unlearning ≥ 10× faster than retraining for every request once the references are
cached. Asserts nothing. Run: ``python bench/bench_requests.py [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch

from hamu_core.config import DEFAULTS
from hamu_core.models.architectures import ModelConfig
from hamu_core.models.training import TrainConfig, retain_ids, train_model
from hamu_core.runs.experiment import load_dataset
from hamu_core.runs.ledger import parse_requests, run_ledger

TARGET_SPEEDUP = 10.0


def requests_text(data) -> str:
    """Class 3, a random 5 % and 20 training ids spread over the whole id range."""
    scattered = data.train_ids[np.linspace(0, len(data.train_ids) - 1, 20).astype(int)]
    return "class 3\nrandom 0.05 1\nids " + " ".join(str(int(i)) for i in scattered)


def retrain_seconds(data, union: np.ndarray, model_config: ModelConfig, train_config: TrainConfig,
                    repeats: int) -> float:
    """The fastest of ``repeats`` trainings without ``union`` (the fastest is the least disturbed by other work)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        train_model(data, retain_ids(data, union), model_config, train_config)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timings of each retraining and ledger (fastest kept)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_dataset("digits")
    model_config, train_config = ModelConfig(arch=DEFAULTS.arch), TrainConfig()
    requests = parse_requests(requests_text(data))
    options = dict(dataset=data, model_config=model_config, train_config=train_config, method=DEFAULTS.method,
                   settings=DEFAULTS.method_settings(DEFAULTS.method), seed=DEFAULTS.seed)
    run_ledger(requests, **options)  # first pass: trains and caches the original and every reference
    ledgers = [run_ledger(requests, **options) for _ in range(args.repeats)]
    table = ledgers[0].table()
    table["unlearn_seconds"] = np.min([ledger.table()["unlearn_seconds"] for ledger in ledgers], axis=0)
    union = np.empty(0, dtype=np.int64)
    measured = []
    for entry in ledgers[0].entries:
        union = np.union1d(union, entry.forget_ids)
        measured.append(retrain_seconds(data, union, model_config, train_config, args.repeats))
    table["retrain_seconds"] = measured
    table["speedup"] = table["retrain_seconds"] / table["unlearn_seconds"]
    table["request"] = table["request"].str.slice(0, 24)
    shown = table[["request", "forget_size", "forgotten_size", "steps", "stop", "reported_step", "unlearn_seconds",
                   "retrain_seconds", "speedup", "forget_acc", "retrain_forget_acc", "retain_acc",
                   "retrain_retain_acc", "test_acc", "retrain_test_acc", "distance", "drift"]]
    with pd.option_context("display.width", 250, "display.max_columns", None, "display.max_colwidth", 24):
        print(f"digits, {DEFAULTS.method} at the Studio's defaults, {train_config.epochs}-epoch {DEFAULTS.arch}; "
              f"fastest of {args.repeats}")
        print(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    slowest = table["speedup"].min()
    print(f"smallest speed-up {slowest:.1f}x: target >= {TARGET_SPEEDUP:.0f}x "
          f"{'met' if slowest >= TARGET_SPEEDUP else 'NOT met'}")


if __name__ == "__main__":
    main()
