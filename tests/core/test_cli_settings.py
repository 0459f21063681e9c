"""``--set NAME=VALUE`` is typed and checked by the rule's own declaration, in-process through ``main``."""

import pytest

from hamu_core.cli import _typed_settings, main


@pytest.mark.parametrize(("argv", "message"), [
    (["run", "--forget-class", "3", "--method", "neggrad+", "--set", "alpha=2"], "alpha must be a finite number >= 0 and <= 1"),
    (["run", "--forget-class", "3", "--set", "mode=blockwise"], "mode must be one of per_tensor, full"),
    (["run", "--forget-class", "3", "--method", "gdiff", "--set", "alpha=0.5"], "--set alpha: no such setting for gdiff"),
    (["run", "--forget-class", "3", "--set", "stop_on_infeasible=maybe"], "stop_on_infeasible must be true or false"),
    (["sweep", "--forget-class", "3", "--methods", "gdiff,ga", "--set", "split=equal"], "no such setting for gdiff, ga"),
])
def test_a_bad_setting_is_one_line_and_exit_code_2(argv, message, capsys, tmp_path):
    assert main([*argv, "--store", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_settings_are_typed_by_the_rule_that_declares_them():
    assert _typed_settings(["hamu-q"], [("radius", "off"), ("mode", "per_tensor"), ("stop_on_infeasible", "yes"),
                                        ("constraint", "0.02")]) == {
        "radius": None, "mode": "per_tensor", "stop_on_infeasible": True, "constraint": 0.02}
    # In a sweep a setting goes to every method that declares it; lr is everyone's.
    assert _typed_settings(["hamu-q", "gdiff"], [("lr", "0.1")]) == {"lr": 0.1}
