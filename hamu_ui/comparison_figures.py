"""Plotly builders of the Compare and Inspect pages: plain data in, ``go.Figure`` out, no Streamlit.

Kept apart from ``hamu_ui.figures`` (the Forget set and Unlearn charts) so each file stays
one sitting long; the colours and layout defaults are shared with it so every page of the
Studio looks alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from hamu_ui.figures import _LAYOUT, SPLIT_COLOURS

MODEL_COLOURS = {"original": "#8c8c8c", "current": "#d62728", "retrain": "#ff7f0e"}
TWIN_GAP = 0.25  # blank space between the two maps, as a fraction of the first map's width
MAX_LINKS = 300  # forget samples joined by a line in the twin embedding (more is unreadable)
# Axes of the accuracy map, in accuracy points: a run joins the view when within FOCUS_REACH of it
# (so one collapsed run cannot squeeze the rest), a view is at least FOCUS_MIN_SPAN wide (so a
# half-point gap does not look like a chasm) and gets FOCUS_PAD of margin for the markers.
FOCUS_REACH, FOCUS_MIN_SPAN, FOCUS_PAD = 10.0, 10.0, 2.0


def focus_range(anchors: Sequence[float], values: Sequence[float], *, reach: float = FOCUS_REACH,
                pad: float = FOCUS_PAD, min_span: float = FOCUS_MIN_SPAN, bounds: tuple[float, float] = (0.0, 100.0)
                ) -> tuple[float, float]:
    """An axis range around ``anchors`` (the reference and the original) that keeps nearby runs readable.

    The range starts at the anchors' span and takes in, one by one, every value within
    ``reach`` of its current edge, so a chain of sensible runs stays in view while a lone
    outlier (a collapsed model at 10 % retain accuracy beside runs at 97 %) does not
    squeeze them into a dot; it is drawn at the edge instead (``off_chart``). The range
    is then widened to at least ``min_span`` (slid back inside ``bounds`` when it would
    cross one) and padded by ``pad``. NaN values are ignored.
    """
    low, high = float(min(anchors)), float(max(anchors))
    finite = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    for v in np.sort(finite[finite < low])[::-1]:
        if low - v > reach:
            break
        low = float(v)
    for v in np.sort(finite[finite > high]):
        if v - high > reach:
            break
        high = float(v)
    grow = max(0.0, min_span - (high - low)) / 2
    low, high = low - grow, high + grow
    shift = max(0.0, bounds[0] - low) - max(0.0, high - bounds[1])  # slide back inside the bounds
    low, high = max(bounds[0], low + shift), min(bounds[1], high + shift)
    return low - pad, high + pad


def off_chart(values: Sequence[float], span: tuple[float, float]) -> np.ndarray:
    """-1 where a value lies below ``span``, +1 above it, 0 inside: off-chart points are drawn at that edge."""
    values = np.asarray(values, dtype=float)
    return np.where(values < span[0], -1, np.where(values > span[1], 1, 0))


EDGE_SYMBOLS = {(0, -1): "triangle-down", (0, 1): "triangle-up", (-1, 0): "triangle-left", (1, 0): "triangle-right"}


def reference_figure(points: pd.DataFrame, reference: Mapping[str, float], original: Mapping[str, float]) -> go.Figure:
    """Final points in accuracy space around the retrain reference: better is closer to the star.

    ``points`` is ``compare.merge_identical`` of ranked final points (closest first): one
    row per distinct point with ``labels``, ``forget_acc``, ``retain_acc``, ``test_acc``
    and ``distance``. x is forget accuracy, y retain accuracy (in %), the reference a star,
    the original model a grey cross; each point is numbered by rank. Axes follow
    ``focus_range`` around the reference and the original; a point beyond them is drawn on
    the edge as a triangle pointing where it lies, its true accuracies written beside it.
    """
    x, y = 100 * points["forget_acc"].to_numpy(float), 100 * points["retain_acc"].to_numpy(float)
    anchors = {axis: [100 * reference[f"{axis}_acc"], 100 * original[f"{axis}_acc"]] for axis in ("forget", "retain")}
    x_span, y_span = focus_range(anchors["forget"], x), focus_range(anchors["retain"], y)
    inset = FOCUS_PAD / 2  # off-chart points sit in the margin, apart from the points in range
    shown_x = np.clip(x, x_span[0] + inset, x_span[1] - inset)
    shown_y = np.clip(y, y_span[0] + inset, y_span[1] - inset)
    edges = zip(off_chart(x, x_span), off_chart(y, y_span))
    palette = qualitative.D3 + qualitative.Pastel
    traces, notes = [], []
    for rank, (row, px, py, edge) in enumerate(zip(points.itertuples(), shown_x, shown_y, edges), start=1):
        edge = (int(edge[0]), int(edge[1]))
        traces.append(go.Scatter(
            x=[px], y=[py], mode="markers+text", name=f"{rank}. {', '.join(row.labels)} ({row.distance:.1f} pts)",
            text=[str(rank)], textposition="top center",
            marker=dict(symbol=EDGE_SYMBOLS.get(edge, "circle" if edge == (0, 0) else "diamond"),
                        size=16 if rank == 1 else 11, color=palette[(rank - 1) % len(palette)],
                        line=dict(color="black", width=2 if rank == 1 else 0)),
            hovertemplate=(f"{'<br>'.join(row.labels)}<br>forget {100 * row.forget_acc:.1f}% · retain "
                           f"{100 * row.retain_acc:.1f}% · test {100 * row.test_acc:.1f}%<br>"
                           f"distance {row.distance:.1f} points<extra></extra>")))
        if edge != (0, 0):
            right = edge[0] == 1  # at the right edge the note goes to the marker's left
            notes.append(dict(x=px, y=py, text=f"{rank}: forget {100 * row.forget_acc:.0f}%, retain "
                              f"{100 * row.retain_acc:.0f}% (off the axes)", showarrow=False,
                              xanchor="right" if right else "left", xshift=-12 if right else 12,
                              font=dict(size=11, color="#555")))
    traces.append(go.Scatter(x=[anchors["forget"][1]], y=[anchors["retain"][1]], mode="markers", name="original model",
                             marker=dict(symbol="x", size=12, color=MODEL_COLOURS["original"]),
                             hovertemplate="original model<extra></extra>"))
    traces.append(go.Scatter(x=[anchors["forget"][0]], y=[anchors["retain"][0]], mode="markers",
                             name="retrain reference (the target)", hovertemplate="retrain reference<extra></extra>",
                             marker=dict(symbol="star", size=18, color=MODEL_COLOURS["retrain"],
                                         line=dict(color="black", width=1))))
    return go.Figure(traces, layout=dict(
        **_LAYOUT, height=440, annotations=notes, legend=dict(orientation="h", y=-0.2),
        title="Where each run ended: closer to the star (the retrain reference) is better",
        xaxis=dict(title="forget accuracy (%)", range=list(x_span)),
        yaxis=dict(title="retain accuracy (%)", range=list(y_span))))


def twin_embedding_figure(frame: pd.DataFrame, max_links: int = MAX_LINKS) -> go.Figure:
    """Two maps side by side, original (left) and current model (right), the same forget samples joined.

    ``frame`` is a ``embedding.linked_embeddings`` frame (x_a, y_a: original; x_b, y_b:
    current, already aligned onto the original) with a ``membership`` column. Both maps
    share one axis, the right one shifted, so a straight line can join a sample's two
    positions: a forget sample that moved far was pushed away from where the model kept it.
    """
    width = float(np.ptp(frame[["x_a", "x_b"]].to_numpy())) if len(frame) else 1.0
    shift = float(frame["x_a"].max() - frame["x_b"].min() + TWIN_GAP * width) if len(frame) else 0.0
    right = frame.assign(x_b=frame["x_b"] + shift)
    fig = go.Figure()
    forget = right[right["membership"] == "forget"]
    linked = forget.iloc[np.linspace(0, len(forget) - 1, min(len(forget), max_links)).astype(int)]
    fig.add_trace(go.Scatter(
        x=_segments(linked["x_a"], linked["x_b"]), y=_segments(linked["y_a"], linked["y_b"]), mode="lines",
        name="same forget sample", hoverinfo="skip", line=dict(color="rgba(214,39,40,0.25)", width=1)))
    for role in ("test", "retain", "forget"):
        group = right[right["membership"] == role]
        for side, x, y in (("original", "x_a", "y_a"), ("current", "x_b", "y_b")):
            fig.add_trace(go.Scatter(
                x=group[x], y=group[y], mode="markers", name=role, legendgroup=role, showlegend=side == "original",
                customdata=group[["id"]].to_numpy(), text=group["class_name"].astype(str),
                hovertemplate=f"{side} · id %{{customdata[0]}} · class %{{text}}<extra>{role}</extra>",
                marker=dict(color=SPLIT_COLOURS[role], size=8 if role == "forget" else 5,
                            opacity=0.35 if role == "test" else 0.8)))
    titles = [dict(x=x, xref="paper", y=1.02, yref="paper", text=text, showarrow=False, font=dict(size=14))
              for x, text in ((0.2, "original model"), (0.8, "current model"))]
    fig.update_layout(**_LAYOUT, height=480, annotations=titles, legend=dict(orientation="h", y=-0.02),
                      xaxis=dict(visible=False), yaxis=dict(visible=False))
    return fig


def _segments(start: pd.Series, end: pd.Series) -> list:
    """x (or y) coordinates of one line trace drawing a separate segment per pair (None breaks the line)."""
    points = []
    for a, b in zip(start, end):
        points += [a, b, None]
    return points


def class_accuracy_figure(table: pd.DataFrame, models: Sequence[str]) -> go.Figure:
    """Per-class accuracy bars, one colour per model: forget samples on the left, test samples on the right.

    ``table`` is ``metrics.class_accuracy``'s frame (columns split, class, n and one per model).
    """
    traces = []
    for axis, split in (("", "forget"), ("2", "test")):
        rows = table[table["split"] == split]
        for model in models:
            traces.append(go.Bar(x=rows["class"].astype(str), y=100 * rows[model], name=model, legendgroup=model,
                                 showlegend=axis == "", marker_color=MODEL_COLOURS.get(model, "#444"),
                                 customdata=rows[["n"]].to_numpy(), xaxis=f"x{axis}", yaxis=f"y{axis}",
                                 hovertemplate=f"{model} · class %{{x}}: %{{y:.1f}}% of %{{customdata[0]}}"
                                               f"<extra>{split}</extra>"))
    return go.Figure(traces, layout=dict(
        **_LAYOUT, height=320, barmode="group", legend=dict(orientation="h", y=-0.25),
        title="Accuracy per class: forget samples (left), unseen test samples (right)",
        xaxis=dict(domain=[0, 0.3], title="forget set, by class", type="category"),
        xaxis2=dict(domain=[0.38, 1], title="test set, by class", type="category", anchor="y2"),
        yaxis=dict(title="accuracy (%)", range=[0, 102]), yaxis2=dict(range=[0, 102], anchor="x2"),
    ))


def attack_histogram(scores: Mapping[str, np.ndarray], threshold: float, statistic: str = "loss",
                     log_scale: bool = True) -> go.Figure:
    """Overlaid distributions of a per-sample attack statistic, the attack's threshold as a line.

    ``scores`` maps a legend name (e.g. "forget · current") to the per-sample values. The
    attack calls a sample a member when its statistic is at or below the threshold, so
    whatever lies left of the line is "caught". Losses span orders of magnitude, hence
    the log axis by default.
    """
    fig = go.Figure()
    palette = qualitative.D3
    for i, (name, values) in enumerate(scores.items()):
        values = np.asarray(values, dtype=float)
        shown = np.log10(np.maximum(values, 1e-12)) if log_scale else values
        fig.add_trace(go.Histogram(x=shown, name=name, histnorm="probability", opacity=0.55, nbinsx=40,
                                   marker_color=_named_colour(name, palette[i % len(palette)])))
    line = float(np.log10(max(threshold, 1e-12))) if log_scale else float(threshold)
    fig.add_vline(x=line, line=dict(color="black", width=2, dash="dash"),
                  annotation_text="threshold", annotation_position="top")
    fig.update_layout(**_LAYOUT, height=320, barmode="overlay", legend=dict(orientation="h", y=-0.25),
                      title=f"Per-sample {statistic}: left of the line the attack says 'trained on'",
                      xaxis_title=f"log10 {statistic}" if log_scale else statistic, yaxis_title="fraction of samples")
    return fig


def _named_colour(name: str, fallback: str) -> str:
    """Forget red, test grey; the retrain reference's distribution in its own colour."""
    if "retrain" in name:
        return MODEL_COLOURS["retrain"]
    return next((colour for split, colour in SPLIT_COLOURS.items() if name.startswith(split)), fallback)


def collateral_figure(frame: pd.DataFrame) -> go.Figure:
    """Loss of each retain neighbour of the forget set before (x) and after (y) unlearning, log-log.

    ``frame`` has columns id, class_name, loss_original, loss_current. Points above the
    diagonal got worse: that is the collateral damage of forgetting their look-alikes.
    """
    x = np.maximum(frame["loss_original"].to_numpy(dtype=float), 1e-12)
    y = np.maximum(frame["loss_current"].to_numpy(dtype=float), 1e-12)
    low, high = (float(min(x.min(), y.min())), float(max(x.max(), y.max()))) if len(frame) else (1e-6, 1.0)
    fig = go.Figure([
        go.Scatter(x=[low, high], y=[low, high], mode="lines", name="no change", line=dict(color="#bbb", dash="dash")),
        go.Scatter(x=x, y=y, mode="markers", name="retain neighbour", customdata=frame[["id"]].to_numpy(),
                   text=frame["class_name"].astype(str),
                   marker=dict(color=SPLIT_COLOURS["retain"], size=7, opacity=0.7),
                   hovertemplate="id %{customdata[0]} · class %{text}<br>loss %{x:.3g} → %{y:.3g}<extra></extra>"),
    ])
    fig.update_layout(**_LAYOUT, height=340, title="Retain neighbours of the forget set: loss before → after",
                      xaxis=dict(title="loss, original model", type="log"),
                      yaxis=dict(title="loss, current model", type="log"), legend=dict(orientation="h", y=-0.25))
    return fig
