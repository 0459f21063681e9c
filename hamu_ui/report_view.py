"""The Report page's pieces: the verdict, the key numbers, the charts, the downloads and the run list.

The verdict and every number come from ``hamu_core.evaluation.metrics`` (``evaluate``, ``verdict``),
judged against the retrain reference; the downloads are ``hamu_core.evaluation.report``'s three forms
of the same data, so the CSV, the JSON and the HTML page agree with the screen and with the
CLI's report of the same stored run.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from datetime import datetime

import pandas as pd
import streamlit as st
from plotly.offline import get_plotlyjs

from hamu_core.data.selection import describe_selection
from hamu_core.evaluation.metrics import AMBER, GREEN, GREY, RED, STATUS_WORDS, Evaluation, verdict
from hamu_core.evaluation.report import DEFINITIONS, Report, build_report, conclusion, key_number_rows
from hamu_core.models.architectures import TrainedModel
from hamu_core.runs.store import StoredRun, StoreError
from hamu_ui import cache, privacy_view, requests_view, runs, stepper
from hamu_ui.session import StudioSession
from hamu_ui.workspace import Workspace

LIGHTS = {status: (colour, STATUS_WORDS[status])
          for status, colour in ((GREEN, "green"), (AMBER, "orange"), (RED, "red"), (GREY, "gray"))}
CONFIRM_KEY = "report.confirm_delete"


def run_evaluation(session: StudioSession, ws: Workspace, reference: TrainedModel | None) -> Evaluation:
    """The reported step's model evaluated on every sample (cached per weights)."""
    model = session.live.run.model_at(session.live.reported_step)
    return cache.evaluation(ws.data, TrainedModel(model), reference, ws.original, session.forget_ids, session.seed)


def show_verdict(evaluation: Evaluation) -> dict:
    """The three findings, each with a coloured badge that says its status in words; returns them as plain data.

    Badges rather than ``st.error`` boxes: a red finding is a result, not a failure of the app,
    and a grey one ("cannot tell at this size") is a limit of the data, not a pass.
    """
    findings = asdict(verdict(evaluation))
    for finding in findings.values():
        colour, words = LIGHTS[finding["status"]]
        st.container(border=True).markdown(f"**{finding['question']}** :{colour}-badge[{words}] {finding['sentence']}")
    return findings


def numbers_table(evaluation: dict) -> pd.DataFrame:
    """``report.key_number_rows`` as a table: each model's numbers with their intervals, and the gap to retrain."""
    header, rows = key_number_rows(evaluation)
    return pd.DataFrame(rows, columns=header).set_index("Metric")


def key_numbers(evaluation: Evaluation) -> None:
    st.dataframe(numbers_table(evaluation.to_dict()))
    with st.expander("What these numbers mean"):
        st.markdown("\n\n".join(f"**{term}** — {text}" for term, text in DEFINITIONS))


def build(session: StudioSession, ws: Workspace, evaluation: Evaluation, findings: dict, figures: dict,
          privacy: dict | None = None) -> Report:
    """The run's report: settings, data, forget set, every step, the evaluation, the verdict, the privacy
    audit when one was run, and the charts."""
    live = session.live
    summary = describe_selection(ws.data, session.forget_ids)
    settings = {**live.run.rule.settings(), "seed": live.run.seed, "retain_batch_size": live.run.retain_batch_size,
                "run_id": live.run_id, "steps": len(live.history),
                "stop_rules": ", ".join(session.stop_when) or "none (every step asked for is taken)"}
    return build_report(
        settings=settings, dataset={**session.provenance(ws.data), "sizes": evaluation.sizes},
        record=record(session, ws), created=stored_time(session),
        forget={"size": summary.size, "class_mix": summary.class_mix, "ids": session.forget_ids.tolist()},
        history=[{**record.to_dict(), **live.points[record.step]} for record in live.history],
        evaluation=evaluation.to_dict(), verdict=findings, outcome=outcome(session), privacy=privacy,
        ledger=session.ledger.to_dict() if session.ledger is not None else None,
        figures_html={caption: figure.to_html(full_html=False, include_plotlyjs=False)
                      for caption, figure in figures.items()},
        plotlyjs=get_plotlyjs(),
    )


def record(session: StudioSession, ws: Workspace) -> dict:
    """What the report states to identify the run: label, request, run and parent, fingerprints."""
    live = session.live
    stored = stored_run(session)
    return {"label": live.label, "request_ref": live.request_ref, "run_id": live.run_id,
            "parent_id": stored.parent_id if stored else None, "branch_step": stored.branch_step if stored else None,
            "data_fingerprint": ws.data.fingerprint(), "model_fingerprint": ws.original.key,
            "forget_hash": session.forget_key}


def stored_run(session: StudioSession) -> StoredRun | None:
    """The live run as stored, or None when it is not (yet) stored or the store cannot be read."""
    live = session.live
    if live.run_id is None:
        return None
    try:
        return live.store.get_run(live.run_id)
    except (KeyError, StoreError):
        return None


def stored_time(session: StudioSession) -> datetime | None:
    """The stored run's last write: the report's date, so the same run state gives the same report."""
    stored = stored_run(session)
    return None if stored is None else datetime.fromisoformat(stored.updated)


def metadata_line(session: StudioSession) -> str:
    """Label, request reference and run (with its parent when it is a branch): what the report is filed under."""
    live, stored = session.live, stored_run(session)
    parts = [f"Label: {live.label}" if live.label else "", f"Request: {live.request_ref}" if live.request_ref else "",
             f"Run {live.run_id}" if live.run_id else "Not stored yet"]
    if stored is not None and stored.parent_id:
        parts.append(f"branched from run {stored.parent_id} at step {stored.branch_step}")
    return " · ".join(part for part in parts if part)


def has_outcome(session: StudioSession) -> bool:
    """Whether the live run has something to report: steps taken, or the finding that none are needed."""
    run = session.live.run
    return bool(run.history_) or (run.target is not None and run.target.nothing_to_do() is not None)


def outcome(session: StudioSession) -> dict:
    """How the run's last step loop ended and which step the report describes, for ``build_report``."""
    run, step = session.live.run, session.live.reported_step
    why = ("the last step (no retrain reference to aim at)" if run.closest_step_ is None
           else "the step closest to the retrain reference")
    stop = asdict(run.stop_) if run.stop_ else None
    settled = run.target.nothing_to_do() if run.target is not None and not run.history_ else None
    if stop is None and settled is not None:  # the page found it before any step loop ran
        stop = {"kind": "nothing_to_do", "step": 0, "message": f"nothing to do: {settled.evidence()}"}
    return {"stop": stop, "reported_step": step, "reported_why": why}


def outcome_words(session: StudioSession) -> str:
    """The report's headline: nothing to do, or which step of how many is reported and why the run ended."""
    live, step = session.live, session.live.reported_step
    stop = live.run.stop_
    ended = f" The run ended: {stop.message}." if stop is not None and stop.kind != "step_limit" else ""
    if not live.history:
        settled = live.run.target.nothing_to_do() if live.run.target is not None else None
        if settled is not None:
            return ("**Nothing to do:** on the forget set the original model already behaves like the model "
                    f"retrained without these samples, within noise at this size: {settled.evidence()}. The verdict "
                    "below is the original model's, and says what a membership attack can and cannot tell.")
        return "No step was taken: the verdict below is the original model's." + ended
    return (f"This report describes step {step} of {len(live.history)} {live.method.upper()} steps"
            + (", the one closest to the retrain reference." if live.run.closest_step_ is not None else ".") + ended)


def show_report(session: StudioSession, ws: Workspace, reference: TrainedModel | None) -> None:
    """Verdict, key numbers beside the retrain reference's, the run's charts, and the three downloads."""
    live = session.live
    with st.spinner("Evaluating the reported model on every sample (membership attacks included)…"):
        evaluation = run_evaluation(session, ws, reference)
    st.caption(metadata_line(session))
    st.subheader("Verdict")
    st.markdown(conclusion(outcome(session), evaluation.to_dict(), asdict(verdict(evaluation)))[1])
    st.markdown(outcome_words(session))
    findings = show_verdict(evaluation)
    st.subheader("Key numbers")
    key_numbers(evaluation)
    audit = privacy_view.checked_audit(session, ws, reference)
    st.subheader("Privacy audit (per-sample attacks)")
    if audit is None:
        st.caption("No per-sample audit for this step yet: run it on **Inspect** (LiRA, RMIA, U-LiRA on shadow "
                   "models); it then appears here and in the HTML report.")
    else:
        privacy_view.show_findings(audit)
    figures = stepper.run_figures(live) if live.history else {}  # no step: no path, no κ to draw
    if audit is not None:
        figures["Privacy audit: ROC of the strongest attack"] = privacy_view.roc_of(audit, audit.strongest())
    if figures:
        st.subheader("Charts")
    columns = [column for _ in range(math.ceil(len(figures) / 2)) for column in st.columns(2)]
    for index, (column, figure) in enumerate(zip(columns, figures.values())):
        column.plotly_chart(figure, key=f"report.chart{index}")
    report = build(session, ws, evaluation, findings, figures,
                   None if audit is None else privacy_view.report_section(audit))
    st.subheader("Downloads")
    name = f"hamu-run-{live.run_id or 'unsaved'}"
    columns = st.columns(3)
    columns[0].download_button("Run history (CSV)", report.history_csv(), f"{name}.csv", "text/csv",
                               key="report.csv", help="One row per step: the step's record.")
    columns[1].download_button("Settings and metrics (JSON)", report.to_json(), f"{name}.json", "application/json",
                               key="report.json", help="Settings, data, forget set, evaluation, verdict and history.")
    columns[2].download_button("Report (HTML)", report.to_html(), f"{name}.html", "text/html", key="report.html",
                               help="One self-contained page with the charts; opens offline.")


def ledger_section(session: StudioSession) -> None:
    """The request ledger answered on the Requests page, filed here whether or not a run is open."""
    if session.ledger is None:
        return
    st.subheader("Request ledger")
    requests_view.show(session.ledger)
    st.download_button("Request ledger (JSON)", json.dumps(session.ledger.to_dict(), indent=2, allow_nan=False),
                       "hamu-request-ledger.json", "application/json", key="report.ledger",
                       help="Every request in order: its forget set, outcome, numbers beside its retrain reference.")


def _delete(session: StudioSession, run_id: str) -> None:
    runs.delete(session, run_id)
    st.session_state[CONFIRM_KEY] = False


def run_list(session: StudioSession) -> None:
    """Every stored run: reopen one (an interrupted one resumes), or delete one after a confirmation."""
    st.subheader("Stored runs")
    store = runs.store_or_warn()
    if store is None:
        return
    store.mark_interrupted()
    table = store.list_runs()
    if table.empty:
        st.caption("No stored runs yet: a run is stored from its first step on the Unlearn page.")
        return
    interrupted = int((table["status"] == "interrupted").sum())
    if interrupted:
        st.warning(f"{interrupted} run(s) were interrupted (the server stopped mid-run). Open one to resume it: "
                   "its steps are replayed and checked, then you can go on stepping.")
    find_col, order_col = st.columns([2, 1])
    text = find_col.text_input("Find", key="report.find", placeholder="label, request reference, method or dataset")
    order = order_col.selectbox("Order", runs.SORTS, key="report.order")
    table = runs.filter_runs(table, text, order)
    if table.empty:
        st.caption(f"No stored run matches {text!r}.")
        return
    st.dataframe(table.assign(id=table["id"].str[:8], parent_id=table["parent_id"].str[:8]), hide_index=True)
    ids = table["id"].tolist()
    labels = {run_id: runs.run_label(row) for run_id, row in zip(ids, table.to_dict("records"))}
    current = session.live.run_id if session.live else None
    chosen = st.selectbox("Run", ids, index=ids.index(current) if current in ids else 0, format_func=labels.get,
                          key="report.run")
    status = table.set_index("id").loc[chosen, "status"]
    open_col, confirm_col, delete_col = st.columns(3)
    open_col.button("Resume" if status == "interrupted" else "Open", key="report.open", disabled=chosen == current,
                    on_click=runs.request_reopen, args=(session, chosen),
                    help="Make this the live run: restores its data, model, forget set and settings.")
    sure = confirm_col.checkbox("Yes, delete it for good", key=CONFIRM_KEY)
    delete_col.button("Delete", key="report.delete", disabled=not sure, on_click=_delete, args=(session, chosen),
                      help="Removes the run, its steps and checkpoints from the store.")
