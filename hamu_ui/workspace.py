"""Loading what a page works on: the dataset, the trained original model, the retrain reference, maps.

Each loader draws its own progress and its own error: long work shows a progress bar, and a
failure a user can cause is shown with ``st.error`` in plain words, the session untouched;
the page gets ``None`` back and stops drawing what depends on it.

The retrain reference trains in the background (``hamu_ui.background``) from the moment a
forget set is chosen (``start_retrain``, called by the Forget set page), so by the time a
page needs it much of the work is done; a page that needs it before then follows the same
job's progress instead of training it a second time. t-SNE and UMAP maps are computed in
the background too and kept on disk (``hamu_core.evaluation.map_cache``): a page shows a
progress note and the PCA map until the map it asked for is ready.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import wait
from dataclasses import dataclass

import pandas as pd
import streamlit as st

from hamu_core.data.builtin import DatasetUnavailable
from hamu_core.data.labelled import DataError, LabelledData
from hamu_core.evaluation.embedding import warm_umap
from hamu_core.evaluation.map_cache import cached_map, stored_map
from hamu_core.models.architectures import TrainedModel
from hamu_core.models.training import Progress
from hamu_ui import background, cache, own_model_view
from hamu_ui.forget_set import MAP_NAMES
from hamu_ui.session import StudioSession

RETRAIN_TEXT = "Training the retrain reference (same recipe, retain data only)"
POLL_S = 0.25  # how often a waiting page redraws the job's progress bar
BACKGROUND_MAPS = ("tsne", "umap")  # maps that take seconds to minutes: computed in the background, kept on disk


@dataclass(frozen=True, eq=False)
class Workspace:
    """The loaded dataset and trained original model a page works on (both read-only)."""

    source: str  # the session's data source, the first part of every cache key
    data: LabelledData
    original: TrainedModel


@contextlib.contextmanager
def progress_bar(text: str) -> Iterator[Progress]:
    """A progress callback whose bar appears on its first report and disappears afterwards."""
    slot = st.empty()

    def report(fraction: float, message: str) -> None:
        slot.progress(min(max(fraction, 0.0), 1.0), text=f"{text}: {message}")

    try:
        yield report
    finally:
        slot.empty()


def session_dataset(session: StudioSession) -> LabelledData:
    """The session's dataset from the cache; raises DataError, DatasetUnavailable or KeyError when it cannot load."""
    if session.upload is not None:
        return cache.uploaded_dataset(session.upload)
    return cache.builtin_dataset(session.dataset)


def load_data(session: StudioSession) -> LabelledData | None:
    """The session's dataset, or None after an ``st.error`` saying why it cannot be loaded."""
    try:
        return session_dataset(session)
    except (DataError, DatasetUnavailable, KeyError) as err:
        st.error(f"The dataset {session.dataset!r} cannot be loaded: {err}")
        return None


def load_workspace(session: StudioSession) -> Workspace | None:
    """Data plus the trained original model (trained here with a progress bar when not cached)."""
    data = load_data(session)
    if data is None:
        return None
    try:
        with progress_bar("Training the original model") as report:
            original = own_model_view.original_model(session, data, report)
    except ValueError as err:
        st.error(f"The {session.model_config.arch.upper()} cannot be trained on {session.dataset!r}: {err}")
        return None
    return Workspace(session.data_source, data, original)


def required_workspace(session: StudioSession) -> Workspace:
    """The workspace, or the page stops (``load_workspace`` has said why in an ``st.error``)."""
    ws = load_workspace(session)
    if ws is None:
        st.stop()
    return ws


def workspace_with_forget_set(session: StudioSession) -> Workspace:
    """The workspace for pages that need a forget set; otherwise says what to do first and stops the page."""
    ws = load_workspace(session)
    if ws is not None and not len(session.forget_ids):
        st.info("Choose what to forget first: open **Forget set** in the sidebar.")
    if ws is None or not len(session.forget_ids):
        st.stop()
    return ws


def start_retrain(session: StudioSession, ws: Workspace) -> background.Job | None:
    """The background job training the retrain reference for the session's forget set (None without one).

    Started once per data, model recipe and forget set; the model lands in the trained-model
    store (and on disk), where ``retrain_reference`` finds it.
    """
    if not len(session.forget_ids) or session.own_model is not None:  # an own model's recipe is unknown
        return None
    data, model_config, train_config, device = ws.data, session.model_config, session.train_config, session.device
    forget_ids = session.forget_ids.copy()
    key = ("retrain", ws.source, model_config, train_config, device, session.forget_key)

    def train(report: Progress) -> None:
        cache.trained_model(data, model_config, train_config, "retrain", forget_ids, progress=report, device=device)

    return background.jobs().start(key, train)


def job_outcome(job: background.Job | None, ready: str, failed: str) -> None:
    """One line once a background job has ended: ``ready``, or ``failed`` with the job's error."""
    if job is None or not job.done:
        return
    if job.error is None:
        st.caption(ready)
    else:
        st.error(f"{failed}: {job.error}")


def job_note(job: background.Job | None, text: str) -> None:
    """A progress line on a background job, redrawn every second while it runs; the page reruns once it is done."""
    if job is None or job.done:
        return

    @st.fragment(run_every=1)
    def note() -> None:
        if job.done:
            st.rerun()
        st.progress(job.fraction, text=f"{text}: {job.message}")

    note()


def retrain_reference(session: StudioSession, ws: Workspace) -> TrainedModel | None:
    """The model retrained without the forget set (the gold standard), or None without a forget set.

    Waits for the background job (starting it if the Forget set page has not), showing its
    progress; then the model comes from the store the job trained it into.
    """
    job = start_retrain(session, ws)
    if job is None:
        return None
    if not job.done:
        with progress_bar(RETRAIN_TEXT) as report:
            while not job.done:
                report(job.fraction, job.message)
                wait([job.future], timeout=POLL_S)
    if job.error is not None:
        st.error(f"The retrain reference cannot be trained: {job.error}")
        return None
    try:
        with progress_bar(RETRAIN_TEXT) as report:  # a store hit, unless it has since made room for others
            return cache.trained_model(ws.data, session.model_config, session.train_config, "retrain",
                                       session.forget_ids, progress=report, device=session.device)
    except ValueError as err:
        st.error(f"The retrain reference cannot be trained: {err}")
        return None


def feature_map(ws: Workspace, method: str, seed: int) -> pd.DataFrame | None:
    """The ``method`` map of the original model's features, or None while it is computed in the background.

    PCA is computed at once (and cached in memory). A t-SNE or UMAP map is read from disk
    when it was computed before; otherwise a background job computes and stores it, a
    progress note says so (or its error, in one line), and None tells the page to draw
    something else meanwhile.
    """
    if method not in BACKGROUND_MAPS:
        return cache.embedding(ws.data, ws.original, method, seed)
    model, data, max_points = ws.original.model, ws.data, cache.EMBED_MAX_POINTS[method]
    found = stored_map(model, data, method=method, seed=seed, max_points=max_points)
    if found is not None:
        return found

    def compute(report: Progress) -> None:
        if method == "umap":
            report(0.05, "preparing UMAP (its first use in a process compiles code)")
            warm_umap()
        report(0.3, f"laying out {max_points:,} points at most")
        cached_map(model, data, method=method, seed=seed, max_points=max_points)

    job = background.jobs().start(("map", ws.original.key, data.fingerprint(), method, seed, max_points), compute)
    if job.error is not None:
        st.error(f"The {MAP_NAMES[method]} map cannot be computed: {job.error}")
    elif job.done:  # computed, but its file has gone since: compute it again here
        return cached_map(model, data, method=method, seed=seed, max_points=max_points)
    else:
        job_note(job, f"Computing the {MAP_NAMES[method]} map in the background; the PCA map meanwhile")
    return None
