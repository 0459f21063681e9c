"""The Requests page's pieces: write deletion requests, answer them in order, show the ledger.

Requests are lines in the CLI's own words (``hamu_core.runs.ledger.parse_requests``), so a list
written here can be saved as a file for ``python -m hamu_core requests``. The ledger is
kept per (data, recipe, text, method, settings, seed, steps, stop rules) by ``cache.ledger``.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from hamu_core.config import DEFAULTS
from hamu_core.data.labelled import LabelledData
from hamu_core.runs.ledger import Ledger
from hamu_ui import cache
from hamu_ui.ledger_figures import ledger_figure
from hamu_ui.session import StudioSession
from hamu_ui.workspace import progress_bar

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


def run(session: StudioSession, data: LabelledData, text: str, max_steps: int) -> None:
    """Answer the requests with the session's recipe, method and stop rules; keep the ledger in the session."""
    try:
        with progress_bar("Answering the requests") as report:
            session.ledger = cache.ledger(data, text, session.model_config, session.train_config, session.method,
                                          session.method_settings(session.method), session.seed, max_steps,
                                          tuple(session.stop_when), progress=report)
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
