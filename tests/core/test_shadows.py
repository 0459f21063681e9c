"""The shadow bank: balanced reproducible halves, shadows equal to a plain training run on their half,
an interrupted build that resumes by training only what is missing, worker processes that give the
same weights, and the stacked forward pass against a loop over the models.

Tiny synthetic data (120 samples, 3 classes) and a 16-unit MLP keep every bank under a second.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hamu_core.audit.attack_scores import logit_confidence
from hamu_core.audit.shadows import (
    ShadowBank,
    bank_folder,
    build_bank,
    membership_masks,
    shadow_path,
    shadow_train_config,
    stacked_logits,
    train_shadow,
    whole_pool,
)
from hamu_core.data.labelled import LabelledData
from hamu_core.models.architectures import ModelConfig
from hamu_core.models.training import TrainConfig, train_model

MODEL = ModelConfig(hidden=(16,))
RECIPE = TrainConfig(epochs=3, batch_size=32)


def tiny_data(n: int = 120, seed: int = 0) -> LabelledData:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = (rng.normal(0, 1, (n, 6)) + np.eye(3, 6)[y] * 2).astype(np.float32)
    ids = rng.permutation(np.arange(1000, 1000 + 3 * n, 3))  # scattered, unsorted ids: rows are not positions
    return LabelledData("tiny", "tabular", X, y.astype(np.int64), ids.astype(np.int64), rng.random(n) < 0.3,
                        ("a", "b", "c"))


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("HAMU_DATA_DIR", str(tmp_path))
    return tmp_path


def weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [t.detach().clone() for t in model.state_dict().values()]


@pytest.mark.parametrize("k", [4, 6, 8, 16])
def test_masks_are_balanced_halves_reproducible_from_the_seed(k):
    masks = membership_masks(500, k, seed=3)
    assert masks.shape == (k, 500) and masks.dtype == bool
    assert (masks.sum(axis=0) == k // 2).all()  # every sample IN in exactly K/2 shadows
    assert np.array_equal(masks, membership_masks(500, k, seed=3))
    assert not np.array_equal(masks, membership_masks(500, k, seed=4))
    assert (np.abs(masks.sum(axis=1) - 250) < 60).all()  # each shadow gets about half the pool


def test_odd_k_puts_every_sample_in_the_larger_half():
    assert (membership_masks(300, 5, seed=0).sum(axis=0) == 3).all()


def test_bank_draws_from_train_and_test_and_names_unknown_ids(data_dir):
    data = tiny_data()
    bank = build_bank(data, MODEL, RECIPE, k=4, seed=1)
    assert isinstance(bank, ShadowBank) and len(bank.models) == 4 and bank.seed == 1
    assert np.array_equal(bank.pool_ids, np.sort(data.ids))  # test samples too: every sample has IN and OUT shadows
    assert np.array_equal(bank.masks, membership_masks(len(data.ids), 4, seed=1))
    some = data.ids[[5, 0, 17]]
    member = bank.membership(some)
    assert member.shape == (4, 3)
    assert np.array_equal(member, bank.masks[:, np.searchsorted(bank.pool_ids, some)])
    with pytest.raises(KeyError, match="99999"):
        bank.membership([some[0], 99999])
    assert all(not m.training and not any(p.requires_grad for p in m.parameters()) for m in bank.models)


def test_each_shadow_is_a_plain_training_run_on_its_half(data_dir):
    data = tiny_data()
    bank = build_bank(data, MODEL, RECIPE, k=4, seed=2)
    for k in (0, 3):
        ids = bank.pool_ids[bank.masks[k]]
        assert np.isin(ids, data.test_ids).any()  # halves hold test samples, which train_model alone refuses
        expected = train_model(whole_pool(data), ids, MODEL, shadow_train_config(RECIPE, 2, k))
        assert all(torch.equal(a, b) for a, b in zip(weights(bank.models[k]), weights(expected)))
    seeds = {shadow_train_config(RECIPE, 2, k).seed for k in range(4)}
    assert len(seeds) == 4  # each shadow has its own training seed


def test_an_interrupted_build_trains_only_the_missing_shadow(data_dir):
    data = tiny_data()
    first = build_bank(data, MODEL, RECIPE, k=4, seed=0)
    folder = bank_folder(data, MODEL, RECIPE, 4, 0)
    files = sorted(folder.glob("shadow-*.pt"))
    assert len(files) == 4
    stamps = {f.name: f.stat().st_mtime_ns for f in files}
    shadow_path(folder, 2).unlink()
    messages = []
    again = build_bank(data, MODEL, RECIPE, k=4, seed=0, progress=lambda fraction, message: messages.append(message))
    assert messages == ["shadows: 3 of 4 loaded from cache", "shadows: 4 of 4 (shadow 2 trained)"]
    assert {f.name: f.stat().st_mtime_ns for f in folder.glob("shadow-*.pt") if f.name != "shadow-002.pt"} == {
        name: stamp for name, stamp in stamps.items() if name != "shadow-002.pt"}
    for a, b in zip(first.models, again.models):
        assert all(torch.equal(x, y) for x, y in zip(weights(a), weights(b)))


def test_a_corrupt_shadow_file_is_retrained(data_dir):
    data = tiny_data()
    first = build_bank(data, MODEL, RECIPE, k=4, seed=0)
    shadow_path(bank_folder(data, MODEL, RECIPE, 4, 0), 1).write_bytes(b"not a checkpoint")
    again = build_bank(data, MODEL, RECIPE, k=4, seed=0)
    assert all(torch.equal(x, y) for x, y in zip(weights(first.models[1]), weights(again.models[1])))


def test_worker_processes_give_the_same_shadows(data_dir):
    data = tiny_data()
    here = build_bank(data, MODEL, RECIPE, k=4, seed=5)
    for path in bank_folder(data, MODEL, RECIPE, 4, 5).glob("shadow-*.pt"):
        path.unlink()
    spawned = build_bank(data, MODEL, RECIPE, k=4, seed=5, workers=2)
    for a, b in zip(here.models, spawned.models):
        assert all(torch.equal(x, y) for x, y in zip(weights(a), weights(b)))


def test_the_cache_key_separates_recipes_k_and_seed():
    data = tiny_data()
    folders = {bank_folder(data, MODEL, RECIPE, 4, 0), bank_folder(data, MODEL, RECIPE, 6, 0),
               bank_folder(data, MODEL, RECIPE, 4, 1), bank_folder(data, ModelConfig(hidden=(8,)), RECIPE, 4, 0),
               bank_folder(data, MODEL, TrainConfig(epochs=4, batch_size=32), 4, 0),
               bank_folder(tiny_data(seed=1), MODEL, RECIPE, 4, 0)}
    assert len(folders) == 6


def test_stacked_forward_and_cached_confidence_match_a_loop(data_dir):
    data = tiny_data()
    bank = build_bank(data, MODEL, RECIPE, k=4, seed=0)
    x, y = data.tensors(bank.pool_ids)
    with torch.no_grad():
        looped = torch.stack([model(x) for model in bank.models])
    assert torch.allclose(stacked_logits(bank.models, x), looped, atol=1e-6)
    phi = bank.confidence(data)
    assert phi.shape == (4, len(data.ids))
    np.testing.assert_allclose(phi, logit_confidence(looped, y), atol=1e-5)
    assert bank.confidence(data) is phi  # computed once per bank and dataset


def test_bad_settings_are_refused(data_dir):
    with pytest.raises(ValueError, match="k must be at least 4"):
        build_bank(tiny_data(), MODEL, RECIPE, k=2)
    with pytest.raises(ValueError, match="workers"):
        build_bank(tiny_data(), MODEL, RECIPE, k=4, workers=0)


def test_train_shadow_writes_one_loadable_file(data_dir, tmp_path):
    data = tiny_data()
    path = train_shadow(data, data.ids[:40], MODEL, RECIPE, tmp_path / "one.pt")
    assert path.is_file() and not list(tmp_path.glob(".one.pt.*"))  # no temporary file left behind
