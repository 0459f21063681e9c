"""Every process-wide cache of the Studio, in one file: thin wrappers over core functions.

Only pure, argument-keyed work is cached, and nothing a cache returns is ever changed: a
cached base model is read by every session, and a run deep-copies it before stepping.
Streamlit computes every key itself (``HASH_FUNCS``): a dataset is hashed by its content
fingerprint, a model by the fingerprint of its weights (``TrainedModel`` computes it, it
is never passed in), a shadow bank by its draw and weights, an upload by its digest. So no
caller can hand a cache one object under another object's key. Caches are shared by every
session and every ``AppTest`` in the process, so nothing may depend on a cache being cold.

Trained models are kept in a small store rather than behind ``st.cache_resource``
directly: training reports progress to a bar the page drew, and an element updated from
inside a cached function would be replayed on a later cache hit, where that bar does not
exist. Weights are also cached on disk by ``hamu_core.models.checkpoint``.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from hamu_core.audit.attacks import Audit, audit, unlearn_shadows
from hamu_core.audit.durability import quantization_table, relearning_curves
from hamu_core.audit.shadows import ShadowBank, build_bank
from hamu_core.data.builtin import BUILTIN_DATASETS, available_datasets
from hamu_core.data.labelled import LabelledData
from hamu_core.data.uploads import load_upload
from hamu_core.evaluation.embedding import embed, linked_map, nearest_retain_neighbours, warm_umap
from hamu_core.evaluation.hardness import Hardness, training_set_hardness
from hamu_core.evaluation.metrics import Evaluation, SampleOutputs, evaluate, sample_outputs, split_ids
from hamu_core.evaluation.target import measure, measured_splits
from hamu_core.models.architectures import ModelConfig, TrainedModel
from hamu_core.models.checkpoint import cached_train, data_dir, ids_hash
from hamu_core.models.imported import ImportedModel, load_model_bytes
from hamu_core.models.training import Progress, TrainConfig
from hamu_core.runs.ledger import Ledger, parse_requests, run_ledger
from hamu_core.runs.store import STORE_FILE, RunStore
from hamu_ui.session import Upload

HASH_FUNCS = {
    LabelledData: LabelledData.fingerprint,
    TrainedModel: lambda model: model.key,
    ShadowBank: ShadowBank.fingerprint,
    Upload: lambda upload: upload.digest,
}

# Points drawn on a map (a seeded subset beyond this). PCA maps every sample, so a lasso selects
# all of them in its region; t-SNE and UMAP map only the drawn subset.
EMBED_MAX_POINTS = {"pca": 10_000, "tsne": 2_000, "umap": 5_000}
# The map choices as offered to users; UMAP's first fit in a process compiles numba code
# (tens of seconds on two cores, bench/bench_eval.py), later fits take seconds.
MAP_CHOICES = {"pca": "PCA (seconds; once per model)", "tsne": "t-SNE (seconds)", "umap": "UMAP (first use compiles: up to a minute)"}
HARDNESS_MAX_POINTS = 5_000  # samples scored for hardness, and behind g_r (a seeded subset beyond this)
MODEL_STORE_SIZE = 24  # trained models kept in memory (one original, one retrain per forget set)
LEDGER_STORE_SIZE = 8  # answered request lists kept in memory
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


@st.cache_resource(show_spinner=False, max_entries=4, hash_funcs=HASH_FUNCS)
def uploaded_dataset(upload: Upload) -> LabelledData:
    """The parsed upload, keyed by its content digest; raises DataError, which is never cached."""
    return load_upload(upload.content, upload.name)


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


def _model_key(data: LabelledData, model_config: ModelConfig, train_config: TrainConfig, role: str,
               forget_ids: np.ndarray | None, device: str) -> tuple:
    forget = ids_hash(forget_ids) if role == "retrain" else ""
    return data.fingerprint(), role, model_config, train_config, forget, device


def is_trained(data: LabelledData, model_config: ModelConfig, train_config: TrainConfig, device: str = "auto") -> bool:
    """Whether the original model for this data, recipe and device is in memory (never trains)."""
    key = _model_key(data, model_config, train_config, "original", None, device)
    return key in _resources("models", MODEL_STORE_SIZE)


def trained_model(data: LabelledData, model_config: ModelConfig, train_config: TrainConfig, role: str,
                  forget_ids: np.ndarray | None = None, progress: Progress | None = None, *,
                  device: str = "auto") -> TrainedModel:
    """The ``role`` model ("original" or "retrain" on the retain set) on ``device``, trained once per process.

    ``progress`` is only called when the model is not in memory yet.
    """
    ids = forget_ids if role == "retrain" else None  # the original is trained without a forget set
    return _resources("models", MODEL_STORE_SIZE).get_or_make(
        _model_key(data, model_config, train_config, role, forget_ids, device),
        lambda: TrainedModel(cached_train(data, ids, model_config, train_config, role, progress, device=device)))


def own_model(upload: Upload, data: LabelledData, model_config: ModelConfig, device: str = "auto") -> ImportedModel:
    """The uploaded model checked against ``data`` (``imported.load_model_bytes``), once per process.

    Raises ``ModelFileError`` naming why a file does not fit; a refusal is not cached.
    """
    return _resources("models", MODEL_STORE_SIZE).get_or_make(
        ("own", upload.digest, data.fingerprint(), model_config, device),
        lambda: load_model_bytes(upload.content, upload.name, data, model_config, device=device))


def shadow_bank(data: LabelledData, model_config: ModelConfig, train_config: TrainConfig, k: int,
                progress: Progress | None = None, *, device: str = "auto") -> ShadowBank:
    """``shadows.build_bank`` once per process (it is also kept on disk, and resumes an interrupted build)."""
    return _resources("banks", BANK_STORE_SIZE).get_or_make(
        (data.fingerprint(), model_config, train_config, k, device),
        lambda: build_bank(data, model_config, train_config, k=k, workers=WORKERS, progress=progress, device=device))


def unlearned_shadows(bank: ShadowBank, data: LabelledData, forget_ids: np.ndarray, method: str, settings: dict,
                      steps: int, seed: int, progress: Progress | None = None) -> tuple[TrainedModel, ...]:
    """``attacks.unlearn_shadows`` once per process: U-LiRA's shadows after the run's request."""
    key = (bank.fingerprint(), data.fingerprint(), ids_hash(forget_ids), method, json.dumps(settings, sort_keys=True),
           steps, seed)
    return _resources("unlearned shadows", BANK_STORE_SIZE).get_or_make(
        key, lambda: tuple(TrainedModel(m) for m in unlearn_shadows(bank, data, forget_ids, method, settings, steps,
                                                                   seed, workers=WORKERS, progress=progress)))


@st.cache_data(show_spinner=False, max_entries=16, hash_funcs=HASH_FUNCS)
def embedding(data: LabelledData, model: TrainedModel, method: str, seed: int) -> pd.DataFrame:
    """The 2-D map of the model's features (columns id, x, y, label, class_name, split)."""
    if method == "umap":
        warm_umap()
    return embed(model.model, data, method=method, seed=seed, max_points=EMBED_MAX_POINTS[method])


@st.cache_data(show_spinner=False, max_entries=32, hash_funcs=HASH_FUNCS)
def hardness(data: LabelledData, model: TrainedModel, forget_ids: np.ndarray, seed: int) -> Hardness:
    """``hardness.training_set_hardness``: κ_i and cos θ_i of training samples, and the forget set's aggregate."""
    return training_set_hardness(model.model, data, forget_ids, seed=seed, max_points=HARDNESS_MAX_POINTS)


@st.cache_data(show_spinner=False, max_entries=16, hash_funcs=HASH_FUNCS)
def retain_neighbours(data: LabelledData, model: TrainedModel, forget_ids: np.ndarray, k: int) -> pd.DataFrame:
    """Each forget sample's ``k`` most similar retain samples in the model's feature space."""
    return nearest_retain_neighbours(model.model, data, forget_ids, k=k)


@st.cache_data(show_spinner=False, max_entries=32, hash_funcs=HASH_FUNCS)
def model_point(data: LabelledData, model: TrainedModel, forget_ids: np.ndarray, seed: int) -> dict[str, float]:
    """Accuracy and loss of a model on the same measured splits a live run uses (its reference line)."""
    return measure(model.model, measured_splits(data, forget_ids, seed))


@st.cache_data(show_spinner=False, max_entries=16, hash_funcs=HASH_FUNCS)
def evaluation(data: LabelledData, model: TrainedModel, retrain: TrainedModel | None, original: TrainedModel,
               forget_ids: np.ndarray, seed: int) -> Evaluation:
    """``metrics.evaluate`` of a model on every sample, against the retrain reference (None: without)."""
    return evaluate(model.model, data, forget_ids, retrain=retrain.model if retrain else None,
                    original=original.model, seed=seed)


@st.cache_data(show_spinner=False, max_entries=32, hash_funcs=HASH_FUNCS)
def test_accuracy(data: LabelledData, model: TrainedModel) -> float:
    """A model's accuracy on the held-out test split."""
    return sample_outputs(model.model, data, data.test_ids).accuracy


@st.cache_data(show_spinner=False, max_entries=32, hash_funcs=HASH_FUNCS)
def split_outputs(data: LabelledData, model: TrainedModel, forget_ids: np.ndarray) -> dict[str, SampleOutputs]:
    """A model's per-sample loss, entropy and prediction on every forget, retain and test sample."""
    return {split: sample_outputs(model.model, data, ids) for split, ids in split_ids(data, forget_ids).items()}


@st.cache_data(show_spinner=False, max_entries=16, hash_funcs=HASH_FUNCS)
def linked_embedding(data: LabelledData, model_a: TrainedModel, model_b: TrainedModel, forget_ids: np.ndarray,
                     method: str, seed: int) -> pd.DataFrame:
    """``embedding.linked_map``: two models' maps of the same samples, b aligned onto a."""
    if method == "umap":
        warm_umap()
    return linked_map(model_a.model, model_b.model, data, forget_ids, method=method, seed=seed,
                      limit=EMBED_MAX_POINTS[method])


@st.cache_data(show_spinner=False, max_entries=8, hash_funcs=HASH_FUNCS)
def privacy_audit(models: dict[str, TrainedModel], data: LabelledData, forget_ids: np.ndarray, bank: ShadowBank,
                  unlearned: tuple[TrainedModel, ...], seed: int) -> Audit:
    """``attacks.audit`` of the original, current and retrained models, keyed by their weights and the shadows."""
    return audit({name: m.model for name, m in models.items()}, data, forget_ids, bank,
                 unlearned_shadows=tuple(m.model for m in unlearned), seed=seed)


@st.cache_data(show_spinner=False, max_entries=32, hash_funcs=HASH_FUNCS)
def relearning(data: LabelledData, model: TrainedModel, forget_ids: np.ndarray, seed: int) -> pd.DataFrame:
    """``durability.relearning_curves`` of one model (its ``model`` column left for the caller to name)."""
    return relearning_curves({"": model.model}, data, forget_ids, seed=seed)


@st.cache_data(show_spinner=False, max_entries=32, hash_funcs=HASH_FUNCS)
def quantization(data: LabelledData, model: TrainedModel, forget_ids: np.ndarray, seed: int) -> pd.DataFrame:
    """``durability.quantization_table`` of one model (its ``model`` column left for the caller to name)."""
    return quantization_table({"": model.model}, data, forget_ids, seed=seed)


def ledger(data: LabelledData, text: str, model_config: ModelConfig, train_config: TrainConfig, method: str,
           settings: dict, seed: int, max_steps: int, stop_when: tuple, progress: Progress | None = None) -> Ledger:
    """``ledger.run_ledger`` on the parsed request text, once per process for the same inputs.

    ``progress`` is only called while the requests are answered (not on a hit); a ValueError
    (a request that cannot be answered) is raised and never kept.
    """
    key = (data.fingerprint(), text, model_config, train_config, method, json.dumps(settings, sort_keys=True), seed,
           max_steps, tuple(stop_when))
    return _resources("ledgers", LEDGER_STORE_SIZE).get_or_make(key, lambda: run_ledger(
        parse_requests(text), dataset=data, model_config=model_config, train_config=train_config, method=method,
        settings=settings, seed=seed, max_steps=max_steps, stop_when=stop_when, progress=progress))
