"""The Compare page's "What if the request grows?" under ``AppTest``, and its two pure helpers.

The flow forgets one digits class, opens the section, and runs both sets: the larger set
must be the class plus its nearest retain neighbours, and each side must name its own
size, distance to its own reference and stop reason.
"""

from pathlib import Path

import numpy as np
import pandas as pd
from streamlit.testing.v1 import AppTest

from hamu_core.data.builtin import load_digits_data
from hamu_core.data.selection import select_class
from hamu_ui.grow_view import EXPANDER_KEY, grown_set
from hamu_ui.session import SESSION_KEY

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 300


def test_grown_set_adds_every_listed_neighbour_once():
    neighbours = pd.DataFrame({"id": [1, 2], "neighbour_ids": [np.array([7, 9]), np.array([9, 4])]})
    assert grown_set(np.array([2, 1]), neighbours).tolist() == [1, 2, 4, 7, 9]
    assert grown_set(np.array([3]), neighbours.iloc[:0]).tolist() == [3]


def compare_page_with_class(label: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("pages/2_Forget_set.py").run()
    at.selectbox(key="forget.class").select(label).run()
    at.button(key="forget.class.replace").click().run()
    return at.switch_page("pages/4_Compare.py").run()


def test_two_forget_sets_side_by_side():
    at = compare_page_with_class("3")
    assert not at.exception and not at.get("plotly_chart")  # closed: nothing drawn, nothing run
    at.session_state[EXPANDER_KEY] = True
    at.run()
    at.number_input(key="compare.grow.steps").set_value(5).run()
    at.button(key="compare.grow.run").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]

    _, (small, large) = at.session_state[SESSION_KEY].grow
    forget = select_class(load_digits_data(), 3)
    assert small.forget_ids.tolist() == forget.tolist()
    assert set(forget) < set(large.forget_ids.tolist())  # the class plus neighbours from the retain set
    assert len(at.get("plotly_chart")) == 4  # a hardness histogram and a trade-off path per set
    sizes = [m.value for m in at.markdown if " samples**" in m.value]
    assert any(f"{len(forget)} samples" in s for s in sizes) and any(f"{len(large.forget_ids)} samples" in s for s in sizes)
    assert [m.label for m in at.metric].count("Distance to its own retrain reference") == 2
    assert sum("stopped:" in c.value for c in at.caption) == 2
    for outcome in (small, large):
        assert outcome.steps <= 5 and len(outcome.path) == outcome.steps + 1
        assert len(outcome.cos) == len(outcome.forget_ids)
