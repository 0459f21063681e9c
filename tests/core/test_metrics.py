"""evaluate(), its formulas against hand-computed values, and the verdict (hamu_core.metrics)."""

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from hamu_core.data import LabelledData, stratified_test_mask
from hamu_core.metrics import AMBER, GREEN, RED, ModelScores, avg_gap, evaluate, tug_of_war, verdict

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
    table = ev.table()
    assert list(table.index) == ["forget", "retain", "test"]
    assert table.loc["test", "accuracy gap"] == -0.5 and table.loc["test", "original accuracy"] == 1.0
    salun = ev.salun_table()
    assert salun.loc["current", "UA"] == 50.0 and salun.loc["current", "TA"] == 50.0
    assert salun.loc["retrain", "Avg. Gap"] == 0.0
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
    assert found.forgotten.status == RED and "still partly remembered" in found.forgotten.sentence
    assert found.attack.status != GREEN


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
    assert [f.status for f in found.findings] == [GREEN, GREEN, GREEN]
    assert found.forgotten.question == "Forgotten?" and "as if never seen" in found.forgotten.sentence


def test_without_a_retrain_reference_the_verdict_falls_back_and_says_so(blobs):
    data, forget, overfit, _ = blobs
    found = verdict(evaluate(overfit, data, forget, original=overfit, n_boot=30))
    assert found.forgotten.status == RED and "better than unseen data" in found.forgotten.sentence
    assert found.cost.status == GREEN and "original model" in found.cost.sentence
    assert "0.5 (unseen data)" in found.attack.sentence
    tiny = verdict(evaluate(Lookup(CURRENT), TINY, FORGET, n_boot=20))
    assert tiny.forgotten.status == AMBER and "rough guide" in tiny.forgotten.sentence
    assert tiny.cost.status == AMBER
