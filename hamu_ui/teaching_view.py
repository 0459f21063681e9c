"""The Unlearn page's "Why this step?": one step's problem drawn, replayed, and played with.

A step of HAMU is a small problem in the plane of its two gradients (``hamu_core.rules.plane``),
fixed by numbers every StepRecord keeps: ‖g_r‖, ‖g_f‖, cos θ_rf, R and B. So any earlier
step can be redrawn from the history alone, and "what if" sliders that move the angle, B
and R show the branch change the moment it does. Plain words come first; the formulas wait
behind a toggle (Streamlit does not nest expanders).
"""

from __future__ import annotations

import math

import numpy as np
import streamlit as st

from hamu_core.rules.plane import PlaneProblem, plane_problem
from hamu_core.runs.unlearner import StepRecord
from hamu_ui.plane_figures import plane_figure
from hamu_ui.session import StudioSession

TITLE = "Why this step? The problem HAMU solves, drawn"
EXPANDER_KEY = "unlearn.plane"
# variant → (what the step guarantees, what it protects, the protected loss's name)
AIMS = {"hamu-q": ("raise the forget loss", "lower the retain loss", "retain"),
        "hamu-u": ("lower the retain loss", "raise the forget loss", "forget")}
INTRO = ("Each HAMU step asks one question: *which step, no longer than R, is guaranteed to {guarantee} by at least "
         "B, and does the least harm to the {protected_name} loss?* Only two directions matter, the gradients of the "
         "retain loss (g_r) and of the forget loss (g_f), so the whole question fits in one flat picture: the grey disc "
         "holds every allowed step, the green half-plane every step that meets the guarantee, and HAMU picks the best "
         "point they share.")
FORMULAS = {
    "direct": r"\Delta = -R\,\frac{g_r'}{\lVert g_r'\rVert}\quad\text{when}\quad g_r'\cdot g_f' \le -B\,\lVert g_r'\rVert/R",
    "rectified": r"\Delta = \frac{B}{\lVert g_f'\rVert^2}g_f' - s\,\frac{g_{r\perp}'}{\lVert g_{r\perp}'\rVert},\quad "
                 r"s = \sqrt{R^2 - B^2/\lVert g_f'\rVert^2},\quad g_{r\perp}' = g_r' - \frac{g_r'\cdot g_f'}{\lVert g_f'\rVert^2}g_f'",
    "colinear": r"\Delta = \frac{B}{\lVert g_f'\rVert^2}g_f'\quad\text{when}\quad \lVert g_{r\perp}'\rVert < \varepsilon",
    "infeasible": r"R^2 < B^2/\lVert g_f'\rVert^2:\quad \Delta_{\text{paper}} = \frac{B}{\lVert g_f'\rVert^2}g_f',"
                  r"\quad \Delta_{\text{capped}} = R\,\frac{g_f'}{\lVert g_f'\rVert}",
    "zero_forget_grad": r"\lVert g_f'\rVert^2 < \varepsilon,\ B > \varepsilon:\quad \Delta = 0",
}


def usable(records: list[StepRecord]) -> list[StepRecord]:
    """The records that fix a HAMU problem: finite norms, angle, R and B (baseline steps have no R or B)."""
    fields = ("retain_grad_norm", "forget_grad_norm", "cos_rf", "radius", "constraint")
    return [r for r in records if r.branch and all(math.isfinite(getattr(r, f)) for f in fields)]


def branch_words(problem: PlaneProblem, capped: bool) -> str:
    """What the branch means, in plain words, for this variant."""
    guarantee, protect, name = AIMS[problem.variant]
    words = {
        "direct": (f"**Easy step (direct).** No guarantee is asked (B = 0), so HAMU spends the whole radius to "
                   f"{protect}." if problem.constraint <= 0 else
                   f"**Easy step (direct).** The full-radius step that does nothing but {protect} already manages to "
                   f"{guarantee} by at least B: forgetting and keeping pull the same way, so HAMU takes that step."),
        "rectified": f"**Trade-off step (rectified).** HAMU meets the guarantee exactly (its arrow ends on the edge of "
                     f"the green half-plane) and spends the rest of the radius to {protect} as much as it can.",
        "colinear": "**Parallel gradients (colinear).** Nothing is left to trade: HAMU takes the shortest step that "
                    "meets the guarantee, straight along the gradient it must follow.",
        "infeasible": "**Out of reach (infeasible).** The green half-plane does not touch the disc: no allowed step can "
                      f"{guarantee} by B. " + ("HAMU took the best step inside the disc instead (the Studio's default)."
                                               if capped else "HAMU took the paper's longer step that does gain B."),
        "zero_forget_grad": f"**No direction helps (zero gradient).** No step can {guarantee} at all, so HAMU stays put.",
    }
    text = words[problem.branch]
    if problem.degradation_unavoidable:
        text += (f" Even this best step makes the {name} loss worse: the two gradients point too much the same way "
                 "for this B, the signal to consider stopping.")
    return text


def _whatif(record: StepRecord | None, variant: str, key: str) -> tuple[float, float, float]:
    """θ_rf (degrees), B and R from sliders that start at the chosen step's values.

    B reaches twice the largest gain the starting radius allows (R·‖g_f'‖), so every branch,
    infeasible included, is a slide away.
    """
    if record is None:
        theta0, R0, B0, guarded_norm = 60.0, 1.0, 0.5, 1.0
    else:
        theta0 = math.degrees(math.acos(min(1.0, max(-1.0, record.cos_rf))))
        R0, B0 = max(record.radius, 1e-12), record.constraint
        guarded_norm = record.forget_grad_norm if variant == "hamu-q" else record.retain_grad_norm
    b_top = max(2.0 * R0 * max(guarded_norm, 1e-12), 1.5 * B0)
    cols = st.columns(3)
    theta = cols[0].slider("Angle θ_rf between g_r and g_f (degrees)", 0.0, 180.0, round(theta0, 1), 0.1,
                           key=f"{key}.theta", help="0°: forget data look exactly like retain data; 180°: opposite.")
    B = cols[1].slider("Constraint B", 0.0, b_top, float(B0), b_top / 200, key=f"{key}.B", format="%.2e",
                       help="The guaranteed gain per step.")
    R = cols[2].slider("Radius R", R0 / 20, 3 * R0, float(R0), R0 / 100, key=f"{key}.R", format="%.2e",
                       help="The longest step allowed.")
    return theta, B, R


def show(session: StudioSession) -> None:
    """The expander "Why this step?", whose content is drawn only while it is open.

    The stepper's fragment reruns on every step and every Play tick; a closed teaching view
    should cost those reruns nothing.
    """
    expander = st.expander(TITLE, key=EXPANDER_KEY, on_change="rerun")
    with expander:
        if expander.open:
            draw(session)


def draw(session: StudioSession) -> None:
    """A step slider over the run's HAMU steps, what-if sliders, the picture and its reading."""
    live = session.live
    hamu = live is not None and live.method in AIMS
    variant = live.method if hamu else "hamu-q"
    guarantee, _, name = AIMS[variant]
    st.markdown(INTRO.format(guarantee=guarantee, protected_name=name))
    record = _replayed(usable(live.history) if hamu else [])
    if record is None:
        st.caption("Take a HAMU step to replay it here; until then the sliders below play with an example."
                   if live is None or hamu else
                   f"This run uses {live.method.upper()}, which solves no such problem; the sliders below show "
                   "what HAMU would face.")
    norm_r = 1.0 if record is None else record.retain_grad_norm
    norm_f = 1.0 if record is None else record.forget_grad_norm
    whatif = record is None or st.toggle("What if… (move the angle, B and R)", key="unlearn.plane.whatif")
    if whatif:
        theta, B, R = _whatif(record, variant, f"unlearn.plane.{record.step if record else 0}")
        cos = math.cos(math.radians(theta))
    else:
        cos, B, R = record.cos_rf, record.constraint, record.radius
    rule = live.run.rule if hamu else None
    capped = getattr(rule, "infeasible_step", "cap") == "cap"
    problem = plane_problem(norm_r, norm_f, cos, R, B, variant, infeasible_step="cap" if capped else "exact")
    st.plotly_chart(plane_figure(problem), key="unlearn.plane.figure")
    _reading(problem, None if whatif else record, getattr(rule, "mode", "full"), capped)


def _replayed(records: list[StepRecord]) -> StepRecord | None:
    """The step to draw: chosen on a slider among several, the only one, or None before any."""
    if not records:
        return None
    if len(records) == 1:
        st.caption(f"Step {records[0].step}, the run's only step so far.")
        return records[0]
    steps = [r.step for r in records]
    chosen = st.select_slider("Replay step", steps, value=steps[-1], key="unlearn.plane.step")
    return records[steps.index(chosen)]


def _reading(problem: PlaneProblem, record: StepRecord | None, mode: str, capped: bool) -> None:
    """The picture in words, how exact it is for the replayed ``record`` (None: a what-if), the formulas on demand."""
    st.markdown(branch_words(problem, capped))
    st.caption(f"First-order effect of the drawn step: forget loss {problem.forget_gain:+.3g}, retain loss "
               f"{problem.retain_change:+.3g}. Dashed arrows: where GDiff, GA and PCGrad point from the same "
               "gradients, all drawn R long to compare directions (their real steps are lr·‖u‖ long).")
    if record is not None and mode != "full":
        st.caption(f"This run solves one problem per parameter tensor (the recorded branch: {record.branch}, "
                   f"counts {record.branch_counts}). The picture is the global problem with the run's total R and "
                   "B: an approximation. In full-gradient mode it is exact, since every HAMU step lies in the "
                   "plane of g_r and g_f.")
    elif record is not None:
        st.caption("Full-gradient mode: this picture is exact, since every HAMU step lies in the plane of g_r "
                   "and g_f.")
    if st.toggle("Show the formulas", key="unlearn.plane.formulas"):
        st.latex(r"\min_\Delta\ g_r'\cdot\Delta\quad\text{s.t.}\quad g_f'\cdot\Delta \ge B,\ \lVert\Delta\rVert \le R")
        st.caption("HAMU-Q: g_r' = g_r, g_f' = g_f. HAMU-U: g_r' = −g_f, g_f' = −g_r. This step's branch:")
        st.latex(FORMULAS[problem.branch])
        g_r, g_f = np.linalg.norm(problem.g_retain), np.linalg.norm(problem.g_forget)
        cos = problem.g_retain[0] / g_r if g_r > 0 else 0.0
        st.caption(f"In this picture: ‖g_r‖ = {g_r:.3g}, ‖g_f‖ = {g_f:.3g}, cos θ_rf = {cos:.3f}, "
                   f"R = {problem.radius:.3g}, B = {problem.constraint:.3g}, ‖Δ‖ = {np.linalg.norm(problem.step):.3g}.")
