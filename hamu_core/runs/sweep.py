"""Sweeps: methods × constraints × seeds, each cell a stored run, run in parallel worker processes.

Cells are independent runs on one forget set, so they parallelise across processes
(threads would share one interpreter and PyTorch's intra-op pool). Workers start with
``spawn`` (a forked PyTorch can deadlock on its thread pools) and use one torch thread
each, so N workers use N cores without oversubscribing them. The parent trains or loads
both models once before any worker starts: workers then only read the disk cache, and
never race to train the same model. Every worker writes its run to the one SQLite store,
whose WAL mode and locking let several processes append at once.

Where cells run is an engine: ``LocalEngine`` (the worker processes above) or
``ray_engine.RayEngine`` (Ray tasks, on this machine or a cluster). Both take the same
cells and yield the same summary rows, so a sweep's numbers do not depend on its engine.
"""

from __future__ import annotations

import dataclasses
import inspect
import multiprocessing
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Protocol

import pandas as pd
import torch

from hamu_core.models.training import Progress
from hamu_core.rules.registry import METHODS
from hamu_core.runs.compare import constraint_sweep
from hamu_core.runs.experiment import ExperimentSpec, Outcome, execute, prepare
from hamu_core.runs.store import RunStore
from hamu_core.runs.unlearner import DEFAULT_STOP, stop_rules

SUMMARY_COLUMNS = ("method", "constraint", "seed", "run_id", "status", "steps", "stop", "reported_step",
                   "forget_acc", "retain_acc", "test_acc", "distance", "mia_auc", "avg_gap")
METRIC_COLUMNS = SUMMARY_COLUMNS[SUMMARY_COLUMNS.index("forget_acc"):]


def sweep_specs(base: ExperimentSpec, methods: Sequence[str], constraints: Sequence[float], seeds: Sequence[int],
                settings: dict | None = None) -> list[ExperimentSpec]:
    """One spec per method × constraint × seed, in that order, on ``base``'s data, model and forget set.

    Each of ``settings`` goes to every method that has it (``lr`` to all of them, ``alpha``
    to NegGrad+ and SCRUB); one that no method has is refused, as a likely typo. The
    constraints sweep the methods with a constraint B (HAMU's); the others get one cell per seed.
    """
    if not methods or not seeds:
        raise ValueError("a sweep needs at least one method and one seed")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {unknown[0]!r}")
    settings = dict(settings or {})
    accepted = {m: set(inspect.signature(METHODS[m]).parameters) for m in methods}
    unused = sorted(set(settings) - set().union(*accepted.values()))
    if unused:
        raise ValueError(f"setting {unused[0]!r} belongs to none of the methods {list(methods)}")
    specs = []
    for method in methods:
        own = {k: v for k, v in settings.items() if k in accepted[method]}
        if "constraint" in accepted[method] and constraints:
            own.pop("constraint", None)
            variants = [tuple(cell.items()) for _, _, cell in constraint_sweep(method, constraints, **own)]
        else:
            variants = [tuple(own.items())]
        specs += [dataclasses.replace(base, method=method, settings=cell, seed=seed)
                  for cell in variants for seed in seeds]
    return specs


@dataclass(frozen=True)
class CellJob:
    """What every cell of one sweep shares: where runs are stored, how long they run, what is measured."""

    store_path: str  # the one SQLite store of the sweep
    steps: int  # most steps per cell
    stop_when: tuple[str, ...]  # stop rules (``unlearner.stop_rules``)
    with_eval: bool  # evaluate each cell's reported step against the retrain reference


class SweepEngine(Protocol):
    """Runs cells somewhere and yields ``(index of the spec, summary row)`` as each cell finishes."""

    def run(self, specs: Sequence[ExperimentSpec], job: CellJob) -> Iterator[tuple[int, dict]]: ...


def summary_row(spec: ExperimentSpec, outcome: Outcome, run_id: str) -> dict:
    """A cell's row of the sweep's table: its settings, the stored run's id and the final numbers."""
    return {"method": spec.method, "constraint": spec.rule_settings().get("constraint"), "seed": spec.seed,
            "run_id": run_id, "status": outcome.status, "steps": outcome.steps, "stop": outcome.stop.kind,
            "reported_step": outcome.reported_step, **{k: outcome.metrics.get(k) for k in METRIC_COLUMNS}}


def _one_thread() -> None:
    torch.set_num_threads(1)


def run_cell(spec: ExperimentSpec, job: CellJob) -> dict:
    """Run one cell into the store (in a worker process) and return its summary row."""
    with RunStore(job.store_path) as store:
        outcome = execute(spec, store, steps=job.steps, stop_when=job.stop_when, with_eval=job.with_eval)
    return summary_row(spec, outcome, outcome.run_id)


@dataclass(frozen=True)
class LocalEngine:
    """``workers`` spawned processes of one torch thread each on this machine, each writing its cell to the store."""

    workers: int = 1  # worker processes

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")

    def run(self, specs: Sequence[ExperimentSpec], job: CellJob) -> Iterator[tuple[int, dict]]:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=self.workers, mp_context=context, initializer=_one_thread) as pool:
            futures = {pool.submit(run_cell, spec, job): i for i, spec in enumerate(specs)}
            for future in as_completed(futures):
                yield futures[future], future.result()


def run_sweep(specs: Sequence[ExperimentSpec], store_path: str, *, steps: int, stop_when=DEFAULT_STOP,
              workers: int = 1, engine: SweepEngine | None = None, with_eval: bool = True,
              progress: Progress | None = None) -> pd.DataFrame:
    """Run every spec as its own stored run; one summary row per spec, in order.

    ``engine`` says where the cells run (None: ``LocalEngine(workers)``). The models are
    trained or loaded here first, once per data and forget set, so no two cells race to train them.
    """
    if engine is not None and workers != 1:
        raise ValueError("workers is the local engine's setting: give it to LocalEngine, or leave it at 1")
    engine = LocalEngine(workers) if engine is None else engine
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if not specs:
        raise ValueError("the sweep has no cells")
    rules = stop_rules(stop_when)
    for spec in {dataclasses.replace(s, method=specs[0].method, settings=(), seed=0) for s in specs}:
        # fill the model cache once, here
        prepare(spec, with_retrain=with_eval or "reached_reference" in rules, progress=progress)
    rows: list[dict | None] = [None] * len(specs)
    job = CellJob(str(store_path), steps, rules, with_eval)
    for done, (index, row) in enumerate(engine.run(specs, job), start=1):
        rows[index] = row
        if progress is not None:
            progress(done / len(specs), f"sweep: {done} of {len(specs)} runs")
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
