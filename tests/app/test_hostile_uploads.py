"""Hostile uploads on the Setup page under ``AppTest`` (issue 14): each is refused with its rule named, no
traceback reaches the page, and the session's data, forget set and run survive every one of them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from hamu_ui import cache
from hamu_ui.boundary import PENDING_KEY
from hamu_ui.session import SESSION_KEY
from tests.hostile_files import GOOD_CSV, HOSTILE, LONG_NAME

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 120
UPLOADED = ["corrupt-crc", "size-lies-large", "pixel-bomb", "npz-bomb", "impossible-shape", "scalar-X",
            "zero-rows", "complex-X", "two-rows", "unique-labels"]


def studio(at: AppTest):
    return at.session_state[SESSION_KEY]


def upload(at: AppTest, name: str, content: bytes) -> AppTest:
    at.switch_page("pages/1_Setup.py").run()
    return at.file_uploader(key="setup.upload").set_value((name, content, "application/octet-stream")).run()


@pytest.fixture(scope="module")
def stepped() -> AppTest:
    """The Studio with digits, class 3 forgotten and two steps taken."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("pages/2_Forget_set.py").run()
    at.selectbox(key="forget.class").select("3").run()
    at.button(key="forget.class.replace").click().run()
    at.switch_page("pages/3_Unlearn.py").run()
    for _ in range(2):
        at.button(key="unlearn.step").click().run()
    assert not at.exception and len(studio(at).live.history) == 2
    return at


def test_every_hostile_upload_is_refused_by_rule_and_the_run_steps_on(stepped):
    at = stepped
    forget, live = studio(at).forget_ids.copy(), studio(at).live
    for kind in UPLOADED:
        filename, build, rule = HOSTILE[kind]
        upload(at, filename, build())
        assert not at.exception, (kind, [e.message for e in at.exception])
        refusals = [e.value for e in at.error if f"{filename} cannot be used, so the data stay as they were" in e.value]
        assert len(refusals) == 1 and re.search(rule, refusals[0]), (kind, [e.value for e in at.error])
        assert studio(at).dataset == "digits" and studio(at).upload is None
        assert studio(at).forget_ids.tolist() == forget.tolist() and studio(at).live is live
    at.switch_page("pages/3_Unlearn.py").run()
    at.button(key="unlearn.step").click().run()
    assert not at.exception and not at.error and len(studio(at).live.history) == 3


def test_a_fault_while_reading_an_upload_is_one_line_with_details_and_loses_nothing(stepped, monkeypatch):
    at = stepped
    forget, live = studio(at).forget_ids.copy(), studio(at).live

    def out_of_memory(_upload):
        raise MemoryError("Unable to allocate 2.00 GiB for an array")

    monkeypatch.setattr(cache, "uploaded_dataset", out_of_memory)
    upload(at, "fine.csv", GOOD_CSV)
    assert not at.exception
    assert [e.value for e in at.error] == [
        "Reading fine.csv failed because of a fault in the Studio (MemoryError: Unable to allocate 2.00 GiB for an "
        "array). Your data, forget set and run are kept; the details below help to report it."]
    assert [x.label for x in at.expander] == ["Details for a bug report"]
    assert "Traceback (most recent call last)" in at.expander[0].code[0].value
    assert studio(at).upload is None and studio(at).live is live and studio(at).forget_ids.tolist() == forget.tolist()
    assert PENDING_KEY not in at.session_state
    at.run()
    assert not at.error, "a remembered failure is shown once"


def test_an_exception_inside_a_page_never_shows_a_traceback():
    def page():
        from hamu_ui.boundary import page_boundary

        with page_boundary("The test page"):
            import streamlit as st

            st.write("before")
            {}["missing"]

    at = AppTest.from_function(page, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert [e.value for e in at.error] == ["The test page failed because of a fault in the Studio (KeyError: "
                                           "'missing'). Your data, forget set and run are kept; the details below "
                                           "help to report it."]
    assert "KeyError: 'missing'" in at.expander[0].code[0].value and at.markdown[0].value == "before"


def test_a_255_character_unicode_path_like_name_is_shown_short_and_used_nowhere():
    at = AppTest.from_file(str(ROOT / "pages/1_Setup.py"), default_timeout=TIMEOUT).run()
    at.file_uploader(key="setup.upload").set_value((LONG_NAME, GOOD_CSV, "text/csv")).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    shown = studio(at).dataset
    assert shown.startswith("nnn") and shown.endswith(".csv") and len(shown) <= 80 and "/" not in shown
    assert any(f"Using the uploaded file **{shown}**" in c.value for c in at.caption)
    assert any("Original model ready" in s.value for s in at.success)
