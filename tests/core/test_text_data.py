"""TF-IDF featurisation learns only from training text; semantic duplicates land in the retain set."""

from __future__ import annotations

import numpy as np
import pytest

from hamu_core.data.builtin import load_digits_data
from hamu_core.data.labelled import DataError
from hamu_core.data.text import perturb_text, text_dataset, with_semantic_duplicates

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


def test_perturbation_is_a_subset_of_the_words():
    rng = np.random.default_rng(0)
    for text in TEXTS:
        words = perturb_text(text, rng).split()
        assert words and set(words) <= set(text.split())


def test_semantic_duplicates_join_the_training_split(corpus):
    dup = with_semantic_duplicates(corpus, [0, 2], n_per_sample=3, seed=1)
    new_ids = dup.ids[6:]
    assert new_ids.tolist() == list(range(6, 12))
    assert not dup.is_test[6:].any()
    assert dup.meta["duplicate_of"] == {6: 0, 7: 0, 8: 0, 9: 2, 10: 2, 11: 2}
    assert dup.y[6:].tolist() == [1, 1, 1, 0, 0, 0]
    expected = corpus.meta["vectorizer"].transform(list(dup.texts[6:])).toarray()
    assert np.allclose(dup.X[6:], expected)
    assert np.array_equal(dup.X[:6], corpus.X)  # the original samples are untouched
    again = with_semantic_duplicates(corpus, [0, 2], n_per_sample=3, seed=1)
    assert again.texts == dup.texts


@pytest.mark.parametrize(
    ("ids", "n", "message"),
    [([0], 0, "n_per_sample must be at least 1"), ([], 1, "forget_ids is empty"),
     ([5], 1, "are test samples")],
)
def test_semantic_duplicates_bad_arguments(corpus, ids, n, message):
    with pytest.raises(ValueError, match=message):
        with_semantic_duplicates(corpus, ids, n_per_sample=n)


def test_semantic_duplicates_need_text():
    with pytest.raises(ValueError, match="need a text dataset"):
        with_semantic_duplicates(load_digits_data(), [0], n_per_sample=1)
