"""Checkpoints: safe loading, clear refusals, atomic writes, and a model cache keyed correctly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hamu_core.data.builtin import load_digits_data
from hamu_core.models.architectures import ModelConfig, build_model, model_fingerprint
from hamu_core.models.checkpoint import (
    CheckpointError,
    cache_key,
    cached_train,
    data_dir,
    load_into,
    load_state_dict,
    save_state_dict,
)
from hamu_core.models.training import TrainConfig

DATA = load_digits_data()
QUICK = TrainConfig(epochs=1)
FORGET = DATA.train_ids[:20]


def test_round_trip_leaves_no_temporary_files(tmp_path):
    model = build_model(ModelConfig(), (1, 8, 8), 10, seed=3)
    path = save_state_dict(model, tmp_path / "sub" / "m.pt")
    assert [p.name for p in path.parent.iterdir()] == ["m.pt"]
    fresh = load_into(build_model(ModelConfig(), (1, 8, 8), 10, seed=4), path)
    assert model_fingerprint(fresh) == model_fingerprint(model)


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match=r"junk\.pt: not a readable PyTorch checkpoint"):
        load_state_dict(tmp_path / "junk.pt")


def test_not_a_state_dict(tmp_path):
    torch.save([torch.zeros(2)], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match=r"list\.pt: not a state dict .* got list"):
        load_state_dict(tmp_path / "list.pt")


def test_code_is_never_unpickled(tmp_path):
    torch.save({"config": ModelConfig()}, tmp_path / "obj.pt")
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        load_state_dict(tmp_path / "obj.pt")


def test_checkpoint_for_another_model(tmp_path):
    save_state_dict(build_model(ModelConfig(hidden=(32, 32)), (1, 8, 8), 10), tmp_path / "small.pt")
    with pytest.raises(CheckpointError, match=r"small\.pt: tensor shapes do not match the model"):
        load_into(build_model(ModelConfig(), (1, 8, 8), 10), tmp_path / "small.pt")
    save_state_dict(build_model(ModelConfig(arch="cnn"), (1, 8, 8), 10), tmp_path / "cnn.pt")
    with pytest.raises(CheckpointError, match=r"cnn\.pt: does not match the model: missing \['body"):
        load_into(build_model(ModelConfig(), (1, 8, 8), 10), tmp_path / "cnn.pt")


def test_missing_file_is_not_hidden(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_state_dict(tmp_path / "absent.pt")


def test_cache_key_covers_what_decides_the_weights():
    key = cache_key(DATA, FORGET, ModelConfig(), QUICK, "retrain")
    assert key == cache_key(DATA, FORGET[::-1], ModelConfig(), QUICK, "retrain")
    assert key != cache_key(DATA, FORGET[:19], ModelConfig(), QUICK, "retrain")
    assert key != cache_key(DATA, FORGET, ModelConfig(arch="cnn"), QUICK, "retrain")
    assert key != cache_key(DATA, FORGET, ModelConfig(), TrainConfig(epochs=1, seed=1), "retrain")
    assert key != cache_key(load_digits_data(seed=1), FORGET, ModelConfig(), QUICK, "retrain")
    original = cache_key(DATA, FORGET, ModelConfig(), QUICK, "original")
    assert original == cache_key(DATA, FORGET[:5], ModelConfig(), QUICK, "original") != key
    with pytest.raises(ValueError, match="role must be one of"):
        cache_key(DATA, FORGET, ModelConfig(), QUICK, "student")


def test_cached_train_trains_once_then_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("HAMU_DATA_DIR", str(tmp_path))
    assert data_dir() == tmp_path
    messages = []
    first = cached_train(DATA, FORGET, ModelConfig(), QUICK, "retrain", lambda f, m: messages.append(m))
    files = list((tmp_path / "models").iterdir())
    assert len(files) == 1 and files[0].name.startswith("retrain-")
    second = cached_train(DATA, FORGET, ModelConfig(), QUICK, "retrain", lambda f, m: messages.append(m))
    assert messages[-1] == "retrain: loaded from cache" and messages[0].startswith("epoch 1/1")
    assert model_fingerprint(first) == model_fingerprint(second)


def test_corrupt_cache_entry_is_retrained(tmp_path):
    model = cached_train(DATA, FORGET, ModelConfig(), QUICK, "original", cache_dir=tmp_path)
    (path,) = tmp_path.iterdir()
    path.write_bytes(b"truncated")
    again = cached_train(DATA, FORGET, ModelConfig(), QUICK, "original", cache_dir=tmp_path)
    assert model_fingerprint(again) == model_fingerprint(model)
    assert load_state_dict(path).keys() == model.state_dict().keys()


def test_cached_train_validates_the_forget_set(tmp_path):
    with pytest.raises(ValueError, match="forget set is empty"):
        cached_train(DATA, np.array([], dtype=np.int64), ModelConfig(), QUICK, "retrain", cache_dir=tmp_path)
    assert not any(tmp_path.iterdir())


def test_the_original_needs_no_forget_set(tmp_path):
    """One original serves every forget set, so it is trained and found again without one."""
    model = cached_train(DATA, None, ModelConfig(), QUICK, "original", cache_dir=tmp_path)
    again = cached_train(DATA, FORGET, ModelConfig(), QUICK, "original", cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 1
    assert model_fingerprint(again) == model_fingerprint(model)
    with pytest.raises(ValueError, match="forget_ids is None"):
        cached_train(DATA, None, ModelConfig(), QUICK, "retrain", cache_dir=tmp_path)
