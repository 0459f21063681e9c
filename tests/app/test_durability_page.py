"""The Inspect page's durability section under ``AppTest``: a few steps on digits class 3, then the check.

The check fine-tunes and quantizes copies of three models, so it waits for its button; once
pressed it shows the reading in words, the relearning chart and the quantization table, and
keeps them across a rerun of the page.
"""

from test_pages import app, no_failure, studio, with_forget_class

from hamu_ui.durability_view import BUTTON_KEY


def test_durability_check_runs_on_its_button_and_reads_in_words():
    at = with_forget_class(app().run(), "3")
    at.switch_page("pages/3_Unlearn.py").run()
    for _ in range(3):
        at.button(key="unlearn.step").click().run()
    no_failure(at)
    assert len(studio(at).live.history) == 3

    at.switch_page("pages/5_Inspect.py").run()
    no_failure(at)
    assert any(s.value.startswith("Durability") for s in at.subheader)
    charts = len(at.get("plotly_chart"))
    assert not any("Relearning on" in m.value for m in at.markdown)  # nothing runs before the button

    at.button(key=BUTTON_KEY).click().run()
    no_failure(at)
    reading = next(m.value for m in at.markdown if "Relearning on" in m.value)
    assert reading.count("- ") >= 4 and "the unlearned model's forget accuracy" in reading
    assert "Quantized to 4 bits" in reading and ("comes back" in reading or "holds" in reading)
    assert len(at.get("plotly_chart")) == charts + 1
    assert any("int8" in str(frame.value.index.tolist()) for frame in at.dataframe)

    at.run()  # a rerun (e.g. another widget moved) keeps the result without pressing again
    no_failure(at)
    assert any("Relearning on" in m.value for m in at.markdown)
