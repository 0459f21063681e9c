"""The one in-memory form every dataset takes, built-in or uploaded.

Everything downstream (training, unlearning, metrics, embeddings, the app) speaks this
type, so a loader's only job is to produce a valid ``LabelledData``. Sample ids are
stable integers assigned once by the loader: forget sets, stored runs and plots refer to
samples by id, never by row position, so they survive any later reordering.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch

from hamu_core.data.limits import DEFAULT_LIMITS, Limits

KINDS = ("image", "tabular", "text")


class DataError(ValueError):
    """A dataset or uploaded file that cannot be used; the message names the file and rule."""


def stratified_test_mask(y: np.ndarray, *, test_fraction: float = 0.2, seed: int = 0) -> np.ndarray:
    """Boolean test-split mask drawing ``test_fraction`` of every class, reproducible by seed.

    Written here rather than borrowed from scikit-learn so that tiny classes never fail:
    each class keeps at least one training sample, and a one-sample class stays in train.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(y), dtype=bool)
    for label in np.unique(y):
        rows = np.flatnonzero(y == label)
        n_test = min(int(round(test_fraction * len(rows))), len(rows) - 1)
        mask[rng.permutation(rows)[:n_test]] = True
    return mask


def check_learnable(source: str, y: np.ndarray, classes: tuple[str, ...], n_features: int,
                    limits: Limits = DEFAULT_LIMITS) -> None:
    """Refuse, naming the rule, a dataset no train/test split, forget set and retain set can be cut from.

    Checked on every upload before any model sees it: with fewer than
    ``limits.min_samples_per_class`` samples in a class, some class would have no test
    sample or nothing left to retain once one sample is forgotten, and training or the
    metrics would fail later with a shape error instead of a reason.
    """
    if len(y) == 0:
        raise DataError(f"{source}: the file holds no samples")
    if n_features == 0:
        raise DataError(f"{source}: the samples have zero features; there is nothing to learn from")
    if len(classes) < 2:
        raise DataError(f"{source}: only one class ({classes[0]!r}); at least two are needed")
    if len(classes) > limits.max_classes:
        raise DataError(f"{source}: {len(classes):,} classes exceed Limits.max_classes = {limits.max_classes:,}")
    counts = np.bincount(y, minlength=len(classes))
    smallest = int(np.argmin(counts))
    if counts[smallest] < limits.min_samples_per_class:
        allowed = len(y) // limits.min_samples_per_class
        hint = (f"; {len(y):,} samples are too few for even two classes of {limits.min_samples_per_class}"
                if allowed < 2 else f"; {len(y):,} samples allow at most {allowed:,} classes"
                if len(classes) > allowed else "")
        raise DataError(f"{source}: class {classes[smallest]!r} has {counts[smallest]} sample"
                        f"{'s' if counts[smallest] != 1 else ''}, fewer than Limits.min_samples_per_class = "
                        f"{limits.min_samples_per_class} (a test sample, one to forget and one to retain){hint}")


def image_dataset(name: str, pixels: np.ndarray, y: np.ndarray, is_test: np.ndarray, classes: tuple[str, ...],
                  meta: dict) -> LabelledData:
    """Image ``LabelledData`` from uint8 pixels, grey (n, h, w) or colour (n, h, w, 3).

    Every image loader (built-in or uploaded) ends here, so the layout is decided once:
    ``X`` is channels-first (n, 1, h, w) or (n, 3, h, w) in [0, 1] as torch's convolutions
    expect, and ``images`` keeps the pixels channels-last for thumbnails, as Pillow draws them.
    """
    if pixels.dtype != np.uint8 or pixels.ndim not in (3, 4) or (pixels.ndim == 4 and pixels.shape[3] != 3):
        raise ValueError(f"{name}: pixels must be uint8 (n, h, w) or (n, h, w, 3), got {pixels.dtype} {pixels.shape}")
    channels_first = pixels[:, None] if pixels.ndim == 3 else pixels.transpose(0, 3, 1, 2)
    return LabelledData(
        name=name, kind="image", X=np.ascontiguousarray(channels_first, dtype=np.float32) / np.float32(255.0),
        y=np.asarray(y, dtype=np.int64), ids=np.arange(len(y), dtype=np.int64),
        is_test=is_test, classes=classes, images=pixels, meta=meta,
    )


@dataclass(frozen=True, eq=False)
class LabelledData:
    """Features, labels, stable ids and a fixed train/test split for one dataset."""

    name: str  # shown in the app and stored with runs, e.g. "digits"
    kind: str  # one of KINDS; decides thumbnails (image), text previews (text)
    X: np.ndarray  # (n, *input_shape) float32 model inputs, already scaled; images are (n, channels, h, w)
    y: np.ndarray  # (n,) int64 labels in [0, n_classes)
    ids: np.ndarray  # (n,) int64 unique, stable sample ids
    is_test: np.ndarray  # (n,) bool: held-out test split (never trained on, never forgotten)
    classes: tuple[str, ...]  # class names, index = label
    images: np.ndarray | None = None  # uint8 pixels for thumbnails (image kind): (n, h, w) grey, (n, h, w, 3) RGB
    texts: tuple[str, ...] | None = None  # raw text per sample (text kind)
    meta: dict = field(default_factory=dict)  # provenance: source file, licence, vectoriser

    def __post_init__(self) -> None:
        n = len(self.y)
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        for name, arr in (("X", self.X), ("ids", self.ids), ("is_test", self.is_test)):
            if len(arr) != n:
                raise ValueError(f"{self.name}: {name} has {len(arr)} rows but y has {n}")
        if self.images is not None and len(self.images) != n:
            raise ValueError(f"{self.name}: images has {len(self.images)} rows but y has {n}")
        if self.texts is not None and len(self.texts) != n:
            raise ValueError(f"{self.name}: texts has {len(self.texts)} rows but y has {n}")
        if len(np.unique(self.ids)) != n:
            raise ValueError(f"{self.name}: sample ids are not unique")
        if n and (self.y.min() < 0 or self.y.max() >= len(self.classes)):
            raise ValueError(f"{self.name}: labels must lie in [0, {len(self.classes)})")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.X.shape[1:])

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def train_ids(self) -> np.ndarray:
        return self.ids[~self.is_test]

    @property
    def test_ids(self) -> np.ndarray:
        return self.ids[self.is_test]

    def fingerprint(self) -> str:
        """Short sha256 of name, inputs, labels, ids and split: a cache key for this content.

        Computed once per object (the arrays are never changed after loading): every cache
        lookup on a page hashes the dataset by it, and Fashion-MNIST's 220 MB take a while.
        """
        if "_fingerprint" not in self.__dict__:
            digest = hashlib.sha256(self.name.encode())
            for arr in (self.X, self.y, self.ids, self.is_test):
                digest.update(str(arr.dtype).encode() + str(arr.shape).encode())
                digest.update(np.ascontiguousarray(arr))  # buffer protocol: no copy
            object.__setattr__(self, "_fingerprint", digest.hexdigest()[:16])
        return self.__dict__["_fingerprint"]

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """Row positions of the given sample ids; raises KeyError naming unknown ids."""
        ids = np.asarray(ids, dtype=np.int64)
        order = np.argsort(self.ids)
        pos = np.searchsorted(self.ids, ids, sorter=order)
        pos = np.clip(pos, 0, len(self.ids) - 1)
        found = self.ids[order[pos]] == ids if len(self.ids) else np.zeros(len(ids), bool)
        if not np.all(found):
            missing = ids[~found][:10].tolist()
            raise KeyError(f"{self.name}: unknown sample ids {missing}")
        return order[pos]

    def tensors(self, ids: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, labels) as torch tensors for the given sample ids, in the given order."""
        rows = self.rows(ids)
        return torch.from_numpy(self.X[rows]).float(), torch.from_numpy(self.y[rows]).long()
