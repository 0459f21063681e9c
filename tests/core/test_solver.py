"""Properties and oracles for ``hamu_update`` (HAMU_SPEC: HAMU-Q, HAMU-U, radius, stopping signal).

Three independent witnesses check the closed form: the first-order guarantees themselves
(constraint met, step inside the radius), a brute-force constrained solver (scipy SLSQP from
several starts) for optimality, and a small numpy re-implementation of the spec's five
branches with the same EPS clamps for the exact Δ and branch name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

from hamu_core import hamu_update

EPS = 1e-12  # HAMU_SPEC: "ε = 1e-12 guards every division"
VARIANTS = ("hamu-q", "hamu-u")
DTYPES = (torch.float32, torch.float64)

# Entries are float32 numbers, so the float32 and float64 runs solve the very same problem.
ENTRY = st.floats(-8, 8, width=32, allow_subnormal=False)
SCALAR = st.one_of(st.just(0.0), st.floats(0, 10, width=32, allow_subnormal=False))
KINDS = ("random", "random", "parallel", "orthogonal", "zero_retain", "zero_forget", "zero_both")


@dataclass(frozen=True)
class Problem:
    """One HAMU problem in raw terms (variants map it to their effective frame)."""

    gr: np.ndarray  # raw retain gradient
    gf: np.ndarray  # raw forget gradient
    radius: float
    constraint: float


@st.composite
def problems(draw, min_dim: int = 1, max_dim: int = 6, kinds: tuple[str, ...] = KINDS) -> Problem:
    """Random pairs plus the edge cases: parallel, antiparallel, orthogonal, zero vectors."""
    n = draw(st.integers(min_dim, max_dim))
    vector = st.lists(ENTRY, min_size=n, max_size=n).map(lambda v: np.array(v, dtype=np.float64))
    gf = draw(vector)
    kind = draw(st.sampled_from(kinds))
    if kind == "parallel":
        gr = draw(st.sampled_from([-3.0, -1.0, -0.5, 0.5, 1.0, 2.0, 3.0])) * gf
    elif kind == "orthogonal" and n >= 2:
        gr = np.zeros(n)
        gr[0], gr[1] = gf[1], -gf[0]
    elif kind in ("zero_retain", "zero_both"):
        gr = np.zeros(n)
    else:
        gr = draw(vector)
    if kind in ("zero_forget", "zero_both"):
        gf = np.zeros(n)
    gr = gr.astype(np.float32).astype(np.float64)  # keep every entry a float32 number
    return Problem(gr, gf, draw(SCALAR), draw(SCALAR))


def effective(p: Problem, variant: str) -> tuple[np.ndarray, np.ndarray]:
    """(g_r', g_f') of HAMU_SPEC: HAMU-U uses g_r' = −g_f and g_f' = −g_r."""
    return (-p.gf, -p.gr) if variant == "hamu-u" else (p.gr, p.gf)


def solve(p: Problem, variant: str, dtype: torch.dtype = torch.float64, **kwargs):
    kwargs = kwargs or {"radius": p.radius}
    return hamu_update(
        torch.tensor(p.gr, dtype=dtype), torch.tensor(p.gf, dtype=dtype),
        constraint=p.constraint, variant=variant, **kwargs,
    )


def spec_conditions(c: np.ndarray, a: np.ndarray, R: float, B: float) -> list[tuple[str, bool]]:
    """HAMU_SPEC's branch conditions in spec order (effective frame); step 1 splits on B."""
    a_sq = float(a @ a)
    safe_a_sq = max(a_sq, EPS)
    return [
        ("zero_forget_grad", a_sq < EPS and B > EPS),
        ("direct", a_sq < EPS and B <= EPS),
        ("infeasible", R * R - B * B / safe_a_sq < 0),
        ("direct", float(c @ a) <= -B * max(np.linalg.norm(c), EPS) / max(R, EPS)),
        ("colinear", np.linalg.norm(c - (float(c @ a) / safe_a_sq) * a) < EPS),
        ("rectified", True),
    ]


def spec_branch(c: np.ndarray, a: np.ndarray, R: float, B: float) -> str:
    """The first condition that holds."""
    return next(name for name, holds in spec_conditions(c, a, R, B) if holds)


def spec_delta(c: np.ndarray, a: np.ndarray, R: float, B: float, branch: str) -> np.ndarray:
    """The step HAMU_SPEC prescribes on ``branch``, with the reference's clamp(min=EPS) guards."""
    safe_a_sq = max(float(a @ a), EPS)
    if branch == "zero_forget_grad":
        return np.zeros_like(c)
    if branch == "direct":
        return -R * c / max(np.linalg.norm(c), EPS)
    ascent = B / safe_a_sq * a
    if branch in ("infeasible", "colinear"):
        return ascent
    orth = c - (float(c @ a) / safe_a_sq) * a
    s = R if B <= EPS else math.sqrt(R * R - B * B / safe_a_sq)
    return ascent - s * orth / max(np.linalg.norm(orth), EPS)


def delta_of(sol) -> np.ndarray:
    return sol.delta.double().numpy()


def scale(p: Problem, radius: float | None = None) -> float:
    """Magnitude of the quantities compared: sets absolute tolerances."""
    R = p.radius if radius is None else radius
    return 1.0 + float(np.linalg.norm(p.gr) + np.linalg.norm(p.gf)) * (1.0 + R) + p.constraint


def rtol_for(dtype: torch.dtype) -> float:
    return 1e-9 if dtype == torch.float64 else 1e-5


def constraint_tol(c: np.ndarray, a: np.ndarray, R: float, scale_: float, dtype: torch.dtype) -> float:
    """Slack for g_f'·Δ ≥ B: dtype rounding plus the closed form's own conditioning.

    For nearly parallel gradients g_r⊥ is a small difference of large vectors; float64
    rounding of ~ε‖g_r‖ in it tilts the rectified direction by ~ε‖g_r‖/‖g_r⊥‖ towards g_f.
    """
    orth = c - float(c @ a) / max(float(a @ a), EPS) * a
    conditioning = np.linalg.norm(c) / max(np.linalg.norm(orth), EPS)
    return rtol_for(dtype) * scale_ + 1e-14 * conditioning * R * np.linalg.norm(a)


def radius_bound(a: np.ndarray, R: float, B: float, dtype: torch.dtype) -> float:
    """R(1 + tol); HAMU_SPEC's "s = R when B ≤ ε" adds the ascent B/‖g_f‖ on top (≤ ~ε/‖g_f‖)."""
    slack = B / math.sqrt(max(float(a @ a), EPS)) if B <= EPS else 0.0
    return math.hypot(R, slack) * (1 + rtol_for(dtype))


# ---------------------------------------------------------------------------------------------
# Guarantees: constraint met and step inside the radius whenever the problem is feasible.


@settings(max_examples=150)
@given(problems(), st.sampled_from(VARIANTS), st.sampled_from(DTYPES))
def test_feasible_step_meets_constraint_inside_radius(p, variant, dtype):
    c, a = effective(p, variant)
    sol = solve(p, variant, dtype)
    d = delta_of(sol)
    tol = constraint_tol(c, a, p.radius, scale(p), dtype)
    assert sol.delta.dtype == dtype and sol.delta.shape == (len(p.gr),)
    assert sol.feasible == (spec_branch(c, a, p.radius, p.constraint) not in ("infeasible", "zero_forget_grad"))
    if sol.feasible:
        assert a @ d >= p.constraint - tol
        assert np.linalg.norm(d) <= radius_bound(a, p.radius, p.constraint, dtype)
        if variant == "hamu-u":  # in raw terms: the retain loss falls by at least B
            assert -(p.gr @ d) >= p.constraint - tol


@settings(max_examples=80)
@given(problems(), st.sampled_from(VARIANTS), st.floats(0, 2, width=32), st.sampled_from(DTYPES))
def test_lr_radius_uses_effective_retain_norm(p, variant, lr, dtype):
    c, a = effective(p, variant)
    sol = solve(p, variant, dtype, lr=lr)
    expected_R = lr * float(np.linalg.norm(c))  # ‖g_r‖ for HAMU-Q, ‖g_f‖ for HAMU-U
    assert sol.radius == pytest.approx(expected_R, rel=1e-12, abs=1e-300)
    if sol.feasible:
        d = delta_of(sol)
        assert a @ d >= p.constraint - constraint_tol(c, a, expected_R, scale(p, expected_R), dtype)
        assert np.linalg.norm(d) <= radius_bound(a, expected_R, p.constraint, dtype)


# ---------------------------------------------------------------------------------------------
# The exact solution: same Δ and branch as an independent re-implementation of the spec.


@settings(max_examples=150)
@given(problems(), st.sampled_from(VARIANTS), st.sampled_from(DTYPES))
def test_matches_independent_spec_implementation(p, variant, dtype):
    c, a = effective(p, variant)
    branch = spec_branch(c, a, p.radius, p.constraint)
    sol = solve(p, variant, dtype)
    assert sol.branch == branch
    tol = rtol_for(dtype) * 10
    expected = spec_delta(c, a, p.radius, p.constraint, branch)
    np.testing.assert_allclose(delta_of(sol), expected, rtol=tol, atol=tol * scale(p))


@pytest.mark.parametrize(
    ("gr", "gf", "R", "B", "branch", "delta"),
    [
        ([1.0, 2.0], [0.0, 0.0], 1.0, 0.5, "zero_forget_grad", [0.0, 0.0]),
        ([3.0, 4.0], [0.0, 0.0], 2.0, 0.0, "direct", [-1.2, -1.6]),  # void constraint: plain descent
        ([3.0, 4.0], [1e-7, 0.0], 2.0, 1e-13, "direct", [-1.2, -1.6]),  # ‖g_f‖² < ε counts as zero
        ([1.0, 1.0], [1.0, 0.0], 1.0, 5.0, "infeasible", [5.0, 0.0]),
        ([-1.0, 0.0], [1.0, 0.0], 1.0, 0.5, "direct", [1.0, 0.0]),
        ([2.0, 0.0], [1.0, 0.0], 1.0, 0.5, "colinear", [0.5, 0.0]),
        ([1.0, 1.0], [1.0, 0.0], 1.0, 0.5, "rectified", [0.5, -math.sqrt(0.75)]),
        ([1.0, 1.0], [1.0, 0.0], 1.0, 0.0, "rectified", [0.0, -1.0]),  # B = 0: s = R
        ([1.0, 1.0], [1.0, 0.0], 1e-12, 1e-12, "rectified", [1e-12, -1e-12]),  # B ≤ ε: s = R, not √(R² − b²)
        ([-2.0, 0.0], [1.0, 0.0], 1.0, 0.5, "direct", [1.0, 0.0]),  # antiparallel: direct comes before colinear
        ([0.0, 0.0], [1.0, 0.0], 0.0, 0.0, "direct", [0.0, 0.0]),  # R = 0, B = 0
        ([0.0, 1.0], [1.0, 0.0], 0.0, 0.1, "infeasible", [0.1, 0.0]),  # R = 0, B > 0
    ],
)
@pytest.mark.parametrize("dtype", DTYPES)
def test_each_branch_on_hand_solved_cases(gr, gf, R, B, branch, delta, dtype):
    sol = hamu_update(torch.tensor(gr, dtype=dtype), torch.tensor(gf, dtype=dtype), constraint=B, radius=R)
    assert sol.branch == branch
    assert sol.feasible == (branch not in ("infeasible", "zero_forget_grad"))
    np.testing.assert_allclose(delta_of(sol), delta, rtol=1e-6, atol=1e-7 * max(map(abs, delta)))


def test_float32_nearly_parallel_gradients_meet_constraint():
    """g_r⊥ of nearly parallel float32 gradients is tiny; computed in float32 it is mostly noise."""
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        gf = torch.randn(50, generator=gen)
        gr = gf.clone()
        gr[0] += 1e-3
        sol = hamu_update(gr, gf, constraint=1.0, radius=2.0)
        assert sol.branch == "rectified" and sol.delta.dtype == torch.float32
        assert float(gf.double() @ sol.delta.double()) == pytest.approx(1.0, rel=1e-5)
        assert float(sol.delta.double().norm()) == pytest.approx(2.0, rel=1e-6)


@settings(max_examples=120)
@given(problems(), st.sampled_from(VARIANTS))
def test_branch_is_first_condition_in_spec_order(p, variant):
    c, a = effective(p, variant)
    holding = [name for name, holds in spec_conditions(c, a, p.radius, p.constraint)[:-1] if holds]
    event(f"conditions holding at once: {len(holding)}")  # order only matters when several hold
    assert solve(p, variant).branch == (holding[0] if holding else "rectified")


@settings(max_examples=100)
@given(problems(), st.one_of(st.none(), st.floats(0, 2, width=32)), st.sampled_from(DTYPES))
def test_hamu_u_is_hamu_q_on_swapped_negated_gradients(p, lr, dtype):
    kwargs = {"radius": p.radius} if lr is None else {"lr": lr}
    u = solve(p, "hamu-u", dtype, **kwargs)
    q = solve(Problem(-p.gf, -p.gr, p.radius, p.constraint), "hamu-q", dtype, **kwargs)
    assert u.branch == q.branch and u.feasible == q.feasible
    assert torch.equal(u.delta, q.delta)
    assert u.radius == q.radius
    assert (u.kappa, u.norm_retain, u.norm_forget) == (q.kappa, q.norm_retain, q.norm_forget)


# ---------------------------------------------------------------------------------------------
# Optimality against a brute-force constrained solver (float64, low dimension).


def slsqp(objective, gradient, a: np.ndarray, B: float, R: float | None, x0s: list[np.ndarray]) -> list[np.ndarray]:
    """Local SLSQP solutions of ``min objective s.t. a·x ≥ B (and ‖x‖ ≤ R)``, one per start."""
    constraints = [{"type": "ineq", "fun": lambda x: a @ x - B, "jac": lambda x: a}]
    if R is not None:
        constraints.append({"type": "ineq", "fun": lambda x: R * R - x @ x, "jac": lambda x: -2 * x})
    options = {"ftol": 1e-13, "maxiter": 300}
    return [
        minimize(objective, x0, jac=gradient, method="SLSQP", constraints=constraints, options=options).x
        for x0 in x0s
    ]


def starts(n: int, R: float, seed: int, count: int = 4) -> list[np.ndarray]:
    """The origin plus random points on the radius' scale."""
    rng = np.random.default_rng(seed)
    return [np.zeros(n)] + [rng.normal(size=n) * max(R, 1e-3) for _ in range(count - 1)]


@settings(max_examples=30)
@given(problems(min_dim=2, max_dim=5), st.sampled_from(VARIANTS), st.integers(0, 2**16))
def test_optimal_against_slsqp(p, variant, seed):
    c, a = effective(p, variant)
    R, B = p.radius, p.constraint
    sol = solve(p, variant)
    assume(sol.feasible)
    ours = float(c @ delta_of(sol))
    tol = 1e-6 * scale(p)
    found = [
        float(c @ x)
        for x in slsqp(lambda x: c @ x, lambda x: c, a, B, R, starts(len(c), R, seed))
        if a @ x >= B - 1e-8 * scale(p) and x @ x <= R * R * (1 + 1e-8) + 1e-16
    ]
    if B < 0.99 * R * np.linalg.norm(a):  # strictly feasible: the brute force must find points too
        assert found
    assert all(ours <= f + tol for f in found)
    # κ > κ2 exactly when even the best feasible step raises the guarded objective.
    if found and abs(min(found)) > tol:
        assert sol.degradation_unavoidable == (min(found) > 0)


@settings(max_examples=25)
@given(
    problems(min_dim=2, max_dim=5, kinds=("random", "zero_retain")),
    st.sampled_from(VARIANTS), st.floats(0, 0.999), st.integers(0, 2**16),
)
def test_infeasible_step_is_minimum_norm_point_meeting_constraint(p, variant, shrink, seed):
    c, a = effective(p, variant)
    assume(a @ a > 1e-6 and p.constraint > 1e-3)
    R = shrink * p.constraint / np.linalg.norm(a)  # below B/‖g_f'‖: infeasible by construction
    sol = solve(Problem(p.gr, p.gf, R, p.constraint), variant)
    assert sol.branch == "infeasible" and not sol.feasible and not sol.degradation_unavoidable
    d = delta_of(sol)
    best = min(
        slsqp(lambda x: x @ x, lambda x: 2 * x, a, p.constraint, None, starts(len(c), 1.0, seed)),
        key=lambda x: x @ x if a @ x >= p.constraint * (1 - 1e-9) else math.inf,
    )
    np.testing.assert_allclose(d, best, rtol=1e-5, atol=1e-6 * np.linalg.norm(d))
    assert a @ d == pytest.approx(p.constraint, rel=1e-9)
    assert np.linalg.norm(d) > R


# ---------------------------------------------------------------------------------------------
# Hardness κ, the threshold κ2 and the stopping signal.


@settings(max_examples=100)
@given(problems(), st.sampled_from(VARIANTS))
def test_reported_scalars(p, variant):
    c, a = effective(p, variant)
    R, B = p.radius, p.constraint
    sol = solve(p, variant)
    assert sol.kappa == pytest.approx(float(p.gr @ p.gf), rel=1e-12, abs=1e-12)  # same in both frames
    assert sol.norm_retain == pytest.approx(np.linalg.norm(c), rel=1e-12)
    assert sol.norm_forget == pytest.approx(np.linalg.norm(a), rel=1e-12)
    assert (sol.radius, sol.constraint) == (R, B)
    vanished = c @ c < EPS or a @ a < EPS  # HAMU_SPEC's zero test ‖g‖² < ε, for the cosine too
    expected_cos = 0.0 if vanished else float(c @ a) / (np.linalg.norm(c) * np.linalg.norm(a))
    assert sol.cos_rf == pytest.approx(expected_cos, rel=1e-9, abs=1e-12)
    arg = (c @ c) * (a @ a) - B * B * (c @ c) / max(R, EPS) ** 2  # κ2² (HAMU_SPEC, stopping signal)
    tol = 1e-9 * (1 + (c @ c) * (a @ a))
    if arg > tol:
        assert sol.kappa2 == pytest.approx(math.sqrt(arg), rel=1e-6, abs=1e-6 * math.sqrt(tol))
        assert sol.margin == pytest.approx(sol.kappa2 - sol.kappa)
    elif arg < -tol:
        assert math.isnan(sol.kappa2)


@settings(max_examples=120)
@given(problems(kinds=("random", "parallel", "orthogonal")), st.sampled_from(VARIANTS))
def test_degradation_unavoidable_matches_geometry_and_best_step(p, variant):
    c, a = effective(p, variant)
    R, B = p.radius, p.constraint
    sol = solve(p, variant)
    if not sol.feasible:
        assert not sol.degradation_unavoidable
        return
    tol = 1e-9 * scale(p)
    change = float(c @ delta_of(sol))  # Δ is optimal, so this is the best achievable change
    if abs(change) > tol and abs(sol.kappa - sol.kappa2) > tol:  # clear of the boundary
        assert sol.degradation_unavoidable == (change > 0)
    norms = np.linalg.norm(c) * np.linalg.norm(a)
    if norms > 1e-6:
        cos = float(c @ a) / norms
        sin = math.sqrt(max(0.0, 1 - cos * cos))
        b = B / np.linalg.norm(a)
        if abs(b - R * sin) > 1e-9 * (1 + b) and abs(cos) > 1e-9:
            assert sol.degradation_unavoidable == (cos > 0 and b > R * sin)


def test_obtuse_angle_is_not_flagged_although_reference_test_fires():
    """HAMU_SPEC: B > R‖g_f‖ sin θ alone misfires at obtuse angles; the step still lowers L_r."""
    gr, gf = torch.tensor([-0.2, 0.3], dtype=torch.float64), torch.tensor([1.0, 0.0], dtype=torch.float64)
    R, B = 1.0, 0.9
    sin = math.sqrt(1 - (float(gr @ gf) / float(gr.norm() * gf.norm())) ** 2)
    assert B > R * float(gf.norm()) * sin  # the reference's condition holds here
    sol = hamu_update(gr, gf, constraint=B, radius=R)
    assert sol.branch == "rectified" and sol.feasible
    assert float(gr @ sol.delta) < 0 and not sol.degradation_unavoidable and sol.margin > 0


# ---------------------------------------------------------------------------------------------
# Bad input: a ValueError naming the field.


def _vec(*values, dtype=torch.float64):
    return torch.tensor(values, dtype=dtype)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: hamu_update(_vec(1.0, 2.0), _vec(1.0, 2.0, 3.0), constraint=0.1, radius=1.0), "shape"),
        (lambda: hamu_update(_vec(1.0, 2.0), _vec(1.0, 2.0, dtype=torch.float32), constraint=0.1, radius=1.0), "dtype"),
        (lambda: hamu_update(_vec(1.0), _vec(1.0), constraint=0.1, radius=-1.0), "radius"),
        (lambda: hamu_update(_vec(1.0), _vec(1.0), constraint=0.1, radius=math.nan), "radius"),
        (lambda: hamu_update(_vec(1.0), _vec(1.0), constraint=-0.1, radius=1.0), "constraint"),
        (lambda: hamu_update(_vec(1.0), _vec(1.0), constraint=math.inf, radius=1.0), "constraint"),
        (lambda: hamu_update(_vec(1.0), _vec(1.0), constraint=0.1, lr=-1e-3), "lr"),
        (lambda: hamu_update(_vec(1.0), _vec(1.0), constraint=0.1, radius=1.0, lr=1e-3), "radius"),
        (lambda: hamu_update(_vec(1.0), _vec(1.0), constraint=0.1), "radius"),
        (lambda: hamu_update(_vec(1.0), _vec(1.0), constraint=0.1, radius=1.0, variant="hamu-x"), "variant"),
        (lambda: hamu_update(_vec(math.nan, 1.0), _vec(1.0, 1.0), constraint=0.1, radius=1.0), "g_retain"),
        (lambda: hamu_update(_vec(1.0, 1.0), _vec(1.0, math.inf), constraint=0.1, radius=1.0), "g_forget"),
        (lambda: hamu_update(_vec(math.nan, 1.0), _vec(1.0, 1.0), constraint=0.1, radius=1, variant="hamu-u"), "g_retain"),
        (lambda: hamu_update(_vec(1.0, 1.0), _vec(-math.inf, 1.0), constraint=0.1, lr=1, variant="hamu-u"), "g_forget"),
    ],
)
def test_bad_input_raises_value_error_naming_field(call, field):
    with pytest.raises(ValueError, match=field):
        call()


def test_inputs_not_mutated_and_any_shape_kept():
    gen = torch.Generator().manual_seed(0)
    gr, gf = torch.randn(3, 4, generator=gen), torch.randn(3, 4, generator=gen)
    before = (gr.clone(), gf.clone())
    for variant in VARIANTS:
        for branch_B in (0.0, 0.5, 100.0):
            sol = hamu_update(gr, gf, constraint=branch_B, radius=1.0, variant=variant)
            assert sol.delta.shape == (3, 4) and sol.delta.dtype == torch.float32
            assert sol.delta.data_ptr() not in (gr.data_ptr(), gf.data_ptr())
    assert torch.equal(gr, before[0]) and torch.equal(gf, before[1])
