"""A finished run carried from one run store to another: packed where it ran, written where it is kept.

A sweep cell on a Ray worker may run on another machine, whose disk the driver never sees,
and the store has one writer (the driver). So the worker runs the cell into a scratch store
of its own, packs the finished run as plain data (``PackedRun``: the stored record and its
checkpoints), and returns it; the driver writes it into the real store with ``unpack``.
Through the store's public writes only, so the copy is indistinguishable from a run stored
in place: same settings, steps, measurements, checkpoints and status; a new id and times.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hamu_core.runs.store import RunStore, StoredRun


@dataclass(frozen=True, eq=False)
class PackedRun:
    """One stored run as picklable data: its record and its checkpoints by step."""

    stored: StoredRun
    checkpoints: dict[int, dict[str, torch.Tensor]]  # step → weights after it (0: the base model)


def pack(store: RunStore, run_id: str) -> PackedRun:
    """The run ``run_id`` of ``store`` with every checkpoint, ready to travel."""
    steps = store.checkpoint_steps(run_id)
    return PackedRun(store.get_run(run_id), {step: store.load_checkpoint(run_id, step)[1] for step in steps})


def unpack(packed: PackedRun, store: RunStore) -> str:
    """Write ``packed`` into ``store`` as a new run with the same content; returns its id.

    Only a run that has ended travels (its status is kept); a branch keeps no link to a
    parent the other store does not hold, so branches are refused.
    """
    stored = packed.stored
    if stored.parent_id is not None:
        raise ValueError(f"run {stored.id} is a branch of {stored.parent_id}; only whole runs can be carried")
    if stored.status == "running":
        raise ValueError(f"run {stored.id} is still running; carry it once it has ended")
    run_id = store.create_run(settings=stored.settings, dataset=stored.dataset, forget_ids=stored.forget_ids,
                              seed=stored.seed, retain_batch_size=stored.retain_batch_size,
                              forget_batch_size=stored.forget_batch_size, label=stored.label,
                              request_ref=stored.request_ref)
    measured = {e["step"]: {k: v for k, v in e.items() if k != "step"} for e in stored.evaluations}
    if 0 in packed.checkpoints:
        store.save_checkpoint(run_id, 0, packed.checkpoints[0])
    if measured.get(0):
        store.add_evaluation(run_id, 0, measured[0])
    for record in stored.history:
        step = record["step"]
        store.append_step(run_id, record, checkpoint=packed.checkpoints.get(step), evaluation=measured.get(step))
    store.set_status(run_id, stored.status)
    return run_id
