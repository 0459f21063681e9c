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

from hamu_ui.figures import _LAYOUT, SPLIT_COLOURS, tradeoff_figure

MODEL_COLOURS = {"original": "#8c8c8c", "current": "#d62728", "retrain": "#ff7f0e"}
TWIN_GAP = 0.25  # blank space between the two maps, as a fraction of the first map's width
MAX_LINKS = 300  # forget samples joined by a line in the twin embedding (more is unreadable)


def frontier_figure(paths: Mapping[str, pd.DataFrame], front: pd.DataFrame,
                    reference: tuple[float, float] | None = None) -> go.Figure:
    """Every method's trade-off path overlaid, the Pareto front of their final points drawn over them.

    ``paths`` as for ``figures.tradeoff_figure``; ``front`` holds the non-dominated final
    points (``compare.pareto_front``): columns label, retain_loss_change, forget_loss_gain.
    """
    fig = tradeoff_figure(paths, reference)
    front = front.sort_values("retain_loss_change")
    fig.add_trace(go.Scatter(
        x=front["retain_loss_change"], y=front["forget_loss_gain"], mode="lines+markers", name="Pareto front",
        text=front["label"], hovertemplate="%{text}<br>retain loss %{x:+.4f}<br>forget loss %{y:+.3f}<extra></extra>",
        line=dict(color="black", width=3, dash="dot"),
        marker=dict(symbol="circle-open", size=18, color="black", line=dict(width=2))))
    fig.update_layout(title="Trade-off paths and the Pareto front of final points", height=420)
    return fig


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
