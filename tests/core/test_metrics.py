"""evaluate(), its formulas against hand-computed values, and the verdict (hamu_core.evaluation.metrics)."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import binomtest
from torch import nn

from hamu_core.data.labelled import LabelledData, stratified_test_mask
from hamu_core.evaluation.metrics import (
    AMBER,
    GREEN,
    GREY,
    RED,
    SPLITS,
    STATUS_WORDS,
    Evaluation,
    ModelScores,
    avg_gap,
    evaluate,
    tug_of_war,
    verdict,
    wilson_interval,
)

E = math.e


class Lookup(nn.Module):
    """A 'model' with fixed logits per sample: the input is the sample's row index."""

    def __init__(self, logits):
        super().__init__()
        self.table = nn.Parameter(torch.tensor(logits, dtype=torch.float32), requires_grad=False)

    def features(self, x):
        return self.table[x[:, 0].long()]

    def forward(self, x):
        return self.features(x)


# Six samples, three classes: ids 10, 11 forget; 12, 13 retain; 14, 15 test.
LABELS = [0, 1, 2, 0, 1, 2]
CURRENT = [[2, 0, 0], [1, 0, 0], [0, 0, 3], [1, 0, 0], [0, 2, 0], [0, 3, 0]]  # right, wrong, right, right, right, wrong
RETRAIN = [[0, 2, 0], [0, 1, 0], [0, 0, 3], [1, 0, 0], [0, 2, 0], [0, 0, 1]]  # wrong, right, then all right
TINY = LabelledData("tiny", "tabular", np.arange(6, dtype=np.float32)[:, None], np.array(LABELS),
                    np.arange(10, 16), np.array([False] * 4 + [True] * 2), ("a", "b", "c"))
FORGET = [10, 11]


def test_evaluate_matches_hand_computed_values():
    ev = evaluate(Lookup(CURRENT), TINY, FORGET, retrain=Lookup(RETRAIN), n_boot=20)
    assert ev.sizes == {"forget": 2, "retain": 2, "test": 2}
    assert ev.current.accuracy == {"forget": 0.5, "retain": 1.0, "test": 0.5}
    assert ev.retrain.accuracy == {"forget": 0.5, "retain": 1.0, "test": 1.0}
    # cross-entropy of logits (2,0,0) on its argmax is log(1 + 2e^-2), of (1,0,0) on a loser log(2 + e), ...
    assert ev.current.loss["forget"] == pytest.approx((math.log(1 + 2 / E**2) + math.log(2 + E)) / 2)
    assert ev.current.loss["test"] == pytest.approx((math.log(1 + 2 / E**2) + math.log(2 + E**3)) / 2)
    assert ev.retrain.loss["forget"] == pytest.approx((math.log(2 + E**2) + math.log(2 + E) - 1) / 2)
    # forget losses {0.24, 1.55} vs test {0.24, 3.13}: pairs 0.5 + 1 + 0 + 1 → 0.625
    assert ev.current.mia_auc == pytest.approx(0.625)
    # forget losses current {0.24, 1.55} vs retrain {0.55, 2.24} interleave: D = 0.5, exact p = 1
    assert ev.ks_statistic == pytest.approx(0.5) and ev.ks_pvalue == pytest.approx(1.0)
    assert ev.agreement == 0.0  # current predicts class 0 on both forget samples, retrain predicts 1
    assert ev.tug_of_war == pytest.approx(0.5)  # only the test accuracy differs, by 0.5
    mia_gap = abs(ev.current.mia_efficacy - ev.retrain.mia_efficacy) * 100
    assert ev.avg_gap == pytest.approx((0 + 0 + 50 + mia_gap) / 4)  # UA, RA equal; TA 50 vs 100
    assert ev.gaps()["accuracy"] == {"forget": 0.0, "retain": 0.0, "test": -0.5}


def test_evaluate_tables_and_json():
    ev = evaluate(Lookup(CURRENT), TINY, FORGET, retrain=Lookup(RETRAIN), original=Lookup(RETRAIN), n_boot=20)
    cls = ev.class_accuracy.set_index(["split", "class"])
    assert cls.loc[("forget", "a"), "current"] == 1.0 and cls.loc[("forget", "a"), "retrain"] == 0.0
    assert cls.loc[("test", "c"), "current"] == 0.0 and cls.loc[("test", "c"), "retrain"] == 1.0
    samples = ev.samples.set_index("id")
    assert samples.loc[[10, 11, 12, 13, 14, 15], "split"].tolist() == ["forget"] * 2 + ["retain"] * 2 + ["test"] * 2
    assert samples.loc[14, "entropy"] == pytest.approx(-(2 / (E**2 + 2)) * math.log(1 / (E**2 + 2))
                                                       - E**2 / (E**2 + 2) * math.log(E**2 / (E**2 + 2)))
    assert samples["attack_score"].between(0, 1).all()
    assert ev.cka.empty and list(ev.cka.columns) == ["layer", "cka"]  # Lookup has no Linear or Conv layer
    assert json.loads(json.dumps(ev.to_dict(), allow_nan=False))["tug_of_war"] == pytest.approx(0.5)


def test_without_a_retrain_reference_comparisons_are_missing_not_invented():
    ev = evaluate(Lookup(CURRENT), TINY, FORGET, n_boot=20)
    assert math.isnan(ev.tug_of_war) and math.isnan(ev.ks_pvalue) and math.isnan(ev.agreement)
    assert ev.to_dict()["avg_gap"] is None
    assert list(ev.class_accuracy.columns) == ["split", "class", "n", "current"]


def test_tug_of_war_and_avg_gap_by_hand():
    current = ModelScores({"forget": 0.2, "retain": 0.9, "test": 0.8}, {}, 0.5, (0.4, 0.6), 0.6, (0.5, 0.7))
    retrain = ModelScores({"forget": 0.1, "retain": 0.95, "test": 0.85}, {}, 0.5, (0.4, 0.6), 0.5, (0.4, 0.6))
    assert tug_of_war(current.accuracy, retrain.accuracy) == pytest.approx(0.9 * 0.95 * 0.95)
    assert avg_gap(current, retrain) == pytest.approx((10 + 5 + 5 + 10) / 4)


@pytest.mark.parametrize("forget, message", [([], "empty"), ([10, 99, 98], "98, 99"), ([10, 14], "test split"),
                                             ([10, 11, 12, 13], "whole training set")])
def test_bad_forget_sets_are_refused_by_name(forget, message):
    with pytest.raises(ValueError, match=message):
        evaluate(Lookup(CURRENT), TINY, forget)


def test_non_finite_outputs_are_refused():
    logits = [row[:] for row in CURRENT]
    logits[3] = [float("nan"), 0, 0]
    with pytest.raises(ValueError, match=r"NaN or Inf for sample ids \[13\]"):
        evaluate(Lookup(logits), TINY, FORGET)


# An overfit MLP against one that never saw the forget set, on overlapping blobs (test accuracy ≈ 57%).
class Net(nn.Module):
    def __init__(self, d: int, c: int, seed: int) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.body, self.head = nn.Sequential(nn.Linear(d, 128), nn.ReLU()), nn.Linear(128, c)
        for p in self.parameters():
            nn.init.normal_(p, std=0.1, generator=generator)

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.features(x))


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 450)
    X = (0.8 * rng.normal(size=(4, 10))[y] + rng.normal(size=(450, 10))).astype(np.float32)
    data = LabelledData("blobs", "tabular", X, y, np.arange(450) * 3 + 7, stratified_test_mask(y, test_fraction=1 / 3),
                        tuple("abcd"))
    forget = np.sort(rng.choice(data.train_ids, 50, replace=False))

    def train(ids):
        model, (x, t) = Net(10, 4, seed=0), data.tensors(ids)
        optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(300):
            optimiser.zero_grad()
            nn.functional.cross_entropy(model(x), t).backward()
            optimiser.step()
        return model.eval()

    return data, forget, train(data.train_ids), train(np.setdiff1d(data.train_ids, forget))


def test_overfit_model_scores_lower_mia_efficacy_than_one_that_never_saw_the_forget_set(blobs):
    data, forget, overfit, retrain = blobs
    ev = evaluate(overfit, data, forget, retrain=retrain, original=overfit, n_boot=50)
    assert ev.current.accuracy["forget"] == 1.0  # memorised
    assert ev.current.mia_efficacy < ev.retrain.mia_efficacy
    assert ev.current.mia_efficacy_interval[1] < ev.retrain.mia_efficacy_interval[0]
    assert ev.current.mia_auc > ev.retrain.mia_auc
    for scores in (ev.current, ev.retrain):
        assert scores.mia_auc_interval[0] <= scores.mia_auc <= scores.mia_auc_interval[1]
        assert scores.mia_efficacy_interval[0] <= scores.mia_efficacy <= scores.mia_efficacy_interval[1]
    assert ev.cka["cka"].tolist() == pytest.approx([1.0, 1.0])  # the original compared with itself
    found = verdict(ev)
    assert found.forgotten.status == RED and "still remembered, as before unlearning" in found.forgotten.sentence
    assert found.attack.status in (AMBER, RED) and "members than after retraining" in found.attack.sentence


def test_evaluation_is_deterministic_under_a_seed_and_leaves_the_model_alone(blobs):
    data, forget, overfit, retrain = blobs
    overfit.train()
    before = [p.clone() for p in overfit.parameters()]
    a = evaluate(overfit, data, forget, retrain=retrain, seed=3, n_boot=30)
    b = evaluate(overfit, data, forget, retrain=retrain, seed=3, n_boot=30)
    assert a.to_dict() == b.to_dict()
    assert overfit.training  # the train/eval flag is restored
    overfit.eval()
    assert all(torch.equal(p, q) for p, q in zip(before, overfit.parameters()))


def test_the_retrained_model_gets_a_green_verdict(blobs):
    data, forget, overfit, retrain = blobs
    found = verdict(evaluate(retrain, data, forget, retrain=retrain, original=overfit, n_boot=30))
    assert [f.status for f in (found.forgotten, found.cost, found.attack)] == [GREEN, GREEN, GREEN]
    assert found.forgotten.question == "Forgotten?" and "as if never seen" in found.forgotten.sentence
    assert "matches retraining within noise at this size" in found.forgotten.sentence


def test_without_a_retrain_reference_the_verdict_falls_back_and_says_so(blobs):
    data, forget, overfit, _ = blobs
    found = verdict(evaluate(overfit, data, forget, original=overfit, n_boot=30))
    assert found.forgotten.status == RED and "better than unseen data" in found.forgotten.sentence
    assert found.cost.status == GREEN and "original model" in found.cost.sentence
    assert "0.5 (unseen data)" in found.attack.sentence
    assert "no retrained model to compare it with" in found.attack.sentence
    tiny = verdict(evaluate(Lookup(CURRENT), TINY, FORGET, n_boot=20))
    assert tiny.forgotten.status == AMBER and "rough guide" in tiny.forgotten.sentence
    assert tiny.cost.status == AMBER


@pytest.mark.parametrize("k, n", [(0, 10), (1, 2), (20, 40), (39, 40), (40, 40), (137, 360)])
def test_wilson_interval_matches_scipy(k, n):
    low, high = wilson_interval(k / n, n)
    reference = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert (low, high) == pytest.approx((reference.low, reference.high), abs=1e-12)
    assert low <= k / n <= high


def _scores(forget: float, auc: tuple[float, float, float], efficacy: tuple[float, float, float] = (0.5, 0.4, 0.6),
            retain: float = 0.99, test: float = 0.95) -> ModelScores:
    """A model's scores written by hand: accuracies, and (value, low, high) of the AUC and MIA-efficacy."""
    return ModelScores({"forget": forget, "retain": retain, "test": test}, {"forget": 1.0, "retain": 0.1, "test": 0.3},
                       auc[0], auc[1:], efficacy[0], efficacy[1:])


def _evaluation(current, retrain=None, original=None, *, sizes=(100, 1000, 300), n_classes=10,
                forget_loss_gap=(0.0, 0.1)) -> Evaluation:
    """An Evaluation around hand-written scores; the comparisons the verdict does not read are left empty."""
    return Evaluation(sizes=dict(zip(SPLITS, sizes)), n_classes=n_classes, current=current, retrain=retrain,
                      original=original, ks_statistic=math.nan, ks_pvalue=math.nan, agreement=math.nan,
                      forget_loss_gap=forget_loss_gap,
                      tug_of_war=math.nan, avg_gap=math.nan, class_accuracy=pd.DataFrame(), samples=pd.DataFrame(),
                      cka=pd.DataFrame())


def test_class_forgetting_reads_as_separable_and_as_retraining():
    """AUC 0.06: the forget class is almost perfectly separable from unseen data, exactly as after retraining."""
    found = verdict(_evaluation(_scores(0.0, (0.06, 0.02, 0.10), (0.98, 0.93, 1.0)),
                                _scores(0.0, (0.05, 0.02, 0.09), (0.99, 0.95, 1.0)),
                                _scores(1.0, (0.95, 0.92, 0.97), (0.05, 0.0, 0.1))))
    attack = found.attack.sentence
    assert found.attack.status == GREEN
    assert "AUC 0.06 [0.02, 0.10]" in attack and "higher loss than unseen data" in attack
    assert "separates them almost perfectly" in attack
    assert "retrained model shows the same separation" in attack and "not a sign of memory" in attack
    assert "MIA-efficacy" in attack and "98% [93%, 100%]" in attack and "99% [95%, 100%]" in attack
    assert "agrees with the loss threshold" in attack and "cannot tell" not in attack
    assert found.forgotten.status == GREEN and "0% [0%, 4%]" in found.forgotten.sentence


def test_remembered_reads_as_still_remembered():
    found = verdict(_evaluation(_scores(1.0, (0.93, 0.90, 0.96), (0.10, 0.02, 0.20)),
                                _scores(0.6, (0.52, 0.47, 0.57), (0.55, 0.40, 0.70)),
                                _scores(1.0, (0.95, 0.92, 0.97), (0.08, 0.01, 0.18))))
    assert found.attack.status == RED and found.forgotten.status == RED
    assert "still remembered, as before unlearning" in found.attack.sentence
    assert "lower loss than unseen data" in found.attack.sentence
    assert "members than after retraining, which agrees" in found.attack.sentence
    assert "still remembered" in found.forgotten.sentence


def test_over_forgetting_reads_as_over_forgetting():
    found = verdict(_evaluation(_scores(0.40, (0.30, 0.25, 0.35), (0.90, 0.80, 0.97)),
                                _scores(0.85, (0.55, 0.50, 0.60), (0.50, 0.35, 0.65)),
                                _scores(1.0, (0.70, 0.65, 0.75), (0.30, 0.20, 0.40)), sizes=(200, 1000, 300)))
    assert found.attack.status == RED and found.forgotten.status == RED
    assert "over-forgetting" in found.attack.sentence and "higher loss than unseen data" in found.attack.sentence
    assert "unseen than after retraining, which agrees" in found.attack.sentence
    assert "over-forgetting" in found.forgotten.sentence and "remembered" not in found.forgotten.sentence


def test_forty_samples_cannot_tell():
    """40 forget samples: 0.545 [0.45, 0.66], with the original's and the retrain's intervals overlapping."""
    found = verdict(_evaluation(_scores(0.975, (0.545, 0.45, 0.66)), _scores(0.95, (0.50, 0.40, 0.60)),
                                _scores(1.0, (0.56, 0.46, 0.66)), sizes=(40, 1000, 40)))
    assert found.attack.status == GREY and found.forgotten.status == GREY
    assert "AUC 0.55 [0.45, 0.66]" in found.attack.sentence
    for finding in (found.attack, found.forgotten):
        assert "this test cannot tell at this sample size" in finding.sentence
    assert "cannot tell" in STATUS_WORDS[GREY]


def test_without_the_original_a_wide_interval_still_cannot_tell():
    """No original model: a value a clear difference above retraining stands in for the remembering reference."""
    found = verdict(_evaluation(_scores(0.55, (0.55, 0.44, 0.66)), _scores(0.5, (0.52, 0.48, 0.56)),
                                sizes=(20, 1000, 40)))
    assert found.attack.status == GREY and "a clearly remembering model's 0.62" in found.attack.sentence
    assert found.forgotten.status == GREY and "a clearly remembering model's 60%" in found.forgotten.sentence


def test_forget_accuracy_at_chance_is_guessing_not_remembering():
    """Two classes, a forgotten one: 50% on it is a coin flip, not memory; retraining gives 0%."""
    chance = verdict(_evaluation(_scores(0.5, (0.1, 0.05, 0.15)), _scores(0.0, (0.05, 0.02, 0.09)),
                                 _scores(1.0, (0.6, 0.55, 0.65)), n_classes=2)).forgotten
    assert chance.status == AMBER
    assert "50% [40%, 60%]" in chance.sentence and "within noise of chance (50% for 2 classes)" in chance.sentence
    assert "guessing" in chance.sentence and "retraining would give 0%" in chance.sentence
    assert "still remembered" not in chance.sentence and "partly remembered" not in chance.sentence
    above_chance = verdict(_evaluation(_scores(0.8, (0.1, 0.05, 0.15)), _scores(0.0, (0.05, 0.02, 0.09)),
                                       _scores(1.0, (0.6, 0.55, 0.65)), n_classes=2)).forgotten
    assert above_chance.status == RED and "still partly remembered" in above_chance.sentence


def test_an_accuracy_gap_within_noise_matches_retraining():
    """80% of 60 against retraining's 85%: five points, inside the Wilson interval [68%, 88%]."""
    found = verdict(_evaluation(_scores(0.80, (0.5, 0.45, 0.55)), _scores(0.85, (0.5, 0.45, 0.55)),
                                _scores(1.0, (0.9, 0.85, 0.95)), sizes=(60, 1000, 300)))
    assert found.forgotten.status == GREEN
    assert "80% [68%, 88%]" in found.forgotten.sentence
    assert "matches retraining within noise at this size" in found.forgotten.sentence
    assert found.cost.status == GREEN and "within noise" in found.cost.sentence


def test_attacks_that_disagree_say_so_and_do_not_pass():
    found = verdict(_evaluation(_scores(0.0, (0.06, 0.02, 0.10), (0.40, 0.30, 0.50)),
                                _scores(0.0, (0.05, 0.02, 0.09), (0.99, 0.95, 1.0)),
                                _scores(1.0, (0.95, 0.92, 0.97))))
    assert found.attack.status == AMBER
    assert "same separation" in found.attack.sentence and "the two attacks disagree" in found.attack.sentence


def test_every_status_has_words():
    assert set(STATUS_WORDS) == {GREEN, AMBER, RED, GREY}
    assert all(words and words.lower() != status for status, words in STATUS_WORDS.items())


def test_matching_accuracy_with_a_forget_loss_far_from_retraining_is_not_called_forgotten():
    """Half way there: forget accuracy already at the retrained model's 0 %, mean forget loss 7.4 against 16.1."""
    scores = _scores(0.0, (0.05, 0.03, 0.07), (0.99, 0.95, 1.0))
    far = verdict(_evaluation(scores, scores, _scores(1.0, (0.6, 0.55, 0.65), (0.1, 0.05, 0.2)),
                              forget_loss_gap=(-8.7, 0.5))).forgotten
    assert far.status == AMBER and "partly remembers" in far.sentence and "-8.7" in far.sentence
    near = verdict(_evaluation(scores, scores, _scores(1.0, (0.6, 0.55, 0.65), (0.1, 0.05, 0.2)),
                               forget_loss_gap=(-0.3, 0.5))).forgotten
    assert near.status == GREEN and "within ±0.5" in near.sentence
