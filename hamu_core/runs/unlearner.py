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
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from hamu_core.evaluation.hardness import tensor_cosines
from hamu_core.evaluation.target import (
    Measurement,
    Probe,
    ReferenceTarget,
    Standing,
    measure_detail,
    reference_distance,
)
from hamu_core.models.device import model_device
from hamu_core.rules import gradients as G
from hamu_core.rules.rule import StepInputs, UpdateRule
from hamu_core.rules.solver import cosine

if TYPE_CHECKING:
    from hamu_core.runs.distributed import DataParallel

Batch = tuple[torch.Tensor, torch.Tensor]
# Rules that end a run after a step: the retrain reference is reached (also checked before the
# first step: "nothing to do"), degradation became unavoidable (κ > κ2), the step was infeasible.
STOP_RULES = ("reached_reference", "unavoidable", "infeasible")
DEFAULT_STOP = ("reached_reference", "unavoidable")  # the Studio's, the CLI's and sweeps' default
CLOSE_POINTS = 3.0  # a distance to the reference (accuracy points) beyond which the words name the cost
# Why a run ended: a stop rule, "nothing_to_do" (the original already matches the reference),
# "refused" (the rule's own stop option), "diverged" (a non-finite loss; that step was undone),
# or "step_limit" (it took every step it was asked for).
STOP_KINDS = (*STOP_RULES, "nothing_to_do", "refused", "diverged", "step_limit")


@dataclass(frozen=True)
class StepRecord:
    """Everything one step did, in plain numbers (JSON-safe through ``to_dict``)."""

    step: int  # 1-based index of this step in the run
    method: str
    branch: str  # HAMU branch taken ("mixed" tensors report the dominant one); "" for baselines
    branch_counts: dict  # per-tensor branch counts (HAMU per-tensor mode)
    kappa: float  # κ = g_r·g_f on this step's (clipped) gradients
    kappa2: float  # stopping threshold κ2 (NaN for baselines and infeasible steps)
    margin: float  # −g_r'·Δ: predicted gain of the protected objective; < 0: degradation unavoidable
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


@dataclass(frozen=True)
class Stop:
    """Why ``UnlearningRun.steps`` ended, after how many steps of the run, in words."""

    kind: str  # one of STOP_KINDS
    step: int  # the run's step count when it ended
    message: str

    def __str__(self) -> str:
        return self.message


def stop_rules(stop_when: str | Iterable[str] | None) -> tuple[str, ...]:
    """``stop_when`` as a tuple of names from STOP_RULES (one name, several, or None for none)."""
    rules = () if stop_when is None else (stop_when,) if isinstance(stop_when, str) else tuple(stop_when)
    unknown = [r for r in rules if r not in STOP_RULES]
    if unknown:
        raise ValueError(f"stop_when must name rules from {STOP_RULES}, got {unknown[0]!r}")
    return rules


def _check_batch(name: str, batch: Batch) -> Batch:
    x, y = batch
    if len(x) == 0:
        raise ValueError(f"{name} data is empty: pick at least one sample")
    if len(x) != len(y):
        raise ValueError(f"{name} data has {len(x)} inputs but {len(y)} labels")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} data contains NaN or Inf inputs")
    return x.float(), y.long()


def reached_words(step: int, standing: Standing) -> str:
    """Why "reached_reference" fired, naming what it checks (the forget set) and what it does not."""
    text = f"the forget set reached the retrain reference at step {step}: {standing.evidence()}"
    if standing.distance > CLOSE_POINTS:
        text += (f"; retain or test accuracy is still {standing.distance:.1f} points from the reference's, so this "
                 "forgetting cost the rest of the model")
    return text


class UnlearningRun:
    """Unlearn ``forget`` from a private copy of ``model`` with ``rule``, keeping ``retain``.

    ``retain_batch_size`` retain samples are drawn per step (seeded by step index); the
    forget batch is the whole forget set unless ``forget_batch_size`` is smaller (the paper
    uses the whole forget set each step). ``undo_depth`` bounds the undo history.

    With a ``target`` (the retrain reference, see ``hamu_core.evaluation.target``) or just a ``probe``,
    the model is measured on the probe before the first step and after every step
    (``points_``); the target adds the stop rule "reached_reference", "nothing to do" and
    the closest step.

    With ``data_parallel`` (``hamu_core.runs.distributed``) this process computes only its
    shard of each step's batches and the paired gradients and losses are summed across the
    process group; every rank then clips, solves and applies the same step.
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
        target: ReferenceTarget | None = None,
        probe: Probe | None = None,
        data_parallel: DataParallel | None = None,
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
        device = model_device(model)  # the batches live where the model does, whatever device that is
        self.retain = tuple(t.to(device) for t in _check_batch("retain", retain))
        self.forget = tuple(t.to(device) for t in _check_batch("forget", forget))
        if self.retain[0].shape[1:] != self.forget[0].shape[1:]:
            raise ValueError("retain and forget inputs have different shapes")
        self.model_ = copy.deepcopy(model).eval()
        self.original_ = copy.deepcopy(model).eval().requires_grad_(False)
        self._initial = self._snapshot()
        self._undo: deque[list[torch.Tensor]] = deque(maxlen=undo_depth)
        self.history_: list[StepRecord] = []
        self.target = target
        self.probe = target.probe if probe is None and target is not None else probe
        self._measured: Measurement | None = None  # the current weights' measurement on the probe
        self.points_: list[dict[str, float]] = []  # measurement after each step, [0] before any
        if self.probe is not None:
            self.remeasure()
        self.stop_: Stop | None = None  # why the last ``steps`` loop ended
        self.data_parallel = data_parallel

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
        raw = (G.paired_gradients(self.model_, retain, forget) if self.data_parallel is None
               else self.data_parallel.paired_gradients(self.model_, retain, forget))
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
            retain_after, forget_after = self._mean_loss(retain), self._mean_loss(forget)
        if not (math.isfinite(retain_after) and math.isfinite(forget_after)):
            self._restore(before)
            raise FloatingPointError(f"step {index} made the loss non-finite; it was undone (try a smaller lr)")
        self._undo.append(before)
        record = self._record(index, grads, proposal.info, proposal.delta, retain_after, forget_after, start)
        self.history_.append(record)
        if self.probe is not None:
            self.remeasure()
        return record

    def _mean_loss(self, batch: Batch) -> float:
        """Mean cross-entropy of the current weights on ``batch``, shard by shard when data-parallel."""
        if self.data_parallel is not None:
            return self.data_parallel.mean_loss(self.model_, batch)
        return float(F.cross_entropy(self.model_(batch[0]), batch[1]))

    def remeasure(self) -> None:
        """Measure the current weights on the probe as point ``len(history_)`` (later points are dropped).

        With a target the point also says whether the forget set is at the reference
        (``at_reference``: 1 when forget accuracy and loss are both within its noise, else 0),
        which is what the closest step is chosen among.
        """
        self._measured = measure_detail(self.model_, self.probe)
        point = dict(self._measured.point)
        if self.target is not None:
            point["at_reference"] = float(self.target.standing(self._measured).matches)
        del self.points_[len(self.history_):]
        self.points_.append(point)

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

    def steps(self, n: int, stop_when: str | Iterable[str] | None = DEFAULT_STOP) -> Iterator[StepRecord]:
        """The one step loop: take up to ``n`` steps, yielding each record, until a stop rule ends it.

        ``stop_when`` names rules from STOP_RULES (checked after every step, in that order);
        "reached_reference" needs a target and is also checked before the first step of a
        fresh run, where it ends the loop at once with "nothing_to_do" when the original model
        already matches the reference. A refused step (the rule's own stop option) or a step
        that made the loss non-finite (undone by ``step``) ends the loop too. Afterwards
        ``stop_`` says why, in words: every caller (app, CLI, comparison, sweep) is a plain
        loop over this generator and reads the same reasons.
        """
        rules = stop_rules(stop_when)
        if "reached_reference" in rules and self.target is None:
            raise ValueError("the stop rule 'reached_reference' needs the run's target (the retrain reference)")
        self.stop_ = None
        if "reached_reference" in rules:
            self.stop_ = self._already_there()
            if self.stop_ is not None:
                return
        for _ in range(n):
            try:
                record = self.step()
            except StepRefused as refusal:
                self.stop_ = Stop("refused", len(self.history_), str(refusal))
                return
            except FloatingPointError as err:
                self.stop_ = Stop("diverged", len(self.history_), str(err))
                return
            yield record
            self.stop_ = self._rule_fired(record, rules)
            if self.stop_ is not None:
                return
        self.stop_ = Stop("step_limit", len(self.history_), f"took the {n} steps asked for")

    def _already_there(self) -> Stop | None:
        """Before a step: the original already matches the reference ("nothing to do"), or a run that
        reached it earlier is still there, so a further step could only cost accuracy elsewhere."""
        if not self.history_:
            settled = self.target.nothing_to_do()
            if settled is None:
                return None
            return Stop("nothing_to_do", 0, "nothing to do: on the forget set the original model already behaves "
                        f"like the retrained one within noise at this size, {settled.evidence()}")
        standing = self.standing()
        if not standing.reached:
            return None
        done = len(self.history_)
        return Stop("reached_reference", done, f"already at the retrain reference after step {done} "
                    f"({standing.evidence()}); untick the stop rule to take further steps")

    def _rule_fired(self, record: StepRecord, rules: tuple[str, ...]) -> Stop | None:
        """The first of ``rules`` that the step just taken meets, as a Stop, or None."""
        for rule in rules:
            if rule == "reached_reference":
                standing = self.standing()
                if standing.reached:
                    return Stop(rule, record.step, reached_words(record.step, standing))
            elif rule == "unavoidable" and record.degradation_unavoidable:
                return Stop(rule, record.step, f"degradation became unavoidable at step {record.step}: no step "
                            "inside the radius could meet the guarantee without worsening the protected loss")
            elif rule == "infeasible" and not record.feasible:
                return Stop(rule, record.step, f"step {record.step} was infeasible: no step inside the radius "
                            "could meet the constraint B")
        return None

    def run(self, n: int, stop_when: str | Iterable[str] | None = None) -> list[StepRecord]:
        """``list(self.steps(n, stop_when))``: up to ``n`` steps, no stop rule unless asked."""
        return list(self.steps(n, stop_when))

    def standing(self) -> Standing | None:
        """How the current weights compare with the retrain reference (None without a target)."""
        return None if self.target is None else self.target.standing(self._measured)

    @property
    def closest_step_(self) -> int | None:
        """The step nearest the reference: among the steps whose forget set is at the reference
        (accuracy and loss within its noise) when there are any, else among all, the smallest
        ``reference_distance``; ties go to the earlier step, which changed the model less.

        Accuracy alone would prefer a step whose forget accuracy already matches while its
        forget loss is still far from the retrained model's (half way there, say). None without
        a target.
        """
        if self.target is None or not self.points_:
            return None
        steps = [k for k, point in enumerate(self.points_) if point.get("at_reference") == 1.0]
        return min(steps or range(len(self.points_)), key=lambda k: (self.distance_at(k), k))

    def distance_at(self, step: int) -> float:
        """Distance to the reference, in accuracy points, of the model after ``step`` steps."""
        return reference_distance(self.points_[step], self.target.point)

    def weights_at(self, step: int) -> list[torch.Tensor]:
        """The parameters after ``step`` steps: from the undo history, or replayed from the start.

        Batches are a pure function of (seed, step), so replaying the first ``step`` steps on
        a scratch copy gives the same weights bit for bit.
        """
        done = len(self.history_)
        if not 0 <= step <= done:
            raise ValueError(f"step must lie in [0, {done}], got {step}")
        if step == done:
            return self._snapshot()
        if step == 0:
            return [w.clone() for w in self._initial]
        if done - step <= len(self._undo):
            return [w.clone() for w in self._undo[-(done - step)]]
        scratch = UnlearningRun(self.rule, model=self.model_, retain=self.retain, forget=self.forget,
                                seed=self.seed, retain_batch_size=self.retain_batch_size,
                                forget_batch_size=self.forget_batch_size, undo_depth=1)
        scratch._restore(self._initial)
        scratch.original_ = self.original_  # KL and SCRUB read the original: the true one, not today's weights
        for _ in range(step):
            scratch.step()
        return scratch._snapshot()

    def model_at(self, step: int) -> nn.Module:
        """A copy of the model as it was after ``step`` steps (the run itself is unchanged)."""
        model, weights = copy.deepcopy(self.model_), self.weights_at(step)
        with torch.no_grad():
            for p, w in zip(model.parameters(), weights):
                p.copy_(w)
        return model

    def rollback(self, step: int) -> None:
        """Go back to the weights after ``step`` steps, dropping the later steps (like repeated undo)."""
        weights = self.weights_at(step)
        for _ in range(len(self.history_) - step):
            if self._undo:
                self._undo.pop()
            self.history_.pop()
        self._went_back(weights)

    def undo(self) -> None:
        """Restore the weights before the last step exactly (bounded by ``undo_depth``)."""
        if not self._undo:
            raise IndexError("nothing to undo")
        weights = self._undo.pop()
        self.history_.pop()
        self._went_back(weights)

    def reset(self) -> None:
        """Back to the original weights with an empty history."""
        self._undo.clear()
        self.history_.clear()
        self._went_back(self._initial)

    def _went_back(self, weights: list[torch.Tensor]) -> None:
        """Load earlier weights: measure them again, and forget why the last loop ended (it no longer
        describes the run)."""
        self._restore(weights)
        self.stop_ = None
        if self.probe is not None:
            self.remeasure()

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)
