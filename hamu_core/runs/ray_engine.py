"""Sweep cells as Ray tasks: on a Ray started here, or on an existing cluster (``address``).

Ray schedules the cells (CPUs and fractional GPUs per task) and retries a cell whose worker
died. A task may run on another machine, so it never writes the sweep's store: it runs its
cell into a scratch store of its own and returns the packed run (``run_transfer``), which the
driver writes into the one store, the store's only writer. A retried task starts from a fresh
scratch store, so a worker that died mid-cell leaves nothing half-written behind.

Ray is an optional extra (``pip install '.[ray]'``): this module imports it only when a
sweep asks for it, and says how to install it when it is missing.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from hamu_core.runs.experiment import ExperimentSpec, Outcome, execute
from hamu_core.runs.run_transfer import PackedRun, pack, unpack
from hamu_core.runs.store import RunStore
from hamu_core.runs.sweep import CellJob, summary_row

INSTALL_HINT = "pip install 'hamu-studio[ray]' (from a checkout: pip install '.[ray]'), or pip install 'ray>=2.40'"


class EngineUnavailable(RuntimeError):
    """The engine asked for is not installed here; the message says how to install it."""


def import_ray():
    """The ``ray`` module, or EngineUnavailable saying how to install it."""
    try:
        import ray
    except ImportError:
        raise EngineUnavailable(f"--engine ray needs Ray, an optional extra that is not installed: {INSTALL_HINT}; "
                                "--engine local runs without it") from None
    return ray


def run_packed(spec: ExperimentSpec, job: CellJob, threads: int) -> tuple[PackedRun, Outcome]:
    """The body of one Ray task: the cell run into a scratch store, returned packed with its outcome."""
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory(prefix="hamu-cell-") as scratch:
        with RunStore(scratch) as store:
            outcome = execute(spec, store, steps=job.steps, stop_when=job.stop_when, with_eval=job.with_eval)
            return pack(store, outcome.run_id), outcome


@dataclass(frozen=True)
class RayEngine:
    """Each cell a Ray task with its own resources; the driver stores what the tasks return."""

    address: str | None = None  # an existing cluster ("auto", "ray://head:10001"); None: start Ray here
    cpus_per_task: float = 1.0  # CPUs Ray reserves per cell; the cell runs on that many torch threads (at least 1)
    gpus_per_task: float = 0.0  # GPUs per cell, fractions allowed (0.25: four cells share a GPU)
    max_retries: int = 2  # reruns of a cell whose worker process or node died (a cell's own error is not retried)
    num_cpus: int | None = None  # CPUs of a Ray started here (None: every core); ignored with an address

    def __post_init__(self) -> None:
        for name in ("cpus_per_task", "gpus_per_task"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        if self.cpus_per_task == 0 and self.gpus_per_task == 0:
            raise ValueError("a cell needs some resource: cpus_per_task or gpus_per_task must be > 0")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.num_cpus is not None and self.num_cpus < 1:
            raise ValueError(f"num_cpus must be >= 1 or None, got {self.num_cpus}")
        import_ray()  # a missing Ray is said when the engine is chosen, before any model is trained

    def run(self, specs: Sequence[ExperimentSpec], job: CellJob) -> Iterator[tuple[int, dict]]:
        ray = import_ray()
        started = not ray.is_initialized()
        if started:
            local = {"num_cpus": self.num_cpus} if self.address is None else {}
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False, **local)
        try:
            task = ray.remote(run_packed).options(num_cpus=self.cpus_per_task, num_gpus=self.gpus_per_task,
                                                  max_retries=self.max_retries, retry_exceptions=False)
            threads = max(1, int(self.cpus_per_task))
            pending = {task.remote(spec, job, threads): i for i, spec in enumerate(specs)}
            with RunStore(job.store_path) as store:
                while pending:
                    [ready], _ = ray.wait(list(pending), num_returns=1)
                    index = pending.pop(ready)
                    packed, outcome = ray.get(ready)
                    yield index, summary_row(specs[index], outcome, unpack(packed, store))
        finally:
            if started:
                ray.shutdown()
