"""Run several update rules side by side on one forget set, and rank them by distance to the retrain reference.

A comparison is only fair when every method sees the same data in the same order. An
``UnlearningRun``'s batches are a pure function of (seed, step), so running every rule
with one seed gives every run the same paired batches at every step; each run's
``batch_digest`` column records a hash of them so that anyone can check it. Each run
deep-copies the model, so no method sees another's updates.

Loss changes are *paired*: at step k a run's forget-loss gain is its forget loss after the
step minus the original model's loss on that same step-k batch (likewise for the retain
loss). Retain batches are sampled, so a fixed "initial loss" from step 1 would mix batch
noise into every point of the trade-off path; pairing cancels it.

A run that produces NaN or Inf (say gradient ascent with a huge learning rate) or is
refused by a stop option is reported with its reason and stops there; the others go on.

Runs are ranked by their distance to the retrain reference (``target.reference_distance``:
the largest accuracy gap over forget, retain and test), not by how much they forgot: a
model that collapsed forgets everything and is still far from a model retrained without
the forget set. Several runs often end at the same point (constraints that all stopped
at once); ``merge_identical`` lists such a point once with every run that ended there.
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from hamu_core.evaluation.target import ReferenceTarget, reference_distance
from hamu_core.rules.registry import make_rule
from hamu_core.rules.rule import UpdateRule
from hamu_core.runs.unlearner import Batch, StepRecord, UnlearningRun, stop_rules

Spec = tuple[str, UpdateRule] | tuple[str, str, dict]
Progress = Callable[[float, str], None]
TRAJECTORY_COLUMNS = (
    "label", "method", "step", "forget_loss_gain", "retain_loss_change", "kappa", "kappa2", "margin",
    "cos_rf", "branch", "feasible", "degradation_unavoidable", "radius", "constraint", "step_norm",
    "forget_loss_after", "retain_loss_after", "wall_ms", "batch_digest",
)
STATUSES = ("completed", "stopped", "failed")
ACCURACIES = ("forget_acc", "retain_acc", "test_acc")  # what a final point is placed and ranked by


def constraint_sweep(method: str, constraints: Sequence[float], **settings) -> list[tuple[str, str, dict]]:
    """Specs running ``method`` once per constraint B, labelled ``"<METHOD> B=<B>"`` like the methods' own labels.

    The other settings are shared by every spec; a ``constraint`` among them is refused,
    since the sweep sets it.
    """
    if "constraint" in settings:
        raise ValueError("constraint is set by the sweep; pass it in constraints, not in settings")
    if not constraints:
        raise ValueError("constraints must hold at least one value")
    return [(f"{method.upper()} B={c:g}", method, {**settings, "constraint": c}) for c in constraints]


@dataclass(frozen=True)
class Comparison:
    """What ``compare_methods`` measured.

    ``trajectories`` has one row per (label, step) with TRAJECTORY_COLUMNS; ``finals`` one
    row per label: its last step's values, ``steps_done``, ``status`` (one of STATUSES),
    ``reason`` and any columns returned by the caller's ``evaluate_fn``.
    """

    trajectories: pd.DataFrame
    finals: pd.DataFrame
    histories: dict[str, list[StepRecord]]  # label → the run's StepRecords, in order
    settings: dict[str, dict]  # label → the rule's plain settings
    seed: int  # the one seed every run used
    steps: int  # steps asked of each run
    stop_when: tuple[str, ...] = ()  # the stop rules every run was held to (none: every run took every step)


def _require(points: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in points.columns]
    if missing:
        raise ValueError(f"the final points have no column {missing[0]!r}; measure each run (evaluate_fn) first")


def rank_by_reference(finals: pd.DataFrame, reference: Mapping[str, float]) -> pd.DataFrame:
    """A copy of ``finals`` with a ``distance`` column, in accuracy points, closest to ``reference`` first.

    ``reference`` holds the retrain reference's ``forget_acc``, ``retain_acc`` and
    ``test_acc``; the distance is ``target.reference_distance`` of each row's accuracies. It
    is computed here from those columns, so any table of final points can be ranked. Rows
    without a measurement (NaN) come last; ties keep the finals' order.
    """
    _require(finals, ACCURACIES)
    points = finals[list(ACCURACIES)].astype(float)
    distance = [math.nan if row.isna().any() else reference_distance(row, reference) for _, row in points.iterrows()]
    return finals.assign(distance=distance).sort_values("distance", kind="stable", na_position="last")


def merge_identical(points: pd.DataFrame, columns: Sequence[str] = ACCURACIES) -> pd.DataFrame:
    """One row per distinct value of ``columns`` (the first run's), with ``labels``: every run that ended there.

    Drawn one by one, runs with identical final accuracies hide each other on a chart,
    and a sweep whose constraints all ended at the same model looks like one run. Order is
    kept (first appearance); rows with a NaN in ``columns`` cannot be placed and are dropped.
    """
    _require(points, [*columns, "label"])
    groups = points.groupby(list(columns), sort=False, dropna=True)
    merged = groups.head(1).copy()
    merged["labels"] = [list(labels) for _, labels in groups["label"]]
    return merged


def _digest(retain: Batch, forget: Batch) -> str:
    h = hashlib.sha1()
    for t in (*retain, *forget):
        h.update(t.detach().cpu().contiguous().numpy().tobytes())  # batches live on the model's device
    return h.hexdigest()[:16]


def _build(spec: Spec) -> tuple[str, UpdateRule]:
    if len(spec) == 2 and isinstance(spec[1], UpdateRule):
        return spec
    if len(spec) == 3 and isinstance(spec[1], str) and isinstance(spec[2], dict):
        label, method, settings = spec
        return label, make_rule(method, **settings)
    raise ValueError(f"specs entries must be (label, rule) or (label, method, settings), got {spec!r}")


class _OriginalLosses:
    """The original model's losses per distinct batch, computed once and shared by all runs."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.cache: dict[str, tuple[float, float]] = {}

    def __call__(self, digest: str, retain: Batch, forget: Batch) -> tuple[float, float]:
        if digest not in self.cache:
            with torch.no_grad():
                self.cache[digest] = (
                    float(F.cross_entropy(self.model(retain[0]), retain[1])),
                    float(F.cross_entropy(self.model(forget[0]), forget[1])),
                )
        return self.cache[digest]


def _row(label: str, record: StepRecord, digest: str, original: tuple[float, float]) -> dict:
    values = record.to_dict()
    row = {name: values[name] for name in TRAJECTORY_COLUMNS if name in values}
    row.update(
        label=label,
        forget_loss_gain=record.forget_loss_after - original[1],
        retain_loss_change=record.retain_loss_after - original[0],
        batch_digest=digest,
    )
    return row


def compare_methods(
    specs: Sequence[Spec],
    *,
    model: nn.Module,
    retain: Batch,
    forget: Batch,
    seed: int,
    steps: int,
    retain_batch_size: int = 256,
    progress: Progress | None = None,
    stop_when: str | Sequence[str] | None = None,
    target: ReferenceTarget | None = None,
    evaluate_fn: Callable[[nn.Module], dict] | None = None,
) -> Comparison:
    """Run every spec for up to ``steps`` steps on the same forget set and paired batches.

    ``specs`` are (label, rule) or (label, method, settings) with unique labels; all rules
    are built and checked before any run starts. ``progress(fraction, message)`` is called
    after every step and after every run. ``stop_when`` names stop rules of
    ``UnlearningRun.steps`` applied to every run alike (None: every run takes every step);
    "reached_reference" needs ``target``, which also gives each final row its
    ``closest_step`` and ``distance`` to the reference. ``evaluate_fn(model)`` is called on
    each run's final model; its dict (nested dicts are flattened to ``"outer.inner"`` keys)
    is added to that run's row of ``finals``.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    rules = [_build(spec) for spec in specs]
    if not rules:
        raise ValueError("specs must hold at least one method")
    labels = [label for label, _ in rules]
    if len(set(labels)) != len(labels):
        raise ValueError(f"specs labels must be unique, got {labels}")
    stop = stop_rules(stop_when)
    original = _OriginalLosses(copy.deepcopy(model).eval().requires_grad_(False))
    rows, finals, histories = [], [], {}

    def report(done: float, message: str) -> None:
        if progress is not None:
            progress(done / len(rules), message)

    for i, (label, rule) in enumerate(rules):
        run = UnlearningRun(rule, model=model, retain=retain, forget=forget, seed=seed,
                            retain_batch_size=retain_batch_size, undo_depth=1, target=target)
        run_rows = []
        for record in run.steps(steps, stop):
            batches = run.batches(record.step)
            digest = _digest(*batches)
            run_rows.append(_row(label, record, digest, original(digest, *batches)))
            report(i + record.step / steps, f"{label}: step {record.step} of {steps}")
        status = {"step_limit": "completed", "diverged": "failed"}.get(run.stop_.kind, "stopped")
        reason = "" if status == "completed" else run.stop_.message
        rows.extend(run_rows)
        histories[label] = list(run.history_)
        final = _final(label, rule, run_rows, status, reason, evaluate_fn, run.model_)
        if target is not None:
            final.update(closest_step=run.closest_step_, distance=run.distance_at(len(run.history_)),
                         closest_distance=run.distance_at(run.closest_step_))
        finals.append(final)
        report(i + 1, f"{label}: {status}")
    return Comparison(
        trajectories=pd.DataFrame(rows, columns=list(TRAJECTORY_COLUMNS)),
        finals=pd.DataFrame(finals),
        histories=histories,
        settings={label: rule.settings() for label, rule in rules},
        seed=seed,
        steps=steps,
        stop_when=stop,
    )


def _final(label, rule, run_rows, status, reason, evaluate_fn, model) -> dict:
    """One run's final point: its last step's row (NaN when no step succeeded) plus outcome."""
    last = run_rows[-1] if run_rows else {}
    point = {"label": label, "method": rule.method, "status": status, "reason": reason, "steps_done": len(run_rows)}
    point.update((name, last.get(name, math.nan)) for name in TRAJECTORY_COLUMNS if name not in point)
    if evaluate_fn is not None:
        extra = pd.json_normalize(evaluate_fn(model), sep=".").iloc[0].to_dict()
        clash = set(extra) & set(point)
        if clash:
            raise ValueError(f"evaluate_fn returned keys that clash with comparison columns: {sorted(clash)}")
        point.update(extra)
    return point
