"""Paired retain/forget gradients and the small vector algebra on lists of tensors.

Every update rule acts on the same pair (g_r, g_f) computed on the same paired batches, so
the pair is computed once per step by the run, not by each rule. Gradients are kept as a
list with one tensor per trainable parameter: per-tensor HAMU works block by block and
full-gradient HAMU only needs global dot products and norms, so the parameters are never
concatenated into one vector (that would copy the whole model twice per step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

Grads = list[torch.Tensor]


@dataclass(frozen=True)
class PairedGradients:
    """g_r and g_f, one tensor per trainable parameter, with the losses they came from."""

    names: tuple[str, ...]  # parameter names, same order as the tensors
    retain: Grads  # ∇ mean retain loss
    forget: Grads  # ∇ mean forget loss
    retain_loss: float
    forget_loss: float


def trainable_parameters(model: nn.Module) -> tuple[tuple[str, ...], list[nn.Parameter]]:
    """Names and parameters that unlearning updates (those with requires_grad)."""
    pairs = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return tuple(n for n, _ in pairs), [p for _, p in pairs]


def loss_and_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, Grads]:
    """Mean cross-entropy on (x, y) and its gradient; refuses a non-finite loss."""
    _, params = trainable_parameters(model)
    loss = F.cross_entropy(model(x), y)
    if not torch.isfinite(loss):
        raise FloatingPointError(f"the loss is {float(loss.detach())}; the step is refused and the weights are unchanged")
    grads = torch.autograd.grad(loss, params)
    return float(loss.detach()), [g.detach() for g in grads]


def paired_gradients(
    model: nn.Module, retain: tuple[torch.Tensor, torch.Tensor], forget: tuple[torch.Tensor, torch.Tensor]
) -> PairedGradients:
    """g_r and g_f on the given retain and forget batches (two backward passes)."""
    names, _ = trainable_parameters(model)
    retain_loss, g_r = loss_and_gradients(model, *retain)
    forget_loss, g_f = loss_and_gradients(model, *forget)
    check_finite(g_r, "retain gradient")
    check_finite(g_f, "forget gradient")
    return PairedGradients(names, g_r, g_f, retain_loss, forget_loss)


def kl_gradients(model: nn.Module, original: nn.Module, x: torch.Tensor) -> Grads:
    """∇ KL(original ‖ current) on inputs x: the KL and SCRUB baselines' teacher term."""
    _, params = trainable_parameters(model)
    with torch.no_grad():
        teacher = F.log_softmax(original(x), dim=-1)
    student = F.log_softmax(model(x), dim=-1)
    kl = F.kl_div(student, teacher, reduction="batchmean", log_target=True)
    grads = [g.detach() for g in torch.autograd.grad(kl, params)]
    check_finite(grads, "KL gradient")
    return grads


def check_finite(grads: Grads, what: str) -> None:
    """Raise FloatingPointError naming ``what`` if any entry is NaN or Inf."""
    if not all(bool(torch.isfinite(g).all()) for g in grads):
        raise FloatingPointError(f"the {what} contains NaN or Inf; the step is refused and the weights are unchanged")


def dot(a: Grads, b: Grads) -> float:
    """Global dot product Σ_i a_i·b_i, accumulated in float64."""
    return math.fsum(float(torch.dot(x.double().flatten(), y.double().flatten())) for x, y in zip(a, b))


def norm(a: Grads) -> float:
    """Global Euclidean norm over all tensors."""
    return math.sqrt(dot(a, a))


def clip(grads: Grads, max_norm: float | None) -> Grads:
    """Scale the whole list so its global norm is at most ``max_norm`` (None: unchanged).

    g_r and g_f are clipped separately (HAMU_SPEC, gradient clipping), so the caller clips
    each list on its own.
    """
    if max_norm is None:
        return grads
    total = norm(grads)
    if total <= max_norm:
        return grads
    scale = max_norm / total
    return [g * scale for g in grads]


def combine(*terms: tuple[float, Grads]) -> Grads:
    """Σ_k c_k·v_k for (coefficient, gradient list) pairs of equal structure."""
    coeff0, first = terms[0]
    out = [coeff0 * g for g in first]
    for coeff, grads in terms[1:]:
        for acc, g in zip(out, grads):
            acc.add_(g, alpha=coeff)
    return out
