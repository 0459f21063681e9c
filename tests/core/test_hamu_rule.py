"""HAMU on a whole model (HAMU_SPEC "Per-tensor and full-gradient modes"): ``HamuQ`` and ``HamuU``.

Full-gradient mode is checked against ``hamu_update`` on the concatenated gradient (one
global problem) and for the global guarantees; per-tensor mode against ``hamu_update`` per
tensor with constraint shares recomputed here, and for each tensor's own guarantees. The
rule's own choices beyond the closed form (an infeasible step capped at the radius; the
margin as the best predicted decrease of the protected objective) are checked against
scipy's SLSQP solving the constrained problems by brute force.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize
from torch import nn

from hamu_core import hamu_update
from hamu_core.rules.gradients import PairedGradients, paired_gradients, trainable_parameters
from hamu_core.rules.hamu import HAMU_RULES, INFEASIBLE_STEPS, MODES, HamuQ, HamuU, HamuUpdate, constraint_split
from hamu_core.rules.rule import StepInputs

EPS = 1e-12
VARIANTS = ("hamu-q", "hamu-u")
SPLITS = ("equal", "norm_product", "exp_neg_dot")
SCALES = st.one_of(st.just(0.0), st.floats(1e-2, 10))  # per-tensor gradient scales, zero blocks included


def mlp() -> nn.Module:
    """A 2-layer MLP: four parameter tensors of different shapes."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3))


MODEL = mlp()
SHAPES = [p.shape for p in MODEL.parameters()]


def random_grads(seed: int, retain_scales=None, forget_scales=None, dtype=torch.float32) -> PairedGradients:
    """g_r and g_f by hand: random directions, optionally a chosen norm per tensor."""
    gen = torch.Generator().manual_seed(seed)

    def draw(scales):
        grads = [torch.randn(shape, generator=gen, dtype=torch.float64) for shape in SHAPES]
        if scales is not None:
            grads = [g / g.norm() * s for g, s in zip(grads, scales)]
        return [g.to(dtype) for g in grads]

    names, _ = trainable_parameters(MODEL)
    return PairedGradients(names, draw(retain_scales), draw(forget_scales), 1.0, 2.0)


def inputs_for(grads: PairedGradients) -> StepInputs:
    gen = torch.Generator().manual_seed(1)
    batch = (torch.randn(6, 4, generator=gen), torch.randint(0, 3, (6,), generator=gen))
    return StepInputs(MODEL, MODEL, batch, batch, grads)


def effective(grads: PairedGradients, variant: str) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(g_r', g_f') per tensor, in float64 (HAMU_SPEC, HAMU-U swaps and negates)."""
    r, f = [g.double() for g in grads.retain], [g.double() for g in grads.forget]
    return ([-g for g in f], [-g for g in r]) if variant == "hamu-u" else (r, f)


def flat(tensors) -> torch.Tensor:
    return torch.cat([t.double().flatten() for t in tensors])


def global_norm(tensors) -> float:
    return float(flat(tensors).norm())


def expected_budgets(c, a, B: float, split: str) -> np.ndarray:
    """B_i recomputed from HAMU_SPEC's three splits (equal when all norm products vanish)."""
    n = len(c)
    if split == "exp_neg_dot":
        neg = np.array([-float(x.flatten() @ y.flatten()) for x, y in zip(c, a)])
        w = np.exp(neg - neg.max())
    elif split == "norm_product":
        w = np.array([float(x.norm() * y.norm()) for x, y in zip(c, a)])
    if split == "equal" or w.sum() == 0:
        w = np.ones(n)
    return B * w / w.sum()


# ---------------------------------------------------------------------------------------------
# Full-gradient mode: one global problem.


@settings(max_examples=60)
@given(
    st.integers(0, 10_000), st.sampled_from(VARIANTS), st.floats(0, 3), st.one_of(st.none(), st.floats(1e-3, 2)),
    st.floats(0.05, 3), st.sampled_from([torch.float32, torch.float64]), st.sampled_from(INFEASIBLE_STEPS),
)
def test_full_mode_is_the_global_problem(seed, variant, B, radius, lr, dtype, infeasible_step):
    grads = random_grads(seed, dtype=dtype)
    rule = HAMU_RULES[variant](constraint=B, radius=radius, lr=lr, mode="full", clip_norm=None,
                      infeasible_step=infeasible_step)
    step = rule.propose(inputs_for(grads))
    c, a = effective(grads, variant)
    R = radius if radius is not None else lr * float(flat(c).norm())
    d = flat(step.delta)
    size = {"radius": radius} if radius is not None else {"lr": lr}
    oracle = hamu_update(flat(grads.retain), flat(grads.forget), constraint=B, variant=variant, **size)
    capped = infeasible_step == "cap" and oracle.branch == "infeasible"
    expected = R * flat(a) / flat(a).norm() if capped else oracle.delta  # "exact": the closed form unchanged
    tol = 1e-9 if dtype == torch.float64 else 1e-5
    assert [t.shape for t in step.delta] == SHAPES and all(t.dtype == dtype for t in step.delta)
    torch.testing.assert_close(d, expected, rtol=tol, atol=tol * (1 + R))
    assert step.info["branch"] == oracle.branch and step.info["feasible"] == oracle.feasible
    assert step.info["capped"] == capped
    assert step.info["exact_step_norm"] == pytest.approx(float(oracle.delta.norm()), rel=tol, abs=tol * (1 + R))
    assert step.info["radius"] == pytest.approx(R, rel=1e-12)
    if oracle.feasible or capped:
        assert float(d.norm()) <= R * (1 + tol)  # globally, not per block
    if oracle.feasible:
        assert float(flat(a) @ d) >= B - tol * (1 + B + R * float(flat(a).norm()))
    # The flag follows the margin; away from the boundary it is the spec's test κ > κ2.
    clear = abs(oracle.kappa2 - oracle.kappa) > 1e-6 * (1 + float(flat(c).norm() * flat(a).norm()))
    if clear and abs(step.info["margin"]) > 1e-6 * (1 + R * float(flat(c).norm())):
        assert step.info["degradation_unavoidable"] == oracle.degradation_unavoidable
    assert step.refused is None


def test_full_mode_normalises_orthogonal_part_globally():
    """HAMU_SPEC: per-block normalisation of g_r⊥ gave ‖Δ‖ ≈ 1.4R on two tensors; global must give R."""
    model = nn.Linear(3, 2)
    gr = [torch.tensor([[0.5, 1.0, 0.0], [0.0, 0.0, 0.0]]), torch.tensor([1.0, 0.0])]
    gf = [torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]), torch.tensor([0.0, 0.0])]
    grads = PairedGradients(("weight", "bias"), gr, gf, 1.0, 1.0)
    batch = (torch.zeros(1, 3), torch.zeros(1, dtype=torch.long))
    R, B = 1.0, 0.1
    rule = HamuQ(constraint=B, radius=R, mode="full", clip_norm=None)
    step = rule.propose(StepInputs(model, model, batch, batch, grads))
    assert step.info["branch"] == "rectified"
    assert global_norm(step.delta) == pytest.approx(R, rel=1e-6)  # the rectified step uses the whole radius
    # The reference's per-block normalisation on the same problem, to show what is excluded.
    dot, gf_sq = sum(float((r * f).sum()) for r, f in zip(gr, gf)), sum(float((f * f).sum()) for f in gf)
    s = math.sqrt(R * R - B * B / gf_sq)
    per_block = [B / gf_sq * f - s * o / o.norm() for f, o in ((f, r - dot / gf_sq * f) for r, f in zip(gr, gf))]
    assert global_norm(per_block) == pytest.approx(math.sqrt(2 * s * s + B * B), rel=1e-6)
    assert global_norm(per_block) > 1.4 * R


def test_full_mode_on_real_model_gradients():
    """g_r, g_f from the MLP's own losses on random data (hamu_core.rules.gradients.paired_gradients)."""
    gen = torch.Generator().manual_seed(3)
    retain = (torch.randn(32, 4, generator=gen), torch.randint(0, 3, (32,), generator=gen))
    forget = (torch.randn(8, 4, generator=gen), torch.randint(0, 3, (8,), generator=gen))
    grads = paired_gradients(MODEL, retain, forget)
    R = 0.1
    B = 0.5 * R * global_norm(grads.forget)  # feasible: half the largest achievable gain
    rule = HamuQ(constraint=B, radius=R, mode="full", clip_norm=None)
    step = rule.propose(StepInputs(MODEL, MODEL, retain, forget, grads))
    d = flat(step.delta)
    assert step.info["feasible"]
    assert float(d.norm()) <= R * (1 + 1e-5)
    assert float(flat(grads.forget) @ d) >= B * (1 - 1e-4)


# ---------------------------------------------------------------------------------------------
# Per-tensor mode: one problem per tensor with a share B_i of the constraint.


@settings(max_examples=60)
@given(
    st.integers(0, 10_000), st.sampled_from(VARIANTS), st.sampled_from(SPLITS), st.floats(0, 3),
    st.one_of(st.none(), st.floats(1e-3, 2)), st.floats(0.05, 3),
    st.lists(SCALES, min_size=4, max_size=4), st.lists(SCALES, min_size=4, max_size=4),
    st.sampled_from(INFEASIBLE_STEPS),
)
def test_per_tensor_mode_solves_each_tensor(seed, variant, split, B, radius, lr, r_scales, f_scales, infeasible_step):
    grads = random_grads(seed, r_scales, f_scales, dtype=torch.float64)
    rule = HAMU_RULES[variant](constraint=B, radius=radius, lr=lr, split=split, clip_norm=None,
                      infeasible_step=infeasible_step)
    step = rule.propose(inputs_for(grads))
    c, a = effective(grads, variant)
    budgets = expected_budgets(c, a, B, split)
    feasible, capped = [], []
    for i, (ci, ai, di, Bi) in enumerate(zip(c, a, step.delta, budgets)):
        Ri = radius if radius is not None else lr * float(ci.norm())
        size = {"radius": radius} if radius is not None else {"lr": lr}
        oracle = hamu_update(grads.retain[i], grads.forget[i], constraint=float(Bi), variant=variant, **size)
        capped.append(infeasible_step == "cap" and oracle.branch == "infeasible")
        expected = Ri * ai / ai.norm() if capped[-1] else oracle.delta  # each tensor capped at its own R_i
        torch.testing.assert_close(di, expected, rtol=1e-9, atol=1e-9 * (1 + Ri + Bi))
        a_sq = float(ai.norm()) ** 2
        ok = Bi <= EPS if a_sq < EPS else Bi * Bi / a_sq <= Ri * Ri
        feasible.append(ok)
        if ok:
            assert float(di.norm()) <= math.hypot(Ri, Bi / math.sqrt(max(a_sq, EPS)) if Bi <= EPS else 0.0) * (1 + 1e-9)
            assert float(ai.flatten() @ di.flatten()) >= Bi - 1e-9 * (1 + Bi + Ri * math.sqrt(a_sq))
    assert step.info["feasible"] == all(feasible)
    assert step.info["capped"] == any(capped)
    assert step.info["radius"] == pytest.approx(
        math.sqrt(sum((radius if radius is not None else lr * float(ci.norm())) ** 2 for ci in c)), rel=1e-9
    )


@settings(max_examples=60)
@given(
    st.integers(0, 10_000), st.sampled_from(SPLITS), st.floats(0, 10), st.floats(0.01, 30),
    st.lists(SCALES, min_size=4, max_size=4), st.lists(SCALES, min_size=4, max_size=4),
)
def test_constraint_split_shares(seed, split, B, dot_scale, r_scales, f_scales):
    grads = random_grads(seed, [s * dot_scale for s in r_scales], f_scales, dtype=torch.float64)
    budgets = constraint_split(grads.retain, grads.forget, B, split)
    assert len(budgets) == 4 and all(b >= 0 and math.isfinite(b) for b in budgets)
    assert math.fsum(budgets) == pytest.approx(B, rel=1e-12, abs=1e-300)
    np.testing.assert_allclose(budgets, expected_budgets(grads.retain, grads.forget, B, split), rtol=1e-9, atol=1e-300)
    if split == "norm_product":  # B_i ∝ ‖g_r,i‖‖g_f,i‖
        products = [float(r.norm() * f.norm()) for r, f in zip(grads.retain, grads.forget)]
        if sum(products) > 0:
            np.testing.assert_allclose(np.array(budgets) * sum(products), B * np.array(products), rtol=1e-9)


def test_exp_neg_dot_is_softmax_of_negative_dots_without_overflow():
    base = random_grads(5, [30.0, 30.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0], dtype=torch.float64)
    forget = [base.retain[0], -base.retain[1], *base.forget[2:]]  # dots +900 and −900
    dots = torch.tensor([float((r * f).sum()) for r, f in zip(base.retain, forget)], dtype=torch.float64)
    assert float(dots.abs().max()) > 710  # exp(−dot) alone overflows float64 here
    budgets = constraint_split(base.retain, forget, 2.0, "exp_neg_dot")
    np.testing.assert_allclose(budgets, (2.0 * torch.softmax(-dots, 0)).numpy(), rtol=1e-12)
    np.testing.assert_allclose(budgets, expected_budgets(base.retain, forget, 2.0, "exp_neg_dot"), rtol=1e-12)
    assert math.fsum(budgets) == pytest.approx(2.0)


def test_equal_split_and_all_zero_norm_products():
    grads = random_grads(2, [1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0])
    assert constraint_split(grads.retain, grads.forget, 1.0, "equal") == [0.25] * 4
    # Every ‖g_r,i‖‖g_f,i‖ is zero: the constraint is still split (equally), never dropped.
    assert constraint_split(grads.retain, grads.forget, 1.0, "norm_product") == [0.25] * 4
    step = HamuQ(constraint=1.0, radius=1.0, split="norm_product", clip_norm=None).propose(inputs_for(grads))
    # Tensors without a forget gradient cannot gain their share: flagged, not silently "feasible".
    assert not step.info["feasible"] and step.info["branch_counts"]["zero_forget_grad"] == 2


@settings(max_examples=80)
@given(
    st.integers(0, 10_000), st.sampled_from(VARIANTS), st.floats(1e-4, 10), st.floats(1e-3, 1),
    st.lists(SCALES, min_size=4, max_size=4), st.lists(SCALES, min_size=4, max_size=4),
)
def test_lr_radius_norm_product_infeasible_iff_sum_below_ratio(seed, variant, B, lr, r_scales, f_scales):
    """HAMU_SPEC: R_i = lr·‖g_r,i‖ with the norm-product split is infeasible ⇔ Σ‖g_r,i‖‖g_f,i‖ < B/lr."""
    grads = random_grads(seed, r_scales, f_scales, dtype=torch.float64)
    total = math.fsum(float(r.norm() * f.norm()) for r, f in zip(grads.retain, grads.forget))
    assume(abs(total - B / lr) > 1e-9 * (total + B / lr))
    rule = HAMU_RULES[variant](constraint=B, lr=lr, split="norm_product", clip_norm=None)
    step = rule.propose(inputs_for(grads))
    assert step.info["feasible"] == (total >= B / lr)


# ---------------------------------------------------------------------------------------------
# Infeasible steps: capped at the radius by default, the spec's exact step on request.


def slsqp_best(w: np.ndarray, a_blocks, B_blocks, R_blocks, seed: int) -> np.ndarray | None:
    """min w·x over x cut into blocks x_i, each with ‖x_i‖ ≤ R_i and a_i·x_i ≥ B_i (B_i None: no
    such constraint), by SLSQP from the origin and three random starts. Returns the best end
    point that meets the constraints, None when none does. Every function is scaled to be of
    order 1 (SLSQP's tolerances are absolute)."""
    ends = np.cumsum([0] + [len(ai) for ai in a_blocks])
    constraints = []
    for lo, hi, ai, Bi, Ri in zip(ends[:-1], ends[1:], a_blocks, B_blocks, R_blocks):
        def ball(x, lo=lo, hi=hi, Ri=Ri):
            return 1.0 - x[lo:hi] @ x[lo:hi] / Ri**2

        def ball_jac(x, lo=lo, hi=hi, Ri=Ri):
            j = np.zeros_like(x)
            j[lo:hi] = -2 * x[lo:hi] / Ri**2
            return j

        constraints.append({"type": "ineq", "fun": ball, "jac": ball_jac})
        if Bi is not None:
            size = Ri * float(np.linalg.norm(ai))  # the most a_i·x_i can be inside the ball
            row = np.zeros(ends[-1])
            row[lo:hi] = ai / size
            constraints.append({"type": "ineq", "fun": lambda x, row=row, b=Bi / size: row @ x - b,
                                "jac": lambda x, row=row: row})
    rng = np.random.default_rng(seed)
    starts = [np.zeros(ends[-1])] + [rng.normal(size=ends[-1]) * max(R_blocks) / math.sqrt(ends[-1]) for _ in range(3)]
    options = {"ftol": 1e-14, "maxiter": 500}
    found = [minimize(lambda x: w @ x, x0, jac=lambda x: w, method="SLSQP", constraints=constraints,
                      options=options).x for x0 in starts]
    ok = [x for x in found if all(c["fun"](x) >= -1e-7 for c in constraints)]
    return min(ok, key=lambda x: w @ x) if ok else None


def blocks_of(mode: str, tensors) -> list[np.ndarray]:
    """The problems' variables: one block per tensor (per-tensor mode) or one global block."""
    arrays = [t.double().flatten().numpy() for t in tensors]
    return arrays if mode == "per_tensor" else [np.concatenate(arrays)]


@settings(max_examples=24)
@given(
    st.integers(0, 10_000), st.sampled_from(VARIANTS), st.sampled_from(MODES),
    st.one_of(st.none(), st.floats(1e-3, 2)), st.floats(0.05, 3), st.floats(1.01, 1e3),
)
def test_capped_step_is_the_best_step_inside_the_radius(seed, variant, mode, radius, lr, excess):
    """Infeasible everywhere: Δ = R·g_f'/‖g_f'‖ (per tensor: R_i) maximises g_f'·Δ over ‖Δ‖ ≤ R (SLSQP)."""
    grads = random_grads(seed, dtype=torch.float64)
    c, a = effective(grads, variant)
    radii = [radius if radius is not None else lr * float(ci.norm()) for ci in c]
    R_full = radius if radius is not None else lr * global_norm(c)
    # More than any step inside the radius can gain, for every tensor's equal share and globally.
    B = excess * max(4 * max(Ri * float(ai.norm()) for Ri, ai in zip(radii, a)), R_full * global_norm(a))
    rule = HAMU_RULES[variant](constraint=B, radius=radius, lr=lr, mode=mode, split="equal", clip_norm=None)
    step = rule.propose(inputs_for(grads))
    assert step.info["branch_counts"] == {"infeasible": 4}  # full mode: every block of the one global problem
    assert not step.info["feasible"] and step.info["capped"] and math.isnan(step.info["margin"])
    R_blocks = radii if mode == "per_tensor" else [R_full]
    B_blocks = [B / 4] * 4 if mode == "per_tensor" else [B]
    a_blocks, d_blocks = blocks_of(mode, a), blocks_of(mode, step.delta)
    for ai, di, Ri in zip(a_blocks, d_blocks, R_blocks):
        best = slsqp_best(-ai / (Ri * np.linalg.norm(ai)), [ai], [None], [Ri], seed)
        np.testing.assert_allclose(di, best, atol=1e-5 * Ri)
        best *= min(1.0, Ri / np.linalg.norm(best))  # SLSQP may end a hair outside the ball
        assert ai @ di >= ai @ best - 1e-9 * Ri * np.linalg.norm(ai)
        assert np.linalg.norm(di) <= Ri * (1 + 1e-9)
    gain = math.fsum(Ri * np.linalg.norm(ai) for ai, Ri in zip(a_blocks, R_blocks))
    assert step.info["predicted_constraint_gain"] == pytest.approx(gain, rel=1e-9) and gain < B
    assert step.info["step_norm"] == pytest.approx(math.hypot(*R_blocks), rel=1e-9)
    # The exact step would have been the shortest that gains B: length B_i/‖g_f,i'‖ per block.
    exact = math.hypot(*(Bi / np.linalg.norm(ai) for ai, Bi in zip(a_blocks, B_blocks)))
    assert step.info["exact_step_norm"] == pytest.approx(exact, rel=1e-9) and exact > step.info["step_norm"]


@settings(max_examples=200)
@given(
    st.integers(0, 10_000), st.sampled_from(VARIANTS), st.sampled_from(MODES), st.sampled_from(SPLITS),
    st.one_of(st.floats(0, 3), st.floats(3, 1e4)), st.one_of(st.none(), st.just(0.0), st.floats(1e-6, 2)),
    st.floats(1e-3, 3),
    st.lists(SCALES, min_size=4, max_size=4), st.lists(SCALES, min_size=4, max_size=4),
    st.sampled_from([torch.float32, torch.float64]),
)
def test_every_step_stays_inside_the_radius_by_default(seed, variant, mode, split, B, radius, lr, r_scales,
                                                         f_scales, dtype):
    """‖Δ‖ ≤ R for every configuration at the default infeasible handling, per tensor and overall.

    The one excess is the spec's own: on the rectified branch with B ≤ ε it takes s = R on
    top of the ascent B/‖g_f'‖ (HAMU_SPEC step 5), at most ε/√ε = 1e-6 in absolute terms.
    """
    grads = random_grads(seed, r_scales, f_scales, dtype=dtype)
    rule = HAMU_RULES[variant](constraint=B, radius=radius, lr=lr, mode=mode, split=split, clip_norm=None)
    step = rule.propose(inputs_for(grads))
    c, a = effective(grads, variant)

    def bound(R: float, Bi: float, ai) -> float:
        a_norm = float(flat(ai).norm())
        slack = Bi / a_norm if Bi <= EPS and a_norm**2 >= EPS else 0.0
        return math.hypot(R, slack)

    tol = 1e-9 if dtype == torch.float64 else 1e-6
    if mode == "full":
        R = radius if radius is not None else lr * global_norm(c)
        limit = bound(R, B, a)
    else:
        radii = [radius if radius is not None else lr * float(ci.norm()) for ci in c]
        limits = [bound(Ri, Bi, ai) for Ri, Bi, ai in zip(radii, expected_budgets(c, a, B, split), a)]
        for di, li in zip(step.delta, limits):
            assert float(di.double().norm()) <= li * (1 + tol)
        R, limit = math.hypot(*radii), math.hypot(*limits)
    assert step.info["radius"] == pytest.approx(R, rel=1e-9, abs=1e-300)
    assert global_norm(step.delta) <= limit * (1 + tol)
    assert step.info["step_norm"] == pytest.approx(global_norm(step.delta), rel=1e-12, abs=1e-300)
    assert step.info["capped"] == (step.info["branch_counts"].get("infeasible", 0) > 0)


@pytest.mark.parametrize("mode", MODES)
def test_exact_infeasible_step_is_the_spec_step_and_exceeds_the_radius(mode):
    """infeasible_step="exact" keeps the paper's and the reference's (B/‖g_f‖²)·g_f, longer than R."""
    grads = random_grads(11, [0.01] * 4, [0.01] * 4, dtype=torch.float64)
    settings_ = {"constraint": 1.0, "radius": 0.1, "mode": mode, "split": "equal", "clip_norm": None}
    exact = HamuQ(**settings_, infeasible_step="exact").propose(inputs_for(grads))
    capped = HamuQ(**settings_).propose(inputs_for(grads))
    a = grads.forget
    if mode == "full":
        expected = [g / global_norm(a) ** 2 for g in a]  # B = 1
    else:
        expected = [0.25 * g / float(g.norm()) ** 2 for g in a]
    for d, e in zip(exact.delta, expected):
        torch.testing.assert_close(d, e, rtol=1e-12, atol=0)
    assert not exact.info["capped"] and exact.info["exact_step_norm"] == exact.info["step_norm"]
    assert exact.info["step_norm"] > 100 * exact.info["radius"]  # ‖g_f‖ = 0.02: the exact step is 250·R long
    assert capped.info["capped"] and capped.info["step_norm"] == pytest.approx(capped.info["radius"], rel=1e-12)
    assert capped.info["exact_step_norm"] == pytest.approx(exact.info["step_norm"], rel=1e-12)
    assert not exact.info["feasible"] and not capped.info["feasible"]


def test_infeasible_step_setting_is_validated():
    with pytest.raises(ValueError, match="infeasible_step"):
        HamuQ(infeasible_step="shortest")


# ---------------------------------------------------------------------------------------------
# The stopping signal: one definition of margin and flag in both modes.


@settings(max_examples=200)
@given(
    st.integers(0, 10_000), st.sampled_from(VARIANTS), st.sampled_from(MODES), st.sampled_from(SPLITS),
    st.floats(0, 3), st.one_of(st.none(), st.floats(1e-3, 2)), st.floats(0.05, 3),
    st.lists(SCALES, min_size=4, max_size=4), st.lists(SCALES, min_size=4, max_size=4),
    st.sampled_from(INFEASIBLE_STEPS),
)
def test_margin_and_flag_agree(seed, variant, mode, split, B, radius, lr, r_scales, f_scales, infeasible_step):
    """flag ⇔ feasible ∧ margin < 0, margin = −g_r'·Δ; in full mode sign(margin) = sign(κ2 − κ) off ties."""
    grads = random_grads(seed, r_scales, f_scales, dtype=torch.float64)
    rule = HAMU_RULES[variant](constraint=B, radius=radius, lr=lr, mode=mode, split=split, clip_norm=None,
                      infeasible_step=infeasible_step)
    info = rule.propose(inputs_for(grads)).info
    c, a = effective(grads, variant)
    margin = info["margin"]
    assert info["degradation_unavoidable"] == (info["feasible"] and margin < 0)
    assert math.isnan(margin) == (not info["feasible"])
    if info["feasible"]:
        assert margin == -info["predicted_objective_change"]
    kappa = float(flat(grads.retain) @ flat(grads.forget))
    assert info["kappa"] == pytest.approx(kappa, rel=1e-9, abs=1e-12)
    np.testing.assert_equal(info["kappa_margin"], info["kappa2"] - info["kappa"])
    if mode == "full" and info["feasible"]:
        R = info["radius"]
        c_norm, a_norm = global_norm(c), global_norm(a)
        if abs(info["kappa_margin"]) > 1e-6 * (1 + c_norm * a_norm) and abs(margin) > 1e-6 * (1 + c_norm * R):
            assert np.sign(margin) == np.sign(info["kappa_margin"])


@settings(max_examples=30)
@given(
    st.integers(0, 10_000), st.sampled_from(VARIANTS), st.sampled_from(MODES), st.floats(0, 0.99),
    st.one_of(st.none(), st.floats(1e-3, 2)), st.floats(0.05, 3),
)
def test_margin_is_the_best_predicted_decrease(seed, variant, mode, fraction, radius, lr):
    """margin = −min g_r'·Δ over the feasible set (SLSQP), globally or over the per-tensor problem.

    Per-tensor mode solves the separable problem (each tensor its share B_i inside its own
    R_i); the sum of the per-tensor optima is its optimum, which SLSQP checks as one problem.
    """
    grads = random_grads(seed, dtype=torch.float64)
    c, a = effective(grads, variant)
    radii = [radius if radius is not None else lr * float(ci.norm()) for ci in c]
    R_full = radius if radius is not None else lr * global_norm(c)
    # A feasible share of the most a step inside the radius can gain (equal split: B_i = B/4).
    B = fraction * (4 * min(Ri * float(ai.norm()) for Ri, ai in zip(radii, a)) if mode == "per_tensor"
                    else R_full * global_norm(a))
    rule = HAMU_RULES[variant](constraint=B, radius=radius, lr=lr, mode=mode, split="equal", clip_norm=None)
    info = rule.propose(inputs_for(grads)).info
    assert info["feasible"]
    a_blocks = blocks_of(mode, a)
    R_blocks = radii if mode == "per_tensor" else [R_full]
    B_blocks = [B / 4] * 4 if mode == "per_tensor" else [B]
    c_flat = flat(c).numpy()
    scale = float(np.linalg.norm(c_flat)) * math.hypot(*R_blocks)
    best = slsqp_best(c_flat / scale, a_blocks, B_blocks, R_blocks, seed)
    assert best is not None
    assert info["margin"] == pytest.approx(-float(c_flat @ best), abs=1e-6 * scale)
    assert info["degradation_unavoidable"] == (info["margin"] < 0)


def test_per_tensor_flag_follows_the_problem_solved_not_the_global_threshold():
    """The case that split the old definitions: κ2 − κ > 0 globally, yet the per-tensor optimum raises L_r.

    Tensor 0 must gain its share B/2 from a small g_f nearly parallel to g_r, so its step raises
    L_r; tensor 1's large g_f could gain all of B almost for free, which is what the global
    threshold assumes, but per-tensor mode does not move B between tensors.
    """
    model = nn.Linear(2, 2)
    gr = [torch.tensor([[1.0, 0.05], [0.0, 0.0]], dtype=torch.float64), torch.tensor([0.0, 0.5], dtype=torch.float64)]
    gf = [torch.tensor([[0.1, 0.0], [0.0, 0.0]], dtype=torch.float64), torch.tensor([10.0, 0.0], dtype=torch.float64)]
    grads = PairedGradients(("weight", "bias"), gr, gf, 1.0, 1.0)
    batch = (torch.zeros(1, 2), torch.zeros(1, dtype=torch.long))
    step = HamuQ(constraint=0.19, radius=1.0, split="equal", clip_norm=None).propose(
        StepInputs(model, model, batch, batch, grads))
    info = step.info
    assert info["feasible"] and info["kappa_margin"] > 0  # the global threshold says "avoidable"
    assert info["margin"] < 0 and info["degradation_unavoidable"]  # the step HAMU takes raises L_r
    # By hand: Δ_0 = (0.95, −s_0) on (g_f, g_r⊥) of tensor 0, Δ_1 = (0.0095, −s_1), s_i = √(1 − b_i²).
    s0, s1 = math.sqrt(1 - 0.95**2), math.sqrt(1 - 0.0095**2)
    assert info["margin"] == pytest.approx(-(0.95 - 0.05 * s0 - 0.5 * s1), rel=1e-12)


# ---------------------------------------------------------------------------------------------
# Stop options, settings and inputs.


@pytest.mark.parametrize("mode", ["per_tensor", "full"])
def test_stop_on_infeasible_refuses_with_zero_delta(mode):
    grads = random_grads(4)
    settings_ = {"constraint": 1e3, "radius": 1e-3, "mode": mode, "clip_norm": None}
    assert HamuQ(**settings_).propose(inputs_for(grads)).refused is None
    step = HamuQ(**settings_, stop_on_infeasible=True).propose(inputs_for(grads))
    assert step.refused and "infeasible" in step.refused and not step.info["feasible"]
    assert all(torch.equal(d, torch.zeros_like(d)) for d in step.delta)


@pytest.mark.parametrize("mode", ["per_tensor", "full"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_stop_on_unavoidable_refuses_with_zero_delta(mode, variant):
    base = random_grads(6)
    # Retain and forget gradients nearly aligned (κ > 0): gaining nearly the whole R‖g_f'‖ costs retain loss.
    near = [f + 0.05 * r for r, f in zip(base.retain, base.forget)]
    grads = PairedGradients(base.names, near, base.forget, 1.0, 1.0)
    c, a = effective(grads, variant)
    R = 0.1
    share = 0.9 * R * min(float(x.norm()) for x in a) if mode == "per_tensor" else 0.9 * R * global_norm(a)
    B = share * (4 if mode == "per_tensor" else 1)  # equal split: each tensor gets 0.9·R‖g_f,i'‖ at most
    settings_ = {"constraint": B, "radius": R, "mode": mode, "split": "equal", "clip_norm": None}
    free = HAMU_RULES[variant](**settings_).propose(inputs_for(grads))
    assert free.info["feasible"] and free.info["degradation_unavoidable"] and free.refused is None
    assert free.info["predicted_objective_change"] > 0
    step = HAMU_RULES[variant](**settings_, stop_on_unavoidable=True).propose(inputs_for(grads))
    assert step.refused and "unavoidable" in step.refused
    assert all(torch.equal(d, torch.zeros_like(d)) for d in step.delta)


@pytest.mark.parametrize(
    ("settings_", "field"),
    [
        ({"mode": "blockwise"}, "mode"),
        ({"split": "proportional"}, "split"),
        ({"constraint": -1.0}, "constraint"),
        ({"constraint": math.nan}, "constraint"),
        ({"radius": -0.5}, "radius"),
        ({"lr": 0.0}, "lr"),
        ({"clip_norm": -1.0}, "clip_norm"),
    ],
)
@pytest.mark.parametrize("rule", [HamuQ, HamuU])
def test_invalid_settings_raise_value_error_naming_field(settings_, field, rule):
    with pytest.raises(ValueError, match=field):
        rule(**settings_)


def test_the_two_variants_are_two_classes_and_the_base_cannot_be_built():
    """HAMU-Q and HAMU-U share every setting; which gradient is guaranteed is the class's, never a setting."""
    assert HamuQ().variant == "hamu-q" and HamuU().variant == "hamu-u"
    assert HamuQ().settings() == {**HamuU().settings(), "method": "hamu-q"}
    with pytest.raises(TypeError):
        HamuUpdate()


@pytest.mark.parametrize("mode", ["per_tensor", "full"])
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("B", [0.0, 0.05, 100.0])
def test_inputs_not_mutated(mode, variant, B):
    grads = random_grads(7)
    retain, forget = [g.clone() for g in grads.retain], [g.clone() for g in grads.forget]
    weights = [p.detach().clone() for p in MODEL.parameters()]
    step = HAMU_RULES[variant](constraint=B, lr=0.5, mode=mode, clip_norm=None).propose(inputs_for(grads))
    assert all(torch.equal(x, y) for x, y in zip(grads.retain, retain))
    assert all(torch.equal(x, y) for x, y in zip(grads.forget, forget))
    assert all(torch.equal(p, w) for p, w in zip(MODEL.parameters(), weights))
    inputs = {t.data_ptr() for t in grads.retain + grads.forget}
    assert not any(d.data_ptr() in inputs for d in step.delta)
