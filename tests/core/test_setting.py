"""Each rule setting is declared once (``hamu_core.rules.setting``) and read by the validator,
the settings form and the CLI's ``--set``: properties over every declared setting of every rule."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hamu_core.rules.registry import METHODS, make_rule
from hamu_core.rules.setting import Setting, declared, parse_setting

ALL = [(method, name, spec_field, spec) for method, cls in METHODS.items()
       for name, (spec_field, spec) in declared(cls).items()]
NUMERIC = [case for case in ALL if not (case[3].choices or case[3].flag)]


def test_every_field_of_every_rule_is_a_declared_setting():
    """No rule field escapes the declaration: the form and the CLI see every one of them."""
    from dataclasses import fields
    for method, cls in METHODS.items():
        assert {f.name for f in fields(cls)} == set(declared(cls)), method


@pytest.mark.parametrize(("method", "name", "spec_field", "spec"), ALL, ids=lambda v: str(v)[:20])
def test_the_default_is_allowed_and_round_trips_through_the_cli(method, name, spec_field, spec):
    spec.check(name, spec_field.default)
    text = "none" if spec_field.default is None else str(spec_field.default)
    assert parse_setting(METHODS[method], name, text) == spec_field.default
    assert make_rule(method, **{name: spec_field.default}).settings()[name] == spec_field.default


@pytest.mark.parametrize(("method", "name", "spec_field", "spec"), NUMERIC, ids=lambda v: str(v)[:20])
@given(value=st.floats(allow_nan=True, allow_infinity=True, width=64))
def test_the_rule_the_cli_and_the_declaration_agree_on_every_number(method, name, spec_field, spec, value):
    """A number is accepted by the rule exactly when the declaration allows it, and the CLI says the same."""
    allowed = math.isfinite(value) and (spec.low is None or (value > spec.low if spec.low_open else value >= spec.low))
    allowed = allowed and (spec.high is None or value <= spec.high)
    try:
        make_rule(method, **{name: value})
        built = True
    except ValueError as err:
        assert name in str(err)
        built = False
    assert built == allowed
    try:
        parse_setting(METHODS[method], name, repr(value))
        parsed = True
    except ValueError as err:
        assert name in str(err) and spec.describe() in str(err)
        parsed = False
    assert parsed == allowed


@pytest.mark.parametrize(("method", "name", "spec_field", "spec"), [c for c in ALL if c[3].choices],
                         ids=lambda v: str(v)[:20])
def test_choices_accept_exactly_their_words(method, name, spec_field, spec):
    for word in spec.choices:
        assert make_rule(method, **{name: word}).settings()[name] == word
    with pytest.raises(ValueError, match=name):
        make_rule(method, **{name: "not-a-choice"})
    with pytest.raises(ValueError, match="one of"):
        parse_setting(METHODS[method], name, "not-a-choice")


def test_flags_take_words_and_refuse_numbers():
    rule = METHODS["hamu-q"]
    assert parse_setting(rule, "stop_on_infeasible", "true") is True
    assert parse_setting(rule, "stop_on_infeasible", "no") is False
    with pytest.raises(ValueError, match="true or false"):
        parse_setting(rule, "stop_on_infeasible", "2")
    with pytest.raises(ValueError, match="stop_on_infeasible"):
        make_rule("hamu-q", stop_on_infeasible=1)


def test_an_unknown_setting_lists_the_rule_settings():
    with pytest.raises(ValueError, match=r"unknown setting 'alpha' for gdiff; settings: lr, clip_norm"):
        parse_setting(METHODS["gdiff"], "alpha", "0.5")


def test_optional_numbers_are_turned_off_by_none_only_where_declared():
    assert parse_setting(METHODS["hamu-q"], "radius", "off") is None
    with pytest.raises(ValueError, match="lr"):
        parse_setting(METHODS["hamu-q"], "lr", "none")
    assert "or none to turn it off" in Setting("x", "y", low=0, optional=True).describe()
