"""Membership attacks, their intervals and their reading (hamu_core.evaluation.privacy), on arrays: no model involved."""

import math

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from hamu_core.evaluation.privacy import (
    AS_RETRAINING,
    CANNOT_TELL,
    OVER_FORGOTTEN,
    REMEMBERED,
    Estimate,
    LogisticAttack,
    bootstrap_interval,
    cannot_tell,
    loss_attack_auc,
    membership_attacks,
    mia_reading,
    read_auc,
)


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


def test_a_one_sample_group_is_held_fixed_while_the_others_resample():
    test_loss = np.random.default_rng(2).exponential(1.0, 60)
    one = np.array([0.4])
    low, high = bootstrap_interval(loss_attack_auc, (one, test_loss), n_boot=300, seed=0)
    assert low < loss_attack_auc(one, test_loss) < high  # the test group's resampling still moves it
    # with the forget sample fixed, every resampled AUC is a fraction of test losses above 0.4
    assert 0.0 <= low and high <= 1.0
    assert bootstrap_interval(loss_attack_auc, (one, np.array([1.0])), seed=0) == (1.0, 1.0)


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


@pytest.mark.parametrize("seed", range(6))
def test_logistic_attack_matches_scikit_learn(seed):
    """The batched Newton fit against make_pipeline(StandardScaler(), LogisticRegression()) on each training set."""
    rng = np.random.default_rng(seed)
    m = int(rng.integers(2, 150))
    x = rng.normal(size=(3, 2 * m, 3)) * rng.exponential(1.0, 3) + 5 * rng.normal(size=3)
    x[:, :m] += [[0.0], [0.7], [6.0]][seed % 3]  # from inseparable to almost separable members
    if seed == 0:
        x[..., 1] = 2.0  # a constant input: scaled by 1, as scikit-learn does
    labels = np.r_[np.ones(m), np.zeros(m)]
    attack = LogisticAttack.fit(x, np.broadcast_to(labels, (3, 2 * m)))
    probe = 3 * rng.normal(size=(40, 3))
    for b in range(3):
        reference = make_pipeline(StandardScaler(), LogisticRegression(tol=1e-10, max_iter=10_000)).fit(x[b], labels)
        np.testing.assert_allclose(attack.member_probability(probe)[b], reference.predict_proba(probe)[:, 1],
                                   atol=1e-6)


def test_the_refit_interval_covers_the_attack_seed_spread_the_forget_only_bootstrap_missed():
    """On a weak attack (retain ≫ test), efficacy moves with which retain samples train the attack.

    The old interval bootstrapped the forget set only, around one fitted attack; the refit
    interval resamples the attack's training sets too. Both are judged by how many of 30
    attack seeds' efficacies fall inside them, averaged over the intervals of all 30 seeds.
    """
    rng = np.random.default_rng(0)
    retain, test, forget = (_features(rng.exponential(s, n)) for s, n in ((0.5, 2000), (0.6, 200), (0.55, 100)))
    results = [membership_attacks(forget, retain, test, seed=seed, n_boot=100) for seed in range(30)]
    efficacy = np.array([r.efficacy for r in results])
    assert efficacy.max() - efficacy.min() > 0.2  # the spread the interval has to describe

    def coverage(interval):
        return np.mean((efficacy >= interval[0]) & (efficacy <= interval[1]))

    forget_only = [bootstrap_interval(np.mean, ((r.member_probability["forget"] < 0.5).astype(float),),
                                      n_boot=100, seed=seed) for seed, r in enumerate(results)]
    refit = [r.efficacy_interval for r in results]
    assert np.mean([coverage(i) for i in refit]) >= 0.9
    assert np.mean([coverage(i) for i in forget_only]) <= 0.7
    assert all(coverage(i) >= 0.8 for i in refit[:5])
    assert max(high - low for low, high in refit) < 0.6  # informative, not [0, 1]


def test_estimate_text_and_comparisons():
    auc = Estimate(0.545, (0.45, 0.66))
    assert auc.text() == "0.55 [0.45, 0.66]" and Estimate(0.5, (0.4, 0.6)).text(percent=True) == "50% [40%, 60%]"
    assert Estimate(0.7).text() == "0.70"
    assert auc.covers(0.45) and not auc.covers(0.67)
    assert auc.matches(0.70, close=0.05) is False and auc.matches(0.70, close=0.2)
    assert auc.overlaps(Estimate(0.7, (0.66, 0.8))) and not auc.overlaps(Estimate(0.7, (0.67, 0.8)))


def test_cannot_tell_states_each_rule():
    retrain, original = Estimate(0.50, (0.40, 0.60)), Estimate(0.56, (0.46, 0.66))
    current = Estimate(0.545, (0.45, 0.66))
    assert "cannot even separate the two reference points" in cannot_tell(current, retrain, original, far=0.1)
    apart = Estimate(0.90, (0.85, 0.95))
    assert cannot_tell(Estimate(0.7, (0.45, 0.92)), retrain, apart, far=0.1) == \
        "the interval contains both the retrained model's 0.50 and the original model's 0.90"
    assert cannot_tell(Estimate(0.52, (0.47, 0.57)), retrain, apart, far=0.1) is None
    # without the original model a value a clear difference above retraining stands in for it
    stand_in = cannot_tell(Estimate(0.55, (0.45, 0.65)), Estimate(0.5, (0.45, 0.55)), None, far=0.1)
    assert "a clearly remembering model's 0.60" in stand_in
    assert cannot_tell(Estimate(0.52, (0.47, 0.57)), Estimate(0.5, (0.45, 0.55)), None, far=0.1) is None


def test_an_auc_far_below_one_half_is_separation_and_retraining_says_whether_it_is_memory():
    """Forgetting a class: AUC 0.06 is near-perfect separation, and the retrained model shows the same."""
    reading = read_auc(Estimate(0.06, (0.02, 0.10)), Estimate(0.05, (0.02, 0.09)), Estimate(0.95, (0.92, 0.97)))
    assert reading.standing == AS_RETRAINING
    assert "0.06 [0.02, 0.10]" in reading.sentence and "higher loss than unseen data" in reading.sentence
    assert "separates them almost perfectly" in reading.sentence
    assert "retrained model shows the same separation (0.05 [0.02, 0.09])" in reading.sentence
    assert "not a sign of memory" in reading.sentence and "cannot tell" not in reading.sentence


def test_an_auc_near_one_half_without_retraining_is_not_separation():
    reading = read_auc(Estimate(0.52))
    assert reading.standing == AS_RETRAINING and "does not separate" in reading.sentence
    assert "no retrained model" in reading.sentence


@pytest.mark.parametrize("auc, words", [(0.8, "lower loss than unseen data"), (0.1, "higher loss than unseen data")])
def test_without_retraining_both_directions_are_separation(auc, words):
    reading = mia_reading(auc)
    assert words in reading and "separates them" in reading and "0.5 (unseen data)" in reading
    assert ("still remembered" in reading) == (auc > 0.5) and ("over-forgotten" in reading) == (auc < 0.5)


def test_the_same_separation_as_retraining_is_exact_unlearning():
    reading = mia_reading(0.62, retrain_auc=0.6)
    assert "retrained model shows the same separation (0.60)" in reading and "lower loss than unseen data" in reading
    with pytest.raises(ValueError, match="auc"):
        mia_reading(float("nan"))


@pytest.mark.parametrize("auc, retrain_auc", [(0.3, 0.55), (0.2, 0.45), (0.35, 0.5)])
def test_below_one_half_and_below_retraining_is_over_forgetting_with_higher_loss(auc, retrain_auc):
    reading = read_auc(Estimate(auc), Estimate(retrain_auc))
    assert reading.standing == OVER_FORGOTTEN and reading.distance == pytest.approx(auc - retrain_auc)
    assert "higher loss than unseen data" in reading.sentence and "over-forgetting" in reading.sentence
    assert "lower loss" not in reading.sentence and "remembered" not in reading.sentence


def test_below_retraining_but_near_one_half_is_over_forgetting_without_a_loss_side():
    reading = mia_reading(0.54, retrain_auc=0.75)
    assert "does not separate" in reading and "below the retrained model's 0.75" in reading
    assert "over-forgetting" in reading and "higher loss" not in reading and "lower loss" not in reading


def test_above_retraining_on_either_side_of_one_half_is_remembering():
    above_half = read_auc(Estimate(0.93, (0.90, 0.96)), Estimate(0.52, (0.47, 0.57)), Estimate(0.95, (0.92, 0.97)))
    assert above_half.standing == REMEMBERED and "lower loss than unseen data" in above_half.sentence
    assert "still remembered, as before unlearning (original model 0.95 [0.92, 0.97])" in above_half.sentence
    below_half = read_auc(Estimate(0.35), Estimate(0.1))  # a forgotten class: retraining puts its AUC far below 0.5
    assert below_half.standing == REMEMBERED and "higher loss than unseen data" in below_half.sentence
    assert "still partly remembered" in below_half.sentence and "over-forgetting" not in below_half.sentence


def test_forty_samples_cannot_tell():
    """0.545 [0.45, 0.66] with overlapping reference intervals: the test says so instead of passing."""
    reading = read_auc(Estimate(0.545, (0.45, 0.66)), Estimate(0.50, (0.40, 0.60)), Estimate(0.56, (0.46, 0.66)))
    assert reading.standing == CANNOT_TELL
    assert "AUC 0.55 [0.45, 0.66]" in reading.sentence and "cannot tell at this sample size" in reading.sentence
    assert "retrained model's 0.50 [0.40, 0.60] and the original model's 0.56 [0.46, 0.66]" in reading.sentence
