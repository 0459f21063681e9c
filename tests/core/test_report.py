"""build_report: JSON that round-trips with NaN as null, one CSV row per step, and an HTML page
that is self-contained, parses, escapes what users typed and states the verdict in words.

The data come from a real run: a small MLP trained on digits, a retrain reference, five
HAMU-Q steps forgetting one class, and ``metrics.evaluate`` / ``metrics.verdict``.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict
from datetime import UTC, datetime
from html.parser import HTMLParser

import numpy as np
import plotly.graph_objects as go
import pytest
from plotly.offline import get_plotlyjs

from hamu_core.data.builtin import load_digits_data
from hamu_core.data.selection import describe_selection, select_class
from hamu_core.evaluation.metrics import evaluate, verdict
from hamu_core.evaluation.report import DEFINITIONS, build_report
from hamu_core.models.architectures import ModelConfig
from hamu_core.models.training import TrainConfig, retain_ids, train_model
from hamu_core.rules.registry import make_rule
from hamu_core.runs.unlearner import UnlearningRun

STEPS = 5
HOSTILE = '<script>alert("x")</script> & "digits" <b>'


@pytest.fixture(scope="module")
def run_data():
    data = load_digits_data()
    forget_ids = select_class(data, 3)
    config, train = ModelConfig(arch="mlp", hidden=(32,)), TrainConfig(epochs=4, lr=1e-2)
    original = train_model(data, data.train_ids, config, train)
    retrain = train_model(data, retain_ids(data, forget_ids), config, train)
    rule = make_rule("hamu-q", lr=0.05, constraint=0.02)
    run = UnlearningRun(rule, model=original, retain=data.tensors(retain_ids(data, forget_ids)),
                        forget=data.tensors(forget_ids), seed=0, retain_batch_size=128)
    run.run(STEPS)
    evaluation = evaluate(run.model_, data, forget_ids, retrain=retrain, original=original, n_boot=20)
    summary = describe_selection(data, forget_ids)
    return {
        "settings": {**rule.settings(), "seed": 0, "retain_batch_size": 128, "upload": HOSTILE},
        "dataset": {"name": HOSTILE, "kind": data.kind, "samples": len(data.ids), "meta": data.meta},
        "forget": {"size": summary.size, "class_mix": summary.class_mix, "ids": forget_ids},
        "history": [r.to_dict() for r in run.history_],
        "evaluation": evaluation.to_dict(),
        "verdict": asdict(verdict(evaluation)),
    }


def make(run_data, **overrides):
    return build_report(**{**run_data, "created": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), **overrides})


class Collector(HTMLParser):
    """Every tag with its attributes, the visible text outside <script> and <style>, and the
    text of each <section id=...>."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.text, self.stack, self.sections = [], [], [], {}
        self.section = None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self.stack.append(tag)
        if tag == "section":
            self.section = dict(attrs).get("id")
            self.sections[self.section] = []

    def handle_endtag(self, tag):
        if self.stack and self.stack[-1] == tag:
            self.stack.pop()
        if tag == "section":
            self.section = None

    def handle_data(self, data):
        if not (self.stack and self.stack[-1] in ("script", "style")):
            self.text.append(data)
            if self.section:
                self.sections[self.section].append(data)


def parse(html: str) -> Collector:
    parser = Collector()
    parser.feed(html)
    parser.close()
    return parser


def test_json_round_trips_with_nan_as_null(run_data):
    history = [dict(r) for r in run_data["history"]]
    history[0] = {**history[0], "kappa2": math.nan, "margin": math.inf}
    report = make(run_data, history=history)
    loaded = json.loads(report.to_json())  # allow_nan=False inside: a NaN left over would raise
    assert loaded["history"][0]["kappa2"] is None and loaded["history"][0]["margin"] is None
    assert loaded["history"][1]["step"] == 2 and len(loaded["history"]) == STEPS
    assert loaded["settings"]["method"] == "hamu-q" and loaded["settings"]["constraint"] == 0.02
    assert loaded["forget"]["ids"] == [int(i) for i in run_data["forget"]["ids"]]
    assert loaded["evaluation"]["current"]["accuracy"]["forget"] == pytest.approx(
        run_data["evaluation"]["current"]["accuracy"]["forget"])
    assert loaded["verdict"]["forgotten"]["sentence"] == run_data["verdict"]["forgotten"]["sentence"]
    assert loaded["created"] == "2026-01-02T03:04:05+00:00"
    assert "NaN" not in report.to_json() and "Infinity" not in report.to_json()


def test_csv_has_one_row_per_step_with_flattened_columns(run_data):
    report = make(run_data)
    rows = list(csv.DictReader(io.StringIO(report.history_csv())))
    assert [int(r["step"]) for r in rows] == list(range(1, STEPS + 1))
    names = list(run_data["history"][0]["cos_per_tensor"])
    for name in names:
        column = f"cos_per_tensor.{name}"
        expected = [h["cos_per_tensor"][name] for h in run_data["history"]]
        assert [float(r[column]) for r in rows] == pytest.approx(expected)
    assert [float(r["kappa"]) for r in rows] == pytest.approx([h["kappa"] for h in run_data["history"]])


def test_html_is_self_contained_and_parses(run_data):
    fig = go.Figure(go.Scatter(x=[0, 1, 2], y=[0.1, 0.3, 0.2]))
    fragment = fig.to_html(full_html=False, include_plotlyjs=False)
    html = make(run_data, figures_html={"Trade-off path": fragment}, plotlyjs=get_plotlyjs()).to_html()
    parsed = parse(html)
    for tag, attrs in parsed.tags:
        for name in ("src", "href", "action", "data"):
            value = (attrs.get(name) or "").strip().lower()
            assert not value.startswith(("http:", "https:", "//")), (tag, attrs)
        assert tag != "link"
    assert 'src="http' not in html.split("<script>", 1)[0] and 'href="http' not in html.split("<script>", 1)[0]
    assert html.count(get_plotlyjs()) == 1
    assert sum(1 for tag, _ in parsed.tags if tag == "script") == 2  # plotly.js once + the figure's call
    assert "Trade-off path" in "".join(parsed.text)


def test_html_states_the_verdict_numbers_and_definitions(run_data):
    text = " ".join(parse(make(run_data).to_html()).text)
    for finding in run_data["verdict"].values():
        assert finding["sentence"] in text
        assert finding["question"] in text
    ev = run_data["evaluation"]
    assert f"{100 * ev['current']['accuracy']['forget']:.1f}%" in text
    assert f"{100 * ev['retrain']['accuracy']['forget']:.1f}%" in text
    assert "Retrain reference" in text and "Gap to retrain" in text
    for term, _ in DEFINITIONS:
        assert term in text
    for source in ("Fan et al. 2024", "Zhao et al. 2024", "Maini et al. 2024", "Yeom et al. 2018",
                   "Chen et al. ICML 2026"):
        assert source in text
    assert f"{run_data['forget']['size']} samples" in text
    assert "Created 2 January 2026, 03:04 UTC" in text  # a date a reader reads, not ISO 8601


def test_html_escapes_user_strings(run_data):
    html = make(run_data).to_html()
    parsed = parse(html)
    assert "script" not in [tag for tag, _ in parsed.tags]
    assert "b" not in [tag for tag, _ in parsed.tags]
    assert HOSTILE in " ".join(parsed.text)  # shown as text, not markup
    assert html.count("&lt;script&gt;") >= 2  # dataset name and the uploaded file setting


def test_user_strings_are_escaped_once_wherever_they_appear(run_data):
    """Every text reaches the template plain and Jinja escapes it: never twice (``&amp;lt;``), never not at all."""
    outcome = {"stop": {"kind": "unavoidable", "step": 4, "message": HOSTILE}, "reported_step": 4,
               "reported_why": HOSTILE}
    privacy = {"verdict": HOSTILE, "strongest": HOSTILE, "note": HOSTILE, "header": [HOSTILE], "rows": [[HOSTILE]]}
    html = make(run_data, outcome=outcome, privacy=privacy, record={"label": HOSTILE, "request_ref": HOSTILE},
                verdict={"plain": HOSTILE}, figures_html={HOSTILE: "<svg><circle r='1'/></svg>"}).to_html()
    parsed = parse(html)
    assert "&amp;lt;" not in html and "script" not in [tag for tag, _ in parsed.tags]
    for section in ("conclusion", "outcome", "privacy", "record", "verdict", "charts"):
        assert HOSTILE in " ".join(parsed.sections[section]), section
    assert "circle" in [tag for tag, _ in parsed.tags]  # the caller's chart fragment is kept as markup


def test_the_page_template_ships_as_package_data():
    import tomllib
    from pathlib import Path, PurePosixPath

    from hamu_core.evaluation import report

    root = Path(report.__file__).resolve().parents[2]
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    template = PurePosixPath("templates", report.TEMPLATE)
    assert any(template.match(p) for p in patterns["hamu_core.evaluation"])
    assert (Path(report.__file__).parent / template).is_file()


def test_history_table_shows_first_and_last_rows(run_data):
    long = [{**run_data["history"][0], "step": k} for k in range(1, 31)]
    history = parse(make(run_data, history=long).to_html()).sections["history"]
    assert "First and last 5 of 30 steps; the CSV export has every step." in history
    shown = [int(t) for t in history if t.isdigit()]
    assert shown == [1, 2, 3, 4, 5, 26, 27, 28, 29, 30]


def test_report_without_evaluation_says_so(run_data):
    report = make(run_data, evaluation=None, verdict=None, history=[])
    text = " ".join(parse(report.to_html()).text)
    assert "has not been evaluated" in text and "No evaluation was recorded" in text and "No steps" in text
    assert json.loads(report.to_json())["evaluation"] is None
    assert report.history_csv().strip() == ""


def test_report_copies_its_inputs(run_data):
    settings = dict(run_data["settings"])
    report = make(run_data, settings=settings)
    settings["constraint"] = 99.0
    assert report.settings["constraint"] == 0.02


@pytest.mark.parametrize("field, value, match", [
    ("settings", [1, 2], "settings"),
    ("history", [{"no_step": 1}], "history"),
    ("evaluation", "bad", "evaluation"),
    ("figures_html", {"chart": 3}, "figures_html"),
])
def test_bad_inputs_name_the_field(run_data, field, value, match):
    with pytest.raises(ValueError, match=match):
        make(run_data, **{field: value})


def test_numpy_values_in_the_report_become_plain_json(run_data):
    forget = {**run_data["forget"], "weights": np.array([1.5, np.nan]), "flag": np.bool_(True)}
    loaded = json.loads(make(run_data, forget=forget).to_json())
    assert loaded["forget"]["weights"] == [1.5, None] and loaded["forget"]["flag"] is True


def test_key_numbers_carry_their_intervals_wilson_for_accuracies_bootstrap_for_attacks():
    from hamu_core.evaluation.metrics import wilson_interval
    from hamu_core.evaluation.report import key_number_rows

    scores = {"accuracy": {"forget": 0.5, "retain": 0.99, "test": 0.9}, "loss": {"forget": 1.0, "retain": 0.1,
              "test": 0.3}, "mia_auc": 0.55, "mia_auc_interval": [0.45, 0.66], "mia_efficacy": 0.4,
              "mia_efficacy_interval": [0.2, 0.6]}
    header, rows = key_number_rows({"current": scores, "retrain": scores, "sizes": {"forget": 40, "retain": 1000,
                                                                                    "test": 300}})
    assert header == ["Metric", "This model", "Retrain reference", "Gap to retrain"]
    by_label = {row[0]: row for row in rows}
    low, high = wilson_interval(0.5, 40)
    assert by_label["Forget accuracy"][1] == f"50.0% [{100 * low:.1f}%, {100 * high:.1f}%]"
    assert by_label["Membership attack AUC (loss threshold)"][1] == "0.55 [0.45, 0.66]"
    assert by_label["Forget loss"][1] == "1" and by_label["Forget accuracy"][3] == "+0.0 pts"


def test_a_privacy_audit_is_a_section_of_the_html_and_json_report():
    privacy = {"verdict": "LiRA finds 12% [5%, 20%] of the forget samples at 1% FPR, as after retraining.",
               "strongest": "LiRA (Carlini et al. 2022)", "note": "unresolved: below 1/360",
               "header": ["attack", "model", "AUC"], "rows": [["lira", "current", "0.52 [0.47, 0.58]"]]}
    report = build_report(settings={"method": "hamu-q"}, dataset={"name": "digits"}, forget={"size": 3},
                          history=[], privacy=privacy)
    html = report.to_html()
    assert "<h2>Privacy audit (per-sample attacks)</h2>" in html and "0.52 [0.47, 0.58]" in html
    assert "Strongest attack: LiRA (Carlini et al. 2022)." in html and "unresolved: below 1/360" in html
    assert json.loads(report.to_json())["privacy"]["verdict"].startswith("LiRA finds")
    assert "Privacy audit" not in build_report(settings={}, dataset={}, forget={}, history=[]).to_html()


def h2_texts(html: str) -> list[str]:
    return [part.split("</h2>", 1)[0] for part in html.split("<h2>")[1:]]


def test_every_heading_appears_once(run_data):
    privacy = {"verdict": "v", "strongest": "s", "header": ["a"], "rows": [["b"]]}
    html = make(run_data, privacy=privacy, outcome={"stop": {"kind": "step_limit", "step": 5, "message": "m"},
                                                    "reported_step": 5}).to_html()
    headings = h2_texts(html)
    assert len(headings) == len(set(headings)) and {"Conclusion", "Record", "Verdict", "Settings"} <= set(headings)


def test_the_report_states_request_version_and_fingerprints(run_data):
    from hamu_core.evaluation.report import software_version

    record = {"label": "customer 1042", "request_ref": "DSR-2026-118 <J. Smith>", "run_id": "abc", "parent_id": "p0",
              "branch_step": 3, "data_fingerprint": "d1", "model_fingerprint": "m1", "forget_hash": "f1"}
    report = make(run_data, record=record)
    text = " ".join(parse(report.to_html()).text)
    assert "Request:" in text and "DSR-2026-118 <J. Smith>" in text  # escaped, shown as text
    for value in ("customer 1042", "p0", "d1", "m1", "f1", software_version()):
        assert value in text
    assert software_version() == "0.1.0"  # pyproject's version of the installed package
    assert json.loads(report.to_json())["record"]["request_ref"] == "DSR-2026-118 <J. Smith>"


def _finding(status):
    return {"question": "q", "status": status, "sentence": "s"}


def _ev(forget, retain, test=0.9):
    scores = {"accuracy": {"forget": forget, "retain": retain, "test": test}}
    return {"current": scores, "retrain": {"accuracy": {"forget": 0.0, "retain": 0.99, "test": 0.9}}}


@pytest.mark.parametrize("stop, forgotten, cost, evaluation, kind, words", [
    ("nothing_to_do", "grey", "green", None, "not needed", "no unlearning step was taken"),
    ("reached_reference", "green", "green", _ev(0.0, 0.98), "done", "forget accuracy 0.0% (retrained model: 0.0%)"),
    ("unavoidable", "amber", "amber", _ev(0.3, 0.9), "not achievable without damage",
     "forget accuracy 30.0% (retrained model: 0.0%), retain accuracy 90.0% (retrained model: 99.0%)"),
    # a run stopped by the steps asked for, half way there: not a proof that forgetting costs damage
    ("step_limit", "red", "green", _ev(0.8, 0.99), "not concluded", "Not concluded yet"),
    ("step_limit", "amber", "green", _ev(0.2, 0.99), "not concluded", "before its forget set reached"),
    ("step_limit", "green", "red", _ev(0.0, 0.6), "not achievable without damage", "already paid"),
    ("refused", "amber", "green", _ev(0.2, 0.99), "not concluded", "neither reached"),
    # a model the user brought has no retrain reference: never "done", and the paragraph says why
    ("step_limit", "green", "green", {"current": {"accuracy": {"forget": 0.0, "retain": 0.99, "test": 0.9}}},
     "not concluded", "there is no retrain reference for this model"),
])
def test_the_conclusion_follows_the_stored_outcome(stop, forgotten, cost, evaluation, kind, words):
    from hamu_core.evaluation.report import conclusion

    outcome = {"stop": {"kind": stop, "step": 4, "message": "why"}, "reported_step": 4}
    verdict = {"forgotten": _finding(forgotten), "cost": _finding(cost), "attack": _finding("grey")}
    got_kind, text = conclusion(outcome, evaluation, verdict)
    assert got_kind == kind and words in text
