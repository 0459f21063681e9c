"""The live run writes itself to the run store and comes back from it, without a Streamlit run.

A small untrained MLP on digits: what is checked is that the store follows every step, that
undo and reset keep the stored run and go on in a branch, and that a reopened run replays to
the same records and measurements.
"""

import json
import math

import numpy as np
import pytest

from hamu_core.data.selection import select_class
from hamu_core.evaluation.target import measure
from hamu_core.runs.live import LiveRun
from hamu_core.runs.store import RunStore, StoredRunRecorder
from hamu_core.runs.unlearner import UnlearningRun

SETTINGS = {"lr": 0.05, "constraint": 0.025}


def texts(live: LiveRun) -> list[str]:
    return [json.dumps(r.to_dict() | {"wall_ms": 0}, sort_keys=True) for r in live.history]


def test_the_store_follows_steps_and_going_back_branches(digits, model, tmp_path):
    store = RunStore(tmp_path)
    live = LiveRun(("key",), digits, model, select_class(digits, 3), "hamu-q", SETTINGS, seed=0,
                   store=store, dataset={"name": "digits"}, label="first", request_ref="DSR-1")
    assert live.run_id is None and store.list_runs().empty  # nothing stored before the first step
    live.step(3)
    first = live.run_id
    stored = store.get_run(first)
    assert [r["step"] for r in stored.history] == [1, 2, 3] and stored.dataset == {"name": "digits"}
    assert [{k: v for k, v in e.items() if k != "step"} for e in stored.evaluations] == live.points
    assert (stored.label, stored.request_ref) == ("first", "DSR-1")
    live.undo()
    branch = store.get_run(live.run_id)
    assert live.run_id != first and len(store.get_run(first).history) == 3  # the first run keeps its steps
    assert (len(branch.history), len(branch.evaluations), branch.parent_id, branch.branch_step) == (2, 3, first, 2)
    live.describe("renamed", "DSR-2")
    assert (store.get_run(live.run_id).label, store.get_run(first).label) == ("renamed", "first")
    reopened = LiveRun.reopen(("key",), digits, model, store, live.run_id)
    assert texts(reopened) == texts(live) and reopened.points == live.points
    assert (reopened.label, reopened.request_ref) == ("renamed", "DSR-2")
    reopened.reset()
    assert store.get_run(reopened.run_id).history == () and store.get_run(reopened.run_id).parent_id == branch.id
    assert len(store.get_run(branch.id).history) == 2 and len(store.list_runs()) == 3
    live.close()
    assert store.get_run(first).status == "finished"


def test_a_run_stored_without_measurements_reopens_with_gaps_and_measured_replays(digits, model, tmp_path):
    """A run stored without per-step measurements (a run with no probe, as older versions stored CLI runs):
    the steps a checkpoint lets the replay skip stay blank, the replayed ones are measured afresh."""
    store = RunStore(tmp_path)
    forget = select_class(digits, 5)
    live = LiveRun(("key",), digits, model, forget, "hamu-q", SETTINGS, seed=0)
    plain = UnlearningRun(live.run.rule, model=model, retain=live.run.retain, forget=live.run.forget, seed=0)
    recorder = StoredRunRecorder.start(store, plain, dataset={}, forget_ids=forget, checkpoint_every=2)
    list(recorder.steps(3, None))
    reopened = LiveRun.reopen(("key",), digits, model, store, recorder.run_id)
    assert texts(reopened) == [json.dumps(r.to_dict() | {"wall_ms": 0}, sort_keys=True) for r in plain.history_]
    probe = reopened.run.probe
    assert reopened.points[0] == measure(model, probe)
    assert all(math.isnan(v) for v in reopened.points[1].values())  # skipped by the checkpoint at step 2
    assert reopened.points[2] == pytest.approx(measure(plain.model_at(2), probe))
    assert reopened.points[3] == pytest.approx(measure(plain.model_, probe))
    assert np.isfinite(reopened.frame()["forget_acc"].iloc[-1])


def test_opening_a_finished_run_to_read_it_changes_nothing_in_its_record(digits, model, tmp_path):
    store = RunStore(tmp_path)
    live = LiveRun(("key",), digits, model, select_class(digits, 3), "hamu-q", SETTINGS, seed=0, store=store,
                   dataset={"name": "digits"})
    live.step(2)
    live.close()
    before = store.get_run(live.run_id)
    reopened = LiveRun.reopen(("key",), digits, model, store, live.run_id)
    after = store.get_run(live.run_id)
    assert (after.status, after.updated) == ("finished", before.updated)  # read, not taken over
    reopened.step(1)
    assert store.get_run(live.run_id).status == "running"  # a new step takes it over


def test_leaving_the_step_loop_between_steps_keeps_every_step_taken_stored(digits, model, tmp_path):
    """Run N and Play leave the loop after a slice, or when Pause stops the page: what was yielded is stored."""
    store = RunStore(tmp_path)
    live = LiveRun(("key",), digits, model, select_class(digits, 3), "hamu-q", SETTINGS, seed=0, store=store,
                   dataset={"name": "digits"})
    for record in live.steps(10):
        if record.step == 3:
            break
    assert len(live.history) == 3 and live.run.stop_ is None  # left by the caller: no reason to report
    stored = store.get_run(live.run_id)
    assert [e["step"] for e in stored.history] == [1, 2, 3]
    assert live.step(2).kind == "step_limit" and len(store.get_run(live.run_id).history) == 5
