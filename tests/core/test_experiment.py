"""Experiment specs and sweep cells, in process: validation, forget choices and the sweep grid.

The end-to-end paths (training, stepping, storing) are exercised through the CLI in
test_cli.py and against the app in tests/ui/test_cli_matches_app.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from hamu_core.config import DEFAULTS
from hamu_core.data.labelled import LabelledData
from hamu_core.runs.experiment import ExperimentSpec, ForgetChoice, execute
from hamu_core.runs.sweep import sweep_specs

CLASS_3 = ForgetChoice("class", cls="3")


def numbered_classes() -> LabelledData:
    """Three classes named "1", "2", "3": names that look like indices."""
    y = np.repeat(np.arange(3), 4)
    return LabelledData(name="numbered", kind="tabular", X=np.zeros((12, 2), np.float32), y=y,
                        ids=np.arange(100, 112), is_test=np.tile([False, False, False, True], 3),
                        classes=("1", "2", "3"))


def test_a_class_is_found_by_name_before_index():
    data = numbered_classes()
    assert ForgetChoice("class", cls="1").select(data).tolist() == [100, 101, 102]
    assert ForgetChoice("class", cls="0").select(data).tolist() == [100, 101, 102]  # no class "0": index 0


@pytest.mark.parametrize("choice, message", [
    (ForgetChoice("random", fraction=0.99, seed=1), "whole training set"),  # 0.99 of 9 rounds to all 9
    (ForgetChoice("ids", ids=(103,)), "test split"),
    (ForgetChoice("ids", ids=(999,)), "unknown sample ids"),
])
def test_forget_choices_refuse_what_cannot_be_forgotten(choice, message):
    with pytest.raises(ValueError, match=message):
        choice.select(numbered_classes())


def test_whole_training_set_is_refused():
    data = numbered_classes()
    with pytest.raises(ValueError, match="whole training set"):
        ForgetChoice("ids", ids=tuple(data.train_ids)).select(data)


@pytest.mark.parametrize("changes, field", [
    ({"method": "nope"}, "method"), ({"dataset": "imagenet"}, "dataset"),
    ({"settings": (("lr", -1.0),)}, "lr"), ({"retain_batch_size": 0}, "retain_batch_size"),
])
def test_spec_refuses_bad_options_naming_the_field(changes, field):
    with pytest.raises(ValueError, match=field):
        ExperimentSpec(forget=CLASS_3, **changes)


def test_spec_settings_overlay_the_studio_defaults():
    spec = ExperimentSpec(forget=CLASS_3, settings=(("constraint", 0.01),))
    assert spec.rule_settings() == {**DEFAULTS.method_settings("hamu-q"), "constraint": 0.01}


def test_execute_refuses_zero_steps_before_any_work():
    with pytest.raises(ValueError, match="steps"):
        execute(ExperimentSpec(forget=CLASS_3), store=None, steps=0)


def test_sweep_cells_cover_methods_constraints_and_seeds():
    specs = sweep_specs(ExperimentSpec(forget=CLASS_3), ["hamu-q", "neggrad+"], [0.01, 0.02], [0, 1, 2],
                        {"constraint": 0.5, "lr": 0.02, "alpha": 0.7})
    cells = [(s.method, s.rule_settings().get("constraint"), s.seed) for s in specs]
    assert cells == ([("hamu-q", c, seed) for c in (0.01, 0.02) for seed in (0, 1, 2)]
                     + [("neggrad+", None, seed) for seed in (0, 1, 2)])
    assert all(s.rule_settings()["lr"] == 0.02 for s in specs)  # a setting goes to every method that has it
    assert all(s.rule_settings()["alpha"] == 0.7 for s in specs if s.method == "neggrad+")
    assert all("alpha" not in s.rule_settings() for s in specs if s.method == "hamu-q")
    assert all(s.forget == CLASS_3 for s in specs)


def test_sweep_refuses_unknown_methods_and_empty_axes():
    base = ExperimentSpec(forget=CLASS_3)
    with pytest.raises(ValueError, match="zzz"):
        sweep_specs(base, ["hamu-q", "zzz"], [], [0])
    with pytest.raises(ValueError, match="seed"):
        sweep_specs(base, ["hamu-q"], [], [])
    with pytest.raises(ValueError, match="'lamda' belongs to none"):
        sweep_specs(base, ["hamu-q", "ga"], [], [0], {"lamda": 1.0})
