"""The contract every update rule honours, HAMU and baselines alike.

A rule is a frozen dataclass of settings (scikit-learn style: parameters stored as given,
validated once against the range each field declares; see ``setting``). The run computes
the paired gradients, clips them with the rule's ``clip_norm``, and asks the rule for the update; the rule never touches the weights. That
split is what lets one conformance suite, the comparison page and the CLI treat every
rule alike, and what makes a refused step leave the model untouched.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import ClassVar

import torch
from torch import nn

from hamu_core.rules.gradients import Grads, PairedGradients
from hamu_core.rules.setting import setting, validate


@dataclass(frozen=True)
class StepInputs:
    """What a rule sees for one step: models, the paired batches and their gradients."""

    model: nn.Module  # the model being unlearned (read-only for the rule)
    original: nn.Module  # frozen copy of the model before unlearning (KL, SCRUB)
    retain: tuple[torch.Tensor, torch.Tensor]  # (x, y) retain batch
    forget: tuple[torch.Tensor, torch.Tensor]  # (x, y) forget batch
    grads: PairedGradients  # g_r and g_f on those batches, clipped by the rule's clip_norm


@dataclass(frozen=True)
class RuleStep:
    """A proposed update Δ (θ ← θ + Δ) with the rule's own diagnostics.

    ``refused`` carries the reason when a stop option fired: the run then keeps the
    weights as they are and records the reason.
    """

    delta: Grads
    info: dict = field(default_factory=dict)
    refused: str | None = None


@dataclass(frozen=True)
class UpdateRule(ABC):
    """Base settings shared by every rule."""

    name: ClassVar[str]  # registry key, e.g. "hamu-q", "gdiff"
    needs_original: ClassVar[bool] = False  # True when the rule reads the frozen original model

    lr: float = setting(1e-2, "Learning rate", "Step size: θ ← θ − lr·u.", low=0, low_open=True)
    clip_norm: float | None = setting(  # None: no clipping
        None, "Clip gradients at", "Clip the retain and forget gradients separately to this norm. 0: no clipping.",
        low=0, low_open=True, optional=True)

    def __post_init__(self) -> None:
        validate(self)

    @abstractmethod
    def propose(self, inputs: StepInputs) -> RuleStep:
        """Return the update for this step without modifying anything."""

    @property
    def method(self) -> str:
        """The registry name this configuration runs under."""
        return self.name

    def settings(self) -> dict:
        """Plain-dict settings (method name included) for stores, reports and the CLI."""
        return {"method": self.method, **asdict(self)}
