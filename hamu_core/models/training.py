"""Training the original model and the retrain reference, reproducibly, with progress reports.

The retrain reference (same recipe, retain data only) is the gold standard of exact
unlearning that every metric compares against, so both models must come from the same
code path and differ only in their data. One seed fixes everything: it initialises the
weights (through ``build_model``) and orders the mini-batches through a private
``torch.Generator``, never the global random state, so the same seed gives bit-identical
weights on the same machine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from hamu_core.data.labelled import LabelledData
from hamu_core.data.selection import validate_forget_set
from hamu_core.models.architectures import ModelConfig, build_model
from hamu_core.models.device import resolve_device

Progress = Callable[[float, str], None]  # (fraction done in [0, 1], message)


@dataclass(frozen=True)
class TrainConfig:
    """AdamW recipe; the defaults reach about 97% test accuracy on digits in a few seconds."""

    epochs: int = 20  # digits: 240 steps; Fashion-MNIST: 9,380 steps (times in bench/bench_data.py)
    lr: float = 2e-3  # AdamW learning rate, high enough for 20 epochs of digits to converge
    batch_size: int = 128  # samples per step: larger batches amortise per-step overhead on CPU
    weight_decay: float = 1e-4  # AdamW decoupled weight decay
    seed: int = 0  # fixes initial weights and batch order

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be non-negative, got {self.weight_decay}")


def _training_ids(data: LabelledData, train_ids) -> np.ndarray:
    ids = np.unique(np.asarray(train_ids, dtype=np.int64))
    if len(ids) == 0:
        raise ValueError(f"{data.name}: train_ids is empty; nothing to train on")
    known = np.isin(ids, data.ids)
    if not known.all():
        raise ValueError(f"{data.name}: unknown sample ids {ids[~known][:10].tolist()}")
    in_test = np.isin(ids, data.test_ids)
    if in_test.any():
        raise ValueError(f"{data.name}: ids {ids[in_test][:10].tolist()} are test samples and cannot be trained on")
    return ids


def train_model(
    data: LabelledData,
    train_ids,
    model_config: ModelConfig,
    train_config: TrainConfig,
    progress: Progress | None = None,
    *,
    device: str | torch.device = "cpu",
) -> nn.Module:
    """A model trained on ``train_ids`` (order and duplicates ignored), returned in eval mode on ``device``.

    Weights are initialised on the CPU and then moved, so a seed gives the same starting
    point on every device; the trained weights then agree within float tolerance.
    """
    ids = _training_ids(data, train_ids)
    where = resolve_device(device)
    X, y = (t.to(where) for t in data.tensors(ids))
    model = build_model(model_config, data.input_shape, data.n_classes, seed=train_config.seed).to(where)
    optimiser = torch.optim.AdamW(model.parameters(), lr=train_config.lr, weight_decay=train_config.weight_decay)
    shuffle = torch.Generator().manual_seed(train_config.seed)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for epoch in range(train_config.epochs):
        order = torch.randperm(len(ids), generator=shuffle)
        total = 0.0
        for start in range(0, len(ids), train_config.batch_size):
            batch = order[start:start + train_config.batch_size]
            loss = loss_fn(model(X[batch]), y[batch])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += loss.item() * len(batch)
        if progress is not None:
            progress((epoch + 1) / train_config.epochs,
                     f"epoch {epoch + 1}/{train_config.epochs}: mean loss {total / len(ids):.4f}")
    return model.eval()


def retain_ids(data: LabelledData, forget_ids) -> np.ndarray:
    """Training ids minus the (validated) forget set: what the retrain reference learns from."""
    return np.setdiff1d(data.train_ids, validate_forget_set(data, forget_ids))
