"""Compare: several methods (and HAMU over a range of constraints) on one forget set, closest to retraining first."""

import streamlit as st

from hamu_ui import compare_view, grow_view, widgets, workspace

with widgets.page("Compare") as (session, _):
    ws = workspace.workspace_with_forget_set(session)
    reference = workspace.retrain_reference(session, ws)
    st.caption("Every method starts from the same original model, sees the same forget set and the same retain "
               "batch at every step, and stops by the same rules, so the runs differ only by the method.")

    specs = compare_view.choose_specs(session)
    steps = st.number_input("Steps per method", 1, 1000, compare_view.DEFAULT_STEPS, key="compare.steps",
                            help="Each method takes this many steps, fewer only if a stop rule below ends it "
                                 "or it fails.")
    stop_when = compare_view.choose_stop(reference is not None)
    if st.button("Run the comparison", key="compare.run", type="primary", disabled=not specs):
        compare_view.run(session, ws, specs, int(steps), stop_when, reference)
    grow_view.section(session, ws)
    result = compare_view.stored(session, ws)
    if result is None:
        st.stop()
    compare_view.show(session, ws, result, reference)
