"""Maps kept on disk: a t-SNE or UMAP layout takes seconds to minutes, so each is computed once.

A map is a pure function of the model's weights, the data, the method, the seed and how
many points are drawn (the forget set only colours it): its file is named by a hash of
exactly those, never by anything a user typed. A file is written under a
temporary name and renamed, so a map read from disk is always whole, and an unreadable
file is treated as absent (computed again and replaced).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
from torch import nn

from hamu_core.data.labelled import LabelledData
from hamu_core.evaluation.embedding import embed
from hamu_core.models.architectures import model_fingerprint
from hamu_core.models.checkpoint import data_dir

MAP_FOLDER = "maps"  # under the data folder (``checkpoint.data_dir``)


def map_key(model: nn.Module, data: LabelledData, *, method: str, seed: int, max_points: int | None) -> str:
    """The hash that names a map's file: weights, data, method, seed and the number of points drawn."""
    parts = (model_fingerprint(model), data.fingerprint(), method, str(seed), str(max_points))
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def map_path(key: str, folder: str | Path | None = None) -> Path:
    return Path(folder if folder is not None else data_dir()) / MAP_FOLDER / f"{key}.npz"


def save_map(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` (numbers, booleans and text columns) to ``path`` atomically, without pickles."""
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = {f"column_{i}": frame[name].to_numpy() if frame[name].dtype.kind in "biuf"
               else np.asarray(frame[name].astype(str), dtype=str) for i, name in enumerate(frame.columns)}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, names=np.asarray(frame.columns, dtype=str), **columns)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_map(path: Path) -> pd.DataFrame | None:
    """The map stored at ``path``; None when there is none or the file cannot be read whole."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            names = stored["names"].tolist()
            arrays = [stored[f"column_{i}"] for i in range(len(names))]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    return pd.DataFrame({name: array.tolist() if array.dtype.kind == "U" else array  # text as pandas makes it
                         for name, array in zip(names, arrays)})


def stored_map(model: nn.Module, data: LabelledData, *, method: str, seed: int, max_points: int | None,
               folder: str | Path | None = None) -> pd.DataFrame | None:
    """The ``embed`` map already on disk, or None (never computes)."""
    return load_map(map_path(map_key(model, data, method=method, seed=seed, max_points=max_points), folder))


def cached_map(model: nn.Module, data: LabelledData, *, method: str, seed: int, max_points: int | None,
               folder: str | Path | None = None) -> pd.DataFrame:
    """``embedding.embed(model, data, ...)``, read from disk when it was computed before, else computed and stored."""
    path = map_path(map_key(model, data, method=method, seed=seed, max_points=max_points), folder)
    found = load_map(path)
    if found is not None:
        return found
    frame = embed(model, data, method=method, seed=seed, max_points=max_points)
    save_map(frame, path)
    return frame
