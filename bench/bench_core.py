"""HAMU's step time against GDiff's, on the same model and the same paired batches.

Issue 2, benchmark (a): the HAMU algebra must be negligible next to the two backward passes
every rule pays, so HAMU step time / GDiff step time should be at most 1.05, in per-tensor
and in full-gradient mode. On scikit-learn's digits with the Studio's CNN widened to about
50k parameters, every timed call is one whole ``UnlearningRun.step()`` (gradients, clipping,
the rule, applying Δ, the after-step losses) at step 1, undone outside the timer so every
call sees the same weights and batches. The rules are interleaved call by call so machine
noise falls on all of them alike; medians after a warm-up are reported as ratios, of wall
time and of this thread's CPU time (with one torch thread all the work runs on it, and CPU
time leaves out the time other processes hold the cores). The last column times the rule's
``propose`` alone on the step's inputs: the algebra HAMU adds. Asserts nothing about time.
Run: ``python bench/bench_core.py [--threads N] [--repeats N]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from hamu_core.data.builtin import load_digits_data
from hamu_core.data.selection import select_class
from hamu_core.models.architectures import ModelConfig, count_parameters
from hamu_core.models.training import TrainConfig, retain_ids, train_model
from hamu_core.rules import gradients as G
from hamu_core.rules.registry import make_rule
from hamu_core.rules.rule import StepInputs
from hamu_core.runs.unlearner import UnlearningRun

MODEL = ModelConfig(arch="cnn", channels=(32, 64), cnn_hidden=128)  # 53k parameters on 8×8 digits
WARMUP = 5  # untimed calls per rule: first-call dispatch and allocator growth
RULES = {
    "gdiff": ("gdiff", {"lr": 1e-2, "clip_norm": 1.0}),  # HAMU's clipping too: only the algebra differs
    "hamu-q per_tensor": ("hamu-q", {"lr": 1e-2, "constraint": 5e-3, "mode": "per_tensor"}),
    "hamu-q full": ("hamu-q", {"lr": 1e-2, "constraint": 5e-3, "mode": "full"}),
}


def step_ms(run: UnlearningRun, inputs: StepInputs) -> tuple[float, float, float]:
    """(wall, CPU) ms of one step, and CPU ms of the rule alone on the step's inputs.

    CPU time of this thread leaves out the time other processes hold the cores.
    """
    wall, cpu = time.perf_counter(), time.thread_time()
    run.step()
    cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
    run.undo()
    rule = time.thread_time()
    run.rule.propose(inputs)
    return wall * 1e3, cpu * 1e3, (time.thread_time() - rule) * 1e3


def step_inputs(run: UnlearningRun) -> StepInputs:
    """What the run hands its rule at step 1: the paired batches and their clipped gradients."""
    retain, forget = run.batches(1)
    raw = G.paired_gradients(run.model_, retain, forget)
    clip = run.rule.clip_norm
    grads = G.PairedGradients(raw.names, G.clip(raw.retain, clip), G.clip(raw.forget, clip),
                              raw.retain_loss, raw.forget_loss)
    return StepInputs(run.model_, run.original_, retain, forget, grads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: stable on shared cores)")
    parser.add_argument("--repeats", type=int, default=60, help="timed steps per rule (at least 30)")
    args = parser.parse_args()
    if args.repeats < 30:
        parser.error("--repeats must be at least 30")
    torch.set_num_threads(args.threads)

    data = load_digits_data()
    forget_ids = select_class(data, 3)
    model = train_model(data, data.train_ids, MODEL, TrainConfig(epochs=2))
    retain, forget = data.tensors(retain_ids(data, forget_ids)), data.tensors(forget_ids)
    runs = {name: UnlearningRun(make_rule(method, **settings), model=model, retain=retain, forget=forget, seed=0)
            for name, (method, settings) in RULES.items()}
    inputs = {name: step_inputs(run) for name, run in runs.items()}
    times: dict[str, list[tuple[float, float, float]]] = {name: [] for name in runs}
    for i in range(WARMUP + args.repeats):
        order = list(runs)[i % len(runs):] + list(runs)[:i % len(runs)]  # rotate who goes first
        for name in order:
            elapsed = step_ms(runs[name], inputs[name])
            if i >= WARMUP:
                times[name].append(elapsed)

    print(f"digits, CNN with {count_parameters(model):,} parameters, retain batch 256, "
          f"forget batch {len(forget_ids)} (the whole class), {args.threads} torch thread(s), "
          f"median of {args.repeats} interleaved steps after {WARMUP} warm-up; all rules clip at 1.0")
    medians = {name: [statistics.median(v[k] for v in values) for k in range(3)] for name, values in times.items()}
    base = medians["gdiff"]
    print(f"{'rule':<20}{'wall ms':>9}{'wall ratio':>12}{'CPU ms':>9}{'CPU ratio':>11}{'rule-only CPU ms':>18}")
    for name, (wall, cpu, rule) in medians.items():
        print(f"{name:<20}{wall:>9.2f}{wall / base[0]:>12.3f}{cpu:>9.2f}{cpu / base[1]:>11.3f}{rule:>18.3f}")
    print("target: HAMU / GDiff <= 1.05 in both modes; rule-only: the update rule's own algebra")


if __name__ == "__main__":
    main()
