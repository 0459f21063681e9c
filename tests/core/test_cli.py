"""The command line: help, train → run → report, bad arguments, a parallel sweep, and a stored
CLI run replayed to the same history.

Commands run in-process through ``main(argv)`` (``tests/cli_in_process.py``); one smoke test
starts a real ``python -m hamu_core``. Digits with a 2-epoch recipe keeps every model small;
models and runs live in a temporary HAMU_DATA_DIR shared by this module, so the models are
trained once.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from hamu_core.models.architectures import ModelConfig
from hamu_core.models.training import TrainConfig
from hamu_core.runs.experiment import ExperimentSpec, ForgetChoice, prepare, stored_report
from hamu_core.runs.store import RunStore, replay_run
from tests.cli_in_process import Called
from tests.cli_in_process import run_cli as cli

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ["--dataset", "digits", "--epochs", "2", "--forget-class", "3"]


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hamu-cli")


@pytest.fixture(scope="module")
def trained(home) -> Called:
    return cli(home, "train", *RECIPE)


@pytest.fixture(scope="module")
def stored_run(home, trained) -> tuple[str, Called]:
    done = cli(home, "run", *RECIPE, "--method", "hamu-q", "--steps", "12", "--seed", "2", "--set", "constraint=0.01",
               "--until", "none", "--quiet", "--label", "class 0 erasure", "--request-ref", "DSR-2026-118, J. Smith")
    assert done.returncode == 0, done.stderr
    run_id = next(line.split()[1] for line in done.stdout.splitlines() if line.startswith("run_id:"))
    return run_id, done


def test_python_m_hamu_core_answers_help_in_a_real_process(home):
    """The one subprocess: the module entry point itself, as a user starts it."""
    env = {**os.environ, "HAMU_DATA_DIR": str(home), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "hamu_core", "--help"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0 and "examples:" in done.stdout and done.stderr == ""


def test_help_names_every_verb_with_examples(home):
    done = cli(home, "--help")
    assert done.returncode == 0
    for verb in ("train", "run", "sweep", "report", "examples:"):
        assert verb in done.stdout
    run_help = cli(home, "run", "--help")
    assert run_help.returncode == 0 and "--forget-class" in run_help.stdout and "hamu-q" in run_help.stdout


class Terminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_progress_is_a_bar_on_a_terminal_only_and_never_on_stdout(monkeypatch, capsys):
    from hamu_core.cli import ProgressBar

    shown = {}
    for name, stderr, enabled in (("terminal", Terminal(), True), ("quiet", Terminal(), False),
                                  ("piped", io.StringIO(), True)):
        monkeypatch.setattr(sys, "stderr", stderr)
        bar = ProgressBar(enabled)
        for k in range(5):
            bar(k / 4, f"epoch {k + 1}/5")
        shown[name] = stderr.getvalue()
    assert "100%|" in shown["terminal"] and "epoch 5/5" in shown["terminal"]
    assert shown["quiet"] == shown["piped"] == "" and capsys.readouterr().out == ""


def test_train_reports_both_models(trained, home):
    assert trained.returncode == 0, trained.stderr
    assert "original" in trained.stdout and "retrain" in trained.stdout
    assert [len(list((home / "models").glob(f"{role}-*.pt"))) for role in ("original", "retrain")] == [1, 1]


def test_run_is_stored_with_every_step_and_an_evaluation(stored_run, home):
    run_id, done = stored_run
    assert "forget_acc" in done.stdout and "retrain_forget_acc" in done.stdout
    with RunStore(home) as store:
        stored = store.get_run(run_id)
    assert stored.status == "finished" and stored.seed == 2
    assert [r["step"] for r in stored.history] == list(range(1, 13))
    assert stored.settings["method"] == "hamu-q" and stored.settings["constraint"] == 0.01
    assert "evaluation" in stored.evaluations[-1] and stored.evaluations[-1]["step"] == 12


def name_values(stdout: str) -> dict[str, str]:
    """The indented ``name value`` lines a run prints after its ``status:`` line."""
    return dict(line.split() for line in stdout.splitlines() if line.startswith("  ") and len(line.split()) == 2)


def test_run_names_why_it_stopped_and_prints_name_value_lines(stored_run):
    _, done = stored_run
    status = [line for line in done.stdout.splitlines() if line.startswith("status:")]
    assert status == [status[0]] and status[0].startswith("status: step_limit (finished): took the 12 steps")
    values = name_values(done.stdout)
    for name in ("steps", "reported_step", "forget_acc", "retain_acc", "test_acc", "retrain_forget_acc",
                 "retrain_retain_acc", "retrain_test_acc", "distance"):
        float(values[name])
    assert values["steps"] == "12" and 0 <= int(values["reported_step"]) <= 12


def test_a_random_five_percent_request_needs_nothing_at_the_studio_defaults(home):
    """The everyday request: the original model already matches the retrain reference within noise."""
    done = cli(home, "run", "--forget-random", "0.05", "--quiet")
    assert done.returncode == 0, done.stderr
    assert "status: nothing_to_do (finished): nothing to do:" in done.stdout
    values = name_values(done.stdout)
    assert values["steps"] == "0" and float(values["distance"]) < 3


def test_report_writes_html_json_and_csv_for_a_run_prefix(stored_run, home, tmp_path):
    run_id, _ = stored_run
    done = cli(home, "report", run_id[:10], "--out-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    html = (tmp_path / f"run-{run_id}.html").read_text()
    assert "<!DOCTYPE html>" in html and run_id in html
    report = json.loads((tmp_path / f"run-{run_id}.json").read_text())
    assert len(report["history"]) == 12 and report["evaluation"]["current"]["accuracy"]["forget"] is not None
    assert len(pd.read_csv(tmp_path / f"run-{run_id}.csv")) == 12


def test_label_and_request_reference_round_trip_to_the_list_and_the_report(stored_run, home, tmp_path):
    run_id, _ = stored_run
    with RunStore(home) as store:
        stored = store.get_run(run_id)
    assert (stored.label, stored.request_ref) == ("class 0 erasure", "DSR-2026-118, J. Smith")
    listed = cli(home, "list")
    assert listed.returncode == 0 and "DSR-2026-118, J. Smith" in listed.stdout and "class 0 erasure" in listed.stdout
    assert cli(home, "report", run_id, "--format", "json", "--out-dir", str(tmp_path)).returncode == 0
    record = json.loads((tmp_path / f"run-{run_id}.json").read_text())["record"]
    assert (record["label"], record["request_ref"], record["run_id"]) == ("class 0 erasure", "DSR-2026-118, J. Smith",
                                                                         run_id)
    assert record["data_fingerprint"] == stored.dataset["fingerprint"] and record["forget_hash"]
    assert record["model_fingerprint"] == stored.dataset["model_fingerprint"] and record["software_version"]


def test_a_report_regenerated_from_the_store_is_byte_identical(stored_run, home, tmp_path):
    run_id, _ = stored_run
    with RunStore(home) as store:
        first, second = stored_report(store.get_run(run_id)).to_html(), stored_report(store.get_run(run_id)).to_html()
        updated = store.get_run(run_id).updated
    assert first == second and "DSR-2026-118, J. Smith" in first
    files = []
    for name in ("a", "b"):
        assert cli(home, "report", run_id, "--out-dir", str(tmp_path / name)).returncode == 0
        files.append({fmt: (tmp_path / name / f"run-{run_id}.{fmt}").read_bytes() for fmt in ("html", "json", "csv")})
    assert files[0] == files[1] and files[0]["html"] == first.encode()
    assert json.loads(files[0]["json"])["created"] == datetime.fromisoformat(updated).isoformat(timespec="seconds")


def test_stored_cli_run_replays_to_the_same_history(stored_run, home, monkeypatch):
    run_id, _ = stored_run
    monkeypatch.setenv("HAMU_DATA_DIR", str(home))
    spec = ExperimentSpec(forget=ForgetChoice("class", cls="3"), model=ModelConfig(), train=TrainConfig(epochs=2))
    prepared = prepare(spec, with_retrain=False)
    with RunStore(home) as store:
        stored = store.get_run(run_id)
    retain = prepared.data.tensors(sorted(set(prepared.data.train_ids) - set(stored.forget_ids)))
    replayed = replay_run(stored, prepared.original, retain, prepared.data.tensors(list(stored.forget_ids)))
    assert len(replayed.history_) == 12  # replay_run raises ReplayMismatch on any differing step


def write_ids(path: Path, ids) -> str:
    path.write_text(",".join(str(i) for i in ids))
    return str(path)


def all_train_ids_file(tmp_path: Path) -> str:
    from hamu_core.data.builtin import load_digits_data
    return write_ids(tmp_path / "all.txt", load_digits_data().train_ids)


BAD = {
    "unknown method": (["run", *RECIPE, "--method", "nope"], "invalid choice: 'nope'"),
    "negative steps": (["run", *RECIPE, "--steps", "-5"], "--steps"),
    "unknown run id": (["report", "feedface"], "no run 'feedface'"),
    "unknown dataset": (["run", "--dataset", "imagenet", "--forget-class", "1"], "invalid choice: 'imagenet'"),
    "no forget set": (["run", "--epochs", "2"], "choose a forget set"),
    "empty forget set": (["run", "--epochs", "2", "--forget-ids", "EMPTY"], "empty"),
    "whole training set": (["run", "--epochs", "2", "--forget-ids", "ALL"], "whole training set"),
    "bad setting": (["run", *RECIPE, "--set", "lr=-1"], "lr must be"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_arguments_exit_2_with_one_clear_line(case, trained, home, tmp_path):
    args, expected = BAD[case]
    files = {"EMPTY": lambda: write_ids(tmp_path / "empty.txt", []), "ALL": lambda: all_train_ids_file(tmp_path)}
    done = cli(home, *(files[a]() if a in files else a for a in args))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0] and expected in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def test_sweep_stores_one_run_per_method_constraint_and_seed(trained, home, tmp_path):
    table_file = tmp_path / "sweep.csv"
    done = cli(home, "sweep", *RECIPE, "--methods", "hamu-q,gdiff", "--constraints", "0.01,0.02", "--seeds", "0,1",
               "--steps", "3", "--until", "none", "--workers", "2", "--no-eval", "--store", str(tmp_path / "store"),
               "--csv", str(table_file), "--quiet")
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(table_file)
    assert len(table) == 6  # hamu-q: 2 constraints x 2 seeds; gdiff has no constraint: 2 seeds
    with RunStore(tmp_path / "store") as store:
        runs = {rid: store.get_run(rid) for rid in store.list_runs()["id"]}
    assert set(runs) == set(table["run_id"])
    cells = sorted((r.settings["method"], r.settings.get("constraint"), r.seed) for r in runs.values())
    assert cells == sorted([("hamu-q", c, s) for c in (0.01, 0.02) for s in (0, 1)] + [("gdiff", None, s) for s in (0, 1)])
    assert all(r.status == "finished" and len(r.history) == 3 for r in runs.values())
