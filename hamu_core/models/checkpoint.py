"""Model weights on disk: safe loading, atomic saving, and the cache of trained models.

Training the original and the retrain reference is the slowest thing the Studio does, so
results are cached on disk under ``$HAMU_DATA_DIR/models`` (default
``~/.cache/hamu-studio/models``), keyed by everything that decides the weights. Files are
read with ``torch.load(weights_only=True)``: a checkpoint is data, never code to run.
Writes go to a temporary file that is then renamed over the target, so a concurrent
reader sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from torch import nn

from hamu_core.data.labelled import LabelledData
from hamu_core.data.selection import validate_forget_set
from hamu_core.models.architectures import ModelConfig, build_model
from hamu_core.models.device import resolve_device
from hamu_core.models.training import Progress, TrainConfig, retain_ids, train_model

ROLES = ("original", "retrain")


class CheckpointError(ValueError):
    """A checkpoint file that is unreadable, not a state dict, or for a different model."""


def data_dir() -> Path:
    """The Studio's writable folder: ``$HAMU_DATA_DIR`` or ``~/.cache/hamu-studio``."""
    return Path(os.environ.get("HAMU_DATA_DIR") or Path.home() / ".cache" / "hamu-studio")


def save_state_dict(model: nn.Module, path: str | Path) -> Path:
    """Write ``model``'s weights to ``path`` atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().cpu().clone() for name, tensor in model.state_dict().items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_state_dict(source: str | Path | BinaryIO, name: str) -> dict[str, torch.Tensor]:
    """A state dict from a file or a binary stream, read as data only (``weights_only=True``).

    The one place weights are unpickled, for checkpoint files and the run store's blobs
    alike; CheckpointError naming ``name`` if ``source`` holds anything else.
    """
    try:
        state = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as exc:  # a garbled pickle stream fails with arbitrary types (IndexError, KeyError, ...)
        raise CheckpointError(f"{name}: not a readable PyTorch checkpoint ({exc})") from exc
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise CheckpointError(f"{name}: not a state dict (a mapping of names to tensors), "
                              f"got {type(state).__name__}")
    return state


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict in the file at ``path``; FileNotFoundError if there is none."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    return read_state_dict(path, path.name)


def load_into(model: nn.Module, path: str | Path) -> nn.Module:
    """Load the weights at ``path`` into ``model``; CheckpointError naming what does not match."""
    state = load_state_dict(path)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{Path(path).name}: does not match the model: missing {missing[:5]}, "
                              f"unexpected {unexpected[:5]}")
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items() if state[k].shape != v.shape]
    if wrong:
        raise CheckpointError(f"{Path(path).name}: tensor shapes do not match the model: {wrong[:5]}")
    model.load_state_dict(state)
    return model.eval()


def ids_hash(ids) -> str:
    """Short sha256 of a set of sample ids (order and duplicates ignored)."""
    return hashlib.sha256(np.unique(np.asarray(ids, dtype=np.int64)).tobytes()).hexdigest()[:16]


def cache_key(data: LabelledData, forget_ids, model_config: ModelConfig, train_config: TrainConfig, role: str) -> str:
    """Everything that decides a cached model's weights, hashed.

    The original never sees a forget set, so its key ignores ``forget_ids``: one original
    per dataset and recipe serves every forget set.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    fields = {
        "dataset": data.name,
        "data": data.fingerprint(),
        "forget": ids_hash(forget_ids) if role == "retrain" else None,
        "model": asdict(model_config),
        "train": asdict(train_config),  # includes the seed
        "role": role,
    }
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:24]


def cached_train(
    data: LabelledData,
    forget_ids,
    model_config: ModelConfig,
    train_config: TrainConfig,
    role: str,
    progress: Progress | None = None,
    cache_dir: str | Path | None = None,
    *,
    device: str | torch.device = "cpu",
) -> nn.Module:
    """The ``role`` model ("original" or "retrain") on ``device``, from the disk cache, else trained and stored.

    The device is not part of the cache key: weights are stored on the CPU and moved on load.

    The original is trained on every training sample, so it needs no forget set:
    ``forget_ids`` may be None for it (a given one is still validated). The retrain
    reference needs a valid forget set.

    A cached file that cannot be loaded (corrupt, or from an older model layout) is
    replaced by a fresh training run rather than failing: the cache only saves time.
    """
    if forget_ids is None:
        if role != "original":
            raise ValueError(f"forget_ids is None: the {role!r} model needs a forget set (only 'original' does not)")
        ids = np.empty(0, dtype=np.int64)
    else:
        ids = validate_forget_set(data, forget_ids)
    folder = Path(cache_dir) if cache_dir is not None else data_dir() / "models"
    path = folder / f"{role}-{cache_key(data, ids, model_config, train_config, role)}.pt"  # a hash, never the file's name
    model = build_model(model_config, data.input_shape, data.n_classes, seed=train_config.seed)
    if path.is_file():
        try:
            load_into(model, path)
            if progress is not None:
                progress(1.0, f"{role}: loaded from cache")
            return model.to(resolve_device(device))
        except CheckpointError:
            path.unlink(missing_ok=True)
    train_ids = data.train_ids if role == "original" else retain_ids(data, ids)
    model = train_model(data, train_ids, model_config, train_config, progress, device=device)
    save_state_dict(model, path)
    return model
