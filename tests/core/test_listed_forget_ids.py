"""A forget list as people write it, through ForgetChoice and the CLI: training ids kept, the rest named."""

from __future__ import annotations

import numpy as np
import pytest

from hamu_core import cli
from hamu_core.data.builtin import load_digits_data
from hamu_core.runs.experiment import ForgetChoice

DIGITS = load_digits_data()
TRAIN, TEST = DIGITS.train_ids[::40][:39].tolist(), DIGITS.test_ids[::7][:9].tolist()


def test_forget_choice_selects_the_training_ids_and_reports_the_skipped_once():
    choice = ForgetChoice("ids", ids=tuple(TRAIN + TEST + [424242]))
    chosen = choice.choose(DIGITS)
    assert chosen.ids.tolist() == sorted(TRAIN)
    assert chosen.skipped["test"].tolist() == sorted(TEST) and chosen.skipped["unknown"].tolist() == [424242]
    assert np.array_equal(choice.select(DIGITS), chosen.ids)


def test_rule_based_choices_skip_nothing():
    chosen = ForgetChoice("class", cls="3").choose(DIGITS)
    assert chosen.skipped == {} and len(chosen.ids) > 100


def test_only_test_ids_are_refused_naming_the_test_split():
    with pytest.raises(ValueError, match="none of the listed ids can be forgotten.*in the test split"):
        ForgetChoice("ids", ids=tuple(TEST)).select(DIGITS)


def test_cli_names_the_skipped_ids_in_one_line_on_stderr(tmp_path, capsys):
    ids_file = tmp_path / "forget.txt"
    ids_file.write_text(",".join(map(str, TRAIN + TEST)))
    args = cli.build_parser().parse_args(["train", "--forget-ids", str(ids_file)])
    spec = cli._spec(args)
    assert spec.forget.select(DIGITS).tolist() == sorted(TRAIN)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert f"skipped 9 of {len(TRAIN) + 9} listed ids: 9 in the test split" in lines[0]
    assert ", ".join(map(str, sorted(TEST)[:5])) in lines[0]


def test_cli_says_nothing_when_every_id_is_a_training_id(tmp_path, capsys):
    ids_file = tmp_path / "forget.txt"
    ids_file.write_text("\n".join(map(str, TRAIN)))
    cli._spec(cli.build_parser().parse_args(["train", "--forget-ids", str(ids_file)]))
    assert capsys.readouterr().err == ""
