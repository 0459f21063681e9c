"""The run store: every run's settings, steps, evaluations and checkpoints, written as it goes.

Streamlit forgets a run when its tab reloads, and an audit trail must not: so each step is
committed in its own short transaction the moment it is taken, and a killed server loses at
most the step in flight. A run is rebuilt, never unpickled: batches are a pure function of
(seed, step), so loading the latest checkpoint and replaying the steps after it reproduces
the stored records exactly (``resume_run``), which doubles as a reproducibility check.

A stored run is an audit record: it is never emptied or rewritten. Going back (undo, roll
back, reset) continues in a new run that names its parent and the step it branched at and
holds copies of the kept steps, so the earlier run still lists, replays and reports as it was.

One SQLite file (``$HAMU_DATA_DIR/runs.sqlite`` by default) in WAL mode, so readers never
wait for the writer and several processes can share it; its format lives in store_schema.
"""

from __future__ import annotations

import copy
import json
import math
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from hamu_core.evaluation.target import Probe, ReferenceTarget
from hamu_core.models.checkpoint import data_dir
from hamu_core.rules.registry import make_rule
from hamu_core.runs.store_schema import (
    STATUSES,
    Database,
    StoreError,
    dumps,
    from_blob,
    now,
    to_blob,
    writer_alive,
    writer_token,
)
from hamu_core.runs.unlearner import DEFAULT_STOP, Batch, StepRecord, UnlearningRun

__all__ = ["ReplayMismatch", "ResumePoint", "RunStore", "StoreError", "StoredRun", "StoredRunRecorder",
           "replay_run", "resume_run"]

STORE_FILE = "runs.sqlite"  # the store's file name inside the data folder
LIST_COLUMNS = ["id", "created", "updated", "method", "dataset", "steps", "status", "label", "request_ref",
                "parent_id"]
REPORT_KEYS = ("evaluation", "verdict", "reported_step", "reported_why", "stop")  # what execute stores for a report


class ReplayMismatch(RuntimeError):
    """Replaying a stored run gave a record that differs from the stored one."""


def _load_weights(model: nn.Module, state_dict: dict[str, torch.Tensor], run_id: str) -> None:
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as err:
        raise ValueError(f"run {run_id}: the model does not match the stored weights: {err}") from None


@dataclass(frozen=True)
class StoredRun:
    """One stored run as plain data: what the app, the CLI and reports read."""

    id: str  # uuid4 hex
    created: str  # ISO 8601, UTC
    updated: str  # ISO 8601, UTC, of the last write
    status: str  # one of STATUSES
    label: str  # the user's name for the run ("" when unnamed)
    settings: dict  # the rule's settings with "method": make_rule(**settings) rebuilds the rule
    dataset: dict  # whatever identifies the data and model: name, fingerprint, configs
    forget_ids: tuple[int, ...]  # the forget set's sample ids
    seed: int
    retain_batch_size: int
    forget_batch_size: int | None  # None: the whole forget set every step
    history: tuple[dict, ...]  # StepRecord.to_dict() of steps 1..n, in order
    evaluations: tuple[dict, ...]  # {"step": k, **metrics}, by step
    request_ref: str = ""  # the request the run answers (ticket id, requester); "" when none
    parent_id: str | None = None  # the run this one branched from by undo, roll-back or reset
    branch_step: int | None = None  # the parent's step it branched at (its steps 1..branch_step are copied here)

    @property
    def method(self) -> str:
        return self.settings["method"]

    def records(self) -> list[StepRecord]:
        """The history as StepRecords, e.g. to restore an UnlearningRun's ``history_``."""
        return [StepRecord(**record) for record in self.history]


@dataclass(frozen=True)
class ResumePoint:
    """Where a run can restart: the latest checkpoint and the stored steps taken after it."""

    step: int  # steps the checkpoint covers (0 when there is none)
    state_dict: dict[str, torch.Tensor] | None  # weights after ``step`` steps; None: start from the base model
    remaining: tuple[dict, ...]  # stored records of steps step+1..n, to replay and check


def _rule_settings(stored: dict) -> dict:
    """Stored settings as ``make_rule`` takes them today.

    Runs stored before HAMU-Q and HAMU-U became two classes carry a "variant" equal to their
    method; it is implied by the method now, so it is dropped rather than refused.
    """
    return {k: v for k, v in stored.items() if k != "variant"}


class RunStore:
    """Runs in one SQLite file; ``path`` is an existing folder, a file path, or None for ``$HAMU_DATA_DIR``.

    Opening marks runs left "running" by a process that has since died as "interrupted".
    Safe to share between threads (one lock) and between processes (SQLite's locking).
    """

    def __init__(self, path: str | Path | None = None) -> None:
        folder_given = path is None or Path(path).is_dir()
        base = data_dir() if path is None else Path(path)
        self.path = (base / STORE_FILE if folder_given else base).expanduser().resolve()
        self._db = Database(self.path)
        self.interrupted_ = self.mark_interrupted()  # runs found "running" under a dead process at open

    def _missing(self, run_id: str) -> KeyError:
        return KeyError(f"no run {run_id!r} in the run store {self.path}")

    def _last_step(self, conn: sqlite3.Connection, run_id: str) -> int:
        """Steps stored for ``run_id``; KeyError naming the id when there is no such run."""
        row = conn.execute("SELECT (SELECT MAX(step) FROM steps WHERE run_id = ?) FROM runs WHERE id = ?",
                           (run_id, run_id)).fetchone()
        if row is None:
            raise self._missing(run_id)
        return row[0] or 0

    def _check_step(self, conn: sqlite3.Connection, run_id: str, step: int, what: str) -> None:
        last = self._last_step(conn, run_id)
        if not 0 <= step <= last:
            raise ValueError(f"{what} step must lie in [0, {last}] (the stored steps of run {run_id}), got {step}")

    # ----- writing ----------------------------------------------------------------------
    def create_run(self, *, settings: dict, dataset: dict, forget_ids, seed: int, retain_batch_size: int,
                   forget_batch_size: int | None = None, label: str = "", request_ref: str = "") -> str:
        """Store a new "running" run held by this process; returns its id."""
        if not isinstance(settings, dict) or "method" not in settings:
            raise ValueError(f"settings must be a dict with a 'method' key (rule.settings()), got {settings!r}")
        if not isinstance(dataset, dict):
            raise ValueError(f"dataset must be a dict, got {type(dataset).__name__}")
        if retain_batch_size < 1:
            raise ValueError(f"retain_batch_size must be >= 1, got {retain_batch_size}")
        if forget_batch_size is not None and forget_batch_size < 1:
            raise ValueError(f"forget_batch_size must be >= 1 or None, got {forget_batch_size}")
        run_id, stamp = uuid.uuid4().hex, now()
        row = (run_id, stamp, stamp, "running", writer_token(), dumps(settings), dumps(dataset),
               dumps([int(i) for i in forget_ids]), int(seed), int(retain_batch_size),
               None if forget_batch_size is None else int(forget_batch_size), str(label), str(request_ref))
        self._db.write(lambda c: c.execute(
            "INSERT INTO runs (id, created, updated, status, writer, settings, dataset, forget_ids, seed,"
            " retain_batch_size, forget_batch_size, label, request_ref) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            row))
        return run_id

    def branch_run(self, run_id: str, step: int) -> str:
        """A new "running" run continuing ``run_id`` from after ``step`` steps; returns its id.

        The parent stays as it is (finished, if this process held it). The branch copies the
        parent's settings, data, label and request reference, its steps 1..step with their
        measurements and checkpoints, so it replays and reports on its own; measurements that
        belonged to the parent's final report (``REPORT_KEYS``) are left behind.
        """
        new_id, stamp = uuid.uuid4().hex, now()

        def work(conn: sqlite3.Connection) -> str:
            self._check_step(conn, run_id, step, "branch")
            conn.execute(
                "INSERT INTO runs (id, created, updated, status, writer, settings, dataset, forget_ids, seed,"
                " retain_batch_size, forget_batch_size, label, request_ref, parent_id, branch_step)"
                " SELECT ?, ?, ?, 'running', ?, settings, dataset, forget_ids, seed, retain_batch_size,"
                " forget_batch_size, label, request_ref, id, ? FROM runs WHERE id = ?",
                (new_id, stamp, stamp, writer_token(), step, run_id))
            for table, column in (("steps", "record"), ("checkpoints", "blob")):
                conn.execute(f"INSERT INTO {table} (run_id, step, {column}) SELECT ?, step, {column} FROM {table}"
                             " WHERE run_id = ? AND step <= ?", (new_id, run_id, step))
            rows = conn.execute("SELECT step, metrics FROM evaluations WHERE run_id = ? AND step <= ?",
                                (run_id, step)).fetchall()
            kept = [(s, {k: v for k, v in json.loads(m).items() if k not in REPORT_KEYS}) for s, m in rows]
            conn.executemany("INSERT INTO evaluations (run_id, step, metrics) VALUES (?, ?, ?)",
                             [(new_id, s, dumps(m)) for s, m in kept if m])
            conn.execute("UPDATE runs SET status = 'finished' WHERE id = ? AND status = 'running' AND writer = ?",
                         (run_id, writer_token()))
            return new_id

        return self._db.write(work)

    def append_step(self, run_id: str, record: StepRecord | dict, *,
                    checkpoint: dict[str, torch.Tensor] | None = None, evaluation: dict | None = None) -> None:
        """Store the next step's record (and, when given, the weights and measurement after it) in one transaction."""
        # vars(), not to_dict(): the record is only serialised, and asdict's deep copy was most of a step's store cost
        record = vars(record) if isinstance(record, StepRecord) else dict(record)
        step = record.get("step")
        if not isinstance(step, int) or step < 1:
            raise ValueError(f"record step must be an int >= 1, got {step!r}")
        text, blob = dumps(record), None if checkpoint is None else to_blob(checkpoint)

        def work(conn: sqlite3.Connection) -> None:
            last = self._last_step(conn, run_id)
            if step != last + 1:
                raise ValueError(f"run {run_id}: step {step} does not follow the stored step {last}")
            conn.execute("INSERT INTO steps (run_id, step, record) VALUES (?, ?, ?)", (run_id, step, text))
            if blob is not None:
                conn.execute("INSERT OR REPLACE INTO checkpoints (run_id, step, blob) VALUES (?, ?, ?)",
                             (run_id, step, blob))
            if evaluation is not None:
                conn.execute("INSERT OR REPLACE INTO evaluations (run_id, step, metrics) VALUES (?, ?, ?)",
                             (run_id, step, dumps(evaluation)))
            conn.execute("UPDATE runs SET updated = ? WHERE id = ?", (now(), run_id))

        self._db.write(work)

    def add_evaluation(self, run_id: str, step: int, metrics: dict) -> None:
        """Store metrics measured after ``step``; metrics already stored for that step are merged."""
        if not isinstance(metrics, dict) or "step" in metrics:
            raise ValueError(f"metrics must be a dict without a 'step' key, got {metrics!r}")

        def work(conn: sqlite3.Connection) -> None:
            self._check_step(conn, run_id, step, "evaluation")
            row = conn.execute("SELECT metrics FROM evaluations WHERE run_id = ? AND step = ?", (run_id, step)).fetchone()
            merged = {**(json.loads(row[0]) if row else {}), **metrics}
            conn.execute("INSERT OR REPLACE INTO evaluations (run_id, step, metrics) VALUES (?, ?, ?)",
                         (run_id, step, dumps(merged)))

        self._db.write(work)

    def save_checkpoint(self, run_id: str, step: int, state_dict: dict[str, torch.Tensor]) -> None:
        """Store the weights after ``step`` stored steps (0: the base model before unlearning)."""
        blob = to_blob(state_dict)

        def work(conn: sqlite3.Connection) -> None:
            self._check_step(conn, run_id, step, "checkpoint")
            conn.execute("INSERT OR REPLACE INTO checkpoints (run_id, step, blob) VALUES (?, ?, ?)", (run_id, step, blob))

        self._db.write(work)

    def set_status(self, run_id: str, status: str) -> None:
        """Set the run's status; "running" also makes this process the run's holder."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        self._update(run_id, "status = ?" + (", writer = ?" if status == "running" else ""),
                     (status, writer_token()) if status == "running" else (status,))

    def set_label(self, run_id: str, label: str, request_ref: str | None = None) -> None:
        """Rename the run and, when given, set its request reference: metadata, not a rewrite of its steps."""
        if request_ref is None:
            self._update(run_id, "label = ?", (str(label),))
        else:
            self._update(run_id, "label = ?, request_ref = ?", (str(label), str(request_ref)))

    def _update(self, run_id: str, assignments: str, values: tuple) -> None:
        def work(conn: sqlite3.Connection) -> None:
            cursor = conn.execute(f"UPDATE runs SET {assignments}, updated = ? WHERE id = ?", (*values, now(), run_id))
            if cursor.rowcount == 0:
                raise self._missing(run_id)

        self._db.write(work)

    def delete_run(self, run_id: str) -> None:
        """Delete the run with its steps, evaluations and checkpoints."""
        def work(conn: sqlite3.Connection) -> None:
            if conn.execute("DELETE FROM runs WHERE id = ?", (run_id,)).rowcount == 0:
                raise self._missing(run_id)

        self._db.write(work)

    def mark_interrupted(self) -> list[str]:
        """Mark "running" runs whose holding process is gone as "interrupted" (resumable); their ids."""
        def work(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute("SELECT id, writer FROM runs WHERE status = 'running'").fetchall()
            dead = [run_id for run_id, writer in rows if not writer_alive(writer)]
            conn.executemany("UPDATE runs SET status = 'interrupted' WHERE id = ?", [(d,) for d in dead])
            return dead

        return self._db.write(work)

    # ----- reading ----------------------------------------------------------------------
    def get_run(self, run_id: str) -> StoredRun:
        rows = self._db.read("SELECT id, created, updated, status, label, settings, dataset, forget_ids, seed,"
                          " retain_batch_size, forget_batch_size, request_ref, parent_id, branch_step"
                          " FROM runs WHERE id = ?", (run_id,))
        if not rows:
            raise self._missing(run_id)
        (rid, created, updated, status, label, settings, dataset, forget_ids, seed, rbs, fbs, ref, parent,
         branch_step) = rows[0]
        history = self._db.read("SELECT record FROM steps WHERE run_id = ? ORDER BY step", (run_id,))
        evaluations = self._db.read("SELECT step, metrics FROM evaluations WHERE run_id = ? ORDER BY step", (run_id,))
        return StoredRun(
            id=rid, created=created, updated=updated, status=status, label=label,
            settings=_rule_settings(json.loads(settings)), dataset=json.loads(dataset),
            forget_ids=tuple(json.loads(forget_ids)), seed=seed, retain_batch_size=rbs, forget_batch_size=fbs,
            history=tuple(json.loads(r[0]) for r in history),
            evaluations=tuple({"step": step, **json.loads(m)} for step, m in evaluations),
            request_ref=ref, parent_id=parent, branch_step=branch_step,
        )

    def list_runs(self) -> pd.DataFrame:
        """One row per run, newest first: ``LIST_COLUMNS``."""
        rows = self._db.read("SELECT r.id, r.created, r.updated, r.settings, r.dataset, COUNT(s.step), r.status,"
                          " r.label, r.request_ref, r.parent_id FROM runs r LEFT JOIN steps s ON s.run_id = r.id"
                          " GROUP BY r.id ORDER BY r.created DESC")
        table = pd.DataFrame(
            [(rid, created, updated, json.loads(settings).get("method", ""), json.loads(dataset).get("name", ""),
              steps, status, label, ref, parent)
             for rid, created, updated, settings, dataset, steps, status, label, ref, parent in rows],
            columns=LIST_COLUMNS,
        )
        for column in ("created", "updated"):
            table[column] = pd.to_datetime(table[column], utc=True, format="ISO8601")
        return table

    def checkpoint_steps(self, run_id: str) -> list[int]:
        """Steps that have stored weights, ascending (0: the base model)."""
        if not self._db.read("SELECT 1 FROM runs WHERE id = ?", (run_id,)):
            raise self._missing(run_id)
        return [r[0] for r in self._db.read("SELECT step FROM checkpoints WHERE run_id = ? ORDER BY step", (run_id,))]

    def load_checkpoint(self, run_id: str, step: int | None = None) -> tuple[int, dict[str, torch.Tensor]]:
        """(its step, weights) of the latest checkpoint at or before ``step`` (None: the latest)."""
        steps = [s for s in self.checkpoint_steps(run_id) if step is None or s <= step]
        if not steps:
            raise KeyError(f"run {run_id} has no checkpoint at or before step {step}")
        blob = self._db.read("SELECT blob FROM checkpoints WHERE run_id = ? AND step = ?", (run_id, steps[-1]))[0][0]
        state = from_blob(blob, f"run store {self.path}: checkpoint {steps[-1]} of run {run_id}")
        return steps[-1], state

    def resume_point(self, run_id: str) -> ResumePoint:
        """The latest checkpoint and the stored steps after it: what ``replay_run`` needs to resume."""
        history = self.get_run(run_id).history
        if not self.checkpoint_steps(run_id):
            return ResumePoint(0, None, history)
        step, state = self.load_checkpoint(run_id)
        return ResumePoint(step, state, history[step:])

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _canonical(value) -> str:
    return dumps(value, sort_keys=True)


def replay_run(stored: StoredRun, model: nn.Module | Callable[[], nn.Module], retain: Batch, forget: Batch,
               *, start: ResumePoint | None = None, target: ReferenceTarget | None = None,
               probe: Probe | None = None) -> UnlearningRun:
    """Rebuild ``stored`` on ``model`` (its base weights, or a factory) and re-run its steps.

    From ``start`` (a checkpoint) when given, else from step 1. Each replayed record must
    equal the stored one in every field but ``wall_ms``, or ReplayMismatch names the step
    and fields. The returned run holds the full history and can go on stepping. With a
    ``target`` or ``probe`` the run measures as it replays; the steps a checkpoint skipped
    get NaN points (the caller may fill them from the stored evaluations).
    """
    base = model if isinstance(model, nn.Module) else model()
    run = UnlearningRun(make_rule(**stored.settings), model=base, retain=retain, forget=forget, seed=stored.seed,
                        retain_batch_size=stored.retain_batch_size, forget_batch_size=stored.forget_batch_size,
                        target=target, probe=probe)
    start = start or ResumePoint(0, None, stored.history)
    if start.state_dict is not None:
        _load_weights(run.model_, start.state_dict, stored.id)
    run.history_.extend(StepRecord(**record) for record in stored.history[:start.step])
    if run.probe is not None and start.step:
        run.points_[1:] = [dict.fromkeys(run.points_[0], math.nan) for _ in range(start.step - 1)]
        run.remeasure()
    for want in start.remaining:
        got = run.step().to_dict()
        differ = sorted(k for k in set(got) | set(want) if k != "wall_ms" and _canonical(got.get(k)) != _canonical(want.get(k)))
        if differ:
            raise ReplayMismatch(f"run {stored.id}: replayed step {got['step']} differs from the stored one in {differ}")
    return run


def resume_run(store: RunStore, run_id: str, model: nn.Module | Callable[[], nn.Module],
               retain: Batch, forget: Batch, *, target: ReferenceTarget | None = None,
               probe: Probe | None = None) -> UnlearningRun:
    """The stored run rebuilt in memory from its latest checkpoint, replayed and checked.

    ``model`` supplies the architecture; the stored base weights (checkpoint 0) replace its
    weights when present, so the original model the run unlearns from is the stored one.
    """
    stored = store.get_run(run_id)
    base = model if isinstance(model, nn.Module) else model()
    if 0 in store.checkpoint_steps(run_id):
        base = copy.deepcopy(base)
        _load_weights(base, store.load_checkpoint(run_id, 0)[1], run_id)
    return replay_run(stored, base, retain, forget, start=store.resume_point(run_id), target=target, probe=probe)


class StoredRunRecorder:
    """Keeps the stored run equal to the in-memory ``history_`` through steps, undo, roll-back and reset.

    The app and the CLI step through this object instead of the run; every
    ``checkpoint_every`` steps the weights are stored with the step, bounding a resume's replay.
    Going back never rewrites the stored run: it continues in a branch (``RunStore.branch_run``)
    and ``run_id`` names the branch from then on.
    """

    def __init__(self, store: RunStore, run_id: str, run: UnlearningRun, *, checkpoint_every: int = 10) -> None:
        if checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
        self.store, self.run_id, self.run, self.checkpoint_every = store, run_id, run, checkpoint_every
        stored = len(store.get_run(run_id).history)
        if stored > len(run.history_):
            raise ValueError(f"run {run_id} has {stored} stored steps but the in-memory run has "
                             f"{len(run.history_)}: rebuild it with resume_run")
        # Reopening a run to read it must not change its record: this process holds it ("running",
        # with a fresh time) only from the first step it stores.
        status = store.get_run(run_id).status
        self.held = status == "running" and stored == 0
        if status == "interrupted":  # reopening an interrupted run is resuming it: take it over now
            self._hold()
        for record in run.history_[stored:]:
            self._hold()
            store.append_step(run_id, record)
        if len(run.history_) > stored:
            store.save_checkpoint(run_id, len(run.history_), run.model_.state_dict())

    def _hold(self) -> None:
        """Mark the run as held by this process, once, before its first new step is stored."""
        if not self.held:
            self.store.set_status(self.run_id, "running")
            self.held = True

    @classmethod
    def start(cls, store: RunStore, run: UnlearningRun, *, dataset: dict, forget_ids, label: str = "",
              request_ref: str = "", checkpoint_every: int = 10) -> StoredRunRecorder:
        """Store ``run`` as a new run (its base weights as checkpoint 0) and record it from now on."""
        run_id = store.create_run(settings=run.rule.settings(), dataset=dataset, forget_ids=forget_ids, seed=run.seed,
                                  retain_batch_size=run.retain_batch_size, forget_batch_size=run.forget_batch_size,
                                  label=label, request_ref=request_ref)
        store.save_checkpoint(run_id, 0, run.original_.state_dict())
        if run.points_:
            store.add_evaluation(run_id, 0, run.points_[0])
        return cls(store, run_id, run, checkpoint_every=checkpoint_every)

    def _append(self, record: StepRecord) -> None:
        self._hold()
        due = record.step % self.checkpoint_every == 0
        point = self.run.points_[record.step] if len(self.run.points_) > record.step else None
        try:
            self.store.append_step(self.run_id, record, checkpoint=self.run.model_.state_dict() if due else None,
                                   evaluation=point)
        except BaseException:
            self.run.undo()  # the step was not stored, so it must not stay in memory either
            raise

    def steps(self, n: int, stop_when=DEFAULT_STOP) -> Iterator[StepRecord]:
        """``run.steps(n, stop_when)``, storing each step (with its measurement) as it is taken."""
        for record in self.run.steps(n, stop_when):
            self._append(record)
            yield record

    def undo(self) -> None:
        """Undo the last step; the stored run keeps it, and a branch at the step before goes on."""
        self.run.undo()
        self._branch()

    def rollback(self, step: int) -> None:
        """Back to the weights after ``step`` steps, going on in a branch; the stored run keeps its later steps."""
        self.run.rollback(step)
        self._branch()

    def reset(self) -> None:
        """Back to the original model, going on in an empty branch; the stored run keeps every step."""
        self.run.reset()
        self._branch()

    def _branch(self) -> None:
        """Continue in a branch of the stored run at the in-memory step, its weights stored as a checkpoint there."""
        step = len(self.run.history_)
        self.run_id = self.store.branch_run(self.run_id, step)
        self.store.save_checkpoint(self.run_id, step, self.run.model_.state_dict())

    def evaluate(self, metrics: dict) -> None:
        """Store metrics measured on the current weights (after the latest step)."""
        self.store.add_evaluation(self.run_id, len(self.run.history_), metrics)

    def finish(self, status: str = "finished") -> None:
        self.store.set_status(self.run_id, status)
