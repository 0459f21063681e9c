"""Requests: deletion requests answered one after another, each against retraining without everything so far."""

import streamlit as st

from hamu_ui import requests_view, widgets, workspace

with widgets.page("Requests") as (session, _):
    ws = workspace.required_workspace(session)
    st.caption("A data-protection officer answers requests in turn: each is unlearned on the model the last one "
               "left, and compared with the model retrained without every set forgotten so far.")
    requests_view.init_text()
    st.button("Add the current forget set as a request", key="requests.add", disabled=not len(session.forget_ids),
              on_click=requests_view.add_forget_set, args=(session,))
    text = st.text_area("Requests, one per line", key=requests_view.TEXT_KEY, height=140,
                        help="The command line's words: class CLASS · random FRACTION [SEED] · "
                             "rho CLASS RHO [SEED] · ids ID ID ... Lines starting with # are ignored.")
    steps = st.number_input("Most steps per request", 1, 1000, requests_view.DEFAULT_STEPS, key="requests.steps",
                            help="The Unlearn page's method, settings and stop rules end each run, usually earlier.")
    if st.button("Answer the requests", key="requests.run", type="primary"):
        requests_view.run(session, ws.data, text, int(steps))
    if session.ledger is None:
        st.info("Write the requests above and press **Answer the requests**.")
        st.stop()
    requests_view.show(session.ledger)
