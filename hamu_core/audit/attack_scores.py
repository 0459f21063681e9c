"""Per-sample membership scores: the maths of LiRA, U-LiRA and RMIA on plain arrays.

Every attack here reads one number per (model, sample): the logit-scaled confidence of the
true label, φ = log(p_y / (1 − p_y)) (Carlini et al., "Membership inference attacks from
first principles", S&P 2022). Unlike the loss it is close to Gaussian over training runs,
which is what LiRA's per-sample Gaussians assume. Arrays are aligned: ``stat`` (K, n) holds
the shadows' φ, ``member`` (K, n) says which shadow trained on which sample, a target's φ is
(n,). A higher score always means "more likely a member". Nothing here runs a model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import expit, logsumexp
from scipy.stats import norm

POOLED_BELOW = 64  # fewer shadows than this: one pooled variance per side (Carlini et al. 2022 do so below 64)
MIN_STD = 1e-3  # floor on a fitted standard deviation of φ, so a constant statistic never divides by zero
RMIA_GAMMA = 1.0  # RMIA's threshold on LR(x)/LR(z) (Zarifzadeh et al. 2024 use γ = 1 for their main results)


def logit_confidence(logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """φ = log p_y − log(1 − p_y) from (..., n, classes) logits, computed stably in float64.

    With p = softmax(z), log p_y − log(1 − p_y) = z_y − logsumexp_{j≠y} z_j: no probability
    is ever formed, so a memorised sample (p_y = 1 − 1e−20) keeps its φ ≈ 46 instead of ∞.
    """
    z = logits.double()
    index = labels.long().expand(z.shape[:-1]).unsqueeze(-1)  # (..., n, 1)
    true = z.gather(-1, index).squeeze(-1)
    others = z.scatter(-1, index, -math.inf).logsumexp(-1)
    return (true - others).numpy()


def log_probability(phi: np.ndarray) -> np.ndarray:
    """log p_y from φ: log σ(φ) = −log(1 + e^−φ), stable at both ends."""
    return -np.logaddexp(0.0, -phi)


@dataclass(frozen=True)
class Gaussians:
    """Per-sample Gaussians of φ in models that trained on the sample (IN) and models that did not (OUT)."""

    mean_in: np.ndarray  # (n,)
    std_in: np.ndarray  # (n,); one value repeated when pooled
    mean_out: np.ndarray  # (n,)
    std_out: np.ndarray  # (n,)

    def columns(self, positions: np.ndarray) -> Gaussians:
        """The Gaussians of the samples at ``positions`` (a pooled variance stays the one fitted on all)."""
        return Gaussians(*(values[positions] for values in (self.mean_in, self.std_in, self.mean_out, self.std_out)))


def _side(stat: np.ndarray, mask: np.ndarray, pooled: bool, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Mean per sample and standard deviation (per sample, or pooled over samples) of ``stat`` where ``mask``."""
    count = mask.sum(axis=0)  # (n,)
    if (count < 1).any() or (not pooled and (count < 2).any()):
        need = 1 if pooled else 2
        raise ValueError(f"every sample needs at least {need} {what} shadows; "
                         f"{int((count < need).sum())} samples have fewer")
    mean = np.where(mask, stat, 0.0).sum(axis=0) / count
    squares = np.where(mask, (stat - mean) ** 2, 0.0).sum(axis=0)  # (n,)
    if pooled:  # the within-sample variance pooled over samples: Σ_j Σ_k (φ_kj − μ_j)² / Σ_j (n_j − 1)
        freedom = (count - 1).sum()
        if freedom < 1:
            raise ValueError(f"a pooled variance needs some sample with two {what} shadows")
        std = np.full(len(count), math.sqrt(squares.sum() / freedom))
    else:
        std = np.sqrt(squares / (count - 1))
    return mean, np.maximum(std, MIN_STD)


def fit_gaussians(stat: np.ndarray, member: np.ndarray, *, pooled: bool) -> Gaussians:
    """IN and OUT Gaussians of every sample's φ over the shadows.

    With few shadows a per-sample variance from 4–8 values is noisy enough to drown the
    signal, so Carlini et al. (2022, "fixed variance") estimate one global variance per
    side when fewer than 64 shadows are trained; ``pooled=True`` does that, pooling the
    within-sample spread over all samples (the means stay per sample).
    """
    mean_in, std_in = _side(stat, member, pooled, "IN")
    mean_out, std_out = _side(stat, ~member, pooled, "OUT")
    return Gaussians(mean_in, std_in, mean_out, std_out)


def lira_online(phi: np.ndarray, g: Gaussians) -> np.ndarray:
    """LiRA online: log N(φ; μ_in, σ_in²) − log N(φ; μ_out, σ_out²), the log likelihood ratio IN vs OUT."""
    return norm.logpdf(phi, g.mean_in, g.std_in) - norm.logpdf(phi, g.mean_out, g.std_out)


def lira_offline(phi: np.ndarray, g: Gaussians) -> np.ndarray:
    """LiRA offline: the one-sided test against OUT alone, log Φ((φ − μ_out)/σ_out).

    Carlini et al. score Φ((φ − μ_out)/σ_out), the probability that an OUT model is less
    confident; its log orders samples the same way without rounding to 1 for the
    confidently memorised ones, whose order decides the TPR at low FPR.
    """
    return norm.logcdf((phi - g.mean_out) / g.std_out)


def ulira_gaussians(stat: np.ndarray, member: np.ndarray, is_forget: np.ndarray, labels: np.ndarray, *,
                    pooled: bool, seed: int) -> Gaussians:
    """U-LiRA's Gaussians from the unlearned shadows' φ (Hayes et al., SaTML 2025).

    IN: the unlearned shadows that trained on a forget sample and then unlearned it. OUT: the
    unlearned shadows that never saw it (they ran the same request on their own members), so
    both sides went through the same unlearning and differ only in having seen the sample.
    A test sample was never unlearned by any shadow and has no IN side of its own: it borrows
    the IN offset μ_in − μ_out (and σ_in) of a seeded random forget sample of its class (of
    any class when the forget set has none of its class), added to its own OUT mean. When the
    target never saw the forget samples and the OUT shadows resemble it, a forget sample's φ
    is an OUT draw like a test sample's and both get scores of one distribution (AUC 0.5).
    That holds for scattered forget sets; a forgotten class is different, since every OUT
    shadow still learned the class from the other half of it: read U-LiRA against the
    retrained model's numbers, never against 0.5.
    """
    is_forget = np.asarray(is_forget, dtype=bool)
    if not is_forget.any():
        raise ValueError("U-LiRA needs at least one forget sample")
    mean_in, std_in = _side(stat[:, is_forget], member[:, is_forget], pooled, "unlearned IN")
    mean_out, std_out = _side(stat, ~member, pooled, "OUT")
    offset = mean_in - mean_out[is_forget]
    rng = np.random.default_rng(seed)
    forget_labels = labels[is_forget]
    donors = np.empty((~is_forget).sum(), dtype=np.int64)
    for label in np.unique(labels[~is_forget]):
        takers = labels[~is_forget] == label
        pool = np.flatnonzero(forget_labels == label)
        pool = pool if len(pool) else np.arange(len(forget_labels))
        donors[takers] = pool[rng.integers(0, len(pool), takers.sum())]
    full_mean_in, full_std_in = np.empty(len(is_forget)), np.empty(len(is_forget))
    full_mean_in[is_forget], full_std_in[is_forget] = mean_in, std_in
    full_mean_in[~is_forget] = mean_out[~is_forget] + offset[donors]
    full_std_in[~is_forget] = std_in[donors]
    return Gaussians(full_mean_in, full_std_in, mean_out, std_out)


def offline_a(stat: np.ndarray, member: np.ndarray) -> float:
    """RMIA's offline factor a, fitted on the bank: 1 − Pr_IN(x) ≈ a·(1 − Pr_OUT(x)), least squares, in [0, 1].

    Zarifzadeh et al. approximate the IN probability from OUT models alone by that linear
    map and tune a on reference models whose members are known; the bank knows every
    shadow's members, so a is the least-squares slope through the origin of the per-sample
    mean 1 − p_y in IN shadows against OUT shadows.
    """
    miss = expit(-stat)  # 1 − p_y per shadow and sample
    miss_in = np.where(member, miss, 0.0).sum(0) / member.sum(0)
    miss_out = np.where(~member, miss, 0.0).sum(0) / (~member).sum(0)
    denominator = float((miss_out ** 2).sum())
    return 1.0 if denominator == 0 else float(np.clip((miss_in * miss_out).sum() / denominator, 0.0, 1.0))


def reference_log_probability(stat: np.ndarray, member: np.ndarray, *, offline: bool, a: float = 1.0) -> np.ndarray:
    """log Pr(x): the mean p_y over reference models, per sample (RMIA's denominator).

    Online: every shadow, so Pr(x) = ½(Pr_IN + Pr_OUT) in a balanced bank. Offline: the OUT
    shadows only, with Pr(x) ≈ ½((1 + a)·Pr_OUT(x) + (1 − a)) (Zarifzadeh et al. 2024, offline RMIA).
    """
    log_p = log_probability(stat)  # (K, n)
    if not offline:
        return logsumexp(log_p, axis=0) - math.log(len(stat))
    out = ~member
    log_out = logsumexp(np.where(out, log_p, -np.inf), axis=0) - np.log(out.sum(0))
    with np.errstate(divide="ignore"):
        return np.logaddexp(math.log1p(a) + log_out, math.log(1.0 - a) if a < 1 else -np.inf) - math.log(2.0)


def rmia(target_x: np.ndarray, reference_x: np.ndarray, target_z: np.ndarray, reference_z: np.ndarray,
         gamma: float = RMIA_GAMMA) -> np.ndarray:
    """RMIA's score: the share of population samples z with LR(x)/LR(z) > γ (Zarifzadeh et al., ICML 2024).

    LR(·) = Pr(·|θ)/Pr(·), the target's p_y over its reference mean; arguments are the logs
    of target and reference p_y for the audited samples x and the population z.
    """
    log_lr_z = np.sort(target_z - reference_z)
    threshold = (target_x - reference_x) - math.log(gamma)  # LR(x)/LR(z) > γ ⇔ log LR(z) < log LR(x) − log γ
    return np.searchsorted(log_lr_z, threshold, side="left") / len(log_lr_z)
