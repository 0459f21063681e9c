"""UnlearningRun: one model being unlearned, one step at a time, with undo.

The app *pulls* steps (one click = one or N ``step()`` calls), which fits Streamlit's rerun
model; no callbacks or observers are involved. The run owns a private deep copy of the
model, so nothing a user does here can change a cached base model or another user's run.

Batches are a pure function of (seed, step index): after ``undo()`` the next step sees
exactly the batch it saw before, and the same seed gives the same trajectory bit for bit.
"""

from __future__ import annotations

import copy
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from hamu_core import gradients as G
from hamu_core.hardness import cosine, tensor_cosines
from hamu_core.rule import StepInputs, UpdateRule

Batch = tuple[torch.Tensor, torch.Tensor]
STOP_CONDITIONS = ("infeasible", "unavoidable")


@dataclass(frozen=True)
class StepRecord:
    """Everything one step did, in plain numbers (JSON-safe through ``to_dict``)."""

    step: int  # 1-based index of this step in the run
    method: str
    branch: str  # HAMU branch taken ("mixed" tensors report the dominant one); "" for baselines
    branch_counts: dict  # per-tensor branch counts (HAMU per-tensor mode)
    kappa: float  # κ = g_r·g_f on this step's (clipped) gradients
    kappa2: float  # stopping threshold κ2 (NaN for baselines and infeasible steps)
    margin: float  # κ2 − κ; negative means degradation is unavoidable
    cos_rf: float  # overall cos θ_rf
    cos_per_tensor: dict  # parameter name → cos θ_rf of that tensor
    radius: float  # ‖Δ‖ bound (HAMU) or NaN
    constraint: float  # B (HAMU) or NaN
    feasible: bool
    degradation_unavoidable: bool
    retain_loss_before: float
    retain_loss_after: float
    forget_loss_before: float
    forget_loss_after: float
    step_norm: float  # ‖Δ‖ actually applied
    wall_ms: float  # time to compute and apply the step
    # ‖g_r‖ and ‖g_f‖ of the (clipped) gradients the step used: with κ and the radius they place
    # the step on the hardness diagram. Defaults keep records stored before these fields loadable.
    retain_grad_norm: float = math.nan
    forget_grad_norm: float = math.nan
    info: dict = field(default_factory=dict)  # the rule's extra diagnostics

    def to_dict(self) -> dict:
        return asdict(self)


class StepRefused(RuntimeError):
    """A stop option fired: the weights are unchanged and the message says why."""


def _check_batch(name: str, batch: Batch) -> Batch:
    x, y = batch
    if len(x) == 0:
        raise ValueError(f"{name} data is empty: pick at least one sample")
    if len(x) != len(y):
        raise ValueError(f"{name} data has {len(x)} inputs but {len(y)} labels")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} data contains NaN or Inf inputs")
    return x.float(), y.long()


class UnlearningRun:
    """Unlearn ``forget`` from a private copy of ``model`` with ``rule``, keeping ``retain``.

    ``retain_batch_size`` retain samples are drawn per step (seeded by step index); the
    forget batch is the whole forget set unless ``forget_batch_size`` is smaller (the paper
    uses the whole forget set each step). ``undo_depth`` bounds the undo history.
    """

    def __init__(
        self,
        rule: UpdateRule,
        *,
        model: nn.Module,
        retain: Batch,
        forget: Batch,
        seed: int = 0,
        retain_batch_size: int = 256,
        forget_batch_size: int | None = None,
        undo_depth: int = 100,
    ) -> None:
        for name, value in (("retain_batch_size", retain_batch_size), ("undo_depth", undo_depth)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if forget_batch_size is not None and forget_batch_size < 1:
            raise ValueError(f"forget_batch_size must be >= 1 or None, got {forget_batch_size}")
        self.rule = rule
        self.seed = seed
        self.retain_batch_size = retain_batch_size
        self.forget_batch_size = forget_batch_size
        self.retain = _check_batch("retain", retain)
        self.forget = _check_batch("forget", forget)
        if self.retain[0].shape[1:] != self.forget[0].shape[1:]:
            raise ValueError("retain and forget inputs have different shapes")
        self.model_ = copy.deepcopy(model).eval()
        self.original_ = copy.deepcopy(model).eval().requires_grad_(False)
        self._initial = self._snapshot()
        self._undo: deque[list[torch.Tensor]] = deque(maxlen=undo_depth)
        self.history_: list[StepRecord] = []
        self.stop_reason_: str | None = None  # why the last run() ended early, if it did

    # ----- batches -------------------------------------------------------------------
    def _draw(self, data: Batch, size: int | None, step: int, stream: int) -> Batch:
        x, y = data
        if size is None or size >= len(x):
            return x, y
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + step * 2 + stream)
        idx = torch.randperm(len(x), generator=gen)[:size]
        return x[idx], y[idx]

    def batches(self, step: int) -> tuple[Batch, Batch]:
        """The (retain, forget) batches used by the given 1-based step."""
        return (
            self._draw(self.retain, self.retain_batch_size, step, 0),
            self._draw(self.forget, self.forget_batch_size, step, 1),
        )

    # ----- weights ---------------------------------------------------------------------
    def _snapshot(self) -> list[torch.Tensor]:
        return [p.detach().clone() for p in self.model_.parameters()]

    def _restore(self, weights: list[torch.Tensor]) -> None:
        with torch.no_grad():
            for p, w in zip(self.model_.parameters(), weights):
                p.copy_(w)

    # ----- stepping ----------------------------------------------------------------------
    def step(self) -> StepRecord:
        """Take one step; raises StepRefused (weights unchanged) when a stop option fires."""
        start = time.perf_counter()
        index = len(self.history_) + 1
        retain, forget = self.batches(index)
        raw = G.paired_gradients(self.model_, retain, forget)
        grads = G.PairedGradients(
            raw.names, G.clip(raw.retain, self.rule.clip_norm), G.clip(raw.forget, self.rule.clip_norm),
            raw.retain_loss, raw.forget_loss,
        )
        proposal = self.rule.propose(StepInputs(self.model_, self.original_, retain, forget, grads))
        if proposal.refused:
            raise StepRefused(f"step {index} refused ({self.rule.method}): {proposal.refused}")
        G.check_finite(proposal.delta, "update")
        before = self._snapshot()
        _, params = G.trainable_parameters(self.model_)
        with torch.no_grad():
            for p, d in zip(params, proposal.delta):
                p.add_(d)
            retain_after = float(F.cross_entropy(self.model_(retain[0]), retain[1]))
            forget_after = float(F.cross_entropy(self.model_(forget[0]), forget[1]))
        if not (math.isfinite(retain_after) and math.isfinite(forget_after)):
            self._restore(before)
            raise FloatingPointError(f"step {index} made the loss non-finite; it was undone (try a smaller lr)")
        self._undo.append(before)
        record = self._record(index, grads, proposal.info, proposal.delta, retain_after, forget_after, start)
        self.history_.append(record)
        return record

    def _record(self, index, grads, info, delta, retain_after, forget_after, start) -> StepRecord:
        nan = math.nan
        kappa = G.dot(grads.retain, grads.forget)
        retain_norm, forget_norm = G.norm(grads.retain), G.norm(grads.forget)
        per_tensor = dict(zip(grads.names, tensor_cosines(grads.retain, grads.forget)))
        extra = {k: v for k, v in info.items() if k not in StepRecord.__dataclass_fields__}
        return StepRecord(
            step=index,
            method=self.rule.method,
            branch=info.get("branch", ""),
            branch_counts=info.get("branch_counts", {}),
            kappa=kappa,
            kappa2=info.get("kappa2", nan),
            margin=info.get("margin", nan),
            cos_rf=cosine(kappa, retain_norm, forget_norm),
            cos_per_tensor=per_tensor,
            radius=info.get("radius", nan),
            constraint=info.get("constraint", nan),
            feasible=info.get("feasible", True),
            degradation_unavoidable=info.get("degradation_unavoidable", False),
            retain_loss_before=grads.retain_loss,
            retain_loss_after=retain_after,
            forget_loss_before=grads.forget_loss,
            forget_loss_after=forget_after,
            step_norm=G.norm(delta),
            wall_ms=(time.perf_counter() - start) * 1e3,
            retain_grad_norm=retain_norm,
            forget_grad_norm=forget_norm,
            info=extra,
        )

    def run(self, n: int, stop_when: str | Callable[[StepRecord], bool] | None = None) -> list[StepRecord]:
        """Take up to ``n`` steps; stop early after a step meeting ``stop_when``.

        ``stop_when`` is "infeasible", "unavoidable" (degradation became unavoidable) or a
        predicate on the StepRecord. A refused step (rule stop option) ends the run too.
        """
        if stop_when is not None and not callable(stop_when) and stop_when not in STOP_CONDITIONS:
            raise ValueError(f"stop_when must be one of {STOP_CONDITIONS}, a callable or None, got {stop_when!r}")
        predicate = {
            "infeasible": lambda r: not r.feasible,
            "unavoidable": lambda r: r.degradation_unavoidable,
        }.get(stop_when, stop_when) if isinstance(stop_when, str) else stop_when
        records = []
        self.stop_reason_ = None
        for _ in range(n):
            try:
                record = self.step()
            except StepRefused as refusal:
                self.stop_reason_ = str(refusal)
                break
            records.append(record)
            if predicate is not None and predicate(record):
                self.stop_reason_ = f"step {record.step} met the stop condition {stop_when!r}"
                break
        return records

    def undo(self) -> None:
        """Restore the weights before the last step exactly (bounded by ``undo_depth``)."""
        if not self._undo:
            raise IndexError("nothing to undo")
        self._restore(self._undo.pop())
        self.history_.pop()

    def reset(self) -> None:
        """Back to the original weights with an empty history."""
        self._restore(self._initial)
        self._undo.clear()
        self.history_.clear()

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)
