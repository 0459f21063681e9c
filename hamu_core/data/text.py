"""Text as model inputs: TF-IDF features, and the semantic duplicates that make forgetting hard.

An MLP cannot read strings, so every text dataset (built-in or uploaded) goes through
``text_dataset``: a TF-IDF vectoriser fitted on the training split only (fitting on test
text would leak it into the features), dense float32 so torch can consume it directly.
The fitted vectoriser travels in ``meta["vectorizer"]`` so that new text can be mapped
into the same feature space later.

``with_semantic_duplicates`` builds the paper's hard text case (HAMU_SPEC, "What gets
measured"): near-copies of the forget samples are left in the retain set, so forgetting
a sample fights against retaining its twins.
"""

from __future__ import annotations

import re

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from hamu_core.data.labelled import DataError, LabelledData

MAX_FEATURES = 2000  # vocabulary cap: keeps the MLP's first layer small on 2 CPU cores
_TOKEN = re.compile(r"\S+")


def text_dataset(
    name: str,
    texts: list[str],
    y: np.ndarray,
    is_test: np.ndarray,
    classes: tuple[str, ...],
    *,
    max_features: int = MAX_FEATURES,
    meta: dict | None = None,
) -> LabelledData:
    """TF-IDF featurised ``LabelledData`` with ids 0..n-1 in the order of ``texts``."""
    if max_features < 1:
        raise ValueError(f"max_features must be at least 1, got {max_features}")
    train_texts = [t for t, test in zip(texts, is_test) if not test]
    vectorizer = TfidfVectorizer(max_features=max_features, sublinear_tf=True, dtype=np.float32)
    try:
        vectorizer.fit(train_texts)
    except ValueError as exc:  # scikit-learn's "empty vocabulary"
        raise DataError(f"{name}: the training texts contain no words ({exc})") from exc
    X = vectorizer.transform(texts).toarray().astype(np.float32)
    return LabelledData(
        name=name,
        kind="text",
        X=X,
        y=np.asarray(y, dtype=np.int64),
        ids=np.arange(len(texts), dtype=np.int64),
        is_test=np.asarray(is_test, dtype=bool),
        classes=classes,
        texts=tuple(texts),
        meta={**(meta or {}), "vectorizer": vectorizer},
    )


def perturb_text(text: str, rng: np.random.Generator, *, drop: float = 0.2) -> str:
    """A near-duplicate: each word dropped with probability ``drop``, one adjacent pair swapped.

    No synonyms and no outside vocabulary, so the meaning and label stay those of the source.
    """
    words = _TOKEN.findall(text)
    kept = [w for w in words if rng.random() >= drop] or words[:1]
    if len(kept) > 2:
        i = int(rng.integers(len(kept) - 1))
        kept[i], kept[i + 1] = kept[i + 1], kept[i]
    return " ".join(kept)


def with_semantic_duplicates(
    data: LabelledData, forget_ids: np.ndarray, n_per_sample: int, seed: int = 0
) -> LabelledData:
    """A copy of ``data`` whose training split also holds near-duplicates of the forget samples.

    The duplicates get new ids after the current maximum, the source's label, and features
    from the dataset's own fitted vectoriser; ``meta["duplicate_of"]`` maps each new id to
    its source id. They are training samples that are *not* in ``forget_ids``, so they end
    up in the retain set: exactly the paper's hard text case.
    """
    if data.kind != "text" or data.texts is None or "vectorizer" not in data.meta:
        raise ValueError(f"{data.name}: semantic duplicates need a text dataset with its vectoriser")
    if n_per_sample < 1:
        raise ValueError(f"n_per_sample must be at least 1, got {n_per_sample}")
    forget_ids = np.unique(np.asarray(forget_ids, dtype=np.int64))
    if len(forget_ids) == 0:
        raise ValueError("forget_ids is empty: there is nothing to duplicate")
    rows = data.rows(forget_ids)
    if data.is_test[rows].any():
        raise ValueError(f"{data.name}: forget ids {forget_ids[data.is_test[rows]][:10].tolist()} are test samples")
    rng = np.random.default_rng(seed)
    sources = np.repeat(rows, n_per_sample)
    new_texts = [perturb_text(data.texts[r], rng) for r in sources]
    new_ids = data.ids.max() + 1 + np.arange(len(sources), dtype=np.int64)
    new_X = data.meta["vectorizer"].transform(new_texts).toarray().astype(np.float32)
    duplicate_of = {**data.meta.get("duplicate_of", {}), **dict(zip(new_ids.tolist(), data.ids[sources].tolist()))}
    return LabelledData(
        name=f"{data.name}+duplicates",
        kind="text",
        X=np.concatenate([data.X, new_X]),
        y=np.concatenate([data.y, data.y[sources]]),
        ids=np.concatenate([data.ids, new_ids]),
        is_test=np.concatenate([data.is_test, np.zeros(len(sources), dtype=bool)]),
        classes=data.classes,
        texts=data.texts + tuple(new_texts),
        meta={**data.meta, "duplicate_of": duplicate_of},
    )
