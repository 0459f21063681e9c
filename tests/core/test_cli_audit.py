"""The ``shadows`` and ``audit`` verbs, called in-process, on digits with a 2-epoch recipe and 4 shadows.

The bank is built ahead by ``shadows`` and must be reused by ``audit``; a stored run is reopened
at its reported step; every attack × model line parses; ``--json`` holds per-sample scores; bad
input ends with one line and exit code 2.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from hamu_core.runs.store import RunStore
from tests.cli_in_process import Called
from tests.cli_in_process import run_cli as cli

RECIPE = ["--dataset", "digits", "--epochs", "2"]
LINE = re.compile(r"^\s+(\w+)\s+(original|current|retrain)\s+AUC (\S+) \[(\S+), (\S+)\]\s+"
                  r"TPR@0\.1% (\S+) \[(\S+), (\S+)\]\s+TPR@1% (\S+) \[(\S+), (\S+)\]$")


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hamu-audit")


@pytest.fixture(scope="module")
def bank(home) -> Called:
    return cli(home, "shadows", *RECIPE, "--shadows", "4", "--quiet")


@pytest.fixture(scope="module")
def run_id(home, bank) -> str:
    done = cli(home, "run", *RECIPE, "--forget-class", "3", "--steps", "6", "--until", "none", "--quiet")
    assert done.returncode == 0, done.stderr
    return next(line.split()[1] for line in done.stdout.splitlines() if line.startswith("run_id:"))


def parsed(stdout: str) -> dict[tuple[str, str], list[float]]:
    return {(m[1], m[2]): [float(v) for v in m.groups()[2:]] for m in map(LINE.match, stdout.splitlines()) if m}


def test_shadows_builds_the_bank_once(bank, home):
    assert bank.returncode == 0, bank.stderr
    assert bank.stdout.startswith("shadows: 4 of digits")
    assert len(list((home / "shadows").glob("*/shadow-*.pt"))) == 4


def test_audit_prints_every_attack_on_every_model_and_writes_json(home, run_id):
    files = {p: p.stat().st_mtime_ns for p in (home / "shadows").glob("*/shadow-*.pt")}
    out = home / "audit.json"
    done = cli(home, "audit", run_id[:8], "--shadows", "4", "--json", str(out), "--quiet")
    assert done.returncode == 0, done.stderr
    assert {p: p.stat().st_mtime_ns for p in (home / "shadows").glob("*/shadow-*.pt")} == files  # reused, not retrained
    lines = parsed(done.stdout)
    assert set(lines) == {(a, m) for a in ("loss", "lira_offline", "lira", "rmia", "ulira")
                          for m in ("original", "current", "retrain")}
    for value, low, high, *tprs in lines.values():
        assert 0 <= low <= value <= high <= 1 and all(0 <= t <= 1 for t in tprs)
    with RunStore(home) as store:
        stored = store.get_run(run_id)
    reported = [e["reported_step"] for e in stored.evaluations if "reported_step" in e][-1]
    assert f"step: {reported} (hamu-q)" in done.stdout
    assert "unresolved: TPR@0.1%" in done.stdout  # 359 test samples cannot resolve an FPR of 0.1%
    verdict = next(line for line in done.stdout.splitlines() if line.startswith("verdict: "))
    assert "strongest attack" in verdict and "[" in verdict
    document = json.loads(out.read_text())
    assert document["run_id"] == run_id and document["step"] == reported and document["n_shadows"] == 4
    scores = document["results"][0]["scores"]
    assert len(scores["id"]) == len(stored.forget_ids) + 359 and set(scores["split"]) == {"forget", "test"}


def test_audit_of_one_attack_at_a_chosen_step(home, run_id):
    done = cli(home, "audit", run_id, "--shadows", "4", "--attack", "lira", "--step", "0", "--quiet")
    assert done.returncode == 0, done.stderr
    lines = parsed(done.stdout)
    assert set(lines) == {("lira", m) for m in ("original", "current", "retrain")}
    assert lines[("lira", "current")] == lines[("lira", "original")]  # step 0 is the original model
    assert "step: 0 (hamu-q)" in done.stdout


@pytest.mark.parametrize("args, message", [
    (["nope"], "no run 'nope'"),
    (["RUN", "--step", "99"], "--step must lie in [0, 6]"),
    (["RUN", "--shadows", "2"], "--shadows: must be at least 4"),
])
def test_bad_input_is_one_line_and_exit_code_2(home, run_id, args, message):
    done = cli(home, "audit", *[run_id if a == "RUN" else a for a in args], "--quiet")
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
