"""One typed session per browser tab: what is loaded, the forget set, and the live run.

Everything a page needs to rebuild itself is here, under one ``st.session_state`` key, so
every page works when opened directly or reloaded. Heavy objects (datasets, trained
models, embeddings) are *not* stored here but in the process-wide caches of
``hamu_ui.cache``, looked up by the keys this session holds. The one exception is the live
run (``hamu_core.runs.live.LiveRun``): it owns a private copy of the model that this user
changes step by step, so it must never be shared through a cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field

import numpy as np
import streamlit as st

from hamu_core.config import DEFAULTS
from hamu_core.data.labelled import LabelledData
from hamu_core.models.architectures import ModelConfig
from hamu_core.models.checkpoint import ids_hash
from hamu_core.models.training import TrainConfig
from hamu_core.runs.compare import Comparison
from hamu_core.runs.ledger import Ledger
from hamu_core.runs.live import LiveRun
from hamu_core.runs.unlearner import DEFAULT_STOP

SESSION_KEY = "studio"


@dataclass(frozen=True)
class Upload:
    """An uploaded dataset file, kept so the dataset can be rebuilt after a cache eviction."""

    name: str
    content: bytes = field(repr=False)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.name.encode() + b"\0" + self.content).hexdigest()[:16]


@dataclass
class StudioSession:
    """What one user has chosen and built; pages read and change it, nothing else does."""

    dataset: str = DEFAULTS.dataset  # a built-in dataset name, or the uploaded file's name
    upload: Upload | None = None  # the uploaded file when the dataset came from one
    model_config: ModelConfig = field(default_factory=lambda: ModelConfig(arch=DEFAULTS.arch))
    train_config: TrainConfig = field(default_factory=TrainConfig)
    device: str = "auto"  # where models train and runs step: one of hamu_core.models.device.DEVICE_CHOICES
    own_model: Upload | None = None  # an uploaded .safetensors or .pt2 model used as the original instead of training
    forget_ids: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    method: str = DEFAULTS.method
    settings: dict[str, dict] = field(default_factory=dict)  # method → settings the user changed
    live: LiveRun | None = None
    seed: int = DEFAULTS.seed
    applied_selection: tuple = ()  # the chart selection already applied (each is applied once)
    focus_id: int | None = None  # the sample shown beside the embedding
    playing: bool = False  # the Unlearn page's Play is on
    running: tuple[int, int] | None = None  # the Unlearn page's Run N under way: (steps when it began, steps to reach)
    slice_ended: float | None = None  # when Run N's last slice of steps ended (time.perf_counter), to pace the next
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
            if self.live is not None:
                self.set_aside("the model changed", forget_set=False)
            self.drop_run()

    def set_aside(self, why: str, *, forget_set: bool = True) -> None:
        """Say, before a user's choice drops the run (and the forget set), that a stored run stays reopenable."""
        dropped = ([f"the forget set ({len(self.forget_ids)} samples)"] if forget_set and len(self.forget_ids) else []) + (
            ["the run"] if self.live is not None else [])
        if not dropped:
            return
        kept = (f" Run `{self.live.run_id}` ({len(self.live.history)} steps) stays stored: reopen it from the run "
                "list on **Report**." if self.live is not None and self.live.run_id else "")
        verb = "start" if len(dropped) > 1 else "starts"
        self.notify("info", f"Since {why}, {' and '.join(dropped)} {verb} afresh." + kept)

    def choose_device(self, device: str) -> None:
        """Compute somewhere else; the live run's model lives on the old device and goes."""
        if device != self.device:
            self.device = device
            self.drop_run()

    def choose_own_model(self, upload: Upload | None) -> None:
        """Use an uploaded model as the original (None: train the Studio's own); a run on the old model goes."""
        if upload != self.own_model:
            self.own_model = upload
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
        self.live = None
        self.halt()

    @property
    def active(self) -> bool:
        """Whether Play or Run N is stepping the live run on the Unlearn page's timer."""
        return self.playing or self.running is not None

    def halt(self) -> None:
        """Stop Play and Run N; the steps already taken stay."""
        self.playing, self.running = False, None

    def provenance(self, data: LabelledData) -> dict:
        """What the run store keeps about data and model, enough to rebuild a run (see ``hamu_ui.runs``).

        The keys the CLI's ``experiment.dataset_record`` uses, so either can reopen the other's runs.
        """
        return {"name": self.dataset, "source": self.data_source, "upload": self.upload.name if self.upload else None,
                "fingerprint": data.fingerprint(), "model": dataclasses.asdict(self.model_config),
                "train": dataclasses.asdict(self.train_config), "seed": self.seed,
                "model_file": self.own_model.name if self.own_model else None}

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

