"""A run started from the command line has the history the Studio's Unlearn page would show.

The app's side is built as its pages build it: the session's method settings (Studio
defaults overlaid with the user's changes), the original model from ``hamu_ui.cache``,
the forget set from ``hamu_core.data.selection`` and the page's ``LiveRun``. The CLI's side is a
``python -m hamu_core run`` (``main(argv)``, called in-process) whose stored records are
compared field by field, wall-clock timings aside; the app then reopens the CLI's stored run.
"""

from __future__ import annotations

import json

import pytest

from hamu_core.data.builtin import load_digits_data
from hamu_core.data.selection import select_class
from hamu_core.models.architectures import ModelConfig
from hamu_core.models.training import TrainConfig
from hamu_core.runs.live import LiveRun
from hamu_core.runs.store import RunStore
from hamu_ui.cache import trained_model
from hamu_ui.session import StudioSession
from tests.cli_in_process import run_cli

STEPS = 8
TRAIN = TrainConfig(epochs=2, seed=7)  # a recipe no other test uses: the app's in-memory model cache holds only ours


def comparable(record: dict) -> str:
    """The record as canonical JSON without wall-clock fields (NaN compares equal to NaN this way)."""
    drop = lambda d: {k: v for k, v in d.items() if not k.endswith("ms")}  # noqa: E731
    return json.dumps({**drop(record), "info": drop(record.get("info", {}))}, sort_keys=True)


@pytest.mark.parametrize("method, changed, seed, evaluated", [("hamu-q", {"constraint": 0.01}, 1, True),
                                                              ("gdiff", {"lr": 0.02}, 0, False)])
def test_cli_run_has_the_apps_history(method, changed, seed, evaluated, tmp_path, monkeypatch):
    monkeypatch.setenv("HAMU_DATA_DIR", str(tmp_path))
    sets = [arg for name, value in changed.items() for arg in ("--set", f"{name}={value}")]
    args = ["run", "--dataset", "digits", "--epochs", str(TRAIN.epochs), "--train-seed", str(TRAIN.seed),
            "--forget-class", "3", "--method", method, "--seed", str(seed), "--steps", str(STEPS), "--until", "none", "--quiet"]
    done = run_cli(tmp_path, *args, *sets, *([] if evaluated else ["--no-eval"]))
    assert done.returncode == 0, done.stderr
    run_id = next(line.split()[1] for line in done.stdout.splitlines() if line.startswith("run_id:"))
    with RunStore(tmp_path) as store:
        stored = store.get_run(run_id)

    session = StudioSession(method=method, seed=seed, train_config=TRAIN)
    session.settings[method] = dict(changed)
    data = load_digits_data()
    trained = trained_model(data, session.model_config, session.train_config, "original")
    assert session.model_config == ModelConfig(arch="mlp") and trained.key == stored.dataset["model_fingerprint"]
    model = trained.model
    live = LiveRun(("test",), data, model, select_class(data, 3), method, session.method_settings(method), seed)
    assert live.step(STEPS).kind == "step_limit"

    assert stored.settings == live.run.rule.settings() and stored.seed == seed
    assert list(stored.forget_ids) == select_class(data, 3).tolist()
    assert [comparable(r) for r in stored.history] == [comparable(r.to_dict()) for r in live.history]

    with RunStore(tmp_path) as store:  # and the Studio reopens the CLI's run: replayed, checked, charted
        reopened = LiveRun.reopen(("test",), data, model, store, run_id)
        frame = reopened.frame()
        reopened.close()
    assert [comparable(r.to_dict()) for r in reopened.history] == [comparable(r) for r in stored.history]
    if evaluated:
        final = stored.evaluations[-1]  # the evaluation describes the step closest to the reference
        assert frame["forget_acc"].iloc[final["reported_step"]] == final["evaluation"]["current"]["accuracy"]["forget"]
