"""The Compare and Inspect pages under ``AppTest``: alone, and after a seeded flow on digits.

The flow reuses the helpers of ``test_pages`` (digits, the trained MLP, one class forgotten
through the Forget set page's own controls). Runs are kept to a few steps: what is checked
is that the pages show the core's results, not how well unlearning works.
"""

import pytest
from test_pages import app, no_failure, studio, with_forget_class

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
    labels = ["HAMU-Q", "GDIFF", "hamu-q B=0.00625", "hamu-q B=0.1"]
    assert result.finals["label"].tolist() == labels and result.steps == 3
    assert result.trajectories.groupby("batch_digest")["label"].nunique().eq(len(labels)).all()
    table = at.dataframe[0].value
    assert list(table.index) == labels
    assert table["steps"].tolist() == [3] * len(labels)
    front = set(result.frontier()["label"])
    assert front and set(table.index[table["on front"]]) == front
    assert any(m.value.startswith("**Pareto front: ") for m in at.markdown)
    assert table["forget gap (pts)"].notna().all()

    at.switch_page("pages/4_Compare.py").run()  # a rerun keeps the result
    no_failure(at)
    assert list(at.dataframe[0].value.index) == labels


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
    assert any(m.value.startswith("**The attack still catches") for m in at.markdown)

    at.radio(key="inspect.statistic").set_value("entropy").run()
    no_failure(at)
    assert any("(entropy ≤ " in m.value for m in at.markdown)
    assert set(attack_numbers(at)) == set(high)
