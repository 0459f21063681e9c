"""The Forget set page under ``AppTest``: lists of ids as people write them, and a lasso read as a region.

AppTest cannot draw a lasso; it pre-fills the chart's selection event in ``session_state``
as the browser would send it (a lasso's path in data coordinates, no listed points), and
the expected ids are computed from the same map the page draws.
"""

import numpy as np
from test_pages import app, no_failure, studio

from hamu_core.data.builtin import load_digits_data
from hamu_core.evaluation.embedding import embed, ids_in_region
from hamu_core.models.checkpoint import cached_train
from hamu_ui.cache import EMBED_MAX_POINTS
from hamu_ui.forget_set import CHART_KEY

DIGITS = load_digits_data()


def forget_page():
    at = app().run()
    at.switch_page("pages/2_Forget_set.py").run()
    return at


def test_a_list_with_test_and_unknown_ids_forgets_the_training_ids_and_names_the_rest():
    at = forget_page()
    train, test = DIGITS.train_ids[:6].tolist(), DIGITS.test_ids[:3].tolist()
    at.text_input(key="forget.ids_text").input(", ".join(map(str, train + test + [999999])))
    at.button(key="forget.ids.replace").click().run()
    no_failure(at)
    assert studio(at).forget_ids.tolist() == sorted(train)
    warnings = [w.value for w in at.warning]
    assert any("skipped 4 of 10 listed ids: 3 in the test split (never trained on, so nothing to forget): "
               + ", ".join(map(str, sorted(test))) in w and "1 unknown sample ids" in w for w in warnings), warnings
    at.run()
    assert not at.warning  # said once


def test_a_list_of_test_ids_only_is_refused_and_the_set_kept():
    at = forget_page()
    at.text_input(key="forget.ids_text").input(" ".join(map(str, DIGITS.test_ids[:2])))
    at.button(key="forget.ids.replace").click().run()
    assert not at.exception
    assert any("none of the listed ids can be forgotten" in e.value for e in at.error)
    assert len(studio(at).forget_ids) == 0


def test_a_lasso_region_adds_every_training_sample_inside_it():
    at = forget_page()
    session = studio(at)
    model = cached_train(DIGITS, None, session.model_config, session.train_config, "original")
    frame = embed(model, DIGITS, method="pca", seed=session.seed, max_points=EMBED_MAX_POINTS["pca"])
    (x0, x1), (y0, y1) = frame["x"].quantile([0.2, 0.6]), frame["y"].quantile([0.2, 0.6])
    lasso = {"xref": "x", "yref": "y", "x": [x0, x1, x1, x0], "y": [y0, y0, y1, y1]}
    at.session_state[CHART_KEY] = {"selection": {"points": [], "point_indices": [], "box": [], "lasso": [lasso]}}
    at.run()
    no_failure(at)
    inside = ids_in_region(frame, lasso["x"], lasso["y"])
    expected = inside[np.isin(inside, DIGITS.train_ids)]
    assert len(expected) > 20 and studio(at).forget_ids.tolist() == expected.tolist()
    assert any(f"Forget set: {len(expected)} samples" in m.value for m in at.markdown)
