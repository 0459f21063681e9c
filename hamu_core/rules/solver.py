"""The HAMU closed-form update for one pair of gradients (HAMU_SPEC, "HAMU-Q" and "HAMU-U").

Every unlearning step solves a small constrained problem in the first-order model
ΔL_f ≈ g_f·Δ, ΔL_r ≈ g_r·Δ:

    minimise  g_r·Δ   subject to   g_f·Δ ≥ B,   ‖Δ‖ ≤ R          (HAMU-Q)

HAMU-U is the same problem with g_r' = −g_f and g_f' = −g_r. The solution has five
branches, checked in the spec's order; EPS guards every division exactly as the
reference implementation does (norms are clamped from below by EPS), so the same
inputs give the same Δ and branch name. The algebra runs in float64 and Δ is cast back to
the input dtype: in float32 the orthogonal part g_r⊥ of nearly parallel gradients is
mostly rounding noise, and a rectified step along that noise misses the constraint.

This module works on one flat (or any-shaped) tensor pair. Whole-model application
(per-tensor or full-gradient) lives in ``hamu_rule``; ``solve_effective`` accepts the
global norms and dot product so that full-gradient mode can solve one tensor of a
global problem without ever concatenating the parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

EPS = 1e-12  # HAMU_SPEC's ε: guards every division; a gradient with ‖g‖² < EPS has vanished
VARIANTS = ("hamu-q", "hamu-u")
BRANCHES = ("zero_forget_grad", "infeasible", "direct", "colinear", "rectified")
# The caller's names of (g_r', g_f') per variant, so error messages name the input field.
EFFECTIVE_NAMES = {"hamu-q": ("g_retain", "g_forget"), "hamu-u": ("g_forget", "g_retain")}


@dataclass(frozen=True)
class HamuSolution:
    """The update Δ (applied as θ ← θ + Δ) and everything needed to explain it.

    Scalars are in the *effective* frame of the variant (g_r', g_f'); κ and cos θ_rf are
    identical in both frames because (−g_f)·(−g_r) = g_r·g_f.
    """

    delta: torch.Tensor  # same shape and dtype as the gradients
    branch: str  # one of BRANCHES
    kappa: float  # κ = g_r·g_f, the paper's hardness
    kappa2: float  # stopping threshold κ2; NaN when the problem is infeasible
    cos_rf: float  # κ / (‖g_r‖‖g_f‖), 0 when either gradient vanishes
    norm_retain: float  # ‖g_r'‖ (the effective retain gradient)
    norm_forget: float  # ‖g_f'‖ (the effective forget gradient)
    radius: float  # R used for this problem
    constraint: float  # B used for this problem
    feasible: bool  # False on "infeasible" and on "zero_forget_grad" with B > EPS
    degradation_unavoidable: bool  # feasible and κ > κ2: the guarded objective must worsen

    @property
    def margin(self) -> float:
        """κ2 − κ: positive while the protected objective can still be kept from worsening.

        Its sign is that of the optimal decrease −g_r'·Δ (HAMU_SPEC: ΔL_r* = ‖g_r‖·R·cos(φ + θ_rf)).
        ``HamuUpdate`` reports that decrease itself as ``margin``, the one definition that also
        holds for the per-tensor problem, and this difference as ``kappa_margin``.
        """
        return self.kappa2 - self.kappa


def vanishes(norm):
    """Whether a gradient of this norm counts as zero: ‖g‖² < EPS, the spec's zero_forget_grad test.

    The one zero-norm rule of the core (elementwise on a tensor of norms): the solver's
    branch, its cos θ_rf and the per-sample cosines of ``evaluation.hardness`` all ask it,
    so a gradient the solver treats as vanished never gets a cosine elsewhere.
    """
    return norm**2 < EPS


def cosine(dot: float, norm_a: float, norm_b: float) -> float:
    """dot/(‖a‖‖b‖) from precomputed parts; 0 where either vector vanishes (no direction, no angle)."""
    if vanishes(norm_a) or vanishes(norm_b):
        return 0.0
    return dot / (norm_a * norm_b)


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")


def effective_pair(g_retain: torch.Tensor, g_forget: torch.Tensor, variant: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (g_r', g_f'): the raw pair for HAMU-Q, (−g_f, −g_r) for HAMU-U (HAMU_SPEC, HAMU-U)."""
    _check_variant(variant)
    if variant == "hamu-u":
        return -g_forget, -g_retain
    return g_retain, g_forget


def stopping_threshold(norm_retain: float, norm_forget: float, radius: float, constraint: float) -> float:
    """κ2 = √(‖g_r‖²‖g_f‖² − B²‖g_r‖²/R²), NaN when the square root's argument is negative.

    The argument is ‖g_r‖²(‖g_f‖² − B²/R²), negative exactly when even a full step along g_f
    cannot gain B, i.e. on the infeasible branch (HAMU_SPEC, stopping signal).
    """
    radius = max(radius, EPS)
    arg = norm_retain**2 * norm_forget**2 - constraint**2 * norm_retain**2 / radius**2
    return math.sqrt(arg) if arg >= 0 else math.nan


def solve_effective(
    gr: torch.Tensor,
    gf: torch.Tensor,
    *,
    radius: float,
    constraint: float,
    gr_norm: float | None = None,
    gf_norm: float | None = None,
    dot: float | None = None,
    gr_orth_norm: float | None = None,
    names: tuple[str, str] = ("g_retain", "g_forget"),
) -> HamuSolution:
    """Solve ``min gr·Δ s.t. gf·Δ ≥ B, ‖Δ‖ ≤ R`` in the effective frame (the five branches).

    The optional scalars let a caller pass global quantities (full-gradient mode); when
    omitted they are computed from this tensor pair. ``gr_orth_norm`` is ‖g_r⊥‖ of the
    global problem; with it the orthogonal part is normalised globally, so the blocks of
    one full-gradient step together have norm R (the reference's per-block normalisation
    does not, see HAMU_SPEC "Per-tensor and full-gradient modes"). ``names`` are the
    caller's names for (gr, gf), used in error messages (HAMU-U swaps them).
    """
    if gr.shape != gf.shape:
        raise ValueError(f"{names[0]} and {names[1]} must have the same shape, got {tuple(gr.shape)} and {tuple(gf.shape)}")
    if gr.dtype != gf.dtype:
        raise ValueError(f"{names[0]} and {names[1]} must have the same dtype, got {gr.dtype} and {gf.dtype}")
    for name, g in zip(names, (gr, gf)):
        # A sum is finite when every entry is (barring overflow) and costs a tenth of an
        # element-wise scan, which therefore runs only to confirm a non-finite sum.
        if not math.isfinite(float(g.sum())) and not torch.isfinite(g).all():
            raise ValueError(f"{name} contains NaN or Inf; the step is refused")
    if radius < 0 or not math.isfinite(radius):
        raise ValueError(f"radius must be a finite number >= 0, got {radius}")
    if constraint < 0 or not math.isfinite(constraint):
        raise ValueError(f"constraint must be a finite number >= 0, got {constraint}")

    dtype = gr.dtype
    gr, gf = gr.double(), gf.double()  # no-op for float64 input
    gr_norm = float(torch.linalg.vector_norm(gr)) if gr_norm is None else gr_norm
    gf_norm = float(torch.linalg.vector_norm(gf)) if gf_norm is None else gf_norm
    dot = float(torch.dot(gr.flatten(), gf.flatten())) if dot is None else dot
    gf_norm_sq = gf_norm**2
    R, B = radius, constraint

    cos_rf = cosine(dot, gr_norm, gf_norm)
    kappa2 = stopping_threshold(gr_norm, gf_norm, R, B)

    def result(delta: torch.Tensor, branch: str, feasible: bool) -> HamuSolution:
        unavoidable = feasible and not math.isnan(kappa2) and dot > kappa2
        return HamuSolution(delta.to(dtype), branch, dot, kappa2, cos_rf, gr_norm, gf_norm, R, B, feasible, unavoidable)

    safe_gr_norm = max(gr_norm, EPS)
    safe_gf_norm_sq = max(gf_norm_sq, EPS)

    def direct_step() -> torch.Tensor:
        return -(R / safe_gr_norm) * gr

    # 1. zero_forget_grad: no direction raises the forget loss.
    if vanishes(gf_norm):
        if B <= EPS:
            return result(direct_step(), "direct", True)
        return result(torch.zeros_like(gr), "zero_forget_grad", False)

    ascent = (B / safe_gf_norm_sq) * gf  # the shortest step meeting g_f·Δ = B
    discriminant = R * R - B * B / safe_gf_norm_sq
    # 2. infeasible: even the full radius along g_f cannot gain B.
    if discriminant < 0:
        return result(ascent, "infeasible", False)
    # 3. direct: plain retain descent already gains B on the forget objective.
    if dot <= -B * safe_gr_norm / max(R, EPS):
        return result(direct_step(), "direct", True)
    gr_orth = gr - (dot / safe_gf_norm_sq) * gf
    if gr_orth_norm is None:
        gr_orth_norm = float(torch.linalg.vector_norm(gr_orth))
    # 4. colinear: g_r is parallel to g_f, so nothing is left to descend along.
    if gr_orth_norm < EPS:
        return result(ascent, "colinear", True)
    # 5. rectified: meet the constraint exactly, spend the rest of the radius on retain descent.
    s = R if B <= EPS else math.sqrt(discriminant)
    return result(ascent - (s / max(gr_orth_norm, EPS)) * gr_orth, "rectified", True)


def hamu_update(
    g_retain: torch.Tensor,
    g_forget: torch.Tensor,
    *,
    constraint: float,
    radius: float | None = None,
    lr: float | None = None,
    variant: str = "hamu-q",
) -> HamuSolution:
    """HAMU's closed-form update for one gradient pair (public API).

    Exactly one of ``radius`` (fixed R) and ``lr`` (lr-radius: R = lr·‖g_r'‖, where g_r' is
    the variant's effective retain gradient) must be given. Returns a :class:`HamuSolution`
    whose ``delta`` is applied as θ ← θ + Δ.
    """
    _check_variant(variant)
    if (radius is None) == (lr is None):
        raise ValueError("give exactly one of radius (fixed R) or lr (R = lr·‖g_r'‖)")
    if lr is not None and (lr < 0 or not math.isfinite(lr)):
        raise ValueError(f"lr must be a finite number >= 0, got {lr}")
    gr, gf = effective_pair(g_retain, g_forget, variant)
    if radius is None:
        radius = lr * float(torch.linalg.vector_norm(gr.double()))
    return solve_effective(gr, gf, radius=float(radius), constraint=float(constraint), names=EFFECTIVE_NAMES[variant])
