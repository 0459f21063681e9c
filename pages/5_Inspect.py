"""Inspect: what unlearning changed, original model against the current run, the retrain reference beside both."""

import streamlit as st

from hamu_ui import durability_view, inspect_view, privacy_view, widgets, workspace

with widgets.page("Inspect") as (session, _):
    ws = workspace.workspace_with_forget_set(session)
    reference = workspace.retrain_reference(session, ws)
    models = inspect_view.models(session, ws, reference)
    if "current" not in models:
        st.info("No unlearning run yet: run **Unlearn** first to see what changes. "
                "Until then the views below show the original model"
                + (" beside the retrain reference." if reference is not None else "."))
    else:
        st.caption(f"Current model: {session.live.method.upper()} after {len(session.live.history)} steps "
                   f"(run `{session.live.run_id}`). Every number stands beside the retrain reference's, the model "
                   "trained without the forget set: the target of unlearning." + inspect_view.reported_note(session))
    try:
        outputs = inspect_view.outputs(session, ws, models)
    except ValueError as err:
        st.error(f"The models cannot be inspected on this forget set: {err}")
        st.stop()

    st.subheader("Before and after: how the model sees the data")
    inspect_view.twin_embedding(session, ws, models)

    st.subheader("Accuracy per class")
    inspect_view.class_bars(ws, outputs)

    st.subheader("Membership attack: can the forget set still be told apart from unseen data?")
    inspect_view.attack_view(ws, outputs)

    st.subheader("Collateral damage: retain samples that look like the forget set")
    inspect_view.collateral(session, ws, outputs)

    st.subheader("Privacy audit: could someone still tell these samples were trained on?")
    privacy_view.show(session, ws, reference)

    st.subheader("Durability: does the forgetting survive relearning and quantization?")
    durability_view.show(session, ws, reference)
