"""How well a membership score separates members from non-members: ROC, AUC and TPR at a low FPR.

Carlini et al. (S&P 2022) argue that an attack matters when it finds *some* members with
near certainty, so the headline is the true-positive rate at a false-positive rate of 0.1 %
or 1 %, read without interpolation: the largest TPR of any threshold whose FPR is at most
the level. With n non-members the smallest non-zero FPR is 1/n, so a level below it can only
mean "no false positive at all": ``resolved`` says whether a level can be measured at this size.
"""

from __future__ import annotations

import math

import numpy as np

from hamu_core.evaluation.privacy import loss_attack_auc


def roc_auc(members: np.ndarray, non_members: np.ndarray) -> float:
    """P(member's score > non-member's score), ties half: ``privacy.loss_attack_auc`` (Mann–Whitney) on −score."""
    return loss_attack_auc(-np.asarray(members, dtype=float), -np.asarray(non_members, dtype=float))


def tpr_at_fpr(members: np.ndarray, non_members: np.ndarray, level: float) -> float:
    """The largest TPR of a threshold "score > t" that flags at most ``level`` of the non-members.

    At most m = ⌊level·n⌋ non-members may score above t, so t is the (m+1)-th largest
    non-member score and the members counted are those strictly above it.
    """
    n = len(non_members)
    allowed = math.floor(level * n + 1e-9)  # false positives allowed (the 1e-9 absorbs 0.01·300 = 3.0000000000000004)
    if allowed >= n:
        return 1.0
    cut = np.partition(non_members, n - 1 - allowed)[n - 1 - allowed]  # the (allowed+1)-th largest
    return float(np.mean(members > cut))


def roc_curve(members: np.ndarray, non_members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) of "score ≥ t" for every distinct score t, from (0, 0) to (1, 1)."""
    members, non_members = np.sort(members), np.sort(non_members)
    thresholds = np.unique(np.r_[members, non_members])[::-1]  # descending

    def share_at_least(sorted_scores: np.ndarray) -> np.ndarray:
        return (len(sorted_scores) - np.searchsorted(sorted_scores, thresholds, side="left")) / len(sorted_scores)

    return np.r_[0.0, share_at_least(non_members)], np.r_[0.0, share_at_least(members)]


def min_fpr(n_non_members: int) -> float:
    """The smallest non-zero FPR measurable with ``n_non_members`` non-members: 1/n."""
    return 1.0 / n_non_members


def resolved(level: float, n_non_members: int) -> bool:
    """Whether an FPR level can be measured at all: not below 1/n (a 0.1 % level needs 1,000 non-members)."""
    return level >= min_fpr(n_non_members) - 1e-12
