"""The Unlearn page's stepper panel: Step, Run N, Play/Pause, Undo, Reset, and the live charts.

Buttons act through callbacks, so the panel drawn after a click already shows the new
state (an enabled Undo, the new point on every chart). Callbacks cannot draw in place,
so what they have to say goes through ``session.notify``. Everything here runs inside the
page's ``st.fragment``: a click reruns only this panel.

Play and Run N do not step inside a callback: each run of the fragment takes a bounded
slice of steps (Play's steps per tick of the fragment's timer; Run N's steps for
``SLICE_S``, or as long as the last redraw took when that was longer, after which the
fragment runs again at once) under a progress line updated after every step, then redraws
the charts, which update in place (``hamu_ui.live_charts``). On a busy machine a redraw
costs more, so the slices grow and at least half of Run N's time goes to stepping.
A Pause click stops Streamlit's run at the next element it draws, the line after the step
under way, so Pause takes effect within one step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from streamlit.errors import StreamlitAPIException
from torch import nn

from hamu_core.config import DEFAULTS
from hamu_core.runs.live import LiveRun
from hamu_core.runs.store import StoreError
from hamu_core.runs.unlearner import StepRecord
from hamu_ui import runs
from hamu_ui.figures import hardness_diagram, kappa_figure, metric_curves, thinned_path, tradeoff_figure
from hamu_ui.live_charts import live_charts
from hamu_ui.session import StudioSession
from hamu_ui.workspace import Workspace

SLICE_S = 0.25  # Run N: shortest stretch of steps (seconds) before the charts are redrawn; at least one step
GUARANTEE = {"hamu-q": "raise the forget loss", "hamu-u": "lower the retain loss"}
PROTECTED = {"hamu-q": "retain", "hamu-u": "forget"}


def explain(records: list[StepRecord], method: str) -> list[str]:
    """Plain sentences for the steps just taken that were infeasible or could not avoid degradation.

    An infeasible step is described as it was taken: capped at the radius (the default) or
    the exact, longer step, with both lengths, so a long step never goes unmentioned.
    """
    lines = []
    infeasible = [r.step for r in records if not r.feasible]
    if infeasible:
        last = next(r for r in reversed(records) if not r.feasible)
        exact = last.info.get("exact_step_norm", last.step_norm)  # records stored before capping lack it

        def times_radius(length: float) -> str:
            return f"{length / last.radius:.3g}× the radius" if last.radius > 0 else "the radius is 0"

        if last.info.get("capped", False):
            taken = (f"so HAMU took the best step inside the radius instead, {last.step_norm:.3g} long (R = "
                     f"{last.radius:.3g}), gaining {last.info.get('predicted_constraint_gain', math.nan):.3g} of B. "
                     f"The exact step that gains B would have been {exact:.3g} long ({times_radius(exact)}); "
                     "the setting 'Infeasible steps: exact' takes it.")
        else:
            taken = (f"so HAMU took the exact closed-form step, {last.step_norm:.3g} long "
                     f"({times_radius(last.step_norm)}, R = {last.radius:.3g}).")
        lines.append(
            f"{_steps(infeasible)} infeasible: no step within the radius could {GUARANTEE.get(method, 'meet')} by "
            f"B = {last.constraint:g}, {taken} "
            "Early on this is normal: the model still fits the forget set, so its gradient is tiny.")
    unavoidable = [r for r in records if r.degradation_unavoidable]
    if unavoidable:
        last = unavoidable[-1]
        lines.append(
            f"{_steps([r.step for r in unavoidable])} past the point of no free lunch: even the best step inside the "
            f"radius that meets B worsens the {PROTECTED.get(method, 'retain')} loss (margin {last.margin:.3g}; "
            f"κ = {last.kappa:.3g}, κ2 = {last.kappa2:.3g}). "
            "Consider stopping, or tick 'Refuse steps that must degrade'.")
    return lines


def _steps(numbers: list[int]) -> str:
    if len(numbers) == 1:
        return f"Step {numbers[0]} was"
    return f"{len(numbers)} steps (the last: step {numbers[-1]}) were"


STOP_NOTICE = {"reached_reference": "success", "nothing_to_do": "success", "unavoidable": "warning",
               "infeasible": "warning", "refused": "warning", "diverged": "error"}


def act(session: StudioSession, action: str, n: int = 1) -> None:
    """Button callback: step, run ``n`` steps, play or pause, undo, roll back to step ``n``, or reset.

    Run N and Play only set the session's mode; the fragment's ticks take the steps
    (``tick``). Undo, roll-back and reset leave the stored run as it was and go on in a
    branch of it (a new run id), so a report already filed can always be regenerated; the
    notice says so.
    """
    live = session.live
    if live is None:
        return
    if action == "play":
        if session.active:
            session.notify("info", paused_words(session))
            session.halt()
        else:
            session.playing = True
        return
    if action == "run":
        session.playing = False
        session.running, session.slice_ended = (len(live.history), len(live.history) + n), None
        return
    if action in ("undo", "rollback", "reset"):
        go_back(session, action, n)
        return
    advance(session, n)


def paused_words(session: StudioSession) -> str:
    """What a Pause click ended, in words: Play, or Run N with how far it got (no stop rule ended it)."""
    step = len(session.live.history)
    if session.running is None:
        return f"Paused by you at step {step}; press Play, Step or Run to go on."
    first, last = session.running
    return (f"Paused by you after step {step}: Run {last - first} had taken {step - first} of its {last - first} "
            "steps, and no stop rule had ended it. Press Run or Step to go on.")


def advance(session: StudioSession, n: int, shown: Callable[[], None] | None = None,
            budget_s: float | None = None) -> None:
    """Take up to ``n`` steps on the live run; what they and their ending have to say becomes notices.

    ``shown`` is called after every step (a progress bar): drawing it is where Streamlit
    lets a Pause click take over. With ``budget_s`` the loop also leaves once that many
    seconds have passed, after a whole step. A stop rule that fired, or a failed step, ends
    Play and Run N.
    """
    live = session.live
    done, started = len(live.history), time.perf_counter()
    try:
        # an own model has no retrain reference, so "reached the reference" cannot fire
        rules = tuple(r for r in session.stop_when if r != "reached_reference" or session.own_model is None)
        for _ in live.steps(n, rules):
            if shown is not None:
                shown()
            if budget_s is not None and time.perf_counter() - started > budget_s:
                break
    except (ValueError, KeyError, StoreError) as err:
        session.halt()
        session.notify("error", f"The step failed and the model was left as it was: {err}")
        return
    for line in explain(live.history[done:], live.method):
        session.notify("warning", line)
    stop = live.run.stop_
    if stop is not None and stop.kind in STOP_NOTICE:
        session.halt()
        prefix = "The step failed and was undone" if stop.kind == "diverged" else "Stopped"
        session.notify(STOP_NOTICE[stop.kind], f"{prefix}: {stop.message}.")


def tick(session: StudioSession) -> None:
    """One slice of Play or Run N under a progress line that follows every step."""
    live, slot = session.live, st.empty()
    if session.playing:
        def shown() -> None:
            slot.caption(f"Playing: step {len(live.history)}. Pause stops after the step under way.")

        shown()
        advance(session, DEFAULTS.play_steps, shown)
        return
    first, last = session.running
    if not first <= len(live.history) < last:  # the run went back or ended meanwhile
        session.running = None
        return

    def shown() -> None:
        taken = len(live.history) - first
        slot.progress(taken / (last - first), text=f"Run {last - first}: {taken} of {last - first} steps")

    shown()
    redraw_s = 0.0 if session.slice_ended is None else time.perf_counter() - session.slice_ended
    advance(session, last - len(live.history), shown, max(SLICE_S, redraw_s))
    session.slice_ended = time.perf_counter()
    if session.running is not None and len(live.history) >= last:
        session.running = None


def again() -> None:
    """Run the stepper's fragment again at once, for Run N's next slice.

    Streamlit refuses a fragment-scoped rerun while the fragment runs as part of the whole
    page (a reload, a test's run), so then the whole page runs again.
    """
    try:
        st.rerun(scope="fragment")
    except StreamlitAPIException:
        st.rerun()


def go_back(session: StudioSession, action: str, n: int) -> None:
    """Undo, roll back to step ``n`` or reset the live run, keeping the stored run it leaves."""
    live = session.live
    if action == "undo" and not live.run.can_undo:
        return
    session.halt()
    left, steps = live.run_id, len(live.history)
    try:
        {"undo": live.undo, "rollback": lambda: live.rollback(n), "reset": live.reset}[action]()
    except (KeyError, StoreError) as err:
        session.notify("error", f"The run went back in memory, but its branch could not be stored: {err}")
        return
    where = {"undo": f"Undid step {steps}", "rollback": f"Rolled back to step {n}, the step closest to the retrain "
             "reference", "reset": "Reset to the original model"}[action]
    kept = (f" Run `{left}` keeps its {steps} steps; this continues as run `{live.run_id}`, a branch of it."
            if left and left != live.run_id else "")
    session.notify("info", f"{where}.{kept}")


STOP_LABELS = (
    ("reached_reference", "Stop when the retrain reference is reached",
     "Stop once forget accuracy and forget loss match the retrained model's within noise (or before the first step "
     "when nothing needs to change). Unlearning past that point only costs the rest of the model."),
    ("unavoidable", "Stop when degradation becomes unavoidable",
     "Stop after a step where no step inside the radius could meet B without worsening the protected loss "
     "(margin < 0; in full-gradient mode exactly κ > κ2)."),
    ("infeasible", "Stop after an infeasible step", "Stop after a step where no step inside the radius could meet B."),
)


def stop_choices(session: StudioSession) -> None:
    """The run-level stop rules, on by default: a run aims at the retrain reference, not at maximal forgetting.

    With the user's own model there is no reference, so its rule is shown off and disabled, with
    the reason; the session keeps the choice (``advance`` leaves it out), so it is back on when the
    Studio's own model is used again.
    """
    chosen = []
    for rule, label, help_text in STOP_LABELS:
        if rule == "reached_reference" and session.own_model is not None:
            st.checkbox(label, value=False, key=f"unlearn.stop.{rule}.no_target", disabled=True,
                        help="Your own model has no retrain reference, so there is no target to stop at.")
            chosen += [rule] if rule in session.stop_when else []
        elif st.checkbox(label, value=rule in session.stop_when, key=f"unlearn.stop.{rule}", help=help_text):
            chosen.append(rule)
    if session.own_model is not None:
        st.caption("No retrain reference (your own model): the run steps without a target line.")
    session.stop_when = tuple(chosen)


def record_fields(session: StudioSession) -> None:
    """The run's label and request reference: metadata the run list and the report show, never a new run."""
    left, right = st.columns(2)
    session.run_label = left.text_input("Label", value=session.run_label, key="unlearn.label", max_chars=120,
                                        placeholder="e.g. erasure of customer 1042",
                                        help="A name for the run in the run list and on its report.")
    session.request_ref = right.text_input("Request reference", value=session.request_ref, key="unlearn.request_ref",
                                           max_chars=120, placeholder="e.g. DSR-2026-118, J. Smith",
                                           help="The ticket id or requester this run answers; the report states it.")


def standing_note(session: StudioSession) -> None:
    """Where the run stands against the retrain reference: nothing to do, or the closest step so far."""
    live = session.live
    run = live.run
    if run.target is None:
        return
    if not live.history:
        settled = run.target.nothing_to_do()
        if settled is not None:
            st.success(f"**Nothing to do.** On the forget set the original model already behaves like the model "
                       f"retrained without these samples, within noise at this size: {settled.evidence()}. "
                       "Unlearning steps could only cost accuracy elsewhere. The Report page files this as the "
                       "outcome, with what a membership attack can and cannot tell.")
        return
    closest, last = run.closest_step_, len(live.history)
    at = "at the reference on the forget set, " if live.points[closest].get("at_reference") == 1.0 else ""
    text = (f"Closest to the retrain reference: **step {closest}**, {at}{run.distance_at(closest):.1f} points "
            f"(largest accuracy gap over forget, retain and test); now {run.distance_at(last):.1f} points.")
    if closest == last:
        st.caption(text)
        return
    left, right = st.columns([3, 1])
    left.caption(text + " The report describes the closest step.")
    right.button(f"Roll back to step {closest}", key="unlearn.rollback", on_click=act,
                 args=(session, "rollback", closest), width="stretch",
                 help="Return to the weights after that step and go on as a new run; the stored run keeps every step.")


def buttons(session: StudioSession) -> None:
    """The stepper's controls; each button's callback changes the live run before the panel redraws."""
    live = session.live
    cols = st.columns([1, 1.2, 1, 1, 1, 1])
    n = cols[1].number_input("N", 1, 500, DEFAULTS.run_steps, key="unlearn.n", label_visibility="collapsed",
                             help="Steps taken by Run N.")
    cols[0].button("Step", key="unlearn.step", on_click=act, args=(session, "step"), type="primary",
                   help="One unlearning step.", width="stretch")
    cols[2].button(f"Run {n}", key="unlearn.run", on_click=act, args=(session, "run", int(n)),
                   help="Take N steps, redrawing the charts as they come; Pause stops them.", width="stretch")
    cols[3].button("Pause" if session.active else "Play", key="unlearn.play", on_click=act, args=(session, "play"),
                   help=f"Keep stepping, {DEFAULTS.play_steps} steps every {DEFAULTS.play_interval_s:g} s; "
                   "Pause stops after the step under way.", width="stretch")
    cols[4].button("Undo", key="unlearn.undo", on_click=act, args=(session, "undo"), disabled=not live.run.can_undo,
                   help="Restore the weights before the last step and go on as a new run; the stored run keeps "
                   "that step.", width="stretch")
    cols[5].button("Reset", key="unlearn.reset", on_click=act, args=(session, "reset"),
                   disabled=not live.history, help="Back to the original model, as a new run; the stored run keeps "
                   "every step and stays reportable.", width="stretch")


def scoreboard(frame: pd.DataFrame, reference: dict | None) -> None:
    """Current accuracy per split, each next to the retrain reference's."""
    last = frame.iloc[-1]
    for column, split in zip(st.columns(3), ("forget", "retain", "test")):
        value = last[f"{split}_acc"]
        target = reference[f"{split}_acc"] if reference else math.nan
        delta = f"{100 * (value - target):+.1f} points vs retrain ({target:.0%})" if reference else None
        column.metric(f"{split.capitalize()} accuracy", f"{value:.1%}", delta=delta, delta_color="off")


def reference_point(live: LiveRun) -> dict | None:
    """The retrain reference's accuracy and loss on the run's own probe (None without a reference)."""
    return None if live.run.target is None else live.run.target.point


def run_figures(live: LiveRun) -> dict[str, go.Figure]:
    """The run's charts by caption (the Unlearn page draws them live, the report keeps them).

    Accuracy and loss per step, the trade-off path with the retrain reference marked, κ and
    κ2 per step, and for HAMU the hardness diagram. A long run is thinned to
    ``figures.PATH_POINTS`` steps (the first, the last and the closest to the reference always
    drawn). Each figure names the run's step count in ``layout.meta.steps``, which is how a
    test or a benchmark in the browser tells that a chart shows the latest step.
    """
    closest = live.run.closest_step_
    frame = thinned_path(live.frame(), keep=() if closest is None else (closest,))
    reference = reference_point(live)
    ref_point = None
    if reference is not None:
        start = frame.iloc[0]
        ref_point = (reference["retain_loss"] - start["retain_loss"], reference["forget_loss"] - start["forget_loss"])
    figures = {"Accuracy and loss per step": metric_curves(frame, reference),
               "Trade-off path": tradeoff_figure({live.method.upper(): frame[frame["step"] > 0]}, ref_point),
               "κ and κ2 per step": kappa_figure(frame)}
    if live.method.startswith("hamu"):
        figures["Hardness diagram"] = hardness_diagram(frame, live.method)
    for figure in figures.values():
        figure.layout.meta = {"steps": len(live.history)}
    return figures


def charts(session: StudioSession) -> None:
    """The live charts of the session's run, retrain reference included when known, updated in place.

    The charts are sent to the browser first and the numbers above them after, into a
    container placed before them: the charts are what a person watches after a press.
    """
    live = session.live
    head = st.container()
    figures = run_figures(live)
    live_charts(list(figures.values()), key="unlearn.charts")
    if "Hardness diagram" not in figures:
        st.info("The hardness diagram explains HAMU's steps; pick HAMU-Q or HAMU-U to see it.")
    with head:
        frame = live.frame()
        scoreboard(frame, reference_point(live))
        saved = f"run `{live.run_id}`" if live.run_id else "saved from the first step on"
        st.markdown(f"**Trade-off path: {len(frame) - 1} points** · {saved} · "
                    f"{live.method.upper()} · {len(live.history)} steps")
        standing_note(session)


def fingerprinted(session: StudioSession, ws: Workspace) -> dict:
    """The session's provenance with the original model's and the forget set's fingerprints, which reports state."""
    return {**session.provenance(ws.data), "model_fingerprint": ws.original.key, "forget_hash": session.forget_key}


def live_run(session: StudioSession, ws: Workspace, reference: nn.Module | None) -> LiveRun | None:
    """The session's run, rebuilt when the data, model, forget set, method or settings changed.

    ``reference`` (the retrain reference) gives the run its target: the stop rule
    "reached_reference", "nothing to do" and the closest step.
    """
    key = session.run_key(ws.original.key)
    if session.live is None or session.live.key != key:
        session.drop_run()
        try:
            session.live = LiveRun(key, ws.data, ws.original.model, session.forget_ids, session.method,
                                   session.method_settings(session.method), session.seed,
                                   store=runs.store_or_warn(), dataset=fingerprinted(session, ws),
                                   reference=reference, label=session.run_label, request_ref=session.request_ref)
        except ValueError as err:
            st.error(f"A run cannot start with these settings: {err}")
            return None
    try:
        session.live.describe(session.run_label, session.request_ref)
    except (KeyError, StoreError) as err:
        st.warning(f"The run's label and request reference could not be stored: {err}")
    return session.live
