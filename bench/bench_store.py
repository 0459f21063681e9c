"""What the run store costs per step, and what a sweep gains from a second worker process.

Issue 5's benchmark. (a) Store on vs off: two copies of one run (the Studio's default
model on digits, forgetting class 3 with HAMU-Q at the Studio's defaults, one seed) step
side by side, call by call in alternating order, so both take the same batches and share
the machine's noise; one steps bare, the other through ``StoredRunRecorder`` into a fresh
SQLite store (WAL, a transaction per step, weights every ``CHECKPOINT_EVERY`` steps as the
CLI stores them). Means, not medians, since a checkpoint comes only every few steps. Target: store
on / off ≤ 1.05.
(b) Sweep speed-up: the same cells run by ``run_sweep`` with 1 worker process and with 2,
wall time each (process start-up included: it is part of what a user waits for).
Asserts nothing about time. Run: ``python bench/bench_store.py [--steps N] [--sweep-steps N]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch

from hamu_core.runs.experiment import CHECKPOINT_EVERY, ExperimentSpec, ForgetChoice, prepare, unlearning_run
from hamu_core.runs.store import RunStore, StoredRunRecorder
from hamu_core.runs.sweep import run_sweep, sweep_specs

SPEC = ExperimentSpec(forget=ForgetChoice("class", cls="3"))  # the Studio's first-start settings
WARMUP = 20  # untimed steps per side first: SQLite's first statements and file growth, torch's first calls


def timed(call) -> tuple[float, float]:
    """(wall, this thread's CPU) milliseconds of ``call()``."""
    wall, cpu = time.perf_counter(), time.thread_time()
    call()
    return (time.perf_counter() - wall) * 1e3, (time.thread_time() - cpu) * 1e3


def store_cost(steps: int, folder: str) -> None:
    prepared = prepare(SPEC, with_retrain=False)
    build = lambda: unlearning_run(prepared.data, prepared.original, prepared.forget_ids, SPEC.method,  # noqa: E731
                                   SPEC.rule_settings(), seed=SPEC.seed, retain_batch_size=SPEC.retain_batch_size)
    bare, stored = build(), build()
    with RunStore(folder) as store:
        recorder = StoredRunRecorder.start(store, stored, dataset={"name": "digits"}, forget_ids=prepared.forget_ids,
                                           checkpoint_every=CHECKPOINT_EVERY)
        times = {"off": [], "on": []}
        for index in range(WARMUP + steps):
            if index % 2:  # alternate which side goes first, so neither always inherits the other's caches
                off, on = timed(bare.step), timed(recorder.step)
            else:
                on, off = timed(recorder.step), timed(bare.step)
            if index >= WARMUP:
                times["off"].append(off)
                times["on"].append(on)
        recorder.finish()
    assert [r.kappa for r in bare.history_] == [r.kappa for r in stored.history_]  # same steps on both sides
    print(f"(a) store on vs off, {steps} steps each after {WARMUP} untimed, {SPEC.method} on digits class 3, "
          f"checkpoint every {recorder.checkpoint_every} steps")
    print(f"{'':12}{'off':>10}{'on':>10}{'on / off':>10}")
    for index, kind in enumerate(("wall ms", "CPU ms")):
        off = statistics.fmean(t[index] for t in times["off"])
        on = statistics.fmean(t[index] for t in times["on"])
        print(f"{kind:<12}{off:>10.3f}{on:>10.3f}{on / off:>10.3f}")


def sweep_speedup(steps: int, folder: str) -> None:
    specs = sweep_specs(SPEC, ["hamu-q", "gdiff"], [0.01, 0.025], [0, 1])
    walls = {}
    for workers in (1, 2):
        start = time.perf_counter()
        run_sweep(specs, os.path.join(folder, f"sweep-{workers}.sqlite"), steps=steps, workers=workers)
        walls[workers] = time.perf_counter() - start
    print(f"(b) sweep of {len(specs)} cells x {steps} steps with evaluation, {os.cpu_count()} CPUs")
    print(f"1 worker {walls[1]:.1f} s, 2 workers {walls[2]:.1f} s, speed-up {walls[1] / walls[2]:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="steps per side in (a)")
    parser.add_argument("--sweep-steps", type=int, default=200, help="steps per sweep cell in (b)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        os.environ["HAMU_DATA_DIR"] = folder  # a cold model cache, shared with the sweep's workers
        store_cost(args.steps, folder)
        sweep_speedup(args.sweep_steps, folder)


if __name__ == "__main__":
    main()
