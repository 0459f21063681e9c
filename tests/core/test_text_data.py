"""TF-IDF featurisation learns only from training text."""

from __future__ import annotations

import numpy as np
import pytest

from hamu_core.data.labelled import DataError
from hamu_core.data.text import text_dataset

TEXTS = ["a great warm film", "great acting and a warm story", "dull and slow",
         "slow dull plot", "warm funny great", "zebra unseen word"]
LABELS = np.array([1, 1, 0, 0, 1, 0])
IS_TEST = np.array([False, False, False, False, False, True])


@pytest.fixture()
def corpus():
    return text_dataset("tiny", TEXTS, LABELS, IS_TEST, ("neg", "pos"))


def test_vectoriser_is_fitted_on_train_only(corpus):
    vocabulary = corpus.meta["vectorizer"].vocabulary_
    assert "zebra" not in vocabulary and "great" in vocabulary
    assert corpus.X.dtype == np.float32 and corpus.X.shape == (6, len(vocabulary))
    assert not corpus.X[5].any()  # the test text has no training word
    assert np.array_equal(corpus.ids, np.arange(6)) and corpus.texts == tuple(TEXTS)


def test_text_without_words_is_refused():
    with pytest.raises(DataError, match="no words"):
        text_dataset("blank", ["  ", "...", "x"], np.array([0, 1, 0]), np.array([False, False, True]), ("a", "b"))
