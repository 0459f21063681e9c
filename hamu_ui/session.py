"""One typed session per browser tab: what is loaded, the forget set, and the live run.

Everything a page needs to rebuild itself is here, under one ``st.session_state`` key, so
every page works when opened directly or reloaded. Heavy objects (datasets, trained
models, embeddings) are *not* stored here but in the process-wide caches of
``hamu_ui.cache``, looked up by the keys this session holds. The one exception is the live
run: it owns a private copy of the model that this user changes step by step, so it must
never be shared through a cache.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import streamlit as st
from torch import nn

from hamu_core.models.checkpoint import ids_hash
from hamu_core.runs.compare import Comparison
from hamu_core.config import DEFAULTS
from hamu_core.data.labelled import LabelledData
from hamu_core.runs.experiment import unlearning_run
from hamu_core.runs.ledger import Ledger
from hamu_core.models.architectures import ModelConfig
from hamu_core.runs.store import RunStore, StoredRunRecorder, StoreError, resume_run
from hamu_core.models.training import TrainConfig
from hamu_core.runs.unlearner import DEFAULT_STOP, Stop, StepRecord, UnlearningRun

SESSION_KEY = "studio"
RUN_COLUMNS = ("step", "branch", "kappa", "kappa2", "margin", "cos_rf", "radius", "constraint", "feasible",
               "degradation_unavoidable", "step_norm")


@dataclass(frozen=True)
class Upload:
    """An uploaded dataset file, kept so the dataset can be rebuilt after a cache eviction."""

    name: str
    content: bytes = field(repr=False)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.name.encode() + b"\0" + self.content).hexdigest()[:16]


class LiveRun:
    """The session's ``UnlearningRun``, stored as it goes, with the key of what it was built from.

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

    def step(self, n: int = 1, stop_when=()) -> Stop:
        """Take up to ``n`` steps under the stop rules ``stop_when``; returns why the loop ended.

        The run's one step loop (``UnlearningRun.steps``), stored step by step: a refused step,
        a step that made the loss non-finite (undone) and every stop rule end it with a reason.
        """
        for _ in self._stepper().steps(n, stop_when):
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


@dataclass
class StudioSession:
    """What one user has chosen and built; pages read and change it, nothing else does."""

    dataset: str = DEFAULTS.dataset  # a built-in dataset name, or the uploaded file's name
    upload: Upload | None = None  # the uploaded file when the dataset came from one
    model_config: ModelConfig = field(default_factory=lambda: ModelConfig(arch=DEFAULTS.arch))
    train_config: TrainConfig = field(default_factory=TrainConfig)
    forget_ids: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    method: str = DEFAULTS.method
    settings: dict[str, dict] = field(default_factory=dict)  # method → settings the user changed
    live: LiveRun | None = None
    seed: int = DEFAULTS.seed
    applied_selection: tuple = ()  # the chart selection already applied (each is applied once)
    focus_id: int | None = None  # the sample shown beside the embedding
    playing: bool = False  # the Unlearn page's Play is on
    stop_when: tuple[str, ...] = DEFAULT_STOP  # the Unlearn page's stop rules (UnlearningRun.steps)
    run_label: str = ""  # the Unlearn page's name for the run, stored with it
    request_ref: str = ""  # the request the run answers (ticket id, requester), stored with it and reported
    notices: list[tuple[str, str]] = field(default_factory=list)  # (kind, text) to show once: "error", "warning", "info", "success"
    comparison: tuple[tuple, Comparison] | None = None  # Compare page: (what it ran on, its result)
    ledger: Ledger | None = None  # Requests page: the last request ledger run, listed by the Report page
    durability_checked: tuple | None = None  # Inspect: the run state the durability check was last asked for
    audit_for: tuple | None = None  # Inspect: the run state (and bank size) the privacy audit was last asked for
    grow: tuple | None = None  # Compare, "what if the request grows": (what the two runs were built from, outcomes)
    url_read: bool = False  # the page URL's run id was read (once per browser session, or on a reopen request)

    @property
    def data_source(self) -> str:
        """Names the dataset's content for the caches: ``builtin:<name>`` or ``upload:<digest>``."""
        return f"upload:{self.upload.digest}" if self.upload else f"builtin:{self.dataset}"

    @property
    def forget_key(self) -> str:
        return ids_hash(self.forget_ids) if len(self.forget_ids) else "none"

    def choose_dataset(self, name: str, upload: Upload | None = None) -> None:
        """Switch data; the forget set, the run and the focus belonged to the old data and go."""
        if (name, upload) == (self.dataset, self.upload):
            return
        self.dataset, self.upload = name, upload
        self.forget_ids = np.empty(0, dtype=np.int64)
        self.focus_id, self.applied_selection = None, ()
        self.drop_run()

    def choose_model(self, config: ModelConfig) -> None:
        if config != self.model_config:
            self.model_config = config
            self.drop_run()

    def set_forget(self, ids) -> None:
        """Replace the forget set (sorted, unique); a run on the old set is dropped."""
        ids = np.unique(np.asarray(ids, dtype=np.int64))
        if not np.array_equal(ids, self.forget_ids):
            self.forget_ids = ids
            self.drop_run()

    def drop_run(self) -> None:
        """Leave the live run (its stored copy is marked finished; it stays reopenable)."""
        if self.live is not None:
            self.live.close()
        self.live, self.playing = None, False

    def provenance(self, data: LabelledData) -> dict:
        """What the run store keeps about data and model, enough to rebuild a run (see ``hamu_ui.runs``).

        The keys the CLI's ``experiment.dataset_record`` uses, so either can reopen the other's runs.
        """
        return {"name": self.dataset, "source": self.data_source, "upload": self.upload.name if self.upload else None,
                "fingerprint": data.fingerprint(), "model": dataclasses.asdict(self.model_config),
                "train": dataclasses.asdict(self.train_config), "seed": self.seed}

    def notify(self, kind: str, text: str) -> None:
        """Queue a message for the next time the page shows notices (callbacks cannot draw in place)."""
        self.notices.append((kind, text))

    def method_settings(self, method: str) -> dict:
        """The Studio's defaults for ``method`` overlaid with what this user changed."""
        return {**DEFAULTS.method_settings(method), **self.settings.get(method, {})}

    def run_key(self, model_key: str) -> tuple:
        settings = tuple(sorted(self.method_settings(self.method).items()))
        return (self.data_source, model_key, self.forget_key, self.method, settings, self.seed)


def get_session() -> StudioSession:
    """This tab's session, created with the Studio's defaults on first use."""
    if SESSION_KEY not in st.session_state:
        st.session_state[SESSION_KEY] = StudioSession()
    return st.session_state[SESSION_KEY]

