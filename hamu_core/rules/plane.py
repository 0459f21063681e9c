"""One HAMU step drawn in the plane of its two gradients (the teaching view's maths).

The problem HAMU solves each step (HAMU_SPEC, HAMU-Q),

    minimise  g_r·Δ   subject to   g_f·Δ ≥ B,   ‖Δ‖ ≤ R,

has its answer in span{g_r, g_f} on every branch: direct is −R·g_r/‖g_r‖, colinear and
infeasible are multiples of g_f, rectified combines g_f and g_r⊥ = g_r − (κ/‖g_f‖²)·g_f,
zero_forget_grad is 0, and the capped infeasible step R·g_f/‖g_f‖ is a multiple of g_f too;
HAMU-U only swaps in (−g_f, −g_r). So a full-gradient step is described exactly by three
numbers and two settings: ‖g_r‖, ‖g_f‖, cos θ_rf, R and B. Here g_f lies along +x and g_r
in the upper half-plane, and the step is the solver's own answer on those 2-D vectors, so
the drawing cannot drift from the closed form. A per-tensor run solves one problem per
tensor; its record's global numbers give the global problem, an approximation of it.

The baselines' directions come from the rules themselves (GDiff, GA, PCGrad act on the
gradients only), scaled to length R so the arrows compare directions, not step sizes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from hamu_core.rules.baselines import GradientAscent, GradientDifference, PCGrad
from hamu_core.rules.gradients import PairedGradients
from hamu_core.rules.hamu import HAMU_RULES
from hamu_core.rules.rule import StepInputs
from hamu_core.rules.solver import EPS, effective_pair, hamu_update

# cos θ_rf carries float rounding of about 1e-16, which near |cos| = 1 is a sine of about 1e-8:
# a smaller sine cannot be told from 0 by a cosine, so the pair is drawn (and solved) parallel.
SIN_RESOLUTION = 1e-7
BASELINES = {"GDiff": GradientDifference, "GA": GradientAscent, "PCGrad": PCGrad}


@dataclass(frozen=True)
class PlaneProblem:
    """The 2-D picture of one HAMU problem; every vector has shape (2,), Δ applied as θ ← θ + Δ."""

    g_retain: np.ndarray  # g_r = ‖g_r‖(cos θ_rf, sin θ_rf)
    g_forget: np.ndarray  # g_f = (‖g_f‖, 0)
    objective: np.ndarray  # g_r' of the variant: the direction whose dot with Δ is minimised
    constraint_normal: np.ndarray  # g_f' of the variant: the half-plane is g_f'·Δ ≥ B
    exact_step: np.ndarray  # hamu_update's Δ (the paper's form, longer than R when infeasible)
    step: np.ndarray  # the step the Studio takes: exact_step, or capped at R when infeasible
    branch: str  # the solver's branch
    radius: float  # R
    constraint: float  # B
    variant: str  # "hamu-q" or "hamu-u"
    feasible: bool
    degradation_unavoidable: bool  # feasible, yet the step must worsen the protected objective
    baselines: dict[str, np.ndarray]  # name → that rule's step direction, scaled to length R (0 if none)

    @property
    def forget_gain(self) -> float:
        """g_f·Δ at the step taken: the first-order rise of the forget loss."""
        return float(self.g_forget @ self.step)

    @property
    def retain_change(self) -> float:
        """g_r·Δ at the step taken: the first-order change of the retain loss (< 0: it falls)."""
        return float(self.g_retain @ self.step)


def plane_vectors(norm_r: float, norm_f: float, cos_rf: float) -> tuple[np.ndarray, np.ndarray]:
    """g_r and g_f in the plane: g_f along +x, g_r at angle θ_rf = arccos(cos_rf) above it."""
    cos = min(1.0, max(-1.0, cos_rf))
    sin = math.sqrt(1.0 - cos * cos)
    if sin < SIN_RESOLUTION:
        cos, sin = math.copysign(1.0, cos), 0.0
    return np.array([norm_r * cos, norm_r * sin]), np.array([norm_f, 0.0])


def _inputs(gr: torch.Tensor, gf: torch.Tensor) -> StepInputs:
    """Step inputs that carry only the gradients: all the drawn rules read."""
    grads = PairedGradients(("plane",), [gr], [gf], math.nan, math.nan)
    return StepInputs(model=None, original=None, retain=None, forget=None, grads=grads)


def _at_radius(delta: torch.Tensor, radius: float) -> np.ndarray:
    length = float(torch.linalg.vector_norm(delta))
    return np.zeros(2) if length < EPS else delta.numpy() * (radius / length)


def plane_problem(norm_r: float, norm_f: float, cos_rf: float, radius: float, constraint: float,
                  variant: str = "hamu-q", *, infeasible_step: str = "cap") -> PlaneProblem:
    """The HAMU problem with these gradient norms, angle, R and B, solved in its plane.

    ``exact_step`` and ``branch`` are ``hamu_update``'s on the 2-D vectors; ``step`` is what
    ``HamuQ``/``HamuU`` (full-gradient mode, fixed R, no clipping) takes on them, which differs only
    on the infeasible branch under the default ``infeasible_step="cap"``.
    """
    for name, value in (("norm_r", norm_r), ("norm_f", norm_f), ("cos_rf", cos_rf)):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value}")
    gr_np, gf_np = plane_vectors(norm_r, norm_f, cos_rf)
    gr, gf = torch.from_numpy(gr_np), torch.from_numpy(gf_np)
    solution = hamu_update(gr, gf, radius=radius, constraint=constraint, variant=variant)
    rule = HAMU_RULES[variant](radius=radius, constraint=constraint, mode="full", clip_norm=None,
                      infeasible_step=infeasible_step)
    inputs = _inputs(gr, gf)
    taken = rule.propose(inputs).delta[0]
    objective, normal = effective_pair(gr, gf, variant)
    baselines = {}
    for name, cls in BASELINES.items():
        step = cls(lr=1.0).propose(inputs).delta[0]  # Δ = −u at lr 1; only its direction is kept
        baselines[name] = _at_radius(step, radius)
    return PlaneProblem(
        g_retain=gr_np, g_forget=gf_np, objective=objective.numpy(), constraint_normal=normal.numpy(),
        exact_step=solution.delta.numpy(), step=taken.numpy(), branch=solution.branch, radius=float(radius),
        constraint=float(constraint), variant=variant, feasible=solution.feasible,
        degradation_unavoidable=solution.feasible and float(objective @ taken) > 0, baselines=baselines,
    )
