"""The stored, measured run the Studio drives: step, undo, roll back, reset, reopen, and its frame.

An ``UnlearningRun`` built as every caller builds it (``experiment.unlearning_run``), written
to the run store from its first step on and measured after every step, with the key of what
it was built from. It needs no Streamlit: the app keeps one per browser session, and a script
or test drives it the same way.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import numpy as np
import pandas as pd
from torch import nn

from hamu_core.data.labelled import LabelledData
from hamu_core.runs.experiment import unlearning_run
from hamu_core.runs.store import RunStore, StoredRunRecorder, StoreError, resume_run
from hamu_core.runs.unlearner import StepRecord, Stop, UnlearningRun

RUN_COLUMNS = ("step", "branch", "kappa", "kappa2", "margin", "cos_rf", "radius", "constraint", "feasible",
               "degradation_unavoidable", "step_norm")


class LiveRun:
    """An ``UnlearningRun``, stored as it goes, with the key of what it was built from.

    ``key`` records what the run was built from (data, model, forget set, method, settings);
    the page starts a new run when that changes. The run measures itself after every step
    (``points``, ``points[0]`` the original model's), and given the retrain ``reference`` it
    knows its target: the stop rule "reached_reference", "nothing to do" and the closest step.

    Given a ``store``, the run is written to it from its first step on (not before, so
    trying settings on the Unlearn page leaves no empty runs behind): every step (with its
    measurement), undo, roll-back and reset goes through a ``StoredRunRecorder``, which is
    what lets ``reopen`` redraw the charts after a reload. Going back continues in a branch, a
    new stored run, so ``run_id`` changes then and the earlier run stays as it was. ``dataset``
    is what the store keeps to rebuild the run (``StudioSession.provenance``); ``label`` and
    ``request_ref`` name the run and the request it answers (``describe`` changes them).
    """

    def __init__(self, key: tuple, data: LabelledData, model: nn.Module, forget_ids: np.ndarray,
                 method: str, settings: dict, seed: int, *, store: RunStore | None = None,
                 dataset: dict | None = None, reference: nn.Module | None = None, label: str = "",
                 request_ref: str = "") -> None:
        self.key = key
        self.label, self.request_ref = label, request_ref
        self.method = method
        self.forget_ids = forget_ids
        self.store, self.dataset = store, dataset or {}
        self.recorder: StoredRunRecorder | None = None
        self.run = unlearning_run(data, model, forget_ids, method, settings, seed=seed, reference=reference)

    @classmethod
    def reopen(cls, key: tuple, data: LabelledData, model: nn.Module, store: RunStore, run_id: str,
               reference: nn.Module | None = None) -> LiveRun:
        """The stored run ``run_id`` rebuilt on ``model`` by replaying its steps, and recorded again from here.

        ``resume_run`` checks every replayed step against the stored one (ReplayMismatch
        otherwise) and measures the replayed steps; steps a checkpoint skipped take their
        measurements from the store (NaN in the charts where none was stored).
        """
        stored = store.get_run(run_id)
        settings = {k: v for k, v in stored.settings.items() if k not in ("method", "variant")}
        live = cls(key, data, model, np.asarray(stored.forget_ids, dtype=np.int64), stored.method, settings,
                   stored.seed, store=store, dataset=stored.dataset, reference=reference, label=stored.label,
                   request_ref=stored.request_ref)
        fresh = live.run
        live.run = resume_run(store, run_id, model, fresh.retain, fresh.forget, target=fresh.target, probe=fresh.probe)
        live.recorder = StoredRunRecorder(store, run_id, live.run)
        measured = {e["step"]: {k: v for k, v in e.items() if k in live.points[0]} for e in stored.evaluations}
        for step, point in enumerate(live.points):
            if math.isnan(point["forget_acc"]) and measured.get(step):
                live.points[step] = measured[step]
        return live

    @property
    def run_id(self) -> str | None:
        """The run's id in the store; None until its first step is stored (or without a store)."""
        return self.recorder.run_id if self.recorder else None

    @property
    def history(self) -> list[StepRecord]:
        return self.run.history_

    @property
    def reported_step(self) -> int:
        """The step a report describes: the one closest to the retrain reference, else the last."""
        closest = self.run.closest_step_
        return len(self.run.history_) if closest is None else closest

    @property
    def points(self) -> list[dict[str, float]]:
        """Accuracy and loss per split after each step; ``points[0]`` before any step."""
        return self.run.points_

    def _stepper(self) -> UnlearningRun | StoredRunRecorder:
        """What steps, undoes and resets: the recorder once the run is stored, the bare run otherwise."""
        if self.recorder is None and self.store is not None:
            self.recorder = StoredRunRecorder.start(self.store, self.run, dataset=self.dataset,
                                                    forget_ids=self.forget_ids, label=self.label,
                                                    request_ref=self.request_ref)
        return self.recorder or self.run

    def describe(self, label: str, request_ref: str) -> None:
        """Name the run and the request it answers; a stored run's label and reference change with them."""
        if (label, request_ref) == (self.label, self.request_ref):
            return
        self.label, self.request_ref = label, request_ref
        if self.recorder is not None:
            self.store.set_label(self.run_id, label, request_ref)

    def close(self) -> None:
        """Mark the stored run finished: the session has moved on to another run.

        A run deleted meanwhile (from another tab) has nothing left to mark, and a store
        that cannot be written now leaves it "running", to be found interrupted later:
        neither is worth stopping the user's change of data, model or forget set for.
        """
        if self.recorder is not None:
            with contextlib.suppress(KeyError, StoreError):
                self.recorder.finish()

    def steps(self, n: int, stop_when=()) -> Iterator[StepRecord]:
        """The run's one step loop (``UnlearningRun.steps``), stored step by step, yielding each record.

        A caller may leave the loop between two steps (to redraw, or because the user
        paused): every step yielded is already taken, measured and stored. A loop that ends
        by itself leaves the reason in ``run.stop_``.
        """
        yield from self._stepper().steps(n, stop_when)

    def step(self, n: int = 1, stop_when=()) -> Stop:
        """Take up to ``n`` steps under the stop rules ``stop_when``; returns why the loop ended.

        A refused step, a step that made the loss non-finite (undone) and every stop rule
        end it with a reason.
        """
        for _ in self.steps(n, stop_when):
            pass
        return self.run.stop_

    def undo(self) -> None:
        self._stepper().undo()

    def rollback(self, step: int) -> None:
        self._stepper().rollback(step)

    def reset(self) -> None:
        self._stepper().reset()

    def frame(self) -> pd.DataFrame:
        """One row per step (row 0: before any step) with the record's numbers and the measurements.

        ``forget_loss_gain`` and ``retain_loss_change`` are the changes since step 0 on the
        measured splits: the trade-off path.
        """
        rows = [{"step": 0}] + [{c: getattr(r, c) for c in RUN_COLUMNS} for r in self.history]
        frame = pd.concat([pd.DataFrame(rows, columns=list(RUN_COLUMNS)), pd.DataFrame(self.points)], axis=1)
        frame["forget_loss_gain"] = frame["forget_loss"] - frame["forget_loss"].iloc[0]
        frame["retain_loss_change"] = frame["retain_loss"] - frame["retain_loss"].iloc[0]
        return frame
