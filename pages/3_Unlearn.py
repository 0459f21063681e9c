"""Unlearn: choose a method, step it forward, and watch forgetting against what it costs."""

import streamlit as st

from hamu_core.config import DEFAULTS
from hamu_core.rules.registry import METHOD_HELP, METHODS
from hamu_ui import runs, stepper, teaching_view, widgets, workspace

with widgets.page("Unlearn") as (session, status):
    ws = workspace.workspace_with_forget_set(session)

    method_col, settings_col = st.columns([1, 2])
    with method_col:
        methods = list(METHODS)
        session.method = st.selectbox("Method", methods, index=methods.index(session.method), key="unlearn.method",
                                      format_func=str.upper, help="HAMU-Q, HAMU-U and the baselines they are compared with.")
        st.caption(METHOD_HELP[session.method])
    current = session.method_settings(session.method)
    with settings_col:
        with st.expander("Settings (changing one starts a fresh run)", expanded=False):
            session.settings[session.method] = widgets.settings_form(session.method, current)
        stepper.stop_choices(session)
        stepper.record_fields(session)
    reference = workspace.retrain_reference(session, ws)  # started by the Forget set page; its progress shows here
    if stepper.live_run(session, ws, None if reference is None else reference.model) is None:
        st.stop()

    def panel(playing_when_drawn: bool) -> None:
        """The stepper; reruns alone on every click, on every tick of Play, and after every slice of Run N."""
        if session.playing != playing_when_drawn:
            st.rerun()  # Play and Pause change the fragment's timer, which only a full rerun can do
        controls = st.container()  # filled after the slice, so the buttons show where it ended
        if session.active:
            stepper.tick(session)
            if session.playing != playing_when_drawn:
                st.rerun()  # a stop rule ended Play: drop the timer (the notices wait for the full rerun)
        with controls:
            stepper.buttons(session)
        widgets.show_notices(session)
        stepper.charts(session)
        widgets.show_status(status, session)
        runs.write_url(session)
        teaching_view.show(session)
        if session.running is not None:
            stepper.again()

    st.fragment(run_every=DEFAULTS.play_interval_s if session.playing else None)(panel)(session.playing)
