"""The Inspect page's pieces: what changed between the original model and the live run's model.

Every view puts three models side by side: the original, the current one (the session's
live run) and the retrain reference, the model that never saw the forget set and so the
target of unlearning. Without a live run the current model is missing and the views show
the original against the reference. Per-sample outputs come from ``cache.split_outputs``,
keyed by each model's weight fingerprint, so a rerun without a new step costs nothing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from hamu_core.evaluation.embedding import annotate
from hamu_core.evaluation.metrics import SampleOutputs, class_accuracy
from hamu_core.evaluation.privacy import bootstrap_interval, loss_attack_auc, mia_reading
from hamu_core.models.architectures import TrainedModel
from hamu_ui import cache, widgets
from hamu_ui.comparison_figures import attack_histogram, class_accuracy_figure, collateral_figure, twin_embedding_figure
from hamu_ui.forget_set import MAP_NAMES
from hamu_ui.session import StudioSession
from hamu_ui.workspace import Workspace

STATISTICS = {"loss": "loss −log p(label)", "entropy": "prediction entropy"}
NEIGHBOURS = 5  # retain neighbours per forget sample in the collateral-damage view
SHOWN = 6  # sample thumbnails per list
ATTACK_NUMBERS = {"TPR": "Forget caught", "FPR": "Test wrongly caught", "AUC": "Attack AUC"}  # metric → label
FORMATS = {"TPR": "{:.0%}", "FPR": "{:.0%}", "AUC": "{:.2f}"}
DEFINITIONS = {
    "tpr": "True-positive rate: the fraction of forget samples whose statistic is at or below the threshold, "
           "i.e. that the attack calls 'trained on'. After perfect unlearning it matches the retrained model's.",
    "fpr": "False-positive rate: the fraction of unseen test samples the attack wrongly calls 'trained on' "
           "at this threshold.",
    "auc": "Area under the attack's ROC curve over every threshold: the chance that a random forget sample has a "
           "lower statistic than a random test sample. 0.5: cannot tell them apart; the honest target is the "
           "retrained model's value.",
    "collateral": "Mean loss of the retain samples that the original model sees as most alike to the forget set "
                  f"({NEIGHBOURS} per forget sample, cosine similarity of the last hidden layer). Forgetting tends "
                  "to drag these along: a rise is collateral damage.",
}

Models = dict[str, TrainedModel]  # "original", "current" (with a live run), "retrain" (with a forget set)


def models(session: StudioSession, ws: Workspace, reference: TrainedModel | None) -> Models:
    """The models to compare; the live run's is fingerprinted now, since it changes with every step."""
    found = {"original": ws.original}
    if session.live is not None:
        found["current"] = TrainedModel(session.live.run.model_)
    if reference is not None:
        found["retrain"] = reference
    return found


def reported_note(session: StudioSession) -> str:
    """Says when the Report (and the durability check) describe an earlier step than the one shown here."""
    closest, last = session.live.run.closest_step_, len(session.live.history)
    if closest is None or closest == last:
        return ""
    return (f" The Report and the durability check describe step {closest}, the one closest to the reference; "
            "roll back to it on Unlearn to inspect that model here.")


def outputs(session: StudioSession, ws: Workspace, chosen: Models) -> dict[str, dict[str, SampleOutputs]]:
    """Per-split sample outputs of every model (cached by weight fingerprint)."""
    return {name: cache.split_outputs(ws.data, m, session.forget_ids)
            for name, m in chosen.items()}


def focus(chosen: dict) -> str:
    """The model the views are about: the current one when there is a run, else the original."""
    return "current" if "current" in chosen else "original"


def twin_embedding(session: StudioSession, ws: Workspace, chosen: Models) -> None:
    """The original's and the current model's maps side by side, forget samples joined by lines."""
    if "current" not in chosen:
        st.caption("The twin maps appear once there is an unlearning run.")
        return
    method = st.radio("Map", list(cache.MAP_CHOICES), format_func=cache.MAP_CHOICES.get, key="inspect.map",
                      horizontal=True, help="Both models' last hidden layer, mapped to 2-D; the right map is rotated onto the left.")
    slow = "" if method == "pca" else " (this page waits: up to a minute on a first UMAP)"
    with st.spinner(f"Computing the {MAP_NAMES[method]} maps of both models{slow}…"):
        frame = cache.linked_embedding(ws.data, chosen["original"], chosen["current"], session.forget_ids, method,
                                       session.seed)
    st.plotly_chart(twin_embedding_figure(annotate(frame, session.forget_ids)), key="inspect.twin")
    st.caption("Red lines join a forget sample's two positions: long lines mean the model now sees it differently. "
               "Retain samples (blue) that stay put were not disturbed.")


def class_bars(ws: Workspace, per_model: dict[str, dict[str, SampleOutputs]]) -> None:
    """Accuracy per class on the forget and test samples, original, current and retrain side by side."""
    # class_accuracy takes its labels from "current"; without a run the original stands in and is not drawn twice.
    table = class_accuracy(ws.data, {**per_model, "current": per_model[focus(per_model)]})
    shown = [name for name in ("original", "current", "retrain") if name in per_model]
    st.plotly_chart(class_accuracy_figure(table, shown), key="inspect.classes")


def attack_rates(forget: np.ndarray, test: np.ndarray, threshold: float) -> tuple[float, float]:
    """(TPR, FPR) of the threshold attack: a sample is called 'trained on' when its statistic ≤ threshold."""
    return float(np.mean(forget <= threshold)), float(np.mean(test <= threshold))


def attack_table(per_model: dict[str, dict[str, SampleOutputs]], statistic: str, threshold: float) -> pd.DataFrame:
    """TPR and FPR at ``threshold`` and the threshold-free AUC of every model, one row per model.

    The AUC is ``privacy.loss_attack_auc`` on the chosen statistic: a rank statistic, it is
    equally valid for entropy (lower = more confident = more likely trained on).
    """
    rows = []
    for name, split in per_model.items():
        forget, test = getattr(split["forget"], statistic), getattr(split["test"], statistic)
        tpr, fpr = attack_rates(forget, test, threshold)
        low, high = bootstrap_interval(loss_attack_auc, (forget, test))
        rows.append({"model": name, "TPR": tpr, "FPR": fpr, "AUC": loss_attack_auc(forget, test),
                     "AUC 95% low": low, "AUC 95% high": high})
    return pd.DataFrame(rows).set_index("model")


def auc_reading(table: pd.DataFrame, name: str) -> str:
    """``privacy.mia_reading`` of one model's AUC, with its interval, against the retrained and original models'."""
    def estimate(model: str) -> dict:
        if model not in table.index:
            return {}
        row = table.loc[model]
        return {"auc": row["AUC"], "interval": (row["AUC 95% low"], row["AUC 95% high"])}

    current, retrain, original = estimate(name), estimate("retrain"), estimate("original")
    return mia_reading(current["auc"], retrain.get("auc"), interval=current["interval"],
                       retrain_interval=retrain.get("interval"), original_auc=original.get("auc"),
                       original_interval=original.get("interval"))


def attack_view(ws: Workspace, per_model: dict[str, dict[str, SampleOutputs]]) -> None:
    """Forget vs test distributions, a threshold slider, the attack's rates there, and who is still caught."""
    name = focus(per_model)
    controls = st.columns([1, 2])
    statistic = controls[0].radio("Attack statistic", list(STATISTICS), format_func=STATISTICS.get,
                                  key="inspect.statistic", horizontal=True,
                                  help="The attacker's guess: a low loss or a confident prediction means 'trained on'.")
    pooled = np.concatenate([getattr(per_model[name][s], statistic) for s in ("forget", "test")])
    grid = np.quantile(pooled, np.linspace(0, 1, 101))
    percentile = controls[1].select_slider("Threshold", options=list(range(101)), value=50, key="inspect.threshold",
                                           format_func=lambda p: f"{grid[p]:.3g}",
                                           help="Steps through percentiles of the forget and test values.")
    threshold = float(grid[percentile])
    table = attack_table(per_model, statistic, threshold)
    reference = table.loc["retrain"] if "retrain" in table.index else None
    for column, (metric, label) in zip(st.columns(3), ATTACK_NUMBERS.items()):
        shown = FORMATS[metric].format(table.loc[name, metric])
        delta = None if reference is None else f"retrain: {FORMATS[metric].format(reference[metric])}"
        column.metric(f"{label} · {name}", shown, delta=delta, delta_color="off", delta_arrow="off",
                      help=DEFINITIONS[metric.lower()])
    scores = {f"forget · {name}": getattr(per_model[name]["forget"], statistic),
              f"test · {name}": getattr(per_model[name]["test"], statistic)}
    if reference is not None:
        scores["forget · retrain"] = getattr(per_model["retrain"]["forget"], statistic)
    chart_col, table_col = st.columns([2, 1])
    chart_col.plotly_chart(attack_histogram(scores, threshold, STATISTICS[statistic], log_scale=statistic == "loss"),
                           key="inspect.attack")
    table_col.dataframe(table.style.format("{:.3f}"))
    if statistic == "loss":
        table_col.markdown(auc_reading(table, name))
    with table_col.popover("What do these numbers mean?"):
        st.markdown("\n\n".join(f"**{metric}** — {DEFINITIONS[metric.lower()]}" for metric in ATTACK_NUMBERS))
    forget = per_model[name]["forget"]
    values = getattr(forget, statistic)
    caught = np.argsort(values)[: int(np.sum(values <= threshold))]
    said = (f"**The attack catches {len(caught)} of {len(values)} forget samples** "
            f"({statistic} ≤ {threshold:.3g}, {name} model)")
    if not len(caught):
        st.markdown(said + " at this threshold.")
        return
    st.markdown(said + "; the most confidently caught:")
    widgets.show_samples(ws.data, forget.ids[caught[:SHOWN]],
                         [f"id {forget.ids[i]} · {statistic} {values[i]:.2g}" for i in caught[:SHOWN]])


def collateral_frame(neighbour_ids: np.ndarray, per_model: dict[str, dict[str, SampleOutputs]]) -> pd.DataFrame:
    """Loss of each given retain sample under every model: columns id, label, loss_<model>."""
    retain = next(iter(per_model.values()))["retain"]
    rows = np.searchsorted(retain.ids, neighbour_ids)
    if not np.array_equal(retain.ids[np.minimum(rows, len(retain.ids) - 1)], neighbour_ids):
        raise ValueError("neighbour_ids must all be retain samples")
    frame = pd.DataFrame({"id": neighbour_ids, "label": retain.labels[rows]})
    for name, split in per_model.items():
        frame[f"loss_{name}"] = split["retain"].loss[rows]
    return frame


def collateral(session: StudioSession, ws: Workspace, per_model: dict[str, dict[str, SampleOutputs]]) -> None:
    """The retain samples nearest the forget set, and how their loss moved from the original to now."""
    neighbours = cache.retain_neighbours(ws.data, ws.original, session.forget_ids, NEIGHBOURS)
    ids = np.unique(np.concatenate(neighbours["neighbour_ids"].to_list()))
    frame = collateral_frame(ids, per_model)
    frame["class_name"] = np.asarray(ws.data.classes, dtype=object)[frame["label"]]
    name = focus(per_model)
    all_retain = {m: float(split["retain"].loss.mean()) for m, split in per_model.items()}
    shown = [model for model in ("original", "current", "retrain") if model in per_model]
    for column, model in zip(st.columns(len(shown)), shown):
        column.metric(f"Neighbour loss · {model}", f"{frame[f'loss_{model}'].mean():.3g}",
                      delta=f"all retain: {all_retain[model]:.3g}", delta_color="off", delta_arrow="off",
                      help=DEFINITIONS["collateral"])
    if name != "current":
        st.caption(f"{len(ids)} retain samples sit nearest the forget set; run Unlearn to see how their loss moves.")
        return
    st.plotly_chart(collateral_figure(frame), key="inspect.collateral")
    rises = frame.assign(rise=frame["loss_current"] - frame["loss_original"])
    worst = rises[rises["rise"] > 0].nlargest(SHOWN, "rise")
    if worst.empty:
        st.markdown(f"**{len(ids)} retain neighbours; the loss of none of them rose.**")
        return
    st.markdown(f"**{len(ids)} retain neighbours, {int((rises['rise'] > 0).sum())} with a higher loss than before; "
                f"the {len(worst)} whose loss rose most:**")
    widgets.show_samples(ws.data, worst["id"], [f"id {i} · loss {a:.2g} → {b:.2g}" for i, a, b in
                                                zip(worst["id"], worst["loss_original"], worst["loss_current"])])
