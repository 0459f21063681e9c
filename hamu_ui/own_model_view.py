"""Setup controls for where the Studio computes and for bringing your own model.

The device is a session setting passed down to every core call (DESIGN.md, "Devices and
scale"); a GPU asked for where none exists is refused here with the reason, and the
previous choice stays. An uploaded model is checked against the chosen data before it
replaces the Studio's own: a file that does not fit is shown with its named reason and
the session keeps what it had.
"""

from __future__ import annotations

import streamlit as st

from hamu_core.data.labelled import LabelledData
from hamu_core.models.architectures import TrainedModel
from hamu_core.models.device import DEVICE_CHOICES, device_label, resolve_device
from hamu_core.models.imported import SUFFIXES, ModelFileError
from hamu_core.models.training import Progress
from hamu_ui import cache
from hamu_ui.session import StudioSession, Upload

DEVICE_NAMES = {"auto": "Automatic (a GPU when there is one)", "cpu": "CPU", "cuda": "GPU (CUDA)"}


def choose_device(session: StudioSession) -> None:
    """A device picker; an unavailable choice is refused with the reason and the session's device is kept."""
    current = session.device if session.device in DEVICE_CHOICES else "auto"
    chosen = st.selectbox("Device", DEVICE_CHOICES, index=DEVICE_CHOICES.index(current), key="setup.device",
                          format_func=DEVICE_NAMES.get, help="Where models train and unlearning steps run. "
                          "Results agree across devices within float rounding.")
    try:
        resolve_device(chosen)
    except ValueError as err:
        st.error(f"{err}. Still computing on: {device_label(session.device)}.")
        return
    session.choose_device(chosen)
    st.caption(f"Computing on: {device_label(session.device)}")


def choose_own_model(session: StudioSession, data: LabelledData | None) -> None:
    """An optional upload of your own model (safetensors weights for the chosen architecture, or a .pt2 export)."""
    uploaded = st.file_uploader("Your own model (optional)", type=[s.lstrip(".") for s in SUFFIXES],
                                key="setup.own_model", help="A safetensors state dict of the architecture above, "
                                "or any architecture exported with torch.export (batch dimension dynamic). "
                                "Pickled files (torch.save) are refused.")
    if uploaded is not None and data is not None:
        upload = Upload(uploaded.name, uploaded.getvalue())
        if upload != session.own_model:
            try:
                cache.own_model(upload, data, session.model_config, session.device)
            except ModelFileError as err:
                st.error(f"{uploaded.name} was not used ({err.reason}): {err}")
            else:
                session.choose_own_model(upload)
    if session.own_model is None:
        return
    if data is None:
        st.info(f"Your model {session.own_model.name} is kept; it is checked once the data loads.")
        return
    try:
        imported = cache.own_model(session.own_model, data, session.model_config, session.device)
    except ModelFileError as err:  # the data or architecture changed since it was accepted
        st.error(f"{session.own_model.name} does not fit the current data or architecture ({err.reason}): {err}")
        session.choose_own_model(None)
        return
    st.success(f"Using your model: {imported.describe()}. There is no retrain reference: the Studio does not "
               "know how it was trained.")
    if st.button("Use the Studio's own model instead", key="setup.drop_own_model"):
        session.choose_own_model(None)
        st.rerun()


def original_model(session: StudioSession, data: LabelledData, progress: Progress | None = None) -> TrainedModel:
    """The session's original model on the session's device: the accepted own model, else the Studio's trained one."""
    if session.own_model is not None:
        return TrainedModel(cache.own_model(session.own_model, data, session.model_config, session.device).model)
    return cache.trained_model(data, session.model_config, session.train_config, "original", progress=progress,
                               device=session.device)
