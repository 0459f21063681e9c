"""Work no page waits on (hamu_ui.background): the retrain reference and slow maps, under ``AppTest``.

A test waits on the job itself (its future), never on a clock: AppTest does not tick a
fragment's timer, so the page is simply run again once the job is done.
"""

import base64
import json
from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

from hamu_core.config import DEFAULTS
from hamu_core.data.builtin import load_digits_data
from hamu_core.evaluation.map_cache import stored_map
from hamu_core.models.architectures import ModelConfig
from hamu_core.models.training import TrainConfig
from hamu_ui import background, cache
from hamu_ui.session import SESSION_KEY

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 120


def app(script: str = "app.py") -> AppTest:
    return AppTest.from_file(str(ROOT / script), default_timeout=TIMEOUT)


def jobs_of(kind: str) -> list[background.Job]:
    return [job for key, job in background.jobs().jobs.items() if key[0] == kind]


def plotted_xs(at: AppTest) -> list[float]:
    """Every x coordinate drawn on the Forget set page's map (its first chart)."""
    def values(array) -> list[float]:  # plotly sends numbers as {"dtype": "f8", "bdata": base64} typed arrays
        if isinstance(array, dict):
            return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
        return list(array)

    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    return sorted(x for trace in spec["data"] for x in values(trace["x"]))


def test_a_t_sne_map_is_computed_in_the_background_with_a_note_then_drawn_from_disk():
    at = app("pages/2_Forget_set.py").run()
    at.radio(key="forget.map").set_value("tsne").run()
    assert not at.exception
    (job,) = [job for job in jobs_of("map") if job.key[3] == "tsne"]
    if not job.done:  # usually still laying out: the page says so and draws the PCA map meanwhile
        notes = [p.proto.text for p in at.get("progress")]
        assert any("Computing the t-SNE map in the background" in text for text in notes), notes
    job.future.result(timeout=300)
    assert job.error is None
    at.run()
    assert not at.exception and not at.get("progress")
    data = load_digits_data()
    original = cache.trained_model(data, ModelConfig(arch=DEFAULTS.arch), TrainConfig(), "original")
    stored = stored_map(original.model, data, method="tsne", seed=0, max_points=cache.EMBED_MAX_POINTS["tsne"])
    assert plotted_xs(at) == sorted(stored.loc[stored["drawn"], "x"].tolist())  # the map on disk is the one drawn


def test_choosing_a_forget_set_starts_the_retrain_reference_that_unlearn_then_uses():
    at = app().run()
    at.switch_page("pages/2_Forget_set.py").run()
    at.selectbox(key="forget.class").select("6").run()
    at.button(key="forget.class.replace").click().run()
    assert not at.exception
    forget_key = at.session_state[SESSION_KEY].forget_key
    (job,) = [job for job in jobs_of("retrain") if job.key[-1] == forget_key]
    job.future.result(timeout=300)
    assert job.error is None and job.fraction == 1.0
    at.switch_page("pages/3_Unlearn.py").run()
    assert not at.exception
    live = at.session_state[SESSION_KEY].live
    assert live.run.target is not None  # the run aims at the reference the background job trained
