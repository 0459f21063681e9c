"""Membership-inference attacks on the forget set, their intervals, and what they say in words.

An unlearned model should treat its forget set the way a model that never saw it would, so
the attacks ask: can the forget samples be told apart from data the model never trained on?
Both attacks work on per-sample numbers the caller computes once (loss, prediction entropy,
top-class probability), so nothing here runs a model and everything is cheap to repeat for
the current, the original and the retrained model.

Reading the numbers needs care in three ways. An AUC far *below* 0.5 means the forget samples
have higher loss than unseen data, which separates them as surely as an AUC far above it.
Whether a separation is a problem depends on the retrained model: after forgetting a whole
class it separates them too (it never learned the class), so matching it is exact unlearning,
not memory. And with few samples the intervals can be too wide to tell the original model
from the retrained one; then the reading says the test cannot tell rather than passing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import expit
from scipy.stats import bootstrap, rankdata

ATTACK_FEATURES = ("loss", "entropy", "max_prob")  # column order of every feature array here
CLOSE_AUC = 0.05  # |AUC − reference| at most this reads as "the same"
FAR_AUC = 0.10  # beyond this the difference is clear
PERFECT_AUC = 0.40  # |AUC − 0.5| beyond this (AUC below 0.1 or above 0.9) is near-perfect separation
CLOSE_EFFICACY = 0.05  # |MIA-efficacy − reference| at most this reads as "the same"
NEWTON_STEPS = 50  # cap on the Newton steps that fit the attack (it converges in under ten)
BATCH_ROWS = 500_000  # attack refits are batched so that one batch holds about this many input rows
# How a measured number stands against the retrained model's (see ``read_auc`` and ``cannot_tell``).
AS_RETRAINING, REMEMBERED, OVER_FORGOTTEN, CANNOT_TELL = "as retraining", "remembered", "over-forgotten", "cannot tell"


def bootstrap_interval(
    statistic: Callable[..., float], groups: tuple[np.ndarray, ...], *, n_boot: int = 200, seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(*groups)`` (Efron & Tibshirani 1993, ch. 13).

    ``scipy.stats.bootstrap`` resamples each group with replacement on its own (unpaired: a
    stratified bootstrap), so a resample keeps the size of every group and a two-group
    statistic such as an AUC never meets a resample with one group missing. scipy needs two
    observations to resample a group; a group of one resamples to itself anyway, so it is
    held fixed (a forget set of one sample is a real request). Deterministic for a given ``seed``.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if any(len(g) == 0 for g in groups):
        raise ValueError("every bootstrap group needs at least one sample")
    varying = [i for i, g in enumerate(groups) if len(g) > 1]
    if not varying:
        value = float(statistic(*groups))
        return value, value

    def on_resample(*drawn: np.ndarray) -> float:
        full = list(groups)
        for i, g in zip(varying, drawn):
            full[i] = g
        return statistic(*full)

    interval = bootstrap([groups[i] for i in varying], on_resample, n_resamples=n_boot, vectorized=False,
                         method="percentile", confidence_level=level,
                         random_state=np.random.default_rng(seed)).confidence_interval
    return float(interval.low), float(interval.high)


def _percentiles(stats: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` percentile interval of resampled statistics (``refit_efficacy_interval``)."""
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


def _design(x: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Standardised inputs with a column of ones for the intercept: (B, m, d) → (B, m, d + 1)."""
    z = (x - mean[:, None, :]) / scale[:, None, :]
    return np.concatenate([z, np.ones(z.shape[:-1] + (1,))], axis=-1)


@dataclass(frozen=True, eq=False)
class LogisticAttack:
    """A batch of B fitted attacks, each "standardise the inputs, then logistic regression".

    The model of scikit-learn's ``make_pipeline(StandardScaler(), LogisticRegression())`` with
    its defaults: population standard deviation (1 for a constant input), penalty ½‖w‖² with
    C = 1 and the intercept unpenalised (the tests check agreement with scikit-learn). Fitted
    by Newton's method on all B training sets at once: the objective is strictly convex, so
    a few batched (d+1)×(d+1) solves replace the bootstrap's hundreds of solver calls.
    """

    mean: np.ndarray  # (B, d) input means
    scale: np.ndarray  # (B, d) input standard deviations
    weights: np.ndarray  # (B, d + 1), the intercept last

    @classmethod
    def fit(cls, x: np.ndarray, members: np.ndarray) -> LogisticAttack:
        """Fit one attack per training set: ``x`` (B, m, d) inputs, ``members`` (B, m) labels 1/0."""
        mean, scale = x.mean(axis=1), x.std(axis=1)
        scale = np.where(scale > 1e-12, scale, 1.0)
        z = _design(x, mean, scale)  # (B, m, d + 1)
        penalty = np.diag(np.r_[np.ones(x.shape[-1]), 0.0])
        weights = np.zeros((len(z), z.shape[-1]))  # (B, d + 1)
        for _ in range(NEWTON_STEPS):
            p = expit((z @ weights[..., None])[..., 0])  # (B, m)
            gradient = ((p - members)[:, None, :] @ z)[:, 0] + weights @ penalty  # (B, d + 1)
            hessian = (z.transpose(0, 2, 1) * (p * (1 - p))[:, None, :]) @ z + penalty  # (B, d + 1, d + 1)
            step = np.linalg.solve(hessian, gradient[..., None])[..., 0]
            weights = weights - step
            if np.abs(step).max() < 1e-10:
                break
        return cls(mean, scale, weights)

    def member_probability(self, x: np.ndarray) -> np.ndarray:
        """(B, k) probability of "member" for inputs ``x`` of shape (k, d), shared, or (B, k, d)."""
        x = np.broadcast_to(x, (len(self.weights),) + x.shape[-2:])
        return expit((_design(x, self.mean, self.scale) @ self.weights[..., None])[..., 0])


@dataclass(frozen=True, eq=False)
class AttackResult:
    """Both attacks' verdicts on the forget set, with 95% intervals."""

    auc: float  # loss-threshold attack AUC, forget vs test (0.5 = looks unseen)
    auc_interval: tuple[float, float]
    efficacy: float  # MIA-efficacy: fraction of forget samples the trained attack calls non-members
    efficacy_interval: tuple[float, float]
    member_probability: dict[str, np.ndarray]  # split → per-sample probability of "member" under the attack


def refit_efficacy_interval(forget: np.ndarray, retain: np.ndarray, test: np.ndarray, n: int, *, n_boot: int,
                            rng: np.random.Generator) -> tuple[float, float]:
    """95% interval of MIA-efficacy that includes the attack's own variance.

    Arguments are ``attack_inputs`` arrays and ``n`` the members (and non-members) per
    training set. Every resample draws n members from ``retain`` and n non-members from
    ``test`` with replacement, refits the attack, and applies it to a resample of the forget
    set. Resampling the forget set alone would treat the fitted attack as exact, yet which
    retain and test samples it was trained on moves MIA-efficacy more than the forget set
    does: on digits one model's efficacy ranged 0.05–0.44 over 40 attack seeds, and most of
    those values fell outside the forget-only interval. ``scipy.stats.bootstrap`` cannot
    express this: it resamples every group to its own size, and the statistic here draws n
    of each training group, refits, and must be batched (one Newton fit per batch of resamples).
    """
    labels = np.r_[np.ones(n), np.zeros(n)]
    per_batch = max(1, BATCH_ROWS // (2 * n + len(forget)))
    stats = []
    for start in range(0, n_boot, per_batch):
        size = min(per_batch, n_boot - start)
        x = np.concatenate([retain[rng.integers(0, len(retain), (size, n))],
                            test[rng.integers(0, len(test), (size, n))]], axis=1)  # (size, 2n, d)
        attack = LogisticAttack.fit(x, np.broadcast_to(labels, (size, 2 * n)))
        called_unseen = attack.member_probability(forget[rng.integers(0, len(forget), (size, len(forget)))]) < 0.5
        stats.append(called_unseen.mean(axis=1))
    return _percentiles(np.concatenate(stats))


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
    split to the size of the smaller (seeded). Its interval refits the attack in every
    resample (``refit_efficacy_interval``); the AUC's resamples the forget and test sets.
    """
    for name, array in (("forget", forget), ("retain", retain), ("test", test)):
        if len(array) == 0:
            raise ValueError(f"the {name} split is empty; the membership attacks need samples in every split")
        if array.ndim != 2 or array.shape[1] != len(ATTACK_FEATURES):
            raise ValueError(f"{name} features must have shape (n, {len(ATTACK_FEATURES)}), got {array.shape}")
    auc_interval = bootstrap_interval(loss_attack_auc, (forget[:, 0], test[:, 0]), n_boot=n_boot, seed=seed)
    inputs = {"forget": attack_inputs(forget), "retain": attack_inputs(retain), "test": attack_inputs(test)}
    rng = np.random.default_rng(seed)
    n = min(len(retain), len(test))
    members = inputs["retain"][np.sort(rng.choice(len(retain), n, replace=False))]
    non_members = inputs["test"][np.sort(rng.choice(len(test), n, replace=False))]
    attack = LogisticAttack.fit(np.vstack([members, non_members])[None], np.r_[np.ones(n), np.zeros(n)][None])
    probability = {name: attack.member_probability(x)[0] for name, x in inputs.items()}
    return AttackResult(
        auc=loss_attack_auc(forget[:, 0], test[:, 0]), auc_interval=auc_interval,
        efficacy=float(np.mean(probability["forget"] < 0.5)),
        efficacy_interval=refit_efficacy_interval(inputs["forget"], inputs["retain"], inputs["test"], n,
                                                  n_boot=n_boot, rng=rng),
        member_probability=probability,
    )


@dataclass(frozen=True)
class Estimate:
    """A measured number with its 95% interval; ``interval`` is None when only the number is known."""

    value: float
    interval: tuple[float, float] | None = None

    @property
    def low(self) -> float:
        return self.value if self.interval is None else self.interval[0]

    @property
    def high(self) -> float:
        return self.value if self.interval is None else self.interval[1]

    def covers(self, x: float) -> bool:
        return self.low <= x <= self.high

    def matches(self, x: float, close: float) -> bool:
        """Whether ``x`` is the same within noise: inside the interval, or within ``close`` of the value.

        ``close`` gets a hair of slack so that 0.55 against 0.50 counts as 0.05 apart, as printed.
        """
        return self.covers(x) or abs(self.value - x) <= close + 1e-9

    def overlaps(self, other: Estimate) -> bool:
        return self.low <= other.high and other.low <= self.high

    def text(self, percent: bool = False) -> str:
        """``0.55 [0.45, 0.66]``, or ``55% [45%, 66%]``; the bare number when there is no interval."""
        shown = (lambda v: f"{v:.0%}") if percent else (lambda v: f"{v:.2f}")
        return shown(self.value) + ("" if self.interval is None else f" [{shown(self.low)}, {shown(self.high)}]")


def cannot_tell(current: Estimate, retrain: Estimate, original: Estimate | None, *, far: float,
                percent: bool = False, retrain_name: str = "the retrained model's") -> str | None:
    """Why a test cannot tell at this sample size, in words, or None when it can.

    ``retrain`` is the exact-unlearning reference and ``original`` the remembering one. The
    rule: the test cannot tell when (1) the two references' intervals overlap, so it cannot
    even separate the two reference points, or (2) the current model's interval contains both
    reference values, so it fits "as retraining" and "as before unlearning" alike. Without the
    original model, a value ``far`` above the retrained model's (at most 1) stands in for it.
    """
    remembered = original if original is not None else Estimate(min(retrain.value + far, 1.0))
    name = "the original model's" if original is not None else "a clearly remembering model's"
    if retrain.overlaps(remembered):
        return (f"it cannot even separate the two reference points, {retrain_name} {retrain.text(percent)} "
                f"and {name} {remembered.text(percent)}")
    if current.covers(retrain.value) and current.covers(remembered.value):
        return (f"the interval contains both {retrain_name} {Estimate(retrain.value).text(percent)} "
                f"and {name} {Estimate(remembered.value).text(percent)}")
    return None


@dataclass(frozen=True)
class AucReading:
    """What a loss-attack AUC says: its standing against the reference, and one plain sentence."""

    standing: str  # AS_RETRAINING, REMEMBERED, OVER_FORGOTTEN or CANNOT_TELL
    distance: float  # AUC minus the reference (the retrained model's AUC, else 0.5)
    sentence: str


def _separation(auc: Estimate) -> str:
    """How separable the forget samples are from unseen data: the AUC's distance from 0.5, either side."""
    distance = abs(auc.value - 0.5)
    if auc.matches(0.5, CLOSE_AUC):
        within = "close to" if auc.interval is None else "within noise of"
        return (f"Attack AUC {auc.text()} is {within} 0.5: a loss threshold does not separate the forget samples "
                "from unseen data")
    how = "almost perfectly" if distance > PERFECT_AUC else "clearly" if distance > FAR_AUC else "slightly"
    if auc.value > 0.5:
        return (f"Attack AUC {auc.text()}: the forget samples have lower loss than unseen data, so a loss "
                f"threshold separates them {how}")
    return (f"Attack AUC {auc.text()}: the forget samples have higher loss than unseen data, so a loss threshold "
            f"separates them {how} (an AUC far below 0.5 gives them away as surely as one far above it)")


def _comparison(current: Estimate, retrain: Estimate, original: Estimate | None, distance: float) -> tuple[str, str]:
    """Standing and words of an AUC against the retrained model's, once the test can tell."""
    if current.matches(retrain.value, CLOSE_AUC):
        separated = not retrain.matches(0.5, CLOSE_AUC)
        reason = (", because it never learned these samples: this is what exact unlearning looks like, not a sign "
                  "of memory") if separated else ": as after exact unlearning"
        return AS_RETRAINING, f"The retrained model shows the same separation ({retrain.text()}){reason}."
    how = "clearly" if abs(distance) > FAR_AUC else "somewhat"
    if distance < 0:
        return OVER_FORGOTTEN, (f"That is {how} below the retrained model's {retrain.text()}: the forget samples "
                                "look less familiar than after retraining (over-forgetting), which gives them away "
                                "just as surely as remembering them.")
    as_before = original is not None and current.matches(original.value, CLOSE_AUC)
    before = "" if original is None else f" (original model {original.text()})"
    state = f"still remembered, as before unlearning{before}" if as_before else f"still partly remembered{before}"
    return REMEMBERED, (f"That is {how} above the retrained model's {retrain.text()}: the forget samples look more "
                        f"familiar than after retraining, so they are {state}.")


def read_auc(current: Estimate, retrain: Estimate | None = None, original: Estimate | None = None) -> AucReading:
    """Read a loss-attack AUC in both directions and against the retrained model.

    The sentence first says how separable the forget samples are from unseen data (the
    distance of the AUC from 0.5, either side), then how that compares with the retrained
    model: the same separation is exact unlearning (for a forgotten class the retrained model
    separates the samples too, since it never learned them), above it is still remembered,
    below it over-forgotten. "The same" means the retrained AUC lies in the current interval
    or within ``CLOSE_AUC``. The test cannot tell by the rule of ``cannot_tell`` (with
    ``FAR_AUC``). Without a retrained model 0.5 (unseen data) is the reference.
    """
    for estimate in (current, retrain, original):
        if estimate is not None and not all(map(math.isfinite, (estimate.value, estimate.low, estimate.high))):
            raise ValueError(f"auc must be a finite number, got {estimate}")
    reference = retrain if retrain is not None else Estimate(0.5)
    distance = current.value - reference.value
    separation = _separation(current)
    why = cannot_tell(current, reference, original, far=FAR_AUC,
                      retrain_name="the retrained model's" if retrain is not None else "unseen data's")
    if why is not None:
        return AucReading(CANNOT_TELL, distance, f"{separation}; this test cannot tell at this sample size: {why}.")
    if retrain is not None:
        standing, words = _comparison(current, retrain, original, distance)
        return AucReading(standing, distance, f"{separation}. {words}")
    standing = (AS_RETRAINING if current.matches(0.5, CLOSE_AUC)
                else REMEMBERED if distance > 0 else OVER_FORGOTTEN)
    alone = {AS_RETRAINING: "", REMEMBERED: ": against it alone the samples read as still remembered",
             OVER_FORGOTTEN: ": against it alone the samples read as over-forgotten"}[standing]
    return AucReading(standing, distance, f"{separation}. With no retrained model to compare, 0.5 (unseen data) is "
                      f"the only reference{alone}, and it is unknown how much separation exact unlearning would show "
                      "(after forgetting a whole class, retraining separates its samples too).")


def mia_reading(auc: float, retrain_auc: float | None = None, *, interval: tuple[float, float] | None = None,
                retrain_interval: tuple[float, float] | None = None, original_auc: float | None = None,
                original_interval: tuple[float, float] | None = None) -> str:
    """One plain sentence on what a loss-attack AUC gives away: ``read_auc`` on bare numbers and intervals."""
    return read_auc(Estimate(auc, interval),
                    None if retrain_auc is None else Estimate(retrain_auc, retrain_interval),
                    None if original_auc is None else Estimate(original_auc, original_interval)).sentence
