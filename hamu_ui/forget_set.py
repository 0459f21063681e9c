"""The Forget set page's pieces: applying chart selections and the rule-based selection tools.

A chart selection is read from ``st.session_state`` before the chart is drawn, so the
chart a user sees already includes what they just selected. Every selection rule either
replaces the forget set or adds to it; a rule that cannot be applied says why in an
``st.error`` and leaves the forget set as it was. A list of ids is taken as people write
it: its training ids are used and the others (test or unknown ids) named in a notice.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from hamu_core.data.labelled import LabelledData
from hamu_core.data.selection import select_class, select_hardest, select_listed, select_random, select_rho_mix
from hamu_core.evaluation.hardness import Hardness
from hamu_ui.figures import selected_ids, selection_regions
from hamu_ui.session import StudioSession

CHART_KEY = "forget.chart"


def apply_chart_selection(session: StudioSession, data: LabelledData, action: str, frame: pd.DataFrame) -> int | None:
    """Apply the embedding chart's selection once (add, remove or just look); returns the first selected id.

    Read from ``st.session_state`` before the chart is drawn, so the chart already shows
    the new forget set. ``frame`` is the map of every mapped sample: a box or lasso takes
    every sample of it inside the region, drawn or not. A selection is applied once: the
    same event seen again is ignored (even on another map, where its region would cover
    other samples), and an empty selection re-arms it. Test samples are never forgotten
    and are skipped.
    """
    event = st.session_state.get(CHART_KEY)
    ids = selected_ids(event, frame)
    if len(ids) == 0:
        session.applied_selection = ()
        return None
    signature = (action, tuple(selected_ids(event).tolist()), selection_regions(event))
    if signature != session.applied_selection:
        session.applied_selection = signature
        trainable = ids[np.isin(ids, data.train_ids)]
        if action == "add":
            session.set_forget(np.union1d(session.forget_ids, trainable))
        elif action == "remove":
            session.set_forget(np.setdiff1d(session.forget_ids, trainable))
    return int(ids[0])


MAP_NAMES = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}


def map_note(frame: pd.DataFrame, method: str, n_samples: int) -> str | None:
    """What the map leaves out, in words: None when every sample is mapped and drawn.

    ``frame`` is an ``embedding.embed`` frame (its ``drawn`` column marks the points drawn),
    ``n_samples`` the dataset's size.
    """
    mapped, drawn = len(frame), int(frame["drawn"].sum())
    if drawn == mapped == n_samples:
        return None
    if mapped == n_samples:
        return (f"The map draws {drawn:,} of {n_samples:,} samples (a seeded subsample keeps the chart quick). "
                "A lasso or box still selects every sample inside it, drawn or not.")
    return (f"This {MAP_NAMES.get(method, method)} map holds {mapped:,} of {n_samples:,} samples (a seeded "
            "subsample): mapping them all would take minutes, so a lasso or box selects among these only. "
            "The PCA map holds every sample.")


SHADES = " ░▒▓█"  # darkest last: a pixel's intensity picks one, doubled so cells look square
GLYPH_ROWS = 10  # larger images are box-averaged down to this many rows, keeping hover text small


def image_glyphs(pixels: np.ndarray, max_rows: int = GLYPH_ROWS) -> str:
    """An (h, w) uint8 image drawn in shade characters, one ``<br>`` per row.

    Plotly's hover boxes cannot hold pictures, but they can hold text in a monospace font:
    this lets a user see the digit or garment under the cursor while lassoing, not only its id.
    """
    pixels = pixels.mean(axis=2) if pixels.ndim == 3 else pixels  # colour images are drawn by brightness
    h, w = pixels.shape
    factor = max(1, -(-h // max_rows))  # ceil(h / max_rows)
    rows, cols = h // factor, w // factor
    blocks = pixels[:rows * factor, :cols * factor].reshape(rows, factor, cols, factor).mean(axis=(1, 3))
    levels = np.minimum((blocks / 256 * len(SHADES)).astype(int), len(SHADES) - 1)
    return "<br>".join("".join(SHADES[v] * 2 for v in row) for row in levels)


def hover_text(data: LabelledData, frame: pd.DataFrame) -> pd.Series | None:
    """Hover text showing the sample itself: its words for text, its picture in shade characters for images."""
    if data.texts is None and data.images is None:
        return None
    head = "id " + frame["id"].astype(str) + " · " + frame["class_name"].astype(str) + "<br>"
    rows = data.rows(frame["id"].to_numpy())
    if data.texts is not None:
        texts = np.asarray(data.texts, dtype=object)[rows]
        return head + [t[:90] + ("…" if len(t) > 90 else "") for t in texts]
    return head + [image_glyphs(data.images[row]) for row in rows]


def selection_tools(session: StudioSession, data: LabelledData, hardness: Hardness) -> None:
    """Rule-based ways to choose the forget set; each either replaces it or adds to it."""
    by_class, random, mix, hardest, listed = st.tabs(["Class", "Random", "ρ-mix", "Hardest k", "Ids"])
    with by_class:
        cls = st.selectbox("Class", data.classes, key="forget.class")
        _use(session, "class", lambda: select_class(data, cls))
    with random:
        fraction = st.slider("Fraction of the training set", 0.01, 0.5, 0.05, key="forget.fraction")
        _use(session, "random", lambda: select_random(data, fraction, seed=session.seed))
    with mix:
        mix_class = st.selectbox("Class", data.classes, key="forget.mix_class")
        rho = st.slider("ρ (share swapped for other classes: harder)", 0.0, 1.0, 0.5, 0.05, key="forget.rho")
        _use(session, "mix", lambda: select_rho_mix(data, mix_class, rho, seed=session.seed))
    with hardest:
        candidates = hardness.samples[~hardness.samples["id"].isin(session.forget_ids)]
        k = st.number_input("k", 1, max(1, len(candidates)), min(20, max(1, len(candidates))), key="forget.k",
                            help="The k training samples whose gradients align most with the retain gradient.")
        _use(session, "hardest", lambda: select_hardest(candidates.set_index("id")["cos"], int(k)))
    with listed:
        file = st.file_uploader("A CSV or text file of sample ids", type=["csv", "txt"], key="forget.ids_file")
        typed = st.text_input("…or type ids", key="forget.ids_text", placeholder="e.g. 3, 17, 42")
        source = file.getvalue().decode("utf-8", "replace") if file is not None else typed
        _use(session, "ids", lambda: listed_training_ids(session, data, source))
    if st.button("Clear the forget set", key="forget.clear", disabled=not len(session.forget_ids)):
        session.set_forget([])
        st.rerun()


def listed_training_ids(session: StudioSession, data: LabelledData, text: str) -> np.ndarray:
    """The training ids of a typed or uploaded list; the ids skipped (test, unknown) are named in a notice."""
    listed = select_listed(data, parse_ids(text))
    if listed.skipped:
        session.notify("warning", f"Took the {len(listed.ids)} training ids of the list and "
                       f"{listed.skipped_note()}.")
    return listed.ids


def parse_ids(text: str) -> np.ndarray:
    """Integer ids from free text (commas, spaces, new lines; a header word is skipped); ValueError if none."""
    tokens = [t for t in text.replace(",", " ").replace(";", " ").split() if t]
    ids = [int(t) for t in tokens if t.lstrip("-").isdigit()]
    if not ids:
        raise ValueError("no sample ids found: give whole numbers separated by commas, spaces or new lines")
    return np.asarray(ids, dtype=np.int64)


def _use(session: StudioSession, name: str, choose) -> None:
    """Two buttons, Replace and Add, applying a selection rule; its ValueError is shown, the set kept."""
    replace, add = st.columns(2)
    pressed = [mode for mode, column in (("replace", replace), ("add", add))
               if column.button(f"{mode.capitalize()} forget set", key=f"forget.{name}.{mode}")]
    if not pressed:
        return
    try:
        ids = choose()
    except ValueError as err:
        st.error(f"That selection cannot be made: {err}")
        return
    session.set_forget(ids if pressed[0] == "replace" else np.union1d(session.forget_ids, ids))
    st.rerun()
