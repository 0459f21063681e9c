"""The session's live run and the stepper's explanations, exercised without a Streamlit run.

A small untrained MLP on digits is enough: what is checked is bookkeeping (measurements
stay aligned with the run's history through step, undo and reset) and that the numbers
are the core's own.
"""

import numpy as np
import pytest

from hamu_core.config import DEFAULTS
from hamu_core.data.selection import select_class
from hamu_core.evaluation.metrics import sample_outputs
from hamu_core.evaluation.target import MEASURE_LIMIT, measured_splits
from hamu_core.runs.live import LiveRun
from hamu_ui.session import StudioSession
from hamu_ui.stepper import explain


def test_live_run_keeps_measurements_in_step_with_history(digits, model):
    forget = select_class(digits, 3)
    live = LiveRun(("key",), digits, model, forget, "hamu-q", {"lr": 0.05, "constraint": 0.025}, seed=0)
    assert live.step(3).kind == "step_limit"
    assert len(live.history) == 3 and len(live.points) == 4
    frame = live.frame()
    assert frame["step"].tolist() == [0, 1, 2, 3]
    assert frame["forget_loss_gain"].iloc[0] == 0.0
    assert frame["forget_loss_gain"].iloc[-1] == pytest.approx(frame["forget_loss"].iloc[-1] - frame["forget_loss"].iloc[0])
    assert frame["forget_acc"].iloc[-1] == pytest.approx(sample_outputs(live.run.model_, digits, forget).accuracy)
    live.undo()
    assert len(live.points) == 3 and live.frame()["step"].tolist() == [0, 1, 2]
    live.reset()
    assert len(live.points) == 1 and not live.history


def test_live_run_never_changes_the_model_it_was_given(digits, model):
    before = [p.detach().clone() for p in model.parameters()]
    LiveRun(("key",), digits, model, select_class(digits, 1), "ga", {"lr": 0.5}, seed=0).step(2)
    assert all(np.array_equal(a, b.detach()) for a, b in zip(before, model.parameters()))


def test_refused_step_reports_why_and_keeps_the_run(digits, model):
    live = LiveRun(("key",), digits, model, select_class(digits, 2), "hamu-q",
                   {"lr": 1e-6, "constraint": 1.0, "stop_on_infeasible": True}, seed=0)
    stop = live.step(5)
    assert stop.kind == "refused" and "infeasible" in stop.message
    assert not live.history and len(live.points) == 1


def test_measured_splits_are_capped_and_seeded(digits):
    forget = select_class(digits, 0)
    probe = measured_splits(digits, forget, seed=0)
    assert set(probe) == {"forget", "retain", "test"}
    assert all(len(ids) <= MEASURE_LIMIT for ids, _, _ in probe.values())
    assert np.array_equal(probe["forget"][0], forget)


def test_session_forgets_dependent_state_when_its_inputs_change(digits, model):
    a, b = (int(i) for i in digits.train_ids[:2])
    session = StudioSession()
    session.set_forget([b, a, a])
    assert session.forget_ids.tolist() == [a, b]
    session.live = LiveRun(("key",), digits, model, session.forget_ids, "ft", {}, seed=0)
    session.set_forget([a, b])
    assert session.live is not None
    session.set_forget([a])
    assert session.live is None
    session.choose_dataset("mnist-5k")
    assert session.forget_ids.size == 0 and session.data_source == "builtin:mnist-5k"
    assert session.method_settings("hamu-q")["radius"] == DEFAULTS.hamu_radius
    session.settings["hamu-q"] = {"radius": 0.1}
    assert session.method_settings("hamu-q")["radius"] == 0.1
    assert session.method_settings("hamu-q")["constraint"] == DEFAULTS.hamu_constraint


def test_explain_names_infeasible_and_unavoidable_steps(digits, model):
    live = LiveRun(("key",), digits, model, select_class(digits, 4), "hamu-q", {"lr": 1e-4, "constraint": 1.0}, seed=0)
    live.step(2)
    lines = explain(live.history, "hamu-q")
    assert any("2 steps (the last: step 2) were infeasible" in line for line in lines)
    assert explain([], "hamu-q") == []


def test_a_choice_that_drops_the_forget_set_or_run_says_what_stays(digits, model):
    session = StudioSession()
    session.set_aside("the data changed")
    assert session.notices == []  # nothing to drop, nothing to say
    session.set_forget(select_class(digits, 3))
    session.live = LiveRun(("key",), digits, model, session.forget_ids, "ft", {}, seed=0)
    session.live.step(2)
    session.set_aside("the data changed")
    kind, text = session.notices[-1]
    assert kind == "info" and f"the forget set ({len(session.forget_ids)} samples) and the run start afresh" in text
    session.set_aside("the model changed", forget_set=False)
    assert session.notices[-1][1] == "Since the model changed, the run starts afresh."  # no store: no run id to name


def test_pause_says_how_far_run_n_got_and_that_no_stop_rule_ended_it(digits, model):
    from hamu_ui.stepper import paused_words

    session = StudioSession()
    session.live = LiveRun(("key",), digits, model, select_class(digits, 3), "ft", {}, seed=0)
    session.live.step(3)
    session.running = (1, 21)
    assert paused_words(session).startswith("Paused by you after step 3: Run 20 had taken 2 of its 20 steps")
    session.running = None
    assert paused_words(session) == "Paused by you at step 3; press Play, Step or Run to go on."
