"""Each baseline against its HAMU_SPEC formula, recomputed here on flat vectors, and the bound
‖Δ‖ ≤ lr·clip_norm every baseline reports as its radius."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hamu_core.rules import gradients as G
from hamu_core.rules.hamu import HamuUpdate
from hamu_core.rules.registry import METHODS, make_rule
from hamu_core.rules.rule import StepInputs

LR = 0.1
BASELINES = sorted(m for m, cls in METHODS.items() if not issubclass(cls, HamuUpdate))


def flat(grads) -> torch.Tensor:
    return torch.cat([g.flatten() for g in grads]).double()


def setup(seed: int = 0, drift: float = 0.3):
    gen = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 4))
    original = copy.deepcopy(model)
    with torch.no_grad():  # the model has drifted from the original, so KL terms are non-zero
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * drift)
    x = torch.randn(40, 5, generator=gen)
    y = torch.randint(0, 4, (40,), generator=gen)
    retain, forget = (x[10:], y[10:]), (x[:10], y[:10])
    grads = G.paired_gradients(model, retain, forget)
    return StepInputs(model, original, retain, forget, grads)


def clipped(inputs: StepInputs, clip_norm: float) -> StepInputs:
    """The inputs as the run hands them to a rule with this clip_norm: g_r and g_f clipped separately."""
    g = inputs.grads
    grads = G.PairedGradients(g.names, G.clip(g.retain, clip_norm), G.clip(g.forget, clip_norm),
                              g.retain_loss, g.forget_loss)
    return StepInputs(inputs.model, inputs.original, inputs.retain, inputs.forget, grads)


def clip_flat(v: torch.Tensor, c: float) -> torch.Tensor:
    return v if float(v.norm()) <= c else v * (c / float(v.norm()))


def kl_flat(model, original, x) -> torch.Tensor:
    params = list(model.parameters())
    kl = F.kl_div(F.log_softmax(model(x), -1), F.softmax(original(x), -1).detach(), reduction="batchmean")
    return flat(torch.autograd.grad(kl, params))


def delta_of(method, inputs, **kw) -> torch.Tensor:
    return flat(make_rule(method, lr=LR, **kw).propose(inputs).delta)


@pytest.mark.parametrize("seed", range(4))
def test_simple_baselines_match_their_formulas(seed):
    inputs = setup(seed)
    g_r, g_f = flat(inputs.grads.retain), flat(inputs.grads.forget)
    expected = {
        "ft": g_r,
        "ga": -g_f,
        "gdiff": (g_r - g_f) / 2,
        "neggrad+": 0.8 * g_r - 0.2 * g_f,
    }
    for method, u in expected.items():
        torch.testing.assert_close(delta_of(method, inputs), -LR * u, msg=method)
    torch.testing.assert_close(delta_of("neggrad+", inputs, alpha=0.3), -LR * (0.3 * g_r - 0.7 * g_f))


@pytest.mark.parametrize("seed", range(3))
def test_kl_and_scrub_match_their_formulas(seed):
    inputs = setup(seed)
    g_r, g_f = flat(inputs.grads.retain), flat(inputs.grads.forget)
    g_kl_r = kl_flat(inputs.model, inputs.original, inputs.retain[0])
    g_kl_f = kl_flat(inputs.model, inputs.original, inputs.forget[0])
    assert g_kl_r.norm() > 1e-6  # the drift makes the teacher term real
    torch.testing.assert_close(delta_of("kl", inputs), -LR * (g_kl_r - g_f) / 2)
    scrub = (0.001 * g_kl_r + 0.99 * g_r - g_kl_f) / 2
    torch.testing.assert_close(delta_of("scrub", inputs), -LR * scrub)


@pytest.mark.parametrize("seed", range(3))
def test_kl_and_scrub_clip_each_side_to_clip_norm(seed):
    """KL: u = (clip(g_KL) − g_f)/2; SCRUB: u = (clip(α·g_KL,r + γ·g_r) − clip(g_KL,f))/2."""
    c = 0.05  # below every gradient here, so each clip binds
    inputs = clipped(setup(seed, drift=1.0), c)
    g_r, g_f = flat(inputs.grads.retain), flat(inputs.grads.forget)
    g_kl_r = kl_flat(inputs.model, inputs.original, inputs.retain[0])
    g_kl_f = kl_flat(inputs.model, inputs.original, inputs.forget[0])
    assert min(float(g_kl_r.norm()), float(g_kl_f.norm()), float((0.001 * g_kl_r + 0.99 * g_r).norm())) > c * 0.99
    torch.testing.assert_close(delta_of("kl", inputs, clip_norm=c), -LR * (clip_flat(g_kl_r, c) - g_f) / 2)
    scrub = (clip_flat(0.001 * g_kl_r + 0.99 * g_r, c) - clip_flat(g_kl_f, c)) / 2
    torch.testing.assert_close(delta_of("scrub", inputs, clip_norm=c), -LR * scrub)


@pytest.mark.parametrize("method", BASELINES)
@pytest.mark.parametrize("clip_norm", [0.01, 0.3, 10.0])
def test_every_baseline_step_is_bounded_by_its_reported_radius(method, clip_norm):
    """‖u‖ ≤ clip_norm once g_r and g_f are clipped, so ‖Δ‖ ≤ R = lr·clip_norm, the radius reported."""
    for seed in range(6):
        for drift in (0.3, 2.0):
            step = make_rule(method, lr=LR, clip_norm=clip_norm).propose(clipped(setup(seed, drift), clip_norm))
            assert step.info["radius"] == pytest.approx(LR * clip_norm, rel=1e-15)
            assert float(flat(step.delta).norm()) <= step.info["radius"] * (1 + 1e-6), (seed, drift)


def test_baseline_radius_without_clipping_and_with_a_cap():
    inputs = setup(0)
    assert math.isnan(make_rule("gdiff", lr=LR).propose(inputs).info["radius"])  # nothing bounds u
    for method in ("gru", "pcgrad"):  # τ caps ‖u‖ too; the tighter of the two bounds is the radius
        assert make_rule(method, lr=LR, tau=0.2).propose(inputs).info["radius"] == pytest.approx(LR * 0.2)
        step = make_rule(method, lr=LR, tau=0.2, clip_norm=0.5).propose(clipped(inputs, 0.5))
        assert step.info["radius"] == pytest.approx(LR * 0.2)
        step = make_rule(method, lr=LR, tau=0.9, clip_norm=0.5).propose(clipped(inputs, 0.5))
        assert step.info["radius"] == pytest.approx(LR * 0.5)
        assert float(flat(step.delta).norm()) <= step.info["radius"] * (1 + 1e-6)


def gru_oracle(g_r, g_f, conflict):
    a = g_f - (g_f @ g_r) / (g_r @ g_r) * g_r if conflict else g_f
    return LR * a  # θ ← θ + lr·a


def pcgrad_oracle(g_r, g_f, conflict):
    d_r, d_f = g_r, -g_f
    if conflict:
        d_r, d_f = d_r - (d_r @ d_f) / (d_f @ d_f) * d_f, d_f - (d_f @ d_r) / (d_r @ d_r) * d_r
    return -LR * (d_r + d_f) / 2


@pytest.mark.parametrize("seed", range(6))
def test_gru_and_pcgrad_principled_and_reference_conventions(seed):
    inputs = setup(seed)
    g_r, g_f = flat(inputs.grads.retain), flat(inputs.grads.forget)
    kappa = float(g_r @ g_f)
    for convention, conflict in (("principled", kappa > 0), ("reference", kappa < 0)):
        step = make_rule("gru", lr=LR, conflict_test=convention).propose(inputs)
        assert step.info["conflict"] == conflict
        torch.testing.assert_close(flat(step.delta), gru_oracle(g_r, g_f, conflict))
        step = make_rule("pcgrad", lr=LR, conflict_test=convention).propose(inputs)
        assert step.info["conflict"] == conflict
        torch.testing.assert_close(flat(step.delta), pcgrad_oracle(g_r, g_f, conflict))


def test_gru_never_raises_the_retain_loss_to_first_order_when_principled():
    for seed in range(10):
        inputs = setup(seed)
        g_r = flat(inputs.grads.retain)
        delta = delta_of("gru", inputs)
        assert float(g_r @ delta) <= 1e-6 * float(g_r.norm() * delta.norm())  # float32 rounding only


def test_tau_caps_the_direction_norm():
    inputs = setup(1)
    for method in ("gru", "pcgrad"):
        delta = delta_of(method, inputs, tau=1e-3)
        assert float(delta.norm()) <= LR * 1e-3 * (1 + 1e-6)
