"""Compare page, "What if the request grows?": the forget set beside a larger, harder one.

A deletion request rarely stays the size it was. The larger set here is the current one
plus each sample's k nearest retain neighbours in the model's feature space: the samples
that look most like what is forgotten, so forgetting them too is the kind of growth that
changes the hardness. Both sets are unlearned with the session's method, settings and seed
under the Studio's default stop rules, each against the retrain reference of *that* set
(the model that never saw it): a larger request has a different target, and measuring it
against the small set's reference would score the wrong goal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st

from hamu_core.runs.experiment import unlearning_run
from hamu_core.runs.unlearner import DEFAULT_STOP, UnlearningRun
from hamu_ui import cache
from hamu_ui.compare_view import DEFAULT_STEPS
from hamu_ui.figures import hardness_histogram, tradeoff_figure
from hamu_ui.session import StudioSession
from hamu_ui.workspace import Workspace, progress_bar

TITLE = "What if the request grows? Two forget sets side by side"
EXPANDER_KEY = "compare.grow"


@dataclass(frozen=True)
class Outcome:
    """One forget set's run, reduced to what the section shows."""

    label: str
    forget_ids: np.ndarray
    cos: np.ndarray  # per-sample cos θ_i of the forget samples against the retain gradient
    path: pd.DataFrame  # step, retain_loss_change, forget_loss_gain since step 0
    reference: tuple[float, float]  # the retrain reference on the same axes
    steps: int
    distance: float  # accuracy points from its own reference after the last step
    stop: str  # why the run ended, in words


def grown_set(forget_ids: np.ndarray, neighbours: pd.DataFrame) -> np.ndarray:
    """The forget set plus every neighbour listed for it (``nearest_retain_neighbours``' frame), sorted, unique."""
    extra = np.concatenate([np.asarray(n, dtype=np.int64) for n in neighbours["neighbour_ids"]]) \
        if len(neighbours) else np.empty(0, dtype=np.int64)
    return np.union1d(np.asarray(forget_ids, dtype=np.int64), extra)


def tradeoff_path(run: UnlearningRun) -> tuple[pd.DataFrame, tuple[float, float]]:
    """The run's forget-loss gain against retain-loss change per step, and its reference on those axes."""
    points = pd.DataFrame(run.points_)
    start = points.iloc[0]
    path = pd.DataFrame({"step": np.arange(len(points)),
                         "retain_loss_change": points["retain_loss"] - start["retain_loss"],
                         "forget_loss_gain": points["forget_loss"] - start["forget_loss"]})
    target = run.target.point
    return path, (target["retain_loss"] - start["retain_loss"], target["forget_loss"] - start["forget_loss"])


def run_one(session: StudioSession, ws: Workspace, label: str, forget_ids: np.ndarray, steps: int) -> Outcome:
    """Train (or load) this set's retrain reference, then unlearn it under the default stop rules."""
    with progress_bar(f"Retrain reference for {label}") as report:
        reference = cache.trained_model(ws.data, session.model_config, session.train_config, "retrain", forget_ids,
                                        progress=report, device=session.device)
    run = unlearning_run(ws.data, ws.original.model, forget_ids, session.method,
                         session.method_settings(session.method), seed=session.seed, reference=reference.model)
    for _ in run.steps(steps, DEFAULT_STOP):
        pass
    hard = cache.hardness(ws.data, ws.original, forget_ids, session.seed)
    path, ref = tradeoff_path(run)
    return Outcome(label, forget_ids, hard.samples[hard.samples["id"].isin(forget_ids)]["cos"].to_numpy(), path,
                   ref, len(run.history_), run.distance_at(len(run.history_)), run.stop_.message)


def section(session: StudioSession, ws: Workspace) -> None:
    """The section, an expander drawn only while open (the page stops early without a comparison,
    so the section sits above the comparison's results, where a closed expander costs no space)."""
    expander = st.expander(TITLE, key=EXPANDER_KEY, on_change="rerun")
    with expander:
        if expander.open:
            _body(session, ws)


def _body(session: StudioSession, ws: Workspace) -> None:
    """Choose k and a step budget, run both sets, show them side by side."""
    st.caption(f"The current forget set beside a larger one: the same samples plus each one's k nearest retain "
               f"neighbours (the samples that look most like them). Both run {session.method.upper()} with the same "
               "settings and seed under the default stop rules, each against the model retrained without *its own* "
               "set.")
    left, right = st.columns(2)
    k = left.number_input("Neighbours added per forget sample (k)", 1, 10, 1, key="compare.grow.k")
    steps = right.number_input("Steps at most", 1, 1000, DEFAULT_STEPS, key="compare.grow.steps")
    key = (ws.source, ws.original.key, session.forget_key, session.method,
           repr(sorted(session.method_settings(session.method).items())), session.seed, int(k), int(steps))
    if st.button("Run both forget sets", key="compare.grow.run"):
        neighbours = cache.retain_neighbours(ws.data, ws.original, session.forget_ids, int(k))
        grown = grown_set(session.forget_ids, neighbours)
        try:
            outcomes = [run_one(session, ws, "the current set", session.forget_ids, int(steps)),
                        run_one(session, ws, f"the set plus {int(k)} neighbour{'s' if int(k) != 1 else ''} each", grown, int(steps))]
        except ValueError as err:
            st.error(f"The two runs could not be made: {err}")
            return
        session.grow = (key, outcomes)
    stored = session.grow
    if stored is None or stored[0] != key:
        return
    for column, outcome in zip(st.columns(2), stored[1]):
        _show(column, outcome)


def _show(column, outcome: Outcome) -> None:
    """One set's column: size, hardness, trade-off path, distance to its own reference and why it stopped."""
    with column:
        st.markdown(f"**{outcome.label.capitalize()}: {len(outcome.forget_ids)} samples**")
        st.plotly_chart(hardness_histogram(outcome.cos), key=f"compare.grow.hist.{outcome.label}")
        st.plotly_chart(tradeoff_figure({outcome.label: outcome.path[outcome.path["step"] > 0]}, outcome.reference),
                        key=f"compare.grow.path.{outcome.label}")
        st.metric("Distance to its own retrain reference", f"{outcome.distance:.1f} points",
                  help="Largest accuracy gap over forget, retain and test after the last step.")
        st.caption(f"{outcome.steps} steps; stopped: {outcome.stop}.")
