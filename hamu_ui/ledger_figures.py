"""The request ledger's chart: accuracy after each request beside the retrain-without-all-so-far model's, and the drift.

Pure: a ``Ledger.table()`` frame in, a ``go.Figure`` out (no ``st.*``), so the Report could
embed the same figure.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

LINES = (("retain_acc", "Retain accuracy", "#1f77b4"), ("test_acc", "Test accuracy", "#2ca02c"))


def ledger_figure(table: pd.DataFrame) -> go.Figure:
    """Retain and test accuracy after each request (solid) and the reference's (dashed); drift as bars, right axis.

    The reference after request k is the model retrained without every set forgotten up to
    k, so a widening gap between a solid line and its dashed one is what sequential edits cost.
    """
    labels = [f"{k}. {words}" for k, words in enumerate(table["request"], 1)]
    figure = make_subplots(specs=[[{"secondary_y": True}]])
    figure.add_trace(go.Bar(x=labels, y=table["drift"], name="Drift (points)", marker_color="#d0d7de", opacity=0.7),
                     secondary_y=True)
    for column, name, colour in LINES:
        figure.add_trace(go.Scatter(x=labels, y=100 * table[column], name=name, mode="lines+markers",
                                    line=dict(color=colour)), secondary_y=False)
        figure.add_trace(go.Scatter(x=labels, y=100 * table[f"retrain_{column}"], name=f"{name}, retrained",
                                    mode="lines+markers", line=dict(color=colour, dash="dash")), secondary_y=False)
    figure.update_yaxes(title_text="accuracy (%)", secondary_y=False)
    figure.update_yaxes(title_text="drift from retraining (points)", rangemode="tozero", secondary_y=True)
    figure.update_layout(height=380, margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=-0.2),
                         title="After each request, against the model retrained without everything so far")
    return figure
