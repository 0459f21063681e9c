"""The Unlearn page's settings form is drawn from the rules' own declarations (``rules.setting``):
every widget has the declared label, bounds and choices, so the form cannot offer what the rule refuses."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from hamu_core.rules.registry import METHODS
from hamu_core.rules.setting import declared

ROOT = Path(__file__).resolve().parents[2]


def no_failure(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]


@pytest.fixture(scope="module")
def unlearn_page():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    at.switch_page("pages/2_Forget_set.py").run()
    at.selectbox(key="forget.class").select("3").run()
    at.button(key="forget.class.replace").click().run()
    no_failure(at)
    return at.switch_page("pages/3_Unlearn.py").run()


@pytest.mark.parametrize("method", ["hamu-q", "neggrad+", "pcgrad"])
def test_every_setting_widget_follows_its_declaration(unlearn_page, method):
    at = unlearn_page
    at.selectbox(key="unlearn.method").select(method).run()
    no_failure(at)
    for name, (_, spec) in declared(METHODS[method]).items():
        key = f"unlearn.{method}.{name}"
        if spec.choices:
            widget = at.selectbox(key=key)
            assert list(widget.options) == list(spec.choices)
        elif spec.flag:
            widget = at.checkbox(key=key)
        else:
            widget = at.number_input(key=key)
            assert widget.min == (spec.low or 0.0)
            assert widget.max == spec.high
        assert widget.label == spec.label and widget.help == spec.help
