"""Text as model inputs: TF-IDF features fitted on the training split.

An MLP cannot read strings, so every text dataset (built-in or uploaded) goes through
``text_dataset``: a TF-IDF vectoriser fitted on the training split only (fitting on test
text would leak it into the features), dense float32 so torch can consume it directly.
The fitted vectoriser travels in ``meta["vectorizer"]`` so that new text can be mapped
into the same feature space later.
"""

from __future__ import annotations

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from hamu_core.data.labelled import DataError, LabelledData

MAX_FEATURES = 2000  # vocabulary cap: keeps the MLP's first layer small on 2 CPU cores


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
