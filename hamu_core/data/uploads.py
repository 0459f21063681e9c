"""User-supplied datasets (CSV, NPZ, a zip of class folders) checked before anything trains on them.

Each loader takes the raw bytes and file name exactly as an upload widget delivers them
and returns ``LabelledData``; nothing is written to disk. Every rejection is a
``DataError`` naming the file and the row, column or rule broken, so the app can show it
verbatim. Numeric tabular features are standardised with training-split statistics
(stored in ``meta``) because an MLP trains poorly on raw, mixed-scale columns.
"""

from __future__ import annotations

import io
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from hamu_core.data.labelled import DataError, LabelledData, stratified_test_mask
from hamu_core.data.text import MAX_FEATURES, text_dataset

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class UploadConfig:
    """How uploads are read and split; one instance serves every loader."""

    max_bytes: int = 50 * 2**20  # per-file limit (also on a zip's unpacked total): 50 MB
    label_column: str = "label"  # CSV column holding the class of each row
    text_column: str | None = None  # CSV column of raw text; None means all other columns are numeric
    max_text_features: int = MAX_FEATURES  # TF-IDF vocabulary cap for text CSVs
    test_fraction: float = 0.2  # share of every class held out as the test split
    seed: int = 0  # seed of the stratified train/test split

    def __post_init__(self) -> None:
        if self.max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, got {self.max_bytes}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must lie in (0, 1), got {self.test_fraction}")
        if self.max_text_features < 1:
            raise ValueError(f"max_text_features must be at least 1, got {self.max_text_features}")


def _check_size(content: bytes, filename: str, config: UploadConfig) -> None:
    if len(content) > config.max_bytes:
        raise DataError(f"{filename}: file is {len(content) / 2**20:.1f} MB, over the "
                        f"{config.max_bytes / 2**20:.1f} MB limit (UploadConfig.max_bytes)")
    if not content.strip():
        raise DataError(f"{filename}: the file is empty")


def _labels(values: pd.Series | np.ndarray, filename: str, where: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Integer labels and sorted class names; refuses missing labels and a single class."""
    values = pd.Series(np.asarray(values))
    if values.isna().any():
        raise DataError(f"{filename}: {where} is empty at row {int(np.flatnonzero(values.isna())[0]) + 1}")
    names = values.astype(str)
    classes = tuple(sorted(names.unique()))
    if len(classes) < 2:
        raise DataError(f"{filename}: only one class ({classes[0]!r}) in {where}; at least two are needed")
    return names.map({c: i for i, c in enumerate(classes)}).to_numpy(np.int64), classes


def _check_finite(X: np.ndarray, filename: str, columns: list[str]) -> None:
    bad = ~np.isfinite(X.reshape(len(X), -1))
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        kind = "a NaN (missing)" if np.isnan(X.reshape(len(X), -1)[row, col]) else "an infinite"
        raise DataError(f"{filename}: column {columns[col]!r} has {kind} value at row {row + 1}")


def _tabular(name: str, X: np.ndarray, y: np.ndarray, classes: tuple[str, ...],
             config: UploadConfig, meta: dict) -> LabelledData:
    is_test = stratified_test_mask(y, test_fraction=config.test_fraction, seed=config.seed)
    mean = X[~is_test].mean(axis=0)
    std = X[~is_test].std(axis=0)
    std[std == 0] = 1.0  # constant columns stay constant instead of dividing by zero
    return LabelledData(
        name=name, kind="tabular", X=((X - mean) / std).astype(np.float32), y=y,
        ids=np.arange(len(y), dtype=np.int64), is_test=is_test, classes=classes,
        meta={**meta, "mean": mean, "std": std},
    )


def load_csv(content: bytes, filename: str, config: UploadConfig = UploadConfig()) -> LabelledData:
    """A comma-separated file with a header: numeric feature columns (or one text column) and a label."""
    _check_size(content, filename, config)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)  # a row longer than the header
            table = pd.read_csv(io.BytesIO(content), dtype=str, keep_default_na=False, index_col=False).fillna("")
    except (pd.errors.ParserError, pd.errors.ParserWarning, UnicodeDecodeError) as exc:
        raise DataError(f"{filename}: not a readable CSV file ({exc})") from exc
    if len(table.columns) == 1:
        header = str(table.columns[0])
        hint = next((f" (it seems to use {d!r})" for d in (";", "\t", "|") if d in header), "")
        raise DataError(f"{filename}: found a single column {header!r}; columns must be separated "
                        f"by commas{hint}")
    if len(table) == 0:
        raise DataError(f"{filename}: the file has a header but no data rows")
    if config.label_column not in table.columns:
        raise DataError(f"{filename}: no label column {config.label_column!r}; columns are "
                        f"{list(table.columns)} (set UploadConfig.label_column)")
    labels = table[config.label_column].replace("", np.nan)
    y, classes = _labels(labels, filename, f"label column {config.label_column!r}")
    meta = {"source": filename}
    if config.text_column is not None:
        if config.text_column not in table.columns:
            raise DataError(f"{filename}: no text column {config.text_column!r}; columns are {list(table.columns)}")
        texts = table[config.text_column].tolist()
        is_test = stratified_test_mask(y, test_fraction=config.test_fraction, seed=config.seed)
        return text_dataset(filename, texts, y, is_test, classes,
                            max_features=config.max_text_features, meta=meta)
    features = [c for c in table.columns if c != config.label_column]
    X = np.empty((len(table), len(features)), dtype=np.float64)
    for j, column in enumerate(features):
        raw = table[column].str.strip()
        numbers = pd.to_numeric(raw.replace({"": "nan"}), errors="coerce")
        bad = numbers.isna() & ~raw.str.lower().isin(["", "nan", "na", "null"])
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{filename}: column {column!r} is not numeric: row {row + 1} has "
                            f"{table[column].iloc[row]!r} (set UploadConfig.text_column for text)")
        X[:, j] = numbers.to_numpy(np.float64)
    _check_finite(X, filename, features)
    return _tabular(filename, X, y, classes, config, {**meta, "feature_columns": features})


def load_npz(content: bytes, filename: str, config: UploadConfig = UploadConfig()) -> LabelledData:
    """A NumPy ``.npz`` with ``X`` (n, d) features or (n, h, w) grayscale images, and ``y`` (n,) labels."""
    _check_size(content, filename, config)
    try:
        with np.load(io.BytesIO(content), allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"{filename}: not a readable .npz archive without pickled objects ({exc})") from exc
    if "X" not in arrays or "y" not in arrays:
        raise DataError(f"{filename}: needs arrays named 'X' and 'y'; found {sorted(arrays)}")
    X, labels = arrays["X"], arrays["y"]
    if labels.ndim != 1:
        raise DataError(f"{filename}: y must be one-dimensional, got shape {labels.shape}")
    if len(X) != len(labels):
        raise DataError(f"{filename}: X has {len(X)} rows but y has {len(labels)}")
    if not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
        raise DataError(f"{filename}: X must be numeric, got dtype {X.dtype}")
    X = X.astype(np.float64)
    y, classes = _labels(labels, filename, "y")
    if X.ndim == 2:
        _check_finite(X, filename, [f"X[:, {j}]" for j in range(X.shape[1])])
        return _tabular(filename, X, y, classes, config, {"source": filename})
    if X.ndim == 4 and X.shape[1] == 1:
        X = X[:, 0]
    if X.ndim != 3:
        raise DataError(f"{filename}: X must be (n, features) or (n, height, width) images, got shape {X.shape}")
    _check_finite(X, filename, [f"pixel {j}" for j in range(X[0].size)])
    if X.min() < 0 or X.max() > 255:
        raise DataError(f"{filename}: image values must lie in [0, 1] or [0, 255], got [{X.min()}, {X.max()}]")
    pixels = np.round(X * (255.0 if X.max() <= 1.0 else 1.0)).astype(np.uint8)
    return _images(filename, pixels, y, classes, config, {"source": filename})


def _images(name: str, pixels: np.ndarray, y: np.ndarray, classes: tuple[str, ...],
            config: UploadConfig, meta: dict) -> LabelledData:
    return LabelledData(
        name=name, kind="image", X=(pixels.astype(np.float32) / 255.0)[:, None], y=y,
        ids=np.arange(len(y), dtype=np.int64),
        is_test=stratified_test_mask(y, test_fraction=config.test_fraction, seed=config.seed),
        classes=classes, images=pixels, meta=meta,
    )


def _safe_image_members(archive: zipfile.ZipFile, filename: str, config: UploadConfig) -> list[zipfile.ZipInfo]:
    """Image entries sorted by path; refuses traversal, absolute names, loose files and zip bombs."""
    members = []
    for info in archive.infolist():
        name = info.filename.replace("\\", "/")
        parts = PurePosixPath(name).parts
        if name.startswith("/") or (parts and parts[0].endswith(":")) or ".." in parts:
            raise DataError(f"{filename}: unsafe path {info.filename!r} in the zip (absolute or '../' "
                            "path traversal); refusing the whole archive")
        if info.is_dir() or parts[0] == "__MACOSX" or parts[-1].startswith("."):
            continue
        if PurePosixPath(name).suffix.lower() in IMAGE_SUFFIXES:
            if len(parts) < 2:
                raise DataError(f"{filename}: image {info.filename!r} is not inside a class folder")
            members.append(info)
    if sum(info.file_size for info in members) > config.max_bytes:
        raise DataError(f"{filename}: images unpack to more than {config.max_bytes / 2**20:.1f} MB "
                        "(UploadConfig.max_bytes)")
    return sorted(members, key=lambda info: info.filename)


def load_image_zip(content: bytes, filename: str, config: UploadConfig = UploadConfig()) -> LabelledData:
    """A zip with one folder per class of same-sized images; each converted to 8-bit grayscale."""
    _check_size(content, filename, config)
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
    except zipfile.BadZipFile as exc:
        raise DataError(f"{filename}: not a valid zip archive") from exc
    with archive:
        members = _safe_image_members(archive, filename, config)
        if not members:
            raise DataError(f"{filename}: no images found (expected class folders of {', '.join(IMAGE_SUFFIXES)})")
        pixels, labels, first = [], [], None
        for info in members:
            try:
                with Image.open(io.BytesIO(archive.read(info))) as image:
                    image.load()
                    gray = np.asarray(image.convert("L"), dtype=np.uint8)
            except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
                raise DataError(f"{filename}: cannot read image {info.filename!r} ({exc})") from exc
            if first is None:
                first = (info.filename, gray.shape)
            elif gray.shape != first[1]:
                raise DataError(f"{filename}: images must all be the same size: {first[0]!r} is "
                                f"{first[1][1]}×{first[1][0]} but {info.filename!r} is {gray.shape[1]}×{gray.shape[0]}")
            pixels.append(gray)
            labels.append(PurePosixPath(info.filename.replace("\\", "/")).parts[-2])
    y, classes = _labels(np.array(labels), filename, "the class folders")
    meta = {"source": filename, "paths": tuple(info.filename for info in members)}
    return _images(filename, np.stack(pixels), y, classes, config, meta)


LOADERS = {".csv": load_csv, ".npz": load_npz, ".zip": load_image_zip}


def load_upload(content: bytes, filename: str, config: UploadConfig = UploadConfig()) -> LabelledData:
    """Dispatch on the file's extension to the matching loader."""
    loader = LOADERS.get(PurePosixPath(filename).suffix.lower())
    if loader is None:
        raise DataError(f"{filename}: unsupported file type; upload one of {', '.join(LOADERS)}")
    return loader(content, filename, config)
