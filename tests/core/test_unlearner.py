"""UnlearningRun end to end on a small real classifier (scikit-learn's digits, trained here)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

from hamu_core.config import DEFAULTS
from hamu_core.rules.registry import make_rule
from hamu_core.runs.unlearner import StepRecord, UnlearningRun

FORGET_CLASS = 3


@pytest.fixture(scope="module")
def digits_model():
    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(200):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    mask = y == FORGET_CLASS
    return model.eval(), (x[~mask], y[~mask]), (x[mask], y[mask])


def accuracy(model, batch) -> float:
    with torch.no_grad():
        return float((model(batch[0]).argmax(1) == batch[1]).float().mean())


def test_hamu_q_raises_the_forget_loss_by_about_b_per_step(digits_model):
    model, retain, forget = digits_model
    B, R = 5e-4, 5e-3
    rule = make_rule("hamu-q", mode="full", radius=R, constraint=B, clip_norm=None)
    run = UnlearningRun(rule, model=model, retain=retain, forget=forget, retain_batch_size=len(retain[0]))
    records = run.run(5)
    assert len(records) == 5
    for r in records:
        assert r.feasible and r.branch in ("rectified", "direct")
        assert r.info["predicted_constraint_gain"] >= B * (1 - 1e-4)
        assert r.step_norm <= R * (1 + 1e-5)
        gain = r.forget_loss_after - r.forget_loss_before
        # First order: the realised gain tracks the predicted g_f·Δ ≥ B (curvature adds a little).
        predicted = r.info["predicted_constraint_gain"]
        assert abs(gain - predicted) <= 0.25 * predicted, (gain, predicted)
        assert gain >= 0.75 * B
    assert accuracy(run.model_, retain) >= accuracy(model, retain) - 0.02


def test_forgetting_a_whole_class_drives_its_accuracy_down(digits_model):
    model, retain, forget = digits_model
    assert accuracy(model, forget) > 0.9
    rule = make_rule("hamu-q", **DEFAULTS.method_settings("hamu-q"))
    run = UnlearningRun(rule, model=model, retain=retain, forget=forget, seed=0)
    run.run(100)
    assert accuracy(run.model_, forget) < 0.1
    assert accuracy(run.model_, retain) > accuracy(model, retain) - 0.05
    forget_losses = [r.forget_loss_after for r in run.history_]
    assert forget_losses[-1] > 10 * run.history_[0].forget_loss_before


def test_hamu_u_keeps_lowering_the_retain_loss(digits_model):
    model, retain, forget = digits_model
    rule = make_rule("hamu-u", mode="full", radius=0.02, constraint=1e-4, clip_norm=None)
    run = UnlearningRun(rule, model=model, retain=retain, forget=forget, retain_batch_size=len(retain[0]))
    for r in run.run(5):
        if r.feasible:
            assert r.info["predicted_constraint_gain"] >= 1e-4 * (1 - 1e-4)  # −g_r·Δ ≥ B


def test_step_record_is_complete_and_consistent(digits_model):
    model, retain, forget = digits_model
    run = UnlearningRun(make_rule("hamu-q", lr=0.05, constraint=0.025), model=model, retain=retain, forget=forget)
    record = run.step()
    assert isinstance(record, StepRecord) and record.step == 1 and record.method == "hamu-q"
    names = [n for n, _ in model.named_parameters()]
    assert list(record.cos_per_tensor) == names
    assert all(-1 - 1e-9 <= c <= 1 + 1e-9 for c in record.cos_per_tensor.values())
    assert -1 <= record.cos_rf <= 1
    assert sum(record.branch_counts.values()) == len(names)
    assert record.info["kappa_margin"] == pytest.approx(record.kappa2 - record.kappa, nan_ok=True)
    if record.feasible:
        assert record.margin == pytest.approx(-record.info["predicted_objective_change"])
    else:  # no step inside the radius meets B: there is no margin to speak of
        assert math.isnan(record.margin)
    assert record.wall_ms > 0
    assert record.to_dict()["method"] == "hamu-q"


def test_baseline_records_leave_hamu_fields_empty(digits_model):
    model, retain, forget = digits_model
    record = UnlearningRun(make_rule("gdiff", lr=0.01), model=model, retain=retain, forget=forget).step()
    assert record.branch == "" and math.isnan(record.kappa2) and math.isnan(record.radius)
    assert record.feasible and not record.degradation_unavoidable


def test_stop_options_refuse_steps_and_keep_weights(digits_model):
    model, retain, forget = digits_model
    # A constraint no step inside the radius can meet: every step is infeasible.
    rule = make_rule("hamu-q", lr=1e-3, constraint=10.0, stop_on_infeasible=True)
    run = UnlearningRun(rule, model=model, retain=retain, forget=forget)
    before = [p.detach().clone() for p in run.model_.parameters()]
    assert run.run(3) == []
    assert run.stop_.kind == "refused" and "infeasible" in run.stop_.message
    assert all(torch.equal(a, b) for a, b in zip(before, run.model_.parameters()))
    # Without the stop option, stop_when ends the run after the first infeasible step.
    run = UnlearningRun(make_rule("hamu-q", lr=1e-3, constraint=10.0), model=model, retain=retain, forget=forget)
    records = run.run(3, stop_when="infeasible")
    assert len(records) == 1 and records[0].branch == "infeasible"
    assert run.stop_.kind == "infeasible" and run.stop_.step == 1


def test_unavoidable_degradation_stop(digits_model):
    """Forget samples duplicated in the retain set (the paper's hard case) make κ > 0; a B
    close to the most a radius-R step can gain then forces the retain loss up (κ > κ2)."""
    from hamu_core.rules import gradients as G

    model, retain, _ = digits_model
    duplicates = (retain[0][:60], retain[1][:60])
    grads = G.paired_gradients(model, retain, duplicates)
    R = 0.05
    cos = G.dot(grads.retain, grads.forget) / (G.norm(grads.retain) * G.norm(grads.forget))
    assert cos > 0.2, cos
    B = 0.99 * R * G.norm(grads.forget)  # b = 0.99·R > R·sin θ because cos θ > 0.2
    rule = make_rule("hamu-q", mode="full", radius=R, constraint=B, clip_norm=None)
    run = UnlearningRun(rule, model=model, retain=retain, forget=duplicates, retain_batch_size=len(retain[0]))
    records = run.run(5, stop_when="unavoidable")
    assert len(records) == 1
    first = records[0]
    assert first.degradation_unavoidable and first.kappa > first.kappa2 and first.margin < 0
    assert first.info["predicted_objective_change"] > 0  # the best step raises the retain loss
    assert run.stop_.kind == "unavoidable" and "step 1" in run.stop_.message
    refusing = make_rule("hamu-q", mode="full", radius=R, constraint=B, clip_norm=None, stop_on_unavoidable=True)
    run = UnlearningRun(refusing, model=model, retain=retain, forget=duplicates, retain_batch_size=len(retain[0]))
    assert run.run(3) == [] and run.stop_.kind == "refused" and "degradation unavoidable" in run.stop_.message


@pytest.mark.parametrize("method, settings", [("hamu-q", {"clip_norm": 1.0}), ("hamu-u", {"clip_norm": 0.05}),
                                              ("gdiff", {"clip_norm": None})])
def test_record_carries_the_gradient_norms_the_step_used(digits_model, method, settings):
    """‖g_r‖, ‖g_f‖ of the clipped gradients: with κ they give cos θ_rf, and clipping bounds them."""
    model, retain, forget = digits_model
    run = UnlearningRun(make_rule(method, **settings), model=model, retain=retain, forget=forget)
    for r in run.run(3):
        assert r.retain_grad_norm > 0 and r.forget_grad_norm > 0
        assert r.cos_rf == pytest.approx(r.kappa / (r.retain_grad_norm * r.forget_grad_norm), rel=1e-9)
        if settings["clip_norm"] is not None:
            assert max(r.retain_grad_norm, r.forget_grad_norm) <= settings["clip_norm"] * (1 + 1e-6)
    stored = {k: v for k, v in r.to_dict().items() if k not in ("retain_grad_norm", "forget_grad_norm")}
    assert math.isnan(StepRecord(**stored).retain_grad_norm)  # records stored before the fields still load
