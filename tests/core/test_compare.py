"""compare_methods and pareto_front: same batches for every run, isolated models, honest failures.

Real runs on a tiny MLP trained on scikit-learn's digits inside a module fixture; the
Pareto front is checked by hypothesis against the definition of dominance.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_digits
from torch import nn

from hamu_core.compare import STATUSES, TRAJECTORY_COLUMNS, compare_methods, constraint_sweep, pareto_front
from hamu_core.methods import make_rule
from hamu_core.unlearner import UnlearningRun

STEPS = 5
SPECS = [
    ("gdiff", "gdiff", {"lr": 0.05}),
    ("kl", "kl", {"lr": 0.05}),
    *constraint_sweep("hamu-q", [0.002, 0.01], lr=0.05),
]


@pytest.fixture(scope="module")
def problem():
    """A 64-32-10 MLP trained briefly on digits; class 3 is the forget set."""
    torch.manual_seed(0)
    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target, dtype=torch.long)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    forget = y == 3
    return {"model": model, "retain": (x[~forget], y[~forget]), "forget": (x[forget], y[forget]), "seed": 7}


def run_compare(problem, specs=SPECS, **options):
    kwargs = {"steps": STEPS, "retain_batch_size": 128, **options}
    return compare_methods(specs, model=problem["model"], retain=problem["retain"], forget=problem["forget"],
                           seed=problem["seed"], **kwargs)


@pytest.fixture(scope="module")
def comparison(problem):
    return run_compare(problem)


def strip_time(record):
    return {k: v for k, v in record.to_dict().items() if k != "wall_ms"}


def test_every_run_completes_with_one_row_per_step(comparison):
    df = comparison.trajectories
    assert list(df.columns) == list(TRAJECTORY_COLUMNS)
    assert sorted(df.label.unique()) == sorted(label for label, *_ in SPECS)
    assert (df.groupby("label").step.apply(list) == [list(range(1, STEPS + 1))] * len(SPECS)).all()
    assert set(comparison.finals.status) == {"completed"}
    assert (comparison.finals.steps_done == STEPS).all()


def test_every_run_sees_the_same_batches_at_each_step(comparison, problem):
    df = comparison.trajectories
    assert (df.groupby("step").batch_digest.nunique() == 1).all()
    assert df.groupby("label").batch_digest.nunique().eq(STEPS).all()  # retain batches are resampled
    # The original model's loss on the step-k batch, recovered from each run's row, is one number.
    original_retain = df.retain_loss_after - df.retain_loss_change
    original_forget = df.forget_loss_after - df.forget_loss_gain
    for values in (original_retain, original_forget):
        spread = values.groupby(df.step).agg(lambda v: v.max() - v.min())
        assert (spread < 1e-9).all()
    # And it is that batch's loss: at step 1 the model is still the original.
    for label, history in comparison.histories.items():
        row = df[(df.label == label) & (df.step == 1)].iloc[0]
        assert row.retain_loss_change == pytest.approx(history[0].retain_loss_after - history[0].retain_loss_before)
        assert row.forget_loss_gain == pytest.approx(history[0].forget_loss_after - history[0].forget_loss_before)
    # The batches are UnlearningRun's own draws for that seed: a fresh run sees the same ones.
    fresh = UnlearningRun(make_rule("ft", lr=0.05), model=problem["model"], retain=problem["retain"],
                          forget=problem["forget"], seed=problem["seed"], retain_batch_size=128)
    other = UnlearningRun(make_rule("gdiff", lr=0.05), model=problem["model"], retain=problem["retain"],
                          forget=problem["forget"], seed=problem["seed"], retain_batch_size=128)
    for k in range(1, STEPS + 1):
        for a, b in zip(fresh.batches(k), other.batches(k)):
            assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_different_seed_gives_different_batches(problem, comparison):
    other = compare_methods(SPECS[:1], model=problem["model"], retain=problem["retain"], forget=problem["forget"],
                            seed=problem["seed"] + 1, steps=2, retain_batch_size=128)
    mine = comparison.trajectories
    assert set(other.trajectories.batch_digest).isdisjoint(set(mine[mine.step <= 2].batch_digest))


def test_each_run_is_isolated_and_leaves_the_model_alone(problem, comparison):
    before = [p.detach().clone() for p in problem["model"].parameters()]
    for label, method, settings_ in SPECS[:2]:
        alone = UnlearningRun(make_rule(method, **settings_), model=problem["model"], retain=problem["retain"],
                              forget=problem["forget"], seed=problem["seed"], retain_batch_size=128)
        records = alone.run(STEPS)
        assert [strip_time(r) for r in records] == [strip_time(r) for r in comparison.histories[label]]
    assert all(torch.equal(a, b) for a, b in zip(before, problem["model"].parameters()))


def test_finals_are_each_runs_last_step(comparison):
    df = comparison.trajectories
    for _, final in comparison.finals.iterrows():
        last = df[df.label == final.label].iloc[-1]
        assert final.forget_loss_gain == last.forget_loss_gain
        assert final.retain_loss_change == last.retain_loss_change
        assert final.method == comparison.settings[final.label]["method"]
    assert comparison.settings["hamu-q B=0.01"]["constraint"] == 0.01


def test_hamu_gains_at_least_about_the_constraint_every_step(comparison):
    df = comparison.trajectories
    finals = {}
    for b in (0.002, 0.01):
        gains = df[df.label == f"hamu-q B={b:g}"].forget_loss_gain.to_numpy()
        # The forget batch is the whole forget set, so successive gains are per-step increases.
        assert (np.diff(gains, prepend=0.0) >= 0.5 * b).all()
        finals[b] = gains[-1]
    assert finals[0.01] > finals[0.002]


def test_nan_run_is_reported_not_raised(problem):
    specs = [("ga-huge", "ga", {"lr": 1e30}), ("gdiff", "gdiff", {"lr": 0.05})]
    result = run_compare(problem, specs=specs)
    finals = result.finals.set_index("label")
    assert finals.loc["ga-huge", "status"] == "failed"
    assert "non-finite" in finals.loc["ga-huge", "reason"]
    assert finals.loc["ga-huge", "steps_done"] == 0
    assert math.isnan(finals.loc["ga-huge", "forget_loss_gain"])
    assert finals.loc["gdiff", "status"] == "completed"
    assert list(result.frontier().label) == ["gdiff"]


def test_refused_and_stop_condition_runs_are_stopped_with_reason(problem):
    specs = [
        ("refuses", "hamu-q", {"lr": 0.05, "constraint": 50.0, "stop_on_infeasible": True}),
        ("infeasible", "hamu-q", {"lr": 0.05, "constraint": 50.0}),
    ]
    result = run_compare(problem, specs=specs, stop_when="infeasible")
    finals = result.finals.set_index("label")
    assert finals.loc["refuses", "status"] == "stopped" and "refused" in finals.loc["refuses", "reason"]
    assert finals.loc["refuses", "steps_done"] == 0
    assert finals.loc["infeasible", "status"] == "stopped" and "stop condition" in finals.loc["infeasible", "reason"]
    assert finals.loc["infeasible", "steps_done"] == 1
    assert set(result.finals.status) <= set(STATUSES)


def test_progress_rises_to_one(problem):
    seen = []
    run_compare(problem, specs=SPECS[:2], steps=3, progress=lambda f, m: seen.append((f, m)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and 0 < fractions[0]
    assert all(isinstance(m, str) and m for _, m in seen)


def test_evaluate_fn_adds_flattened_columns(problem):
    def evaluate(model):
        x, y = problem["forget"]
        with torch.no_grad():
            acc = float((model(x).argmax(1) == y).float().mean())
        return {"forget": {"accuracy": acc}, "n": len(y)}

    result = run_compare(problem, specs=SPECS[:1], steps=2, evaluate_fn=evaluate)
    assert 0.0 <= result.finals["forget.accuracy"].iloc[0] <= 1.0
    assert result.finals["n"].iloc[0] == len(problem["forget"][1])
    with pytest.raises(ValueError, match="clash"):
        run_compare(problem, specs=SPECS[:1], steps=1, evaluate_fn=lambda m: {"status": 1})


def test_bad_arguments_raise_before_any_run(problem):
    calls = []
    bad = [
        ({"specs": [SPECS[0], SPECS[0]]}, "unique"),
        ({"specs": [SPECS[0], ("x", "nope", {})]}, "method"),
        ({"specs": [SPECS[0], ("x", "gdiff", {"lr": -1.0})]}, "lr"),
        ({"specs": [("only a label",)]}, "specs"),
        ({"specs": []}, "specs"),
        ({"steps": 0}, "steps"),
    ]
    for options, match in bad:
        with pytest.raises(ValueError, match=match):
            run_compare(problem, **{"progress": lambda f, m: calls.append(f), **options})
    assert calls == []


def test_constraint_sweep_specs():
    specs = constraint_sweep("hamu-u", [1e-3, 0.5], lr=0.1, mode="full")
    assert specs == [("hamu-u B=0.001", "hamu-u", {"lr": 0.1, "mode": "full", "constraint": 1e-3}),
                     ("hamu-u B=0.5", "hamu-u", {"lr": 0.1, "mode": "full", "constraint": 0.5})]
    with pytest.raises(ValueError, match="constraint"):
        constraint_sweep("hamu-q", [0.1], constraint=0.2)
    with pytest.raises(ValueError, match="constraints"):
        constraint_sweep("hamu-q", [])


# ----- Pareto front -----------------------------------------------------------------------

def dominates(a, b) -> bool:
    """a dominates b: at least as much gain, at most as much cost, strictly better in one."""
    return a[0] >= b[0] and a[1] <= b[1] and (a[0] > b[0] or a[1] < b[1])


coordinate = st.one_of(st.floats(-5, 5, allow_nan=False), st.sampled_from([0.0, 1.0, -1.0]))
point = st.tuples(coordinate, coordinate)


@settings(max_examples=200, deadline=None)
@given(st.lists(point, min_size=0, max_size=25), st.lists(st.integers(0, 24), max_size=3))
def test_pareto_front_is_exactly_the_non_dominated_points(points, nan_rows):
    df = pd.DataFrame(points, columns=["forget_loss_gain", "retain_loss_change"], dtype=float)
    df["label"] = [f"p{i}" for i in range(len(df))]
    for i in nan_rows:
        if i < len(df):
            df.loc[i, "retain_loss_change"] = np.nan
    valid = df.dropna()
    front = pareto_front(df)
    assert set(front.index) <= set(valid.index)
    front_points = list(zip(front.forget_loss_gain, front.retain_loss_change))
    everything = list(zip(valid.forget_loss_gain, valid.retain_loss_change))
    for p in front_points:
        assert not any(dominates(q, p) for q in everything)
    for i in set(valid.index) - set(front.index):
        p = (valid.loc[i, "forget_loss_gain"], valid.loc[i, "retain_loss_change"])
        assert any(dominates(q, p) for q in front_points)
    assert list(front.retain_loss_change) == sorted(front.retain_loss_change)


def test_pareto_front_by_hand_and_custom_columns():
    df = pd.DataFrame({"gain": [1.0, 2.0, 2.0, 0.5, 3.0], "cost": [0.0, 0.5, 0.4, 0.0, 2.0]})
    front = pareto_front(df, maximise="gain", minimise="cost")
    assert list(front.index) == [0, 2, 4]  # 1 is beaten by 2, 3 by 0
    with pytest.raises(ValueError, match="cost2"):
        pareto_front(df, maximise="gain", minimise="cost2")
