"""One conformance suite over every registered update rule (DESIGN: parametrize_with_checks idea).

Every rule must be deterministic under a seed, leave its inputs alone, refuse NaN with a
message that leaves the weights untouched, and let the run undo a step bit for bit. At the
Studio's defaults every rule keeps each step inside the radius it reports, and finishes a
long run on the built-in digits data without diverging.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from hamu_core.config import DEFAULTS
from hamu_core.rules import gradients as G
from hamu_core.rules.registry import METHOD_HELP, METHODS, make_rule
from hamu_core.rules.rule import StepInputs
from hamu_core.runs.experiment import ExperimentSpec, ForgetChoice, prepare, unlearning_run
from hamu_core.runs.unlearner import UnlearningRun

ALL_METHODS = sorted(METHODS)


def small_problem(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    x = torch.randn(60, 6, generator=gen)
    y = torch.randint(0, 3, (60,), generator=gen)
    forget = (x[:12], y[:12])
    retain = (x[12:], y[12:])
    return model, retain, forget


def settings_for(method: str) -> dict:
    if method.startswith("hamu"):
        return {"lr": 0.05, "constraint": 0.01}
    return {"lr": 0.05}


def weights(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b))


def make_run(method: str, seed: int = 0, retain_batch_size: int = 16) -> UnlearningRun:
    model, retain, forget = small_problem()
    return UnlearningRun(make_rule(method, **settings_for(method)), model=model, retain=retain, forget=forget,
                         seed=seed, retain_batch_size=retain_batch_size)


def test_every_method_has_help():
    assert set(METHOD_HELP) == set(METHODS)


@pytest.mark.parametrize("method", ALL_METHODS)
def test_same_seed_same_trajectory(method):
    a, b = make_run(method), make_run(method)
    ra, rb = a.run(4), b.run(4)
    assert len(ra) == 4
    assert same(weights(a.model_), weights(b.model_))
    strip = lambda r: repr({k: v for k, v in r.to_dict().items() if k != "wall_ms"})  # noqa: E731  (repr: NaN == NaN)
    assert [strip(r) for r in ra] == [strip(r) for r in rb]


@pytest.mark.parametrize("method", ALL_METHODS)
def test_different_seed_draws_different_batches(method):
    a, b = make_run(method, seed=0), make_run(method, seed=1)
    assert not torch.equal(a.batches(1)[0][0], b.batches(1)[0][0])


@pytest.mark.parametrize("method", ALL_METHODS)
def test_propose_mutates_nothing(method):
    model, retain, forget = small_problem()
    rule = make_rule(method, **settings_for(method))
    grads = G.paired_gradients(model, retain, forget)
    before_grads = [g.clone() for g in grads.retain + grads.forget]
    before_weights = weights(model)
    before_x = retain[0].clone()
    step = rule.propose(StepInputs(model, copy.deepcopy(model), retain, forget, grads))
    assert same(before_grads, grads.retain + grads.forget)
    assert same(before_weights, weights(model))
    assert torch.equal(before_x, retain[0])
    assert len(step.delta) == len(list(model.parameters()))
    assert all(d.shape == p.shape for d, p in zip(step.delta, model.parameters()))


@pytest.mark.parametrize("method", ALL_METHODS)
def test_run_never_touches_the_callers_model(method):
    model, retain, forget = small_problem()
    before = weights(model)
    run = UnlearningRun(make_rule(method, **settings_for(method)), model=model, retain=retain, forget=forget)
    run.run(3)
    assert same(before, weights(model))
    assert not same(before, weights(run.model_))


@pytest.mark.parametrize("method", ALL_METHODS)
def test_undo_is_exact_and_reset_returns_to_start(method):
    run = make_run(method)
    start = weights(run.model_)
    run.run(2)
    after_two = weights(run.model_)
    run.step()
    run.undo()
    assert same(after_two, weights(run.model_))
    assert len(run.history_) == 2
    # Stepping again after undo replays the same batch, so the same weights come back.
    redo = make_run(method)
    redo.run(3)
    run.step()
    assert same(weights(redo.model_), weights(run.model_))
    run.reset()
    assert same(start, weights(run.model_))
    assert run.history_ == [] and not run.can_undo
    with pytest.raises(IndexError, match="nothing to undo"):
        run.undo()


@pytest.mark.parametrize("method", ALL_METHODS)
def test_nan_inputs_are_refused_with_a_message(method):
    model, retain, forget = small_problem()
    bad = forget[0].clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="forget data contains NaN"):
        UnlearningRun(make_rule(method, **settings_for(method)), model=model, retain=retain, forget=(bad, forget[1]))


@pytest.mark.parametrize("method", ALL_METHODS)
@pytest.mark.filterwarnings("error::UserWarning")  # the refusal message reads the loss without torch's scalar warning
def test_nan_weights_refuse_the_step_and_keep_the_weights(method):
    run = make_run(method)
    with torch.no_grad():
        next(run.model_.parameters())[0, 0] = float("nan")
    before = weights(run.model_)
    with pytest.raises(FloatingPointError, match="refused"):
        run.step()
    after = weights(run.model_)
    assert all(torch.equal(torch.nan_to_num(a), torch.nan_to_num(b)) for a, b in zip(before, after))
    assert run.history_ == []


@pytest.mark.parametrize("method", ALL_METHODS)
def test_empty_data_is_refused(method):
    model, retain, forget = small_problem()
    empty = (forget[0][:0], forget[1][:0])
    with pytest.raises(ValueError, match="forget data is empty"):
        UnlearningRun(make_rule(method, **settings_for(method)), model=model, retain=retain, forget=empty)


def test_unknown_method_and_bad_settings_name_the_field():
    with pytest.raises(ValueError, match="method must be one of"):
        make_rule("nope")
    with pytest.raises(ValueError, match="lr must be"):
        make_rule("gdiff", lr=-1.0)
    with pytest.raises(ValueError, match=r"alpha must be a finite number >= 0 and <= 1"):
        make_rule("neggrad+", alpha=2.0)
    with pytest.raises(ValueError, match="conflict_test"):
        make_rule("gru", conflict_test="maybe")
    with pytest.raises(ValueError, match="unexpected keyword"):
        make_rule("ft", constraint=1.0)
    with pytest.raises(ValueError, match="retain_batch_size"):
        make_run("ft", retain_batch_size=0)


def test_stop_when_rejects_unknown_condition():
    with pytest.raises(ValueError, match="stop_when"):
        make_run("hamu-q").run(2, stop_when="tired")


@pytest.mark.parametrize("method", ALL_METHODS)
def test_every_step_stays_inside_the_reported_radius_at_studio_defaults(method):
    """‖Δ‖ ≤ R for every rule at ``DEFAULTS.method_settings``: HAMU by construction (infeasible steps
    capped), baselines because ‖u‖ ≤ clip_norm, R = lr·clip_norm. The rule's radius and step
    length reach the StepRecord unchanged."""
    model, retain, forget = small_problem()
    rule = make_rule(method, **DEFAULTS.method_settings(method))
    run = UnlearningRun(rule, model=model, retain=retain, forget=forget, retain_batch_size=16)
    for index in range(1, 7):
        retain_batch, forget_batch = run.batches(index)
        raw = G.paired_gradients(run.model_, retain_batch, forget_batch)
        grads = G.PairedGradients(raw.names, G.clip(raw.retain, rule.clip_norm), G.clip(raw.forget, rule.clip_norm),
                                  raw.retain_loss, raw.forget_loss)
        proposal = rule.propose(StepInputs(run.model_, run.original_, retain_batch, forget_batch, grads))
        record = run.step()
        assert math.isfinite(record.radius) and record.radius > 0
        assert record.radius == proposal.info["radius"]
        assert record.step_norm == pytest.approx(G.norm(proposal.delta), rel=1e-12)
        assert record.step_norm <= record.radius * (1 + 1e-6), (index, record.branch)


@pytest.fixture(scope="module")
def digits_class_3():
    """The Studio's first start: digits, its MLP trained with the TrainConfig defaults, class 3 to forget."""
    return prepare(ExperimentSpec(forget=ForgetChoice("class", cls="3")), with_retrain=False)


@pytest.mark.parametrize("method", ALL_METHODS)
def test_every_method_finishes_150_studio_steps_on_digits(method, digits_class_3):
    """No rule diverges at its Studio defaults (SCRUB's unclipped KL terms once did, at step 78).

    ``step`` raises FloatingPointError on a non-finite loss or gradient, so finishing the loop
    is the check; the losses and the radius bound are asserted on the way.
    """
    p = digits_class_3
    run = unlearning_run(p.data, p.original, p.forget_ids, method, DEFAULTS.method_settings(method),
                         seed=DEFAULTS.seed)
    for _ in range(150):
        record = run.step()
        assert math.isfinite(record.retain_loss_after) and math.isfinite(record.forget_loss_after)
        assert record.step_norm <= record.radius * (1 + 1e-6), (record.step, record.branch)
    assert len(run.history_) == 150
