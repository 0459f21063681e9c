"""Runs are audit records, under ``AppTest``: Reset, Undo, roll-back and a changed setting keep the earlier
run with every step, listed and reportable; label and request reference reach the store, the
run list (filtered) and the report.

The module writes to its own store (``HAMU_DATA_DIR`` points at a temporary folder).
"""

import pytest
from test_pages import app, no_failure, studio, with_forget_class

from hamu_core.runs.experiment import stored_report
from hamu_core.runs.store import RunStore
from hamu_ui import stepper

STEPS = 5


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hamu-records")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HAMU_DATA_DIR", str(folder))
        yield folder


@pytest.fixture(scope="module")
def reset_after_five(data_dir):
    """Digits, class 3, a label and a request reference, five HAMU-Q steps, then Reset: (app, first run id)."""
    at = with_forget_class(app().run(), "3")
    at.switch_page("pages/3_Unlearn.py").run()
    for rule in ("reached_reference", "unavoidable"):  # five steps whatever the run meets on the way
        at.checkbox(key=f"unlearn.stop.{rule}").uncheck().run()
    at.text_input(key="unlearn.label").input("class 3 erasure").run()
    at.text_input(key="unlearn.request_ref").input("DSR-2026-118, J. Smith").run()
    at.number_input(key="unlearn.n").set_value(STEPS).run()
    at.button(key="unlearn.run").click().run()
    no_failure(at)
    first = studio(at).live.run_id
    assert len(studio(at).live.history) == STEPS
    at.button(key="unlearn.reset").click().run()
    no_failure(at)
    return at, first


def test_reset_keeps_the_run_with_its_steps_and_its_report(reset_after_five, data_dir):
    at, first = reset_after_five
    store = RunStore(data_dir)
    listed = store.list_runs()
    assert len(listed) == 2
    kept, branch = store.get_run(first), store.get_run(studio(at).live.run_id)
    assert len(kept.history) == STEPS and kept.status == "finished"
    assert (branch.parent_id, branch.branch_step, len(branch.history)) == (first, 0, 0)
    assert studio(at).live.history == [] and at.query_params["run"] == branch.id
    assert any(f"Run `{first}` keeps its {STEPS} steps" in i.value for i in at.info)
    html = stored_report(store.get_run(first)).to_html()
    assert html == stored_report(store.get_run(first)).to_html()  # regenerated: the same bytes
    assert f"All {STEPS} steps." in html and "DSR-2026-118, J. Smith" in html and "class 3 erasure" in html
    assert len(html.split("<h2>Conclusion</h2>")) == 2 and "Branched from run" not in html
    branch_html = stored_report(branch).to_html()
    assert "Branched from run" in branch_html and first in branch_html and "No steps were taken" in branch_html

    at.switch_page("pages/6_Report.py").run()
    no_failure(at)
    options = at.selectbox(key="report.run").options
    assert len(options) == 2 and any(o.startswith(first[:8]) and f"{STEPS} steps" in o for o in options)


def test_undo_rollback_and_a_changed_setting_keep_the_earlier_runs(reset_after_five, data_dir):
    at, _ = reset_after_five
    at.switch_page("pages/3_Unlearn.py").run()
    at.number_input(key="unlearn.n").set_value(STEPS).run()
    at.button(key="unlearn.run").click().run()
    stepped = studio(at).live.run_id
    at.button(key="unlearn.undo").click().run()
    no_failure(at)
    store = RunStore(data_dir)
    assert studio(at).live.run_id != stepped and len(store.get_run(stepped).history) == STEPS
    assert len(store.get_run(studio(at).live.run_id).history) == STEPS - 1
    at.button(key="unlearn.step").click().run()
    stepped = studio(at).live.run_id
    stepper.act(studio(at), "rollback", 2)  # the "Roll back to step k" button's callback
    assert studio(at).live.run_id != stepped and len(store.get_run(stepped).history) == STEPS
    assert store.get_run(studio(at).live.run_id).branch_step == 2 and len(studio(at).live.history) == 2
    at.button(key="unlearn.step").click().run()
    before = studio(at).live.run_id
    at.selectbox(key="unlearn.method").select("ga").run()
    at.button(key="unlearn.step").click().run()
    no_failure(at)
    assert studio(at).live.run_id != before
    assert len(store.get_run(before).history) == 3 and store.get_run(before).status == "finished"


def test_label_and_reference_are_stored_listed_and_filtered(reset_after_five, data_dir):
    at, first = reset_after_five
    at.switch_page("pages/3_Unlearn.py").run()
    at.text_input(key="unlearn.request_ref").input("DSR-2026-200").run()
    no_failure(at)
    store = RunStore(data_dir)
    current = studio(at).live.run_id
    assert store.get_run(current).request_ref == "DSR-2026-200"  # metadata of the live run only
    assert store.get_run(first).request_ref == "DSR-2026-118, J. Smith"

    at.switch_page("pages/6_Report.py").run()
    everything = len(at.selectbox(key="report.run").options)
    at.text_input(key="report.find").input("dsr-2026-200").run()
    no_failure(at)
    options = at.selectbox(key="report.run").options
    assert 1 <= len(options) < everything and all("DSR-2026-200" in o for o in options)
    at.text_input(key="report.find").input("no such request").run()
    assert any("No stored run matches" in c.value for c in at.caption)
    at.text_input(key="report.find").input("").run()
    at.selectbox(key="report.order").select("by label").run()
    no_failure(at)
    assert len(at.selectbox(key="report.run").options) == everything
