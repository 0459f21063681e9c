"""The app side of the run store: the run id in the page URL, reopening, finding and deleting stored runs.

Streamlit forgets a session when its tab reloads; the store does not. So the live run's id
lives in the URL (``?run=<id>``), and a fresh session whose URL carries one rebuilds
everything the run was made from: the dataset and model (from the process caches), the
forget set, the method and its settings, and the run itself, replayed and checked by
``hamu_core.runs.store.resume_run``. Every page reaches ``sync_url`` through
``widgets.status_line``, so a reload of any page brings the run back.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from hamu_core.data.builtin import DatasetUnavailable
from hamu_core.data.labelled import DataError, LabelledData
from hamu_core.models.architectures import ModelConfig
from hamu_core.models.training import TrainConfig
from hamu_core.runs.live import LiveRun
from hamu_core.runs.store import ReplayMismatch, RunStore, StoredRun, StoreError
from hamu_ui import cache
from hamu_ui.session import StudioSession

RUN_PARAM = "run"  # the query parameter that names the live run
RECORD_KEYS = ("unlearn.label", "unlearn.request_ref")  # the widgets that show the live run's label and reference


def store_or_warn() -> RunStore | None:
    """The run store, or None after a warning when it cannot be opened (the app still works, unsaved)."""
    try:
        return cache.run_store()
    except StoreError as err:
        st.warning(f"Runs are not being saved, so a reload will lose them: {err}")
        return None


def sync_url(session: StudioSession) -> None:
    """On a session's first page run reopen the URL's run; then make the URL name the live run."""
    if not session.url_read:
        session.url_read = True
        wanted = st.query_params.get(RUN_PARAM)
        if wanted and wanted != (session.live.run_id if session.live else None):
            reopen(session, wanted)
    write_url(session)


def write_url(session: StudioSession) -> None:
    """Put the live run's id in the URL, or take a stale one out, so a reload finds what is on screen."""
    run_id = session.live.run_id if session.live else None
    if run_id:
        if st.query_params.get(RUN_PARAM) != run_id:
            st.query_params[RUN_PARAM] = run_id
    elif RUN_PARAM in st.query_params:
        del st.query_params[RUN_PARAM]


def _configs(dataset: dict) -> tuple[ModelConfig, TrainConfig]:
    """The stored model and training recipe (JSON turned tuples into lists; the configs want tuples back)."""
    model = {k: tuple(v) if isinstance(v, list) else v for k, v in dataset["model"].items()}
    return ModelConfig(**model), TrainConfig(**dataset["train"])


def _stored_data(session: StudioSession, stored: StoredRun) -> tuple[str, LabelledData] | None:
    """The run's data source and dataset, or None after a warning saying why this session cannot have them.

    A built-in dataset is loaded by name. Any other (an upload, or a file the CLI read) must
    be the file this session uploaded: its content fingerprint must match the stored one.
    """
    source = stored.dataset.get("source", "")
    if source.startswith("builtin:"):
        return source, cache.builtin_dataset(source.removeprefix("builtin:"))
    if session.upload is not None:
        data = cache.uploaded_dataset(session.upload)
        if data.fingerprint() == stored.dataset.get("fingerprint"):
            return session.data_source, data
    file = stored.dataset.get("upload") or source
    st.warning(f"Run {stored.id} was made on the file {file!r}, which this browser session has not uploaded. "
               "Upload the same file on Setup, then open the run again from the run list on the Report page.")
    return None


def reopen(session: StudioSession, run_id: str) -> bool:
    """Make the stored run ``run_id`` the session's live run, with its data, model, forget set and settings.

    Anything that stops it (an unknown id, data this session lacks, a replay that no longer
    matches) is a warning in plain words, and the session stays as it was.
    """
    try:
        store = cache.run_store()
        stored = store.get_run(run_id)
    except (KeyError, StoreError) as err:
        reason = "it may have been deleted" if isinstance(err, KeyError) else str(err)
        st.warning(f"Run {run_id!r} cannot be opened ({reason}); the Studio starts afresh.")
        return False
    try:
        found = _stored_data(session, stored)
        if found is None:
            return False
        source, data = found
        model_config, train_config = _configs(stored.dataset)
        with st.spinner(f"Reopening run {run_id}: loading its model and replaying {len(stored.history)} steps…"):
            original = cache.trained_model(data, model_config, train_config, "original", device=session.device)
            forget_ids = np.asarray(stored.forget_ids, dtype=np.int64)
            reference = cache.trained_model(data, model_config, train_config, "retrain", forget_ids,
                                            device=session.device)
            live = LiveRun.reopen((), data, original.model, store, run_id, reference=reference.model)
    except (KeyError, TypeError, ValueError, DataError, DatasetUnavailable, ReplayMismatch, StoreError) as err:
        st.warning(f"Run {run_id} cannot be reopened here: {err}")
        return False
    session.drop_run()
    if source.startswith("builtin:"):
        session.choose_dataset(source.removeprefix("builtin:"))
    session.choose_model(model_config)
    session.train_config, session.seed = train_config, stored.seed
    session.set_forget(stored.forget_ids)
    session.method = stored.method
    session.settings[stored.method] = {k: v for k, v in stored.settings.items() if k != "method"}
    live.key = session.run_key(original.key)
    session.live = live
    session.run_label, session.request_ref = stored.label, stored.request_ref
    for key in RECORD_KEYS:  # the Unlearn page's inputs start again from the reopened run's values
        st.session_state.pop(key, None)
    return True


def request_reopen(session: StudioSession, run_id: str) -> None:
    """Run-list callback: name the run in the URL and have the next page run reopen it."""
    st.query_params[RUN_PARAM] = run_id
    session.url_read = False


def delete(session: StudioSession, run_id: str) -> None:
    """Run-list callback: delete a stored run (the live one too: the session then has no run)."""
    try:
        cache.run_store().delete_run(run_id)
    except (KeyError, StoreError) as err:
        session.notify("error", f"Run {run_id} could not be deleted: {err}")
        return
    if session.live is not None and session.live.run_id == run_id:
        session.live = None
        session.halt()
    session.notify("info", f"Run {run_id} was deleted.")


SORTS = ("newest first", "by label")  # the run list's orders


def filter_runs(table: pd.DataFrame, text: str = "", order: str = SORTS[0]) -> pd.DataFrame:
    """The run list's rows whose label, request reference, method or dataset contain ``text`` (any case),
    in ``order``: newest first, or by label (then newest first)."""
    if order not in SORTS:
        raise ValueError(f"order must be one of {SORTS}, got {order!r}")
    needle = text.strip().lower()
    if needle:
        haystack = table[["label", "request_ref", "method", "dataset"]].astype(str).agg(" ".join, axis=1).str.lower()
        table = table[haystack.str.contains(needle, regex=False)]
    if order == "by label":
        return table.sort_values(["label", "created"], ascending=[True, False], kind="stable")
    return table.sort_values("created", ascending=False, kind="stable")


def run_label(row: dict) -> str:
    """One line per stored run for the run list's picker."""
    status = {"interrupted": "interrupted, resumable", "running": "open"}.get(row["status"], row["status"])
    named = " · ".join(text for text in (row.get("label"), row.get("request_ref")) if text)
    return (f"{row['id'][:8]}{' · ' + named if named else ''} · {row['method'].upper()} on {row['dataset']} · "
            f"{row['steps']} steps · {status} · {row['updated']:%Y-%m-%d %H:%M} UTC")
