"""Forget set: see every sample on a map of the model's features, pick what to forget, see how hard it is."""

import streamlit as st

from hamu_core.data.selection import describe_selection
from hamu_core.evaluation.embedding import annotate
from hamu_core.evaluation.hardness import hardness_reading
from hamu_ui import cache, forget_set, widgets, workspace
from hamu_ui.figures import COLOUR_BY, class_mix_figure, embedding_figure, hardness_histogram

ACTIONS = {"add": "add to forget set", "remove": "remove from it", "look": "just look"}

with widgets.page("Forget set") as (session, _):
    ws = workspace.required_workspace(session)
    data, model = ws.data, ws.original

    controls = st.columns([1.3, 1.3, 1.4])
    projection = controls[0].radio("Map", list(cache.MAP_CHOICES), format_func=cache.MAP_CHOICES.get,
                                   key="forget.map", horizontal=True,
                                   help="A 2-D map of the model's last hidden layer: nearby points look alike to "
                                        "the model.")
    colour_by = controls[1].radio("Colour by", COLOUR_BY, key="forget.colour", horizontal=True,
                                  help="hardness: cos θ between a sample's gradient and the retain gradient.")
    action = controls[2].radio("Lasso, box or click to…", list(ACTIONS), format_func=ACTIONS.get, key="forget.action",
                               horizontal=True)
    frame, shown = workspace.feature_map(ws, projection, session.seed), projection
    if frame is None:  # t-SNE or UMAP still being computed in the background
        frame, shown = workspace.feature_map(ws, "pca", session.seed), "pca"
    focus = forget_set.apply_chart_selection(session, data, action, frame)
    session.focus_id = focus if focus is not None else session.focus_id

    hard = cache.hardness(data, model, session.forget_ids, session.seed)
    annotated = annotate(frame, session.forget_ids, hard.samples.set_index("id")[["kappa", "cos"]])
    drawn = annotated[annotated["drawn"]]
    chart_col, side_col = st.columns([3, 2])
    with chart_col:
        note = forget_set.map_note(frame, shown, len(data.ids))
        if note:
            st.caption(note)
        figure = embedding_figure(drawn, colour_by, forget_set.hover_text(data, drawn))
        st.plotly_chart(figure, key=forget_set.CHART_KEY, on_select="rerun", selection_mode=("points", "box", "lasso"))
        st.caption("Black outline: in the forget set. Faint: test samples (never forgotten). "
                   "Drag to lasso; the toolbar switches to box select.")
    with side_col:
        summary = describe_selection(data, session.forget_ids)
        st.markdown(f"### Forget set: {summary.size} samples")
        retrain = workspace.start_retrain(session, ws)
        workspace.job_note(retrain, f"{workspace.RETRAIN_TEXT}, in the background")
        workspace.job_outcome(retrain, "Retrain reference ready: Unlearn aims at it.",
                              "The retrain reference could not be trained")
        widgets.show_notices(session)
        with st.expander("Choose by rule: a class, at random, ρ-mixing, the hardest, or ids", expanded=not summary.size):
            forget_set.selection_tools(session, data, hard)
        if summary.size:
            st.markdown(f"**Aggregate hardness** κ = {hard.kappa:.3g}, cos θ_rf = {hard.cos:.2f}. "
                        f"{hardness_reading(hard.cos)}")
            st.plotly_chart(class_mix_figure(summary.class_mix), key="forget.mix")
            forget_rows = hard.samples[hard.samples["id"].isin(session.forget_ids)]
            st.plotly_chart(hardness_histogram(forget_rows["cos"].to_numpy()), key="forget.histogram")
        if session.focus_id is not None:
            widgets.show_samples(data, [session.focus_id], [f"selected: id {session.focus_id}"])

    if summary.size:
        st.subheader("Nearest retain neighbours")
        neighbours = cache.retain_neighbours(data, model, session.forget_ids, 5).set_index("id")
        default = session.focus_id if session.focus_id in neighbours.index else neighbours.index[0]
        chosen = st.selectbox("Forget sample", neighbours.index, index=list(neighbours.index).index(default),
                              key="forget.neighbours_of", help="Retain samples the model sees as most alike: "
                              "forgetting the chosen sample tends to drag these along.")
        row = neighbours.loc[chosen]
        widgets.show_samples(data, [chosen, *row["neighbour_ids"]],
                             [f"forget id {chosen}"] + [f"id {i} · cos {c:.2f}" for i, c in
                                                        zip(row["neighbour_ids"], row["neighbour_cos"])])
