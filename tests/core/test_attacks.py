"""Per-sample membership attacks: the maths against slow loop references, the ROC readings against
brute force, planted membership found by LiRA and RMIA where the loss attack fails, chance on a model
that never saw the samples, U-LiRA's shadows, and the Audit's readings.

Planted membership: half the samples are easy (clear clusters, confident whether trained on or
not) and half carry random labels, which an over-parameterised MLP can only memorise. A loss
threshold then mostly flags easy samples of either kind; a per-sample test sees that a
random-label sample is confident only in models that trained on it.
"""

from __future__ import annotations

import copy
import json
import math
import statistics

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import norm, spearmanr
from sklearn.metrics import roc_auc_score

from hamu_core.audit import attack_scores as S
from hamu_core.audit.attack_verdict import exposure_sentence
from hamu_core.audit.attacks import ATTACKS, MODELS, audit, members_view, unlearn_shadows
from hamu_core.audit.shadows import build_bank
from hamu_core.data.labelled import LabelledData
from hamu_core.evaluation.privacy import Estimate
from hamu_core.evaluation.roc import resolved, roc_auc, roc_curve, tpr_at_fpr
from hamu_core.models.architectures import ModelConfig
from hamu_core.models.training import TrainConfig, retain_ids, train_model
from hamu_core.runs.experiment import unlearning_run

PLANTED_MODEL = ModelConfig(hidden=(256,))
PLANTED_RECIPE = TrainConfig(epochs=60, lr=5e-3, batch_size=64)
GDIFF = {"lr": 0.05, "clip_norm": 1.0}


def planted_data(n: int = 800, seed: int = 2) -> LabelledData:
    """Half easy samples (4 clusters), half random-label samples; a random half is the test split."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    hard = rng.random(n) < 0.5
    X = rng.normal(0, 1, (n, 20)).astype(np.float32)
    X[~hard, :4] *= 0.3
    X[~hard, y[~hard]] += 4.0
    y[hard] = rng.integers(0, 4, hard.sum())
    return LabelledData("planted", "tabular", X, y.astype(np.int64), np.arange(n, dtype=np.int64) * 7 + 3,
                        rng.random(n) < 0.5, ("a", "b", "c", "d"))


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """Data, bank (K = 8), forget set (100 random training samples), original and retrained models."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HAMU_DATA_DIR", str(tmp_path_factory.mktemp("planted")))
        data = planted_data()
        bank = build_bank(data, PLANTED_MODEL, PLANTED_RECIPE, k=8, seed=0)
    forget = np.sort(np.random.default_rng(1).choice(data.train_ids, 100, replace=False))
    original = train_model(data, data.train_ids, PLANTED_MODEL, PLANTED_RECIPE)
    retrain = train_model(data, np.setdiff1d(data.train_ids, forget), PLANTED_MODEL, PLANTED_RECIPE)
    return data, bank, forget, original, retrain


@pytest.fixture(scope="module")
def planted_audit(planted):
    data, bank, forget, original, retrain = planted
    return audit({"original": original, "current": original, "retrain": retrain}, data, forget, bank, seed=0)


# ----- the statistic and the ROC readings ---------------------------------------------------------------------

def test_logit_confidence_is_the_log_odds_of_the_true_label_and_stays_finite():
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 0.0, 0.0], [100.0, 0.0, 0.0], [-60.0, 40.0, 0.0]])
    labels = torch.tensor([0, 2, 0, 0])
    phi = S.logit_confidence(logits, labels)
    p = torch.softmax(logits[:2].double(), dim=1)[[0, 1], labels[:2]].numpy()
    np.testing.assert_allclose(phi[:2], np.log(p / (1 - p)), rtol=1e-12)
    assert phi[2] == pytest.approx(100 - math.log(2), abs=1e-9)  # p_y rounds to 1 in any float; φ does not
    assert phi[3] == pytest.approx(-100, abs=1e-9)
    np.testing.assert_allclose(S.log_probability(phi[:2]), np.log(p), rtol=1e-12)


@given(st.lists(st.integers(0, 6), min_size=1, max_size=25), st.lists(st.integers(0, 6), min_size=1, max_size=25),
       st.sampled_from([0.0, 0.01, 0.05, 0.2, 0.5, 1.0]))
def test_tpr_at_fpr_is_the_best_threshold_within_the_level(members, non_members, level):
    members, non_members = np.array(members, float), np.array(non_members, float)
    best = 0.0  # brute force over every threshold "score > t", t at each score and below all
    for t in np.r_[np.unique(np.r_[members, non_members]), -np.inf]:
        if np.mean(non_members > t) <= level + 1e-12:
            best = max(best, np.mean(members > t))
    assert tpr_at_fpr(members, non_members, level) == pytest.approx(best)
    labels = np.r_[np.ones(len(members)), np.zeros(len(non_members))]
    assert roc_auc(members, non_members) == pytest.approx(roc_auc_score(labels, np.r_[members, non_members]))


def test_roc_curve_runs_from_origin_to_one_and_contains_every_tpr_at_fpr():
    rng = np.random.default_rng(0)
    members, non_members = rng.normal(1, 1, 80), rng.normal(0, 1, 120)
    fpr, tpr = roc_curve(members, non_members)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)
    assert (np.diff(fpr) >= 0).all() and (np.diff(tpr) >= 0).all()
    for level in (0.01, 0.1, 0.3):
        assert tpr_at_fpr(members, non_members, level) == pytest.approx(tpr[fpr <= level].max())
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc(members, non_members))


def test_a_level_below_one_over_n_is_not_resolved():
    assert not resolved(0.001, 359) and resolved(0.01, 359) and resolved(0.001, 1000)


# ----- the maths against loops ----------------------------------------------------------------------------------

def loop_gaussians(stat, member, pooled):
    """μ and σ per side, one sample and one shadow at a time (statistics and math only)."""
    K, n = stat.shape
    sides = {}
    for name, take in (("in", member), ("out", ~member)):
        values = [[float(stat[k, j]) for k in range(K) if take[k, j]] for j in range(n)]
        means = [statistics.fmean(v) for v in values]
        if pooled:
            spread = sum(sum((x - m) ** 2 for x in v) for v, m in zip(values, means))
            stds = [math.sqrt(spread / sum(len(v) - 1 for v in values))] * n
        else:
            stds = [statistics.stdev(v) for v in values]
        sides[name] = (means, stds)
    return sides


@pytest.mark.parametrize("pooled", [True, False])
def test_lira_scores_equal_a_loop_over_samples_and_shadows(pooled):
    rng = np.random.default_rng(0)
    stat = rng.normal(0, 2, (6, 9))
    member = np.zeros((6, 9), bool)
    for j in range(9):
        member[rng.permutation(6)[:3], j] = True
    phi = rng.normal(0, 2, 9)
    sides = loop_gaussians(stat, member, pooled)
    g = S.fit_gaussians(stat, member, pooled=pooled)
    online, offline = S.lira_online(phi, g), S.lira_offline(phi, g)
    for j in range(9):
        (mu_in, sd_in), (mu_out, sd_out) = [(side[0][j], side[1][j]) for side in (sides["in"], sides["out"])]
        expected = norm.logpdf(phi[j], mu_in, sd_in) - norm.logpdf(phi[j], mu_out, sd_out)
        assert online[j] == pytest.approx(expected, rel=1e-9)
        assert offline[j] == pytest.approx(math.log(norm.cdf((phi[j] - mu_out) / sd_out)), rel=1e-9)


@pytest.mark.parametrize("offline", [False, True])
def test_rmia_scores_equal_pairwise_likelihood_ratios_in_a_loop(offline):
    rng = np.random.default_rng(1)
    K, n, m = 6, 8, 11
    stat = rng.normal(0, 2, (K, n + m))  # n audited samples, then m population samples
    member = np.zeros((K, n + m), bool)
    for j in range(n + m):
        member[rng.permutation(K)[:3], j] = True
    target = rng.normal(0, 2, n + m)
    p = 1 / (1 + np.exp(-stat))
    miss_in = [statistics.fmean(1 - p[k, j] for k in range(K) if member[k, j]) for j in range(n + m)]
    miss_out = [statistics.fmean(1 - p[k, j] for k in range(K) if not member[k, j]) for j in range(n + m)]
    a = sum(i * o for i, o in zip(miss_in, miss_out)) / sum(o * o for o in miss_out)
    assert S.offline_a(stat, member) == pytest.approx(min(max(a, 0.0), 1.0))
    if offline:
        p_out = [statistics.fmean(p[k, j] for k in range(K) if not member[k, j]) for j in range(n + m)]
        reference = [0.5 * ((1 + a) * po + (1 - a)) for po in p_out]
    else:
        reference = [statistics.fmean(p[:, j]) for j in range(n + m)]
    ratio = [1 / (1 + math.exp(-target[j])) / reference[j] for j in range(n + m)]
    expected = [sum(ratio[x] / ratio[z] > 1 for z in range(n, n + m)) / m for x in range(n)]
    log_reference = S.reference_log_probability(stat, member, offline=offline, a=S.offline_a(stat, member))
    np.testing.assert_allclose(np.exp(log_reference), reference, rtol=1e-12)
    log_target = S.log_probability(target)
    scores = S.rmia(log_target[:n], log_reference[:n], log_target[n:], log_reference[n:])
    np.testing.assert_array_equal(scores, expected)


def test_ulira_gaussians_use_the_unlearned_in_side_and_lend_it_to_test_samples_of_the_class():
    rng = np.random.default_rng(2)
    stat = rng.normal(0, 2, (8, 12))
    member = np.zeros((8, 12), bool)
    for j in range(12):
        member[rng.permutation(8)[:4], j] = True
    is_forget = np.r_[np.ones(5, bool), np.zeros(7, bool)]
    labels = np.array([0, 0, 1, 1, 1, 0, 1, 0, 1, 2, 2, 0])
    g = S.ulira_gaussians(stat, member, is_forget, labels, pooled=True, seed=0)
    forget_side = S.fit_gaussians(stat[:, :5], member[:, :5], pooled=True)
    np.testing.assert_allclose(g.mean_in[:5], forget_side.mean_in)
    np.testing.assert_allclose(g.std_in[:5], forget_side.std_in)
    np.testing.assert_allclose(g.mean_out, S.fit_gaussians(stat, member, pooled=True).mean_out)
    offsets = g.mean_in[:5] - g.mean_out[:5]
    for j in range(5, 12):
        lent = g.mean_in[j] - g.mean_out[j]
        donors = np.flatnonzero(labels[:5] == labels[j])
        allowed = offsets[donors] if len(donors) else offsets  # class 2 has no forget sample: any donor
        assert np.isclose(lent, allowed).any()


# ----- attacks on real models -------------------------------------------------------------------------------------

def test_audit_scores_equal_a_loop_over_the_shadow_models(planted, planted_audit):
    """LiRA's Gaussians (pooled over the whole pool) and the loss score, rebuilt one shadow model at a time."""
    data, bank, forget, original, _ = planted
    x, y = data.tensors(bank.pool_ids)

    def phi_of(model):
        with torch.no_grad():
            p = torch.softmax(model(x).double(), dim=1)[torch.arange(len(y)), y].numpy()
        return np.log(p) - np.log1p(-p)

    sides = loop_gaussians(np.stack([phi_of(model) for model in bank.models]), bank.masks, pooled=True)
    phi = phi_of(original)
    lira, loss = (planted_audit.result(a, "original").scores for a in ("lira", "loss"))
    for row in range(0, len(lira), 25):  # every 25th audited sample, members and non-members
        j = int(np.flatnonzero(bank.pool_ids == lira["id"].iloc[row])[0])
        (mu_in, sd_in), (mu_out, sd_out) = [(side[0][j], side[1][j]) for side in (sides["in"], sides["out"])]
        expected = norm.logpdf(phi[j], mu_in, sd_in) - norm.logpdf(phi[j], mu_out, sd_out)
        assert lira["score"].iloc[row] == pytest.approx(expected, rel=1e-6, abs=1e-6)
        assert loss["score"].iloc[row] == pytest.approx(-math.log1p(math.exp(-phi[j])), rel=1e-6, abs=1e-9)


def test_lira_and_rmia_find_planted_members_where_the_loss_attack_cannot(planted_audit):
    loss = planted_audit.result("loss", "original").tpr[0.01]
    for attack in ("lira", "rmia"):
        found = planted_audit.result(attack, "original").tpr[0.01]
        assert found.value >= 0.2 and found.low > loss.high, (attack, found, loss)


def test_a_model_that_never_saw_the_forget_set_scores_it_at_chance(planted_audit):
    for attack in ("loss", "lira_offline", "lira", "rmia"):
        assert planted_audit.result(attack, "retrain").auc.covers(0.5), attack


def test_the_audit_table_flags_levels_below_one_over_n(planted, planted_audit):
    data = planted[0]
    table = planted_audit.table()
    assert list(table.columns) == ["AUC", "TPR@0.1%", "TPR@1%"]
    assert list(table.index) == [(a, m) for a in ATTACKS if a != "ulira" for m in MODELS]
    result = planted_audit.result("lira", "current")
    assert result.min_fpr == pytest.approx(1 / len(data.test_ids))  # about 400 test samples: 0.1% is below 1/n
    assert result.resolved == {0.001: False, 0.01: True}
    assert table["TPR@0.1%"].str.endswith("unresolved").all() and not table["TPR@1%"].str.contains("unres").any()
    assert list(result.scores.columns) == ["id", "split", "score"]
    assert (result.scores["split"] == "forget").sum() == 100


def test_strongest_exposure_verdict_and_json(planted, planted_audit):
    forget = planted[2]
    assert planted_audit.skipped == {"ulira": planted_audit.skipped["ulira"]}  # no unlearned shadows given
    strongest = planted_audit.strongest()
    lows = {a: planted_audit.result(a, "original").tpr[0.01].low for a in planted_audit.attacks}
    assert lows[strongest] == max(lows.values()) and strongest != "loss"
    exposure = planted_audit.exposure("current")
    assert np.array_equal(exposure.index, forget) and exposure.name == f"{strongest} score"
    verdict = planted_audit.verdict()
    assert "as exposed as before unlearning" in verdict and "[" in verdict  # current is the original here
    document = planted_audit.to_dict()
    text = json.dumps(document, allow_nan=False)
    assert document["strongest"] == strongest and len(document["results"]) == 12
    assert len(document["results"][0]["scores"]["id"]) == 100 + len(planted[0].test_ids) and "roc" in text


def test_audit_refuses_missing_models_unknown_attacks_and_mismatched_shadows(planted):
    data, bank, forget, original, retrain = planted
    with pytest.raises(ValueError, match="retrain"):
        audit({"original": original, "current": original}, data, forget, bank)
    with pytest.raises(ValueError, match="attacks"):
        audit({"original": original, "current": original, "retrain": retrain}, data, forget, bank, attacks=("x",))
    with pytest.raises(ValueError, match="no attack left to run: U-LiRA needs"):
        audit({"original": original, "current": original, "retrain": retrain}, data, forget, bank, attacks=("ulira",))
    with pytest.raises(ValueError, match="unlearned_shadows has 2"):
        audit({"original": original, "current": original, "retrain": retrain}, data, forget, bank,
              attacks=("ulira",), unlearned_shadows=bank.models[:2])


# ----- U-LiRA -------------------------------------------------------------------------------------------------------

def test_unlearned_shadows_forget_their_own_share_of_the_forget_set(planted):
    data, bank, _, _, _ = planted
    outside_0 = bank.pool_ids[~bank.masks[0] & np.isin(bank.pool_ids, data.train_ids)]
    forget = outside_0[:12]  # shadow 0 never saw any of them
    unlearned = unlearn_shadows(bank, data, forget, "gdiff", GDIFF, 3, seed=4)
    assert len(unlearned) == 8 and unlearned[0] is bank.models[0]
    members = bank.pool_ids[bank.masks[1]]
    own = np.intersect1d(forget, members)
    view = members_view(data, members)
    assert np.array_equal(retain_ids(view, own), np.setdiff1d(members, own))
    model = bank.models[1]
    run = unlearning_run(view, copy.deepcopy(model).requires_grad_(True), own, "gdiff", GDIFF, seed=4)
    for _ in run.steps(3, None):
        pass
    assert all(torch.equal(a, b) for a, b in zip(run.model_.state_dict().values(), unlearned[1].state_dict().values()))
    assert not any(p.requires_grad for p in unlearned[1].parameters())
    assert unlearn_shadows(bank, data, forget, "gdiff", GDIFF, 0, seed=4) == bank.models


def test_ulira_without_unlearning_steps_is_online_lira_on_the_forget_samples(planted):
    """With no step taken, U-LiRA's IN shadows are LiRA's: the same test up to where the variance is pooled."""
    data, bank, forget, original, retrain = planted
    shadows = unlearn_shadows(bank, data, forget, "gdiff", GDIFF, 0, seed=0)
    result = audit({"original": original, "current": original, "retrain": retrain}, data, forget, bank,
                   attacks=("lira", "ulira"), unlearned_shadows=shadows, seed=0)
    assert result.skipped == {} and result.attacks == ("lira", "ulira")
    for model in MODELS:
        ulira, lira = (result.result(a, model).scores for a in ("ulira", "lira"))
        assert spearmanr(ulira["score"][:100], lira["score"][:100]).statistic > 0.98
    assert result.result("ulira", "original").tpr[0.01].value >= 0.2
    assert result.result("ulira", "retrain").auc.covers(0.5)


# ----- the verdict's words ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("now, words", [
    (Estimate(0.30, (0.25, 0.35)), "as exposed as before unlearning"),
    (Estimate(0.02, (0.00, 0.04)), "as exposed as after retraining"),
    (Estimate(0.15, (0.12, 0.18)), "partly forgotten"),
    (Estimate(0.50, (0.45, 0.55)), "more exposed than before unlearning"),
    (Estimate(0.15, (0.00, 0.40)), "cannot tell at this sample size"),
])
def test_exposure_sentence_reads_the_intervals(now, words):
    estimates = {"original": Estimate(0.30, (0.24, 0.36)), "retrain": Estimate(0.02, (0.0, 0.05)), "current": now}
    sentence = exposure_sentence("LiRA", estimates, 0.01)
    assert words in sentence and "1.0%" in sentence


def test_exposure_sentence_cannot_tell_when_the_references_overlap_and_reads_auc():
    estimates = {"original": Estimate(0.55, (0.48, 0.62)), "retrain": Estimate(0.50, (0.44, 0.56)),
                 "current": Estimate(0.52, (0.46, 0.58))}
    sentence = exposure_sentence("RMIA", estimates, None)
    assert "cannot tell at this sample size" in sentence and "AUC 0.52 [0.46, 0.58]" in sentence
    below = {"original": Estimate(0.80, (0.75, 0.85)), "retrain": Estimate(0.30, (0.25, 0.35)),
             "current": Estimate(0.10, (0.05, 0.15))}
    assert "over-forgetting" in exposure_sentence("RMIA", below, None)
