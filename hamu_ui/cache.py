"""Every process-wide cache of the Studio, in one file.

Only pure, argument-keyed work is cached, and nothing a cache returns is ever changed: a
cached base model is read by every session, and a run deep-copies it before stepping.
Arguments whose names start with ``_`` are not hashed by Streamlit; each such function
therefore also takes the short string keys (data source, model fingerprint, forget-set
hash) that decide its result. Caches are shared by every session and every ``AppTest``
in the process, so nothing may depend on a cache being cold.

Trained models are kept in a small store rather than behind ``st.cache_resource``
directly: training reports progress to a bar the page drew, and an element updated from
inside a cached function would be replayed on a later cache hit, where that bar does not
exist. Weights are also cached on disk by ``hamu_core.models.checkpoint``.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st
from torch import nn

from hamu_core.rules import gradients as G
from hamu_core.audit.attacks import Audit, audit, unlearn_shadows
from hamu_core.data.builtin import BUILTIN_DATASETS, available_datasets
from hamu_core.models.checkpoint import cached_train, data_dir, ids_hash
from hamu_core.data.labelled import LabelledData
from hamu_core.evaluation.embedding import embed, linked_embeddings, nearest_retain_neighbours, warm_umap
from hamu_core.evaluation.hardness import overall_cosine, per_sample_hardness
from hamu_core.evaluation.metrics import Evaluation, SampleOutputs, evaluate, sample_outputs, split_ids
from hamu_core.models.architectures import ModelConfig, model_fingerprint
from hamu_core.audit.shadows import ShadowBank, build_bank
from hamu_core.runs.store import STORE_FILE, RunStore
from hamu_core.models.training import Progress, TrainConfig
from hamu_core.evaluation.target import measure, measured_splits
from hamu_core.data.uploads import load_upload
from hamu_ui.session import Upload

# Points drawn on a map (a seeded subset beyond this). PCA maps every sample, so a lasso selects
# all of them in its region; t-SNE and UMAP map only the drawn subset.
EMBED_MAX_POINTS = {"pca": 10_000, "tsne": 2_000, "umap": 5_000}
# The map choices as offered to users; UMAP's first fit in a process compiles numba code
# (tens of seconds on two cores, bench/bench_eval.py), later fits take seconds.
MAP_CHOICES = {"pca": "PCA (seconds; once per model)", "tsne": "t-SNE (seconds)", "umap": "UMAP (first use compiles: up to a minute)"}
HARDNESS_MAX_POINTS = 5_000  # samples scored for hardness, and behind g_r (a seeded subset beyond this)
MODEL_STORE_SIZE = 24  # trained models kept in memory (one original, one retrain per forget set)
BANK_STORE_SIZE = 4  # shadow banks (and their unlearned copies) kept in memory: 16 models each
WORKERS = 1  # processes that train or unlearn shadows: on digits one beat two (3.5 s vs 10 s, bench_privacy)


@st.cache_resource(show_spinner=False)
def _run_store_in(folder: str) -> RunStore:
    return RunStore(Path(folder) / STORE_FILE)


def run_store() -> RunStore:
    """The run store in the data folder (``$HAMU_DATA_DIR``), opened once per process and folder.

    Keyed by the folder, so a changed ``HAMU_DATA_DIR`` (each test's own) opens its own
    store. Raises ``StoreError`` when the folder or file is unusable; that is never cached.
    """
    return _run_store_in(str(data_dir().expanduser().resolve()))


@st.cache_data(show_spinner=False, ttl=600)
def dataset_availability() -> dict[str, str | None]:
    """Built-in dataset name → None when loadable here, else the reason (checked without loading)."""
    return available_datasets()


@st.cache_resource(show_spinner=False, max_entries=4)
def builtin_dataset(name: str) -> LabelledData:
    return BUILTIN_DATASETS[name]()


@st.cache_resource(show_spinner=False, max_entries=4)
def uploaded_dataset(digest: str, _upload: Upload) -> LabelledData:
    """The parsed upload (``digest`` names its content); raises DataError, which is never cached."""
    return load_upload(_upload.content, _upload.name)


@dataclass(frozen=True, eq=False)
class TrainedModel:
    """A read-only trained model and the fingerprint of its weights (the key of every later cache)."""

    model: nn.Module
    key: str


class _Resources:
    """A process-wide, size-bounded store of read-only heavy objects that are built with progress reports.

    ``st.cache_resource`` replays the elements a cached function drew, so a progress bar
    drawn from inside one breaks on the next run; what trains with a visible progress bar is
    kept here instead, and built outside any Streamlit cache.
    """

    def __init__(self, size: int) -> None:
        self.lock = threading.Lock()
        self.size = size
        self.items: OrderedDict[tuple, object] = OrderedDict()

    def __contains__(self, key: tuple) -> bool:
        with self.lock:
            return key in self.items

    def get_or_make(self, key: tuple, make):
        """The object under ``key``, made (outside the lock, so progress can be shown) when absent."""
        with self.lock:
            found = self.items.get(key)
        if found is not None:
            return found
        made = make()
        with self.lock:
            self.items[key] = made
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return made


@st.cache_resource(show_spinner=False)
def _resources(kind: str, size: int) -> _Resources:
    return _Resources(size)


def _model_key(source: str, model_config: ModelConfig, train_config: TrainConfig, role: str,
               forget_ids: np.ndarray | None) -> tuple:
    return source, role, model_config, train_config, ids_hash(forget_ids) if role == "retrain" else ""


def is_trained(source: str, model_config: ModelConfig, train_config: TrainConfig) -> bool:
    """Whether the original model for this data and recipe is in memory (never trains)."""
    return _model_key(source, model_config, train_config, "original", None) in _resources("models", MODEL_STORE_SIZE)


def trained_model(source: str, data: LabelledData, model_config: ModelConfig, train_config: TrainConfig,
                  role: str, forget_ids: np.ndarray | None = None, progress: Progress | None = None) -> TrainedModel:
    """The ``role`` model ("original" or "retrain" on the retain set), trained once per process.

    ``progress`` is only called when the model is not in memory yet.
    """
    def make() -> TrainedModel:
        ids = forget_ids if role == "retrain" else None  # the original is trained without a forget set
        model = cached_train(data, ids, model_config, train_config, role, progress)
        return TrainedModel(model, model_fingerprint(model))

    key = _model_key(source, model_config, train_config, role, forget_ids)
    return _resources("models", MODEL_STORE_SIZE).get_or_make(key, make)


def shadow_bank(source: str, data: LabelledData, model_config: ModelConfig, train_config: TrainConfig, k: int,
                progress: Progress | None = None) -> ShadowBank:
    """``shadows.build_bank`` once per process (it is also kept on disk, and resumes an interrupted build)."""
    return _resources("banks", BANK_STORE_SIZE).get_or_make(
        (source, model_config, train_config, k),
        lambda: build_bank(data, model_config, train_config, k=k, workers=WORKERS, progress=progress))


def unlearned_shadows(source: str, bank: ShadowBank, bank_key: tuple, data: LabelledData, forget_ids: np.ndarray,
                      method: str, settings: dict, steps: int, seed: int,
                      progress: Progress | None = None) -> tuple[nn.Module, ...]:
    """``attacks.unlearn_shadows`` once per process: U-LiRA's shadows after the run's request."""
    key = (source, bank_key, ids_hash(forget_ids), method, json.dumps(settings, sort_keys=True), steps, seed)
    return _resources("unlearned shadows", BANK_STORE_SIZE).get_or_make(
        key, lambda: unlearn_shadows(bank, data, forget_ids, method, settings, steps, seed, workers=WORKERS,
                                     progress=progress))


@st.cache_data(show_spinner=False, max_entries=16)
def embedding(source: str, model_key: str, method: str, seed: int, _data: LabelledData,
              _model: nn.Module) -> pd.DataFrame:
    """The 2-D map of the model's features (columns id, x, y, label, class_name, split)."""
    if method == "umap":
        warm_umap()
    return embed(_model, _data, method=method, seed=seed, max_points=EMBED_MAX_POINTS[method])


@dataclass(frozen=True)
class Hardness:
    """Hardness of training samples against the current retain gradient g_r (HAMU_SPEC, Notation)."""

    samples: pd.DataFrame  # columns id, kappa, cos: every scored training sample
    kappa: float  # aggregate κ = g_r·g_f of the forget set (NaN without one)
    cos: float  # its angle form cos θ_rf (NaN without a forget set)


@st.cache_data(show_spinner=False, max_entries=32)
def hardness(source: str, model_key: str, forget_key: str, seed: int, _data: LabelledData,
             _model: nn.Module, _forget_ids: np.ndarray) -> Hardness:
    """κ_i and cos θ_i of training samples against the gradient g_r of the retain set (train minus forget).

    Scoring every training sample, not only the forget set, lets the embedding show which
    samples would be hard to forget and lets "hardest k" choose among them.
    """
    rng = np.random.default_rng(seed)
    retain, scored = np.setdiff1d(_data.train_ids, _forget_ids), _data.train_ids
    if len(retain) > HARDNESS_MAX_POINTS:
        retain = np.sort(rng.choice(retain, HARDNESS_MAX_POINTS, replace=False))
    if len(scored) > HARDNESS_MAX_POINTS:
        scored = np.sort(rng.choice(scored, HARDNESS_MAX_POINTS, replace=False))
    _, g_retain = G.loss_and_gradients(_model, *_data.tensors(retain))
    result = per_sample_hardness(_model, *_data.tensors(scored), g_retain)
    samples = pd.DataFrame({"id": scored, "kappa": result.kappa.numpy(), "cos": result.cos.numpy()})
    if len(_forget_ids) == 0:
        return Hardness(samples, float("nan"), float("nan"))
    x_forget, y_forget = _data.tensors(_forget_ids)
    aggregate = per_sample_hardness(_model, x_forget, y_forget, g_retain, with_cos=False).aggregate_kappa
    _, g_forget = G.loss_and_gradients(_model, x_forget, y_forget)
    return Hardness(samples, aggregate, overall_cosine(g_retain, g_forget))


@st.cache_data(show_spinner=False, max_entries=16)
def retain_neighbours(source: str, model_key: str, forget_key: str, k: int, _data: LabelledData,
                      _model: nn.Module, _forget_ids: np.ndarray) -> pd.DataFrame:
    """Each forget sample's ``k`` most similar retain samples in the model's feature space."""
    return nearest_retain_neighbours(_model, _data, _forget_ids, k=k)


@st.cache_data(show_spinner=False, max_entries=32)
def model_point(source: str, model_key: str, forget_key: str, seed: int, _data: LabelledData,
                _model: nn.Module, _forget_ids: np.ndarray) -> dict[str, float]:
    """Accuracy and loss of a model on the same measured splits a live run uses (its reference line)."""
    return measure(_model, measured_splits(_data, _forget_ids, seed))


@st.cache_data(show_spinner=False, max_entries=16)
def evaluation(source: str, model_key: str, retrain_key: str, original_key: str, forget_key: str, seed: int,
               _data: LabelledData, _model: nn.Module, _retrain: nn.Module | None, _original: nn.Module,
               _forget_ids: np.ndarray) -> Evaluation:
    """``metrics.evaluate`` of a model on every sample, against the retrain reference (``retrain_key`` "none": without)."""
    return evaluate(_model, _data, _forget_ids, retrain=_retrain, original=_original, seed=seed)


@st.cache_data(show_spinner=False, max_entries=32)
def test_accuracy(source: str, model_key: str, _data: LabelledData, _model: nn.Module) -> float:
    """A model's accuracy on the held-out test split."""
    return sample_outputs(_model, _data, _data.test_ids).accuracy


@st.cache_data(show_spinner=False, max_entries=32)
def split_outputs(source: str, model_key: str, forget_key: str, _data: LabelledData, _model: nn.Module,
                  _forget_ids: np.ndarray) -> dict[str, SampleOutputs]:
    """A model's per-sample loss, entropy and prediction on every forget, retain and test sample."""
    return {split: sample_outputs(_model, _data, ids) for split, ids in split_ids(_data, _forget_ids).items()}


@st.cache_data(show_spinner=False, max_entries=16)
def linked_embedding(source: str, key_a: str, key_b: str, forget_key: str, method: str, seed: int,
                     _data: LabelledData, _model_a: nn.Module, _model_b: nn.Module,
                     _forget_ids: np.ndarray) -> pd.DataFrame:
    """Two models' maps of the same samples, b aligned onto a (``embedding.linked_embeddings``).

    Beyond ``EMBED_MAX_POINTS`` a seeded subset is mapped in which forget samples fill at
    most half the room, so there is always context around them.
    """
    if method == "umap":
        warm_umap()
    rng, limit = np.random.default_rng(seed), EMBED_MAX_POINTS[method]
    forget, others = np.asarray(_forget_ids), np.setdiff1d(_data.ids, _forget_ids)
    if len(forget) + len(others) > limit:
        forget = rng.choice(forget, min(len(forget), limit // 2), replace=False)
        others = rng.choice(others, min(len(others), limit - len(forget)), replace=False)
    return linked_embeddings(_model_a, _model_b, _data, np.union1d(forget, others), method=method, seed=seed)


@st.cache_data(show_spinner=False, max_entries=8)
def privacy_audit(source: str, model_keys: tuple, forget_key: str, shadows_key: tuple, seed: int,
                  _models: dict[str, nn.Module], _data: LabelledData, _forget_ids: np.ndarray, _bank: ShadowBank,
                  _unlearned: tuple[nn.Module, ...]) -> Audit:
    """``attacks.audit`` of the original, current and retrained models, keyed by their weights and the shadows."""
    return audit(_models, _data, _forget_ids, _bank, unlearned_shadows=_unlearned, seed=seed)
