"""The audit report of one unlearning run, built from plain data only.

Everything here takes dicts and lists (settings, the dataset and forget-set summaries,
``StepRecord.to_dict()`` rows, ``Evaluation.to_dict()``, the verdict's findings), so the
same report comes out of the app, of a run reloaded from the store, or of the CLI. Three
forms: JSON (settings, metrics and history; NaN becomes null), CSV (one row per step,
nested fields flattened to ``outer.inner`` columns), and one self-contained HTML page that
needs no network: inline CSS, no external URL, and charts given as ready HTML fragments
(the core draws nothing; ``hamu_ui`` makes the plotly figures and may pass plotly.js once
as ``plotlyjs``). The page is the Jinja2 template ``templates/report.html.j2``, rendered
with autoescape on: the code hands it plain values, so every string that came from a user
is escaped by Jinja, and only the charts and plotly.js are marked safe, explicitly.

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
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

import hamu_core
from hamu_core.evaluation.metrics import AMBER, FAR_ACCURACY, GREEN, RED, STATUS_WORDS, wilson_interval
from hamu_core.evaluation.privacy import FAR_AUC
from hamu_core.jsonable import to_jsonable

TITLE = "HAMU Studio unlearning report"
TEMPLATE = "report.html.j2"  # the page skeleton, in hamu_core/evaluation/templates (package data)
# Autoescape on: every value a template shows is escaped unless the code marked it ``Markup``.
_TEMPLATES = Environment(loader=PackageLoader("hamu_core.evaluation", "templates"), autoescape=True,
                         undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
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
def software_version() -> str:
    """The installed HAMU Studio's version (pyproject's), else the package's ``__version__``, else "unknown"."""
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return str(getattr(hamu_core, "__version__", "unknown"))


def readable_date(stamp: str) -> str:
    """An ISO 8601 time as a person writes it: "2 December 2026, 14:05 UTC"."""
    moment = datetime.fromisoformat(stamp).astimezone(UTC)
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
    if _accuracy(evaluation, "retrain", "forget") is None:
        return "not concluded", (
            f"Not concluded against retraining: there is no retrain reference for this model (a model you "
            f"brought: the Studio does not know how it was trained), so whether it now forgets like a model "
            f"retrained without these samples cannot be established here. {model.capitalize()} has {forget}, "
            f"{retain} and {test}; the verdict below reads forgetting against unseen test data and the cost "
            "against the original model.")
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


def _fmt(value, percent: bool = False) -> str:
    """One value as text: numbers to 4 significant digits (or a percentage), missing as an em dash.

    Plain text, never HTML: the template escapes everything it shows.
    """
    if value is None or (isinstance(value, (float, np.floating)) and not math.isfinite(value)):
        return "—"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{100 * value:.1f}%" if percent else f"{value:.4g}"
    if isinstance(value, (Mapping, list, tuple)):
        return json.dumps(to_jsonable(value))
    return str(value)


@dataclass(frozen=True)
class Cell:
    """One table cell for the template: its text (plain; the template escapes it) and its alignment."""

    text: str
    numeric: bool = False  # numbers are right-aligned


def _cell(value, percent: bool = False) -> Cell:
    numeric = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    return Cell(_fmt(value, percent), numeric)


def _table(header: list, rows: list[list[Cell]]) -> dict:
    """A table for the template's ``table`` macro: a header of plain strings and rows of cells."""
    return {"header": [str(h) for h in header], "rows": rows}


def _key_value_table(values: Mapping) -> dict:
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
        return to_jsonable({
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
        """The whole report as one self-contained HTML page (``templates/report.html.j2``, autoescaped)."""
        return _TEMPLATES.get_template(TEMPLATE).render(self._page())

    def _page(self) -> dict:
        """What the template shows, as plain values; only the caller's charts and plotly.js are marked safe."""
        charts = [(str(caption), Markup(fragment)) for caption, fragment in self.figures_html.items()]
        ref = self.record.get("request_ref")
        return {
            "title": self.title, "created": readable_date(self.created),
            "dataset_name": str(self.dataset.get("name", "unnamed dataset")), "steps": len(self.history),
            "version": _fmt(self.record.get("software_version")), "request": _fmt(ref) if ref else None,
            "plotlyjs": Markup(self.plotlyjs) if self.plotlyjs and charts else None,
            "conclusion": self.conclusion()[1], "record": self._record(), "outcome": self._outcome(),
            "verdict": self._findings(), "numbers": self._numbers(), "privacy": self._privacy(),
            "ledger": self._ledger(), "charts": charts, "settings": _key_value_table(self.settings),
            "dataset": _key_value_table(self.dataset), "forget": self._forget(), "history": self._history(),
            "definitions": DEFINITIONS,
        }

    def _record(self) -> dict | None:
        """What identifies this record: label, request, run and parent, software version, fingerprints."""
        rows = [[_cell(label), _cell(self.record[key])] for key, label in RECORD_ROWS
                if self.record.get(key) not in (None, "")]
        return _table(["Field", "Value"], rows) if rows else None

    def _outcome(self) -> list[str] | None:
        """How the run ended and which step the numbers below describe, in words."""
        if not self.outcome:
            return None
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
        return lines

    def _findings(self) -> list[dict]:
        """Each verdict finding: question, status (a CSS class), the status in words, and its sentence."""
        findings = []
        for name, finding in (self.verdict or {}).items():
            if isinstance(finding, Mapping):
                question = finding.get("question", str(name).replace("_", " ").capitalize())
                status, sentence = str(finding.get("status", "")), finding.get("sentence", "")
            else:
                question, status, sentence = str(name).replace("_", " ").capitalize(), "", finding
            findings.append({"question": str(question), "status": status,
                             "words": STATUS_WORDS.get(status, status), "sentence": str(sentence)})
        return findings

    def _numbers(self) -> dict | None:
        if not self.evaluation:
            return None
        ev = self.evaluation
        header, texts = key_number_rows(ev)
        extra = [[_cell(label), _cell(ev.get(key), percent)] for label, key, percent in COMPARISONS if key in ev]
        classes = ev.get("class_accuracy") or []
        columns = list(classes[0]) if classes else []
        percent = {"original", "current", "retrain"}
        return {
            "sizes": ", ".join(f"{k} {_fmt(v)}" for k, v in (ev.get("sizes") or {}).items()),
            "key_numbers": _table(header, [[Cell(row[0]), *(Cell(t, True) for t in row[1:])] for row in texts]),
            "comparisons": _table(["Comparison with retraining", "Value"], extra) if extra else None,
            "classes": _table(columns, [[_cell(r.get(c), c in percent) for c in columns] for r in classes])
            if classes else None,
        }

    def _privacy(self) -> dict | None:
        """The per-sample audit, when one was run: its verdict in words and every attack's numbers."""
        if not self.privacy:
            return None
        p = self.privacy
        return {"strongest": _fmt(p.get("strongest")), "verdict": _fmt(p.get("verdict")),
                "table": _table(p.get("header", []), [[_cell(v) for v in row] for row in p.get("rows", [])]),
                "note": _fmt(p.get("note")) if p.get("note") else None}

    def _ledger(self) -> dict | None:
        """The request ledger, when one was run: one row per request beside the retrain-without-all-so-far model."""
        if not self.ledger:
            return None
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
        return _table([label for label, _, _ in columns], rows)

    def _forget(self) -> dict:
        ids = list(self.forget.get("ids", []))
        hidden = len(ids) - IDS_PREVIEW
        mix = self.forget.get("class_mix") or {}
        rest = {k: v for k, v in self.forget.items() if k not in ("ids", "size", "class_mix")}
        return {
            "size": _fmt(self.forget.get("size", len(ids))),
            "mix": _table(["Class", "Samples"], [[_cell(str(k)), _cell(v)] for k, v in mix.items()]) if mix else None,
            "ids": ", ".join(_fmt(i) for i in ids[:IDS_PREVIEW]),
            "more": f" … and {hidden} more (all ids are in the JSON export)" if hidden > 0 else "",
            "rest": _key_value_table(rest) if rest else None,
        }

    def _history(self) -> dict | None:
        if not self.history:
            return None
        frame = pd.DataFrame(self.history)
        columns = [c for c in HISTORY_COLUMNS if c in frame.columns]
        shown = frame if len(frame) <= 2 * HISTORY_PREVIEW else pd.concat(
            [frame.head(HISTORY_PREVIEW), frame.tail(HISTORY_PREVIEW)])
        rows = [[_cell(v) for v in row] for row in shown[columns].itertuples(index=False)]
        note = f"First and last {HISTORY_PREVIEW} of {len(frame)} steps; the CSV export has every step." \
            if len(frame) > 2 * HISTORY_PREVIEW else f"All {len(frame)} steps."
        return {"note": note, "table": _table(columns, rows)}


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
    stamp = (created or datetime.now(UTC)).isoformat(timespec="seconds")
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
