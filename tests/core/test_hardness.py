"""Per-sample hardness: the forward-mode and chunked-vmap paths against the per-sample loop oracle."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from hamu_core import hamu_update
from hamu_core.evaluation.hardness import (
    EASY_COS,
    HARD_COS,
    hardness_reading,
    overall_cosine,
    per_sample_hardness,
    per_sample_hardness_loop,
    tensor_cosines,
)
from hamu_core.rules import gradients as G
from hamu_core.rules.solver import EPS

N_FORGET = 23  # odd, so chunk sizes 7 and 256 leave ragged last chunks


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


def cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))


INPUT_SHAPES = {"mlp": (64,), "cnn": (1, 8, 8)}
MODELS = {"mlp": mlp, "cnn": cnn}


def problem(kind: str, dtype: torch.dtype = torch.float64, seed: int = 0):
    """A random model, a forget set and g_r from a separate random retain set."""
    torch.manual_seed(seed)
    model = MODELS[kind]().to(dtype)
    shape = INPUT_SHAPES[kind]
    x_f = torch.randn(N_FORGET, *shape, dtype=dtype)
    y_f = torch.randint(0, 10, (N_FORGET,))
    x_r = torch.randn(40, *shape, dtype=dtype)
    y_r = torch.randint(0, 10, (40,))
    _, g_r = G.loss_and_gradients(model, x_r, y_r)
    return model, x_f, y_f, g_r


TOL = {torch.float64: {"rtol": 1e-9, "atol": 1e-12}, torch.float32: {"rtol": 1e-4, "atol": 1e-5}}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_forward_mode_and_vmap_match_the_loop_oracle(kind, dtype):
    model, x_f, y_f, g_r = problem(kind, dtype)
    fast = per_sample_hardness(model, x_f, y_f, g_r, chunk_size=8)
    oracle = per_sample_hardness_loop(model, x_f, y_f, g_r)
    assert fast.kappa.shape == fast.grad_norm.shape == fast.cos.shape == (N_FORGET,)
    torch.testing.assert_close(fast.kappa, oracle.kappa, **TOL[dtype])
    torch.testing.assert_close(fast.grad_norm, oracle.grad_norm, **TOL[dtype])
    torch.testing.assert_close(fast.cos, oracle.cos, **TOL[dtype])
    assert fast.aggregate_kappa == pytest.approx(oracle.aggregate_kappa, rel=TOL[dtype]["rtol"])
    assert torch.isfinite(fast.cos).all() and (fast.cos.abs() <= 1 + 1e-6).all()
    assert (fast.kappa > 0).any() and (fast.kappa < 0).any()  # a real mix, not a trivial case


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_kappa_is_the_directional_derivative_along_g_retain(kind):
    """κ_i checked without any autograd: a central difference of sample i's loss along g_r."""
    model, x_f, y_f, g_r = problem(kind)
    kappa = per_sample_hardness(model, x_f, y_f, g_r, with_cos=False).kappa
    _, params = G.trainable_parameters(model)
    h = 1e-6
    losses = []
    for sign in (1.0, -1.0):
        shifted = [p.detach() + sign * h * g for p, g in zip(params, g_r)]
        original = [p.detach().clone() for p in params]
        with torch.no_grad():
            for p, s in zip(params, shifted):
                p.copy_(s)
            losses.append(nn.functional.cross_entropy(model(x_f), y_f, reduction="none"))
            for p, o in zip(params, original):
                p.copy_(o)
    torch.testing.assert_close(kappa, (losses[0] - losses[1]) / (2 * h), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_chunk_sizes_do_not_change_the_result(kind):
    model, x_f, y_f, g_r = problem(kind)
    sizes = [(1, 1), (7, 5), (N_FORGET, N_FORGET), (256, 512)]
    results = [per_sample_hardness(model, x_f, y_f, g_r, chunk_size=c, jvp_chunk_size=j) for c, j in sizes]
    for other in results[1:]:
        torch.testing.assert_close(other.kappa, results[0].kappa, rtol=1e-12, atol=0)
        torch.testing.assert_close(other.grad_norm, results[0].grad_norm, rtol=1e-12, atol=0)
        torch.testing.assert_close(other.cos, results[0].cos, rtol=1e-12, atol=0)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_aggregate_kappa_is_g_forget_dot_g_retain(kind):
    model, x_f, y_f, g_r = problem(kind)
    _, g_f = G.loss_and_gradients(model, x_f, y_f)  # gradient of the mean forget loss
    for with_cos in (True, False):
        result = per_sample_hardness(model, x_f, y_f, g_r, with_cos=with_cos)
        assert result.aggregate_kappa == pytest.approx(G.dot(g_f, g_r), rel=1e-10)


def test_without_cos_gives_the_same_kappa_and_no_norms():
    model, x_f, y_f, g_r = problem("mlp")
    bare = per_sample_hardness(model, x_f, y_f, g_r, with_cos=False)
    full = per_sample_hardness(model, x_f, y_f, g_r)
    assert bare.grad_norm is None and bare.cos is None
    assert torch.equal(bare.kappa, full.kappa)
    oracle = per_sample_hardness_loop(model, x_f, y_f, g_r, with_cos=False)
    assert oracle.grad_norm is None and oracle.cos is None
    torch.testing.assert_close(bare.kappa, oracle.kappa, rtol=1e-9, atol=1e-12)


def test_dropout_model_in_train_mode_is_measured_in_eval_mode_and_left_in_train_mode():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 10)).double()
    _, x_f, y_f, _ = problem("mlp")
    _, g_r = G.loss_and_gradients(model.eval(), x_f, y_f)
    model.train()
    first = per_sample_hardness(model, x_f, y_f, g_r)
    second = per_sample_hardness(model, x_f, y_f, g_r)
    assert model.training
    assert torch.equal(first.kappa, second.kappa) and torch.equal(first.cos, second.cos)
    oracle = per_sample_hardness_loop(model, x_f, y_f, g_r)
    assert model.training
    torch.testing.assert_close(first.cos, oracle.cos, rtol=1e-9, atol=1e-12)


def test_frozen_parameters_are_left_out_in_trainable_order():
    model, x_f, y_f, _ = problem("cnn")
    model[0].weight.requires_grad_(False)
    _, g_r = G.loss_and_gradients(model, x_f[:10], y_f[:10])
    assert len(g_r) == 3
    fast = per_sample_hardness(model, x_f, y_f, g_r, chunk_size=5)
    oracle = per_sample_hardness_loop(model, x_f, y_f, g_r)
    torch.testing.assert_close(fast.grad_norm, oracle.grad_norm, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(fast.cos, oracle.cos, rtol=1e-9, atol=1e-12)


def test_zero_retain_gradient_gives_zero_kappa_and_cosine_without_nan():
    model, x_f, y_f, g_r = problem("mlp")
    zero = [torch.zeros_like(g) for g in g_r]
    result = per_sample_hardness(model, x_f, y_f, zero)
    assert torch.equal(result.kappa, torch.zeros(N_FORGET, dtype=torch.float64))
    assert torch.equal(result.cos, torch.zeros(N_FORGET, dtype=torch.float64))
    assert (result.grad_norm > 0).all()


def test_inputs_are_not_mutated():
    model, x_f, y_f, g_r = problem("cnn")
    model.train()
    before = ([p.detach().clone() for p in model.parameters()], x_f.clone(), y_f.clone(), [g.clone() for g in g_r])
    per_sample_hardness(model, x_f, y_f, g_r, chunk_size=4)
    per_sample_hardness_loop(model, x_f, y_f, g_r)
    assert model.training
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before[0], model.parameters()))
    assert torch.equal(before[1], x_f) and torch.equal(before[2], y_f)
    assert all(torch.equal(a, b) for a, b in zip(before[3], g_r))


def _bad_inputs():
    model, x_f, y_f, g_r = problem("mlp")
    nan = [g.clone() for g in g_r]
    nan[1][0] = math.nan
    yield "empty forget set", (model, x_f[:0], y_f[:0], g_r), {}, "x_forget"
    yield "missing tensor", (model, x_f, y_f, g_r[:-1]), {}, "g_retain"
    yield "wrong shape", (model, x_f, y_f, [g_r[0].T, *g_r[1:]]), {}, "g_retain"
    yield "wrong dtype", (model, x_f, y_f, [g.float() for g in g_r]), {}, "g_retain"
    yield "NaN in g_retain", (model, x_f, y_f, nan), {}, "g_retain"
    yield "labels too few", (model, x_f, y_f[:-1], g_r), {}, "y_forget"
    yield "float labels", (model, x_f, y_f.double(), g_r), {}, "y_forget"
    yield "NaN input", (model, torch.full_like(x_f, math.nan), y_f, g_r), {}, "x_forget"
    yield "zero chunk", (model, x_f, y_f, g_r), {"chunk_size": 0}, "chunk_size"
    yield "float jvp chunk", (model, x_f, y_f, g_r), {"jvp_chunk_size": 8.0}, "jvp_chunk_size"


BAD = list(_bad_inputs())


@pytest.mark.parametrize(("args", "kwargs", "field"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_raises_value_error_naming_the_field(args, kwargs, field):
    with pytest.raises(ValueError, match=field):
        per_sample_hardness(*args, **kwargs)


SHARED = [b for b in BAD if not b[2] and b[0] != "NaN input"]  # the loop has no chunks; gradients refuses NaN loss


@pytest.mark.parametrize(("args", "field"), [(b[1], b[3]) for b in SHARED], ids=[b[0] for b in SHARED])
def test_loop_oracle_validates_the_same_way(args, field):
    with pytest.raises(ValueError, match=field):
        per_sample_hardness_loop(*args)


def test_tensor_and_overall_cosines_match_the_flat_formula():
    torch.manual_seed(2)
    g_r = [torch.randn(3, 4), torch.randn(5), torch.zeros(2)]
    g_f = [torch.randn(3, 4), -g_r[1] * 2, torch.randn(2)]
    per_tensor = tensor_cosines(g_r, g_f)
    cosine = nn.functional.cosine_similarity  # the flat formula, in float64
    first = float(cosine(g_r[0].flatten().double(), g_f[0].flatten().double(), dim=0))
    assert per_tensor[0] == pytest.approx(first, rel=1e-12)
    assert per_tensor[1] == pytest.approx(-1.0, rel=1e-12)
    assert per_tensor[2] == 0.0  # zero block: direction undefined, reported as 0
    flat_r, flat_f = (torch.cat([g.flatten() for g in grads]).double() for grads in (g_r, g_f))
    assert overall_cosine(g_r, g_f) == pytest.approx(float(cosine(flat_r, flat_f, dim=0)), rel=1e-12)
    assert overall_cosine(g_r, [torch.zeros_like(g) for g in g_f]) == 0.0


def test_cosines_refuse_mismatched_structure():
    g = [torch.ones(3), torch.ones(2)]
    with pytest.raises(ValueError, match="g_forget"):
        tensor_cosines(g, g[:1])
    with pytest.raises(ValueError, match="g_forget"):
        overall_cosine(g, [torch.ones(3), torch.ones(4)])


@pytest.mark.parametrize(("cos", "first_word"), [
    (0.8, "Hard"), (HARD_COS + 1e-3, "Hard"), (HARD_COS, "Neutral"), (0.0, "Neutral"),
    (EASY_COS, "Neutral"), (EASY_COS - 1e-3, "Easy"), (-1.0, "Easy"),
])
def test_hardness_reading_follows_the_thresholds(cos, first_word):
    assert hardness_reading(cos).startswith(first_word + ":")


def test_hardness_reading_takes_a_tensor_scalar_and_refuses_non_cosines():
    assert hardness_reading(torch.tensor(0.5)).startswith("Hard:")
    for bad in (math.nan, 1.5, -2.0):
        with pytest.raises(ValueError, match="cos"):
            hardness_reading(bad)


# One zero-norm rule: a gradient the solver treats as vanished (its branch and its cos θ_rf)
# gets no cosine from the hardness functions either. Norms between 1e-8 and 1e-5 straddle
# the boundary ‖g‖ = 1e-6 (‖g‖² = ε), where a norm-below-ε rule and a ‖g‖²-below-ε rule
# used to disagree; both gradients are scaled, so the product of two norms near 1e-7 is tried.
@settings(max_examples=80, deadline=None)
@given(st.floats(-8.0, -5.0), st.floats(-8.0, 0.0), st.integers(0, 2**16))
def test_solver_and_hardness_agree_whether_a_gradient_vanishes(log_forget, log_retain, seed):
    gen = torch.Generator().manual_seed(seed)
    g_r, g_f = torch.randn(2, 30, generator=gen, dtype=torch.float64)
    g_r, g_f = g_r * (10.0**log_retain / g_r.norm()), g_f * (10.0**log_forget / g_f.norm())
    solution = hamu_update(g_r, g_f, constraint=1e-3, radius=1.0)
    forget_vanished = float(g_f @ g_f) < EPS
    either_vanished = forget_vanished or float(g_r @ g_r) < EPS
    assert (solution.branch == "zero_forget_grad") == forget_vanished
    assert (solution.cos_rf == 0.0) == (overall_cosine([g_r], [g_f]) == 0.0) == either_vanished
    if not either_vanished:
        assert solution.cos_rf == pytest.approx(overall_cosine([g_r], [g_f]), rel=1e-12)


@pytest.mark.parametrize("norm", [3e-7, 9.99e-7, 1.001e-6, 3e-6])
def test_per_sample_cosines_vanish_with_the_retain_gradient_exactly_as_the_solver_says(norm):
    model, x_f, y_f, g_r = problem("mlp")
    scale = norm / float(G.norm(g_r))
    tiny = [g * scale for g in g_r]
    result = per_sample_hardness(model, x_f, y_f, tiny)
    flat = torch.cat([g.flatten() for g in tiny])
    solution = hamu_update(flat, torch.ones_like(flat), constraint=0.0, radius=1.0)
    assert (solution.cos_rf == 0.0) == bool((result.cos == 0).all()) == (norm < 1e-6)
