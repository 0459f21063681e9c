"""One typed session per browser tab: what is loaded, the forget set, and the live run.

Everything a page needs to rebuild itself is here, under one ``st.session_state`` key, so
every page works when opened directly or reloaded. Heavy objects (datasets, trained
models, embeddings) are *not* stored here but in the process-wide caches of
``hamu_ui.cache``, looked up by the keys this session holds. The one exception is the live
run: it owns a private copy of the model that this user changes step by step, so it must
never be shared through a cache.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import streamlit as st
import torch
from torch import nn

from hamu_core.checkpoint import ids_hash
from hamu_core.config import DEFAULTS
from hamu_core.data import LabelledData
from hamu_core.methods import make_rule
from hamu_core.metrics import SampleOutputs, forward_batched, split_ids
from hamu_core.models import ModelConfig
from hamu_core.training import TrainConfig
from hamu_core.unlearner import StepRecord, StepRefused, UnlearningRun

SESSION_KEY = "studio"
MEASURE_LIMIT = 2000  # samples per split measured after every step (a seeded subset beyond this)
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


Probe = dict[str, tuple[np.ndarray, torch.Tensor, torch.Tensor]]  # split → (ids, inputs, labels)


def measured_splits(data: LabelledData, forget_ids: np.ndarray, seed: int) -> Probe:
    """Forget, retain and test samples, each cut to a seeded subset of ``MEASURE_LIMIT`` so a step stays cheap."""
    rng = np.random.default_rng(seed)
    probe = {}
    for split, ids in split_ids(data, forget_ids).items():
        if len(ids) > MEASURE_LIMIT:
            ids = np.sort(rng.choice(ids, MEASURE_LIMIT, replace=False))
        probe[split] = (ids, *data.tensors(ids))
    return probe


def measure(model: nn.Module, probe: Probe) -> dict[str, float]:
    """Accuracy and mean loss of ``model`` on each split (no-grad passes), keys like ``forget_acc``."""
    point = {}
    for split, (ids, x, y) in probe.items():
        outputs = SampleOutputs.from_logits(ids, forward_batched(model, x), y)
        point[f"{split}_acc"] = outputs.accuracy
        point[f"{split}_loss"] = float(outputs.loss.mean())
    return point


class LiveRun:
    """An ``UnlearningRun`` plus the accuracy and loss measured after every step.

    ``key`` records what the run was built from (data, model, forget set, method, settings);
    the page starts a new run when that changes. ``points[k]`` is the measurement after
    step k, ``points[0]`` the original model's, so undo and reset only trim the list.
    """

    def __init__(self, key: tuple, data: LabelledData, model: nn.Module, forget_ids: np.ndarray,
                 method: str, settings: dict, seed: int) -> None:
        self.key = key
        self.run_id = uuid.uuid4().hex[:8]
        self.method = method
        self.probe = measured_splits(data, forget_ids, seed)
        retain = np.setdiff1d(data.train_ids, forget_ids)
        self.run = UnlearningRun(make_rule(method, **settings), model=model, retain=data.tensors(retain),
                                 forget=data.tensors(forget_ids), seed=seed,
                                 retain_batch_size=DEFAULTS.retain_batch_size)
        self.points = [measure(self.run.model_, self.probe)]

    @property
    def history(self) -> list[StepRecord]:
        return self.run.history_

    def step(self, n: int = 1) -> str | None:
        """Take up to ``n`` steps, measuring after each; returns why it stopped early, if it did.

        A refused step (a stop option fired) ends the batch with its reason; a step whose
        loss became NaN raises FloatingPointError after the run has undone it.
        """
        for _ in range(n):
            try:
                self.run.step()
            except StepRefused as refusal:
                return str(refusal)
            self.points.append(measure(self.run.model_, self.probe))
        return None

    def undo(self) -> None:
        self.run.undo()
        self.points.pop()

    def reset(self) -> None:
        self.run.reset()
        del self.points[1:]

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
    notices: list[tuple[str, str]] = field(default_factory=list)  # (kind, text) to show once: "error", "warning", "info"

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
        self.live, self.focus_id, self.applied_selection, self.playing = None, None, (), False

    def choose_model(self, config: ModelConfig) -> None:
        if config != self.model_config:
            self.model_config, self.live, self.playing = config, None, False

    def set_forget(self, ids) -> None:
        """Replace the forget set (sorted, unique); a run on the old set is dropped."""
        ids = np.unique(np.asarray(ids, dtype=np.int64))
        if not np.array_equal(ids, self.forget_ids):
            self.forget_ids, self.live, self.playing = ids, None, False

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

