"""HAMU applied to a whole model: per-tensor or full-gradient, fixed or lr radius.

HAMU_SPEC "Per-tensor and full-gradient modes": per-tensor mode (the reference default)
solves one problem per parameter tensor with the constraint B split across tensors;
full-gradient mode solves one global problem whose norms, dot product and orthogonal part
are all global, so ‖Δ‖ ≤ R holds for the whole update (the reference normalises g_r⊥ per
tensor there, which overshoots the radius).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import torch

from hamu_core import gradients as G
from hamu_core.rule import RuleStep, StepInputs, UpdateRule, check_positive
from hamu_core.solver import EFFECTIVE_NAMES, EPS, VARIANTS, HamuSolution, effective_pair, solve_effective, stopping_threshold

MODES = ("per_tensor", "full")
SPLITS = ("equal", "norm_product", "exp_neg_dot")


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
    """HAMU-Q or HAMU-U on a whole model (HAMU_SPEC).

    Defaults follow the paper's image runs scaled for the Studio's small models: lr-radius,
    B = 0.5·lr, norm-product split, clipping at 1.0.
    """

    name = "hamu"

    variant: str = "hamu-q"  # "hamu-q" guarantees forget progress, "hamu-u" retain progress
    constraint: float = 5e-3  # B: guaranteed first-order gain per step (0.5·lr)
    radius: float | None = None  # fixed R per problem; None selects lr-radius R = lr·‖g_r'‖
    lr: float = 1e-2  # lr-radius scale (ignored when radius is set)
    mode: str = "per_tensor"  # "per_tensor" (reference default) or "full" (one global problem)
    split: str = "norm_product"  # per-tensor constraint split: equal, norm_product, exp_neg_dot
    clip_norm: float | None = 1.0  # clip g_r and g_f separately (paper: 1.0)
    stop_on_infeasible: bool = False  # refuse the step when the constraint cannot be met
    stop_on_unavoidable: bool = False  # refuse the step when degradation is unavoidable (κ > κ2)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {self.split!r}")
        check_positive("constraint", self.constraint, allow_zero=True)
        if self.radius is not None:
            check_positive("radius", self.radius, allow_zero=True)

    @property
    def method(self) -> str:
        """Registry name of this configuration ("hamu-q" or "hamu-u")."""
        return self.variant

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
        delta = [s.delta.to(r.dtype) for s, r in zip(solutions, grads.retain)]
        return self._summarise(gr, gf, delta, solutions)

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

    def _summarise(self, gr: G.Grads, gf: G.Grads, delta: G.Grads, solutions: list[HamuSolution]) -> RuleStep:
        counts = Counter(s.branch for s in solutions)
        feasible = all(s.feasible for s in solutions)
        delta64 = [d.double() for d in delta]  # the applied Δ, converted once for the dot products
        objective_change = G.dot(gr, delta64)  # first-order change of the guarded objective
        if self.mode == "full":
            radius = solutions[0].radius
            unavoidable = solutions[0].degradation_unavoidable
            # The global κ and norms were passed to every solution; reuse them.
            kappa, gr_norm, gf_norm = solutions[0].kappa, solutions[0].norm_retain, solutions[0].norm_forget
        else:
            radius = math.sqrt(math.fsum(s.radius**2 for s in solutions))
            # Each tensor's step is optimal for its own problem, so their sum is the best the
            # per-tensor problem allows: degradation is unavoidable exactly when it is > 0.
            unavoidable = feasible and objective_change > 0
            # Each solution's κ is its tensor's term of G.dot(gr, gf), so their fsum is that dot.
            kappa, gr_norm, gf_norm = math.fsum(s.kappa for s in solutions), G.norm(gr), G.norm(gf)
        kappa2 = stopping_threshold(gr_norm, gf_norm, radius, self.constraint)
        info = {
            "branch": "infeasible" if counts["infeasible"] else counts.most_common(1)[0][0],
            "branch_counts": dict(counts),
            "radius": radius,
            "constraint": self.constraint,
            "kappa": kappa,
            "kappa2": kappa2,
            "margin": kappa2 - kappa,
            "feasible": feasible,
            "degradation_unavoidable": unavoidable,
            "predicted_objective_change": objective_change,
            "predicted_constraint_gain": G.dot(gf, delta64),
            "step_norm": G.norm(delta64),
        }
        refused = None
        if self.stop_on_infeasible and not feasible:
            refused = "infeasible: no step inside the radius can meet the constraint B"
        elif self.stop_on_unavoidable and unavoidable:
            refused = "degradation unavoidable: no step inside the radius meets B without worsening the protected objective"
        if refused:
            delta = [torch.zeros_like(d) for d in delta]
        return RuleStep(delta=delta, info=info, refused=refused)
