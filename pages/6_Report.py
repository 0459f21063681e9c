"""Report: the verdict in plain words, the key numbers beside the retrain reference's, downloads, stored runs."""

import streamlit as st

from hamu_ui import report_view, widgets, workspace

with widgets.page("Report") as (session, _):
    widgets.show_notices(session)
    ws = workspace.load_workspace(session)
    if ws is not None and session.live is not None and report_view.has_outcome(session):
        report_view.show_report(session, ws, workspace.retrain_reference(session, ws))
    else:
        st.info("Nothing to report yet: take a few steps on **Unlearn**, or open a stored run below.")
    report_view.ledger_section(session)
    st.divider()
    report_view.run_list(session)
