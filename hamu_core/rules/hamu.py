"""HAMU-Q and HAMU-U applied to a whole model: per-tensor or full-gradient, fixed or lr radius.

The two variants share every setting and every line of the step; they differ only in which
gradient is guarded and which is guaranteed (HAMU_SPEC: HAMU-U is HAMU-Q with the roles of
g_r and g_f swapped), so each is a small class naming its variant over one base.

HAMU_SPEC "Per-tensor and full-gradient modes": per-tensor mode (the reference default)
solves one problem per parameter tensor with the constraint B split across tensors;
full-gradient mode solves one global problem whose norms, dot product and orthogonal part
are all global, so ‖Δ‖ ≤ R holds for the whole update (the reference normalises g_r⊥ per
tensor there, which overshoots the radius).

Two choices go beyond the closed form of ``solver``. An infeasible problem (no step inside
the radius gains B) gets, by default, the best step inside the radius, R·g_f'/‖g_f'‖,
rather than the spec's shortest step that gains B, which can be thousands of times R when
‖g_f'‖ is tiny; so every step the Studio takes stays inside its radius. And the stopping
signal has one definition in both modes: ``margin`` is the predicted decrease −g_r'·Δ of
the protected objective at the step HAMU takes, and degradation is unavoidable when that
decrease is negative.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections import Counter
from dataclasses import dataclass

import torch

from hamu_core.rules import gradients as G
from hamu_core.rules.rule import RuleStep, StepInputs, UpdateRule
from hamu_core.rules.setting import setting
from hamu_core.rules.solver import (
    EFFECTIVE_NAMES,
    EPS,
    HamuSolution,
    effective_pair,
    solve_effective,
    stopping_threshold,
)

MODES = ("per_tensor", "full")
SPLITS = ("equal", "norm_product", "exp_neg_dot")
INFEASIBLE_STEPS = ("cap", "exact")  # infeasible problem: best step inside the radius, or the spec's longer one


def constraint_split(gr: G.Grads, gf: G.Grads, constraint: float, split: str) -> list[float]:
    """Per-tensor constraints B_i summing to B (HAMU_SPEC, per-tensor mode).

    equal: B/n; norm_product: B·‖g_r,i‖‖g_f,i‖/Σ_j (the paper's image runs); exp_neg_dot:
    B·exp(−g_r,i·g_f,i)/Σ_j, computed as a softmax so large dot products cannot overflow.
    When every norm product is zero the weights say nothing and B is split equally: the
    reference's EPS-clamped denominator would give every B_i = 0 there and silently drop the
    constraint (a step reported feasible that gains nothing), or shrink it when Σ_j < EPS.
    """
    if split == "equal":
        return [constraint / len(gr)] * len(gr)
    if split == "norm_product":
        w = [float(torch.linalg.vector_norm(a.double()) * torch.linalg.vector_norm(b.double())) for a, b in zip(gr, gf)]
        total = math.fsum(w)
        if total == 0:
            return constraint_split(gr, gf, constraint, "equal")
        return [constraint * wi / total for wi in w]
    if split == "exp_neg_dot":
        neg_dots = torch.tensor([-G.dot([a], [b]) for a, b in zip(gr, gf)], dtype=torch.float64)
        return [constraint * float(w) for w in torch.softmax(neg_dots, dim=0)]
    raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


@dataclass(frozen=True)
class HamuUpdate(UpdateRule):
    """HAMU on a whole model (HAMU_SPEC); :class:`HamuQ` and :class:`HamuU` name the variant.

    ``infeasible_step="cap"`` replaces the spec's infeasible step (B/‖g_f'‖²)·g_f' by
    R·g_f'/‖g_f'‖, the maximiser of g_f'·Δ subject to ‖Δ‖ ≤ R: on a text dataset the exact
    step was 2,500 times the radius and took retain accuracy from 100 % to 55 % in one step.
    The step stays flagged infeasible, since it does not gain B; "exact" keeps the paper's
    and the reference's step. The Studio's own defaults (fixed radius, full-gradient mode)
    are in ``hamu_core.config``; the field defaults here are the paper's image recipe.
    """

    constraint: float = setting(  # B = 0.5·lr in the paper's image runs
        5e-3, "Constraint B", "The guarantee: each step improves the guarded loss by at least B (first order).", low=0)
    radius: float | None = setting(  # None selects lr-radius R = lr·‖g_r'‖
        None, "Fixed radius R", "Largest step allowed. 0: the radius follows the gradient, R = lr·‖g‖.", low=0,
        optional=True)
    lr: float = setting(  # lr-radius scale, ignored when radius is set
        1e-2, "Learning rate", "Scale of the lr-radius R = lr·‖g_r'‖ (used when no fixed radius is set).", low=0,
        low_open=True)
    mode: str = setting(  # "per_tensor" is the reference default
        "per_tensor", "Mode", "per_tensor: one problem per weight tensor (paper default). full: one global problem.",
        choices=MODES)
    split: str = setting(
        "norm_product", "Split of B", "How per-tensor mode shares B across tensors.", choices=SPLITS)
    clip_norm: float | None = setting(  # paper: 1.0
        1.0, "Clip gradients at", "Clip the retain and forget gradients separately to this norm. 0: no clipping.",
        low=0, low_open=True, optional=True)
    stop_on_infeasible: bool = setting(
        False, "Refuse infeasible steps", "The rule refuses (weights unchanged) a step when no step within the "
        "radius can meet B. The run's own stop rules sit beside the method.")
    stop_on_unavoidable: bool = setting(
        False, "Refuse steps that must degrade", "The rule refuses (weights unchanged) a step once meeting B must "
        "worsen the protected loss (even the best step inside the radius does: margin < 0).")
    infeasible_step: str = setting(
        "cap", "Infeasible steps", "When no step within the radius can gain B: cap the step at the radius (the "
        "largest gain inside it), or take the exact shortest step that gains B, however long.",
        choices=INFEASIBLE_STEPS)

    @property
    @abstractmethod
    def variant(self) -> str:
        """"hamu-q" guarantees forget progress B per step, "hamu-u" retain progress."""

    def _radius_for(self, gr_norm: float) -> float:
        return self.radius if self.radius is not None else self.lr * gr_norm

    def propose(self, inputs: StepInputs) -> RuleStep:
        # The algebra runs in float64 (see solver): convert each gradient once here rather than
        # in every norm and dot product below; that copying was most of HAMU's overhead on GDiff.
        grads = inputs.grads
        pairs = [effective_pair(r.double(), f.double(), self.variant) for r, f in zip(grads.retain, grads.forget)]
        gr = [p[0] for p in pairs]
        gf = [p[1] for p in pairs]
        solutions = self._solve_full(gr, gf) if self.mode == "full" else self._solve_per_tensor(gr, gf)
        capped = self.infeasible_step == "cap" and any(s.branch == "infeasible" for s in solutions)
        steps = [self._bounded(s, b) for s, b in zip(solutions, gf)] if capped else [s.delta for s in solutions]
        delta = [d.to(r.dtype) for d, r in zip(steps, grads.retain)]
        # The exact step's length is only worth a pass over the weights when it was not taken.
        exact_norm = G.norm([s.delta for s in solutions]) if capped else None
        return self._summarise(gr, gf, delta, solutions, exact_norm)

    @staticmethod
    def _bounded(solution: HamuSolution, gf: torch.Tensor) -> torch.Tensor:
        """The capped step R·g_f'/‖g_f'‖ on the infeasible branch, the solver's Δ elsewhere.

        A solution carries the radius and ‖g_f'‖ of the problem it solved: its own tensor's in
        per-tensor mode, the global ones in full-gradient mode, so the same expression caps
        each tensor at R_i there and the whole update at R here. ‖g_f'‖² ≥ EPS on this branch.
        """
        if solution.branch != "infeasible":
            return solution.delta
        return (solution.radius / solution.norm_forget) * gf

    def _solve_per_tensor(self, gr: G.Grads, gf: G.Grads) -> list[HamuSolution]:
        budgets = constraint_split(gr, gf, self.constraint, self.split)
        return [
            solve_effective(
                a, b, radius=self._radius_for(float(torch.linalg.vector_norm(a.double()))), constraint=B_i,
                names=EFFECTIVE_NAMES[self.variant],
            )
            for a, b, B_i in zip(gr, gf, budgets)
        ]

    def _solve_full(self, gr: G.Grads, gf: G.Grads) -> list[HamuSolution]:
        gr_norm, gf_norm, d = G.norm(gr), G.norm(gf), G.dot(gr, gf)
        projection = d / max(gf_norm**2, EPS)
        orth_norm = math.sqrt(math.fsum(float(torch.sum((a.double() - projection * b.double()) ** 2)) for a, b in zip(gr, gf)))
        radius = self._radius_for(gr_norm)
        return [
            solve_effective(
                a, b, radius=radius, constraint=self.constraint,
                gr_norm=gr_norm, gf_norm=gf_norm, dot=d, gr_orth_norm=orth_norm, names=EFFECTIVE_NAMES[self.variant],
            )
            for a, b in zip(gr, gf)
        ]

    def _summarise(
        self, gr: G.Grads, gf: G.Grads, delta: G.Grads, solutions: list[HamuSolution], exact_norm: float | None
    ) -> RuleStep:
        counts = Counter(s.branch for s in solutions)
        feasible = all(s.feasible for s in solutions)
        delta64 = [d.double() for d in delta]  # the applied Δ, converted once for the dot products
        objective_change = G.dot(gr, delta64)  # first-order change of the guarded objective
        # The stopping signal (HAMU_SPEC), one definition for both modes: the step taken is the
        # optimum of the problem HAMU solves (per tensor: each tensor's optimum, whose sum is the
        # optimum of the separable problem), so the predicted decrease of the protected objective
        # there is the best any step can do. In full-gradient mode its sign is that of κ2 − κ
        # (ΔL_r* = ‖g_r‖·R·cos(φ + θ_rf)); in per-tensor mode κ2 of the global problem does not
        # describe the problem solved, and κ2 − κ disagreed with the per-tensor optimum.
        margin = -objective_change if feasible else math.nan
        if self.mode == "full":
            radius = solutions[0].radius
            # The global κ and norms were passed to every solution; reuse them.
            kappa, gr_norm, gf_norm = solutions[0].kappa, solutions[0].norm_retain, solutions[0].norm_forget
        else:
            radius = math.sqrt(math.fsum(s.radius**2 for s in solutions))
            # Each solution's κ is its tensor's term of G.dot(gr, gf), so their fsum is that dot.
            kappa, gr_norm, gf_norm = math.fsum(s.kappa for s in solutions), G.norm(gr), G.norm(gf)
        kappa2 = stopping_threshold(gr_norm, gf_norm, radius, self.constraint)
        unavoidable = feasible and margin < 0
        step_norm = G.norm(delta64)
        info = {
            "branch": "infeasible" if counts["infeasible"] else counts.most_common(1)[0][0],
            "branch_counts": dict(counts),
            "radius": radius,
            "constraint": self.constraint,
            "kappa": kappa,
            "kappa2": kappa2,
            "kappa_margin": kappa2 - kappa,  # the paper's test κ > κ2, for comparison with margin
            "margin": margin,
            "feasible": feasible,
            "degradation_unavoidable": unavoidable,
            "predicted_objective_change": objective_change,
            "predicted_constraint_gain": G.dot(gf, delta64),
            "step_norm": step_norm,
            "capped": exact_norm is not None,  # an infeasible step was capped at the radius
            "exact_step_norm": step_norm if exact_norm is None else exact_norm,  # ‖Δ‖ of the uncapped step
        }
        refused = None
        if self.stop_on_infeasible and not feasible:
            refused = "infeasible: no step inside the radius can meet the constraint B"
        elif self.stop_on_unavoidable and unavoidable:
            refused = "degradation unavoidable: no step inside the radius meets B without worsening the protected objective"
        if refused:
            delta = [torch.zeros_like(d) for d in delta]
        return RuleStep(delta=delta, info=info, refused=refused)


@dataclass(frozen=True)
class HamuQ(HamuUpdate):
    """HAMU-Q: raise the forget loss by at least B per step at the least first-order retain cost."""

    name = "hamu-q"
    variant = "hamu-q"


@dataclass(frozen=True)
class HamuU(HamuUpdate):
    """HAMU-U: lower the retain loss by at least B per step while raising the forget loss the most."""

    name = "hamu-u"
    variant = "hamu-u"


HAMU_RULES: dict[str, type[HamuUpdate]] = {"hamu-q": HamuQ, "hamu-u": HamuU}
