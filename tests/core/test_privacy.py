"""Membership attacks and bootstrap intervals (hamu_core.privacy), on arrays: no model involved."""

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from hamu_core.privacy import bootstrap_interval, loss_attack_auc, membership_attacks, mia_reading


def test_loss_attack_auc_matches_hand_count():
    # forget losses {0.1, 2.0}, test {0.1, 3.0}; pairs where forget < test count 1, ties 0.5:
    # (0.1,0.1)=0.5, (0.1,3)=1, (2,0.1)=0, (2,3)=1 → 2.5 / 4
    assert loss_attack_auc(np.array([0.1, 2.0]), np.array([0.1, 3.0])) == pytest.approx(0.625)


def test_loss_attack_auc_equals_sklearn_roc_auc_on_negated_loss():
    rng = np.random.default_rng(0)
    forget, test = np.round(rng.exponential(1.0, 70), 1), np.round(rng.exponential(1.3, 90), 1)  # rounded: many ties
    labels = np.r_[np.ones(70), np.zeros(90)]
    assert loss_attack_auc(forget, test) == pytest.approx(roc_auc_score(labels, -np.r_[forget, test]), abs=1e-12)


def test_loss_attack_auc_extremes_both_directions():
    low, high = np.array([0.01, 0.02, 0.03]), np.array([1.0, 2.0])
    assert loss_attack_auc(low, high) == 1.0  # forget always lower loss: remembered
    assert loss_attack_auc(high, low) == 0.0  # forget always higher loss: over-forgotten
    with pytest.raises(ValueError, match="forget and test"):
        loss_attack_auc(np.array([]), low)


def test_bootstrap_interval_contains_estimate_and_is_seeded():
    rng = np.random.default_rng(1)
    a, b = rng.exponential(1.0, 80), rng.exponential(1.5, 120)
    point = loss_attack_auc(a, b)
    first = bootstrap_interval(loss_attack_auc, (a, b), n_boot=300, seed=3)
    assert first[0] <= point <= first[1]
    assert bootstrap_interval(loss_attack_auc, (a, b), n_boot=300, seed=3) == first
    assert bootstrap_interval(loss_attack_auc, (a, b), n_boot=300, seed=4) != first


def test_bootstrap_interval_of_a_mean_matches_the_normal_approximation():
    values = np.random.default_rng(0).normal(2.0, 1.0, 2000)
    low, high = bootstrap_interval(np.mean, (values,), n_boot=1000, seed=0)
    half_width = 1.96 * values.std() / math.sqrt(len(values))
    assert low == pytest.approx(values.mean() - half_width, abs=0.015)
    assert high == pytest.approx(values.mean() + half_width, abs=0.015)


@pytest.mark.parametrize("kwargs, field", [({"n_boot": 0}, "n_boot"), ({"level": 1.0}, "level")])
def test_bootstrap_interval_rejects_bad_settings(kwargs, field):
    with pytest.raises(ValueError, match=field):
        bootstrap_interval(np.mean, (np.ones(3),), **kwargs)


def _features(loss: np.ndarray) -> np.ndarray:
    """Attack features for a 2-class model whose true-class probability is exp(−loss)."""
    p = np.exp(-loss)
    entropy = -(p * np.log(p) + (1 - p) * np.log(np.maximum(1 - p, 1e-12)))
    return np.column_stack([loss, entropy, np.maximum(p, 1 - p)])


def test_mia_efficacy_separates_member_like_from_unseen_like_forget_sets():
    rng = np.random.default_rng(0)
    retain = _features(rng.exponential(0.01, 300))  # memorised: tiny losses
    test = _features(rng.exponential(1.0, 200))  # unseen: larger losses
    remembered = membership_attacks(_features(rng.exponential(0.01, 100)), retain, test, seed=0, n_boot=50)
    forgotten = membership_attacks(_features(rng.exponential(1.0, 100)), retain, test, seed=0, n_boot=50)
    assert remembered.efficacy < 0.2 < 0.7 < forgotten.efficacy
    assert remembered.auc > 0.9 and abs(forgotten.auc - 0.5) < 0.15
    for result in (remembered, forgotten):
        assert result.efficacy_interval[0] <= result.efficacy <= result.efficacy_interval[1]
        assert result.auc_interval[0] <= result.auc <= result.auc_interval[1]
        assert {k: len(v) for k, v in result.member_probability.items()} == {"forget": 100, "retain": 300, "test": 200}


def test_membership_attacks_are_deterministic_under_a_seed():
    rng = np.random.default_rng(2)
    forget, retain, test = (_features(rng.exponential(s, n)) for s, n in ((0.3, 50), (0.1, 200), (1.0, 80)))
    a = membership_attacks(forget, retain, test, seed=5, n_boot=40)
    b = membership_attacks(forget, retain, test, seed=5, n_boot=40)
    assert (a.efficacy, a.efficacy_interval, a.auc_interval) == (b.efficacy, b.efficacy_interval, b.auc_interval)
    np.testing.assert_array_equal(a.member_probability["forget"], b.member_probability["forget"])


@pytest.mark.parametrize("split", ["forget", "retain", "test"])
def test_membership_attacks_refuse_an_empty_split(split):
    arrays = {name: _features(np.full(4, 0.5)) for name in ("forget", "retain", "test")}
    arrays[split] = np.empty((0, 3))
    with pytest.raises(ValueError, match=split):
        membership_attacks(arrays["forget"], arrays["retain"], arrays["test"])


def test_mia_reading_names_both_directions():
    assert "cannot tell" in mia_reading(0.52)
    assert "remembers" in mia_reading(0.8)
    below = mia_reading(0.2)
    assert "over-forgetting" in below and "just as surely" in below


def test_mia_reading_compares_to_the_retrained_model():
    assert "cannot tell" in mia_reading(0.62, retrain_auc=0.6)
    assert "retrained model's 0.60" in mia_reading(0.62, retrain_auc=0.6)
    assert "over-forgetting" in mia_reading(0.5, retrain_auc=0.7)
    with pytest.raises(ValueError, match="auc"):
        mia_reading(float("nan"))



@pytest.mark.parametrize("auc, retrain_auc", [(0.3, 0.55), (0.2, 0.45), (0.35, 0.5)])
def test_mia_reading_below_one_half_and_the_reference_says_higher_loss(auc, retrain_auc):
    """Below 0.5 and below retraining: higher loss than unseen data, never "lower loss"."""
    reading = mia_reading(auc, retrain_auc=retrain_auc)
    assert "higher loss than unseen data" in reading and "over-forgetting" in reading
    assert "lower loss" not in reading and "remembers" not in reading


def test_mia_reading_below_the_reference_but_above_one_half_is_over_forgetting_without_higher_loss():
    reading = mia_reading(0.55, retrain_auc=0.75)
    assert "over-forgetting" in reading and "less familiar than after retraining" in reading
    assert "higher loss" not in reading and "lower loss" not in reading


def test_mia_reading_above_the_reference_on_either_side_of_one_half():
    above_half = mia_reading(0.7, retrain_auc=0.55)
    assert "lower loss than unseen data" in above_half and "remembers" in above_half
    below_half = mia_reading(0.35, retrain_auc=0.1)  # a forgotten class: retraining puts its AUC far below 0.5
    assert "higher loss than unseen data, but less so than after retraining" in below_half
    assert "partly remembers" in below_half and "lower loss" not in below_half and "over-forgetting" not in below_half
