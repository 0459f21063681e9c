"""Forget-set selections: properties over seeds and ρ, and every refusal with its message."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hamu_core.data.builtin import load_digits_data
from hamu_core.data.selection import (
    SHOWN_IDS,
    describe_selection,
    select_class,
    select_hardest,
    select_listed,
    select_random,
    select_rho_mix,
    validate_forget_set,
)

DATA = load_digits_data()  # instant, read-only: shared by every example
TRAIN = set(DATA.train_ids.tolist())


def labels_of(ids):
    return DATA.y[DATA.rows(ids)]


@given(cls=st.integers(0, 9), rho=st.floats(0.0, 1.0), seed=st.integers(0, 2**32 - 1))
def test_rho_mix_keeps_size_and_swaps_a_rho_fraction(cls, rho, seed):
    own = select_class(DATA, cls)
    mixed = select_rho_mix(DATA, cls, rho, seed)
    assert len(mixed) == len(own) and len(np.unique(mixed)) == len(mixed)
    assert set(mixed.tolist()) <= TRAIN and np.all(np.diff(mixed) > 0)
    other_share = np.mean(labels_of(mixed) != cls)
    assert abs(other_share - rho) <= 0.5 / len(own) + 1e-9  # only rounding separates them


@given(fraction=st.floats(0.001, 0.999), seed=st.integers(0, 1000))
def test_random_selection_is_a_seeded_train_subset(fraction, seed):
    chosen = select_random(DATA, fraction, seed)
    assert len(chosen) == max(1, round(fraction * len(TRAIN)))
    assert set(chosen.tolist()) <= TRAIN
    assert np.array_equal(chosen, select_random(DATA, fraction, seed))


def test_class_selection_by_index_or_name():
    by_index, by_name = select_class(DATA, 3), select_class(DATA, "3")
    assert np.array_equal(by_index, by_name) and len(by_index) > 100
    assert np.all(labels_of(by_index) == 3) and set(by_index.tolist()) <= TRAIN
    assert len(by_index) == np.sum((DATA.y == 3) & ~DATA.is_test)


def test_rho_extremes():
    assert np.array_equal(select_rho_mix(DATA, 3, 0.0, seed=1), select_class(DATA, 3))
    assert not np.any(labels_of(select_rho_mix(DATA, 3, 1.0, seed=1)) == 3)


def test_hardest_and_easiest_from_series_or_arrays():
    scores = pd.Series([0.9, -0.2, 0.5, np.nan, 0.5], index=[10, 11, 12, 13, 14])
    assert select_hardest(scores, 2).tolist() == [10, 12]  # the tie 12/14 goes to the lower id
    assert select_hardest((scores.index.to_numpy(), scores.to_numpy()), 1, easiest=True).tolist() == [11]
    with pytest.raises(ValueError, match=r"k must lie in \[1, 4\]"):
        select_hardest(scores, 5)
    with pytest.raises(ValueError, match="equally long"):
        select_hardest((np.arange(3), np.zeros(2)), 1)


def test_describe_selection_counts_classes():
    ids = np.concatenate([select_class(DATA, 1)[:3], select_class(DATA, 7)[:2]])
    summary = describe_selection(DATA, ids)
    assert summary.size == 5 and summary.class_mix == {"1": 3, "7": 2}
    assert str(summary) == "Forget set: 5 samples (1: 3, 7: 2)"


def test_listed_ids_keep_the_training_ids_sorted_and_unique():
    train = DATA.train_ids[:3]
    listed = select_listed(DATA, train[::-1].tolist() + [int(train[0])])
    assert listed.ids.tolist() == sorted(train.tolist()) and listed.skipped == {}


@given(st.lists(st.sampled_from(sorted(TRAIN)), max_size=40), st.lists(st.sampled_from(DATA.test_ids.tolist()),
       max_size=15), st.lists(st.integers(10**6, 10**6 + 50), max_size=5))
def test_listed_ids_split_into_training_test_and_unknown(train, test, unknown):
    """A list as people write it: every id lands in exactly one group, each group sorted and unique."""
    ids = train + test + unknown
    if not train:
        with pytest.raises(ValueError, match="none of the listed ids can be forgotten"):
            select_listed(DATA, ids)
        return
    listed = select_listed(DATA, np.random.default_rng(0).permutation(ids))
    assert listed.ids.tolist() == sorted(set(train))
    expected = {"test": sorted(set(test)), "unknown": sorted(set(unknown))}
    assert {reason: group.tolist() for reason, group in listed.skipped.items()} == {
        reason: group for reason, group in expected.items() if group}
    assert listed.n_skipped == len(set(test)) + len(set(unknown))


def test_skipped_note_says_how_many_why_and_names_the_first_few():
    """48 scattered ids of which 9 are test ids and 2 unknown: the 37 training ids are kept."""
    train, test = DATA.train_ids[::30][:37].tolist(), DATA.test_ids[::5][:9].tolist()
    listed = select_listed(DATA, train + test + [999999, 1000000])
    assert len(listed.ids) == 37
    note = listed.skipped_note()
    assert note.startswith("skipped 11 of 48 listed ids: 9 in the test split (never trained on, so nothing to forget)")
    test_group = note.split("; ")[0].split("): ")[1]
    assert test_group == ", ".join(map(str, sorted(test)[:SHOWN_IDS])) + ", …"
    assert note.endswith("2 unknown sample ids (not in this dataset): 999999, 1000000")


@pytest.mark.parametrize("ids, message", [
    ([int(DATA.test_ids[0])], "none of the listed ids can be forgotten; skipped 1 of 1 listed ids: 1 in the test"),
    ([99999], "unknown sample ids .*: 99999"),
    ([], "the list is empty"),
])
def test_a_list_without_any_training_id_is_refused_saying_why(ids, message):
    with pytest.raises(ValueError, match=message):
        select_listed(DATA, ids)


def test_forget_set_validation():
    with pytest.raises(ValueError, match="forget set is empty"):
        validate_forget_set(DATA, [])
    with pytest.raises(ValueError, match=r"whole training set \(1438 samples\)"):
        validate_forget_set(DATA, DATA.train_ids)
    with pytest.raises(ValueError, match="unknown sample ids"):
        validate_forget_set(DATA, [-1])
    a, b = DATA.train_ids[:2].tolist()
    assert validate_forget_set(DATA, [b, a, a]).tolist() == [a, b]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: select_random(DATA, 0.0), r"fraction must lie in \(0, 1\)"),
        (lambda: select_rho_mix(DATA, 3, 1.5), r"rho must lie in \[0, 1\]"),
        (lambda: select_class(DATA, "cat"), "unknown class 'cat'"),
        (lambda: select_class(DATA, 10), r"class index 10 outside \[0, 10\)"),
    ],
)
def test_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()
