"""Training on real digits: accurate, bit-for-bit reproducible, and refusing bad id sets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_info

from hamu_core.data.builtin import load_digits_data
from hamu_core.data.selection import select_class
from hamu_core.models.architectures import ModelConfig
from hamu_core.models.training import TrainConfig, retain_ids, train_model

DATA = load_digits_data()
QUICK = TrainConfig(epochs=2)  # enough to test plumbing and determinism, not accuracy


def accuracy(model, ids) -> float:
    X, y = DATA.tensors(ids)
    with torch.no_grad():
        return (model(X).argmax(1) == y).float().mean().item()


def test_default_recipe_learns_digits():
    progress = []
    model = train_model(DATA, DATA.train_ids, ModelConfig(), TrainConfig(), lambda f, m: progress.append((f, m)))
    assert accuracy(model, DATA.test_ids) >= 0.90
    assert not model.training
    assert [f for f, _ in progress] == pytest.approx([(i + 1) / 20 for i in range(20)])
    assert progress[-1][1].startswith("epoch 20/20: mean loss")


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_same_seed_gives_identical_weights(arch):
    config = ModelConfig(arch=arch)
    torch.manual_seed(123)  # the global RNG must not matter
    a = train_model(DATA, DATA.train_ids, config, QUICK)
    torch.manual_seed(456)
    b = train_model(DATA, DATA.train_ids[::-1], config, QUICK)  # id order must not matter either
    c = train_model(DATA, DATA.train_ids, config, TrainConfig(epochs=2, seed=1))
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert not all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), c.state_dict().values()))


def test_the_retrain_reference_differs_from_the_original_only_in_data():
    forget = select_class(DATA, 3)
    progress = []
    original = train_model(DATA, DATA.train_ids, ModelConfig(), QUICK, lambda f, m: progress.append((f, m)))
    assert progress[0][1].startswith("epoch 1/2") and progress[-1][0] == 1.0
    retrained = train_model(DATA, retain_ids(DATA, forget), ModelConfig(), QUICK)
    again = train_model(DATA, np.random.default_rng(0).permutation(retain_ids(DATA, forget)), ModelConfig(), QUICK)
    assert all(torch.equal(p, q) for p, q in zip(retrained.parameters(), again.parameters()))  # order ignored
    assert accuracy(original, forget) > accuracy(retrained, forget)  # the retrain never saw a 3


def test_retain_ids_are_train_minus_forget():
    forget = DATA.train_ids[:10]
    retain = retain_ids(DATA, forget)
    assert len(retain) == len(DATA.train_ids) - 10 and not np.isin(forget, retain).any()


@pytest.mark.parametrize(
    ("forget", "message"),
    [([], "forget set is empty"), (DATA.train_ids, "whole training set"), ([10**6], r"unknown sample ids \[1000000\]")],
)
def test_bad_forget_sets(forget, message):
    with pytest.raises(ValueError, match=message):
        retain_ids(DATA, forget)


@pytest.mark.parametrize(
    ("ids", "message"),
    [([], "train_ids is empty"), ([10**6], "unknown sample ids"), (DATA.test_ids[:2], "are test samples")],
)
def test_bad_train_ids(ids, message):
    with pytest.raises(ValueError, match=message):
        train_model(DATA, ids, ModelConfig(), QUICK)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"epochs": 0}, "epochs"), ({"lr": 0.0}, "lr"), ({"batch_size": 0}, "batch_size"), ({"weight_decay": -1.0}, "weight_decay")],
)
def test_config_validation_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**kwargs)


def test_the_suite_trains_on_one_thread():
    """tests/conftest.py pins torch and the BLAS pools to one thread: two shared CI cores oversubscribed otherwise."""
    assert torch.get_num_threads() == 1
    assert all(pool["num_threads"] == 1 for pool in threadpool_info())
