"""The picture of one HAMU problem in the plane of its gradients: a ``PlaneProblem`` in, a figure out.

What is drawn is the problem in the space of steps Δ: the disc ‖Δ‖ ≤ R, the half-plane
g_f'·Δ ≥ B where the guarantee holds (their overlap is where HAMU may step), the two
gradients as directions, HAMU's step and the baselines' directions. Gradients are drawn to
scale with each other but not with the steps (a gradient of norm 1 beside a radius of 0.01
would hide the disc), so the longer one is drawn 1.2·R long and the legend says so.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from hamu_core.rules.plane import PlaneProblem
from hamu_ui.figures import _LAYOUT, SPLIT_COLOURS, _figure

HAMU_COLOUR = "#111111"  # the step itself, apart from every gradient's colour
BASELINE_COLOURS = {"GDiff": "#ff7f0e", "GA": "#e377c2", "PCGrad": "#17becf"}
GRADIENT_LENGTH = 1.2  # the longer gradient is drawn this many radii long
VIEW = 1.5  # half-width of the view in radii (more when a drawn vector is longer)
OFF_CHART = 3.0  # the paper's infeasible step is drawn only up to this many radii
CONSTRAINT_NAME = {"hamu-q": "g_f·Δ ≥ B (forget loss rises by B)", "hamu-u": "−g_r·Δ ≥ B (retain loss falls by B)"}


def half_plane(normal: np.ndarray, constraint: float, half_width: float) -> np.ndarray | None:
    """Corners (k, 2) of the square [−w, w]² cut to normal·Δ ≥ B; None when nothing of it is left.

    One edge of Sutherland–Hodgman clipping: keep inside corners, add the crossing points.
    """
    w = half_width
    square = np.array([[-w, -w], [w, -w], [w, w], [-w, w]])
    side = square @ normal - constraint  # ≥ 0 inside
    corners = []
    for i in range(4):
        a, b, sa, sb = square[i], square[(i + 1) % 4], side[i], side[(i + 1) % 4]
        if sa >= 0:
            corners.append(a)
        if sa * sb < 0:  # strictly across: a boundary through a corner adds no duplicate
            corners.append(a + (b - a) * sa / (sa - sb))
    return np.array(corners) if len(corners) >= 3 else None


def _arrow(vector: np.ndarray, name: str, colour: str, *, width: float = 2, dash: str = "solid",
           hover: str = "") -> go.Scatter:
    """A line from the origin to ``vector`` with an arrowhead at its tip."""
    return go.Scatter(x=[0.0, vector[0]], y=[0.0, vector[1]], mode="lines+markers", name=name,
                      line=dict(color=colour, width=width, dash=dash),
                      marker=dict(symbol=["circle", "arrow"], size=[1, 12], angleref="previous", color=colour),
                      hovertemplate=f"{name}<br>{hover}Δ = (%{{x:.3g}}, %{{y:.3g}})<extra></extra>")


def plane_figure(problem: PlaneProblem) -> go.Figure:
    """The problem HAMU solves for one step, drawn in the plane spanned by g_r and g_f."""
    R = problem.radius
    unit = max(R, 1e-12)
    longest = max(np.linalg.norm(problem.g_retain), np.linalg.norm(problem.g_forget), 1e-300)
    arrow_scale = GRADIENT_LENGTH * unit / longest
    exact_len = float(np.linalg.norm(problem.exact_step))
    exact_drawn = exact_len <= OFF_CHART * unit
    shown = [problem.step, problem.exact_step if exact_drawn else problem.step]
    half_width = max(VIEW * unit, *(1.1 * float(np.linalg.norm(v)) for v in shown))

    angles = np.linspace(0, 2 * np.pi, 121)
    traces = [go.Scatter(x=R * np.cos(angles), y=R * np.sin(angles), mode="lines", name="Radius R: steps allowed",
                         line=dict(color="#444", width=1), fill="toself", fillcolor="rgba(120,120,120,0.08)",
                         hoverinfo="skip")]
    # Cut from a square larger than the view, so the shaded half-plane's far edges never show.
    corners = half_plane(problem.constraint_normal, problem.constraint, 4 * half_width)
    if corners is not None and np.linalg.norm(problem.constraint_normal) > 0:
        traces.append(go.Scatter(x=[*corners[:, 0], corners[0, 0]], y=[*corners[:, 1], corners[0, 1]], mode="lines",
                                 name=f"Half-plane {CONSTRAINT_NAME[problem.variant]}", fill="toself",
                                 fillcolor="rgba(44,160,44,0.12)", line=dict(color="rgba(44,160,44,0.6)", width=1),
                                 hoverinfo="skip"))
    traces += [
        _arrow(arrow_scale * problem.g_retain, "g_r: retain gradient (direction)", SPLIT_COLOURS["retain"]),
        _arrow(arrow_scale * problem.g_forget, "g_f: forget gradient (direction)", SPLIT_COLOURS["forget"]),
    ]
    for name, direction in problem.baselines.items():
        traces.append(_arrow(direction, f"{name} direction (scaled to R)", BASELINE_COLOURS[name], width=1.5,
                             dash="dash"))
    if exact_drawn and not np.allclose(problem.exact_step, problem.step):
        traces.append(_arrow(problem.exact_step, "Paper's infeasible step (not taken)", "#7f7f7f", dash="dot"))
    traces.append(_arrow(problem.step, f"HAMU step ({problem.branch})", HAMU_COLOUR, width=4,
                     hover=f"forget gain {problem.forget_gain:.3g}, retain change {problem.retain_change:.3g}<br>"))

    annotations = []
    if half_plane(problem.constraint_normal, problem.constraint, half_width) is None \
            and np.linalg.norm(problem.constraint_normal) > 0:
        distance = problem.constraint / float(np.linalg.norm(problem.constraint_normal))
        annotations.append(dict(x=half_width, y=half_width, xanchor="right", yanchor="top", showarrow=False,
                                text=f"the half-plane where the guarantee holds starts {distance / unit:.3g}× R away"))
    if not exact_drawn and not np.allclose(problem.exact_step, problem.step):
        annotations.append(dict(x=half_width, y=0, xanchor="right", yanchor="bottom", showarrow=False,
                                text=f"paper's step: {exact_len / unit:.3g}× R, off the chart →"))
    limits = [-half_width, half_width]
    layout = dict(**_LAYOUT, height=460,
                  title=f"The step as a small problem: {problem.branch}", annotations=annotations,
                  xaxis=dict(range=limits, zeroline=True, constrain="domain", title="along g_f"),
                  yaxis=dict(range=limits, zeroline=True, scaleanchor="x", scaleratio=1, constrain="domain",
                             title="along g_r's part across g_f"),
                  legend=dict(orientation="h", yanchor="top", y=-0.15))
    return _figure(traces, layout)
