"""The retrain reference as a target: noise bands, "nothing to do", "reached", the closest step and the one step loop.

The bands are checked against their formulas on crafted numbers, and the whole path on
the built-in digits with the real original and retrain reference: a random 5 % request
needs nothing, a whole class does, and a run stopped by "reached_reference" ends near it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hamu_core.config import DEFAULTS
from hamu_core.evaluation.target import (
    MIN_FORGET,
    Z95,
    Band,
    ReferenceTarget,
    accuracy_band,
    loss_band,
    measure,
    measured_splits,
    reference_distance,
)
from hamu_core.runs.experiment import ExperimentSpec, ForgetChoice, prepare, unlearning_run
from hamu_core.runs.unlearner import DEFAULT_STOP, stop_rules


def test_reference_distance_is_the_largest_accuracy_gap_in_points():
    point = {"forget_acc": 0.40, "retain_acc": 0.55, "test_acc": 0.50}
    reference = {"forget_acc": 1.0, "retain_acc": 0.996, "test_acc": 0.961}
    assert reference_distance(point, reference) == pytest.approx(100 * (1.0 - 0.40))
    assert reference_distance(reference, reference) == 0.0


def test_accuracy_band_is_the_two_proportion_band_and_never_narrower_than_one_sample():
    correct = np.r_[np.ones(70), np.zeros(2)]  # 70 of 72
    band = accuracy_band(correct, 1.0)
    pooled = (70 / 72 + 1.0) / 2
    assert band.reference == pytest.approx(70 / 72)
    assert band.half_width == pytest.approx(Z95 * math.sqrt(2 * pooled * (1 - pooled) / 72))
    assert band.contains(1.0)  # 72/72 against 70/72 cannot be told apart on 72 samples
    assert accuracy_band(np.zeros(145), 0.0).half_width == pytest.approx(1 / 145)  # both at 0: one sample
    assert not accuracy_band(np.zeros(145), 1.0).contains(1.0)  # a whole class still recognised


def test_loss_band_is_the_standard_error_of_a_difference_of_means():
    rng = np.random.default_rng(0)
    ref, cur = rng.exponential(1.0, 200), rng.exponential(1.5, 200)
    band = loss_band(ref, cur)
    expected = Z95 * math.sqrt((np.var(ref, ddof=1) + np.var(cur, ddof=1)) / 200)
    assert band.reference == pytest.approx(ref.mean()) and band.half_width == pytest.approx(expected)


@pytest.mark.parametrize("start, value, reached", [(0.0, 0.5, False), (0.0, 0.95, True), (0.0, 1.4, True),
                                                   (2.0, 1.4, False), (2.0, 1.05, True), (2.0, 0.3, True)])
def test_band_reached_counts_overshoot_coming_from_the_start(start, value, reached):
    assert Band(1.0, 0.1).reached(value, start) is reached


@pytest.fixture(scope="module")
def digits_targets():
    """The original, the retrain reference and the target for a class and a random 5 % request."""
    out = {}
    for name, forget in (("class", ForgetChoice("class", cls="3")), ("random", ForgetChoice("random", fraction=0.05))):
        prepared = prepare(ExperimentSpec(forget=forget))
        out[name] = prepared
    return out


def test_random_five_percent_needs_nothing_and_a_class_does(digits_targets):
    for name, expect_nothing in (("random", True), ("class", False)):
        prepared = digits_targets[name]
        probe = measured_splits(prepared.data, prepared.forget_ids, 0)
        target = ReferenceTarget(prepared.retrain, prepared.original, probe)
        settled = target.nothing_to_do()
        assert (settled is not None) is expect_nothing, name
        if settled is not None:
            assert settled.matches and settled.distance < 3
            assert "forget samples" in settled.evidence() and "±" in settled.evidence()


def test_a_tiny_forget_set_never_gets_nothing_to_do(digits_targets):
    """Five samples of a class: nothing can be told at that size, so the Studio does not reassure."""
    prepared = digits_targets["random"]
    ids = prepared.forget_ids[: MIN_FORGET - 1]
    probe = measured_splits(prepared.data, ids, 0)
    target = ReferenceTarget(prepared.original, prepared.original, probe)  # identical models: a perfect match
    assert target.standing(target.start_).matches and target.nothing_to_do() is None


def test_nothing_to_do_ends_the_loop_before_any_step(digits_targets):
    prepared = digits_targets["random"]
    run = unlearning_run(prepared.data, prepared.original, prepared.forget_ids, "hamu-q",
                         DEFAULTS.method_settings("hamu-q"), seed=0, reference=prepared.retrain)
    assert list(run.steps(50)) == [] and run.stop_.kind == "nothing_to_do" and run.stop_.step == 0
    assert run.closest_step_ == 0
    assert len(list(run.steps(2, None))) == 2 and run.stop_.kind == "step_limit"  # without the rule it steps


def test_reached_reference_stops_near_the_reference_and_the_closest_step_is_its_minimum(digits_targets):
    prepared = digits_targets["class"]
    run = unlearning_run(prepared.data, prepared.original, prepared.forget_ids, "hamu-q",
                         DEFAULTS.method_settings("hamu-q"), seed=0, reference=prepared.retrain)
    records = list(run.steps(DEFAULTS.max_steps))
    assert run.stop_.kind == "reached_reference", run.stop_
    assert run.stop_.step == len(records) == len(run.history_) == len(run.points_) - 1
    assert run.standing().reached
    at = [k for k, p in enumerate(run.points_) if p["at_reference"] == 1.0]
    distances = {k: reference_distance(run.points_[k], run.target.point) for k in at}
    assert at and run.closest_step_ == min(at, key=lambda k: (distances[k], k)) and distances[run.closest_step_] < 3
    # accuracy alone would have picked an earlier step whose forget loss was still far from the reference's
    all_distances = [reference_distance(p, run.target.point) for p in run.points_]
    assert int(np.argmin(all_distances)) not in at
    assert run.points_[-1] == {**measure(run.model_, run.probe), "at_reference": 1.0}
    assert run.points_[run.closest_step_]["at_reference"] == 1.0  # the closest step is one at the reference


def test_model_at_and_rollback_give_the_weights_of_earlier_steps(digits_targets):
    prepared = digits_targets["class"]
    settings = DEFAULTS.method_settings("hamu-q")
    run = unlearning_run(prepared.data, prepared.original, prepared.forget_ids, "hamu-q", settings, seed=0)
    run.undo_depth = None
    snapshots = [[p.detach().clone() for p in run.model_.parameters()]]
    for _ in run.steps(6, None):
        snapshots.append([p.detach().clone() for p in run.model_.parameters()])
    short = unlearning_run(prepared.data, prepared.original, prepared.forget_ids, "hamu-q", settings, seed=0)
    short._undo = type(short._undo)(maxlen=2)  # older steps must then be replayed, bit for bit
    list(short.steps(6, None))
    for k in (0, 2, 5, 6):
        for which in (run, short):
            assert all(torch.equal(a, b) for a, b in zip(which.model_at(k).parameters(), snapshots[k])), k
    short.rollback(3)
    assert len(short.history_) == 3 and len(short.points_) == 4
    assert all(torch.equal(a, b) for a, b in zip(short.model_.parameters(), snapshots[3]))
    assert short.points_[-1] == run.points_[3]


def test_stop_rules_are_named_and_reached_reference_needs_a_target(digits_targets):
    assert stop_rules(None) == () and stop_rules("unavoidable") == ("unavoidable",)
    assert stop_rules(DEFAULT_STOP) == DEFAULT_STOP
    with pytest.raises(ValueError, match="stop_when"):
        stop_rules(("tired",))
    prepared = digits_targets["class"]
    run = unlearning_run(prepared.data, prepared.original, prepared.forget_ids, "gdiff", {}, seed=0)
    with pytest.raises(ValueError, match="target"):
        list(run.steps(1, ("reached_reference",)))
