"""Reusable pieces of the Studio's pages; each draws a little and returns a value.

Every failure a user can cause is caught here and shown with ``st.error`` in plain words,
the session untouched. Loading data and models lives in ``hamu_ui.workspace``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import streamlit as st
from PIL import Image

from hamu_core.data.builtin import DatasetUnavailable
from hamu_core.data.labelled import DataError, LabelledData
from hamu_core.data.uploads import display_name
from hamu_core.rules.registry import METHODS
from hamu_core.rules.setting import declared
from hamu_ui import boundary, cache, runs
from hamu_ui.session import StudioSession, Upload, get_session
from hamu_ui.workspace import session_dataset


def show_status(slot, session: StudioSession) -> None:
    """Write what is loaded right now into ``slot`` (a sidebar placeholder; the stepper refreshes it)."""
    if session.own_model is not None:
        model = f"your own ({session.own_model.name})"
    else:
        try:
            trained = cache.is_trained(session_dataset(session), session.model_config, session.train_config,
                                       session.device)
        except (DataError, DatasetUnavailable, KeyError):
            trained = False
        model = f"{session.model_config.arch.upper()}, {'trained' if trained else 'not trained yet'}"
    run = f"{session.live.method.upper()}, {len(session.live.history)} steps" if session.live else "no run yet"
    slot.markdown(f"**Loaded** · data: **{session.dataset}** · model: **{model}** · "
                  f"forget set: **{len(session.forget_ids)} samples** · run: **{run}**")


def warn_if_guessing(accuracy: float, n_classes: int) -> None:
    """A warning when a model's test accuracy is no better than guessing: every reading built on it is moot."""
    if accuracy <= 1.0 / n_classes + 0.05:
        st.warning(f"This model's test accuracy ({accuracy:.1%}) is no better than guessing among {n_classes} "
                   f"classes ({1 / n_classes:.1%}): it has learned nothing to forget, so unlearning it says little. "
                   "Check the model file, the data, or the training recipe.")


@contextlib.contextmanager
def page(title: str, name: str | None = None) -> Iterator[tuple[StudioSession, object]]:
    """Every page's frame, opened the same way: the session, the title, the error boundary, the status line.

    Yields (session, the sidebar status placeholder). ``name`` is the page's name in an
    error message when it differs from its title (Setup's title is the Studio's name).
    """
    session = get_session()
    st.title(title)
    with boundary.page_boundary(f"The {name or title} page"), status_line(session) as slot:
        yield session, slot


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
    """One widget per declared setting of ``method``'s rule, starting from ``current``; the values by field name.

    Labels, help, bounds and choices all come from the rule's field declarations
    (``hamu_core.rules.setting``), so the form can never allow what the rule refuses.
    """
    values = {}
    for name, (spec_field, spec) in declared(METHODS[method]).items():
        value = current.get(name, spec_field.default)
        key = f"unlearn.{method}.{name}"
        if spec.choices:
            options = list(spec.choices)
            values[name] = st.selectbox(spec.label, options, index=options.index(value), key=key, help=spec.help)
        elif spec.flag:
            values[name] = st.checkbox(spec.label, value=bool(value), key=key, help=spec.help)
        else:
            number = st.number_input(spec.label, min_value=float(spec.low or 0.0),
                                     max_value=None if spec.high is None else float(spec.high),
                                     value=float(value or 0.0), format="%g", step=_step(value), key=key,
                                     help=spec.help)
            values[name] = None if spec.optional and number == 0 else number
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
            session.set_aside("the data changed")
            session.choose_dataset(name)
        else:
            session.notify("error", f"{name} is not available here: {available[name]}")

    def on_upload() -> None:
        file = st.session_state["setup.upload"]
        if file is None:
            return
        upload = Upload(display_name(file.name), file.getvalue())  # the name is shown, never used as a path
        try:
            cache.uploaded_dataset(upload)
        except DataError as err:
            session.notify("error", f"{upload.name} cannot be used, so the data stay as they were. {err}")
        except Exception as err:  # noqa: BLE001 -- a callback runs outside the page's boundary
            boundary.remember(err, f"Reading {upload.name}")
        else:
            session.set_aside("the data changed")
            session.choose_dataset(upload.name, upload)

    st.selectbox("Built-in dataset", names, index=names.index(current), key="setup.dataset", on_change=on_builtin,
                 format_func=lambda n: n if available[n] is None else f"{n} (not installed)",
                 help="digits: 1,797 handwritten 8×8 digits, bundled with scikit-learn; ready at once.")
    st.file_uploader("…or upload your own", type=["csv", "npz", "zip"], key="setup.upload", on_change=on_upload,
                     help="CSV with a 'label' column and numeric features; NPZ with arrays X and y; "
                          "or a zip with one folder of images per class.")
    if session.upload is not None:
        st.caption(f"Using the uploaded file **{session.upload.name}**; pick a built-in dataset to switch back.")
