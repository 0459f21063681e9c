"""The Requests page under ``AppTest``: two requests answered in turn give a two-row ledger, kept in the
session for the Report; a bad line is refused naming it, with the session intact."""

from pathlib import Path

from streamlit.testing.v1 import AppTest

from hamu_ui.session import SESSION_KEY

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 300


def page() -> AppTest:
    return AppTest.from_file(str(ROOT / "pages/7_Requests.py"), default_timeout=TIMEOUT).run()


def test_two_requests_give_two_rows_kept_in_the_session():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("pages/7_Requests.py").run()
    assert not at.exception, [e.message for e in at.exception]
    at.text_area(key="requests.text").input("class 3\nrandom 0.05").run()
    at.number_input(key="requests.steps").set_value(40).run()
    at.button(key="requests.run").click().run()
    assert not at.exception and not at.error, ([e.message for e in at.exception], [e.value for e in at.error])
    table = at.dataframe[0].value
    assert list(table["request"]) == ["class 3", "random 0.05"]
    ledger = at.session_state[SESSION_KEY].ledger
    assert [e.request for e in ledger.entries] == ["class 3", "random 0.05"]
    assert any("Request 2 (random 0.05): unlearning took" in c.value for c in at.caption)
    if ledger.entries[1].steps == 0:  # "nothing to do": no speed-up may be claimed for it
        assert any("no unlearning step was needed, so there is no speed-up to claim" in c.value for c in at.caption
                   if c.value.startswith("Request 2")) or any("disk cache" in c.value for c in at.caption)
    at.switch_page("pages/6_Report.py").run()  # filed on the Report page even without an Unlearn run
    assert not at.exception and "Request ledger" in [h.value for h in at.subheader]
    assert list(at.dataframe[0].value["request"]) == ["class 3", "random 0.05"]


def test_a_bad_line_is_named_and_nothing_is_kept():
    at = page()
    at.text_area(key="requests.text").input("class 3\nplease forget me").run()
    at.button(key="requests.run").click().run()
    assert not at.exception
    assert any("line 2: cannot read 'please forget me'" in e.value for e in at.error)
    assert at.session_state[SESSION_KEY].ledger is None
