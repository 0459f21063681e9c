"""Oracles for ``plane_problem``: the drawn step is the solver's step, seen in its plane.

Two witnesses. (1) Random 2-D problems in any orientation: ``hamu_update`` on the raw
vectors, rotated into the plane's frame (g_f along +x, g_r above), equals the drawn step.
(2) Random high-dimensional problems: the whole-model rule's Δ (full-gradient mode, over two
tensors) and ``hamu_update``'s Δ lie in span{g_r, g_f} with zero orthogonal residual, and
their coordinates there equal the drawn steps; the baselines' directions likewise. Problems
within rounding of a branch boundary are skipped: there the branch is decided by the last bit.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, event, given
from hypothesis import strategies as st

from hamu_core.rules.baselines import GradientAscent, GradientDifference, PCGrad
from hamu_core.rules.gradients import PairedGradients
from hamu_core.rules.hamu import HAMU_RULES
from hamu_core.rules.plane import plane_problem
from hamu_core.rules.rule import StepInputs
from hamu_core.rules.solver import BRANCHES, effective_pair, hamu_update

VARIANTS = st.sampled_from(("hamu-q", "hamu-u"))
POSITIVE = st.floats(1e-3, 10.0)
RULES = {"GDiff": GradientDifference, "GA": GradientAscent, "PCGrad": PCGrad}


def near_boundary(gr: np.ndarray, gf: np.ndarray, radius: float, constraint: float, variant: str) -> bool:
    """Whether the problem sits within rounding of a branch test (HAMU_SPEC's order)."""
    r, f = (t.numpy() for t in effective_pair(torch.from_numpy(gr), torch.from_numpy(gf), variant))
    nr, nf, dot = np.linalg.norm(r), np.linalg.norm(f), float(r @ f)
    tol = 1e-7
    disc = radius**2 - constraint**2 / max(nf**2, 1e-12)
    direct_gap = dot + constraint * nr / max(radius, 1e-12)
    sin = math.sqrt(max(0.0, 1 - (dot / (nr * nf)) ** 2)) if nr * nf > 0 else 1.0
    return abs(disc) < tol * radius**2 or abs(direct_gap) < tol * (nr * nf + 1) or sin < 1e-6


def frame(gr: np.ndarray, gf: np.ndarray) -> np.ndarray:
    """Orthonormal rows (e1, e2): e1 along g_f, e2 along g_r's part orthogonal to it."""
    e1 = gf / np.linalg.norm(gf)
    orth = gr - (gr @ e1) * e1
    return np.stack([e1, orth / np.linalg.norm(orth)])


def in_plane(delta: np.ndarray, basis: np.ndarray, scale: float) -> np.ndarray:
    """Δ's coordinates in the plane, after checking that nothing of it lies outside."""
    coords = basis @ delta
    residual = delta - coords @ basis
    assert np.linalg.norm(residual) <= 1e-9 * scale
    return coords


def step_of(rule, grads: list[torch.Tensor], forget: list[torch.Tensor]) -> np.ndarray:
    inputs = StepInputs(None, None, None, None, PairedGradients(tuple("ab"[: len(grads)]), grads, forget, 0.0, 0.0))
    return np.concatenate([d.flatten().numpy() for d in rule.propose(inputs).delta])


@given(gr=st.tuples(st.floats(-5, 5), st.floats(-5, 5)), gf=st.tuples(st.floats(-5, 5), st.floats(-5, 5)),
       radius=POSITIVE, share=st.floats(0, 1.5), variant=VARIANTS)
def test_drawn_step_is_the_solvers_step_on_random_2d_problems(gr, gf, radius, share, variant):
    gr, gf = np.array(gr), np.array(gf)
    assume(np.linalg.norm(gf) > 1e-3 and np.linalg.norm(gr) > 1e-3)
    constraint = share * radius * np.linalg.norm(gf if variant == "hamu-q" else gr)
    assume(not near_boundary(gr, gf, radius, constraint, variant))
    solution = hamu_update(torch.from_numpy(gr), torch.from_numpy(gf), radius=radius, constraint=constraint,
                           variant=variant)
    basis = frame(gr, gf)
    cos = float(gr @ gf) / (np.linalg.norm(gr) * np.linalg.norm(gf))
    drawn = plane_problem(np.linalg.norm(gr), np.linalg.norm(gf), cos, radius, constraint, variant)
    scale = max(1.0, float(np.linalg.norm(solution.delta.numpy())))
    event(solution.branch)
    assert drawn.branch == solution.branch
    np.testing.assert_allclose(drawn.exact_step, in_plane(solution.delta.numpy(), basis, scale), atol=1e-9 * scale)
    np.testing.assert_allclose(drawn.g_retain, basis @ gr, atol=1e-9 * scale)
    np.testing.assert_allclose(drawn.g_forget, basis @ gf, atol=1e-9 * scale)


@given(seed=st.integers(0, 2**32 - 1), dim=st.integers(3, 60), mix=st.floats(-1, 1), radius=POSITIVE,
       share=st.floats(0, 1.5), variant=VARIANTS, infeasible_step=st.sampled_from(("cap", "exact")))
def test_projection_of_high_dimensional_problems_is_the_drawn_step(seed, dim, mix, radius, share, variant,
                                                                    infeasible_step):
    rng = np.random.default_rng(seed)
    gf = rng.normal(size=dim)
    gr = mix * gf * rng.uniform(0.1, 3) + (1 - abs(mix)) * rng.normal(size=dim)
    assume(np.linalg.norm(gr) > 1e-3)
    constraint = share * radius * np.linalg.norm(gf if variant == "hamu-q" else gr)
    assume(not near_boundary(gr, gf, radius, constraint, variant))
    basis = frame(gr, gf)
    cos = float(gr @ gf) / (np.linalg.norm(gr) * np.linalg.norm(gf))
    drawn = plane_problem(np.linalg.norm(gr), np.linalg.norm(gf), cos, radius, constraint, variant,
                          infeasible_step=infeasible_step)

    solution = hamu_update(torch.from_numpy(gr), torch.from_numpy(gf), radius=radius, constraint=constraint,
                           variant=variant)
    scale = max(1.0, float(np.linalg.norm(solution.delta.numpy())))
    event(solution.branch)
    assert drawn.branch == solution.branch
    np.testing.assert_allclose(drawn.exact_step, in_plane(solution.delta.numpy(), basis, scale), atol=1e-9 * scale)

    # The whole-model rule on a two-tensor split of the same gradients: one global problem.
    cut = dim // 2
    split_r = [torch.from_numpy(gr[:cut]), torch.from_numpy(gr[cut:])]
    split_f = [torch.from_numpy(gf[:cut]), torch.from_numpy(gf[cut:])]
    rule = HAMU_RULES[variant](radius=radius, constraint=constraint, mode="full", clip_norm=None,
                      infeasible_step=infeasible_step)
    taken = step_of(rule, split_r, split_f)
    np.testing.assert_allclose(drawn.step, in_plane(taken, basis, scale), atol=1e-9 * scale)

    for name, cls in RULES.items():
        direction = in_plane(step_of(cls(lr=1.0), split_r, split_f), basis, scale)
        expected = direction * radius / np.linalg.norm(direction) if np.linalg.norm(direction) > 1e-12 else direction
        np.testing.assert_allclose(drawn.baselines[name], expected, atol=1e-9 * scale, err_msg=name)


@pytest.mark.parametrize("case, branch", [
    (dict(norm_r=1.0, norm_f=0.0, cos_rf=0.0, radius=1.0, constraint=0.5), "zero_forget_grad"),
    (dict(norm_r=1.0, norm_f=0.1, cos_rf=0.3, radius=1.0, constraint=0.5), "infeasible"),
    (dict(norm_r=1.0, norm_f=1.0, cos_rf=-0.9, radius=1.0, constraint=0.5), "direct"),
    (dict(norm_r=1.0, norm_f=1.0, cos_rf=1.0, radius=1.0, constraint=0.5), "colinear"),
    (dict(norm_r=1.0, norm_f=1.0, cos_rf=0.3, radius=1.0, constraint=0.5), "rectified"),
])
def test_every_branch_is_drawn_with_its_geometry(case, branch):
    drawn = plane_problem(**case)
    assert drawn.branch == branch and branch in BRANCHES
    R, B = case["radius"], case["constraint"]
    assert np.linalg.norm(drawn.step) <= R * (1 + 1e-12)  # the Studio's step never leaves the disc
    if drawn.feasible:
        assert drawn.forget_gain >= B * (1 - 1e-12)
    if branch == "infeasible":  # capped at R along g_f; the paper's step is B/‖g_f‖ long
        np.testing.assert_allclose(drawn.step, [R, 0.0])
        np.testing.assert_allclose(drawn.exact_step, [B / case["norm_f"], 0.0])


def test_parallel_gradients_within_cosine_rounding_are_drawn_colinear():
    gf = np.random.default_rng(0).normal(size=40)
    gr = 2.5 * gf
    cos = float(gr @ gf) / (np.linalg.norm(gr) * np.linalg.norm(gf))
    drawn = plane_problem(np.linalg.norm(gr), np.linalg.norm(gf), cos, 1.0, 0.5)
    solution = hamu_update(torch.from_numpy(gr), torch.from_numpy(gf), radius=1.0, constraint=0.5)
    assert drawn.branch == solution.branch == "colinear"
    assert drawn.g_retain[1] == 0.0


def test_unavoidable_degradation_matches_the_spec_condition():
    # HAMU_SPEC: degradation is unavoidable when cos θ_rf > 0 and b = B/‖g_f‖ > R·sin θ_rf.
    hard = plane_problem(1.0, 1.0, math.cos(0.2), 1.0, 0.5)  # b = 0.5 > sin 0.2 ≈ 0.199
    easy = plane_problem(1.0, 1.0, math.cos(1.0), 1.0, 0.5)  # b = 0.5 < sin 1.0 ≈ 0.84
    assert hard.degradation_unavoidable and hard.retain_change > 0
    assert not easy.degradation_unavoidable and easy.retain_change < 0


def test_non_finite_inputs_are_refused_by_name():
    with pytest.raises(ValueError, match="cos_rf"):
        plane_problem(1.0, 1.0, math.nan, 1.0, 0.5)
