"""The Compare and Inspect pages under ``AppTest``: alone, and after a seeded flow on digits.

The flow reuses the helpers of ``test_pages`` (digits, the trained MLP, one class forgotten
through the Forget set page's own controls). Runs are kept to a few steps: what is checked
is that the pages show the core's results, not how well unlearning works.
"""

import pytest
from test_pages import app, no_failure, studio, with_forget_class

from hamu_core.config import DEFAULTS
from hamu_core.data.builtin import load_digits_data
from hamu_core.models.checkpoint import cached_train
from hamu_core.runs.experiment import unlearning_run

PAGES = ["pages/4_Compare.py", "pages/5_Inspect.py"]


@pytest.mark.parametrize("page", PAGES)
def test_page_runs_alone_and_points_to_the_forget_set(page):
    at = app(page).run()
    no_failure(at)
    assert any("forget set: **0 samples**" in m.value for m in at.sidebar.markdown)
    assert any("Forget set" in i.value for i in at.info)


def test_compare_runs_methods_and_a_sweep_on_the_same_batches():
    at = with_forget_class(app().run(), "3")
    at.switch_page("pages/4_Compare.py").run()
    no_failure(at)
    at.multiselect(key="compare.methods").set_value(["hamu-q", "gdiff"])
    at.number_input(key="compare.steps").set_value(3)
    at.checkbox(key="compare.sweep").check().run()
    at.multiselect(key="compare.factors").set_value([0.25, 4.0])
    at.button(key="compare.run").click().run()
    no_failure(at)
    result = studio(at).comparison[1]
    base = DEFAULTS.method_settings("hamu-q")["constraint"]
    labels = ["HAMU-Q", "GDIFF", f"HAMU-Q B={0.25 * base:g}", f"HAMU-Q B={4 * base:g}"]
    assert result.finals["label"].tolist() == labels and result.steps == 3
    assert result.trajectories.groupby("batch_digest")["label"].nunique().eq(len(labels)).all()
    table = at.dataframe[0].value
    assert sorted(table.index) == sorted(labels)
    distances = table["distance (pts)"].tolist()
    assert distances == sorted(distances) and table["distance (pts)"].notna().all()  # closest first
    assert table["steps"].tolist() == [3] * len(labels)
    assert any(m.value.startswith(f"**Closest to the retrain reference: {table.index[0]}**") for m in at.markdown)
    assert table["forget gap (pts)"].notna().all()
    assert len(at.get("plotly_chart")) == 2  # the accuracy map around the reference, the loss paths

    at.switch_page("pages/4_Compare.py").run()  # a rerun keeps the result
    no_failure(at)
    assert list(at.dataframe[0].value.index) == list(table.index)


FAIR_STEPS = 10


def test_a_stop_setting_chosen_on_unlearn_does_not_end_hamu_early_in_compare():
    """HAMU-Q's own "refuse steps that must degrade" would end it after two steps here; Compare runs it like the rest."""
    at = with_forget_class(app().run(), "3")
    at.switch_page("pages/3_Unlearn.py").run()
    at.number_input(key="unlearn.hamu-q.constraint").set_value(0.05)  # a demanding B: degradation comes early
    at.checkbox(key="unlearn.hamu-q.stop_on_unavoidable").check().run()
    no_failure(at)
    session = studio(at)
    chosen = session.method_settings("hamu-q")
    assert chosen["stop_on_unavoidable"] is True
    digits = load_digits_data()
    model = cached_train(digits, None, session.model_config, session.train_config, "original")
    alone = unlearning_run(digits, model, session.forget_ids, "hamu-q", chosen, seed=session.seed)
    alone.run(FAIR_STEPS)
    assert alone.stop_.kind == "refused" and len(alone.history_) < FAIR_STEPS  # what used to carry into Compare

    at.switch_page("pages/4_Compare.py").run()
    assert at.multiselect(key="compare.stop").value == []  # no stop rule unless chosen here
    at.multiselect(key="compare.methods").set_value(["hamu-q", "gdiff", "ga"])
    at.number_input(key="compare.steps").set_value(FAIR_STEPS)
    at.button(key="compare.run").click().run()
    no_failure(at)
    result = studio(at).comparison[1]
    assert result.finals["steps_done"].tolist() == [FAIR_STEPS] * 3 and set(result.finals["status"]) == {"completed"}
    assert result.settings["HAMU-Q"]["stop_on_unavoidable"] is False
    assert studio(at).method_settings("hamu-q")["stop_on_unavoidable"] is True  # the Unlearn page keeps its choice
    assert any("turned off here" in c.value for c in at.caption)
    assert any("no stop rule (every run takes every step)" in m.value for m in at.markdown)

    at.multiselect(key="compare.stop").set_value(["reached_reference", "unavoidable"])  # one choice, for every run
    at.button(key="compare.run").click().run()
    no_failure(at)
    finals = studio(at).comparison[1].finals.set_index("label")
    assert finals.loc["HAMU-Q", "status"] == "stopped" and finals.loc["HAMU-Q", "steps_done"] < FAIR_STEPS
    assert "refused" not in finals.loc["HAMU-Q", "reason"]  # ended by the shared rule, not by its own setting
    assert any(w.value.startswith("HAMU-Q stopped after") for w in at.warning)


def attack_numbers(at) -> dict[str, str]:
    return {m.label.split(" · ")[0]: m.value for m in at.metric if " · " in m.label}


def test_inspect_before_a_run_then_after_steps_with_a_threshold():
    at = with_forget_class(app().run(), "6")
    at.switch_page("pages/5_Inspect.py").run()
    no_failure(at)
    assert any("run **Unlearn** first" in i.value for i in at.info)
    assert any(m.label == "Forget caught · original" for m in at.metric)

    at.switch_page("pages/3_Unlearn.py").run()
    at.number_input(key="unlearn.n").set_value(5).run()
    at.button(key="unlearn.run").click().run()
    assert len(studio(at).live.history) == 5
    at.switch_page("pages/5_Inspect.py").run()
    no_failure(at)
    assert any(m.label == "Forget caught · current" and "retrain" in m.delta for m in at.metric)
    assert len(at.get("plotly_chart")) == 4  # twin maps, class bars, attack distributions, collateral damage

    at.select_slider(key="inspect.threshold").set_value(10).run()
    low = attack_numbers(at)
    at.select_slider(key="inspect.threshold").set_value(90).run()
    high = attack_numbers(at)
    no_failure(at)
    assert low["Attack AUC"] == high["Attack AUC"]  # the AUC does not depend on the threshold
    assert float(high["Test wrongly caught"].rstrip("%")) > float(low["Test wrongly caught"].rstrip("%"))
    assert float(high["Forget caught"].rstrip("%")) >= float(low["Forget caught"].rstrip("%"))
    assert any(m.value.startswith("**The attack catches") for m in at.markdown)

    at.radio(key="inspect.statistic").set_value("entropy").run()
    no_failure(at)
    assert any("(entropy ≤ " in m.value for m in at.markdown)
    assert set(attack_numbers(at)) == set(high)
