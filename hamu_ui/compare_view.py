"""The Compare page's pieces: choose methods (and a sweep of HAMU's constraint), run them, show the frontier.

A comparison is fair only when every method starts from the same original model and sees
the same forget set and the same paired batches at every step, which is what
``compare.compare_methods`` guarantees under one seed. Each method runs with the settings
the user chose on Unlearn, so the two pages never disagree. The result is kept in the
session with the workspace it ran on, and shown only while that workspace is still loaded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import streamlit as st

from hamu_core.compare import Comparison, compare_methods, constraint_sweep
from hamu_core.config import DEFAULTS
from hamu_core.methods import METHOD_HELP, METHODS
from hamu_ui import cache, widgets
from hamu_ui.comparison_figures import frontier_figure
from hamu_ui.session import StudioSession, measure, measured_splits
from hamu_ui.widgets import Workspace

DEFAULT_METHODS = ("hamu-q", "gdiff", "ga")  # HAMU against a balanced and an unprotected baseline
DEFAULT_STEPS = 30  # enough for HAMU-Q to forget a digits class at the Studio's defaults (config.py)
SWEEP_METHODS = ("hamu-q", "hamu-u")
SWEEP_FACTORS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0)  # constraints offered, as multiples of the method's current B
DEFAULT_FACTORS = (0.25, 1.0, 4.0)
SPLITS = ("forget", "retain", "test")


def comparison_specs(settings_of: Callable[[str], dict], methods: Sequence[str], sweep_method: str | None = None,
                     constraints: Sequence[float] = ()) -> list[tuple[str, str, dict]]:
    """One spec per chosen method (labelled in capitals) plus, optionally, one per constraint of a sweep.

    ``settings_of(method)`` gives each method's settings (the session's); a sweep keeps all
    of ``sweep_method``'s settings except the constraint, which it varies.
    """
    specs = [(method.upper(), method, settings_of(method)) for method in methods]
    if sweep_method is not None and constraints:
        shared = {k: v for k, v in settings_of(sweep_method).items() if k != "constraint"}
        specs += constraint_sweep(sweep_method, list(constraints), **shared)
    return specs


def choose_specs(session: StudioSession) -> list[tuple[str, str, dict]]:
    """The method picker and the optional constraint sweep; returns what to run."""
    methods = st.multiselect("Methods", list(METHODS), default=list(DEFAULT_METHODS), key="compare.methods",
                             format_func=str.upper,
                             help="Each runs with the settings chosen on Unlearn (or the Studio's defaults).")
    if methods:
        st.caption(" · ".join(METHOD_HELP[m] for m in methods))
    sweep_method, constraints = None, []
    if st.checkbox("Also run HAMU over a range of constraints B", key="compare.sweep",
                   help="Larger B forces more forgetting per step; the sweep shows what that costs."):
        left, right = st.columns([1, 2])
        sweep_method = left.radio("Sweep", SWEEP_METHODS, key="compare.sweep_method", format_func=str.upper,
                                  horizontal=True)
        base = session.method_settings(sweep_method)["constraint"]
        factors = right.multiselect("Constraints", SWEEP_FACTORS, default=list(DEFAULT_FACTORS), key="compare.factors",
                                    format_func=lambda f: f"{f:g}·B = {f * base:.3g}",
                                    help=f"Multiples of the current B = {base:g}.")
        constraints = [f * base for f in factors]
    return comparison_specs(session.method_settings, methods, sweep_method, constraints)


def workspace_key(session: StudioSession, ws: Workspace) -> tuple:
    """What a comparison depends on besides its specs: data, original model, forget set, seed."""
    return ws.source, ws.original.key, session.forget_key, session.seed


def run(session: StudioSession, ws: Workspace, specs: list, steps: int) -> None:
    """Run every spec from the original model with a progress bar, and keep the result in the session."""
    forget = session.forget_ids
    retain = np.setdiff1d(ws.data.train_ids, forget)
    probe = measured_splits(ws.data, forget, session.seed)
    try:
        with widgets.progress_bar(f"Running {len(specs)} methods for {steps} steps each") as report:
            result = compare_methods(specs, model=ws.original.model, retain=ws.data.tensors(retain),
                                     forget=ws.data.tensors(forget), seed=session.seed, steps=steps,
                                     retain_batch_size=DEFAULTS.retain_batch_size, progress=report,
                                     evaluate_fn=lambda model: measure(model, probe))
    except ValueError as err:
        st.error(f"The comparison cannot run with these settings: {err}")
        return
    session.comparison = (workspace_key(session, ws), result)


def stored(session: StudioSession, ws: Workspace) -> Comparison | None:
    """The session's comparison if it was run on what is loaded now, else None (saying why when stale)."""
    if session.comparison is None:
        return None
    key, result = session.comparison
    if key != workspace_key(session, ws):
        st.info("The last comparison was run on another dataset, model or forget set: run it again.")
        return None
    return result


def paths(trajectories: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Each run's trade-off path, starting from the origin (step 0: the original model)."""
    origin = pd.DataFrame([{"step": 0, "retain_loss_change": 0.0, "forget_loss_gain": 0.0}])
    return {label: pd.concat([origin, group[list(origin.columns)]], ignore_index=True)
            for label, group in trajectories.groupby("label", sort=False)}


def final_table(finals: pd.DataFrame, front_labels, reference: dict | None) -> pd.DataFrame:
    """One row per run: outcome, accuracy per split in %, the gap to the retrain reference in points, the front.

    ``finals`` carries the ``measure`` keys (``forget_acc`` …) added by ``run``;
    ``reference`` is the retrain reference's ``measure`` point (gaps are NaN without it).
    """
    table = pd.DataFrame({"method": finals["label"], "status": finals["status"], "steps": finals["steps_done"]})
    for split in SPLITS:
        table[f"{split} acc (%)"] = 100 * finals[f"{split}_acc"]
        target = np.nan if reference is None else reference[f"{split}_acc"]
        table[f"{split} gap (pts)"] = 100 * (finals[f"{split}_acc"] - target)
    table["forget-loss gain"] = finals["forget_loss_gain"]
    table["retain-loss change"] = finals["retain_loss_change"]
    table["on front"] = finals["label"].isin(list(front_labels))
    return table.set_index("method")


def show(session: StudioSession, ws: Workspace, result: Comparison, reference: cache.TrainedModel | None) -> None:
    """The overlaid paths with the Pareto front, the front in words, the table, and why any run stopped."""
    def point(model: cache.TrainedModel) -> dict[str, float]:
        return cache.model_point(ws.source, model.key, session.forget_key, session.seed, ws.data, model.model,
                                 session.forget_ids)

    ref = None if reference is None else point(reference)
    start = point(ws.original)
    ref_point = None if ref is None else (ref["retain_loss"] - start["retain_loss"],
                                          ref["forget_loss"] - start["forget_loss"])
    front = result.frontier()
    st.markdown(f"**Pareto front: {', '.join(front['label'])}** · {len(result.finals)} runs, "
                f"{result.steps} steps each, seed {result.seed}")
    st.plotly_chart(frontier_figure(paths(result.trajectories), front, ref_point), key="compare.frontier")
    st.caption("Up and to the left is better: more forgetting for less retain cost. Circled: final points no other "
               "run beats on both axes. Star: the retrain reference, on the measured splits.")
    st.dataframe(final_table(result.finals, front["label"], ref).style.format(precision=3, na_rep="–"),
                 key="compare.table")
    with st.popover("What do these columns mean?"):
        st.markdown("**acc (%)** — accuracy of the final model on the forget, retain and test samples.\n\n"
                    "**gap (pts)** — that accuracy minus the retrain reference's, in percentage points: 0 is "
                    "perfect unlearning.\n\n**forget-loss gain / retain-loss change** — the last step's losses minus "
                    "the original model's on the same batches.\n\n**on front** — no other run forgets more for less.")
    for row in result.finals.itertuples():
        if row.status != "completed":
            st.warning(f"{row.label} {row.status} after {row.steps_done} steps: {row.reason}")
