"""The audit report of one unlearning run, built from plain data only.

Everything here takes dicts and lists (settings, the dataset and forget-set summaries,
``StepRecord.to_dict()`` rows, ``Evaluation.to_dict()``, the verdict's findings), so the
same report comes out of the app, of a run reloaded from the store, or of the CLI. Three
forms: JSON (settings, metrics and history; NaN becomes null), CSV (one row per step,
nested fields flattened to ``outer.inner`` columns), and one self-contained HTML page that
needs no network: inline CSS, no external URL, and charts given as ready HTML fragments
(the core draws nothing; ``hamu_ui`` makes the plotly figures and may pass plotly.js once
as ``plotlyjs``). Every string that came from a user is HTML-escaped.

A report is a record a data-protection officer files: it opens with one paragraph that
concludes (done, not needed, or not achievable without damage, with the numbers), states
the request it answers, the software version and the fingerprints of data, model and
forget set, and it is reproducible: built twice from the same data (``created`` included,
which a stored run takes from the store, never from the clock) it is the same bytes.
"""

from __future__ import annotations

import copy
import importlib.metadata
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from html import escape

import numpy as np
import pandas as pd

import hamu_core
from hamu_core.evaluation.metrics import AMBER, FAR_ACCURACY, GREEN, RED, STATUS_WORDS, wilson_interval
from hamu_core.evaluation.privacy import FAR_AUC

TITLE = "HAMU Studio unlearning report"
DISTRIBUTION = "hamu-studio"  # pyproject's project name: the version a report states is this distribution's
# (key in the report's record, row label): what identifies the run, the request and the software
RECORD_ROWS = (
    ("label", "Label"), ("request_ref", "Request reference"), ("run_id", "Run id"),
    ("parent_id", "Branched from run"), ("branch_step", "Branched at step"),
    ("software_version", "HAMU Studio version"),
    ("data_fingerprint", "Data fingerprint"), ("model_fingerprint", "Original model fingerprint"),
    ("forget_hash", "Forget-set fingerprint"),
)
HISTORY_PREVIEW = 5  # rows shown from each end of the run history in the HTML page
IDS_PREVIEW = 40  # forget-set ids listed in the HTML page (all of them are in the JSON)
HISTORY_COLUMNS = ("step", "method", "branch", "kappa", "kappa2", "margin", "cos_rf", "feasible",
                   "forget_loss_after", "retain_loss_after", "step_norm")
# (row label, key in each model's scores, sub-key or None, shown as percent)
KEY_NUMBERS = (
    ("Forget accuracy", "accuracy", "forget", True),
    ("Retain accuracy", "accuracy", "retain", True),
    ("Test accuracy", "accuracy", "test", True),
    ("Forget loss", "loss", "forget", False),
    ("Retain loss", "loss", "retain", False),
    ("Test loss", "loss", "test", False),
    ("Membership attack AUC (loss threshold)", "mia_auc", None, False),
    ("MIA-efficacy", "mia_efficacy", None, True),
)
# (label, key in the evaluation, shown as percent)
COMPARISONS = (
    ("Prediction agreement with the retrained model on the forget set", "agreement", True),
    ("Forget quality: KS-test p-value, forget losses vs the retrained model's", "ks_pvalue", False),
    ("Tug-of-war score (1 = matches retraining)", "tug_of_war", False),
    ("Avg. Gap to retraining (percentage points)", "avg_gap", False),
)
DEFINITIONS = (
    ("Forget / retain / test accuracy", "Fraction of samples classified correctly in the forget set, the kept "
     "training data and held-out data. The target is the retrained model's value, not zero."),
    ("Retrain reference", "The same model trained from scratch on the retain data only: exact unlearning, "
     "the gold standard every number is compared with."),
    ("Membership attack AUC", "How well a loss threshold separates forget samples from unseen test samples "
     "(Yeom et al. 2018). 0.5: not separated; the further from 0.5 on either side, the better separated (far "
     "below: the forget samples have higher loss than unseen data). Read it against the retrained model's: after "
     "forgetting a whole class retraining separates them too; above it: still remembered; below it: over-forgotten."),
    ("MIA-efficacy", "Share of forget samples an attack trained on retain-vs-test losses and entropies calls "
     "unseen (SalUn, Fan et al. 2024)."),
    ("Intervals", "95% intervals, shown in brackets: bootstrap over forget and test samples for the AUC; bootstrap "
     "that also refits the attack on resampled retain and test samples for MIA-efficacy, so it covers the "
     "attack's own variance; Wilson score intervals for accuracies. Within noise: the reference value lies "
     "inside the interval."),
    ("Verdict statuses", "As the reference: matches it within noise. Some way off / far off: beyond noise, by "
     f"at most or more than {100 * FAR_ACCURACY:.0f} points ({FAR_AUC:.2f} of AUC). Cannot tell at this size: the "
     "original and the retrained model's intervals overlap, or this model's interval contains both their values, "
     "so the test cannot tell forgetting from remembering with this many samples. A forget accuracy above "
     "retraining's but within noise of chance (1 / number of classes) reads as guessing, not remembering."),
    ("UA, RA, TA, Avg. Gap", "100 − forget accuracy, retain and test accuracy, and the mean absolute "
     "difference of these and MIA-efficacy to the retrained model, in points (SalUn, Fan et al. 2024)."),
    ("Tug-of-war", "(1 − |ΔA_forget|)(1 − |ΔA_retain|)(1 − |ΔA_test|), accuracy differences to the retrained "
     "model (RUM, Zhao et al. 2024)."),
    ("Forget quality (KS p-value)", "Kolmogorov–Smirnov test between forget-set losses of this model and of "
     "the retrained model; high means alike (TOFU, Maini et al. 2024)."),
    ("κ, cos θ_rf", "Hardness: the dot product of the retain and forget loss gradients, and its cosine. "
     "Positive: forgetting drags retain utility with it (HAMU, Chen et al. ICML 2026)."),
    ("κ2, margin, branch", "κ2 is the threshold above which no step inside the radius gains the constraint B "
     "without raising the retain loss. The margin is the predicted first-order improvement of the protected loss "
     "(retain loss falling for HAMU-Q, forget loss rising for HAMU-U) at the step HAMU took, the best any step "
     "inside the radius that meets B can do; negative: degradation was unavoidable; empty when the step was "
     "infeasible or the method is a baseline. "
     "In full-gradient mode its sign is that of κ2 − κ. The branch is the closed-form case the HAMU step took "
     "(HAMU, Chen et al. ICML 2026)."),
)
CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:70rem;margin:2rem auto;
padding:0 1rem;color:#1d232a;line-height:1.45}
h1{margin-bottom:.2rem}h2{border-bottom:1px solid #d0d7de;padding-bottom:.2rem;margin-top:2rem}
.muted{color:#57606a}table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}
th,td{border:1px solid #d0d7de;padding:.25rem .6rem;text-align:left;vertical-align:top}th{background:#f6f8fa}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.finding{margin:.4rem 0;padding:.5rem .8rem;border-left:.4rem solid #8c959f;background:#f6f8fa}
.finding.green{border-color:#1a7f37}.finding.amber{border-color:#bf8700}.finding.red{border-color:#cf222e}
.finding.grey{border-color:#6e7781;border-left-style:dashed}
.status{font-weight:600;text-transform:uppercase;font-size:.8rem;margin-left:.4rem}figure{margin:1rem 0}
figcaption{font-weight:600;margin-bottom:.3rem}dt{font-weight:600;margin-top:.5rem}
"""


def software_version() -> str:
    """The installed HAMU Studio's version (pyproject's), else the package's ``__version__``, else "unknown"."""
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return str(getattr(hamu_core, "__version__", "unknown"))


def readable_date(stamp: str) -> str:
    """An ISO 8601 time as a person writes it: "2 December 2026, 14:05 UTC"."""
    moment = datetime.fromisoformat(stamp).astimezone(timezone.utc)
    return f"{moment.day} {moment:%B %Y, %H:%M} UTC"


def _accuracy(evaluation: Mapping | None, model: str, split: str) -> float | None:
    value = _scored((evaluation or {}).get(model), "accuracy", split)
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


def _versus(evaluation: Mapping | None, split: str) -> str:
    """A split's accuracy beside the retrained model's, e.g. "forget accuracy 10.2% (retrained model: 0.0%)"."""
    current, retrain = _accuracy(evaluation, "current", split), _accuracy(evaluation, "retrain", split)
    text = f"{split} accuracy {_fmt(current, True)}"
    return text + (f" (retrained model: {_fmt(retrain, True)})" if retrain is not None else "")


def conclusion(outcome: Mapping | None, evaluation: Mapping | None, verdict: Mapping | None) -> tuple[str, str]:
    """(kind, one paragraph): whether the request is done, not needed, or not achievable without damage, and why.

    Read from the stored outcome and verdict only: the stop kind "nothing_to_do" means not
    needed; a reported step whose forget set matches the reference (or that the stop rule
    "reached_reference" ended at) with a cost within noise is done; a stop because degradation
    became unavoidable, or a cost far off, is not achievable without damage. A run stopped by
    the steps asked for before its forget set got there is not concluded *yet* — a forget set
    still far from the reference says nothing about what further steps would cost. Anything
    else (no evaluation) is said to be not concluded rather than guessed.
    """
    stop = (outcome or {}).get("stop") or {}
    kind = stop.get("kind")
    step = (outcome or {}).get("reported_step")
    status = {name: f.get("status") for name, f in (verdict or {}).items() if isinstance(f, Mapping)}
    forget, retain, test = (_versus(evaluation, split) for split in ("forget", "retain", "test"))
    model = "the original model" if not step else f"the model after step {step}"
    if kind == "nothing_to_do":
        return "not needed", (
            "Not needed: on the forget set the original model already behaves like the model retrained without "
            "these samples, within noise, so no unlearning step was taken and nothing else in the model changed. "
            f"The check: {stop.get('message')}.")
    if not evaluation:
        return "not concluded", ("Not concluded: this run has not been evaluated, so whether the data are "
                                 "forgotten is not established.")
    reached = status.get("forgotten") == GREEN or kind == "reached_reference"
    if reached and status.get("cost") == GREEN:
        return "done", (f"Done. {model.capitalize()} forgets the forget set like the model retrained without it, "
                        f"within noise ({forget}), at a cost within noise on the data kept ({retain}; {test}).")
    if kind == "unavoidable" or status.get("cost") == RED:
        why = (f"unlearning stopped because {_fmt(stop.get('message'))}" if kind == "unavoidable"
               else "the data that must be kept already paid for the forgetting, far beyond noise")
        return "not achievable without damage", (
            f"Not achievable without damage: {why}. {model.capitalize()} has {forget}, {retain} and {test}; "
            "forgetting further would cost accuracy on the data that must be kept.")
    if kind in (None, "step_limit") and status.get("forgotten") in (AMBER, RED):
        return "not concluded", (
            f"Not concluded yet: {model} has {forget}, {retain} and {test}. The run stopped after the steps it was "
            "asked for, before its forget set reached the retrained model's; take more steps on Unlearn (with the "
            "stop rules on) or retrain.")
    return "not concluded", (
        f"Not concluded: {model} has {forget}, {retain} and {test}"
        + (f"; the run ended because {_fmt(stop.get('message'))}" if stop.get("message") else "")
        + ". It neither reached the retrain reference at a cost within noise nor met a limit that rules it out.")


def json_safe(value):
    """``value`` as plain JSON types: NaN and ±Inf become None, numpy scalars and arrays Python ones."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [json_safe(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def _fmt(value, percent: bool = False) -> str:
    """One cell: numbers to 4 significant digits (or a percentage), missing as an em dash, escaped."""
    if value is None or (isinstance(value, (float, np.floating)) and not math.isfinite(value)):
        return "—"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{100 * value:.1f}%" if percent else f"{value:.4g}"
    if isinstance(value, (Mapping, list, tuple)):
        return escape(json.dumps(json_safe(value)))
    return escape(str(value))


def _cell(value, percent: bool = False) -> str:
    """One ``<td>``: numbers right-aligned."""
    numeric = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    return f'<td class="num">{_fmt(value, percent)}</td>' if numeric else f"<td>{_fmt(value, percent)}</td>"


def _table(header: list[str], rows: list[list[str]]) -> str:
    """An HTML table from a header of plain strings and rows of ``_cell`` outputs."""
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _key_value_table(values: Mapping) -> str:
    return _table(["Setting", "Value"], [[_cell(str(k)), _cell(v)] for k, v in values.items()])


def _scored(scores: Mapping | None, key: str, sub: str | None):
    value = None if scores is None else scores.get(key)
    return value.get(sub) if isinstance(value, Mapping) else value


def _interval_of(scores: Mapping | None, key: str, sub: str | None, n: int | None) -> tuple[float, float] | None:
    """A key number's 95% interval: the stored one (attacks), or Wilson's for an accuracy on ``n`` samples."""
    if scores is None:
        return None
    if sub is None:
        stored = scores.get(f"{key}_interval")
        return tuple(stored) if stored and None not in stored else None
    value = _scored(scores, key, sub)
    if key == "accuracy" and n and isinstance(value, (int, float)):
        return wilson_interval(value, n)
    return None


def key_number_rows(evaluation: Mapping) -> tuple[list[str], list[list[str]]]:
    """The key-numbers table as text, one row per ``KEY_NUMBERS`` entry: header, then rows.

    Every model evaluated (original, this model, retrain reference) gets "value [low, high]"
    where an interval exists (Wilson for accuracies on the split's size, bootstrap for the
    attacks), and the gap of this model to the retrain reference closes the row. One
    function for the Report page and the HTML report, so they cannot disagree.
    """
    models = [(name, evaluation.get(key)) for name, key in (("Original", "original"), ("This model", "current"),
                                                            ("Retrain reference", "retrain")) if evaluation.get(key)]
    sizes = evaluation.get("sizes") or {}
    rows = []
    for label, key, sub, percent in KEY_NUMBERS:
        cells = []
        for _, scores in models:
            value, interval = _scored(scores, key, sub), _interval_of(scores, key, sub, sizes.get(sub))
            text = _fmt(value, percent)
            if interval is not None:
                text += f" [{_fmt(interval[0], percent)}, {_fmt(interval[1], percent)}]"
            cells.append(text)
        current, retrain = _scored(evaluation.get("current"), key, sub), _scored(evaluation.get("retrain"), key, sub)
        gap = current - retrain if isinstance(current, (int, float)) and isinstance(retrain, (int, float)) else None
        gap_text = "—" if gap is None or not math.isfinite(gap) else (
            f"{100 * gap:+.1f} pts" if percent else f"{gap:+.4g}")
        rows.append([label, *cells, gap_text])
    return ["Metric", *(name for name, _ in models), "Gap to retrain"], rows


@dataclass(frozen=True, eq=False)
class Report:
    """One run's report; build it with ``build_report``. Fields hold the caller's data as given."""

    title: str
    created: str  # ISO 8601 timestamp, UTC
    settings: dict  # the rule's and run's settings
    dataset: dict  # name, kind, sizes, provenance
    forget: dict  # size, class mix, ids
    history: list[dict]  # StepRecord.to_dict() per step, in order
    evaluation: dict | None  # Evaluation.to_dict(), or None when the run was not evaluated
    verdict: dict | None  # finding name → {"question", "status", "sentence"} or a plain sentence
    outcome: dict | None = None  # {"stop": {kind, step, message}, "reported_step": k, "reported_why": text}
    record: dict = field(default_factory=dict)  # RECORD_ROWS' keys: label, request, run, parent, version, fingerprints
    privacy: dict | None = None  # per-sample audit: {"verdict", "strongest", "note", "header", "rows"}
    ledger: dict | None = None  # sequential deletion requests: ``Ledger.to_dict()`` ({"settings", "entries"})
    figures_html: dict[str, str] = field(default_factory=dict)  # caption → ready HTML fragment
    plotlyjs: str | None = None  # plotly.js source, inlined once when the fragments need it

    def to_dict(self) -> dict:
        """Settings, summaries, metrics and history as JSON-safe data (no figures)."""
        return json_safe({
            "title": self.title, "created": self.created, "record": self.record,
            "conclusion": dict(zip(("kind", "text"), self.conclusion())), "settings": self.settings,
            "dataset": self.dataset,
            "forget": self.forget, "outcome": self.outcome, "evaluation": self.evaluation, "verdict": self.verdict,
            "privacy": self.privacy, "ledger": self.ledger,
            "history": self.history,
        })

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False, ensure_ascii=False)

    def history_csv(self) -> str:
        """One row per step; nested fields (cos_per_tensor, branch_counts, info) as ``outer.inner`` columns."""
        return pd.json_normalize(self.history, sep=".").to_csv(index=False)

    def conclusion(self) -> tuple[str, str]:
        """(kind, paragraph): ``conclusion`` of this report's outcome, evaluation and verdict."""
        return conclusion(self.outcome, self.evaluation, self.verdict)

    def to_html(self) -> str:
        """The whole report as one self-contained HTML page."""
        script = f"<script>{self.plotlyjs}</script>" if self.plotlyjs and self.figures_html else ""
        sections = "".join(f'<section id="{name}">{body}</section>' for name, body in (
            ("conclusion", self._conclusion_html()), ("record", self._record_html()),
            ("outcome", self._outcome_html()), ("verdict", self._verdict_html()), ("numbers", self._numbers_html()),
            ("privacy", self._privacy_html()), ("ledger", self._ledger_html()), ("charts", self._charts_html()),
            ("settings", self._settings_html()), ("forget", self._forget_html()),
            ("history", self._history_html()), ("definitions", self._definitions_html()),
        ) if body)
        dataset = escape(str(self.dataset.get("name", "unnamed dataset")))
        return (
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f"<title>{escape(self.title)}</title><style>{CSS}</style>{script}</head><body>"
            f"<h1>{escape(self.title)}</h1>"
            f'<p class="muted">Created {escape(readable_date(self.created))} · dataset {dataset} · '
            f"{len(self.history)} unlearning steps · HAMU Studio {_fmt(self.record.get('software_version'))}</p>"
            f"{self._request_html()}{sections}</body></html>"
        )

    def _request_html(self) -> str:
        ref = self.record.get("request_ref")
        return f"<p><strong>Request:</strong> {_fmt(ref)}</p>" if ref else ""

    def _conclusion_html(self) -> str:
        return f"<h2>Conclusion</h2><p>{escape(self.conclusion()[1])}</p>"

    def _record_html(self) -> str:
        """What identifies this record: label, request, run and parent, software version, fingerprints."""
        rows = [[_cell(label), _cell(self.record[key])] for key, label in RECORD_ROWS
                if self.record.get(key) not in (None, "")]
        return "<h2>Record</h2>" + _table(["Field", "Value"], rows) if rows else ""

    def _outcome_html(self) -> str:
        """How the run ended and which step the numbers below describe, in words."""
        if not self.outcome:
            return ""
        stop, reported = self.outcome.get("stop") or {}, self.outcome.get("reported_step")
        lines = []
        if stop:
            lines.append(f"The run ended after {_fmt(stop.get('step'))} steps: {_fmt(stop.get('message'))}.")
        if reported is not None:
            if reported == 0:
                lines.append("The numbers below describe the original model: no unlearning step is in them.")
            else:
                why = self.outcome.get("reported_why")
                lines.append(f"The numbers below describe the model after step {_fmt(reported)}"
                             + (f", {_fmt(why)}." if why else "."))
        return "<h2>Outcome</h2>" + "".join(f"<p>{line}</p>" for line in lines)

    def _verdict_html(self) -> str:
        if not self.verdict:
            return "<h2>Verdict</h2><p>No verdict: this run has not been evaluated.</p>"
        items = []
        for name, finding in self.verdict.items():
            if isinstance(finding, Mapping):
                question = finding.get("question", str(name).replace("_", " ").capitalize())
                status, sentence = str(finding.get("status", "")), finding.get("sentence", "")
            else:
                question, status, sentence = str(name).replace("_", " ").capitalize(), "", finding
            words = STATUS_WORDS.get(status, status)
            badge = f'<span class="status">{escape(words)}</span>' if words else ""
            items.append(f'<div class="finding {escape(status)}"><strong>{escape(str(question))}</strong>'
                         f"{badge}<br>{escape(str(sentence))}</div>")
        return "<h2>Verdict</h2>" + "".join(items)

    def _numbers_html(self) -> str:
        if not self.evaluation:
            return "<h2>Key numbers</h2><p>No evaluation was recorded for this run.</p>"
        ev = self.evaluation
        header, texts = key_number_rows(ev)
        rows = [[f"<td>{escape(row[0])}</td>", *(f'<td class="num">{escape(t)}</td>' for t in row[1:])]
                for row in texts]
        extra = [[_cell(label), _cell(ev.get(key), percent)] for label, key, percent in COMPARISONS if key in ev]
        sizes = ev.get("sizes") or {}
        size_line = ", ".join(f"{escape(str(k))} {_fmt(v)}" for k, v in sizes.items())
        out = "<h2>Key numbers</h2>" + (f'<p class="muted">Samples: {size_line}</p>' if size_line else "")
        out += _table(header, rows) + (_table(["Comparison with retraining", "Value"], extra) if extra else "")
        classes = ev.get("class_accuracy") or []
        if classes:
            columns = list(classes[0])
            percent = {"original", "current", "retrain"}
            out += "<h3>Class-wise accuracy</h3>" + _table(
                columns, [[_cell(r.get(c), c in percent) for c in columns] for r in classes])
        return out

    def _privacy_html(self) -> str:
        """The per-sample audit, when one was run: its verdict in words and every attack's numbers."""
        if not self.privacy:
            return ""
        p = self.privacy
        rows = [[_cell(v) for v in row] for row in p.get("rows", [])]
        return (f"<h2>Privacy audit (per-sample attacks)</h2><p><strong>Strongest attack: {_fmt(p.get('strongest'))}."
                f"</strong> {_fmt(p.get('verdict'))}</p>" + _table(p.get("header", []), rows)
                + (f'<p class="muted">{_fmt(p.get("note"))}</p>' if p.get("note") else ""))

    def _ledger_html(self) -> str:
        """The request ledger, when one was run: one row per request beside the retrain-without-all-so-far model."""
        if not self.ledger:
            return ""
        columns = (("Request", "request", False), ("Forgotten now", "forget_size", False),
                   ("Forgotten so far", "forgotten_size", False), ("Steps", "steps", False),
                   ("Stop", "stop_kind", False), ("Retain acc.", "retain_acc", True),
                   ("Retrain retain acc.", "retrain_retain_acc", True), ("Test acc.", "test_acc", True),
                   ("Retrain test acc.", "retrain_test_acc", True), ("Distance (points)", "distance", False),
                   ("Drift (points)", "drift", False), ("Unlearn s", "unlearn_seconds", False),
                   ("Retrain s", "retrain_seconds", False))
        rows = []
        for entry in self.ledger.get("entries", []):
            flat = {**entry, **(entry.get("result") or {}),
                    **{f"retrain_{k}": v for k, v in (entry.get("reference") or {}).items()}}
            rows.append([_cell(flat.get(key), percent) for _, key, percent in columns])
        return ("<h2>Request ledger</h2><p>Deletion requests answered one after another, each on the model the "
                "previous one produced, against the model retrained without every set forgotten so far. "
                "Retrain s is empty where that model came from the disk cache.</p>"
                + _table([label for label, _, _ in columns], rows))

    def _charts_html(self) -> str:
        if not self.figures_html:
            return ""
        figures = "".join(f"<figure><figcaption>{escape(str(caption))}</figcaption>{fragment}</figure>"
                          for caption, fragment in self.figures_html.items())
        return "<h2>Charts</h2>" + figures

    def _settings_html(self) -> str:
        return ("<h2>Settings</h2>" + _key_value_table(self.settings)
                + "<h3>Dataset</h3>" + _key_value_table(self.dataset))

    def _forget_html(self) -> str:
        ids = list(self.forget.get("ids", []))
        size = self.forget.get("size", len(ids))
        out = f"<h2>Forget set</h2><p>{_fmt(size)} samples.</p>"
        mix = self.forget.get("class_mix") or {}
        if mix:
            out += _table(["Class", "Samples"], [[_cell(str(k)), _cell(v)] for k, v in mix.items()])
        if ids:
            hidden = len(ids) - IDS_PREVIEW
            more = f" … and {hidden} more (all ids are in the JSON export)" if hidden > 0 else ""
            out += f"<p>Sample ids: {', '.join(_fmt(i) for i in ids[:IDS_PREVIEW])}{escape(more)}</p>"
        rest = {k: v for k, v in self.forget.items() if k not in ("ids", "size", "class_mix")}
        return out + (_key_value_table(rest) if rest else "")

    def _history_html(self) -> str:
        if not self.history:
            return "<h2>Run history</h2><p>No steps were taken.</p>"
        frame = pd.DataFrame(self.history)
        columns = [c for c in HISTORY_COLUMNS if c in frame.columns]
        shown = frame if len(frame) <= 2 * HISTORY_PREVIEW else pd.concat(
            [frame.head(HISTORY_PREVIEW), frame.tail(HISTORY_PREVIEW)])
        rows = [[_cell(v) for v in row] for row in shown[columns].itertuples(index=False)]
        note = f"First and last {HISTORY_PREVIEW} of {len(frame)} steps; the CSV export has every step." \
            if len(frame) > 2 * HISTORY_PREVIEW else f"All {len(frame)} steps."
        return f"<h2>Run history</h2><p class=\"muted\">{note}</p>" + _table(columns, rows)

    def _definitions_html(self) -> str:
        items = "".join(f"<dt>{escape(term)}</dt><dd>{escape(text)}</dd>" for term, text in DEFINITIONS)
        return f"<h2>Definitions</h2><dl>{items}</dl>"


def build_report(
    *,
    settings: dict,
    dataset: dict,
    forget: dict,
    history: list[dict],
    evaluation: dict | None = None,
    verdict: dict | None = None,
    outcome: dict | None = None,
    privacy: dict | None = None,
    ledger: dict | None = None,
    record: dict | None = None,
    figures_html: Mapping[str, str] | None = None,
    plotlyjs: str | None = None,
    title: str = TITLE,
    created: datetime | None = None,
) -> Report:
    """Check and copy the run's plain data into a ``Report``.

    ``history`` holds ``StepRecord.to_dict()`` rows; ``evaluation`` is ``Evaluation.to_dict()``;
    ``verdict`` maps each finding to ``{"question", "status", "sentence"}`` (``dataclasses.asdict``
    of ``metrics.verdict``) or to a plain sentence. ``figures_html`` are trusted fragments made
    by the caller (e.g. plotly's ``to_html(full_html=False, include_plotlyjs=False)``) and
    ``plotlyjs`` the plotly.js source they need, inlined once. ``record`` holds ``RECORD_ROWS``'
    keys (the software version is added here). ``created`` defaults to now (UTC); give the
    stored run's time for a report that regenerates byte for byte.
    """
    optional = {"evaluation": evaluation, "verdict": verdict, "outcome": outcome, "privacy": privacy, "ledger": ledger,
                "record": record}
    for name, value in (("settings", settings), ("dataset", dataset), ("forget", forget),
                        *((k, {} if v is None else v) for k, v in optional.items())):
        if not isinstance(value, Mapping):
            raise ValueError(f"{name} must be a dict, got {type(value).__name__}")
    if not isinstance(history, list) or not all(isinstance(r, Mapping) and "step" in r for r in history):
        raise ValueError("history must be a list of StepRecord dicts, each with a 'step'")
    figures = dict(figures_html or {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in figures.items()):
        raise ValueError("figures_html must map captions to HTML strings")
    stamp = (created or datetime.now(timezone.utc)).isoformat(timespec="seconds")
    return Report(
        title=title, created=stamp, settings=copy.deepcopy(dict(settings)), dataset=copy.deepcopy(dict(dataset)),
        forget=copy.deepcopy(dict(forget)), history=copy.deepcopy(history),
        evaluation=copy.deepcopy(dict(evaluation)) if evaluation is not None else None,
        verdict=copy.deepcopy(dict(verdict)) if verdict is not None else None,
        outcome=copy.deepcopy(dict(outcome)) if outcome is not None else None,
        privacy=copy.deepcopy(dict(privacy)) if privacy is not None else None,
        ledger=copy.deepcopy(dict(ledger)) if ledger is not None else None,
        record={**copy.deepcopy(dict(record or {})), "software_version": software_version()},
        figures_html=figures, plotlyjs=plotlyjs,
    )
