"""Plotly figure builders: plain data in, ``go.Figure`` out, no Streamlit.

Kept free of ``st.*`` so every chart can be unit-tested and reused by any page (or a
report) without a running app. The embedding figure stores each point's sample id in
``customdata``; ``selected_ids`` is its counterpart that reads ids back out of a
selection event (and the samples inside its box or lasso regions), so the encoding lives
in one file.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.colors import qualitative

from hamu_core.evaluation.embedding import ids_in_region
from hamu_core.evaluation.hardness import EASY_COS, HARD_COS

SPLIT_COLOURS = {"forget": "#d62728", "retain": "#1f77b4", "test": "#8c8c8c"}
BRANCH_STYLE = {  # branch → (marker symbol, colour) in the κ chart
    "direct": ("circle", "#2ca02c"),
    "rectified": ("diamond", "#1f77b4"),
    "colinear": ("square", "#9467bd"),
    "infeasible": ("x", "#d62728"),
    "zero_forget_grad": ("triangle-up", "#8c564b"),
}
REGION_COLOURS = {"direct": "rgba(44,160,44,0.12)", "rectified": "rgba(31,119,180,0.10)",
                  "collateral forgetting": "rgba(214,39,40,0.14)"}
COLOUR_BY = ("class", "forget / retain", "hardness")
SVG_LIMIT = 5000  # above this many points the embedding is drawn with WebGL
PATH_POINTS = 300  # steps drawn per live chart; a longer run is thinned evenly (thinned_path)
_LAYOUT = dict(template="plotly_white", margin=dict(l=10, r=10, t=40, b=10))


@functools.cache
def _template(name: str) -> dict:
    return pio.templates[name].to_plotly_json()


def _figure(traces: list, layout: dict) -> go.Figure:
    """``go.Figure(traces, layout)``, the same figure at a tenth of the cost.

    Plotly deep-copies and validates the whole named template (most of a small figure)
    on every figure, about 20 ms each; the Unlearn page redraws four on every step. The
    layout without it is still validated; the template, valid once, is attached as is (the
    figure copies it). Later edits, e.g. ``update_layout`` by a caller, are validated again.
    """
    checked = go.Layout({k: v for k, v in layout.items() if k != "template"}).to_plotly_json()
    if "template" in layout:
        checked["template"] = _template(layout["template"])
    fig = go.Figure(traces, layout=checked, _validate=False)
    fig._validate = fig.layout._validate = True
    return fig


def thinned_path(frame: pd.DataFrame, limit: int = PATH_POINTS, keep=()) -> pd.DataFrame:
    """At most ``limit`` rows of a per-step frame spread evenly over it, plus the steps in ``keep``.

    The first and the last row always stay (where the run began and where it is now), and
    so does every row whose ``step`` is in ``keep`` (a marked step, such as the one closest
    to the reference): a chart of a long run then draws a bounded number of points, so
    redrawing it stays as quick at step 3,000 as at step 30. Rows keep their order.
    """
    if limit < 2:
        raise ValueError(f"limit must be at least 2 (the first and the last row), got {limit}")
    if len(frame) <= limit:
        return frame
    spread = np.unique(np.round(np.linspace(0, len(frame) - 1, limit)).astype(int))
    marked = np.flatnonzero(frame["step"].isin(list(keep)).to_numpy())
    return frame.iloc[np.union1d(spread, marked)]


def embedding_figure(frame: pd.DataFrame, colour_by: str = "class", hover: pd.Series | None = None) -> go.Figure:
    """Scatter of an annotated embedding (``embedding.annotate``): one point per sample.

    Forget samples get a black outline whatever the colouring, test samples are faint
    (they can never be forgotten). Sample ids go in ``customdata``; ``hover`` (indexed like
    ``frame``) replaces the default hover text, e.g. with the text of each sample.
    The default drag tool is the lasso, so a user can select at once.
    """
    if colour_by not in COLOUR_BY:
        raise ValueError(f"colour_by must be one of {COLOUR_BY}, got {colour_by!r}")
    text = hover if hover is not None else (
        "id " + frame["id"].astype(str) + " · class " + frame["class_name"].astype(str) + " · " + frame["membership"])
    frame = frame.assign(_hover=text)
    scatter = go.Scattergl if len(frame) > SVG_LIMIT else go.Scatter
    fig = go.Figure()
    if colour_by == "hardness":
        scored = frame["cos"].notna() if "cos" in frame else pd.Series(False, index=frame.index)
        _add_points(fig, scatter, frame[~scored], "not scored (test)", SPLIT_COLOURS["test"])
        _add_points(fig, scatter, frame[scored], "cos θ (hardness)", frame.loc[scored, "cos"],
                    colorscale="RdBu_r", cmin=-1, cmax=1, colorbar=dict(title="cos θ", thickness=12))
    elif colour_by == "forget / retain":
        for role in ("retain", "test", "forget"):
            _add_points(fig, scatter, frame[frame["membership"] == role], role, SPLIT_COLOURS[role])
    else:
        palette = qualitative.D3 + qualitative.Pastel
        for label, group in frame.groupby("label", sort=True):
            _add_points(fig, scatter, group, str(group["class_name"].iloc[0]), palette[int(label) % len(palette)])
    fig.update_layout(**_LAYOUT, height=560, dragmode="lasso", legend=dict(orientation="h", y=-0.02),
                      hoverlabel=dict(font_family="DejaVu Sans Mono, Liberation Mono, monospace"),
                      xaxis=dict(visible=False), yaxis=dict(visible=False), clickmode="event+select")
    return fig


def _add_points(fig: go.Figure, scatter, group: pd.DataFrame, name: str, colour, **marker) -> None:
    if group.empty:
        return
    forget = (group["membership"] == "forget").to_numpy()
    fig.add_trace(scatter(
        x=group["x"], y=group["y"], mode="markers", name=name,
        customdata=group[["id"]].to_numpy(), text=group["_hover"], hovertemplate="%{text}<extra></extra>",
        marker=dict(color=colour, size=np.where(forget, 9, 6),
                    opacity=np.where(group["membership"] == "test", 0.35, 0.85),
                    line=dict(color="black", width=np.where(forget, 1.5, 0)), **marker),
    ))


Region = tuple[tuple[float, ...], tuple[float, ...]]  # a polygon's vertex xs and ys, in data coordinates


def selection_regions(event) -> tuple[Region, ...]:
    """The box and lasso regions of a plotly selection event, each as a polygon (a box as its 4 corners).

    Streamlit reports a box as ``{"x": [x0, x1], "y": [y0, y1]}`` and a lasso as its
    path's vertices ``{"x": [...], "y": [...]}``, both in data coordinates.
    """
    if not event:
        return ()
    selection = event["selection"] if "selection" in event else {}
    regions = []
    for box in selection.get("box", []) or []:
        (x0, x1), (y0, y1) = box["x"], box["y"]
        regions.append(((x0, x1, x1, x0), (y0, y0, y1, y1)))
    for lasso in selection.get("lasso", []) or []:
        regions.append((tuple(lasso["x"]), tuple(lasso["y"])))
    return tuple((tuple(map(float, xs)), tuple(map(float, ys))) for xs, ys in regions)


def selected_ids(event, frame: pd.DataFrame | None = None) -> np.ndarray:
    """Sample ids selected in a plotly selection event, sorted and unique.

    The event's points (clicked, or drawn inside a box or lasso) give their ``customdata``,
    which may come back as a list, as a dict such as ``{"0": id}``, or as the bare id. Given
    the map's ``frame`` (columns id, x, y, every mapped sample), each box or lasso region
    also selects every sample of the frame inside it, drawn or not: on a subsampled map a
    lasso then takes the whole region, not only the points the browser drew.
    """
    if not event:
        return np.empty(0, dtype=np.int64)
    selection = event["selection"] if "selection" in event else {}
    ids = []
    for point in selection.get("points", []) or []:
        value = point.get("customdata")
        if isinstance(value, dict):
            value = value.get("0", next(iter(value.values()), None))
        elif isinstance(value, (list, tuple)):
            value = value[0] if value else None
        if value is not None:
            ids.append(int(value))
    if frame is not None:
        ids.extend(i for xs, ys in selection_regions(event) for i in ids_in_region(frame, xs, ys).tolist())
    return np.unique(np.asarray(ids, dtype=np.int64))


def class_mix_figure(class_mix: Mapping[str, int]) -> go.Figure:
    """Horizontal bars: how many forget samples each class contributes."""
    fig = go.Figure(go.Bar(x=list(class_mix.values()), y=[str(k) for k in class_mix], orientation="h",
                           marker_color=SPLIT_COLOURS["forget"], hovertemplate="%{y}: %{x}<extra></extra>"))
    fig.update_layout(**_LAYOUT, height=max(160, 26 * len(class_mix) + 70), title="Class mix",
                      xaxis_title="samples", yaxis=dict(autorange="reversed", type="category"))
    return fig


def hardness_histogram(cos: np.ndarray) -> go.Figure:
    """Histogram of per-sample cos θ with the easy / neutral / hard bands of ``hardness_reading``."""
    fig = go.Figure(go.Histogram(x=np.asarray(cos, dtype=float), xbins=dict(start=-1, end=1, size=0.05),
                                 marker_color=SPLIT_COLOURS["forget"], name="forget samples"))
    fig.add_vrect(x0=-1, x1=EASY_COS, fillcolor=REGION_COLOURS["direct"], line_width=0,
                  annotation_text="easy", annotation_position="top left")
    fig.add_vrect(x0=HARD_COS, x1=1, fillcolor=REGION_COLOURS["collateral forgetting"], line_width=0,
                  annotation_text="hard", annotation_position="top right")
    fig.update_layout(**_LAYOUT, height=260, title="Per-sample hardness", xaxis=dict(title="cos θ_i", range=[-1, 1]),
                      yaxis_title="forget samples", bargap=0.05)
    return fig


def metric_curves(frame: pd.DataFrame, reference: Mapping[str, float] | None = None) -> go.Figure:
    """Accuracy and loss per step on forget / retain / test, the retrain reference as dashed lines.

    ``frame`` has a ``step`` column and ``<split>_acc`` / ``<split>_loss`` columns;
    ``reference`` holds the same keys for the retrained model.
    """
    traces, shapes = [], []
    for axis, metric, scale in (("", "acc", 100.0), ("2", "loss", 1.0)):
        for split, colour in SPLIT_COLOURS.items():
            name = f"{split}_{metric}"
            traces.append(go.Scatter(x=frame["step"], y=frame[name] * scale, mode="lines+markers", name=split,
                                     line=dict(color=colour), marker=dict(size=4), legendgroup=split,
                                     showlegend=axis == "", xaxis=f"x{axis}", yaxis=f"y{axis}"))
            if reference is not None:  # a dashed line across the whole panel at the reference value
                shapes.append(dict(type="line", xref=f"x{axis} domain", x0=0, x1=1, yref=f"y{axis}",
                                   y0=reference[name] * scale, y1=reference[name] * scale,
                                   line=dict(color=colour, dash="dash", width=1)))
    # Both panels are laid out by hand: make_subplots and add_hline cost tens of ms per call.
    return _figure(traces, dict(
        **_LAYOUT, height=300, legend=dict(orientation="h", y=-0.25), shapes=shapes,
        title="Forget and retain, per step" + (" (dashed: retrain reference)" if reference is not None else ""),
        xaxis=dict(domain=[0, 0.44], title="step"), xaxis2=dict(domain=[0.56, 1], title="step", anchor="y2"),
        yaxis=dict(title="accuracy (%)", range=[-2, 102]), yaxis2=dict(title="mean loss", anchor="x2"),
    ))


def kappa_figure(frame: pd.DataFrame) -> go.Figure:
    """κ per step with one marker style per HAMU branch, and the stopping threshold κ2.

    Where κ rises above κ2, retain utility must degrade to meet the constraint (HAMU_SPEC,
    stopping signal). Baselines have no branch or κ2: their κ is drawn plain.
    """
    steps = frame[frame["step"] > 0]
    traces = [go.Scatter(x=steps["step"], y=steps["kappa"], mode="lines", name="κ = g_r·g_f",
                         line=dict(color="#444", width=1))]
    if steps["kappa2"].notna().any():
        traces.append(go.Scatter(x=steps["step"], y=steps["kappa2"], mode="lines+markers", name="κ2 (threshold)",
                                 line=dict(color=SPLIT_COLOURS["forget"], dash="dash"),
                                 marker=dict(symbol="line-ew-open", size=10)))
    for branch, group in steps.groupby("branch", sort=False):
        symbol, colour = BRANCH_STYLE.get(branch, ("circle-open", "#444"))
        traces.append(go.Scatter(x=group["step"], y=group["kappa"], mode="markers", name=branch or "κ",
                                 marker=dict(symbol=symbol, color=colour, size=8)))
    return _figure(traces, dict(**_LAYOUT, height=300, title="Hardness κ per step, by branch taken",
                                xaxis=dict(title="step"), yaxis=dict(title="κ"),
                                legend=dict(orientation="h", y=-0.25)))


def tradeoff_figure(paths: Mapping[str, pd.DataFrame], reference: tuple[float, float] | None = None) -> go.Figure:
    """Forget-loss gain against retain-loss change, one path per run, the retrain reference marked.

    Each frame has ``step``, ``retain_loss_change`` and ``forget_loss_gain``; up and to the
    left is better (more forgetting at less cost).
    """
    palette = qualitative.D3
    traces = []
    for i, (label, path) in enumerate(paths.items()):
        traces.append(go.Scatter(
            x=path["retain_loss_change"], y=path["forget_loss_gain"], mode="lines+markers", name=label,
            customdata=path[["step"]].to_numpy(), marker=dict(size=7, color=palette[i % len(palette)]),
            hovertemplate="step %{customdata[0]}<br>retain loss %{x:+.4f}<br>forget loss %{y:+.3f}<extra></extra>"))
    if reference is not None:
        traces.append(go.Scatter(x=[reference[0]], y=[reference[1]], mode="markers", name="retrain reference",
                                 marker=dict(symbol="star", size=16, color="#ff7f0e", line=dict(color="black", width=1))))
    zero = dict(type="line", xref="x", x0=0, x1=0, yref="y domain", y0=0, y1=1, line=dict(color="#bbb", width=1))
    return _figure(traces, dict(**_LAYOUT, height=340, title="Trade-off path", shapes=[zero],
                                xaxis=dict(title="retain-loss change (cost)"),
                                yaxis=dict(title="forget-loss gain (forgetting)"), legend=dict(orientation="h", y=-0.25)))


def constraint_ratio(kappa: float, cos_rf: float, kappa2: float) -> float:
    """β = b/R = B/(‖g_f'‖·R) of one HAMU step, recovered from κ, cos θ_rf and κ2.

    κ2 = ‖g_r'‖‖g_f'‖·√(1 − β²) and ‖g_r'‖‖g_f'‖ = κ/cos θ_rf (HAMU_SPEC, stopping signal).
    Infinite when κ2 is NaN (the step was infeasible: β > 1); NaN when cos θ_rf is 0.
    """
    if math.isnan(kappa2):
        return math.inf
    if cos_rf == 0 or kappa == 0:
        return math.nan
    ratio = min(1.0, abs(kappa2 * cos_rf / kappa))
    return math.sqrt(1.0 - ratio * ratio)


def least_cost(cos: np.ndarray, beta: float) -> np.ndarray:
    """Least first-order change of the protected loss for a step meeting the constraint, in units of R·‖g_r'‖.

    HAMU_SPEC (stopping signal): with φ = arccos(β), ΔL* = ‖g_r'‖R·cos(φ + θ_rf) on the
    rectified branch and −‖g_r'‖R on the direct branch (cos θ_rf ≤ −β). It is positive,
    so retain utility must degrade, exactly when cos θ_rf > √(1 − β²), i.e. κ > κ2.
    """
    cos = np.clip(np.asarray(cos, dtype=float), -1.0, 1.0)
    rectified = np.cos(math.acos(min(beta, 1.0)) + np.arccos(cos))
    return np.where(cos <= -beta, -1.0, rectified)


def hardness_diagram(frame: pd.DataFrame, variant: str = "hamu-q") -> go.Figure:
    """Least retain cost of meeting the constraint against hardness, for the latest step of a HAMU run.

    The curve is drawn for the latest step's β; the shaded regions are its direct,
    rectified and collateral-forgetting (degradation unavoidable) ranges of cos θ_rf. Every
    step is placed at its own cos θ_rf on its own curve; the latest is the large marker.
    """
    cost = "rise in retain loss" if variant == "hamu-q" else "fall in forget loss"
    layout = dict(**_LAYOUT, height=340, title="Hardness diagram", legend=dict(orientation="h", y=-0.25),
                  xaxis=dict(title="hardness cos θ_rf = κ / (‖g_r‖‖g_f‖)", range=[-1, 1]),
                  yaxis=dict(title=f"least {cost} / (R‖g‖)", range=[-1.1, 1.1]))
    steps = frame[frame["step"] > 0]
    if steps.empty:
        return _figure([], layout)
    betas = [constraint_ratio(k, c, k2) for k, c, k2 in zip(steps["kappa"], steps["cos_rf"], steps["kappa2"])]
    beta, last = betas[-1], steps.iloc[-1]
    if not 0 <= beta <= 1:
        reason = "infeasible: no step inside the radius gains B" if beta > 1 else "no angle: a gradient vanished"
        note = dict(x=0, y=0, text=f"Step {int(last['step'])}: {reason}", showarrow=False, font=dict(size=14))
        return _figure([], {**layout, "annotations": [note]})
    edge = math.sqrt(1 - beta * beta)
    regions = (("direct", -1, -beta, "left"), ("rectified", -beta, edge, "left"),
               ("collateral forgetting", edge, 1, "right"))
    # Shapes and labels go into the layout at once: add_vrect validates the figure on every call.
    shapes = [dict(type="rect", xref="x", yref="paper", x0=x0, x1=x1, y0=0, y1=1, fillcolor=REGION_COLOURS[name],
                   line_width=0, layer="below") for name, x0, x1, _ in regions]
    shapes.append(dict(type="line", xref="paper", x0=0, x1=1, yref="y", y0=0, y1=0, line=dict(color="#bbb", width=1)))
    labels = [dict(x=x0 if side == "left" else x1, xanchor=side, y=1, yref="paper", yanchor="top", text=name,
                   showarrow=False, font=dict(size=11, color="#555")) for name, x0, x1, side in regions]
    grid = np.linspace(-1, 1, 401)
    placed = [(c, float(least_cost(c, b))) for c, b in zip(steps["cos_rf"], betas) if 0 <= b <= 1]
    traces = [
        go.Scatter(x=grid, y=least_cost(grid, beta), mode="lines", name=f"least cost (β = {beta:.2f})",
                   line=dict(color="#333")),
        go.Scatter(x=[p[0] for p in placed], y=[p[1] for p in placed], mode="markers", name="earlier steps",
                   marker=dict(color="#999", size=5)),
        go.Scatter(x=[last["cos_rf"]], y=[float(least_cost(last["cos_rf"], beta))], mode="markers",
                   name=f"step {int(last['step'])}", marker=dict(color="#ff7f0e", size=14, line=dict(color="black", width=1))),
    ]
    return _figure(traces, {**layout, "shapes": shapes, "annotations": labels})
