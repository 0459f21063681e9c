"""Unlearn: choose a method, step it forward, and watch forgetting against what it costs."""

import streamlit as st

from hamu_core.config import DEFAULTS
from hamu_core.methods import METHOD_HELP, METHODS
from hamu_ui import cache, runs, stepper, widgets
from hamu_ui.session import get_session

PROMINENT = ("stop_on_unavoidable",)  # settings shown beside the method, not folded away

session = get_session()
st.title("Unlearn")
with widgets.status_line(session) as status:
    ws = widgets.workspace_with_forget_set(session)
    reference = widgets.retrain_reference(session, ws)

    method_col, settings_col = st.columns([1, 2])
    with method_col:
        methods = list(METHODS)
        session.method = st.selectbox("Method", methods, index=methods.index(session.method), key="unlearn.method",
                                      format_func=str.upper, help="HAMU-Q, HAMU-U and the baselines they are compared with.")
        st.caption(METHOD_HELP[session.method])
    current = session.method_settings(session.method)
    with settings_col, st.expander("Settings (changing one starts a fresh run)", expanded=False):
        chosen = widgets.settings_form(session.method, current, skip=PROMINENT)
    chosen |= widgets.settings_form(session.method, current, only=PROMINENT)
    session.settings[session.method] = chosen
    if stepper.live_run(session, ws) is None:
        st.stop()
    reference_point = None if reference is None else cache.model_point(
        ws.source, reference.key, session.forget_key, session.seed, ws.data, reference.model, session.forget_ids)

    def panel(playing_when_drawn: bool) -> None:
        """The stepper; reruns alone on every click, and every few tenths of a second while playing."""
        if session.playing != playing_when_drawn:
            st.rerun()  # Play/Pause changes the fragment's timer, which only a full rerun can do
        if session.playing:
            stepper.act(session, "step", DEFAULTS.play_steps)
        stepper.buttons(session)
        widgets.show_notices(session)
        stepper.charts(session, reference_point)
        widgets.show_status(status, session)
        runs.write_url(session)

    st.fragment(run_every=DEFAULTS.play_interval_s if session.playing else None)(panel)(session.playing)
