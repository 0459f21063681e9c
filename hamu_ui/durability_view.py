"""The Inspect page's durability check: does the forgetting survive relearning and quantization?

Three models are attacked alike: the original, the live run's model at its step closest to
the retrain reference (the model the Report describes; the last step when there is no
closest step) and the retrain reference itself, which never saw the forget set and so says
how much relearning and rounding any model would show. The check fine-tunes copies, so it
runs on a button press, not on every rerun; results are cached per model weight fingerprint
(the original's and the reference's are computed once per forget set, so a new step only
recomputes the unlearned model's). Once pressed, the section keeps showing the results for
that run state across reruns, until the run takes a step or changes.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st
from torch import nn

from hamu_core.audit.durability import durability_reading
from hamu_core.models.architectures import TrainedModel
from hamu_ui import cache
from hamu_ui.durability_figures import quantization_display, relearning_figure
from hamu_ui.session import StudioSession
from hamu_ui.workspace import Workspace

BUTTON_KEY = "inspect.durability"
UNLEARNED = "the unlearned model"  # the live run's model, as named in the chart, the table and the reading


def unlearned_model(session: StudioSession) -> nn.Module:
    """The live run's model at the step the Report describes (closest to the retrain reference, else the last)."""
    return session.live.run.model_at(session.live.reported_step)


def run_state(session: StudioSession, reference: TrainedModel) -> tuple:
    """What the check's result depends on, known without copying a model: run, steps taken, closest step."""
    run = session.live.run
    return session.live.key, len(run.history_), run.closest_step_, reference.key


def results(session: StudioSession, ws: Workspace, models: dict[str, TrainedModel]
            ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(relearning curves, quantization table) of every model, each computed once per weight fingerprint."""
    def each(cached) -> pd.DataFrame:
        return pd.concat([cached(ws.data, m, session.forget_ids, session.seed).assign(model=name)
                          for name, m in models.items()], ignore_index=True)

    return each(cache.relearning), each(cache.quantization)


def show(session: StudioSession, ws: Workspace, reference: TrainedModel | None) -> None:
    """The section: what the check does, its button, then the reading in words, the curves and the table."""
    if session.live is None or reference is None:
        st.caption("The durability check compares an unlearning run's model with the original and the retrain "
                   "reference: run **Unlearn** first.")
        return
    closest = session.live.run.closest_step_
    which = f"step {closest}, the step closest to the retrain reference" if closest is not None else "its last step"
    st.caption(f"Attacks copies of three models — the original, this run's model at {which}, and the retrain "
               "reference — with a few fine-tuning steps (on retain data, and on retain data plus a handful of "
               "forget samples) and with weights rounded to int8 and 4 bits. Forgetting that comes back is not "
               "forgetting; the retrain reference says how much any model picks up. Takes a few seconds.")
    state = run_state(session, reference)
    if st.button("Check durability", key=BUTTON_KEY, help="Fine-tunes and quantizes copies; no model is changed."):
        session.durability_checked = state
    if session.durability_checked != state:
        return
    model = unlearned_model(session)
    models = {"original": ws.original, UNLEARNED: TrainedModel(model),
              "retrain": reference}
    try:
        with st.spinner("Relearning and quantizing copies of the three models…"):
            curves, table = results(session, ws, models)
        reading = durability_reading(curves, table, len(session.forget_ids))
    except ValueError as err:
        st.error(f"The durability check cannot run on this forget set: {err}")
        return
    st.markdown("\n".join(f"- {sentence}" for sentence in reading))
    st.plotly_chart(relearning_figure(curves), key="inspect.durability.curves")
    st.dataframe(quantization_display(table))
    st.caption("Comes back: after relearning, the unlearned model's forget accuracy exceeds the retrained model's by "
               "more than noise (the 95 % interval of the difference, from both Wilson intervals, lies above 0). "
               "Reverts: after rounding, its forget accuracy moves toward the original's by more than noise, both from "
               "where it was and from where the retrained model's change would have taken it.")
