"""The live run writes itself to the run store and comes back from it, without a Streamlit run.

A small untrained MLP on digits: what is checked is that the store follows every step,
undo and reset, and that a reopened run replays to the same records and measurements.
"""

import json
import math

import numpy as np
import pytest

from hamu_core.selection import select_class
from hamu_core.store import RunStore, StoredRunRecorder
from hamu_ui.session import LiveRun, measure

SETTINGS = {"lr": 0.05, "constraint": 0.025}


def texts(live: LiveRun) -> list[str]:
    return [json.dumps(r.to_dict() | {"wall_ms": 0}, sort_keys=True) for r in live.history]


def test_the_store_follows_steps_undo_and_reset(digits, model, tmp_path):
    store = RunStore(tmp_path)
    live = LiveRun(("key",), digits, model, select_class(digits, 3), "hamu-q", SETTINGS, seed=0,
                   store=store, dataset={"name": "digits"})
    assert live.run_id is None and store.list_runs().empty  # nothing stored before the first step
    live.step(3)
    stored = store.get_run(live.run_id)
    assert [r["step"] for r in stored.history] == [1, 2, 3] and stored.dataset == {"name": "digits"}
    assert [{k: v for k, v in e.items() if k != "step"} for e in stored.evaluations] == live.points
    live.undo()
    assert len(store.get_run(live.run_id).history) == 2 and len(store.get_run(live.run_id).evaluations) == 3
    reopened = LiveRun.reopen(("key",), digits, model, store, live.run_id)
    assert texts(reopened) == texts(live) and reopened.points == live.points
    reopened.reset()
    assert store.get_run(live.run_id).history == () and len(store.get_run(live.run_id).evaluations) == 1
    live.close()
    assert store.get_run(live.run_id).status == "finished"


def test_a_run_stored_without_measurements_reopens_with_gaps_and_a_measured_end(digits, model, tmp_path):
    store = RunStore(tmp_path)
    bare = LiveRun(("key",), digits, model, select_class(digits, 5), "hamu-q", SETTINGS, seed=0)
    recorder = StoredRunRecorder.start(store, bare.run, dataset={}, forget_ids=select_class(digits, 5))
    for _ in range(3):
        recorder.step()  # as the CLI stores a run: records, no per-step measurements
    reopened = LiveRun.reopen(("key",), digits, model, store, recorder.run_id)
    assert texts(reopened) == texts(bare)
    assert reopened.points[0] == measure(model, reopened.probe)
    assert all(math.isnan(v) for point in reopened.points[1:3] for v in point.values())
    assert reopened.points[3] == pytest.approx(measure(bare.run.model_, bare.probe))
    assert np.isfinite(reopened.frame()["forget_acc"].iloc[-1])
