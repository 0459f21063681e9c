"""The Compare page's pieces: choose methods, a sweep of HAMU's constraint and one stop choice; rank the runs.

A comparison is fair only when every method starts from the same original model, sees
the same forget set and the same paired batches at every step (``compare.compare_methods``
guarantees that under one seed), and is held to the same stop rules. Each method takes
the settings chosen on Unlearn, except the rules' own stop options: HAMU's "stop when
infeasible / when degradation becomes unavoidable" would end a HAMU run after two steps
while the baselines, which have no such option, run on. Here those options are off, and
one stop choice, made on this page and shown with the result, applies to every run.

Runs are ranked by their distance to the retrain reference, the largest accuracy gap over
forget, retain and test; the result is kept in the session with the workspace it ran on,
and shown only while that workspace is still loaded.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import streamlit as st

from hamu_core.config import DEFAULTS
from hamu_core.evaluation.target import ReferenceTarget, measure, measured_splits
from hamu_core.models.architectures import TrainedModel
from hamu_core.models.training import retain_ids
from hamu_core.rules.registry import METHOD_HELP, METHODS
from hamu_core.runs.compare import (
    ACCURACIES,
    Comparison,
    compare_methods,
    constraint_sweep,
    merge_identical,
    rank_by_reference,
)
from hamu_core.runs.unlearner import STOP_RULES
from hamu_ui import cache
from hamu_ui.comparison_figures import reference_figure
from hamu_ui.figures import tradeoff_figure
from hamu_ui.session import StudioSession
from hamu_ui.workspace import Workspace, progress_bar

DEFAULT_METHODS = ("hamu-q", "gdiff", "ga")  # HAMU against a balanced and an unprotected baseline
DEFAULT_STEPS = 30  # enough for HAMU-Q to forget a digits class at the Studio's defaults (config.py)
SWEEP_METHODS = ("hamu-q", "hamu-u")
SWEEP_FACTORS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0)  # constraints offered, as multiples of the method's current B
DEFAULT_FACTORS = (0.25, 1.0, 4.0)
SPLITS = ("forget", "retain", "test")
RULE_STOP_OPTIONS = ("stop_on_infeasible", "stop_on_unavoidable")  # a rule's own stop settings: off in a comparison
STOP_LABELS = {
    "reached_reference": "it reaches the retrain reference",
    "unavoidable": "degradation becomes unavoidable (HAMU only)",
    "infeasible": "a step is infeasible (HAMU only)",
}


def fair_settings(method: str, settings: dict) -> dict:
    """``settings`` with the rule's own stop options off, so only the comparison's shared stop rules end a run."""
    fields = {spec.name for spec in dataclasses.fields(METHODS[method])}
    return {**settings, **{name: False for name in RULE_STOP_OPTIONS if name in fields}}


def comparison_specs(settings_of: Callable[[str], dict], methods: Sequence[str], sweep_method: str | None = None,
                     constraints: Sequence[float] = ()) -> list[tuple[str, str, dict]]:
    """One spec per chosen method (labelled in capitals) plus, optionally, one per constraint of a sweep.

    ``settings_of(method)`` gives each method's settings (the session's), with the rule's
    own stop options turned off (``fair_settings``); a sweep keeps all of
    ``sweep_method``'s settings except the constraint, which it varies.
    """
    specs = [(method.upper(), method, fair_settings(method, settings_of(method))) for method in methods]
    if sweep_method is not None and constraints:
        shared = {k: v for k, v in fair_settings(sweep_method, settings_of(sweep_method)).items() if k != "constraint"}
        specs += constraint_sweep(sweep_method, list(constraints), **shared)
    return specs


def choose_specs(session: StudioSession) -> list[tuple[str, str, dict]]:
    """The method picker and the optional constraint sweep; returns what to run."""
    methods = st.multiselect("Methods", list(METHODS), default=list(DEFAULT_METHODS), key="compare.methods",
                             format_func=str.upper,
                             help="Each runs with the settings chosen on Unlearn (or the Studio's defaults), "
                                  "except the stop settings: the stop choice below applies to all.")
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


def choose_stop(has_reference: bool) -> tuple[str, ...]:
    """One stop choice for every run (none: each takes every step), said in words under the picker."""
    offered = [rule for rule in STOP_RULES if has_reference or rule != "reached_reference"]
    chosen = st.multiselect("Stop each run early when…", offered, default=[], key="compare.stop",
                            format_func=STOP_LABELS.get, placeholder="no stop rule: every run takes every step",
                            help="The same rules end every run. Baselines have no constraint B, so only HAMU runs "
                                 "can be infeasible or meet unavoidable degradation.")
    st.caption("Every method runs under this one stop choice. The methods' own stop settings from Unlearn (stop when "
               "infeasible, stop when degradation becomes unavoidable) are turned off here, so no run ends on a "
               "setting the others do not have.")
    return tuple(chosen)


def stop_words(stop_when: Sequence[str]) -> str:
    """The stop choice in words, for the line above the results."""
    if not stop_when:
        return "no stop rule (every run takes every step)"
    return "stop when " + " or ".join(STOP_LABELS[rule] for rule in stop_when)


def workspace_key(session: StudioSession, ws: Workspace) -> tuple:
    """What a comparison depends on besides its specs: data, original model, forget set, seed."""
    return ws.source, ws.original.key, session.forget_key, session.seed


def run(session: StudioSession, ws: Workspace, specs: list, steps: int, stop_when: tuple[str, ...],
        reference: TrainedModel | None) -> None:
    """Run every spec from the original model under ``stop_when``, with a progress bar; keep the result.

    Every run is measured on one probe (``target.measured_splits``) after its last step;
    with the retrain ``reference`` the runs also know their target (stop rule
    "reached_reference" and each run's closest step).
    """
    forget = session.forget_ids
    retain = retain_ids(ws.data, forget)
    probe = measured_splits(ws.data, forget, session.seed)
    try:
        target = None if reference is None else ReferenceTarget(reference.model, ws.original.model, probe)
        with progress_bar(f"Running {len(specs)} methods for up to {steps} steps each") as report:
            result = compare_methods(specs, model=ws.original.model, retain=ws.data.tensors(retain),
                                     forget=ws.data.tensors(forget), seed=session.seed, steps=steps,
                                     retain_batch_size=DEFAULTS.retain_batch_size, progress=report,
                                     stop_when=stop_when or None, target=target,
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


def final_table(finals: pd.DataFrame, reference: dict | None) -> pd.DataFrame:
    """One row per distinct outcome, closest to the retrain reference first: distance, outcome, accuracy and gap
    per split; runs that ended at identical accuracies share a row ("A = B").

    ``finals`` carries the ``measure`` keys (``forget_acc`` …) added by ``run``;
    ``reference`` is the retrain reference's point on the same probe. Without it the runs
    keep their order and the distance and gaps are NaN.
    """
    rows = finals.assign(distance=np.nan) if reference is None else rank_by_reference(finals, reference)
    unplaced = rows[rows[list(ACCURACIES)].isna().any(axis=1)]  # failed runs: listed, never merged
    merged = merge_identical(rows)
    rows = pd.concat([merged.assign(label=merged["labels"].map(" = ".join)), unplaced], ignore_index=True)
    table = pd.DataFrame({"method": rows["label"], "distance (pts)": rows["distance"], "status": rows["status"],
                          "steps": rows["steps_done"]})
    for split in SPLITS:
        table[f"{split} acc (%)"] = 100 * rows[f"{split}_acc"]
        target = np.nan if reference is None else reference[f"{split}_acc"]
        table[f"{split} gap (pts)"] = 100 * (rows[f"{split}_acc"] - target)
    table["forget-loss gain"] = rows["forget_loss_gain"]
    table["retain-loss change"] = rows["retain_loss_change"]
    return table.set_index("method")


def show(session: StudioSession, ws: Workspace, result: Comparison, reference: TrainedModel | None) -> None:
    """The runs ranked by distance to the reference: the accuracy map, the table, the loss paths, why runs stopped."""
    def point(model: TrainedModel) -> dict[str, float]:
        return cache.model_point(ws.data, model, session.forget_ids, session.seed)

    st.markdown(f"**{len(result.finals)} runs**, up to {result.steps} steps each, seed {result.seed}, "
                f"{stop_words(result.stop_when)}.")
    ref, start = (None if reference is None else point(reference)), point(ws.original)
    if ref is None:
        st.info("Without the retrain reference the runs cannot be ranked; the table lists them as they ran.")
    else:
        ranked = rank_by_reference(result.finals, ref)
        best = ranked.iloc[0]
        st.markdown(f"**Closest to the retrain reference: {best['label']}**, {best['distance']:.1f} accuracy points "
                    "away at most, over forget, retain and test.")
        st.plotly_chart(reference_figure(merge_identical(ranked), ref, start), key="compare.reference")
        st.caption("Better is closer to the star, the model retrained without the forget set: a run's distance is its "
                   "largest accuracy gap to it over forget, retain and test samples, and the numbers rank the runs by "
                   "it, as in the table. Forgetting more than the reference is no better. Runs that ended at the same "
                   "accuracies are one point listing them all; a run far off the axes sits on the edge as a triangle, "
                   "its accuracies written beside it. Grey ×: the original model.")
    st.dataframe(final_table(result.finals, ref).style.format(precision=3, na_rep="–"), key="compare.table")
    with st.popover("What do these columns mean?"):
        st.markdown("**distance (pts)** — the largest of the three gaps below, ignoring sign: how far the run ended "
                    "from retraining. The table is sorted by it, closest first.\n\n"
                    "**acc (%)** — accuracy of the final model on the forget, retain and test samples.\n\n"
                    "**gap (pts)** — that accuracy minus the retrain reference's, in percentage points: 0 is "
                    "perfect unlearning.\n\n**forget-loss gain / retain-loss change** — the last step's losses minus "
                    "the original model's on the same batches.")
    with st.expander("Trade-off paths, step by step (loss space)"):
        ref_path = None if ref is None else (ref["retain_loss"] - start["retain_loss"],
                                             ref["forget_loss"] - start["forget_loss"])
        st.plotly_chart(tradeoff_figure(paths(result.trajectories), ref_path), key="compare.paths")
        st.caption("Forget-loss gain against retain-loss change after every step, on the same batches for every run. "
                   "A run whose losses explode sets the scale here; the map above is the fair comparison.")
    for row in result.finals.itertuples():
        if row.status != "completed":
            st.warning(f"{row.label} {row.status} after {row.steps_done} steps: {row.reason}")
