"""Membership-inference attacks on the forget set, with seeded bootstrap intervals.

An unlearned model should treat its forget set the way a model that never saw it would, so
the attacks ask: can the forget samples be told apart from data the model never trained on?
Both attacks work on per-sample numbers the caller computes once (loss, prediction entropy,
top-class probability), so nothing here runs a model and everything is cheap to repeat for
the current, the original and the retrained model.

Reading the numbers needs care in both directions. For random forgetting a retrained model
still classifies most forget samples correctly (they resemble the retain data), so its AUC is
a little above 0.5, not exactly 0.5; and an AUC far *below* 0.5 means the forget samples now
have higher loss than unseen data — over-forgetting — which identifies them just as surely as
an AUC far above it. ``mia_reading`` says this in words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.stats import rankdata
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

ATTACK_FEATURES = ("loss", "entropy", "max_prob")  # column order of every feature array here
CLOSE_AUC = 0.05  # |AUC − reference| at most this reads as "cannot tell"
FAR_AUC = 0.10  # beyond this the samples are clearly given away


def bootstrap_interval(
    statistic: Callable[..., float], groups: tuple[np.ndarray, ...], *, n_boot: int = 200, seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(*groups)`` (Efron & Tibshirani 1993, ch. 13).

    Each group is resampled with replacement on its own (a stratified bootstrap), so a
    resample keeps the size of every group and a two-group statistic such as an AUC never
    meets a resample with one group missing. Deterministic for a given ``seed``.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if any(len(g) == 0 for g in groups):
        raise ValueError("every bootstrap group needs at least one sample")
    rng = np.random.default_rng(seed)
    stats = np.empty(n_boot)
    for b in range(n_boot):
        stats[b] = statistic(*(g[rng.integers(0, len(g), len(g))] for g in groups))
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(stats, [tail, 100.0 - tail])
    return float(low), float(high)


def loss_attack_auc(forget_loss: np.ndarray, test_loss: np.ndarray) -> float:
    """AUC of the loss-threshold attack, forget samples ("members") against unseen test samples.

    The attack of Yeom et al. 2018 ("Privacy risk in machine learning: analyzing the
    connection to overfitting"): the lower a sample's loss, the more likely it was trained on,
    so the score is −loss. The AUC is the probability that a random forget sample has lower
    loss than a random test sample (ties count half): 0.5 means the forget set looks unseen.
    Computed as the Mann–Whitney U statistic over n_f·n_t from average ranks, which equals
    ``sklearn.metrics.roc_auc_score`` on −loss (the tests check it) at a fraction of the cost,
    so the bootstrap's hundreds of resamples stay fast.
    """
    n_forget, n_test = len(forget_loss), len(test_loss)
    if n_forget == 0 or n_test == 0:
        raise ValueError(f"the loss attack needs forget and test samples, got {n_forget} and {n_test}")
    ranks = rankdata(-np.r_[forget_loss, test_loss])  # average ranks: ties count half
    return float((ranks[:n_forget].sum() - n_forget * (n_forget + 1) / 2) / (n_forget * n_test))


def attack_inputs(features: np.ndarray) -> np.ndarray:
    """The attack's inputs: log-loss, entropy and top-class probability.

    The loss enters as log(loss): losses span many orders of magnitude (a memorised sample
    has loss 1e-5, a forgotten one may have 20), and a linear attack on the raw loss would
    only ever see the few largest values. The log is monotone, so no information is lost.
    """
    return np.column_stack([np.log(np.maximum(features[:, 0], 1e-12)), features[:, 1], features[:, 2]])


@dataclass(frozen=True, eq=False)
class AttackResult:
    """Both attacks' verdicts on the forget set, with bootstrap 95% intervals."""

    auc: float  # loss-threshold attack AUC, forget vs test (0.5 = looks unseen)
    auc_interval: tuple[float, float]
    efficacy: float  # MIA-efficacy: fraction of forget samples the trained attack calls non-members
    efficacy_interval: tuple[float, float]
    member_probability: dict[str, np.ndarray]  # split → per-sample probability of "member" under the attack


def membership_attacks(
    forget: np.ndarray, retain: np.ndarray, test: np.ndarray, *, seed: int = 0, n_boot: int = 200
) -> AttackResult:
    """Run both attacks; each argument is an (n, 3) array with columns ``ATTACK_FEATURES``.

    MIA-efficacy is the shadow-free attack of the SalUn-style evaluations (Jia et al. 2023,
    "Model sparsity can simplify machine unlearning"; Fan et al. 2024, "SalUn"): a logistic
    regression is trained to separate retain samples (members) from test samples
    (non-members) on the model's own outputs, then applied to the forget set. MIA-efficacy is
    the fraction of forget samples it predicts to be non-members: higher means the forget set
    looks more like unseen data. The training classes are balanced by subsampling the larger
    split to the size of the smaller (seeded). Its interval resamples the forget set only: it
    describes the uncertainty of the forget-set estimate for this fitted attack.
    """
    for name, array in (("forget", forget), ("retain", retain), ("test", test)):
        if len(array) == 0:
            raise ValueError(f"the {name} split is empty; the membership attacks need samples in every split")
        if array.ndim != 2 or array.shape[1] != len(ATTACK_FEATURES):
            raise ValueError(f"{name} features must have shape (n, {len(ATTACK_FEATURES)}), got {array.shape}")
    rng = np.random.default_rng(seed)
    n = min(len(retain), len(test))
    members = retain[np.sort(rng.choice(len(retain), n, replace=False))]
    non_members = test[np.sort(rng.choice(len(test), n, replace=False))]
    attack = make_pipeline(StandardScaler(), LogisticRegression())
    attack.fit(attack_inputs(np.vstack([members, non_members])), np.r_[np.ones(n), np.zeros(n)])
    probability = {name: attack.predict_proba(attack_inputs(array))[:, 1]
                   for name, array in (("forget", forget), ("retain", retain), ("test", test))}
    called_unseen = (probability["forget"] < 0.5).astype(float)
    return AttackResult(
        auc=loss_attack_auc(forget[:, 0], test[:, 0]),
        auc_interval=bootstrap_interval(loss_attack_auc, (forget[:, 0], test[:, 0]), n_boot=n_boot, seed=seed),
        efficacy=float(called_unseen.mean()),
        efficacy_interval=bootstrap_interval(np.mean, (called_unseen,), n_boot=n_boot, seed=seed),
        member_probability=probability,
    )


def mia_reading(auc: float, retrain_auc: float | None = None) -> str:
    """One plain sentence on what a loss-attack AUC gives away.

    Judged by the distance from the reference: the retrained model's AUC when given (the
    honest target, since a model that never saw random forget samples still fits most of
    them), otherwise 0.5. Far above means the samples are still remembered; far below means
    they were over-forgotten, which an attacker can detect just as well.
    """
    if not np.isfinite(auc):
        raise ValueError(f"auc must be a finite number, got {auc}")
    reference = 0.5 if retrain_auc is None else retrain_auc
    name = "0.5 (unseen data)" if retrain_auc is None else f"the retrained model's {retrain_auc:.2f}"
    distance = auc - reference
    if abs(distance) <= CLOSE_AUC:
        return (f"Attack AUC {auc:.2f} is within {CLOSE_AUC:.2f} of {name}: "
                "an attacker cannot tell the forget samples from data the model never saw.")
    strength = "clearly" if abs(distance) > FAR_AUC else "somewhat"
    # The retrained reference can lie on either side of 0.5 (below it after forgetting a whole
    # class, above it for random samples), so what the AUC says about the losses themselves
    # (its side of 0.5) and how it compares with retraining are worded separately.
    if distance > 0:
        if auc > 0.5:
            return (f"Attack AUC {auc:.2f} is {strength} above {name}: the forget samples still have "
                    "lower loss than unseen data, so the model still remembers them.")
        return (f"Attack AUC {auc:.2f} is {strength} above {name}: the forget samples have higher loss than "
                "unseen data, but less so than after retraining, so the model still partly remembers them.")
    if auc < 0.5:
        return (f"Attack AUC {auc:.2f} is {strength} below {name}: the forget samples now have higher loss "
                "than unseen data (over-forgetting), which gives them away just as surely as remembering them.")
    return (f"Attack AUC {auc:.2f} is {strength} below {name}: the forget samples look less familiar than "
            "after retraining (over-forgetting), which gives them away just as surely as remembering them.")
