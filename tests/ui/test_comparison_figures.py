"""The Compare and Inspect builders and helpers, tested as plain functions (no Streamlit run).

Where a helper summarises model outputs, the outputs are the core's own on digits (a small
untrained MLP, or a two-step comparison), and the expected values are recomputed by a
plain loop over samples.
"""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hamu_core.config import DEFAULTS
from hamu_core.data.selection import select_class
from hamu_core.evaluation.embedding import annotate, linked_embeddings
from hamu_core.evaluation.metrics import class_accuracy, sample_outputs, split_ids
from hamu_core.evaluation.target import measure, measured_splits
from hamu_core.models.architectures import ModelConfig, build_model
from hamu_core.runs.compare import compare_methods, merge_identical, rank_by_reference
from hamu_ui.compare_view import comparison_specs, fair_settings, final_table, paths, stop_words
from hamu_ui.comparison_figures import (
    FOCUS_PAD,
    attack_histogram,
    class_accuracy_figure,
    collateral_figure,
    focus_range,
    off_chart,
    reference_figure,
    twin_embedding_figure,
)
from hamu_ui.inspect_view import attack_rates, attack_table, collateral_frame


@pytest.fixture(scope="module")
def forget(digits):
    return select_class(digits, 3)


@pytest.fixture(scope="module")
def models(digits):
    return [build_model(ModelConfig(hidden=(16,)), digits.input_shape, digits.n_classes, seed=s) for s in (0, 1)]


@pytest.fixture(scope="module")
def outputs(digits, forget, models):
    return {name: {s: sample_outputs(m, digits, ids) for s, ids in split_ids(digits, forget).items()}
            for name, m in zip(("original", "current"), models)}


@pytest.fixture(scope="module")
def comparison(digits, forget, models):
    retain = np.setdiff1d(digits.train_ids, forget)
    probe = measured_splits(digits, forget, 0)
    specs = comparison_specs(DEFAULTS.method_settings, ["hamu-q", "ga"], "hamu-q", [0.01, 0.1])
    return compare_methods(specs, model=models[0], retain=digits.tensors(retain), forget=digits.tensors(forget),
                           seed=0, steps=2, evaluate_fn=lambda m: measure(m, probe))


def test_specs_label_each_method_and_sweep_only_the_constraint():
    specs = comparison_specs(DEFAULTS.method_settings, ["hamu-q", "gdiff"], "hamu-u", [0.01, 0.2])
    assert [label for label, _, _ in specs] == ["HAMU-Q", "GDIFF", "HAMU-U B=0.01", "HAMU-U B=0.2"]
    assert specs[1][2] == DEFAULTS.method_settings("gdiff")
    for (_, method, settings), constraint in zip(specs[2:], (0.01, 0.2)):
        assert method == "hamu-u"
        assert settings == {**fair_settings("hamu-u", DEFAULTS.method_settings("hamu-u")), "constraint": constraint}
    no_sweep = comparison_specs(DEFAULTS.method_settings, ["ft"], "hamu-q", [])
    assert no_sweep == [("FT", "ft", DEFAULTS.method_settings("ft"))]


def test_the_rules_own_stop_options_are_off_in_every_spec():
    def chosen_on_unlearn(method):
        stops = {"stop_on_unavoidable": True, "stop_on_infeasible": True} if method.startswith("hamu") else {}
        return {**DEFAULTS.method_settings(method), **stops}

    specs = comparison_specs(chosen_on_unlearn, ["hamu-q", "ga"], "hamu-q", [0.01])
    off = {"stop_on_unavoidable": False, "stop_on_infeasible": False}
    assert specs[0][2] == {**chosen_on_unlearn("hamu-q"), **off}  # every other setting is kept
    assert specs[1][2] == DEFAULTS.method_settings("ga")  # a baseline has no such field to set
    assert specs[2][2] == {**chosen_on_unlearn("hamu-q"), **off, "constraint": 0.01}
    assert stop_words(()) == "no stop rule (every run takes every step)"
    assert stop_words(("reached_reference", "unavoidable")) == ("stop when it reaches the retrain reference or "
                                                               "degradation becomes unavoidable (HAMU only)")


def test_paths_start_at_the_origin_and_follow_the_trajectory(comparison):
    found = paths(comparison.trajectories)
    assert list(found) == comparison.finals["label"].tolist()
    for label, path in found.items():
        rows = comparison.trajectories[comparison.trajectories["label"] == label]
        assert path["step"].tolist() == [0, *rows["step"]]
        assert path.iloc[0][["retain_loss_change", "forget_loss_gain"]].tolist() == [0.0, 0.0]
        assert path["forget_loss_gain"].iloc[1:].tolist() == rows["forget_loss_gain"].tolist()


def test_final_table_is_ranked_by_distance_with_gaps_in_points(comparison):
    reference = {"forget_acc": 0.0, "retain_acc": 0.5, "test_acc": 0.25}
    table = final_table(comparison.finals, reference)
    ranked = rank_by_reference(comparison.finals, reference)
    assert sorted(name for row in table.index for name in row.split(" = ")) == sorted(ranked["label"])
    assert list(table["distance (pts)"]) == sorted(table["distance (pts)"])
    for row in comparison.finals.itertuples():
        (shared,) = [name for name in table.index if row.label in name.split(" = ")]  # listed once
        gaps = []
        for split in ("forget", "retain", "test"):
            accuracy = getattr(row, f"{split}_acc")
            assert table.loc[shared, f"{split} acc (%)"] == pytest.approx(100 * accuracy)
            gaps.append(100 * (accuracy - reference[f"{split}_acc"]))
            assert table.loc[shared, f"{split} gap (pts)"] == pytest.approx(gaps[-1])
        assert table.loc[shared, "distance (pts)"] == pytest.approx(max(map(abs, gaps)))
    unranked = final_table(comparison.finals, None)
    assert sorted(name for row in unranked.index for name in row.split(" = ")) == sorted(comparison.finals["label"])
    assert unranked["test gap (pts)"].isna().all() and unranked["distance (pts)"].isna().all()


@given(st.lists(st.floats(0, 100), min_size=1, max_size=20), st.floats(0, 100), st.floats(0, 100))
def test_focus_range_holds_the_anchors_and_every_value_it_leaves_out_is_far(values, ref, start):
    low, high = focus_range([ref, start], values)
    assert low <= min(ref, start) - FOCUS_PAD + 1e-9 or low == -FOCUS_PAD
    assert high >= max(ref, start) + FOCUS_PAD - 1e-9 or high == 100 + FOCUS_PAD
    assert high - low >= 10 + 2 * FOCUS_PAD - 1e-9  # never narrower than the minimum span
    inside = [v for v in values if low <= v <= high]
    for v in values:
        if v not in inside:  # left out only across a gap wider than the reach (10 points)
            assert min(abs(v - w) for w in [ref, start, *inside]) > 10


def test_focus_range_keeps_a_chain_of_runs_and_drops_a_collapsed_one():
    low, high = focus_range([99.0, 100.0], [97.5, 93.0, 85.0, 10.0])
    assert (low, high) == (85.0 - FOCUS_PAD, 100.0 + FOCUS_PAD)
    assert off_chart([10.0, 85.0, 101.0, 103.0], (low, high)).tolist() == [-1, 0, 0, 1]
    assert focus_range([99.0, 99.5], []) == (90.0 - FOCUS_PAD, 100.0 + FOCUS_PAD)  # widened to 10 below 100


def test_reference_figure_places_ranked_points_merged_and_an_outlier_on_the_edge():
    reference, original = {"forget_acc": 0.0, "retain_acc": 0.99}, {"forget_acc": 0.98, "retain_acc": 1.0}
    finals = pd.DataFrame({"label": ["GA", "HAMU-Q", "B=0.1", "B=0.2"], "forget_acc": [0.0, 0.02, 0.3, 0.3],
                           "retain_acc": [0.10, 0.97, 0.985, 0.985], "test_acc": [0.1, 0.9, 0.9, 0.9]})
    points = merge_identical(rank_by_reference(finals, {**reference, "test_acc": 0.9}))
    fig = reference_figure(points, reference, original)
    names = [trace.name for trace in fig.data]
    assert names == ["1. HAMU-Q (2.0 pts)", "2. B=0.1, B=0.2 (30.0 pts)", "3. GA (89.0 pts)", "original model",
                     "retrain reference (the target)"]
    low, high = fig.layout.yaxis.range
    assert low > 80 and high >= 100  # the collapsed run does not stretch the retain axis
    ga = fig.data[2]
    assert ga.marker.symbol == "triangle-down" and low < ga.y[0] < 97  # drawn on the bottom edge
    assert "off the axes" in fig.layout.annotations[0].text and "retain 10%" in fig.layout.annotations[0].text
    assert fig.data[0].marker.symbol == "circle" and fig.data[0].y[0] == pytest.approx(97.0)
    star = fig.data[-1]
    assert (star.x[0], star.y[0]) == (0.0, 99.0) and star.marker.symbol == "star"
    assert "closer to the star" in fig.layout.title.text


def test_twin_embedding_puts_the_current_map_right_of_the_original_and_links_forget_samples(digits, forget, models):
    ids = np.r_[forget[:20], digits.train_ids[200:260], digits.test_ids[:20]]
    frame = annotate(linked_embeddings(*models, digits, ids), forget)
    fig = twin_embedding_figure(frame, max_links=15)
    links = fig.data[0]
    assert links.name == "same forget sample"
    assert len(links.x) == 3 * 15 and links.x[2::3] == (None,) * 15
    left = [x for t in fig.data[1:] if "original" in t.hovertemplate for x in t.x]
    right = [x for t in fig.data[1:] if "current" in t.hovertemplate for x in t.x]
    assert len(left) == len(right) == len(frame)
    assert min(right) > max(left)
    forget_rows = frame[frame["membership"] == "forget"].set_index("id")
    first = int(frame[frame["membership"] == "forget"]["id"].iloc[0])
    assert links.x[0] == pytest.approx(forget_rows.loc[first, "x_a"])
    assert links.y[1] == pytest.approx(forget_rows.loc[first, "y_b"])


def test_class_accuracy_figure_has_one_bar_group_per_model_and_split(digits, outputs):
    table = class_accuracy(digits, outputs)
    fig = class_accuracy_figure(table, ["original", "current"])
    assert [(t.name, t.xaxis) for t in fig.data] == [("original", "x"), ("current", "x"),
                                                    ("original", "x2"), ("current", "x2")]
    test_rows = table[table["split"] == "test"]
    assert list(fig.data[3].y) == pytest.approx(list(100 * test_rows["current"]))


@given(st.lists(st.floats(0, 50), min_size=1, max_size=30), st.lists(st.floats(0, 50), min_size=1, max_size=30),
       st.floats(0, 50), st.floats(0, 50))
def test_attack_rates_count_samples_at_or_below_the_threshold_and_grow_with_it(forget, test, t1, t2):
    low, high = sorted((t1, t2))
    tpr, fpr = attack_rates(np.array(forget), np.array(test), low)
    assert tpr == sum(v <= low for v in forget) / len(forget)
    assert fpr == sum(v <= low for v in test) / len(test)
    tpr_high, fpr_high = attack_rates(np.array(forget), np.array(test), high)
    assert tpr_high >= tpr and fpr_high >= fpr


def test_attack_table_reads_each_models_own_outputs(outputs):
    threshold = float(np.median(outputs["current"]["test"].entropy))
    table = attack_table(outputs, "entropy", threshold)
    assert list(table.index) == ["original", "current"]
    for name, split in outputs.items():
        assert table.loc[name, "FPR"] == pytest.approx(np.mean(split["test"].entropy <= threshold))
        assert table.loc[name, "TPR"] == pytest.approx(np.mean(split["forget"].entropy <= threshold))
        assert 0 <= table.loc[name, "AUC"] <= 1
    assert table.loc["current", "FPR"] == pytest.approx(0.5, abs=0.01)


def test_attack_histogram_puts_the_threshold_on_the_log_axis():
    fig = attack_histogram({"forget · current": np.array([1e-3, 1e-2]), "test · current": np.array([1.0, 10.0])}, 0.1)
    assert list(fig.data[0].x) == pytest.approx([-3, -2])
    assert fig.layout.shapes[0].x0 == pytest.approx(-1)
    linear = attack_histogram({"forget": np.array([0.5])}, 0.3, "entropy", log_scale=False)
    assert linear.layout.shapes[0].x0 == pytest.approx(0.3) and linear.layout.xaxis.title.text == "entropy"


def test_collateral_frame_matches_losses_by_id_and_refuses_non_retain_ids(digits, forget, outputs):
    retain = outputs["original"]["retain"]
    ids = np.sort(retain.ids[[5, 0, 40]])
    frame = collateral_frame(ids, outputs)
    for row in frame.itertuples():
        for name in ("original", "current"):
            i = int(np.flatnonzero(outputs[name]["retain"].ids == row.id)[0])
            assert getattr(row, f"loss_{name}") == pytest.approx(outputs[name]["retain"].loss[i])
        assert row.label == digits.y[digits.rows([row.id])[0]]
    with pytest.raises(ValueError, match="retain"):
        collateral_frame(np.array([forget[0]]), outputs)
    fig = collateral_figure(frame.assign(class_name=frame["label"].astype(str)))
    assert list(fig.data[1].x) == pytest.approx(list(frame["loss_original"]))
    assert fig.layout.xaxis.type == "log"


def test_collateral_figure_draws_an_empty_frame():
    empty = pd.DataFrame(columns=["id", "class_name", "loss_original", "loss_current"])
    assert len(collateral_figure(empty).data) == 2
