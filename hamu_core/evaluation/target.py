"""The retrain reference as a run's target: where unlearning should end, and whether it got there.

Exact unlearning is the model retrained without the forget set, so a run succeeds when its
model behaves like that reference on the forget set at the least cost to everything else,
not when the forget loss is highest. For a random few percent of the data the reference
still classifies most forget samples correctly (they resemble what it kept), so the right
answer can be "nothing needs to change"; for a whole class it is "stop recognising it".

Behaviour is measured on a *probe*: the forget, retain and test samples, each cut to a
seeded subset of ``MEASURE_LIMIT`` so that measuring after every step stays cheap. Every
caller (the app, the CLI, comparisons, sweeps) measures the same way, so the same run
reaches the same verdict everywhere.

"Within the reference's statistical noise" is decided per forget-set statistic with a
two-sample 95 % band, so it widens honestly for small forget sets:

- forget accuracy: |p − p_ref| ≤ max(z·√(2·p̄(1 − p̄)/n), 1/n), with p̄ the pooled proportion
  (two proportions on n samples each; one sample's worth when both are 0 or 1);
- mean forget loss: |m − m_ref| ≤ z·√((s² + s_ref²)/n), the standard error of a difference of
  two means of n per-sample losses.

A run has *reached* the reference when each statistic is inside its band or beyond it on
the far side from where the run started (one large step may overshoot, which the closest-
step choice then corrects). A forget set too small to tell (fewer than ``MIN_FORGET``
samples) never gets "nothing to do": a wrong reassurance is worse than a few small steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from hamu_core.data.labelled import LabelledData
from hamu_core.evaluation.embedding import forward_batched
from hamu_core.evaluation.metrics import SampleOutputs, mean_gap_half_width, split_ids

SPLITS = ("forget", "retain", "test")
MEASURE_LIMIT = 2000  # samples per split measured after every step (a seeded subset beyond this)
Z95 = 1.959963984540054  # two-sided 95 % normal quantile
MIN_FORGET = 10  # below this many forget samples "nothing to do" is never declared

Probe = dict[str, tuple[np.ndarray, torch.Tensor, torch.Tensor]]  # split → (ids, inputs, labels)


def measured_splits(data: LabelledData, forget_ids: np.ndarray, seed: int) -> Probe:
    """Forget, retain and test samples, each cut to a seeded subset of ``MEASURE_LIMIT`` so a step stays cheap."""
    rng = np.random.default_rng(seed)
    probe = {}
    for split, ids in split_ids(data, forget_ids).items():
        if len(ids) > MEASURE_LIMIT:
            ids = np.sort(rng.choice(ids, MEASURE_LIMIT, replace=False))
        probe[split] = (ids, *data.tensors(ids))
    return probe


def per_sample(model: nn.Module, ids: np.ndarray, x: torch.Tensor, y: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(correct, loss) per sample: 0/1 correctness and cross-entropy, from one no-grad pass."""
    outputs = SampleOutputs.from_logits(ids, forward_batched(model, x), y)
    return (outputs.pred == outputs.labels).astype(np.float64), outputs.loss


@dataclass(frozen=True, eq=False)
class Measurement:
    """A model's point on a probe (``forget_acc``, ``forget_loss``, ...) and its per-sample forget numbers."""

    point: dict[str, float]
    forget_correct: np.ndarray  # 0/1 per forget sample of the probe
    forget_loss: np.ndarray  # cross-entropy per forget sample of the probe


def measure_detail(model: nn.Module, probe: Probe) -> Measurement:
    """Accuracy and mean loss per split, keeping the forget set's per-sample numbers for the noise bands."""
    point, forget = {}, (np.empty(0), np.empty(0))
    for split, (ids, x, y) in probe.items():
        correct, loss = per_sample(model, ids, x, y)
        point[f"{split}_acc"] = float(correct.mean())
        point[f"{split}_loss"] = float(loss.mean())
        if split == "forget":
            forget = (correct, loss)
    return Measurement(point, *forget)


def measure(model: nn.Module, probe: Probe) -> dict[str, float]:
    """Accuracy and mean loss of ``model`` on each split (no-grad passes), keys like ``forget_acc``."""
    return measure_detail(model, probe).point


def reference_distance(point: dict, reference: dict) -> float:
    """The largest gap to the reference, in accuracy points (0–100), over forget, retain and test accuracy.

    One number a person can read ("3 points from retraining") that punishes both forgetting
    too little (forget accuracy) and damaging the rest (retain and test accuracy).
    """
    return 100.0 * max(abs(point[f"{s}_acc"] - reference[f"{s}_acc"]) for s in SPLITS)


@dataclass(frozen=True)
class Band:
    """A reference value and the half-width within which another value counts as the same."""

    reference: float
    half_width: float

    def contains(self, value: float) -> bool:
        return abs(value - self.reference) <= self.half_width

    def reached(self, value: float, start: float) -> bool:
        """Inside the band, or past it on the side away from ``start``."""
        if self.contains(value):
            return True
        if start < self.reference:
            return value > self.reference
        return value < self.reference

    def __str__(self) -> str:
        return f"{self.reference:.3g} ± {self.half_width:.2g}"


def accuracy_band(reference_correct: np.ndarray, value: float) -> Band:
    """The two-proportion band around the reference's accuracy for comparing ``value`` on the same n samples."""
    n = len(reference_correct)
    p_ref = float(reference_correct.mean())
    pooled = (p_ref + value) / 2
    return Band(p_ref, max(Z95 * math.sqrt(2 * pooled * (1 - pooled) / n), 1.0 / n))


def loss_band(reference_loss: np.ndarray, loss: np.ndarray) -> Band:
    """The band around the reference's mean loss for comparing the mean of ``loss`` (same samples)."""
    return Band(float(reference_loss.mean()), mean_gap_half_width(loss, reference_loss))


@dataclass(frozen=True)
class Standing:
    """Where a model stands against the reference on the forget set, with the evidence in words."""

    matches: bool  # forget accuracy and forget loss both within the reference's noise
    reached: bool  # both within noise or past it, coming from the run's start
    distance: float  # reference_distance, accuracy points
    accuracy: Band  # the reference's forget accuracy and the noise band around it
    loss: Band  # the reference's mean forget loss and the noise band around it
    forget_acc: float
    forget_loss: float
    n_forget: int

    def evidence(self) -> str:
        """One sentence naming the numbers and bands the judgement rests on."""
        return (f"on {self.n_forget} forget samples, accuracy {self.forget_acc:.1%} against the retrained model's "
                f"{self.accuracy.reference:.1%} (the same within ±{100 * self.accuracy.half_width:.1f} points at this "
                f"size) and mean loss {self.forget_loss:.3g} against {self.loss.reference:.3g} (the same within "
                f"±{self.loss.half_width:.2g}); the largest accuracy gap over forget, retain and test is "
                f"{self.distance:.1f} points")


class ReferenceTarget:
    """The retrain reference measured on a probe, and the original model's start, for judging a run.

    Built once per run from the two models; ``standing`` then costs nothing but arithmetic
    on a measurement the run takes anyway.
    """

    def __init__(self, reference: nn.Module, original: nn.Module, probe: Probe) -> None:
        self.probe = probe
        self.reference_ = measure_detail(reference, probe)
        self.start_ = measure_detail(original, probe)
        self.n_forget = len(self.reference_.forget_correct)

    @property
    def point(self) -> dict[str, float]:
        """The reference's accuracy and loss per split: the target line of every chart."""
        return self.reference_.point

    def standing(self, measured: Measurement) -> Standing:
        """How a model, measured on this target's probe, compares with the reference."""
        ref, start = self.reference_, self.start_.point
        acc_band = accuracy_band(ref.forget_correct, measured.point["forget_acc"])
        l_band = loss_band(ref.forget_loss, measured.forget_loss)
        acc, loss = measured.point["forget_acc"], measured.point["forget_loss"]
        matches = acc_band.contains(acc) and l_band.contains(loss)
        reached = acc_band.reached(acc, start["forget_acc"]) and l_band.reached(loss, start["forget_loss"])
        return Standing(matches, reached, reference_distance(measured.point, ref.point), acc_band, l_band, acc, loss,
                        self.n_forget)

    def nothing_to_do(self) -> Standing | None:
        """The original's standing when it already matches the reference within noise (and the set is large
        enough to tell), else None."""
        standing = self.standing(self.start_)
        return standing if standing.matches and self.n_forget >= MIN_FORGET else None
