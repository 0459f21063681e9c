"""Builders of the durability check's chart and table: plain data in, ``go.Figure`` or a table out, no Streamlit.

The relearning chart puts every model on the same axes per attack mode, the retrained
model as the heavy dashed line: the question is never "does forget accuracy rise?" (it
rises for a model that never saw the set too) but "does it rise faster than that line?".
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from hamu_core.audit.durability import FLOAT_BITS, MODES, REFERENCES
from hamu_ui.comparison_figures import MODEL_COLOURS
from hamu_ui.figures import _LAYOUT

MODE_TITLES = {"retain": "fine-tuned on retain data alone",
               "retain+forget": "retain data plus a handful of forget samples"}
REFERENCE_STYLE = {"original": dict(color=MODEL_COLOURS["original"], dash="dot", width=2),
                   "retrain": dict(color=MODEL_COLOURS["retrain"], dash="dash", width=4)}
LEGEND_NAMES = {"original": "original", "retrain": "retrain reference (never saw the forget set)"}


def ordered_models(models) -> list[str]:
    """The original first, the unlearned models in their order, the retrain reference last."""
    names = list(dict.fromkeys(models))
    unlearned = [m for m in names if m not in REFERENCES]
    return [m for m in ("original",) if m in names] + unlearned + [m for m in ("retrain",) if m in names]


def _line_style(name: str, unlearned: list[str]) -> dict:
    if name in REFERENCE_STYLE:
        return REFERENCE_STYLE[name]
    palette = [MODEL_COLOURS["current"], *qualitative.D3[1:]]
    return dict(color=palette[unlearned.index(name) % len(palette)], width=3)


def relearning_figure(curves: pd.DataFrame) -> go.Figure:
    """Forget accuracy per relearning step, one panel per attack mode, one line per model.

    ``curves`` is ``durability.relearning_curves``'s frame (model, mode, step, forget_acc,
    forget_loss, n_forget); the hover shows the forget loss as well.
    """
    modes = [m for m in MODES if m in set(curves["mode"])]
    models = ordered_models(curves["model"])
    unlearned = [m for m in models if m not in REFERENCES]
    width = 1 / len(modes)
    traces, layout = [], dict(**_LAYOUT, height=340, legend=dict(orientation="h", y=-0.25),
                               title="Relearning attack: forget accuracy per fine-tuning step "
                                     "(above the dashed line = more than retraining would relearn)")
    for i, mode in enumerate(modes):
        axis = "" if i == 0 else str(i + 1)
        layout[f"xaxis{axis}"] = dict(domain=[i * width + (0.06 if i else 0), (i + 1) * width - 0.02], title="step",
                                      anchor=f"y{axis}")
        layout[f"yaxis{axis}"] = dict(range=[-2, 102], anchor=f"x{axis}",
                                      title="forget accuracy (%)" if i == 0 else None)
        for name in models:
            rows = curves[(curves["mode"] == mode) & (curves["model"] == name)].sort_values("step")
            traces.append(go.Scatter(
                x=rows["step"], y=100 * rows["forget_acc"], mode="lines", name=LEGEND_NAMES.get(name, name),
                legendgroup=name, showlegend=i == 0, line=_line_style(name, unlearned), xaxis=f"x{axis}",
                yaxis=f"y{axis}", customdata=rows[["forget_loss"]].to_numpy(),
                hovertemplate=f"{name} · step %{{x}}: %{{y:.1f}}% · loss %{{customdata[0]:.3g}}"
                              f"<extra>{mode}</extra>"))
        layout.setdefault("annotations", []).append(dict(
            text=MODE_TITLES[mode], x=(i + 0.5) * width, y=1.0, xref="paper", yref="paper", yanchor="bottom",
            showarrow=False, font=dict(size=12)))
    return go.Figure(traces, layout=layout)


def precision_name(bits: int) -> str:
    """``FLOAT_BITS`` → "float (not rounded)", 8 → "int8", others → "4-bit"."""
    return "float (not rounded)" if bits == FLOAT_BITS else "int8" if bits == 8 else f"{bits}-bit"


def quantization_display(table: pd.DataFrame) -> pd.DataFrame:
    """``durability.quantization_table`` as a small readable table: rows model × precision, percents and AUCs."""
    rows = []
    for name in ordered_models(table["model"]):
        model_rows = table[table["model"] == name]
        for row in model_rows.sort_values("bits", ascending=False).itertuples():
            rows.append({"model": LEGEND_NAMES.get(name, name), "weights": precision_name(int(row.bits)),
                         "forget acc": f"{100 * row.forget_acc:.1f}%", "retain acc": f"{100 * row.retain_acc:.1f}%",
                         "test acc": f"{100 * row.test_acc:.1f}%",
                         "attack AUC [95%]": f"{row.mia_auc:.2f} [{row.mia_low:.2f}, {row.mia_high:.2f}]"})
    return pd.DataFrame(rows).set_index(["model", "weights"])
