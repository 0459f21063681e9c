"""How hard forgetting is: cos θ_rf overall, per tensor and per forget sample.

HAMU_SPEC (Notation): κ = g_r·g_f, and because g_f is the mean of the forget samples' own
loss gradients g_i, κ is the mean of κ_i = g_i·g_r. A per-sample κ_i (and its angle form
cos θ_i) says which forget samples "look like" retain data, so the app can colour them in
the embedding plot.

Speed is the point here. A loop over samples costs one forward and one backward pass per
sample. Every κ_i, though, is a directional derivative of that sample's loss along g_r, so
one forward-mode pass (``torch.func.jvp`` of the vector of per-sample losses along the
tangent g_r, in blocks of samples to bound activation memory) yields all of them at once.
The norms ‖g_i‖ need the per-sample gradients themselves; ``vmap(grad)`` computes them in
chunks, and each chunk is reduced to its squared norms at once, so the (n × P) per-sample
gradient matrix never exists in memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, jvp, vmap

from hamu_core.data.labelled import LabelledData
from hamu_core.models.architectures import eval_mode
from hamu_core.models.device import model_device
from hamu_core.models.training import retain_ids
from hamu_core.rules import gradients as G
from hamu_core.rules.solver import EPS, cosine, vanishes

# Reading thresholds on cos θ. Moving a step of length R along a forget direction changes the
# retain loss by R·‖g_r‖·cos θ to first order, while the worst possible step of that length
# costs R·‖g_r‖. Within ±0.1 the retain cost is under a tenth of that worst case: too small
# to call the samples hard or easy.
HARD_COS = 0.1  # above: forgetting these drags the retain loss up
EASY_COS = -0.1  # below: forgetting these also lowers the retain loss


@dataclass(frozen=True)
class SampleHardness:
    """Per-sample hardness of a forget set against one retain gradient g_r."""

    kappa: torch.Tensor  # (n,) κ_i = g_i·g_r, g_i the gradient of sample i's own loss
    aggregate_kappa: float  # mean κ_i, which equals g_f·g_r for the mean forget loss
    grad_norm: torch.Tensor | None = None  # (n,) ‖g_i‖; None when computed without cosines
    cos: torch.Tensor | None = None  # (n,) κ_i/(‖g_i‖‖g_r‖), 0 where a gradient vanishes (``solver.vanishes``)


def per_sample_hardness(
    model: nn.Module,
    x_forget: torch.Tensor,
    y_forget: torch.Tensor,
    g_retain: Sequence[torch.Tensor],
    *,
    with_cos: bool = True,
    chunk_size: int = 64,
    jvp_chunk_size: int = 512,
) -> SampleHardness:
    """κ_i (one forward-mode pass) and, with ``with_cos``, ‖g_i‖ and cos θ_i for every forget sample.

    ``g_retain`` holds one tensor per trainable parameter, in the order of
    ``gradients.trainable_parameters``. The loss is cross-entropy per sample, with the model
    in eval mode (its mode is restored afterwards). ``chunk_size`` bounds how many per-sample
    gradients exist at once when the norms are computed: memory grows with chunk_size × P.
    The default 64 ran at least as fast as 128 or 256 on the digits benchmark
    (bench/bench_hardness.py) with a quarter of the memory of 256; much smaller chunks pay
    vmap's per-call overhead.
    ``jvp_chunk_size`` splits the forward-mode pass into blocks of samples (each sample still
    goes through it once): activations of a whole forget set with their tangents can reach
    gigabytes (a CIFAR class through a ResNet), and blocks of 512 ran about a third faster
    than one 1,797-sample block on the benchmark, which spends its time touching fresh pages.

    In float32, a sample the model fits almost perfectly (loss ≈ 1e-7, ‖g_i‖ ≲ 1e-5) has a
    gradient made of rounding error: its κ_i is ≈ 0 as it should be, but its cos θ_i is noise
    (the loop oracle is no better). Use a float64 model when those cosines matter.
    """
    names, params, (x_forget, y_forget, g_retain) = _checked(
        model, x_forget, y_forget, g_retain, chunk_size=chunk_size, jvp_chunk_size=jvp_chunk_size
    )
    theta = tuple(p.detach() for p in params)
    with eval_mode(model), torch.no_grad():
        kappa = _forward_kappa(model, names, theta, x_forget, y_forget, g_retain, jvp_chunk_size).cpu()
        norms = _chunked_grad_norms(model, names, theta, x_forget, y_forget, chunk_size).cpu() if with_cos else None
    return _result(kappa, norms, g_retain)


def per_sample_hardness_loop(model: nn.Module, x_forget: torch.Tensor, y_forget: torch.Tensor,
                             g_retain: Sequence[torch.Tensor], *, with_cos: bool = True) -> SampleHardness:
    """The plain per-sample loop: one backward pass per forget sample.

    This is the oracle that the tests and ``bench/bench_hardness.py`` check and time
    ``per_sample_hardness`` against; the app never calls it (it is n backward passes).
    """
    _, params, (x_forget, y_forget, g_retain) = _checked(model, x_forget, y_forget, g_retain)
    n = len(x_forget)
    kappa = torch.empty(n, dtype=params[0].dtype)
    squares = torch.empty(n, dtype=params[0].dtype)
    with eval_mode(model):
        for i in range(n):
            _, g_i = G.loss_and_gradients(model, x_forget[i : i + 1], y_forget[i : i + 1])
            kappa[i] = sum((g * r).sum() for g, r in zip(g_i, g_retain)).cpu()
            if with_cos:
                squares[i] = sum(g.pow(2).sum() for g in g_i).cpu()
    return _result(kappa, squares.sqrt() if with_cos else None, g_retain)


def tensor_cosines(g_retain: Sequence[torch.Tensor], g_forget: Sequence[torch.Tensor]) -> list[float]:
    """cos θ_rf of every parameter tensor (0 where either block vanishes)."""
    _check_pair(g_retain, g_forget)
    return [_cosine([r], [f]) for r, f in zip(g_retain, g_forget)]


def overall_cosine(g_retain: Sequence[torch.Tensor], g_forget: Sequence[torch.Tensor]) -> float:
    """Global cos θ_rf = κ/(‖g_r‖‖g_f‖) over all parameters (0 where a gradient vanishes)."""
    _check_pair(g_retain, g_forget)
    return _cosine(list(g_retain), list(g_forget))


def hardness_reading(cos: float) -> str:
    """One plain-language sentence for a cosine between forget and retain gradients.

    Only the cosine gets a reading: κ itself scales with the gradient norms, so a fixed
    threshold on it would mean different things for different models and losses.
    """
    cos = float(cos)
    if not -1.0 - 1e-6 <= cos <= 1.0 + 1e-6:
        raise ValueError(f"cos must be a cosine in [-1, 1], got {cos}")
    if cos > HARD_COS:
        return "Hard: these samples look like data you keep — forgetting them will cost retain accuracy."
    if cos < EASY_COS:
        return "Easy: forgetting them pulls the same way as keeping the rest."
    return "Neutral: these samples barely interact with the data you keep — forgetting them should cost little."


def _cosine(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return cosine(G.dot(a, b), G.norm(a), G.norm(b))


def _forward_kappa(model: nn.Module, names: tuple[str, ...], theta: tuple[torch.Tensor, ...], x: torch.Tensor,
                   y: torch.Tensor, g_retain: tuple[torch.Tensor, ...], jvp_chunk_size: int) -> torch.Tensor:
    """κ_i = d/dε L_i(θ + ε·g_r) at ε = 0 for every sample: the jvp of the per-sample losses along g_r."""
    kappas = []
    for xc, yc in zip(x.split(jvp_chunk_size), y.split(jvp_chunk_size)):

        def losses(*weights: torch.Tensor, xc=xc, yc=yc) -> torch.Tensor:
            logits = functional_call(model, dict(zip(names, weights)), (xc,))
            return F.cross_entropy(logits, yc, reduction="none")  # (c,)

        values, kappa = jvp(losses, theta, g_retain)  # both (c,)
        _check_losses(values)
        kappas.append(kappa)
    return torch.cat(kappas)  # (n,)


def _chunked_grad_norms(model: nn.Module, names: tuple[str, ...], theta: tuple[torch.Tensor, ...], x: torch.Tensor,
                        y: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """‖g_i‖ for every sample, chunk_size per-sample gradients at a time."""

    def sample_loss(weights: tuple[torch.Tensor, ...], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        logits = functional_call(model, dict(zip(names, weights)), (xi.unsqueeze(0),))
        return F.cross_entropy(logits, yi.unsqueeze(0))

    per_sample_grads = vmap(grad(sample_loss), in_dims=(None, 0, 0))
    squares = []
    for xc, yc in zip(x.split(chunk_size), y.split(chunk_size)):
        chunk = per_sample_grads(theta, xc, yc)  # one (c, *shape) tensor per parameter
        squares.append(sum(torch.linalg.vector_norm(g.flatten(1), dim=1).square() for g in chunk))  # (c,)
        del chunk  # free it before the next chunk is built: at most one chunk is alive
    return torch.cat(squares).sqrt()  # (n,)


def _result(kappa: torch.Tensor, norms: torch.Tensor | None, g_retain: Sequence[torch.Tensor]) -> SampleHardness:
    """κ_i and their mean; with the per-sample ``norms``, their cosines to g_r as well."""
    if norms is None:
        return SampleHardness(kappa, float(kappa.double().mean()))
    retain_norm = G.norm(list(g_retain))
    denom = norms * retain_norm
    tiny = vanishes(norms) | vanishes(retain_norm)
    cos = torch.where(tiny, torch.zeros_like(kappa), kappa / denom.clamp_min(EPS))
    return SampleHardness(kappa, float(kappa.double().mean()), norms, cos)


def _check_losses(values: torch.Tensor) -> None:
    if not bool(torch.isfinite(values).all()):
        raise ValueError("x_forget gives NaN or Inf per-sample losses (check x_forget and the model weights)")


def _check_pair(g_retain: Sequence[torch.Tensor], g_forget: Sequence[torch.Tensor]) -> None:
    if len(g_retain) != len(g_forget):
        raise ValueError(f"g_forget has {len(g_forget)} tensors but g_retain has {len(g_retain)}")
    for i, (r, f) in enumerate(zip(g_retain, g_forget)):
        if r.shape != f.shape:
            raise ValueError(f"g_forget[{i}] has shape {tuple(f.shape)} but g_retain[{i}] has {tuple(r.shape)}")


def _checked(
    model: nn.Module,
    x_forget: torch.Tensor,
    y_forget: torch.Tensor,
    g_retain: Sequence[torch.Tensor],
    **chunk_sizes: int,
) -> tuple[tuple[str, ...], list[nn.Parameter], tuple]:
    """Validate the inputs once; return the trainable parameters' names and tensors, and the inputs
    (x_forget, y_forget, g_retain) on the model's device: the work runs where the model lives and
    the per-sample results come back on the CPU."""
    for field, size in chunk_sizes.items():
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"{field} must be an integer ≥ 1, got {size!r}")
    if x_forget.ndim == 0 or len(x_forget) == 0:
        raise ValueError("x_forget is empty: per-sample hardness needs at least one forget sample")
    if y_forget.ndim != 1 or len(y_forget) != len(x_forget):
        raise ValueError(f"y_forget must be 1-D with one label per row of x_forget ({len(x_forget)}), "
                         f"got shape {tuple(y_forget.shape)}")
    if y_forget.dtype != torch.long:
        raise ValueError(f"y_forget must hold int64 class labels, got {y_forget.dtype}")
    names, params = G.trainable_parameters(model)
    if not params:
        raise ValueError("model has no trainable parameters")
    if len(g_retain) != len(params):
        raise ValueError(f"g_retain has {len(g_retain)} tensors but the model has {len(params)} trainable parameters")
    for name, p, g in zip(names, params, g_retain):
        if g.shape != p.shape or g.dtype != p.dtype:
            raise ValueError(f"g_retain for {name} has shape {tuple(g.shape)} and dtype {g.dtype}; "
                             f"the parameter has {tuple(p.shape)} and {p.dtype}")
        if not bool(torch.isfinite(g).all()):
            raise ValueError(f"g_retain for {name} contains NaN or Inf")
    device = model_device(model)
    return names, params, (x_forget.to(device), y_forget.to(device), tuple(g.to(device) for g in g_retain))


@dataclass(frozen=True)
class Hardness:
    """Hardness of training samples against the current retain gradient g_r (HAMU_SPEC, Notation)."""

    samples: pd.DataFrame  # columns id, kappa, cos: every scored training sample
    kappa: float  # aggregate κ = g_r·g_f of the forget set (NaN without one)
    cos: float  # its angle form cos θ_rf (NaN without a forget set)


def training_set_hardness(model: nn.Module, data: LabelledData, forget_ids, *, seed: int,
                          max_points: int) -> Hardness:
    """κ_i and cos θ_i of training samples against g_r of the retain set, and the forget set's aggregate.

    Scoring every training sample, not only the forget set, lets the embedding show which
    samples would be hard to forget and lets "hardest k" choose among them. Beyond
    ``max_points`` a seeded subset is scored, and a seeded subset of the retain set gives g_r.
    """
    rng = np.random.default_rng(seed)
    forget_ids = np.asarray(forget_ids, dtype=np.int64)
    retain = retain_ids(data, forget_ids) if len(forget_ids) else data.train_ids  # no forget set: all retained
    scored = data.train_ids
    if len(retain) > max_points:
        retain = np.sort(rng.choice(retain, max_points, replace=False))
    if len(scored) > max_points:
        scored = np.sort(rng.choice(scored, max_points, replace=False))
    device = model_device(model)
    _, g_retain = G.loss_and_gradients(model, *(t.to(device) for t in data.tensors(retain)))
    result = per_sample_hardness(model, *data.tensors(scored), g_retain)
    samples = pd.DataFrame({"id": scored, "kappa": result.kappa.cpu().numpy(), "cos": result.cos.cpu().numpy()})
    if len(forget_ids) == 0:
        return Hardness(samples, float("nan"), float("nan"))
    x_forget, y_forget = (t.to(device) for t in data.tensors(forget_ids))
    aggregate = per_sample_hardness(model, x_forget, y_forget, g_retain, with_cos=False).aggregate_kappa
    _, g_forget = G.loss_and_gradients(model, x_forget, y_forget)
    return Hardness(samples, aggregate, overall_cosine(g_retain, g_forget))
