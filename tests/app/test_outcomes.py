"""The Unlearn and Report pages aim at the retrain reference (issue 9), under ``AppTest``.

The everyday request (a random 5 %) is answered "nothing to do" before any step, with its
evidence, and gets a report; a whole class is unlearned until the reference is reached,
the page names the closest step, and rolling back to it leaves the run there.
"""

from pathlib import Path

from streamlit.testing.v1 import AppTest

from hamu_core.evaluation.target import reference_distance
from hamu_ui.session import SESSION_KEY

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 180


def app() -> AppTest:
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)


def no_failure(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def test_a_random_five_percent_request_is_answered_nothing_to_do_with_a_report():
    at = app().run()
    at.switch_page("pages/2_Forget_set.py").run()
    at.button(key="forget.random.replace").click().run()
    no_failure(at)
    assert len(at.session_state[SESSION_KEY].forget_ids) == 72  # 5 % of digits' 1,437 training samples
    at.switch_page("pages/3_Unlearn.py").run()
    no_failure(at)
    assert "Nothing to do." in texts(at.success) and "forget samples" in texts(at.success)
    at.button(key="unlearn.step").click().run()
    no_failure(at)
    live = at.session_state[SESSION_KEY].live
    assert live.history == [] and live.run.stop_.kind == "nothing_to_do" and live.run_id is not None
    assert "Stopped: nothing to do" in texts(at.success)
    at.switch_page("pages/6_Report.py").run()
    no_failure(at)
    assert "Nothing to do:" in texts(at.markdown)
    assert any(b.label == "Report (HTML)" for b in at.get("download_button"))


def test_a_class_is_unlearned_until_the_reference_and_can_roll_back_to_the_closest_step():
    at = app().run()
    at.switch_page("pages/2_Forget_set.py").run()
    at.selectbox(key="forget.class").select("3").run()
    at.button(key="forget.class.replace").click().run()
    at.switch_page("pages/3_Unlearn.py").run()
    at.number_input(key="unlearn.n").set_value(200).run()
    at.button(key="unlearn.run").click().run()
    no_failure(at)
    live = at.session_state[SESSION_KEY].live
    assert live.run.stop_.kind == "reached_reference", live.run.stop_
    assert "Stopped: the forget set reached the retrain reference" in texts(at.success)
    closest, last = live.run.closest_step_, len(live.history)
    assert reference_distance(live.points[closest], live.run.target.point) < 3
    assert live.points[closest]["at_reference"] == 1.0  # forget accuracy and loss both within noise there
    at.button(key="unlearn.step").click().run()  # a run already at the reference takes no further step
    assert len(at.session_state[SESSION_KEY].live.history) == last
    assert "already at the retrain reference" in texts(at.success)
    assert f"Closest to the retrain reference: **step {closest}**" in texts(at.caption)
    if closest < last:
        at.button(key="unlearn.rollback").click().run()
        no_failure(at)
        assert len(at.session_state[SESSION_KEY].live.history) == closest
