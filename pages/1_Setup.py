"""Setup: what unlearning is, which data and model; trains the original model and the retrain reference."""

import streamlit as st

from hamu_core.models.architectures import ARCHS, ModelConfig
from hamu_ui import cache, own_model_view, widgets, workspace

ARCH_NAMES = {"mlp": "MLP: any data, trains in seconds", "cnn": "CNN: images only, a little slower",
              "resnet20": "ResNet-20: colour images such as 32×32 photos; a GPU helps"}

with widgets.page("HAMU Studio", "Setup") as (session, _):
    st.markdown(
        "**Machine unlearning** removes what a trained model learned from some of its data — say a person "
        "asks for their photos to be forgotten — without retraining from scratch. The gold standard is a model "
        "retrained without that data; unlearning tries to get there in a few cheap steps.\n\n"
        "**What HAMU adds:** every step *guarantees* progress on forgetting at the *least* cost to what you "
        "keep, and it tells you when that is impossible — when the data to forget look so much like the data "
        "to keep that forgetting must hurt (the *collateral forgetting* region)."
    )
    st.caption("1 · choose data and a model here → 2 · pick what to forget on **Forget set** → "
               "3 · step and watch on **Unlearn**.")
    widgets.show_notices(session)

    data_col, model_col = st.columns(2)
    with data_col:
        st.subheader("Data")
        widgets.choose_data(session)
    with model_col:
        st.subheader("Model")
        arch = st.radio("Architecture", ARCHS, index=ARCHS.index(session.model_config.arch), key="setup.arch",
                        format_func=ARCH_NAMES.get, help="MLP and CNN train in seconds on a CPU; ResNet-20 needs a GPU "
                        "to train quickly.")
        session.choose_model(ModelConfig(arch=arch))
        st.caption(f"Training: {session.train_config.epochs} epochs of AdamW, lr {session.train_config.lr:g}, "
                   f"seed {session.train_config.seed}. Trained models are cached on disk.")
        own_model_view.choose_device(session)
        own_model_view.choose_own_model(session, workspace.load_data(session))

    st.subheader("Training")
    ws = workspace.load_workspace(session)
    if ws is not None:
        accuracy = cache.test_accuracy(ws.data, ws.original)
        st.success(f"Original model ready: {accuracy:.1%} "
                   f"test accuracy on {ws.data.name} ({len(ws.data.train_ids):,} training, "
                   f"{len(ws.data.test_ids):,} test samples, {ws.data.n_classes} classes).")
        widgets.warn_if_guessing(accuracy, ws.data.n_classes)
        reference = workspace.retrain_reference(session, ws)
        if session.own_model is not None:
            st.info("Your own model has no retrain reference (the Studio does not know how it was trained): "
                    "runs step without the target, and the Report reads forgetting against unseen test data.")
        elif reference is None:
            st.info("The retrain reference (the same model trained without the forget set) is trained as soon "
                    "as you choose a forget set: open **Forget set** in the sidebar.")
        else:
            st.success(f"Retrain reference ready for the {len(session.forget_ids)}-sample forget set: "
                       f"{cache.test_accuracy(ws.data, reference):.1%} test accuracy.")
