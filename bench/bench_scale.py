"""What the scale-out engines gain here: sweeps on worker processes and on Ray, steps on torch.distributed.

Issue 13's benchmark. (a) One sweep of 16 cells (HAMU-Q and HAMU-U × 2 constraints × 4 seeds,
the Studio's MLP on digits, forgetting class 3, a fixed number of steps, no evaluation) run by
the local engine with 1 worker, with 2 workers, and by Ray on a local Ray of 2 CPUs (one CPU
per cell): wall time each, start-up included (worker processes, Ray's ``init``), since that is
part of what a user waits for; the stored histories are checked equal across engines.
(b) One data-parallel step (HAMU-Q on an MLP with synthetic data, batches large enough that
the step is compute-bound) in 1 process and in 2 gloo processes under torchrun, one torch thread
each: milliseconds per step on rank 0.
(c) One ResNet-20 step on the CPU (one thread) with the published width, when
``hamu_core.models.resnet`` is there.
Asserts nothing about time; prints side-by-side ratios.
Run: ``python bench/bench_scale.py [--sweep-steps N] [--dist-steps N]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from hamu_core.config import DEFAULTS
from hamu_core.rules.registry import make_rule
from hamu_core.runs import distributed
from hamu_core.runs.experiment import ExperimentSpec, ForgetChoice, prepare
from hamu_core.runs.store import RunStore
from hamu_core.runs.sweep import LocalEngine, run_sweep, sweep_specs
from hamu_core.runs.unlearner import UnlearningRun

ROOT = Path(__file__).resolve().parents[1]
SPEC = ExperimentSpec(forget=ForgetChoice("class", cls="3"))  # the Studio's first-start settings
WARMUP = 2  # untimed steps first: torch's first calls, gloo's first all-reduce


def sweep_histories(folder: str, table) -> list:
    with RunStore(folder) as store:
        return [[{k: v for k, v in r.items() if k != "wall_ms"} for r in store.get_run(rid).history]
                for rid in table["run_id"]]


def sweep_engines(steps: int) -> None:
    specs = sweep_specs(SPEC, ["hamu-q", "hamu-u"], [0.005, 0.01], [0, 1, 2, 3])
    prepare(SPEC, with_retrain=False)  # train or load once, untimed: every engine reads the same cache
    engines = {"local, 1 worker": LocalEngine(1), "local, 2 workers": LocalEngine(2)}
    try:
        from hamu_core.runs.ray_engine import RayEngine
        engines["ray, 2 CPUs"] = RayEngine(num_cpus=2, cpus_per_task=1)
    except RuntimeError as err:
        print(f"    ray: not run ({err})")
    times, histories = {}, {}
    with tempfile.TemporaryDirectory() as folder:
        for name, engine in engines.items():
            path = os.path.join(folder, name.replace(" ", "").replace(",", "-") + ".sqlite")
            start = time.perf_counter()
            table = run_sweep(specs, path, steps=steps, stop_when=(), engine=engine, with_eval=False)
            times[name] = time.perf_counter() - start
            histories[name] = sweep_histories(path, table)
    same = all(json.dumps(h, sort_keys=True) == json.dumps(histories["local, 1 worker"], sort_keys=True)
               for h in histories.values())
    print(f"(a) sweep of {len(specs)} cells × {steps} steps (HAMU-Q/U, MLP on digits class 3), wall time incl. "
          f"start-up; stored histories equal across engines: {same}")
    base = times["local, 1 worker"]
    for name, seconds in times.items():
        print(f"    {name:<17} {seconds:7.1f} s   ratio to 1 worker {seconds / base:5.2f}")


def synthetic_run(data_parallel) -> UnlearningRun:
    """HAMU-Q on a 3-layer MLP over seeded data: large batches, so compute outweighs the all-reduce."""
    gen = torch.Generator().manual_seed(0)
    retain = torch.randn(4096, 256, generator=gen), torch.randint(0, 10, (4096,), generator=gen)
    forget = torch.randn(512, 256, generator=gen), torch.randint(0, 10, (512,), generator=gen)
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(256, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 10))
    return UnlearningRun(make_rule("hamu-q", **DEFAULTS.method_settings("hamu-q")), model=model, retain=retain,
                         forget=forget, seed=0, retain_batch_size=2048, data_parallel=data_parallel)


def step_worker(out: str, steps: int) -> None:
    """One process of (b): time ``steps`` steps, rank 0 (or the lone process) writes ms per step."""
    torch.set_num_threads(1)
    group = distributed.start("cpu") if "RANK" in os.environ else None
    run = synthetic_run(group)
    for _ in range(WARMUP):
        run.step()
    start = time.perf_counter()
    for _ in range(steps):
        run.step()
    ms = (time.perf_counter() - start) * 1e3 / steps
    if group is None or group.rank == 0:
        Path(out).write_text(json.dumps({"ms": ms, "kappa": run.history_[-1].kappa}))
    distributed.stop()


def distributed_step(steps: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for procs, prefix in ((1, []), (2, ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"])):
            out = os.path.join(folder, f"{procs}.json")
            subprocess.run([sys.executable, *prefix, __file__, "--worker", out, "--dist-steps", str(steps)],
                           cwd=ROOT, env=env, check=True, capture_output=True)
            results[procs] = json.loads(Path(out).read_text())
    kappa = [results[p]["kappa"] for p in (1, 2)]
    print(f"(b) data-parallel step, HAMU-Q on a 256-1024-1024-10 MLP, retain batch 2048, forget 512, {steps} steps "
          f"after {WARMUP}, one thread per process; last κ {kappa[0]:.6g} (1) vs {kappa[1]:.6g} (2)")
    for procs, result in results.items():
        print(f"    {procs} process{'es' if procs > 1 else '':<2} {result['ms']:8.1f} ms/step   "
              f"ratio to 1 process {result['ms'] / results[1]['ms']:5.2f}")


def resnet_step(steps: int) -> None:
    try:
        from hamu_core.models.resnet import ResNet20
    except ImportError:
        print("(c) ResNet-20 not available yet")
        return
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    retain = torch.randn(512, 3, 32, 32, generator=gen), torch.randint(0, 10, (512,), generator=gen)
    forget = torch.randn(64, 3, 32, 32, generator=gen), torch.randint(0, 10, (64,), generator=gen)
    torch.manual_seed(0)
    model = ResNet20((3, 32, 32), 16, 10).eval()
    run = UnlearningRun(make_rule("hamu-q", **DEFAULTS.method_settings("hamu-q")), model=model, retain=retain,
                        forget=forget, seed=0, retain_batch_size=128)
    run.step()
    start = time.perf_counter()
    for _ in range(steps):
        run.step()
    ms = (time.perf_counter() - start) * 1e3 / steps
    params = sum(p.numel() for p in model.parameters())
    print(f"(c) ResNet-20 (width 16, {params / 1e6:.2f}M parameters) HAMU-Q step on the CPU, one thread, retain batch "
          f"128, forget 64: {ms:.0f} ms/step over {steps} steps (finite κ: {math.isfinite(run.history_[-1].kappa)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep-steps", type=int, default=20)
    parser.add_argument("--dist-steps", type=int, default=10)
    parser.add_argument("--resnet-steps", type=int, default=3)
    parser.add_argument("--worker", metavar="OUT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        step_worker(args.worker, args.dist_steps)
        return
    torch.set_num_threads(1)
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}")
    sweep_engines(args.sweep_steps)
    distributed_step(args.dist_steps)
    resnet_step(args.resnet_steps)


if __name__ == "__main__":
    main()
