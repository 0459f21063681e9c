"""The audit's verdict in words: the strongest attack on the model now, against the original and the retrain.

The reading compares intervals, never bare numbers, and says "cannot tell at this sample
size" whenever they overlap where a comparison would need them apart: when the two
reference models themselves overlap, the attack cannot place the current model between them.
"""

from __future__ import annotations

from hamu_core.evaluation.privacy import Estimate


def interval_text(estimate: Estimate, percent: bool = False) -> str:
    """``0.93 [0.90, 0.96]``, or ``12.5% [8.0%, 17.1%]`` for a rate (one decimal: low-FPR TPRs are small)."""
    shown = (lambda v: f"{v:.1%}") if percent else (lambda v: f"{v:.2f}")
    return f"{shown(estimate.value)} [{shown(estimate.low)}, {shown(estimate.high)}]"


def exposure_sentence(attack: str, estimates: dict[str, Estimate], fpr_level: float | None) -> str:
    """Words on one attack's ``estimates`` for "original", "current" and "retrain".

    The estimates are TPRs at ``fpr_level`` FPR, or AUCs when ``fpr_level`` is None; higher
    means more exposed for both. The current model reads as the retrained
    one when its interval overlaps only the retrained model's, as the original when it
    overlaps only the original's; otherwise by where its value lies.
    """
    percent = fpr_level is not None
    now, original, retrain = (estimates[m] for m in ("current", "original", "retrain"))
    c, o, r = (interval_text(e, percent) for e in (now, original, retrain))
    what = (f"it finds {c} of the forget samples while wrongly flagging at most {fpr_level:.1%} of unseen test "
            "samples" if percent else f"it separates forget from unseen test samples with AUC {c}")
    head = f"The strongest attack here is {attack}: {what} (95% intervals)."
    if original.overlaps(retrain):
        return (f"{head} It cannot tell at this sample size: even the original model ({o}) and the retrained one "
                f"({r}) lie within each other's intervals.")
    if now.overlaps(original) and now.overlaps(retrain):
        return (f"{head} It cannot tell at this sample size: the model now overlaps both the original ({o}) "
                f"and the retrained model ({r}).")
    if now.overlaps(retrain):
        return f"{head} That is as exposed as after retraining ({r}; the original: {o})."
    if now.overlaps(original):
        return (f"{head} That is as exposed as before unlearning ({o}; after retraining: {r}): the unlearning "
                "has not hidden the forget samples from this attack.")
    towards_original = (now.value - retrain.value) * (original.value - retrain.value) > 0
    if towards_original and abs(now.value - retrain.value) < abs(original.value - retrain.value):
        return (f"{head} That is partly forgotten: less exposed than the original ({o}) but more than after "
                f"retraining ({r}).")
    if towards_original:
        return f"{head} That is more exposed than before unlearning ({o}; after retraining: {r})."
    return (f"{head} That is beyond retraining ({r}; the original: {o}): the forget samples look less like "
            "members than they would after retraining (over-forgetting), which an attacker can notice too.")
