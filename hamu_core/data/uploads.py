"""User-supplied datasets (CSV, NPZ, a zip of class folders) checked before anything trains on them.

Each loader takes the raw bytes and file name exactly as an upload widget delivers them
and returns ``LabelledData``; nothing is written to disk, and the name is only ever shown
(``display_name``), never used as a path. Every rejection is a ``DataError`` naming the
file and the row, column, member or rule broken, so the app and the CLI can show it
verbatim. Sizes are judged as the file declares them, against ``Limits``, before anything
of that size is decoded. Numeric tabular features are standardised with training-split
statistics (stored in ``meta``) because an MLP trains poorly on raw, mixed-scale columns.
"""

from __future__ import annotations

import io
import math
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from hamu_core.data.archives import DecodeBudget, open_zip, read_member, read_npy
from hamu_core.data.labelled import DataError, LabelledData, check_learnable, image_dataset, stratified_test_mask
from hamu_core.data.limits import DEFAULT_LIMITS, Limits
from hamu_core.data.text import MAX_FEATURES, text_dataset

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
NAME_CHARS = 80  # longest file name shown; longer ones keep their start and their extension
REAL_KINDS = "biuf"  # dtype kinds X may have: booleans, signed and unsigned integers, floats
LABEL_KINDS = "biufUS"  # dtype kinds y may have: numbers, booleans or text class names


@dataclass(frozen=True)
class UploadConfig:
    """How uploads are read and split; one instance serves every loader."""

    label_column: str = "label"  # CSV column holding the class of each row
    text_column: str | None = None  # CSV column of raw text; None means all other columns are numeric
    max_text_features: int = MAX_FEATURES  # TF-IDF vocabulary cap for text CSVs
    test_fraction: float = 0.2  # share of every class held out as the test split
    seed: int = 0  # seed of the stratified train/test split
    limits: Limits = DEFAULT_LIMITS  # every size bound, with its reason (hamu_core.data.limits)

    def __post_init__(self) -> None:
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must lie in (0, 1), got {self.test_fraction}")
        if self.max_text_features < 1:
            raise ValueError(f"max_text_features must be at least 1, got {self.max_text_features}")
        if int(round(self.test_fraction * self.limits.min_samples_per_class)) < 1:
            raise ValueError(f"test_fraction {self.test_fraction} leaves no test sample in a class of "
                             f"Limits.min_samples_per_class = {self.limits.min_samples_per_class}; raise one of them")


def display_name(filename: str) -> str:
    """The file's base name as shown to users: printable, at most ``NAME_CHARS`` long, its extension kept."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    shown = "".join(c if c.isprintable() else "?" for c in base) or "upload"
    if len(shown) <= NAME_CHARS:
        return shown
    suffix = PurePosixPath(shown).suffix[:10]
    return shown[:NAME_CHARS - len(suffix) - 1] + "…" + suffix


def check_file_size(size: int, filename: str, limits: Limits = DEFAULT_LIMITS) -> None:
    """Refuse a file over ``Limits.max_file_bytes`` by its size alone, before a byte of it is read."""
    if size > limits.max_file_bytes:
        raise DataError(f"{filename}: file is {size / 2**20:.1f} MB, over "
                        f"Limits.max_file_bytes = {limits.max_file_bytes / 2**20:.1f} MB")


def _check_size(content: bytes, filename: str, limits: Limits) -> None:
    check_file_size(len(content), filename, limits)
    if not content.strip():
        raise DataError(f"{filename}: the file is empty")


def _labels(values: pd.Series | np.ndarray, filename: str, where: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Integer labels and sorted class names; refuses missing labels."""
    values = pd.Series(np.asarray(values))
    if values.isna().any():
        raise DataError(f"{filename}: {where} is empty at row {int(np.flatnonzero(values.isna())[0]) + 1}")
    names = values.astype(str)
    classes = tuple(sorted(names.unique()))
    return names.map({c: i for i, c in enumerate(classes)}).to_numpy(np.int64), classes


def _check_finite(X: np.ndarray, filename: str, columns) -> None:
    flat = X.reshape(len(X), -1)
    bad = ~np.isfinite(flat)
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        kind = "a NaN (missing)" if np.isnan(flat[row, col]) else "an infinite"
        raise DataError(f"{filename}: column {columns(col)!r} has {kind} value at row {row + 1}")


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


def _check_csv_extent(content: bytes, filename: str, config: UploadConfig) -> None:
    """Rows and columns counted on the raw bytes, so an oversized table is refused before pandas parses it."""
    limits = config.limits
    header = content.split(b"\n", 1)[0]
    columns, rows = header.count(b",") + 1, content.rstrip(b"\r\n").count(b"\n")
    if rows > limits.max_rows:
        raise DataError(f"{filename}: {rows:,} rows exceed Limits.max_rows = {limits.max_rows:,}")
    if config.text_column is None and columns - 1 > limits.max_features:
        raise DataError(f"{filename}: {columns - 1:,} feature columns exceed Limits.max_features = "
                        f"{limits.max_features:,}")
    if rows * columns > limits.max_csv_cells:
        raise DataError(f"{filename}: {rows:,} rows × {columns:,} columns exceed Limits.max_csv_cells = "
                        f"{limits.max_csv_cells:,}")


def load_csv(content: bytes, filename: str, config: UploadConfig = UploadConfig()) -> LabelledData:
    """A comma-separated file with a header: numeric feature columns (or one text column) and a label."""
    _check_size(content, filename, config.limits)
    _check_csv_extent(content, filename, config)
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
    features = [c for c in table.columns if c != config.label_column]
    if config.text_column is not None and config.text_column not in table.columns:
        raise DataError(f"{filename}: no text column {config.text_column!r}; columns are {list(table.columns)}")
    if config.text_column is not None:
        check_learnable(filename, y, classes, len(features), config.limits)
        texts = table[config.text_column].tolist()
        is_test = stratified_test_mask(y, test_fraction=config.test_fraction, seed=config.seed)
        return text_dataset(filename, texts, y, is_test, classes,
                            max_features=config.max_text_features, meta=meta)
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
    _check_finite(X, filename, features.__getitem__)
    check_learnable(filename, y, classes, len(features), config.limits)
    return _tabular(filename, X, y, classes, config, {**meta, "feature_columns": features})


def _check_features_header(limits: Limits, budget: DecodeBudget):
    """The check ``read_npy`` applies to X's header: real numbers; rows, features and image size within limits."""
    def check(shape: tuple[int, ...], dtype: np.dtype, where: str) -> None:
        if dtype.kind == "c":
            raise DataError(f"{where} is complex ({dtype}); values must be real numbers")
        if dtype.kind not in REAL_KINDS:
            raise DataError(f"{where} must be numeric, got dtype {dtype}")
        if len(shape) == 0:
            raise DataError(f"{where} is a scalar; X needs one row per sample")
        if not 2 <= len(shape) <= 4:
            raise DataError(f"{where} must be (n, features) or (n, height, width) images, possibly with 1 or 3 "
                            f"channels, got shape {shape}")
        if shape[0] > limits.max_rows:
            raise DataError(f"{where} has {shape[0]:,} rows, beyond Limits.max_rows = {limits.max_rows:,}")
        features = math.prod(shape[1:])
        if features > limits.max_features:
            raise DataError(f"{where} has {features:,} values per sample (shape {shape}), beyond "
                            f"Limits.max_features = {limits.max_features:,}")
        axis = _channel_axis(shape)
        if len(shape) == 4 and axis is None:
            raise DataError(f"{where}: image arrays need 1 or 3 channels at axis 1 or axis 3, got shape {shape}")
        pixels = features // shape[axis] if axis else features
        if len(shape) > 2 and pixels > limits.max_pixels_per_image:
            raise DataError(f"{where}: images of {pixels:,} pixels exceed "
                            f"Limits.max_pixels_per_image = {limits.max_pixels_per_image:,}")
        per_value = 4 if len(shape) > 2 else 8  # float32 model inputs; float64 while standardising a table
        budget.take(shape[0] * features * per_value, f"X's model inputs (shape {shape})")
    return check


def _channel_axis(shape: tuple[int, ...]) -> int | None:
    """The axis of an (n, ·, ·, ·) image array that holds 1 or 3 channels: 1 (channels-first, preferred) or 3.

    None for (n, h, w) grey arrays and for 4-D arrays with neither, which are refused.
    """
    return next((axis for axis in (1, 3) if len(shape) == 4 and shape[axis] in (1, 3)), None)


def _check_labels_header(limits: Limits):
    """The check ``read_npy`` applies to y's header: one label per row, numbers or text."""
    def check(shape: tuple[int, ...], dtype: np.dtype, where: str) -> None:
        if dtype.kind not in LABEL_KINDS:
            raise DataError(f"{where} must hold numbers or text class names, got dtype {dtype}")
        if len(shape) != 1:
            raise DataError(f"{where} must be one-dimensional, got shape {shape}")
        if shape[0] > limits.max_rows:
            raise DataError(f"{where} has {shape[0]:,} rows, beyond Limits.max_rows = {limits.max_rows:,}")
    return check


def load_npz(content: bytes, filename: str, config: UploadConfig = UploadConfig()) -> LabelledData:
    """A NumPy ``.npz`` with ``y`` (n,) labels and ``X``: (n, d) features, or images (n, h, w), (n, 1|3, h, w)
    channels-first or (n, h, w, 1|3) channels-last, in [0, 1] or [0, 255]."""
    limits = config.limits
    _check_size(content, filename, limits)
    budget = DecodeBudget(filename, limits)
    with open_zip(content, filename, limits) as archive:
        members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}
        if "X" not in members or "y" not in members:
            raise DataError(f"{filename}: needs arrays named 'X' and 'y'; found {sorted(members)}")
        labels = read_npy(archive, members["y"], filename, budget, _check_labels_header(limits))
        X = read_npy(archive, members["X"], filename, budget, _check_features_header(limits, budget))
    if len(X) != len(labels):
        raise DataError(f"{filename}: X has {len(X)} rows but y has {len(labels)}")
    y, classes = _labels(labels, filename, "y")
    check_learnable(filename, y, classes, math.prod(X.shape[1:]), limits)
    if X.ndim == 2:
        X = X.astype(np.float64)
        _check_finite(X, filename, lambda j: f"X[:, {j}]")
        return _tabular(filename, X, y, classes, config, {"source": filename})
    channels_last = X.transpose(0, 2, 3, 1) if _channel_axis(X.shape) == 1 else X
    if channels_last.ndim == 4 and channels_last.shape[3] == 1:
        channels_last = channels_last[..., 0]
    is_test = stratified_test_mask(y, test_fraction=config.test_fraction, seed=config.seed)
    return image_dataset(filename, _to_pixels(channels_last, filename), y, is_test, classes, {"source": filename})


def _to_pixels(X: np.ndarray, filename: str) -> np.ndarray:
    """uint8 pixels from image values in [0, 1] (scaled by 255) or [0, 255]; anything else is refused."""
    if X.dtype.kind == "f":
        _check_finite(X, filename, lambda j: f"pixel {j}")
    low, high = X.min(), X.max()
    if low < 0 or high > 255:
        raise DataError(f"{filename}: image values must lie in [0, 1] or [0, 255], got [{low}, {high}]")
    if X.dtype == np.uint8:
        return np.ascontiguousarray(X)
    scale = 255.0 if X.dtype.kind in "fb" and high <= 1.0 else 1.0
    return np.round(X.astype(np.float32) * np.float32(scale)).astype(np.uint8)


def _image_members(archive: zipfile.ZipFile, filename: str, limits: Limits) -> list[zipfile.ZipInfo]:
    """Image entries sorted by path; refuses traversal, absolute names, loose files and too many images."""
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
    if len(members) > limits.max_rows:
        raise DataError(f"{filename}: {len(members):,} images exceed Limits.max_rows = {limits.max_rows:,}")
    return sorted(members, key=lambda info: info.filename)


def _decode_image(raw: bytes, member: str, filename: str, limits: Limits, budget: DecodeBudget) -> np.ndarray:
    """(h, w, 3) uint8 pixels of one image, its width and height judged from the header before decoding."""
    try:
        with Image.open(io.BytesIO(raw)) as image:
            width, height = image.size
            if width * height > limits.max_pixels_per_image:
                raise DataError(f"{filename}: image {member!r} is {width:,}×{height:,} = {width * height:,} "
                                f"pixels, beyond Limits.max_pixels_per_image = {limits.max_pixels_per_image:,} "
                                "(resize the images before uploading)")
            budget.take(width * height * 3, f"image {member!r}")
            image.load()
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except DataError:
        raise
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, ValueError, SyntaxError, EOFError) as exc:
        raise DataError(f"{filename}: cannot read image {member!r} ({exc})") from exc


def load_image_zip(content: bytes, filename: str, config: UploadConfig = UploadConfig()) -> LabelledData:
    """A zip with one folder per class of same-sized images; grey unless some image has colour, then RGB."""
    limits = config.limits
    _check_size(content, filename, limits)
    budget = DecodeBudget(filename, limits)
    with open_zip(content, filename, limits) as archive:
        members = _image_members(archive, filename, limits)
        if not members:
            raise DataError(f"{filename}: no images found (expected class folders of {', '.join(IMAGE_SUFFIXES)})")
        pixels = []
        for info in members:
            rgb = _decode_image(read_member(archive, info, filename, budget), info.filename, filename, limits, budget)
            if pixels and rgb.shape != pixels[0].shape:
                raise DataError(f"{filename}: images must all be the same size: {members[0].filename!r} is "
                                f"{pixels[0].shape[1]}×{pixels[0].shape[0]} but {info.filename!r} is "
                                f"{rgb.shape[1]}×{rgb.shape[0]}")
            pixels.append(rgb)
    labels = [PurePosixPath(info.filename.replace("\\", "/")).parts[-2] for info in members]
    y, classes = _labels(np.array(labels), filename, "the class folders")
    check_learnable(filename, y, classes, pixels[0].size, limits)
    budget.take(len(pixels) * pixels[0].size * 5, "the stacked images and their model inputs")
    stacked = np.stack(pixels)
    del pixels
    grey = bool((stacked[..., 0] == stacked[..., 1]).all() and (stacked[..., 0] == stacked[..., 2]).all())
    meta = {"source": filename, "paths": tuple(info.filename for info in members)}
    is_test = stratified_test_mask(y, test_fraction=config.test_fraction, seed=config.seed)
    return image_dataset(filename, np.ascontiguousarray(stacked[..., 0]) if grey else stacked, y, is_test, classes,
                         meta)


LOADERS = {".csv": load_csv, ".npz": load_npz, ".zip": load_image_zip}


def load_upload(content: bytes, filename: str, config: UploadConfig = UploadConfig()) -> LabelledData:
    """Dispatch on the file's extension to the matching loader; the data are named by ``display_name``."""
    name = display_name(filename)
    loader = LOADERS.get(PurePosixPath(name).suffix.lower())
    if loader is None:
        raise DataError(f"{name}: unsupported file type; upload one of {', '.join(LOADERS)}")
    return loader(content, name, config)
