"""A request ledger: deletion requests answered one after another, each on top of the last.

A data-protection officer rarely gets one request: class 3 now, 50 random records next
month, 20 listed ids after that. Request k is unlearned starting from the model request
k−1 produced (its reported step), with its own ids as the forget set, while the data kept
is the training set minus *everything* forgotten so far. The honest target of request k is
therefore the model retrained without the union of every set so far; that reference is
request k's run target, and the ledger records how far the chain of edits drifts from it.

Requests are written in the CLI's own words, one per line (``class 3``, ``random 0.05``,
``ids path/to/ids.txt`` or ``ids 4 17 230``, ``rho 3 0.5``), so a file the CLI reads and
the Studio's text area are the same thing.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from torch import nn

from hamu_core.config import DEFAULTS
from hamu_core.data.labelled import LabelledData
from hamu_core.evaluation.metrics import sample_outputs
from hamu_core.evaluation.target import ReferenceTarget, measured_splits, reference_distance
from hamu_core.jsonable import to_jsonable
from hamu_core.models.architectures import ModelConfig
from hamu_core.models.checkpoint import cached_train
from hamu_core.models.training import Progress, TrainConfig, retain_ids
from hamu_core.rules.registry import make_rule
from hamu_core.runs.experiment import ForgetChoice
from hamu_core.runs.unlearner import DEFAULT_STOP, UnlearningRun, stop_rules

REQUEST_WORDS = "class CLASS | random FRACTION [SEED] | rho CLASS RHO [SEED] | ids FILE | ids ID ID ..."
CACHE_HIT = "loaded from cache"  # the message cached_train reports when it loads rather than trains
SPLIT_COLUMNS = ("forget_acc", "forget_union_acc", "retain_acc", "test_acc")


@dataclass(frozen=True)
class Request:
    """One deletion request: the line it was written as, and the forget choice it means."""

    words: str  # the line as written, e.g. "class 3"
    choice: ForgetChoice


def _number(text: str, kind, what: str, line: int) -> float | int:
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"line {line}: {what} must be a number, got {text!r}") from None


def parse_request(words: str, line: int = 1, base_dir: str | Path = ".") -> Request:
    """One request from its words; ValueError naming the line and what is wrong.

    An ``ids`` request takes a file (relative to ``base_dir``) or the ids themselves, so a
    forget set chosen in the Studio can be written back as a line.
    """
    parts = words.split()
    kind, args = parts[0], parts[1:]
    if kind == "class" and len(args) == 1:
        return Request(words, ForgetChoice("class", cls=args[0]))
    if kind == "random" and len(args) in (1, 2):
        seed = _number(args[1], int, "the seed", line) if len(args) == 2 else DEFAULTS.seed
        return Request(words, ForgetChoice("random", fraction=_number(args[0], float, "the fraction", line), seed=seed))
    if kind == "rho" and len(args) in (2, 3):
        seed = _number(args[2], int, "the seed", line) if len(args) == 3 else DEFAULTS.seed
        return Request(words, ForgetChoice("rho", cls=args[0], rho=_number(args[1], float, "rho", line), seed=seed))
    if kind == "ids" and args:
        inline = " ".join(args)
        if re.fullmatch(r"[\d,\s]+", inline):
            text = inline
        else:
            path = Path(base_dir) / inline
            if not path.is_file():
                raise ValueError(f"line {line}: no ids file at {path}")
            text = path.read_text()
        tokens = text.replace(",", " ").split()
        ids = tuple(_number(t, int, "every id", line) for t in tokens)
        if not ids:
            raise ValueError(f"line {line}: the ids list is empty")
        return Request(words, ForgetChoice("ids", ids=ids))
    raise ValueError(f"line {line}: cannot read {words!r}; write one of: {REQUEST_WORDS}")


def parse_requests(text: str, base_dir: str | Path = ".") -> list[Request]:
    """Every non-blank line not starting with ``#`` as a request; ValueError naming the first bad line."""
    requests = [parse_request(raw.strip(), number, base_dir) for number, raw in enumerate(text.splitlines(), 1)
                if raw.strip() and not raw.strip().startswith("#")]
    if not requests:
        raise ValueError("no requests: write one per line, e.g. 'class 3'")
    return requests


@dataclass(frozen=True)
class LedgerEntry:
    """What answering one request did and cost, next to its retrain-without-everything-so-far reference."""

    request: str  # the request's words
    forget_size: int  # ids newly forgotten by this request (ids forgotten earlier are not counted again)
    forgotten_size: int  # every id forgotten so far, this request included
    steps: int
    stop_kind: str
    stop_message: str
    reported_step: int  # the step handed on to the next request: closest to the reference
    result: dict[str, float]  # forget_acc (this request), forget_union_acc, retain_acc, test_acc of the model handed on
    reference: dict[str, float]  # the same numbers for the model retrained without every set so far
    distance: float  # reference_distance on this request's forget set, retain and test (points)
    drift: float  # reference_distance on the union of every forget set so far: how far the chain has wandered
    unlearn_seconds: float  # building the run, stepping and recovering the reported step
    retrain_seconds: float | None  # training the reference; None when it came from the disk cache
    forget_ids: tuple[int, ...] = field(repr=False, default=())

    def metrics(self) -> dict[str, float | int | str]:
        """The numbers the CLI prints for this request, in the ``run`` verb's names."""
        return {"forget_size": self.forget_size, "forgotten_size": self.forgotten_size, "steps": self.steps,
                "reported_step": self.reported_step, **{k: self.result[k] for k in SPLIT_COLUMNS},
                **{f"retrain_{k}": self.reference[k] for k in SPLIT_COLUMNS}, "distance": self.distance,
                "drift": self.drift, "unlearn_seconds": self.unlearn_seconds,
                "retrain_seconds": "cached" if self.retrain_seconds is None else self.retrain_seconds}


@dataclass(frozen=True, eq=False)
class Ledger:
    """The requests answered in order, with what they were answered with."""

    entries: tuple[LedgerEntry, ...]
    settings: dict  # dataset, method, rule settings, seed, max_steps, stop rules

    def table(self) -> pd.DataFrame:
        """One row per request: sizes, steps, stop, accuracies beside the reference's, distance, drift, times."""
        rows = [{"request": e.request, "stop": e.stop_kind, **e.metrics()} for e in self.entries]
        frame = pd.DataFrame(rows)
        frame["retrain_seconds"] = pd.to_numeric(frame["retrain_seconds"], errors="coerce")  # "cached" → NaN
        return frame

    def to_dict(self) -> dict:
        """JSON-safe: settings and every entry (forget ids included)."""
        return to_jsonable({"settings": self.settings, "entries": [asdict(e) for e in self.entries]})


def _accuracies(model: nn.Module, data: LabelledData, own: np.ndarray, union: np.ndarray) -> dict[str, float]:
    splits = {"forget_acc": own, "forget_union_acc": union, "retain_acc": retain_ids(data, union),
              "test_acc": data.test_ids}
    return {name: sample_outputs(model, data, ids).accuracy for name, ids in splits.items()}


def _reference(data: LabelledData, union: np.ndarray, model_config: ModelConfig, train_config: TrainConfig,
               progress: Progress | None) -> tuple[nn.Module, float | None]:
    """The model retrained without ``union`` and the seconds its training took (None on a disk-cache hit)."""
    messages = []

    def noted(fraction: float, message: str) -> None:
        messages.append(message)
        if progress is not None:
            progress(fraction, message)

    start = time.perf_counter()
    model = cached_train(data, union, model_config, train_config, "retrain", noted)
    seconds = time.perf_counter() - start
    return model, None if any(CACHE_HIT in m for m in messages) else seconds


def _run(data: LabelledData, model: nn.Module, own: np.ndarray, union: np.ndarray, method: str, settings: dict,
         seed: int, retain_batch_size: int, reference: nn.Module) -> UnlearningRun:
    """Request k's run: forget its own ids, keep the training ids minus every set forgotten so far.

    The probe measures this request's forget set and the retain set without the union, so
    the run's target compares like with like (``experiment.unlearning_run`` would keep the
    earlier sets in the retain data).
    """
    probe = {**measured_splits(data, union, seed), "forget": measured_splits(data, own, seed)["forget"]}
    return UnlearningRun(make_rule(method, **settings), model=model, retain=data.tensors(retain_ids(data, union)),
                         forget=data.tensors(own), seed=seed, retain_batch_size=retain_batch_size,
                         target=ReferenceTarget(reference, model, probe), probe=probe)


def run_ledger(requests: list[Request], *, dataset: LabelledData, model_config: ModelConfig,
               train_config: TrainConfig, method: str = DEFAULTS.method, settings: dict | None = None,
               seed: int = DEFAULTS.seed, max_steps: int = DEFAULTS.max_steps, stop_when=DEFAULT_STOP,
               retain_batch_size: int = DEFAULTS.retain_batch_size, progress: Progress | None = None) -> Ledger:
    """Answer ``requests`` in order, each on the model the previous one handed on.

    ``settings`` overrides the Studio's defaults for ``method``. Request k forgets its own
    ids (less any already forgotten: ValueError naming the request when none are left), runs
    up to ``max_steps`` steps under ``stop_when`` towards the model retrained without every
    set so far, and hands ``run.model_at(run.closest_step_)`` to request k+1.
    """
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    rules = stop_rules(stop_when)
    rule_settings = {**DEFAULTS.method_settings(method), **(settings or {})}
    make_rule(method, **rule_settings)  # a bad setting fails before any training
    model = cached_train(dataset, None, model_config, train_config, "original")
    union = np.empty(0, dtype=np.int64)
    entries = []
    for k, request in enumerate(requests):
        def part(fraction: float, message: str, k=k) -> None:
            if progress is not None:
                progress((k + fraction) / len(requests), f"request {k + 1}: {message}")

        own = np.setdiff1d(request.choice.select(dataset), union)
        if len(own) == 0:
            raise ValueError(f"request {k + 1} ({request.words}): every id it names was forgotten already")
        union = np.union1d(union, own)
        part(0.0, "retrain reference")
        reference, retrain_seconds = _reference(dataset, union, model_config, train_config,
                                                lambda f, m: part(0.5 * f, f"retrain reference: {m}"))
        start = time.perf_counter()
        run = _run(dataset, model, own, union, method, rule_settings, seed, retain_batch_size, reference)
        for record in run.steps(max_steps, rules):
            part(0.5 + 0.5 * record.step / max_steps, f"{method}: step {record.step}")
        reported = run.closest_step_
        model = run.model_at(reported)
        unlearn_seconds = time.perf_counter() - start
        result = _accuracies(model, dataset, own, union)
        target = _accuracies(reference, dataset, own, union)
        entries.append(LedgerEntry(
            request=request.words, forget_size=len(own), forgotten_size=len(union), steps=len(run.history_),
            stop_kind=run.stop_.kind, stop_message=run.stop_.message, reported_step=reported,
            result=result, reference=target, distance=reference_distance(result, target),
            drift=reference_distance({**result, "forget_acc": result["forget_union_acc"]},
                                     {**target, "forget_acc": target["forget_union_acc"]}),
            unlearn_seconds=unlearn_seconds, retrain_seconds=retrain_seconds,
            forget_ids=tuple(int(i) for i in own)))
    summary = {"dataset": dataset.name, "model": asdict(model_config), "train": asdict(train_config),
                     "method": method, "settings": rule_settings, "seed": seed, "max_steps": max_steps,
                     "stop_when": list(rules)}
    return Ledger(tuple(entries), summary)
