"""The plotly builders and the selection helper, tested as plain functions (no Streamlit run).

The hardness diagram's curve is checked against the HAMU solver itself: for random
gradient pairs, the retain change of the solver's own step must equal ``least_cost``.
"""

import json
import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hamu_core.rules.solver import hamu_update
from hamu_ui.figures import (
    COLOUR_BY,
    SVG_LIMIT,
    _figure,
    class_mix_figure,
    constraint_ratio,
    embedding_figure,
    hardness_diagram,
    hardness_histogram,
    kappa_figure,
    least_cost,
    metric_curves,
    selected_ids,
    thinned_path,
    tradeoff_figure,
)


def embedding_frame(n: int = 12) -> pd.DataFrame:
    ids = np.arange(100, 100 + n)
    membership = np.array(["retain", "forget", "test"] * (n // 3) + ["retain"] * (n % 3))
    return pd.DataFrame({"id": ids, "x": np.linspace(0, 1, n), "y": np.linspace(1, 0, n), "label": ids % 3,
                         "class_name": [f"c{i % 3}" for i in ids], "split": np.where(membership == "test", "test", "train"),
                         "membership": membership,
                         "cos": np.where(membership == "test", np.nan, np.linspace(-1, 1, n))})


def drawn_ids(fig: go.Figure) -> list[int]:
    return sorted(int(row[0]) for trace in fig.data for row in trace.customdata)


def test_selected_ids_reads_every_customdata_shape():
    event = {"selection": {"points": [{"customdata": [7]}, {"customdata": {"0": 3}}, {"customdata": 5},
                                      {"customdata": {"0": 3}}, {"x": 1.0}], "box": [], "lasso": []}}
    assert selected_ids(event).tolist() == [3, 5, 7]


@pytest.mark.parametrize("event", [None, {}, {"selection": {"points": []}}, {"selection": {}}])
def test_selected_ids_of_nothing_is_empty(event):
    ids = selected_ids(event)
    assert ids.dtype == np.int64 and ids.size == 0


@pytest.mark.parametrize("colour_by", COLOUR_BY)
def test_embedding_draws_every_sample_once_with_its_id(colour_by):
    frame = embedding_frame()
    fig = embedding_figure(frame, colour_by)
    assert drawn_ids(fig) == frame["id"].tolist()
    assert fig.layout.dragmode == "lasso"


def test_embedding_outlines_forget_samples_and_fades_test_samples():
    frame = embedding_frame()
    fig = embedding_figure(frame, "forget / retain")
    traces = {trace.name: trace for trace in fig.data}
    assert set(traces) == {"forget", "retain", "test"}
    assert all(w > 0 for w in traces["forget"].marker.line.width)
    assert all(w == 0 for w in traces["retain"].marker.line.width)
    assert max(traces["test"].marker.opacity) < min(traces["retain"].marker.opacity)


def test_embedding_colours_scored_samples_by_cos():
    frame = embedding_frame()
    fig = embedding_figure(frame, "hardness")
    scored = next(t for t in fig.data if t.marker.colorscale is not None)
    expected = frame.dropna(subset=["cos"])
    assert [int(r[0]) for r in scored.customdata] == expected["id"].tolist()
    assert np.allclose(scored.marker.color, expected["cos"])


def test_embedding_uses_webgl_only_for_many_points_and_custom_hover():
    assert isinstance(embedding_figure(embedding_frame()).data[0], go.Scatter)
    big = embedding_frame(SVG_LIMIT + 3)
    assert isinstance(embedding_figure(big).data[0], go.Scattergl)
    frame = embedding_frame()
    fig = embedding_figure(frame, "forget / retain", hover=pd.Series([f"text {i}" for i in frame["id"]]))
    assert all(str(t).startswith("text ") for trace in fig.data for t in trace.text)


def test_embedding_refuses_an_unknown_colouring():
    with pytest.raises(ValueError, match="colour_by"):
        embedding_figure(embedding_frame(), "size")


def random_pair(rng: np.random.Generator, dim: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    g_r = torch.tensor(rng.normal(size=dim), dtype=torch.float64)
    g_f = torch.tensor(rng.normal(size=dim), dtype=torch.float64)
    if rng.random() < 0.3:  # push towards hard (aligned) or easy (opposed) pairs
        g_f = g_f + rng.choice([-3.0, 3.0]) * g_r
    return g_r, g_f


def test_least_cost_is_the_retain_change_of_the_solvers_own_step():
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(300):
        g_r, g_f = random_pair(rng)
        radius = float(rng.uniform(0.1, 2.0))
        beta = float(rng.uniform(0.0, 0.99))
        constraint = beta * radius * float(g_f.norm())
        solution = hamu_update(g_r, g_f, constraint=constraint, radius=radius)
        seen.add(solution.branch)
        achieved = float(g_r @ solution.delta) / (radius * float(g_r.norm()))
        assert achieved == pytest.approx(float(least_cost(solution.cos_rf, beta)), abs=1e-7)
        assert (float(least_cost(solution.cos_rf, beta)) > 1e-9) == solution.degradation_unavoidable or \
            abs(solution.kappa - solution.kappa2) < 1e-9
    assert {"direct", "rectified"} <= seen


def test_constraint_ratio_recovers_beta_from_a_step_record():
    rng = np.random.default_rng(1)
    for _ in range(100):
        g_r, g_f = random_pair(rng)
        radius, beta = float(rng.uniform(0.1, 2.0)), float(rng.uniform(0.0, 0.99))
        s = hamu_update(g_r, g_f, constraint=beta * radius * float(g_f.norm()), radius=radius)
        assert constraint_ratio(s.kappa, s.cos_rf, s.kappa2) == pytest.approx(beta, abs=1e-6)
    assert constraint_ratio(0.5, 0.5, math.nan) == math.inf
    assert math.isnan(constraint_ratio(0.0, 0.0, 1.0))


def run_frame(kappa2_last: float = 0.9) -> pd.DataFrame:
    return pd.DataFrame({
        "step": [0, 1, 2, 3], "branch": [None, "infeasible", "rectified", "rectified"],
        "kappa": [np.nan, 0.1, 0.4, 0.5], "cos_rf": [np.nan, 0.2, 0.5, 0.6],
        "kappa2": [np.nan, np.nan, 0.7, kappa2_last],
        "forget_acc": [1.0, 0.8, 0.5, 0.2], "retain_acc": [1.0, 0.99, 0.98, 0.97], "test_acc": [0.9, 0.88, 0.86, 0.85],
        "forget_loss": [0.1, 0.5, 1.0, 2.0], "retain_loss": [0.05, 0.06, 0.07, 0.08], "test_loss": [0.3, 0.4, 0.5, 0.6],
        "forget_loss_gain": [0.0, 0.4, 0.9, 1.9], "retain_loss_change": [0.0, 0.01, 0.02, 0.03],
    })


def test_hardness_diagram_marks_regions_and_the_latest_step():
    frame = run_frame()
    fig = hardness_diagram(frame)
    labels = {a.text for a in fig.layout.annotations}
    assert {"direct", "rectified", "collateral forgetting"} <= labels
    latest = next(t for t in fig.data if t.name == "step 3")
    assert latest.x[0] == pytest.approx(0.6)
    beta = constraint_ratio(0.5, 0.6, 0.9)
    assert latest.y[0] == pytest.approx(float(least_cost(0.6, beta)))


def test_hardness_diagram_says_when_the_latest_step_was_infeasible():
    fig = hardness_diagram(run_frame(kappa2_last=np.nan))
    assert any("infeasible" in a.text for a in fig.layout.annotations)
    assert not fig.data
    assert not hardness_diagram(run_frame().iloc[:1]).data


def test_kappa_chart_has_a_marker_trace_per_branch_and_the_threshold():
    names = [t.name for t in kappa_figure(run_frame()).data]
    assert names == ["κ = g_r·g_f", "κ2 (threshold)", "infeasible", "rectified"]
    baseline = run_frame().assign(branch=["", "", "", ""], kappa2=np.nan)
    assert [t.name for t in kappa_figure(baseline).data] == ["κ = g_r·g_f", "κ"]


def test_tradeoff_path_has_one_point_per_step_and_the_reference():
    frame = run_frame()
    steps = frame[frame["step"] > 0]
    fig = tradeoff_figure({"HAMU-Q": steps, "GA": steps.iloc[:2]}, reference=(0.01, 1.5))
    assert [len(t.x) for t in fig.data] == [3, 2, 1]
    assert fig.data[-1].name == "retrain reference"
    assert list(fig.data[0].y) == steps["forget_loss_gain"].tolist()


def test_metric_curves_draw_three_splits_twice_and_the_reference_lines():
    frame = run_frame()
    plain = metric_curves(frame)
    assert len(plain.data) == 6 and not plain.layout.shapes
    reference = {f"{s}_{m}": 0.5 for s in ("forget", "retain", "test") for m in ("acc", "loss")}
    assert len(metric_curves(frame, reference).layout.shapes) == 6
    assert max(plain.data[0].y) == pytest.approx(100.0)


def test_class_mix_and_histogram():
    mix = class_mix_figure({"3": 12, "7": 4})
    assert list(mix.data[0].x) == [12, 4]
    hist = hardness_histogram(np.array([-0.5, 0.2, 0.9]))
    assert list(hist.data[0].x) == [-0.5, 0.2, 0.9]


def test_fast_figure_equals_plotly_s_own_build_and_still_validates_later_edits():
    traces = [go.Scatter(x=[1, 2], y=[3, 4], name="a"), go.Bar(x=["u"], y=[1])]
    layout = dict(template="plotly_white", height=300, title="t", xaxis=dict(title="step"),
                  shapes=[dict(type="line", x0=0, x1=1, y0=0, y1=0)])
    fast = _figure(traces, layout)
    assert json.loads(fast.to_json()) == json.loads(go.Figure(traces, layout=layout).to_json())  # same content
    with pytest.raises(ValueError):
        fast.update_layout(height="tall")
    fast.layout.template.layout.font.size = 99  # the cached template is not shared with the figure
    assert _figure(traces, layout).layout.template.layout.font.size != 99


def path_frame(n: int) -> pd.DataFrame:
    return pd.DataFrame({"step": np.arange(n), "forget_acc": np.linspace(1, 0, n)})


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 2000), limit=st.integers(2, 400), keep=st.lists(st.integers(0, 2100), max_size=5))
def test_a_thinned_path_keeps_its_ends_its_marked_steps_and_its_order_within_the_limit(n, limit, keep):
    frame = path_frame(n)
    thin = thinned_path(frame, limit, keep)
    steps = thin["step"].tolist()
    marked = sorted({k for k in keep if k < n})
    assert steps == sorted(set(steps))  # a subset of rows, in order, none twice
    assert set(steps) <= set(range(n)) and steps[0] == 0 and steps[-1] == n - 1
    assert set(marked) <= set(steps)
    assert len(thin) <= max(n if n <= limit else limit + len(marked), 1)
    if n <= limit:
        assert thin.equals(frame)  # short paths are drawn whole


def test_a_thinned_path_is_spread_evenly():
    thin = thinned_path(path_frame(3001), 301)
    gaps = np.diff(thin["step"].to_numpy())
    assert len(thin) == 301 and gaps.min() == gaps.max() == 10


def test_a_thinned_path_needs_room_for_both_ends():
    with pytest.raises(ValueError, match="limit must be at least 2"):
        thinned_path(path_frame(10), 1)
