"""The privacy audit panel (Inspect, and the Report): per-sample attacks on a shadow-model bank.

A data-protection officer's question is "could someone still tell these records were used?".
The panel answers it with the strongest of the per-sample attacks of ``hamu_core.audit.attacks``
(LiRA, RMIA, U-LiRA, and the loss threshold as the cheap baseline), on the original model,
the run's model at the step the Report describes, and the retrain reference alike. Training
the bank takes minutes, so the audit runs on a button press; the bank, the unlearned shadows
and the audit are cached (the bank also on disk), so the Report page shows the same audit at
once, and a reload does not retrain anything.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from hamu_core.audit.attacks import ATTACK_NAMES, MODELS, Audit
from hamu_core.audit.shadows import DEFAULT_SHADOWS
from hamu_core.models.architectures import TrainedModel
from hamu_ui import cache, widgets
from hamu_ui.privacy_figures import exposure_hardness_figure, exposure_map, roc_figure, spearman
from hamu_ui.session import StudioSession
from hamu_ui.workspace import Workspace, progress_bar

SHADOW_CHOICES = {4: "4 — a quick look (weak evidence)", DEFAULT_SHADOWS: f"{DEFAULT_SHADOWS} — the default",
                  64: "64 — a stronger audit (several minutes)"}
EXPOSED = 5  # "still exposed" forget samples shown with their picture or text


def audit_state(session: StudioSession, reference: TrainedModel, k: int) -> tuple:
    """What an audit depends on, known without copying a model: the run, the step reported, the bank size."""
    return session.live.key, len(session.live.history), session.live.reported_step, reference.key, k


def current_audit(session: StudioSession, ws: Workspace, reference: TrainedModel, k: int) -> Audit:
    """The audit of the run's reported step: bank, unlearned shadows and attacks, each cached."""
    run, step = session.live.run, session.live.reported_step
    model = run.model_at(step)
    with progress_bar(f"Training {k} shadow models (once; kept on disk)") as report:
        bank = cache.shadow_bank(ws.data, session.model_config, session.train_config, k, progress=report,
                                 device=session.device)
    settings = {key: v for key, v in run.rule.settings().items() if key != "method"}
    with progress_bar("Unlearning the shadows that saw the forget set (U-LiRA)") as report:
        unlearned = cache.unlearned_shadows(bank, ws.data, session.forget_ids, run.rule.method, settings, step,
                                            run.seed, progress=report)
    models = {"original": ws.original, "current": TrainedModel(model), "retrain": reference}
    with st.spinner("Running LiRA, RMIA, U-LiRA and the loss attack on three models…"):
        return cache.privacy_audit(models, ws.data, session.forget_ids, bank, unlearned, session.seed)


def checked_audit(session: StudioSession, ws: Workspace, reference: TrainedModel | None) -> Audit | None:
    """The audit the user asked for, when it still describes the run (else None: the Report leaves it out)."""
    if session.live is None or reference is None or session.audit_for is None:
        return None
    k = session.audit_for[-1]
    if session.audit_for != audit_state(session, reference, k):
        return None
    return current_audit(session, ws, reference, k)


def show_findings(result: Audit) -> None:
    """The verdict in words, then the table of every attack on every model with its intervals."""
    st.markdown(f"**Strongest attack: {ATTACK_NAMES[result.strongest()]}.** {result.verdict()}")
    table = result.table()
    st.dataframe(table)
    st.caption(table.attrs["note"] + f". {result.n_shadows} shadow models; "
               + " ".join(f"{a}: {why}." for a, why in result.skipped.items()))


def show(session: StudioSession, ws: Workspace, reference: TrainedModel | None) -> None:
    """The panel: what the audit does, its button, then findings, ROC, exposure on the map and against hardness."""
    if session.live is None or reference is None:
        st.caption("The privacy audit compares an unlearning run's model with the original and the retrain "
                   "reference: run **Unlearn** first.")
        return
    st.caption("Per-sample membership attacks calibrated on shadow models, each trained on a random half of the data "
               "(LiRA, Carlini et al. 2022; RMIA, Zarifzadeh et al. 2024), and U-LiRA (Hayes et al. 2025), which "
               "asks whether the unlearned model can be told from models that never saw the forget set. Members: "
               "the forget samples; non-members: the test samples. Shadows train once per dataset and model, then "
               "stay on disk.")
    choice, button = st.columns([2, 1])
    k = choice.selectbox("Shadow models", list(SHADOW_CHOICES), index=list(SHADOW_CHOICES).index(DEFAULT_SHADOWS),
                         format_func=SHADOW_CHOICES.get, key="inspect.shadows")
    state = audit_state(session, reference, k)
    if button.button("Run the privacy audit", key="inspect.audit", width="stretch"):
        session.audit_for = state
    if session.audit_for != state:
        return
    try:
        result = current_audit(session, ws, reference, k)
    except ValueError as err:
        st.error(f"The privacy audit cannot run on this forget set: {err}")
        return
    show_findings(result)
    attack = st.radio("ROC of", result.attacks, index=result.attacks.index(result.strongest()),
                      format_func=ATTACK_NAMES.get, horizontal=True, key="inspect.roc_attack")
    st.plotly_chart(roc_of(result, attack), key="inspect.roc")
    exposure = result.exposure("current")
    hardness = cache.hardness(ws.data, ws.original, session.forget_ids, session.seed).samples.set_index("id")["cos"]
    still_exposed(ws, exposure, hardness)
    map_col, scatter_col = st.columns(2)
    points = cache.embedding(ws.data, ws.original, "pca", session.seed)
    map_col.plotly_chart(exposure_map(points, exposure), key="inspect.exposure_map")
    frame = hardness_and_exposure(result, hardness)
    scatter_col.plotly_chart(exposure_hardness_figure(frame), key="inspect.exposure_hardness")
    scatter_col.caption(hardness_words(frame, "ulira" in result.attacks))


def still_exposed(ws: Workspace, exposure: pd.Series, hardness: pd.Series) -> None:
    """The forget samples the strongest attack still scores highest after unlearning, with picture and hardness."""
    top = exposure.sort_values(ascending=False).head(EXPOSED)
    st.markdown(f"**Still exposed:** the {len(top)} forget samples scored highest by {exposure.name} on this model")
    widgets.show_samples(ws.data, top.index, [f"id {i} · score {s:.2g} · cos θ {hardness.get(i, np.nan):.2f}"
                                              for i, s in top.items()])


def hardness_and_exposure(result: Audit, hardness: pd.Series) -> pd.DataFrame:
    """Per forget sample: id, hardness cos θ_i and exposure — U-LiRA's score when it ran (the test of unlearning
    itself), else the strongest attack's."""
    attack = "ulira" if "ulira" in result.attacks else result.strongest()
    scores = result.result(attack, "current").scores
    forget = scores[scores["split"] == "forget"]
    return pd.DataFrame({"id": forget["id"].to_numpy(), "cos": hardness.reindex(forget["id"]).to_numpy(),
                         "exposure": forget["score"].to_numpy()})


def hardness_words(frame: pd.DataFrame, ulira: bool) -> str:
    """One sentence on whether hard samples stay exposed, naming the score it rests on."""
    rho = spearman(frame)
    which = "U-LiRA" if ulira else "the strongest attack"
    if np.isnan(rho):
        return f"Too few scored forget samples to relate hardness to {which}'s exposure."
    reading = ("hard samples stay more exposed" if rho > 0.1 else "easy samples stay more exposed" if rho < -0.1
               else "hardness says little about who stays exposed")
    return f"Spearman ρ between hardness cos θ_i and {which}'s exposure: {rho:+.2f} over {len(frame)} forget " \
           f"samples — {reading}."


def report_section(result: Audit) -> dict:
    """The audit as plain data for ``report.build_report``: the verdict, the strongest attack, the table."""
    table = result.table()
    rows = table.reset_index()
    return {"verdict": result.verdict(), "strongest": ATTACK_NAMES[result.strongest()], "note": table.attrs["note"],
            "header": list(rows.columns), "rows": rows.astype(str).to_numpy().tolist()}


def roc_of(result: Audit, attack: str) -> go.Figure:
    """One attack's ROC for the three models (the panel's choice, or the strongest for the Report)."""
    curves = {m: (result.result(attack, m).roc_fpr, result.result(attack, m).roc_tpr) for m in MODELS}
    return roc_figure(curves, ATTACK_NAMES[attack], result.result(attack, "original").min_fpr)
