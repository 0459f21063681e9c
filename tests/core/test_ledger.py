"""The request ledger: each request's reference excludes every earlier set, parse errors name the
line, and the CLI prints the numbers ``run_ledger`` returns when called as the Requests page calls it.

Digits with a 2-epoch recipe; models live in a temporary HAMU_DATA_DIR per test where a test
must see every training call, else in the session's folder.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import hamu_core.models.checkpoint as checkpoint
from hamu_core.config import DEFAULTS
from hamu_core.models.architectures import ModelConfig
from hamu_core.models.training import TrainConfig
from hamu_core.runs.experiment import load_dataset
from hamu_core.runs.ledger import parse_requests, run_ledger
from hamu_core.runs.unlearner import DEFAULT_STOP
from tests.cli_in_process import run_cli

RECIPE = dict(model_config=ModelConfig(arch=DEFAULTS.arch), train_config=TrainConfig(epochs=2))
REQUESTS = "class 3\n# next month\nrandom 0.05\nids 5 7 11 12 13 14 15 16 17 18 19 20\n"


@pytest.fixture(scope="module")
def data():
    return load_dataset("digits")


def test_parse_reads_the_cli_words_and_files(tmp_path):
    (tmp_path / "ids.txt").write_text("4, 9\n12")
    requests = parse_requests("class 3\n\nrandom 0.05 7\nrho 2 0.5\nids ids.txt\nids 1 2,3\n", base_dir=tmp_path)
    assert [r.words for r in requests] == ["class 3", "random 0.05 7", "rho 2 0.5", "ids ids.txt", "ids 1 2,3"]
    assert requests[1].choice.fraction == 0.05 and requests[1].choice.seed == 7
    assert requests[2].choice.rho == 0.5 and requests[2].choice.cls == "2"
    assert requests[3].choice.ids == (4, 9, 12) and requests[4].choice.ids == (1, 2, 3)


@pytest.mark.parametrize("text, words", [
    ("class 3\nforget 3", "line 2: cannot read 'forget 3'"),
    ("class 3\n\nrandom lots", "line 3: the fraction must be a number"),
    ("ids missing.txt", "line 1: no ids file at"),
    ("rho 3", "line 1: cannot read 'rho 3'"),
    ("# only a comment\n", "no requests"),
])
def test_parse_errors_name_the_line(text, words, tmp_path):
    with pytest.raises(ValueError, match=words):
        parse_requests(text, base_dir=tmp_path)


def test_each_reference_is_trained_without_every_set_so_far(data, tmp_path, monkeypatch):
    monkeypatch.setenv("HAMU_DATA_DIR", str(tmp_path))  # a cold cache: every model is trained and seen here
    trained = []
    real = checkpoint.train_model

    def spy(data, train_ids, *args, **kwargs):
        trained.append(np.asarray(train_ids))
        return real(data, train_ids, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "train_model", spy)
    ledger = run_ledger(parse_requests(REQUESTS), dataset=data, max_steps=5, **RECIPE)
    assert len(trained) == 4  # the original, then one reference per request
    np.testing.assert_array_equal(trained[0], data.train_ids)
    union = np.empty(0, dtype=np.int64)
    for entry, train_ids in zip(ledger.entries, trained[1:]):
        assert not np.isin(entry.forget_ids, union).any()  # a request counts only ids not forgotten before
        union = np.union1d(union, entry.forget_ids)
        np.testing.assert_array_equal(train_ids, np.setdiff1d(data.train_ids, union))
        assert entry.forgotten_size == len(union) and entry.retrain_seconds is not None
    assert ledger.entries[0].forget_size == int((data.y[data.train_ids] == 3).sum())
    listed = np.intersect1d(data.train_ids, [5, 7, *range(11, 21)])  # test ids are skipped
    earlier = np.union1d(ledger.entries[0].forget_ids, ledger.entries[1].forget_ids)
    np.testing.assert_array_equal(ledger.entries[2].forget_ids, np.setdiff1d(listed, earlier))
    again = run_ledger(parse_requests(REQUESTS), dataset=data, max_steps=5, **RECIPE)
    assert len(trained) == 4 and all(e.retrain_seconds is None for e in again.entries)  # disk-cache hits


def test_a_request_with_nothing_new_is_refused(data):
    with pytest.raises(ValueError, match=r"request 2 \(class 3\): every id it names was forgotten already"):
        run_ledger(parse_requests("class 3\nclass 3"), dataset=data, max_steps=2, **RECIPE)


def test_cli_prints_what_run_ledger_returns(data, tmp_path):
    (tmp_path / "requests.txt").write_text("class 3\nrandom 0.05\nids few.txt\n")
    (tmp_path / "few.txt").write_text("5 7 11 12 13 14 15 16 17 18 19 20")
    done = run_cli(None, "requests", str(tmp_path / "requests.txt"), "--dataset", "digits", "--epochs", "2",
                   "--steps", "30", "--quiet")
    assert done.returncode == 0, done.stderr
    printed, current = [], None
    for line in done.stdout.splitlines():
        if line.startswith("request "):
            current = {"words": line.split(": ", 1)[1]}
            printed.append(current)
        elif line.startswith("status: "):
            current["stop"] = line.split()[1]
        else:
            name, value = line.split()
            current[name] = value
    # as the Requests page calls it: the session's recipe, method settings, seed and stop rules
    ledger = run_ledger(parse_requests((tmp_path / "requests.txt").read_text(), base_dir=tmp_path), dataset=data,
                        method=DEFAULTS.method, settings=DEFAULTS.method_settings(DEFAULTS.method),
                        seed=DEFAULTS.seed, max_steps=30, stop_when=DEFAULT_STOP, **RECIPE)
    assert [p["words"] for p in printed] == ["class 3", "random 0.05", "ids few.txt"]
    for shown, entry in zip(printed, ledger.entries, strict=True):
        assert shown["stop"] == entry.stop_kind
        for name, value in entry.metrics().items():
            if name in ("unlearn_seconds", "retrain_seconds"):
                continue
            assert shown[name] == (f"{value:.4f}" if isinstance(value, float) else str(value)), name
    json.dumps(ledger.to_dict(), allow_nan=False)
    table = ledger.table()
    assert list(table["request"]) == ["class 3", "random 0.05", "ids few.txt"]
    assert (table["forgotten_size"].diff().dropna() > 0).all()


def test_the_report_lists_every_request(data):
    from hamu_core.evaluation.report import build_report

    ledger = run_ledger(parse_requests("class 3\nrandom 0.05"), dataset=data, max_steps=3, **RECIPE)
    report = build_report(settings={}, dataset={"name": "digits"}, forget={}, history=[], ledger=ledger.to_dict())
    html = report.to_html()
    assert "<h2>Request ledger</h2>" in html and "class 3" in html and "random 0.05" in html
    assert [e["request"] for e in json.loads(report.to_json())["ledger"]["entries"]] == ["class 3", "random 0.05"]
    assert "Request ledger" not in build_report(settings={}, dataset={}, forget={}, history=[]).to_html()
