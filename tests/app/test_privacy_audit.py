"""The privacy audit under ``AppTest``: run from Inspect on a small bank, read on Inspect and on the Report.

Four shadows keep it quick; the core tests check the attacks themselves. What is checked
here is the flow a data-protection officer clicks through: the verdict in words with its
intervals, every attack on every model, and the same audit in the Report and its HTML.
"""

from pathlib import Path

from streamlit.testing.v1 import AppTest

from hamu_core.audit.attacks import MODELS

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 600


def no_failure(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def test_an_audit_run_on_inspect_reads_in_words_and_reaches_the_report():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("pages/2_Forget_set.py").run()
    at.selectbox(key="forget.class").select("3").run()
    at.button(key="forget.class.replace").click().run()
    at.switch_page("pages/3_Unlearn.py").run()
    at.number_input(key="unlearn.n").set_value(30).run()
    at.button(key="unlearn.run").click().run()
    no_failure(at)
    at.switch_page("pages/5_Inspect.py").run()
    at.selectbox(key="inspect.shadows").set_value(4).run()
    at.button(key="inspect.audit").click().run()
    no_failure(at)
    verdict = [m.value for m in at.markdown if m.value.startswith("**Strongest attack:")]
    assert len(verdict) == 1 and "[" in verdict[0]  # words with their intervals
    tables = [d.value for d in at.dataframe if list(d.value.index.names) == ["attack", "model"]]
    assert len(tables) == 1
    table = tables[0]
    assert {"AUC", "TPR@0.1%", "TPR@1%"} <= set(table.columns)
    assert {model for _, model in table.index} == set(MODELS)  # original, now and retrain, for every attack
    assert {attack for attack, _ in table.index} >= {"loss", "lira", "rmia", "ulira"}
    assert any(c.value.startswith("Spearman ρ between hardness") or "Too few" in c.value for c in at.caption)

    at.switch_page("pages/6_Report.py").run()
    no_failure(at)
    assert [m.value for m in at.markdown if m.value.startswith("**Strongest attack:")] == verdict
