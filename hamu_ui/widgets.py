"""Reusable pieces of the Studio's pages; each draws a little and returns a value.

Long work (loading data, training) shows a progress bar, and every failure a user can
cause is caught here and shown with ``st.error`` in plain words, the session untouched:
a page gets ``None`` back and stops drawing what depends on it.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import streamlit as st
from PIL import Image

from hamu_core.rules.baselines import CONFLICT_TESTS
from hamu_core.data.builtin import DatasetUnavailable
from hamu_core.data.labelled import DataError, LabelledData
from hamu_core.rules.hamu import INFEASIBLE_STEPS, MODES, SPLITS
from hamu_core.rules.registry import METHODS
from hamu_core.models.training import Progress
from hamu_ui import cache, runs
from hamu_ui.session import StudioSession, Upload

CHOICES = {"mode": MODES, "split": SPLITS, "conflict_test": CONFLICT_TESTS, "infeasible_step": INFEASIBLE_STEPS}
FIXED_FIELDS = ("variant",)  # set by the method's name, never by a widget
FIELD_HELP = {  # field → (label, one-line help); 0 turns an optional number off
    "lr": ("Learning rate", "Step size. HAMU: the radius is R = lr·‖g‖. Baselines: θ ← θ − lr·u."),
    "constraint": ("Constraint B", "The guarantee: each step improves the guarded loss by at least B (first order)."),
    "radius": ("Fixed radius R", "Largest step allowed. 0: the radius follows the gradient, R = lr·‖g‖."),
    "mode": ("Mode", "per_tensor: one problem per weight tensor (paper default). full: one global problem."),
    "split": ("Split of B", "How per-tensor mode shares B across tensors."),
    "infeasible_step": ("Infeasible steps", "When no step within the radius can gain B: cap the step at the radius "
                        "(the largest gain inside it), or take the exact shortest step that gains B, however long."),
    "clip_norm": ("Clip gradients at", "Clip the retain and forget gradients separately to this norm. 0: no clipping."),
    "stop_on_infeasible": ("Refuse infeasible steps", "The rule refuses (weights unchanged) a step when no step "
                           "within the radius can meet B. The run's own stop rules sit beside the method."),
    "stop_on_unavoidable": ("Refuse steps that must degrade", "The rule refuses (weights unchanged) a step once "
                            "meeting B must worsen the protected loss (even the best step inside the radius does: margin < 0)."),
    "alpha": ("α", "NegGrad+: weight on retain descent (1 − α on forget ascent). SCRUB: weight of the retain KL term."),
    "gamma": ("γ", "SCRUB: weight of the retain cross-entropy term."),
    "conflict_test": ("Conflict test",
                      "principled: project when the gradients truly conflict; reference: the original code's test."),
    "tau": ("Cap on the direction", "Largest norm of the update direction. 0: no cap."),
}


@dataclass(frozen=True, eq=False)
class Workspace:
    """The loaded dataset and trained original model a page works on (both read-only)."""

    source: str  # the session's data source, the first part of every cache key
    data: LabelledData
    original: cache.TrainedModel


@contextlib.contextmanager
def progress_bar(text: str) -> Iterator[Progress]:
    """A progress callback whose bar appears on its first report and disappears afterwards."""
    slot = st.empty()

    def report(fraction: float, message: str) -> None:
        slot.progress(min(max(fraction, 0.0), 1.0), text=f"{text}: {message}")

    try:
        yield report
    finally:
        slot.empty()


def load_data(session: StudioSession) -> LabelledData | None:
    """The session's dataset, or None after an ``st.error`` saying why it cannot be loaded."""
    try:
        if session.upload is not None:
            return cache.uploaded_dataset(session.upload.digest, session.upload)
        return cache.builtin_dataset(session.dataset)
    except (DataError, DatasetUnavailable, KeyError) as err:
        st.error(f"The dataset {session.dataset!r} cannot be loaded: {err}")
        return None


def load_workspace(session: StudioSession) -> Workspace | None:
    """Data plus the trained original model (trained here with a progress bar when not cached)."""
    data = load_data(session)
    if data is None:
        return None
    try:
        with progress_bar("Training the original model") as report:
            original = cache.trained_model(session.data_source, data, session.model_config, session.train_config,
                                           "original", progress=report)
    except ValueError as err:
        st.error(f"The {session.model_config.arch.upper()} cannot be trained on {session.dataset!r}: {err}")
        return None
    return Workspace(session.data_source, data, original)


def workspace_with_forget_set(session: StudioSession) -> Workspace:
    """The workspace for pages that need a forget set; otherwise says what to do first and stops the page."""
    ws = load_workspace(session)
    if ws is not None and not len(session.forget_ids):
        st.info("Choose what to forget first: open **Forget set** in the sidebar.")
    if ws is None or not len(session.forget_ids):
        st.stop()
    return ws


def retrain_reference(session: StudioSession, ws: Workspace) -> cache.TrainedModel | None:
    """The model retrained without the forget set (the gold standard), or None without a forget set."""
    if len(session.forget_ids) == 0:
        return None
    try:
        with progress_bar("Training the retrain reference (same recipe, retain data only)") as report:
            return cache.trained_model(ws.source, ws.data, session.model_config, session.train_config, "retrain",
                                       session.forget_ids, progress=report)
    except ValueError as err:
        st.error(f"The retrain reference cannot be trained: {err}")
        return None


def show_status(slot, session: StudioSession) -> None:
    """Write what is loaded right now into ``slot`` (a sidebar placeholder; the stepper refreshes it)."""
    trained = cache.is_trained(session.data_source, session.model_config, session.train_config)
    model = f"{session.model_config.arch.upper()}, {'trained' if trained else 'not trained yet'}"
    run = f"{session.live.method.upper()}, {len(session.live.history)} steps" if session.live else "no run yet"
    slot.markdown(f"**Loaded** · data: **{session.dataset}** · model: **{model}** · "
                  f"forget set: **{len(session.forget_ids)} samples** · run: **{run}**")


@contextlib.contextmanager
def status_line(session: StudioSession) -> Iterator:
    """The sidebar line every page shows: written first, and again once the page has changed things.

    Written first because ``st.stop()`` discards anything drawn after it. Yields the
    sidebar placeholder, so a fragment can refresh it without a full rerun. Every page
    opens with it, so it is also where the run named in the URL is reopened after a reload
    (``runs.sync_url``) and where the URL is made to name the live run again at the end.
    """
    slot = st.sidebar.empty()
    runs.sync_url(session)
    show_status(slot, session)
    yield slot
    show_status(slot, session)
    runs.write_url(session)


def settings_form(method: str, current: dict) -> dict:
    """One widget per setting of ``method``'s rule, starting from ``current``; the chosen values by field name."""
    values = {}
    for spec in dataclasses.fields(METHODS[method]):
        if spec.name in FIXED_FIELDS:
            continue
        label, help_text = FIELD_HELP[spec.name]
        value = current.get(spec.name, spec.default)
        key = f"unlearn.{method}.{spec.name}"
        if spec.name in CHOICES:
            options = CHOICES[spec.name]
            values[spec.name] = st.selectbox(label, options, index=options.index(value), key=key, help=help_text)
        elif isinstance(spec.default, bool):
            values[spec.name] = st.checkbox(label, value=bool(value), key=key, help=help_text)
        else:
            number = st.number_input(label, min_value=0.0, value=float(value or 0.0), format="%g",
                                     step=_step(value), key=key, help=help_text)
            values[spec.name] = None if "None" in str(spec.type) and number == 0 else number
    return values


def _step(value) -> float:
    """A widget increment of one tenth of the value's order of magnitude (0.01 for 0 or None)."""
    if not value:
        return 0.01
    return float(10 ** (np.floor(np.log10(abs(value))) - 1))


def sample_image(data: LabelledData, sample_id: int, size: int = 96) -> Image.Image | None:
    """A nearest-neighbour enlarged thumbnail of an image sample (None for other kinds of data)."""
    if data.images is None:
        return None
    pixels = data.images[data.rows([sample_id])[0]]
    return Image.fromarray(pixels).resize((size, size), Image.NEAREST)


def show_samples(data: LabelledData, ids, captions: list[str]) -> None:
    """Samples side by side: thumbnails for images, the text for text data, feature values otherwise."""
    ids = list(ids)
    if not ids:
        return
    for column, sample_id, caption in zip(st.columns(len(ids)), ids, captions):
        with column:
            image = sample_image(data, sample_id)
            if image is not None:
                st.image(image, caption=caption)
            elif data.texts is not None:
                st.caption(caption)
                st.write(data.texts[data.rows([sample_id])[0]])
            else:
                st.caption(caption)
                st.dataframe(data.X[data.rows([sample_id])[0]].reshape(-1)[:20], height=200)


def show_notices(session: StudioSession) -> None:
    """Show and forget the messages queued by callbacks (errors, warnings, information)."""
    draw = {"error": st.error, "warning": st.warning, "info": st.info, "success": st.success}
    for kind, text in session.notices:
        draw[kind](text)
    session.notices.clear()


def choose_data(session: StudioSession) -> None:
    """A built-in dataset picker and an upload box; a rejected upload leaves the session as it was."""
    available = cache.dataset_availability()
    names = list(available)
    current = session.dataset if session.upload is None and session.dataset in names else names[0]

    def on_builtin() -> None:
        name = st.session_state["setup.dataset"]
        if available[name] is None:
            session.choose_dataset(name)
        else:
            session.notify("error", f"{name} is not available here: {available[name]}")

    def on_upload() -> None:
        file = st.session_state["setup.upload"]
        if file is None:
            return
        upload = Upload(file.name, file.getvalue())
        try:
            cache.uploaded_dataset(upload.digest, upload)
        except DataError as err:
            session.notify("error", f"{file.name} cannot be used, so the data stay as they were. {err}")
        else:
            session.choose_dataset(file.name, upload)

    st.selectbox("Built-in dataset", names, index=names.index(current), key="setup.dataset", on_change=on_builtin,
                 format_func=lambda n: n if available[n] is None else f"{n} (not installed)",
                 help="digits: 1,797 handwritten 8×8 digits, bundled with scikit-learn; ready at once.")
    st.file_uploader("…or upload your own", type=["csv", "npz", "zip"], key="setup.upload", on_change=on_upload,
                     help="CSV with a 'label' column and numeric features; NPZ with arrays X and y; "
                          "or a zip with one folder of images per class.")
    if session.upload is not None:
        st.caption(f"Using the uploaded file **{session.upload.name}**; pick a built-in dataset to switch back.")
