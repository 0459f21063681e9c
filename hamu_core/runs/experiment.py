"""One unlearning experiment described as plain settings, built exactly as the Studio builds it.

The CLI, the sweep workers and scripts all start from an ``ExperimentSpec``: a frozen,
picklable record of data, model recipe, forget set, method, settings and seed. Building
from it follows the app's path step for step (built-in or uploaded data, the original
model from ``checkpoint.cached_train``, retain = training ids minus forget ids, the
Studio's ``DEFAULTS``), so a run started here has the same history as the same run
started in the browser, and its stored record can be reopened by either.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from torch import nn

from hamu_core.config import DEFAULTS
from hamu_core.data.builtin import BUILTIN_DATASETS
from hamu_core.data.labelled import LabelledData
from hamu_core.data.selection import (
    ListedIds,
    describe_selection,
    select_class,
    select_listed,
    select_random,
    select_rho_mix,
    validate_forget_set,
)
from hamu_core.data.uploads import check_file_size, display_name, load_upload
from hamu_core.evaluation.metrics import SPLITS, Evaluation, evaluate, verdict
from hamu_core.evaluation.report import Report, build_report
from hamu_core.evaluation.target import ReferenceTarget, measured_splits, reference_distance
from hamu_core.models.architectures import ModelConfig, model_fingerprint
from hamu_core.models.checkpoint import cached_train, ids_hash
from hamu_core.models.device import resolve_device
from hamu_core.models.imported import load_model_file
from hamu_core.models.training import Progress, TrainConfig, retain_ids
from hamu_core.rules.registry import METHODS, make_rule
from hamu_core.runs.store import RunStore, StoredRun, StoredRunRecorder
from hamu_core.runs.unlearner import DEFAULT_STOP, Stop, UnlearningRun, stop_rules

if TYPE_CHECKING:
    from hamu_core.runs.distributed import DataParallel

FORGET_KINDS = ("class", "random", "rho", "ids")
CHECKPOINT_EVERY = 25  # a resume replays ≤ 24 steps (~0.15 s on digits); every 10 cost 6% of a step (bench_store)


@dataclass(frozen=True)
class ForgetChoice:
    """How the forget set is chosen; ``select`` turns it into ids with ``hamu_core.data.selection``."""

    kind: str  # one of FORGET_KINDS
    cls: str | None = None  # class name, or index when no class has that name ("class" and "rho")
    fraction: float | None = None  # share of the training set ("random")
    rho: float | None = None  # share of the class swapped for other classes ("rho")
    ids: tuple[int, ...] = ()  # explicit training-sample ids ("ids")
    seed: int = DEFAULTS.seed  # seeds "random" and "rho"; not the run's seed, so a sweep over seeds keeps one set

    def __post_init__(self) -> None:
        if self.kind not in FORGET_KINDS:
            raise ValueError(f"forget kind must be one of {FORGET_KINDS}, got {self.kind!r}")
        needs = {"class": ("cls",), "random": ("fraction",), "rho": ("cls", "rho"), "ids": ()}[self.kind]
        for name in needs:
            if getattr(self, name) is None:
                raise ValueError(f"forget kind {self.kind!r} needs {name}")
        if self.kind == "ids" and not self.ids:
            raise ValueError("forget ids: the list of ids is empty; select at least one training sample")

    def choose(self, data: LabelledData) -> ListedIds:
        """The forget ids and, for listed ids, those skipped and why (test or unknown ids).

        ValueError when no training id remains, or the set is empty or the whole training set.
        """
        cls = self.cls  # a class name first, so labels like "1", "2" name classes rather than indices
        if cls is not None and cls not in data.classes and cls.isdigit():
            cls = int(cls)
        chosen = {"class": lambda: ListedIds(select_class(data, cls), {}),
                  "random": lambda: ListedIds(select_random(data, self.fraction, seed=self.seed), {}),
                  "rho": lambda: ListedIds(select_rho_mix(data, cls, self.rho, seed=self.seed), {}),
                  "ids": lambda: select_listed(data, self.ids)}[self.kind]()
        return ListedIds(validate_forget_set(data, chosen.ids), chosen.skipped)

    def select(self, data: LabelledData) -> np.ndarray:
        """Sorted forget ids (``choose(data).ids``): listed test or unknown ids are left out."""
        return self.choose(data).ids

    def describe(self) -> str:
        if self.kind == "class":
            return f"class {self.cls}"
        if self.kind == "random":
            return f"random {self.fraction:g} (seed {self.seed})"
        if self.kind == "rho":
            return f"class {self.cls} with rho {self.rho:g} (seed {self.seed})"
        return f"{len(self.ids)} listed ids"


@dataclass(frozen=True)
class ExperimentSpec:
    """Everything that decides one unlearning run; equal specs give equal histories."""

    forget: ForgetChoice
    dataset: str = DEFAULTS.dataset  # a built-in dataset name (ignored when data_file is given)
    data_file: str | None = None  # a CSV, NPZ or zip-of-folders file, read as the app reads an upload
    model: ModelConfig = field(default_factory=lambda: ModelConfig(arch=DEFAULTS.arch))
    train: TrainConfig = field(default_factory=TrainConfig)  # recipe of the original and the retrain reference
    method: str = DEFAULTS.method
    settings: tuple[tuple[str, object], ...] = ()  # (name, value) overriding DEFAULTS.method_settings(method)
    seed: int = DEFAULTS.seed  # seeds the run's batches
    retain_batch_size: int = DEFAULTS.retain_batch_size
    device: str = "auto"  # where models train and runs step: "auto" (CUDA if present), "cpu", "cuda" or "cuda:N"
    model_file: str | None = None  # own model as the original: .safetensors of ``model``'s arch, or a .pt2 export

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {sorted(METHODS)}, got {self.method!r}")
        if self.data_file is None and self.dataset not in BUILTIN_DATASETS:
            raise ValueError(f"dataset must be one of {sorted(BUILTIN_DATASETS)} or a file, got {self.dataset!r}")
        if self.retain_batch_size < 1:
            raise ValueError(f"retain_batch_size must be >= 1, got {self.retain_batch_size}")
        make_rule(self.method, **self.rule_settings())  # a bad setting fails here, naming the field
        resolve_device(self.device)  # an unknown device, or a GPU that is not there, fails here too

    def rule_settings(self) -> dict:
        """The Studio's defaults for the method overlaid with this spec's settings (as the session does)."""
        return {**DEFAULTS.method_settings(self.method), **dict(self.settings)}


@functools.lru_cache(maxsize=4)
def load_dataset(dataset: str, data_file: str | None = None) -> LabelledData:
    """The built-in dataset or the parsed file, read once per process (datasets are never changed)."""
    if data_file is None:
        return BUILTIN_DATASETS[dataset]()
    path = Path(data_file)
    if not path.is_file():
        raise FileNotFoundError(f"no data file at {path}")
    check_file_size(path.stat().st_size, display_name(path.name))  # never read a file too large to load
    return load_upload(path.read_bytes(), path.name)


@dataclass(frozen=True, eq=False)
class Prepared:
    """What a run needs besides its rule: the data, the forget ids and the trained models."""

    data: LabelledData
    forget_ids: np.ndarray
    original: nn.Module  # read-only: runs deep-copy it
    retrain: nn.Module | None  # the retrain reference, None when not asked for


def prepare(spec: ExperimentSpec, *, with_retrain: bool = True, progress: Progress | None = None) -> Prepared:
    """Load data, choose the forget set and get both models from the disk cache (training if absent).

    With ``spec.model_file`` the original is that file's model, checked against the data, and
    there is no retrain reference: the Studio does not know how the model was trained.
    """
    data = load_dataset(spec.dataset, spec.data_file)
    forget_ids = spec.forget.select(data)
    if spec.model_file is not None:
        own = load_model_file(spec.model_file, data, spec.model, device=spec.device)
        return Prepared(data, forget_ids, own.model, None)
    original = cached_train(data, None, spec.model, spec.train, "original", progress, device=spec.device)
    retrain = (cached_train(data, forget_ids, spec.model, spec.train, "retrain", progress, device=spec.device)
               if with_retrain else None)
    return Prepared(data, forget_ids, original, retrain)


def unlearning_run(data: LabelledData, model: nn.Module, forget_ids: np.ndarray, method: str, settings: dict,
                   *, seed: int, retain_batch_size: int = DEFAULTS.retain_batch_size,
                   reference: nn.Module | None = None, data_parallel: DataParallel | None = None) -> UnlearningRun:
    """The run the Studio's Unlearn page builds: retain = training ids minus forget ids, whole forget set per step.

    The run measures itself on the seeded probe of ``target.measured_splits`` after every
    step; given the retrain ``reference`` it also knows its target (stop rule
    "reached_reference", "nothing to do", the closest step).
    """
    retain = retain_ids(data, forget_ids)
    probe = measured_splits(data, forget_ids, seed)
    target = None if reference is None else ReferenceTarget(reference, model, probe)
    return UnlearningRun(make_rule(method, **settings), model=model, retain=data.tensors(retain),
                         forget=data.tensors(forget_ids), seed=seed, retain_batch_size=retain_batch_size,
                         target=target, probe=probe, data_parallel=data_parallel)


def dataset_record(spec: ExperimentSpec, prepared: Prepared) -> dict:
    """What the store keeps to identify the data, model and forget set: enough to rebuild the run.

    The keys of the app's ``StudioSession.provenance`` (source, upload, fingerprint, model,
    train), so the Studio can reopen a run started here; the rest is for the report.
    """
    data = prepared.data
    return {"name": data.name, "source": spec.data_file or f"builtin:{spec.dataset}",
            "upload": Path(spec.data_file).name if spec.data_file else None, "fingerprint": data.fingerprint(),
            "model": asdict(spec.model), "train": asdict(spec.train), "model_fingerprint": model_fingerprint(prepared.original),
            "model_file": Path(spec.model_file).name if spec.model_file else None,
            "forget_rule": spec.forget.describe(), "forget_hash": ids_hash(prepared.forget_ids),
            "forget_class_mix": describe_selection(data, prepared.forget_ids).class_mix}


def final_metrics(evaluation: Evaluation) -> dict[str, float]:
    """The few numbers a terminal shows after a run: accuracies, the retrain reference's, attack AUC, gaps."""
    metrics = {f"{split}_acc": evaluation.current.accuracy[split] for split in SPLITS}
    if evaluation.retrain is not None:
        reference = {f"{split}_acc": evaluation.retrain.accuracy[split] for split in SPLITS}
        metrics.update({f"retrain_{name}": value for name, value in reference.items()})
        metrics["distance"] = reference_distance(metrics, reference)
    metrics.update(mia_auc=evaluation.current.mia_auc, avg_gap=evaluation.avg_gap)
    return metrics


@dataclass(frozen=True)
class Outcome:
    """What ``execute`` did: the stored run, its status, its steps, why it stopped, the step it reports on."""

    run_id: str
    status: str  # "finished", or "failed" when a step made the loss non-finite
    steps: int
    stop: Stop  # why the step loop ended (kind and words)
    reported_step: int  # the step the evaluation describes: the closest to the reference, else the last
    metrics: dict[str, float]  # final_metrics() of the reported step, empty when not evaluated


def execute(spec: ExperimentSpec, store: RunStore, *, steps: int, stop_when=DEFAULT_STOP,
            with_eval: bool = True, label: str = "", request_ref: str = "",
            progress: Progress | None = None, data_parallel: DataParallel | None = None) -> Outcome:
    """Run ``spec`` for up to ``steps`` steps under the stop rules ``stop_when``, storing each step, then evaluate.

    The retrain reference is loaded (trained once, disk-cached) whenever the evaluation or
    the stop rule "reached_reference" needs it. The evaluation describes the step nearest
    the reference (``UnlearningRun.closest_step_``; the last step without a reference): it
    is stored with the last step as ``{"evaluation", "verdict", "reported_step", "stop"}``,
    which ``stored_report`` reads. Every step's measurement is stored with the step itself.
    ``label`` and ``request_ref`` (ticket id, requester) are stored with the run and reported.
    With ``data_parallel`` this process is one rank of a run whose steps are computed across
    processes (``hamu_core.runs.distributed.run_on_ranks``).
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    rules = stop_rules(stop_when)
    prepared = prepare(spec, with_retrain=with_eval or "reached_reference" in rules, progress=progress)
    if prepared.retrain is None:  # an own model has no reference to reach
        rules = tuple(rule for rule in rules if rule != "reached_reference")
    run = unlearning_run(prepared.data, prepared.original, prepared.forget_ids, spec.method, spec.rule_settings(),
                         seed=spec.seed, retain_batch_size=spec.retain_batch_size, reference=prepared.retrain,
                         data_parallel=data_parallel)
    recorder = StoredRunRecorder.start(store, run, dataset=dataset_record(spec, prepared),
                                       forget_ids=prepared.forget_ids, label=label, request_ref=request_ref,
                                       checkpoint_every=CHECKPOINT_EVERY)
    try:
        for record in recorder.steps(steps, rules):
            if progress is not None:
                progress(record.step / steps, f"{spec.method}: step {record.step}")
    except KeyboardInterrupt:
        recorder.finish("interrupted")  # resumable: every step taken so far is stored
        raise
    stop, closest = run.stop_, run.closest_step_
    reported = len(run.history_) if closest is None else closest
    why = "the last step (no retrain reference to aim at)" if closest is None else "the step closest to the retrain reference"
    metrics = {}
    if with_eval:
        evaluation = evaluate(run.model_at(reported), prepared.data, prepared.forget_ids, retrain=prepared.retrain,
                              original=prepared.original, seed=spec.seed)
        findings = verdict(evaluation)
        recorder.evaluate({"evaluation": evaluation.to_dict(), "reported_step": reported, "reported_why": why,
                           "stop_rules": list(rules),
                           "stop": asdict(stop),
                           "verdict": {name: asdict(getattr(findings, name)) for name in ("forgotten", "cost", "attack")}})
        metrics = final_metrics(evaluation)
    status = "failed" if stop.kind == "diverged" else "finished"
    recorder.finish(status)
    return Outcome(recorder.run_id, status, len(run.history_), stop, reported, metrics)


def run_record(stored: StoredRun) -> dict:
    """What a report states to identify a stored run: label, request, run and parent, fingerprints."""
    return {"label": stored.label, "request_ref": stored.request_ref, "run_id": stored.id,
            "parent_id": stored.parent_id, "branch_step": stored.branch_step,
            "data_fingerprint": stored.dataset.get("fingerprint"),
            "model_fingerprint": stored.dataset.get("model_fingerprint"), "forget_hash": stored.dataset.get("forget_hash")}


def stored_report(stored: StoredRun) -> Report:
    """The audit report of a stored run, from the store alone (no data or model needed).

    Dated by the run's last write, so regenerating it gives the same bytes every time.
    """
    evaluated = [e for e in stored.evaluations if "evaluation" in e]
    latest = evaluated[-1] if evaluated else {}
    dataset = {k: v for k, v in stored.dataset.items() if k != "forget_class_mix"}
    rules = latest.get("stop_rules")
    settings = {**stored.settings, **({} if rules is None else {"stop_rules": ", ".join(rules) or "none"}),
                "seed": stored.seed, "retain_batch_size": stored.retain_batch_size,
                "forget_batch_size": stored.forget_batch_size, "run_id": stored.id, "status": stored.status}
    forget = {"size": len(stored.forget_ids), "class_mix": stored.dataset.get("forget_class_mix", {}),
              "ids": list(stored.forget_ids)}
    outcome = {key: latest[key] for key in ("stop", "reported_step", "reported_why") if key in latest}
    points = {e["step"]: {k: v for k, v in e.items() if k.endswith(("_acc", "_loss"))} for e in stored.evaluations}
    history = [{**record, **points.get(record["step"], {})} for record in stored.history]
    return build_report(settings=settings, dataset=dataset, forget=forget, history=history,
                        evaluation=latest.get("evaluation"), verdict=latest.get("verdict"), outcome=outcome or None,
                        record=run_record(stored), created=datetime.fromisoformat(stored.updated))
