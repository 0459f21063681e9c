"""The Report page and the run store under ``AppTest``: verdict, downloads, reload by URL, run list.

Every test here writes to its own store (``HAMU_DATA_DIR`` points at a temporary folder for
the module). Downloads are read back from Streamlit's in-memory media storage, which the
fixture below taps: ``AppTest`` shows a download button's URL, not its bytes.
"""

import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from test_pages import app, no_failure, studio, with_forget_class

from hamu_core.runs.store import RunStore

STEPS = 3
EXTERNAL = re.compile(r"<(script|link)\b[^>]*\b(src|href)\s*=\s*[\"']?\s*(https?:)?//", re.IGNORECASE)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A fresh data folder for the whole module (the store; trained models are cached there too)."""
    folder = tmp_path_factory.mktemp("hamu-data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HAMU_DATA_DIR", str(folder))
        yield folder


@pytest.fixture(scope="module")
def downloads():
    """file id → bytes of every file a page handed to Streamlit's media storage (download buttons)."""
    seen: dict[str, bytes] = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def tap(self, path_or_data, mimetype, kind, filename=None):
        file_id = original(self, path_or_data, mimetype, kind, filename)
        seen[file_id] = path_or_data if isinstance(path_or_data, bytes) else Path(path_or_data).read_bytes()
        return file_id

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(MemoryMediaFileStorage, "load_and_get_id", tap)
        yield seen


@pytest.fixture(scope="module")
def stepped(data_dir):
    """The seeded flow: digits, the MLP, class 3 forgotten, three HAMU-Q steps; returns (app, run id)."""
    at = with_forget_class(app().run(), "3")
    at.switch_page("pages/3_Unlearn.py").run()
    for _ in range(STEPS):
        at.button(key="unlearn.step").click().run()
    no_failure(at)
    return at, studio(at).live.run_id


def downloaded(at, downloads: dict[str, bytes]) -> dict[str, bytes]:
    """Download button label → the bytes it serves."""
    return {b.proto.label: downloads[Path(b.proto.url).stem] for b in at.get("download_button")}


def records(live) -> list[str]:
    """A run's step records as text (NaN equals NaN there), timings left out."""
    return [json.dumps(r.to_dict() | {"wall_ms": 0}, sort_keys=True) for r in live.history]


def test_report_page_alone_with_nothing_loaded(data_dir):
    at = app("pages/6_Report.py").run()
    no_failure(at)
    assert any("Nothing to report yet" in i.value for i in at.info)
    assert any("No stored runs yet" in c.value for c in at.caption)
    assert not at.get("download_button")


def test_each_step_is_stored_as_it_is_taken(stepped, data_dir):
    at, run_id = stepped
    stored = RunStore(data_dir).get_run(run_id)
    assert [r["step"] for r in stored.history] == [1, 2, 3] and stored.method == "hamu-q"
    assert [e["step"] for e in stored.evaluations] == [0, 1, 2, 3]
    assert stored.forget_ids == tuple(studio(at).forget_ids.tolist())
    assert stored.dataset["name"] == "digits" and stored.dataset["model"]["arch"] == "mlp"
    assert at.query_params["run"] == run_id
    at.button(key="unlearn.undo").click().run()
    branch = studio(at).live.run_id  # undo goes on in a branch: the stored run keeps its steps
    assert branch != run_id and len(RunStore(data_dir).get_run(run_id).history) == STEPS
    assert len(RunStore(data_dir).get_run(branch).history) == STEPS - 1 and at.query_params["run"] == branch
    at.button(key="unlearn.step").click().run()
    assert len(RunStore(data_dir).get_run(branch).history) == STEPS


def test_report_shows_a_verdict_and_three_downloads(stepped, downloads):
    at, run_id = stepped
    at.switch_page("pages/6_Report.py").run()
    no_failure(at)
    text = " ".join(m.value for m in at.markdown)
    for question in ("Forgotten?", "Cost?", "Attack?"):
        assert question in text
    assert "retrained model" in text
    files = downloaded(at, downloads)
    assert set(files) == {"Run history (CSV)", "Settings and metrics (JSON)", "Report (HTML)"}
    history = pd.read_csv(io.BytesIO(files["Run history (CSV)"]))
    assert history["step"].tolist() == [1, 2, 3]
    report = json.loads(files["Settings and metrics (JSON)"])
    assert report["settings"]["run_id"] == studio(at).live.run_id and len(report["history"]) == STEPS
    assert report["record"]["parent_id"] == run_id  # the live run is the branch the undo above started
    assert set(report["verdict"]) == {"forgotten", "cost", "attack"}
    assert report["evaluation"]["current"]["accuracy"]["forget"] == pytest.approx(
        studio(at).live.frame()["forget_acc"].iloc[-1], abs=1e-9)
    html = files["Report (HTML)"].decode()
    assert html.startswith("<!DOCTYPE html>") and "Trade-off path" in html and "Verdict" in html
    assert not EXTERNAL.search(html)
    assert len(at.get("plotly_chart")) == 4


def test_a_fresh_session_with_the_run_in_its_url_gets_the_run_back(stepped):
    at, run_id = stepped
    before = studio(at).live
    fresh = app()
    fresh.query_params["run"] = run_id
    fresh.run()
    no_failure(fresh)
    live = studio(fresh).live
    assert live is not None and live.run_id == run_id and len(live.history) == STEPS
    assert records(live) == records(before)  # replayed, not just copied: resume_run checks each step
    assert live.points == before.points
    assert studio(fresh).forget_ids.tolist() == studio(at).forget_ids.tolist()
    fresh.switch_page("pages/3_Unlearn.py").run()
    no_failure(fresh)
    assert studio(fresh).live is live  # the Unlearn page kept the reopened run rather than starting afresh
    assert any(f"Trade-off path: {STEPS} points" in m.value for m in fresh.markdown)
    fresh.button(key="unlearn.step").click().run()
    assert len(studio(fresh).live.history) == STEPS + 1 and fresh.query_params["run"] == run_id


def test_an_unknown_run_id_is_a_warning_and_a_clean_session(data_dir):
    at = app()
    at.query_params["run"] = "no-such-run"
    at.run()
    no_failure(at)
    assert any("cannot be opened" in w.value for w in at.warning)
    assert studio(at).live is None and "run" not in at.query_params
    assert any("Original model ready" in s.value for s in at.success)


def upload_csv(rows: int = 80) -> bytes:
    """A small two-class CSV the Studio accepts: a 'label' column and numeric features."""
    rng = np.random.default_rng(0)
    labels = np.arange(rows) % 2
    features = rng.normal(size=(rows, 4)) + labels[:, None]
    lines = ["f0,f1,f2,f3,label"] + [",".join(f"{v:.4f}" for v in x) + f",{y}" for x, y in zip(features, labels)]
    return "\n".join(lines).encode()


def test_a_run_on_an_upload_this_session_lacks_is_explained_in_words(data_dir):
    at = app().run()
    at.file_uploader(key="setup.upload").set_value(("mine.csv", upload_csv(), "text/csv")).run()
    at = with_forget_class(at, "1")
    at.switch_page("pages/3_Unlearn.py").run()
    at.button(key="unlearn.step").click().run()
    no_failure(at)
    run_id = studio(at).live.run_id
    assert RunStore(data_dir).get_run(run_id).dataset["upload"] == "mine.csv"
    fresh = app()
    fresh.query_params["run"] = run_id
    fresh.run()
    no_failure(fresh)
    assert any("'mine.csv'" in w.value and "Upload the same file" in w.value for w in fresh.warning)
    assert studio(fresh).live is None and studio(fresh).dataset == "digits"


def test_run_list_resumes_an_interrupted_run_and_deletes_after_confirmation(stepped, data_dir):
    at, run_id = stepped
    at.switch_page("pages/3_Unlearn.py").run()
    at.selectbox(key="unlearn.method").select("ga").run()
    at.button(key="unlearn.step").click().run()
    other = studio(at).live.run_id
    assert other != run_id
    RunStore(data_dir).set_status(run_id, "interrupted")

    at.switch_page("pages/6_Report.py").run()
    no_failure(at)
    assert any("interrupted" in w.value for w in at.warning)
    at.selectbox(key="report.run").set_value(run_id).run()
    assert at.button(key="report.open").label == "Resume"
    at.button(key="report.open").click().run()
    no_failure(at)
    assert studio(at).live.run_id == run_id and studio(at).method == "hamu-q"
    assert at.query_params["run"] == run_id
    store = RunStore(data_dir)
    assert store.get_run(run_id).status == "running" and store.get_run(other).status == "finished"

    at.selectbox(key="report.run").set_value(other).run()
    listed = len(at.selectbox(key="report.run").options)
    assert at.button(key="report.delete").disabled
    at.checkbox(key="report.confirm_delete").check().run()
    at.button(key="report.delete").click().run()
    no_failure(at)
    assert other not in RunStore(data_dir).list_runs()["id"].tolist()
    options = at.selectbox(key="report.run").options
    assert len(options) == listed - 1 and not any(o.startswith(other[:8]) for o in options)
    assert any(f"Run {other} was deleted" in i.value for i in at.info)
    assert not at.checkbox(key="report.confirm_delete").value
