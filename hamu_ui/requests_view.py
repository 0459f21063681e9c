"""The Requests page's pieces: write deletion requests, answer them in order, show the ledger.

Requests are lines in the CLI's own words (``hamu_core.runs.ledger.parse_requests``), so a list
written here can be saved as a file for ``python -m hamu_core requests``. The ledger is
cached per (data, recipe, text, method, settings, seed, steps, stop rules) with
``st.cache_data``; its progress bar is drawn *inside* the cached function and emptied there,
so a cache hit replays a bar that is already gone rather than one on a missing block.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from hamu_core.config import DEFAULTS
from hamu_core.data.labelled import LabelledData
from hamu_core.runs.ledger import Ledger, parse_requests, run_ledger
from hamu_core.models.architectures import ModelConfig
from hamu_core.models.training import TrainConfig
from hamu_ui.ledger_figures import ledger_figure
from hamu_ui.session import StudioSession

TEXT_KEY = "requests.text"
EXAMPLE = "class 3\nrandom 0.05"
DEFAULT_STEPS = DEFAULTS.max_steps  # per request, as on Unlearn; the stop rules usually end a run before


def init_text() -> None:
    """Start the text area with an example the first time the page is opened."""
    st.session_state.setdefault(TEXT_KEY, EXAMPLE)


def add_forget_set(session: StudioSession) -> None:
    """Append the current forget set as an ``ids`` line (a button callback, so it runs before the text area)."""
    line = "ids " + " ".join(str(int(i)) for i in session.forget_ids)
    st.session_state[TEXT_KEY] = st.session_state.get(TEXT_KEY, "").rstrip("\n") + "\n" + line


@st.cache_data(show_spinner=False, max_entries=8)
def cached_ledger(source: str, text: str, model_config: ModelConfig, train_config: TrainConfig, method: str,
                  settings: tuple, seed: int, max_steps: int, stop_when: tuple, _data: LabelledData) -> Ledger:
    """``run_ledger`` on the parsed text, with a progress bar that lives and dies inside this call."""
    bar = st.progress(0.0, text="Answering the requests")
    ledger = run_ledger(parse_requests(text), dataset=_data, model_config=model_config, train_config=train_config,
                        method=method, settings=dict(settings), seed=seed, max_steps=max_steps, stop_when=stop_when,
                        progress=lambda fraction, message: bar.progress(min(fraction, 1.0), text=message))
    bar.empty()
    return ledger


def run(session: StudioSession, source: str, data: LabelledData, text: str, max_steps: int) -> None:
    """Answer the requests with the session's recipe, method and stop rules; keep the ledger in the session."""
    settings = tuple(sorted(session.method_settings(session.method).items()))
    try:
        session.ledger = cached_ledger(source, text, session.model_config, session.train_config, session.method,
                                       settings, session.seed, max_steps, tuple(session.stop_when), data)
    except ValueError as err:
        st.error(f"The requests cannot be answered: {err}")


def show(ledger: Ledger) -> None:
    """The ledger's table, its chart, and the time spent unlearning against retraining each time."""
    table = ledger.table()
    st.markdown(f"**{len(table)} requests answered** with {ledger.settings['method'].upper()}: "
                f"{int(table['forgotten_size'].iloc[-1])} samples forgotten in all.")
    st.dataframe(table, hide_index=True, key="requests.table", column_config={
        name: st.column_config.NumberColumn(format="%.3f") for name in table.columns if table[name].dtype.kind == "f"})
    st.plotly_chart(ledger_figure(table), key="requests.chart")
    for k, row in enumerate(table.itertuples(), 1):
        if pd.isna(row.retrain_seconds):
            retrain = "its reference came from the disk cache (retraining not timed)"
        elif row.steps == 0:
            retrain = (f"retraining took {row.retrain_seconds:.2f} s, but no unlearning step was needed, so there is "
                       "no speed-up to claim")
        else:
            retrain = (f"retraining took {row.retrain_seconds:.2f} s "
                       f"({row.retrain_seconds / row.unlearn_seconds:.1f}× as long)")
        st.caption(f"Request {k} ({row.request}): unlearning took {row.unlearn_seconds:.2f} s; {retrain}.")
