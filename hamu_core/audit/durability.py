"""Does the forgetting last? Two attacks that undo shallow unlearning: relearning and quantization.

Forgetting that comes back is not forgetting. An unlearning method can push a model's
forget accuracy to the retrained model's while leaving the knowledge a short walk away in
weight space: a few fine-tuning steps on a handful of the forgotten samples (Lynch et al.
2024, "Eight methods to evaluate robust unlearning in LLMs"; Hu et al. 2024, "Jogging the
memory of unlearned LLMs through targeted relearning attacks") or rounding the weights to
int8 or 4 bits (Zhang et al. 2024, "Catastrophic failure of LLM unlearning via
quantization") brings it back. Neither attack means anything on its own: the retrained
model, which never saw the forget set, also learns a class from a few examples given
enough steps, and also shifts under 4-bit rounding. So every check runs the unlearned, the
original and the retrained model alike and judges the unlearned model against the retrained one:

- *comes back* (relearning): after the attack, the unlearned model's forget accuracy
  exceeds the retrained model's by more than noise, i.e. the 95 % interval of the difference
  lies above 0;
- *reverts* (quantization): the unlearned model's quantized forget accuracy differs, by more
  than noise and toward the original model's, both from its unquantized value and from that
  value moved as much as the retrained model moved under the same quantization.

"More than noise" is one rule throughout: the 95 % interval of a difference of two
proportions on n forget samples each, from their Wilson intervals (``difference_interval``),
excludes 0. It never flags a single sample's flip at class-request sizes, and it treats the
two numbers as independent although they are measured on the same samples, which only
widens it.

The relearning attacker fine-tunes with the optimiser that trained the models (AdamW with the
recipe's weight decay, fresh state) at a quarter of its learning rate. AdamW normalises each
step per parameter, so a model whose gradients are tiny (it fits the data) and one whose
forget loss is huge move by comparable amounts and the curves compare like with like, which
plain SGD at one learning rate would not. The quarter rate is a small budget on purpose:
measured on digits class 3 (5 shots, 30 steps, seeds 0-3), at the recipe's full rate the
retrained model itself learns the class (82 % at step 30), so the attack no longer tells
relearning from learning; at a quarter it stays at 0 % on every seed while the original
keeps 99 %. Batches are a pure function of (seed, step) and the same for every model.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import torch
from torch import nn

from hamu_core.data.labelled import LabelledData
from hamu_core.evaluation.metrics import wilson_interval
from hamu_core.evaluation.privacy import bootstrap_interval, loss_attack_auc
from hamu_core.evaluation.target import MEASURE_LIMIT, measured_splits, per_sample
from hamu_core.models.training import TrainConfig, retain_ids

MODES = ("retain", "retain+forget")  # what the attacker fine-tunes on: retain data alone, or plus the shots
RETAIN_BATCH = 32  # retain samples per relearning step (the shots are added to these)
RECIPE = TrainConfig()  # the Studio's training recipe (AdamW): the attacker's optimiser and weight decay
RELEARN_LR = RECIPE.lr / 4  # 5e-4: the retrained model learns nothing of digits class 3 from 5 shots in 30 steps
FLOAT_BITS = 32  # the ``bits`` of the unquantized rows of ``quantization_table``
REFERENCES = ("original", "retrain")  # model names that are references, not unlearned models


def quantize_tensor(weights: torch.Tensor, bits: int) -> torch.Tensor:
    """Symmetric per-tensor rounding to ``bits``-bit integers and back: clamp(round(w/s), ±L)·s.

    L = 2^(bits−1) − 1 and s = max|w| / L, so the largest weight is kept exactly and every
    weight moves by at most s/2. An all-zero tensor is returned unchanged.
    """
    levels = 2 ** (bits - 1) - 1
    scale = weights.abs().max() / levels
    if scale == 0:
        return weights.clone()
    return torch.clamp(torch.round(weights / scale), -levels, levels) * scale


def quantize(model: nn.Module, bits: int) -> nn.Module:
    """A copy of ``model`` with each weight matrix and kernel rounded by ``quantize_tensor`` (simulated).

    Biases (one-dimensional parameters) stay in floating point, as in int8 inference,
    where they are kept as 32-bit integers at the product of the input and weight scales.
    """
    if not isinstance(bits, int) or not 2 <= bits <= 16:
        raise ValueError(f"bits must be an integer in [2, 16], got {bits!r}")
    quantized = copy.deepcopy(model).eval()
    with torch.no_grad():
        for parameter in quantized.parameters():
            if parameter.dim() >= 2:
                parameter.copy_(quantize_tensor(parameter, bits))
    return quantized


def attack_samples(forget_ids: np.ndarray, shots: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(the shots the attacker holds, the forget ids measured): a seeded draw, and the rest.

    Measuring on the forget samples the attacker did not train on asks whether the
    knowledge comes back, not whether five samples can be memorised. A forget set of one
    sample has no rest: it is both the shot and what is measured. The measured ids are
    cut to a seeded ``MEASURE_LIMIT`` so every step stays cheap.
    """
    if shots < 1:
        raise ValueError(f"shots must be at least 1, got {shots}")
    forget = np.sort(np.asarray(forget_ids, dtype=np.int64))
    if len(forget) == 0:
        raise ValueError("the forget set is empty; the relearning attack needs forget samples")
    rng = np.random.default_rng(seed)
    held = np.sort(rng.choice(forget, min(shots, max(len(forget) - 1, 1)), replace=False))
    rest = np.setdiff1d(forget, held) if len(forget) > 1 else forget
    if len(rest) > MEASURE_LIMIT:
        rest = np.sort(rng.choice(rest, MEASURE_LIMIT, replace=False))
    return held, rest


def relearning_batches(data: LabelledData, retain: np.ndarray, steps: int,
                       seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The ``steps`` retain batches of ``RETAIN_BATCH`` ids, each drawn from a generator seeded by (seed, step)."""
    x, y = data.tensors(retain)
    batches = []
    for step in range(1, steps + 1):
        rows = torch.randperm(len(retain), generator=torch.Generator().manual_seed(seed * 1_000_003 + step))
        batches.append((x[rows[:RETAIN_BATCH]], y[rows[:RETAIN_BATCH]]))
    return batches


def relearn(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]],
            measured: tuple[np.ndarray, torch.Tensor, torch.Tensor]) -> list[tuple[float, float]]:
    """Fine-tune a copy of ``model`` on ``batches`` (AdamW at ``RELEARN_LR``, fresh state); (accuracy, mean
    loss) on ``measured`` before the first step and after each."""
    device = next(model.parameters()).device
    attacked = copy.deepcopy(model).requires_grad_(True).train()
    optimiser = torch.optim.AdamW(attacked.parameters(), lr=RELEARN_LR, weight_decay=RECIPE.weight_decay)
    loss_fn = nn.CrossEntropyLoss()

    def point() -> tuple[float, float]:
        correct, loss = per_sample(attacked, *measured)
        return float(correct.mean()), float(loss.mean())

    curve = [point()]
    for x, y in batches:
        loss = loss_fn(attacked(x.to(device)), y.to(device))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        curve.append(point())
    return curve


def relearning_curves(models: dict[str, nn.Module], data: LabelledData, forget_ids, *, steps: int = 30,
                      shots: int = 5, seed: int = 0) -> pd.DataFrame:
    """Forget accuracy and loss of each model during a relearning attack, in both ``MODES``.

    Columns model, mode, step (0 = before the attack), forget_acc, forget_loss and n_forget
    (the forget samples measured: those not among the shots, see ``attack_samples``). Every
    model sees the same batches; no model passed in is changed.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    shot_ids, rest = attack_samples(forget_ids, shots, seed)
    measured = (rest, *data.tensors(rest))
    retain_batches = relearning_batches(data, retain_ids(data, forget_ids), steps, seed)
    x_shot, y_shot = data.tensors(shot_ids)
    with_shots = [(torch.cat([x, x_shot]), torch.cat([y, y_shot])) for x, y in retain_batches]
    rows = []
    for name, model in models.items():
        for mode, batches in zip(MODES, (retain_batches, with_shots)):
            for step, (acc, loss) in enumerate(relearn(model, batches, measured)):
                rows.append({"model": name, "mode": mode, "step": step, "forget_acc": acc, "forget_loss": loss,
                             "n_forget": len(rest)})
    return pd.DataFrame(rows)


def quantization_table(models: dict[str, nn.Module], data: LabelledData, forget_ids, *, bits=(8, 4),
                       seed: int = 0) -> pd.DataFrame:
    """Each model unquantized (``bits`` = ``FLOAT_BITS``) and quantized to each of ``bits``, measured.

    Columns model, bits, forget_acc, retain_acc, test_acc, forget_loss, mia_auc, mia_low,
    mia_high: accuracy on the whole forget set and on the Studio's seeded retain and test
    probes (``target.measured_splits``), and the loss-attack AUC of forget against test with
    its bootstrap 95 % interval (``privacy``).
    """
    forget = np.sort(np.asarray(forget_ids, dtype=np.int64))
    probe = {**measured_splits(data, forget, seed), "forget": (forget, *data.tensors(forget))}
    rows = []
    for name, model in models.items():
        for b in (FLOAT_BITS, *bits):
            shown = model if b == FLOAT_BITS else quantize(model, b)
            outcome = {split: per_sample(shown, *probe[split]) for split in ("forget", "retain", "test")}
            losses = (outcome["forget"][1], outcome["test"][1])
            low, high = bootstrap_interval(loss_attack_auc, losses, seed=seed)
            rows.append({"model": name, "bits": b, **{f"{s}_acc": float(c.mean()) for s, (c, _) in outcome.items()},
                         "forget_loss": float(losses[0].mean()), "mia_auc": loss_attack_auc(*losses),
                         "mia_low": low, "mia_high": high})
    return pd.DataFrame(rows)


def difference_interval(p1: float, n1: int, p2: float, n2: int) -> tuple[float, float]:
    """95 % interval of p1 − p2, two proportions measured on n1 and n2 samples, from their Wilson intervals.

    Newcombe's hybrid score interval (Newcombe 1998, "Interval estimation for the difference
    between independent proportions", method 10): d − √((p1 − l1)² + (u2 − p2)²) to
    d + √((u1 − p1)² + (p2 − l2)²), with (l, u) each proportion's Wilson interval. Like the
    Wilson interval it stays sensible at 0 % and 100 %, where forget accuracies live.
    """
    (l1, u1), (l2, u2) = wilson_interval(p1, n1), wilson_interval(p2, n2)
    d = p1 - p2
    return d - math.hypot(p1 - l1, u2 - p2), d + math.hypot(u1 - p1, p2 - l2)


def _beyond(value: float, than: float, direction: float, n: int) -> bool:
    """Whether ``value`` lies past ``than`` in ``direction`` (+1 up, −1 down) by more than noise on n samples."""
    if direction > 0:
        return difference_interval(value, n, than, n)[0] > 0
    return difference_interval(than, n, value, n)[0] > 0


def comes_back(unlearned_acc: float, retrain_acc: float, n: int) -> bool:
    """Whether relearned forget accuracy exceeds the retrained model's by more than noise on ``n`` samples."""
    return _beyond(unlearned_acc, retrain_acc, +1, n)


def reverts(before: float, after: float, original: float, retrain_before: float, retrain_after: float,
            n: int) -> bool:
    """Whether quantization moved forget accuracy toward the original's by more than noise, and by more than
    noise past where the retrained model's move would have taken it; False when already at the original's."""
    if before == original:
        return False
    direction = 1.0 if original > before else -1.0
    like_retrain = min(max(before + (retrain_after - retrain_before), 0.0), 1.0)
    return _beyond(after, before, direction, n) and _beyond(after, like_retrain, direction, n)


def _acc(value: float) -> str:
    return f"{100 * value:.1f}%"


def _points(low: float, high: float) -> str:
    return f"[{100 * low:+.1f}, {100 * high:+.1f}] points"


def _relearning_sentence(curves: pd.DataFrame, name: str, mode: str) -> str:
    frame = curves[curves["mode"] == mode]
    last = frame["step"].max()
    by_model = {m: g.set_index("step")["forget_acc"] for m, g in frame.groupby("model")}
    n = int(frame["n_forget"].iloc[0])
    mine, ref = by_model[name], by_model["retrain"]
    gap = difference_interval(mine[last], n, ref[last], n)
    shots = "retain data alone" if mode == "retain" else "retain data plus the handful of forget samples"
    original = f", the original's {_acc(by_model['original'][last])}" if "original" in by_model else ""
    head = (f"Relearning on {shots} for {last} steps: {name}'s forget accuracy on {n} forget samples (the handful "
            f"excluded) went {_acc(mine[0])} → {_acc(mine[last])}, the retrained model's, which never saw them, "
            f"{_acc(ref[0])} → {_acc(ref[last])}{original}; the gap to retraining is "
            f"{100 * (mine[last] - ref[last]):+.1f} points (95 % {_points(*gap)}).")
    if comes_back(mine[last], ref[last], n):
        return f"{head} The forgetting comes back: {name} relearns beyond what retraining would, by more than noise."
    return f"{head} The forgetting holds: {name} relearns no more than the retrained model, within noise."


def _quantization_sentence(table: pd.DataFrame, name: str, bits: int, n: int) -> str:
    rows = table.set_index(["model", "bits"])
    before, after = rows.loc[(name, FLOAT_BITS)], rows.loc[(name, bits)]
    ref_before, ref_after = rows.loc[("retrain", FLOAT_BITS)], rows.loc[("retrain", bits)]
    change = difference_interval(after["forget_acc"], n, before["forget_acc"], n)
    head = (f"Quantized to {bits} bits: {name}'s forget accuracy went {_acc(before['forget_acc'])} → "
            f"{_acc(after['forget_acc'])} on {n} forget samples (95 % {_points(*change)}), the retrained model's "
            f"{_acc(ref_before['forget_acc'])} → {_acc(ref_after['forget_acc'])}")
    if ("original", FLOAT_BITS) in rows.index:
        original = rows.loc[("original", FLOAT_BITS), "forget_acc"]
        head += f", the original's {_acc(original)}"
    else:
        original = math.nan
    head += (f"; loss-attack AUC {after['mia_auc']:.2f} [{after['mia_low']:.2f}, {after['mia_high']:.2f}] against "
             f"the retrained model's {ref_after['mia_auc']:.2f} [{ref_after['mia_low']:.2f}, "
             f"{ref_after['mia_high']:.2f}], retain accuracy {_acc(after['retain_acc'])}.")
    if math.isnan(original):
        return f"{head} Without the original model there is no direction to revert toward."
    if reverts(before["forget_acc"], after["forget_acc"], original, ref_before["forget_acc"],
               ref_after["forget_acc"], n):
        return f"{head} The forgetting reverts: rounding the weights brings {name} back toward the original."
    return f"{head} The forgetting survives: no move toward the original beyond noise and beyond the retrained model's."


def durability_reading(curves: pd.DataFrame, table: pd.DataFrame, forget_size: int) -> list[str]:
    """Plain sentences with their numbers: per unlearned model, each relearning mode and each quantization.

    Unlearned models are every model not named in ``REFERENCES``; both frames must hold the
    "retrain" model. Relearning is read at the last step on the curves' ``n_forget``
    samples, quantization on ``forget_size`` (the whole forget set, as ``quantization_table``
    measures it).
    """
    if forget_size < 1:
        raise ValueError(f"forget_size must be at least 1, got {forget_size}")
    for frame, what in ((curves, "curves"), (table, "table")):
        if "retrain" not in set(frame["model"]):
            raise ValueError(f"the {what} have no 'retrain' model: durability is judged against the retrained model")
    sentences = []
    for name in [m for m in curves["model"].unique() if m not in REFERENCES]:
        sentences += [_relearning_sentence(curves, name, mode) for mode in MODES if mode in set(curves["mode"])]
    for name in [m for m in table["model"].unique() if m not in REFERENCES]:
        sentences += [_quantization_sentence(table, name, int(b), forget_size)
                      for b in sorted(set(table["bits"]) - {FLOAT_BITS}, reverse=True)]
    return sentences
