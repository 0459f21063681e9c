"""Plotly figures of the per-sample privacy audit: data in, ``go.Figure`` out, no Streamlit.

The ROC curve is drawn on log-log axes because what matters to a data-protection officer is
the low false-positive end: an attack that confidently names a few forget samples at
0.1 % FPR is a real exposure even when its AUC is near 0.5 (Carlini et al., S&P 2022).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from scipy.stats import spearmanr

MODEL_STYLE = {"original": ("#8c8c8c", "dash"), "current": ("#d62728", "solid"), "retrain": ("#1f77b4", "dot")}
MODEL_NAMES = {"original": "original", "current": "now", "retrain": "retrain reference"}
_LAYOUT = dict(template="plotly_white", margin=dict(l=10, r=10, t=40, b=10), height=380,
               legend=dict(orientation="h", y=-0.2))


def roc_figure(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], attack: str, min_fpr: float) -> go.Figure:
    """One attack's ROC per model on log-log axes, with the chance diagonal and the smallest measurable FPR.

    ``curves`` maps a model ("original", "current", "retrain") to its (fpr, tpr) arrays.
    Points at FPR 0 cannot sit on a log axis; they are drawn at ``min_fpr``/2, left of the
    dotted line marking 1/n non-members, below which nothing is measured.
    """
    fig = go.Figure()
    floor = min_fpr / 2
    for model, (fpr, tpr) in curves.items():
        colour, dash = MODEL_STYLE[model]
        fig.add_trace(go.Scatter(x=np.maximum(fpr, floor), y=np.maximum(tpr, floor), mode="lines",
                                 name=MODEL_NAMES[model], line=dict(color=colour, dash=dash, width=2)))
    grid = np.logspace(np.log10(floor), 0, 50)
    fig.add_trace(go.Scatter(x=grid, y=grid, mode="lines", name="chance", line=dict(color="#bbbbbb", width=1)))
    fig.add_vline(x=min_fpr, line=dict(color="#999999", dash="dot"), annotation_text="1/n test",
                  annotation_position="top left")
    fig.update_layout(**_LAYOUT, title=f"{attack}: ROC on log-log axes",
                      xaxis=dict(type="log", title="false-positive rate (test samples called members)"),
                      yaxis=dict(type="log", title="true-positive rate (forget samples found)"))
    return fig


def exposure_hardness_figure(frame: pd.DataFrame) -> go.Figure:
    """Per forget sample: hardness cos θ_i against exposure after unlearning, titled with Spearman's ρ.

    ``frame`` has columns id, cos, exposure. Do hard samples (gradients alike the retain
    set's) stay exposed? A positive rank correlation says they do.
    """
    rho = spearman(frame)
    fig = go.Figure(go.Scatter(x=frame["cos"], y=frame["exposure"], mode="markers", customdata=frame[["id"]],
                               hovertemplate="id %{customdata[0]} · cos θ %{x:.2f} · exposure %{y:.2f}<extra></extra>",
                               marker=dict(color="#d62728", size=7, opacity=0.75)))
    title = "Hardness against exposure" + ("" if np.isnan(rho) else f" (Spearman ρ = {rho:+.2f})")
    fig.update_layout(**_LAYOUT, title=title, showlegend=False,
                      xaxis=dict(title="hardness cos θ_i (per-sample gradient against the retain gradient)"),
                      yaxis=dict(title="exposure after unlearning (attack score)"))
    return fig


def spearman(frame: pd.DataFrame) -> float:
    """Spearman's rank correlation of ``cos`` and ``exposure`` (NaN with fewer than 3 samples or a constant)."""
    usable = frame[["cos", "exposure"]].dropna()
    if len(usable) < 3 or usable["cos"].nunique() < 2 or usable["exposure"].nunique() < 2:
        return float("nan")
    return float(spearmanr(usable["cos"], usable["exposure"]).statistic)


def exposure_map(points: pd.DataFrame, exposure: pd.Series) -> go.Figure:
    """The model's feature map with each forget sample coloured by its attack score; the rest faint grey.

    ``points`` is an embedding frame (id, x, y, drawn …); ``exposure`` maps forget-sample id
    to score. Every forget sample is drawn, even outside the drawn subset of a large map.
    """
    drawn = points["drawn"] if "drawn" in points else pd.Series(True, index=points.index)
    scored = points["id"].isin(exposure.index)
    background, forget = points[drawn & ~scored], points[scored]
    fig = go.Figure()
    fig.add_trace(go.Scattergl(x=background["x"], y=background["y"], mode="markers", name="other samples",
                               hoverinfo="skip", marker=dict(color="#d9d9d9", size=4)))
    score = exposure.reindex(forget["id"]).to_numpy()
    fig.add_trace(go.Scattergl(x=forget["x"], y=forget["y"], mode="markers", name="forget samples",
                               customdata=np.c_[forget["id"].to_numpy(), score],
                               hovertemplate="id %{customdata[0]} · score %{customdata[1]:.2f}<extra></extra>",
                               marker=dict(color=score, colorscale="Reds", size=8, line=dict(color="black", width=0.5),
                                           colorbar=dict(title=exposure.name or "score", thickness=12))))
    fig.update_layout(**_LAYOUT, title="Exposure on the map (forget samples, darker: more exposed)",
                      xaxis=dict(visible=False), yaxis=dict(visible=False))
    return fig
