"""Ways to choose the forget set, each returning a sorted array of training-sample ids.

Selections are plain id arrays so they compose with numpy's set routines and survive any
later reordering of the data. Only training samples can be forgotten: a test
sample was never learned, and it is what the membership attack compares the forget set
against. ``select_rho_mix`` is the paper's hardness dial (HAMU_SPEC, "What gets measured"):
a class with a fraction ρ of its samples swapped for random samples of other classes.

A list of ids is taken as people write it: copied from a spreadsheet of "samples to
remove", it often holds some test or mistyped ids beside the training ones.
``select_listed`` returns the training ids with the others listed by reason (``ListedIds``),
so the caller can say what was skipped instead of refusing the whole list for one stray id.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from hamu_core.data.labelled import LabelledData

SKIP_REASONS = {  # why a listed id is not forgotten, by group
    "test": "in the test split (never trained on, so nothing to forget)",
    "unknown": "unknown sample ids (not in this dataset)",
}
SHOWN_IDS = 5  # skipped ids named per group in a message; the rest are counted


@dataclass(frozen=True)
class SelectionSummary:
    """What a forget set holds: its size and how many samples of each class."""

    size: int
    class_mix: dict[str, int]  # class name → count, classes with no sample left out

    def __str__(self) -> str:
        mix = ", ".join(f"{name}: {count}" for name, count in self.class_mix.items())
        return f"Forget set: {self.size} samples ({mix})"


def _as_ids(ids) -> np.ndarray:
    return np.unique(np.asarray(ids, dtype=np.int64).ravel())


def _train_ids_of(data: LabelledData, ids: np.ndarray) -> np.ndarray:
    """Sorted unique ``ids``, after checking each is a known training sample."""
    ids = _as_ids(ids)
    known = np.isin(ids, data.ids)
    if not known.all():
        raise ValueError(f"{data.name}: unknown sample ids {ids[~known][:10].tolist()}")
    in_test = np.isin(ids, data.test_ids)
    if in_test.any():
        raise ValueError(f"{data.name}: sample ids {ids[in_test][:10].tolist()} are in the test split; "
                         "test samples are never forgotten")
    return ids


@dataclass(frozen=True, eq=False)
class ListedIds:
    """A list of ids sorted into training ids to forget and ids skipped, with the reason per group."""

    ids: np.ndarray  # sorted unique training-sample ids: the ones to forget
    skipped: dict[str, np.ndarray]  # SKIP_REASONS key → sorted unique ids skipped for it; empty groups left out

    @property
    def n_skipped(self) -> int:
        return sum(len(group) for group in self.skipped.values())

    def skipped_note(self) -> str:
        """One plain line naming how many ids were skipped and why, the first few of each group listed."""
        parts = []
        for reason, group in self.skipped.items():
            shown = ", ".join(str(i) for i in group[:SHOWN_IDS]) + (", …" if len(group) > SHOWN_IDS else "")
            parts.append(f"{len(group)} {SKIP_REASONS[reason]}: {shown}")
        total = len(self.ids) + self.n_skipped
        return f"skipped {self.n_skipped} of {total} listed ids: " + "; ".join(parts)


def select_listed(data: LabelledData, ids) -> ListedIds:
    """Explicit ids, sorted and deduplicated: the training ids to forget and the others skipped by reason.

    Refuses (ValueError) only when no training id remains, saying why each id was skipped.
    """
    ids = _as_ids(ids)
    known = np.isin(ids, data.ids)
    in_test = known & np.isin(ids, data.test_ids)
    groups = {"test": ids[in_test], "unknown": ids[~known]}
    listed = ListedIds(ids[known & ~in_test], {reason: group for reason, group in groups.items() if len(group)})
    if not len(listed.ids):
        why = listed.skipped_note() if listed.skipped else "the list is empty"
        raise ValueError(f"{data.name}: none of the listed ids can be forgotten; {why}")
    return listed


def validate_forget_set(data: LabelledData, ids) -> np.ndarray:
    """The forget set as sorted unique ids; ValueError if empty, unknown, test, or the whole training set."""
    ids = _train_ids_of(data, ids)
    if len(ids) == 0:
        raise ValueError(f"{data.name}: the forget set is empty; select at least one training sample")
    if len(ids) == len(data.train_ids):
        raise ValueError(f"{data.name}: the forget set is the whole training set ({len(ids)} samples); "
                         "nothing would be left to retain")
    return ids


def _label_of(data: LabelledData, cls: int | str) -> int:
    if isinstance(cls, str):
        if cls not in data.classes:
            raise ValueError(f"{data.name}: unknown class {cls!r}; classes are {list(data.classes)}")
        return data.classes.index(cls)
    if not 0 <= int(cls) < data.n_classes:
        raise ValueError(f"{data.name}: class index {cls} outside [0, {data.n_classes})")
    return int(cls)


def select_class(data: LabelledData, cls: int | str) -> np.ndarray:
    """Every training sample of one class (given by label index or class name)."""
    label = _label_of(data, cls)
    return np.sort(data.ids[(data.y == label) & ~data.is_test])


def select_random(data: LabelledData, fraction: float, seed: int = 0) -> np.ndarray:
    """A uniformly random ``fraction`` of the training samples (at least one)."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must lie in (0, 1), got {fraction}")
    train = data.train_ids
    k = max(1, int(round(fraction * len(train))))
    return np.sort(np.random.default_rng(seed).choice(train, size=k, replace=False))


def select_rho_mix(data: LabelledData, cls: int | str, rho: float, seed: int = 0) -> np.ndarray:
    """The class's training samples with round(ρ·size) of them swapped for random other-class samples.

    ρ = 0 is the plain class (easy: unlike what is retained), ρ = 1 a random set of the
    same size drawn from the other classes (hard: alike the retain set).
    """
    if not 0.0 <= rho <= 1.0:
        raise ValueError(f"rho must lie in [0, 1], got {rho}")
    label = _label_of(data, cls)
    own = np.sort(data.ids[(data.y == label) & ~data.is_test])
    others = np.sort(data.ids[(data.y != label) & ~data.is_test])
    n_swap = int(round(rho * len(own)))
    if n_swap > len(others):
        raise ValueError(f"rho={rho} needs {n_swap} samples of other classes, only {len(others)} exist")
    rng = np.random.default_rng(seed)
    kept = rng.choice(own, size=len(own) - n_swap, replace=False)
    swapped = rng.choice(others, size=n_swap, replace=False)
    return np.sort(np.concatenate([kept, swapped]))


def select_hardest(scores: pd.Series | tuple[np.ndarray, np.ndarray], k: int, easiest: bool = False) -> np.ndarray:
    """The ``k`` ids with the highest per-sample hardness score (lowest with ``easiest``).

    ``scores`` is a Series indexed by sample id or an (ids, scores) pair. Ties are broken
    by id so the choice is reproducible; NaN scores are never chosen.
    """
    if isinstance(scores, pd.Series):
        ids, values = scores.index.to_numpy(), scores.to_numpy()
    else:
        ids, values = scores
    ids, values = np.asarray(ids, dtype=np.int64), np.asarray(values, dtype=np.float64)
    if ids.shape != values.shape or ids.ndim != 1:
        raise ValueError(f"ids and scores must be 1-D and equally long, got {ids.shape} and {values.shape}")
    valid = ~np.isnan(values)
    ids, values = ids[valid], values[valid]
    if not 1 <= k <= len(ids):
        raise ValueError(f"k must lie in [1, {len(ids)}] (samples with a score), got {k}")
    order = np.lexsort((ids, values if easiest else -values))
    return np.sort(ids[order[:k]])


def describe_selection(data: LabelledData, ids) -> SelectionSummary:
    """Size and class mix of a selection (ids must be known to ``data``)."""
    ids = _as_ids(ids)
    labels = data.y[data.rows(ids)]
    counts = np.bincount(labels, minlength=data.n_classes)
    return SelectionSummary(size=len(ids), class_mix={data.classes[i]: int(c) for i, c in enumerate(counts) if c})
