"""The run store: round trips, undo/reset, bad files, read-only folders, migration, two
writing processes, and a real process killed mid-run then resumed bit for bit."""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import multiprocessing
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch

from hamu_core.rules.registry import make_rule
from hamu_core.runs.store import ReplayMismatch, RunStore, StoredRunRecorder, StoreError, replay_run, resume_run
from hamu_core.runs.store_schema import SCHEMA_VERSION, writer_alive, writer_token
from hamu_core.runs.unlearner import UnlearningRun

SETTINGS = {"method": "hamu-q", "constraint": 1e-3, "lr": 1e-2}  # the rule every run here uses
ROOT = Path(__file__).resolve().parents[2]


def tiny_problem():
    """A seeded 3-class problem and an MLP small enough to step in about a millisecond."""
    import torch
    from torch import nn

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(96, 8, generator=gen)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=gen))
    return model, (x[:80], y[:80]), (x[80:], y[80:]), list(range(80, 96))


@pytest.fixture
def problem():
    return tiny_problem()


def new_run(problem, seed=3) -> UnlearningRun:
    model, retain, forget, _ = problem
    return UnlearningRun(make_rule(**SETTINGS), model=model, retain=retain, forget=forget, seed=seed,
                         retain_batch_size=32)


def canonical(record) -> str:
    """A record as comparable text: every field but wall_ms; NaN equals NaN; floats exact."""
    record = record if isinstance(record, dict) else record.to_dict()
    return json.dumps({k: v for k, v in record.items() if k != "wall_ms"}, sort_keys=True)


def start(store, problem, **kwargs) -> StoredRunRecorder:
    run = new_run(problem)
    return StoredRunRecorder.start(store, run, dataset={"name": "tiny", "fingerprint": "abc"},
                                   forget_ids=problem[3], **kwargs)


# ----- round trips ------------------------------------------------------------------------
def test_a_run_round_trips_with_settings_history_evaluations_and_checkpoints(tmp_path, problem):
    store = RunStore(tmp_path)
    rec = start(store, problem, label="first", checkpoint_every=3)
    list(rec.steps(7, None))
    rec.evaluate({"forget_acc": 0.25, "mia": math.nan})
    rec.evaluate({"retain_acc": 0.9})  # same step: merged with the metrics above
    stored = store.get_run(rec.run_id)
    assert stored.settings == rec.run.rule.settings() and stored.method == "hamu-q"
    assert stored.dataset == {"name": "tiny", "fingerprint": "abc"} and stored.label == "first"
    assert stored.forget_ids == tuple(problem[3]) and stored.seed == 3 and stored.retain_batch_size == 32
    assert stored.forget_batch_size is None and stored.status == "running"
    assert [canonical(r) for r in stored.history] == [canonical(r) for r in rec.run.history_]
    assert [r.wall_ms for r in stored.records()] == [r.wall_ms for r in rec.run.history_]
    assert math.isnan(stored.history[0]["kappa2"]) or stored.history[0]["kappa2"] == rec.run.history_[0].kappa2
    (evaluation,) = stored.evaluations
    assert evaluation["step"] == 7 and evaluation["forget_acc"] == 0.25 and evaluation["retain_acc"] == 0.9
    assert math.isnan(evaluation["mia"])
    assert store.checkpoint_steps(rec.run_id) == [0, 3, 6]
    step, weights = store.load_checkpoint(rec.run_id, 5)
    assert step == 3
    step, weights = store.load_checkpoint(rec.run_id, 0)
    assert step == 0 and all(torch.equal(weights[k], v) for k, v in problem[0].state_dict().items())
    row = store.list_runs().set_index("id").loc[rec.run_id]
    assert (row.method, row.dataset, row.steps, row.status, row.label) == ("hamu-q", "tiny", 7, "running", "first")
    rec.finish()
    store.set_label(rec.run_id, "renamed")
    assert store.get_run(rec.run_id).status == "finished" and store.get_run(rec.run_id).label == "renamed"


def test_the_default_store_lives_in_hamu_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("HAMU_DATA_DIR", str(tmp_path / "data"))
    with RunStore() as store:
        assert store.path == (tmp_path / "data" / "runs.sqlite").resolve()
        assert store.list_runs().empty
    assert (tmp_path / "data" / "runs.sqlite").is_file()


def test_undo_rollback_and_reset_keep_the_stored_run_and_go_on_in_branches(tmp_path, problem):
    """A run is an audit record: going back never empties or rewrites it; a branch carries on."""
    store = RunStore(tmp_path)
    rec = start(store, problem, checkpoint_every=2, label="erasure", request_ref="DSR-7")

    def same():
        stored = store.get_run(rec.run_id).history
        return [canonical(r) for r in stored] == [canonical(r) for r in rec.run.history_]

    list(rec.steps(5, None))
    rec.evaluate({"acc": 1.0, "evaluation": {"x": 1}, "verdict": {}})
    first = rec.run_id
    five = [canonical(r) for r in rec.run.history_]
    before = store.get_run(first)

    rec.undo()
    undone = rec.run_id
    assert undone != first and same() and len(rec.run.history_) == 4
    assert store.get_run(first) == dataclasses.replace(before, status="finished")  # the first run is as it was...
    assert store.checkpoint_steps(first) == [0, 2, 4]
    branch = store.get_run(undone)
    assert (branch.parent_id, branch.branch_step, branch.label, branch.request_ref) == (first, 4, "erasure", "DSR-7")
    assert store.checkpoint_steps(undone) == [0, 2, 4] and branch.status == "running"
    assert all("evaluation" not in e for e in branch.evaluations)  # the parent's report stays the parent's

    list(rec.steps(2, None))
    rec.rollback(3)
    rolled = rec.run_id
    assert same() and store.get_run(rolled).branch_step == 3 and len(store.get_run(undone).history) == 6
    rec.reset()
    assert same() and rec.run.history_ == [] and store.get_run(rec.run_id).parent_id == rolled
    list(rec.steps(2, None))
    assert same()
    assert [canonical(r) for r in store.get_run(first).history] == five  # ...and after all of that
    statuses = dict(zip(store.list_runs()["id"], store.list_runs()["status"]))
    assert len(statuses) == 4 and [statuses[r] for r in (first, undone, rolled)] == ["finished"] * 3
    for rid in (undone, rolled):  # each branch replays on its own, from the base model
        resume_run(store, rid, problem[0], problem[1], problem[2])


def test_the_store_cannot_rewrite_a_run(tmp_path):
    assert not any("truncate" in name or "DELETE FROM steps" in inspect.getsource(getattr(RunStore, name))
                   for name in dir(RunStore) if inspect.isfunction(getattr(RunStore, name)))
    store = RunStore(tmp_path)
    rid = store.create_run(settings={"method": "ga"}, dataset={}, forget_ids=[1], seed=0, retain_batch_size=4)
    with pytest.raises(ValueError, match=r"branch step must lie in \[0, 0\]"):
        store.branch_run(rid, 1)


def test_label_and_request_reference_are_metadata(tmp_path, problem):
    store = RunStore(tmp_path)
    rec = start(store, problem)
    list(rec.steps(2, None))
    history = store.get_run(rec.run_id).history
    store.set_label(rec.run_id, "renamed", "DSR-9, A. Person")
    stored = store.get_run(rec.run_id)
    assert (stored.label, stored.request_ref, stored.history) == ("renamed", "DSR-9, A. Person", history)
    store.set_label(rec.run_id, "again")
    row = store.list_runs().iloc[0]
    assert (row.label, row.request_ref, row.parent_id) == ("again", "DSR-9, A. Person", None)


def test_a_failed_write_takes_the_step_back_out_of_memory(tmp_path, problem):
    store = RunStore(tmp_path)
    rec = start(store, problem)
    next(rec.steps(1, None))
    store.close()
    with pytest.raises(StoreError, match="closed"):
        next(rec.steps(1, None))
    assert len(rec.run.history_) == 1


def test_steps_must_follow_each_other_and_values_are_checked(tmp_path, problem):
    store = RunStore(tmp_path)
    rid = store.create_run(settings={"method": "ga"}, dataset={}, forget_ids=[1], seed=0, retain_batch_size=4)
    with pytest.raises(ValueError, match="step 2 does not follow the stored step 0"):
        store.append_step(rid, {"step": 2})
    store.append_step(rid, {"step": 1})
    with pytest.raises(ValueError, match="step 1 does not follow the stored step 1"):
        store.append_step(rid, {"step": 1})
    with pytest.raises(ValueError, match="status"):
        store.set_status(rid, "paused")
    with pytest.raises(ValueError, match="evaluation step"):
        store.add_evaluation(rid, 5, {"acc": 1.0})
    with pytest.raises(ValueError, match="settings"):
        store.create_run(settings={"lr": 1.0}, dataset={}, forget_ids=[], seed=0, retain_batch_size=4)
    with pytest.raises(ValueError, match="retain_batch_size"):
        store.create_run(settings={"method": "ga"}, dataset={}, forget_ids=[], seed=0, retain_batch_size=0)
    with pytest.raises(ValueError, match="checkpoint_every"):
        StoredRunRecorder(store, rid, new_run(problem), checkpoint_every=0)


def test_unknown_run_ids_raise_key_errors_naming_the_id(tmp_path):
    store = RunStore(tmp_path)
    calls = [
        lambda rid: store.get_run(rid), lambda rid: store.append_step(rid, {"step": 1}),
        lambda rid: store.branch_run(rid, 0), lambda rid: store.add_evaluation(rid, 0, {"a": 1}),
        lambda rid: store.save_checkpoint(rid, 0, {"w": torch.zeros(1)}), lambda rid: store.load_checkpoint(rid),
        lambda rid: store.set_status(rid, "failed"), lambda rid: store.delete_run(rid),
        lambda rid: store.resume_point(rid),
    ]
    for call in calls:
        with pytest.raises(KeyError, match="no-such-run"):
            call("no-such-run")


def test_deleting_a_run_deletes_its_steps_evaluations_and_checkpoints(tmp_path, problem):
    store = RunStore(tmp_path)
    keep, gone = start(store, problem), start(store, problem)
    for rec in (keep, gone):
        list(rec.steps(3, None))
        rec.evaluate({"acc": 0.5})
    store.delete_run(gone.run_id)
    with pytest.raises(KeyError):
        store.get_run(gone.run_id)
    assert list(store.list_runs().id) == [keep.run_id]
    with sqlite3.connect(store.path) as conn:
        for table in ("steps", "evaluations", "checkpoints"):
            owners = {r[0] for r in conn.execute(f"SELECT run_id FROM {table}")}
            assert owners == {keep.run_id}, table


# ----- replay and resume -------------------------------------------------------------------
def test_replay_reproduces_a_stored_run_and_catches_a_tampered_record(tmp_path, problem):
    store = RunStore(tmp_path)
    rec = start(store, problem)
    list(rec.steps(6, None))
    replayed = replay_run(store.get_run(rec.run_id), lambda: tiny_problem()[0], problem[1], problem[2])
    assert [canonical(r) for r in replayed.history_] == [canonical(r) for r in rec.run.history_]
    with sqlite3.connect(store.path) as conn:
        (text,) = conn.execute("SELECT record FROM steps WHERE step = 4").fetchone()
        tampered = {**json.loads(text), "retain_loss_after": 0.5}
        conn.execute("UPDATE steps SET record = ? WHERE step = 4", (json.dumps(tampered),))
    conn.close()
    with pytest.raises(ReplayMismatch, match=r"step 4 .*\['retain_loss_after'\]"):
        replay_run(store.get_run(rec.run_id), problem[0], problem[1], problem[2])


KILLED_SCRIPT = inspect.getsource(tiny_problem) + textwrap.dedent(f"""
    import sys, time
    from hamu_core.rules.registry import make_rule
    from hamu_core.runs.store import RunStore, StoredRunRecorder
    from hamu_core.runs.unlearner import UnlearningRun

    model, retain, forget, forget_ids = tiny_problem()
    run = UnlearningRun(make_rule(**{SETTINGS!r}), model=model, retain=retain, forget=forget, seed=3,
                        retain_batch_size=32)
    recorder = StoredRunRecorder.start(RunStore(sys.argv[1]), run, dataset={{"name": "tiny"}},
                                       forget_ids=forget_ids, checkpoint_every=4)
    print(recorder.run_id, flush=True)
    for record in recorder.steps(3000, None):
        print(record.step, flush=True)
        time.sleep(0.01)
""")


def test_a_killed_run_is_reported_interrupted_and_resumes_bit_for_bit(tmp_path, problem):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", KILLED_SCRIPT, str(tmp_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        run_id = proc.stdout.readline().strip()
        assert run_id, proc.stderr.read()
        store = RunStore(tmp_path)
        assert store.get_run(run_id).status == "running" and store.interrupted_ == []
        deadline = time.monotonic() + 120  # a hang guard, not a timing assertion
        while len(store.get_run(run_id).history) < 10 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        printed = [int(line) for line in proc.stdout.read().split()]
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    store = RunStore(tmp_path)
    assert store.interrupted_ == [run_id]
    stored = store.get_run(run_id)
    n = len(stored.history)
    assert stored.status == "interrupted" and n >= 10 and n >= max(printed)  # printed: committed before
    assert [r["step"] for r in stored.history] == list(range(1, n + 1))
    point = store.resume_point(run_id)
    assert point.step == n // 4 * 4 and len(point.remaining) == n - point.step

    resumed = resume_run(store, run_id, lambda: tiny_problem()[0], problem[1], problem[2])  # replays and checks
    recorder = StoredRunRecorder(store, run_id, resumed)
    list(recorder.steps(3, None))
    reference = new_run(problem)
    reference.run(n + 3)
    assert [canonical(r) for r in store.get_run(run_id).history] == [canonical(r) for r in reference.history_]
    assert all(torch.equal(a, b) for a, b in zip(resumed.model_.parameters(), reference.model_.parameters()))
    assert store.get_run(run_id).status == "running"


def test_process_liveness_tells_dead_recycled_and_remote_writers_apart():
    me = writer_token()
    assert writer_alive(me)
    host, pid, start_ticks = me.rsplit(":", 2)
    assert not writer_alive(f"{host}:{pid}:{int(start_ticks or 0) + 1}")  # same pid, another process
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    while Path(f"/proc/{zombie.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        time.sleep(0.01)  # exited but not yet reaped: a zombie holds nothing
    assert not writer_alive(f"{host}:{zombie.pid}:")
    zombie.wait()
    assert not writer_alive(f"{host}:{zombie.pid}:")
    assert writer_alive(f"not-{socket.gethostname()}:{zombie.pid}:1")  # another machine's: left alone


# ----- bad files and folders ---------------------------------------------------------------
def assert_clean(err: pytest.ExceptionInfo, *words: str) -> None:
    """A StoreError with the given words and no sqlite3 exception chained behind it."""
    message = str(err.value)
    for word in words:
        assert word in message, (word, message)
    assert err.value.__cause__ is None and (err.value.__context__ is None or err.value.__suppress_context__)


def test_a_text_file_is_refused_with_its_path(tmp_path):
    path = tmp_path / "runs.sqlite"
    path.write_text("run,step\nabc,1\n")
    with pytest.raises(StoreError) as err:
        RunStore(path)
    assert_clean(err, str(path), "not an SQLite database")
    assert path.read_text() == "run,step\nabc,1\n"


def test_a_foreign_database_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
        conn.execute("INSERT INTO users VALUES ('ada')")
        conn.execute("PRAGMA user_version = 7")
    conn.close()
    with pytest.raises(StoreError) as err:
        RunStore(path)
    assert_clean(err, str(path), "not a HAMU run store", "users")
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 7
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == [("users",)]
    conn.close()


def test_a_store_from_a_newer_version_is_refused(tmp_path):
    RunStore(tmp_path).close()
    with sqlite3.connect(tmp_path / "runs.sqlite") as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError) as err:
        RunStore(tmp_path)
    assert_clean(err, "newer", f"version {SCHEMA_VERSION + 1}")


@pytest.mark.parametrize("damage", ["garbled pages", "truncated"])
def test_a_damaged_store_raises_store_errors_not_sqlite_errors(tmp_path, damage):
    with RunStore(tmp_path) as store:
        rid = store.create_run(settings={"method": "ga"}, dataset={}, forget_ids=[1], seed=0, retain_batch_size=4)
        for step in range(1, 40):
            store.append_step(rid, {"step": step, "note": "x" * 300})
    path = tmp_path / "runs.sqlite"
    raw = path.read_bytes()
    path.write_bytes(raw[:4096] + b"\xff" * (len(raw) - 4096) if damage == "garbled pages" else raw[: len(raw) // 3])
    with pytest.raises(StoreError) as err:
        RunStore(path).get_run(rid)
    assert_clean(err, str(path), "malformed")


@pytest.fixture
def unwritable_dir(tmp_path):
    """A folder this process cannot create files in, even as root.

    chmod stops everyone but root; as root, the immutable attribute (chattr +i) stops writes
    where the filesystem and capabilities allow it, and sysfs, which refuses new files to
    root, serves otherwise.
    """
    folder = tmp_path / "locked"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    locked = subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0
    try:
        yield folder if locked else Path("/sys")
    finally:
        if locked:
            subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_a_read_only_folder_is_reported_with_the_way_out(unwritable_dir, monkeypatch):
    with pytest.raises(OSError):
        (unwritable_dir / "probe").write_text("x")  # the folder really refuses writes
    with pytest.raises(StoreError) as err:
        RunStore(unwritable_dir)
    assert_clean(err, str(unwritable_dir), "read-only", "HAMU_DATA_DIR")
    monkeypatch.setenv("HAMU_DATA_DIR", str(unwritable_dir / "hamu"))
    with pytest.raises(StoreError) as err:
        RunStore()
    assert_clean(err, "read-only", "HAMU_DATA_DIR")


# ----- schema migration --------------------------------------------------------------------
V1_DDL = """
CREATE TABLE runs (id TEXT PRIMARY KEY, created TEXT NOT NULL, updated TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'finished', 'interrupted', 'failed')),
    writer TEXT NOT NULL, settings TEXT NOT NULL, dataset TEXT NOT NULL, forget_ids TEXT NOT NULL,
    seed INTEGER NOT NULL, retain_batch_size INTEGER NOT NULL, forget_batch_size INTEGER);
CREATE TABLE steps (run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE, step INTEGER NOT NULL,
    record TEXT NOT NULL, PRIMARY KEY (run_id, step)) WITHOUT ROWID;
CREATE TABLE checkpoints (run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE, step INTEGER NOT NULL,
    blob BLOB NOT NULL, PRIMARY KEY (run_id, step));
PRAGMA application_id = 1212239189;
PRAGMA user_version = 1;
"""  # the released v1 format, frozen here so a change to migration 1 cannot go unnoticed


def test_a_version_1_store_is_migrated_with_its_runs_intact(tmp_path, problem):
    run = new_run(problem)
    run.run(3)
    path = tmp_path / "runs.sqlite"
    with sqlite3.connect(path) as conn:
        conn.executescript(V1_DDL)
        conn.execute("INSERT INTO runs VALUES ('old', '2024-01-02T03:04:05.000+00:00', '2024-01-02T03:04:05.000+00:00',"
                     " 'finished', 'elsewhere:1:1', ?, '{\"name\": \"tiny\"}', '[80, 81]', 3, 32, NULL)",
                     (json.dumps(run.rule.settings()),))
        for record in run.history_:
            conn.execute("INSERT INTO steps VALUES ('old', ?, ?)", (record.step, json.dumps(record.to_dict())))
    conn.close()

    store = RunStore(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
    conn.close()
    stored = store.get_run("old")
    assert stored.label == "" and stored.evaluations == () and stored.status == "finished"
    assert stored.forget_ids == (80, 81) and stored.created.startswith("2024-01-02")
    assert [canonical(r) for r in stored.history] == [canonical(r) for r in run.history_]
    store.add_evaluation("old", 3, {"acc": 0.75})
    store.set_label("old", "from v1")
    row = store.list_runs().iloc[0]
    assert (row.id, row.steps, row.label, row.method) == ("old", 3, "from v1", "hamu-q")
    replay_run(stored, problem[0], problem[1], problem[2])  # the migrated run still replays exactly


V2_DDL = V1_DDL.replace("PRAGMA user_version = 1;", """
ALTER TABLE runs ADD COLUMN label TEXT NOT NULL DEFAULT '';
CREATE TABLE evaluations (run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE, step INTEGER NOT NULL,
    metrics TEXT NOT NULL, PRIMARY KEY (run_id, step)) WITHOUT ROWID;
PRAGMA user_version = 2;
""")  # the released v2 format, frozen here like v1


def test_a_version_2_store_gains_request_references_and_branches(tmp_path, problem):
    run = new_run(problem)
    run.run(3)
    path = tmp_path / "runs.sqlite"
    with sqlite3.connect(path) as conn:
        conn.executescript(V2_DDL)
        conn.execute("INSERT INTO runs VALUES ('v2', '2025-01-02T03:04:05.000+00:00', '2025-01-02T03:04:05.000+00:00',"
                     " 'finished', 'elsewhere:1:1', ?, '{\"name\": \"tiny\"}', '[80, 81]', 3, 32, NULL, 'named')",
                     (json.dumps(run.rule.settings()),))
        for record in run.history_:
            conn.execute("INSERT INTO steps VALUES ('v2', ?, ?)", (record.step, json.dumps(record.to_dict())))
        conn.execute("INSERT INTO evaluations VALUES ('v2', 3, '{\"acc\": 0.5}')")
    conn.close()

    store = RunStore(path)
    stored = store.get_run("v2")
    assert (stored.label, stored.request_ref, stored.parent_id, stored.branch_step) == ("named", "", None, None)
    assert [canonical(r) for r in stored.history] == [canonical(r) for r in run.history_]
    assert stored.evaluations == ({"step": 3, "acc": 0.5},)
    branch = store.get_run(store.branch_run("v2", 2))
    assert (branch.parent_id, branch.branch_step, len(branch.history), branch.label) == ("v2", 2, 2, "named")
    assert store.get_run("v2") == stored  # held by another process: left exactly as it was
    replay_run(stored, problem[0], problem[1], problem[2])


# ----- concurrency --------------------------------------------------------------------------
def _writer(path: str, barrier, shared: str, index: int, steps: int, results) -> None:
    """One process appending its own run's steps and evaluations to a run both processes share."""
    try:
        store = RunStore(path)
        rid = store.create_run(settings={"method": "ga"}, dataset={"name": f"w{index}"}, forget_ids=[index],
                               seed=index, retain_batch_size=8)
        barrier.wait()
        for step in range(1, steps + 1):
            weights = {"w": torch.full((64,), float(step))} if step % 10 == 0 else None
            store.append_step(rid, {"step": step, "writer": index}, checkpoint=weights)
            store.add_evaluation(shared, 0, {f"w{index}_{step}": step})
        results.put((index, rid))
    except Exception as err:  # reported to the parent, which fails the test with it
        barrier.abort()  # so the other writer stops waiting for this one
        results.put((index, f"error: {err!r}"))


def test_two_processes_write_at_once_without_losing_anything(tmp_path):
    store = RunStore(tmp_path)
    shared = store.create_run(settings={"method": "ga"}, dataset={}, forget_ids=[], seed=0, retain_batch_size=8)
    ctx = multiprocessing.get_context("spawn")
    barrier, results, steps = ctx.Barrier(2), ctx.Queue(), 60
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), barrier, shared, i, steps, results)) for i in range(2)]
    for p in procs:
        p.start()
    outcome = dict(results.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert all(not str(v).startswith("error") for v in outcome.values()), outcome
    for index, rid in outcome.items():
        stored = store.get_run(rid)
        assert [r["step"] for r in stored.history] == list(range(1, steps + 1))
        assert {r["writer"] for r in stored.history} == {index}
        assert store.checkpoint_steps(rid) == list(range(10, steps + 1, 10))
        assert torch.equal(store.load_checkpoint(rid)[1]["w"], torch.full((64,), float(steps)))
    (merged,) = store.get_run(shared).evaluations
    assert len(merged) == 1 + 2 * steps  # every writer's every evaluation, none overwritten


def test_threads_sharing_one_store_do_not_interfere(tmp_path):
    store = RunStore(tmp_path)
    ids = [store.create_run(settings={"method": "ga"}, dataset={}, forget_ids=[], seed=i, retain_batch_size=8)
           for i in range(3)]

    def append(rid):
        for step in range(1, 41):
            store.append_step(rid, {"step": step})

    threads = [threading.Thread(target=append, args=(rid,)) for rid in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(store.list_runs().steps) == [40, 40, 40]


def test_a_hamu_run_stored_before_the_variant_became_a_class_still_rebuilds_its_rule(tmp_path):
    """Runs written when one class served HAMU-Q and HAMU-U carry "variant"; they reopen as before."""
    store = RunStore(tmp_path)
    old = {"method": "hamu-u", "variant": "hamu-u", "constraint": 0.02, "radius": 0.05, "mode": "full"}
    run_id = store.create_run(settings=old, dataset={"name": "tiny"}, forget_ids=[1, 2], seed=0, retain_batch_size=8)
    stored = store.get_run(run_id)
    assert "variant" not in stored.settings
    rule = make_rule(**stored.settings)
    assert rule.method == "hamu-u" and rule.variant == "hamu-u" and rule.constraint == 0.02
