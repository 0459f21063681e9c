"""Every page under ``AppTest``: runs without an exception alone and in a flow, and fails politely.

AppTest cannot click or lasso a plotly chart (the browser tests do that); it can pre-fill
the chart's selection through ``session_state``, which is what the page reads. Caches are
process-wide, so the first test to need the trained digits model pays for it and no test
relies on a cold cache.
"""

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from hamu_core.data.builtin import load_digits_data
from hamu_core.data.selection import select_class
from hamu_ui.forget_set import CHART_KEY
from hamu_ui.session import SESSION_KEY

ROOT = Path(__file__).resolve().parents[2]
PAGES = ["pages/1_Setup.py", "pages/2_Forget_set.py", "pages/3_Unlearn.py"]
TIMEOUT = 120


def app(script: str = "app.py") -> AppTest:
    return AppTest.from_file(str(ROOT / script), default_timeout=TIMEOUT)


def no_failure(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def studio(at: AppTest):
    return at.session_state[SESSION_KEY]


def with_forget_class(at: AppTest, label: str = "3") -> AppTest:
    """Choose one class as the forget set through the page's own controls."""
    at.switch_page("pages/2_Forget_set.py").run()
    at.selectbox(key="forget.class").select(label).run()
    at.button(key="forget.class.replace").click().run()
    no_failure(at)
    return at


@pytest.mark.parametrize("page", PAGES)
def test_every_page_runs_alone(page):
    at = app(page).run()
    no_failure(at)
    assert any("forget set: **0 samples**" in m.value for m in at.sidebar.markdown)


def test_app_opens_on_setup_with_digits_trained():
    at = app().run()
    no_failure(at)
    assert at.title[0].value == "HAMU Studio"
    assert at.selectbox(key="setup.dataset").value == "digits"
    assert any("Original model ready" in s.value for s in at.success)


def test_unlearn_without_forget_set_points_to_the_forget_page():
    at = app().run()
    at.switch_page("pages/3_Unlearn.py").run()
    no_failure(at)
    assert any("Forget set" in i.value for i in at.info)


def test_seeded_flow_forget_a_class_then_step_three_times():
    at = with_forget_class(app().run(), "3")
    digits = load_digits_data()
    assert studio(at).forget_ids.tolist() == select_class(digits, 3).tolist()
    assert any(f"Forget set: {len(select_class(digits, 3))} samples" in m.value for m in at.markdown)
    at.switch_page("pages/3_Unlearn.py").run()
    no_failure(at)
    for _ in range(3):
        at.button(key="unlearn.step").click().run()
    no_failure(at)
    live = studio(at).live
    assert len(live.history) == 3 and len(live.points) == 4
    assert any("Trade-off path: 3 points" in m.value for m in at.markdown)
    charts = json.loads(at.get("component_instance")[0].proto.json_args)["charts"]  # hamu_ui.live_charts
    assert [json.loads(chart)["layout"]["meta"]["steps"] for chart in charts] == [3, 3, 3, 3]
    assert at.metric[0].label == "Forget accuracy"


def test_stepper_buttons_inside_the_fragment():
    at = with_forget_class(app().run(), "5")
    at.switch_page("pages/3_Unlearn.py").run()
    assert at.button(key="unlearn.undo").disabled and at.button(key="unlearn.reset").disabled
    at.number_input(key="unlearn.n").set_value(4).run()
    at.button(key="unlearn.run").click().run()
    assert len(studio(at).live.history) == 4 and not at.button(key="unlearn.undo").disabled
    at.button(key="unlearn.undo").click().run()
    assert len(studio(at).live.history) == 3
    at.button(key="unlearn.play").click().run()
    assert studio(at).playing and at.button(key="unlearn.play").label == "Pause"
    played = len(studio(at).live.history)
    assert played > 3
    at.button(key="unlearn.play").click().run()
    assert not studio(at).playing and len(studio(at).live.history) == played
    at.button(key="unlearn.reset").click().run()
    no_failure(at)
    assert studio(at).live.history == [] and len(studio(at).live.points) == 1


def test_chart_selection_adds_and_removes_training_samples_only():
    at = app().run()
    at.switch_page("pages/2_Forget_set.py").run()
    digits = load_digits_data()
    train, test = digits.train_ids[:6].tolist(), digits.test_ids[:2].tolist()
    at.session_state[CHART_KEY] = {"selection": {"points": [{"customdata": {"0": i}} for i in train + test],
                                                 "box": [], "lasso": [], "point_indices": []}}
    at.run()
    no_failure(at)
    assert studio(at).forget_ids.tolist() == sorted(train)
    at.run()
    assert studio(at).forget_ids.tolist() == sorted(train)  # one selection is applied once
    at.radio(key="forget.action").set_value("remove")
    at.session_state[CHART_KEY] = {"selection": {"points": [{"customdata": [i]} for i in train[:2]]}}
    at.run()
    assert studio(at).forget_ids.tolist() == sorted(train[2:])
    assert any("Forget set: 4 samples" in m.value for m in at.markdown)


def test_bad_upload_shows_an_error_and_keeps_the_session():
    at = with_forget_class(app().run(), "1")
    kept = studio(at).forget_ids.copy()
    at.switch_page("pages/1_Setup.py").run()
    at.file_uploader(key="setup.upload").set_value(("bad.csv", b"a;b;label\n1;2;x\n", "text/csv")).run()
    assert not at.exception
    assert any("bad.csv cannot be used" in e.value and "separated by commas" in e.value for e in at.error)
    assert studio(at).dataset == "digits" and studio(at).upload is None
    assert studio(at).forget_ids.tolist() == kept.tolist()


def test_a_diverging_step_is_an_error_in_words_and_the_run_survives():
    at = with_forget_class(app().run(), "2")
    at.switch_page("pages/3_Unlearn.py").run()
    at.selectbox(key="unlearn.method").select("ga").run()
    at.number_input(key="unlearn.ga.clip_norm").set_value(0.0).run()
    at.number_input(key="unlearn.ga.lr").set_value(1e30).run()
    at.button(key="unlearn.step").click().run()
    assert not at.exception
    assert any("failed and was undone" in e.value for e in at.error)
    assert studio(at).live.history == [] and studio(at).method == "ga"


def test_invalid_settings_are_refused_in_words():
    at = with_forget_class(app().run(), "4")
    at.switch_page("pages/3_Unlearn.py").run()
    at.number_input(key="unlearn.hamu-q.lr").set_value(0.0).run()
    assert not at.exception
    assert any("lr must be" in e.value for e in at.error)


def test_rule_based_selection_tools():
    at = app().run()
    at.switch_page("pages/2_Forget_set.py").run()
    digits = load_digits_data()
    at.slider(key="forget.rho").set_value(0.5)
    at.selectbox(key="forget.mix_class").select("7")
    at.button(key="forget.mix.replace").click().run()
    no_failure(at)
    assert len(studio(at).forget_ids) == len(select_class(digits, 7))
    assert 0 < (digits.y[digits.rows(studio(at).forget_ids)] == 7).sum() < len(select_class(digits, 7))
    before = len(studio(at).forget_ids)
    at.number_input(key="forget.k").set_value(5)
    at.button(key="forget.hardest.add").click().run()
    assert len(studio(at).forget_ids) == before + 5
    at.slider(key="forget.fraction").set_value(0.1)
    at.button(key="forget.random.replace").click().run()
    assert len(studio(at).forget_ids) == round(0.1 * len(digits.train_ids))
    at.text_input(key="forget.ids_text").input("no ids here")
    at.button(key="forget.ids.replace").click().run()
    assert any("That selection cannot be made" in e.value for e in at.error) and not at.exception
    assert len(studio(at).forget_ids) == round(0.1 * len(digits.train_ids))
    wanted = digits.train_ids[:3].tolist()
    at.text_input(key="forget.ids_text").input(", ".join(map(str, wanted)))
    at.button(key="forget.ids.replace").click().run()
    assert studio(at).forget_ids.tolist() == sorted(wanted)
    at.button(key="forget.clear").click().run()
    assert len(studio(at).forget_ids) == 0


@pytest.mark.parametrize("colour", ["forget / retain", "hardness"])
def test_colourings_and_just_looking(colour):
    at = with_forget_class(app().run(), "0")
    kept = studio(at).forget_ids.tolist()
    at.radio(key="forget.colour").set_value(colour)
    at.radio(key="forget.action").set_value("look")
    looked = int(load_digits_data().train_ids[-1])
    at.session_state[CHART_KEY] = {"selection": {"points": [{"customdata": [looked]}]}}
    at.run()
    no_failure(at)
    assert studio(at).forget_ids.tolist() == kept and studio(at).focus_id == looked
    captions = [caption for image in at.get("image") for caption in image.captions]
    assert f"selected: id {looked}" in captions


def test_a_model_that_cannot_fit_the_data_is_an_error_in_words():
    from hamu_core.models.architectures import ModelConfig
    from hamu_ui.session import StudioSession

    at = app("pages/1_Setup.py")
    at.session_state[SESSION_KEY] = StudioSession(dataset="rotten-tomatoes", model_config=ModelConfig(arch="cnn"))
    at.run()
    assert not at.exception
    assert any("cannot be trained" in e.value and "image" in e.value for e in at.error)
