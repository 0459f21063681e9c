"""compare_methods and the ranking of its runs: same batches for every run, isolated models, honest failures.

Real runs on a tiny MLP trained on scikit-learn's digits inside a module fixture; the
ranking by distance to the reference and the merging of identical final points are
checked by hypothesis against their definitions.
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

from hamu_core.rules.registry import make_rule
from hamu_core.runs.compare import (
    ACCURACIES,
    STATUSES,
    TRAJECTORY_COLUMNS,
    compare_methods,
    constraint_sweep,
    merge_identical,
    rank_by_reference,
)
from hamu_core.runs.unlearner import UnlearningRun

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
    """A record's values without its timing, NaN made comparable (NaN != NaN)."""
    return {k: "NaN" if isinstance(v, float) and math.isnan(v) else v for k, v in record.to_dict().items()
            if k != "wall_ms"}


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
    assert comparison.settings["HAMU-Q B=0.01"]["constraint"] == 0.01


def test_hamu_gains_at_least_about_the_constraint_every_step(comparison):
    df = comparison.trajectories
    finals = {}
    for b in (0.002, 0.01):
        gains = df[df.label == f"HAMU-Q B={b:g}"].forget_loss_gain.to_numpy()
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


def test_refused_and_stop_condition_runs_are_stopped_with_reason(problem):
    specs = [
        ("refuses", "hamu-q", {"lr": 0.05, "constraint": 50.0, "stop_on_infeasible": True}),
        ("infeasible", "hamu-q", {"lr": 0.05, "constraint": 50.0}),
    ]
    result = run_compare(problem, specs=specs, stop_when="infeasible")
    finals = result.finals.set_index("label")
    assert finals.loc["refuses", "status"] == "stopped" and "refused" in finals.loc["refuses", "reason"]
    assert finals.loc["refuses", "steps_done"] == 0
    assert finals.loc["infeasible", "status"] == "stopped" and "infeasible" in finals.loc["infeasible", "reason"]
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
    assert specs == [("HAMU-U B=0.001", "hamu-u", {"lr": 0.1, "mode": "full", "constraint": 1e-3}),
                     ("HAMU-U B=0.5", "hamu-u", {"lr": 0.1, "mode": "full", "constraint": 0.5})]
    with pytest.raises(ValueError, match="constraint"):
        constraint_sweep("hamu-q", [0.1], constraint=0.2)
    with pytest.raises(ValueError, match="constraints"):
        constraint_sweep("hamu-q", [])


# ----- ranking by distance to the reference, merging identical points -------------------------

REFERENCE = {"forget_acc": 0.0, "retain_acc": 0.98, "test_acc": 0.9}
accuracy = st.sampled_from([0.0, 0.1, 0.5, 0.9, 0.98, 1.0, np.nan])


def final_points(rows) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=list(ACCURACIES), dtype=float)
    df.insert(0, "label", [f"run {i}" for i in range(len(df))])
    return df


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(accuracy, accuracy, accuracy), max_size=12))
def test_ranking_sorts_by_the_largest_accuracy_gap_and_puts_unmeasured_runs_last(rows):
    finals = final_points(rows)
    ranked = rank_by_reference(finals, REFERENCE)
    assert sorted(ranked["label"]) == sorted(finals["label"]) and "distance" not in finals
    for _, row in ranked.iterrows():
        gaps = [abs(row[name] - REFERENCE[name]) for name in ACCURACIES]
        assert math.isnan(row["distance"]) if any(map(math.isnan, gaps)) else row["distance"] == pytest.approx(
            100 * max(gaps))
    measured = ranked["distance"].dropna()
    assert list(measured) == sorted(measured) and ranked["distance"].iloc[:len(measured)].notna().all()
    for _, ties in measured.groupby(measured).groups.items():  # ties keep the finals' order
        order = [finals.index.get_loc(i) for i in ties]
        assert order == sorted(order)


def test_a_collapsed_model_is_ranked_last_though_it_forgot_most():
    finals = final_points([(0.05, 0.97, 0.88), (0.0, 0.10, 0.10), (0.4, 0.99, 0.91)])
    ranked = rank_by_reference(finals, REFERENCE)
    assert ranked["label"].tolist() == ["run 0", "run 2", "run 1"]
    assert ranked["distance"].tolist() == pytest.approx([5.0, 40.0, 88.0])
    with pytest.raises(ValueError, match="test_acc"):
        rank_by_reference(finals.drop(columns="test_acc"), REFERENCE)


@given(st.lists(st.tuples(accuracy, accuracy, accuracy), max_size=12))
def test_merging_keeps_one_row_per_distinct_point_with_every_label(rows):
    finals = final_points(rows)
    merged = merge_identical(finals)
    placed = finals.dropna(subset=list(ACCURACIES))
    keys = [tuple(r) for r in placed[list(ACCURACIES)].to_numpy()]
    assert [tuple(r) for r in merged[list(ACCURACIES)].to_numpy()] == list(dict.fromkeys(keys))
    for row in merged.itertuples():
        same = placed[(placed[list(ACCURACIES)] == [row.forget_acc, row.retain_acc, row.test_acc]).all(axis=1)]
        assert row.labels == same["label"].tolist() and row.label == row.labels[0]
    assert sum(len(labels) for labels in merged["labels"]) == len(placed)


def test_a_sweep_whose_runs_ended_alike_is_one_point():
    finals = final_points([(0.0, 0.95, 0.9), (0.01, 0.98, 0.9), (0.0, 0.95, 0.9), (0.0, 0.95, 0.9)])
    merged = merge_identical(rank_by_reference(finals, REFERENCE))
    assert merged["labels"].tolist() == [["run 1"], ["run 0", "run 2", "run 3"]]
