"""Choosing the device, and CPU/GPU agreement of every core path (skipped only where no GPU exists).

The agreement test trains, steps, measures hardness and evaluates the same seeded setup on
the CPU and on CUDA and compares the numbers; bench/bench_device.py runs the same
comparison on a CIFAR-sized ResNet and times it.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from hamu_core.audit.shadows import build_bank
from hamu_core.data.labelled import LabelledData, stratified_test_mask
from hamu_core.evaluation.hardness import per_sample_hardness
from hamu_core.evaluation.metrics import sample_outputs
from hamu_core.models.architectures import ModelConfig
from hamu_core.models.checkpoint import cached_train
from hamu_core.models.device import DEVICE_CHOICES, device_label, model_device, resolve_device
from hamu_core.models.training import TrainConfig, train_model
from hamu_core.rules import gradients as G
from hamu_core.rules.registry import make_rule
from hamu_core.runs.unlearner import UnlearningRun

HAS_GPU = torch.cuda.is_available()


def test_auto_picks_cuda_exactly_when_pytorch_sees_a_gpu():
    assert resolve_device("auto").type == ("cuda" if HAS_GPU else "cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("name", ["tpu", "gpu", "", "cuda:x", "meta"])
def test_unknown_devices_are_refused_naming_the_choices(name):
    with pytest.raises(ValueError, match="device must be one of"):
        resolve_device(name)
    assert DEVICE_CHOICES == ("auto", "cpu", "cuda")


@pytest.mark.skipif(HAS_GPU, reason="checks the message given where no GPU exists")
def test_asking_for_cuda_without_a_gpu_says_so():
    with pytest.raises(ValueError, match="sees no CUDA GPU"):
        resolve_device("cuda")
    assert device_label("auto") == "auto → cpu (no CUDA GPU)"


def test_model_device_follows_the_weights():
    assert model_device(nn.Linear(2, 2)) == torch.device("cpu")
    assert model_device(nn.ReLU()) == torch.device("cpu")  # no parameters or buffers: the CPU
    assert model_device(nn.Linear(2, 2, device="meta")) == torch.device("meta")


def blobs(seed: int = 0) -> LabelledData:
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), 20)
    X = (rng.normal(size=(60, 3, 8, 8)) + y[:, None, None, None]).astype(np.float32)
    return LabelledData(name="blobs", kind="image", X=X, y=y.astype(np.int64), ids=np.arange(60, dtype=np.int64),
                        is_test=stratified_test_mask(y, seed=seed), classes=("a", "b", "c"))


def test_an_explicit_cpu_device_trains_and_caches_on_the_cpu(tmp_path):
    data = blobs()
    config, recipe = ModelConfig(arch="cnn"), TrainConfig(epochs=2)
    trained = cached_train(data, None, config, recipe, "original", cache_dir=tmp_path, device="cpu")
    cached = cached_train(data, None, config, recipe, "original", cache_dir=tmp_path, device="cpu")
    assert model_device(trained) == model_device(cached) == torch.device("cpu")
    assert all(torch.equal(p, q) for p, q in zip(trained.parameters(), cached.parameters()))
    with pytest.raises(ValueError, match="device must be one of"):
        train_model(data, data.train_ids, config, recipe, device="tpu")


def everything_on(device: str, model: nn.Module, data: LabelledData) -> dict[str, np.ndarray]:
    """Three HAMU steps, per-sample hardness and per-sample outputs of a copy of ``model`` on ``device``."""
    forget = data.train_ids[:6]
    retain = np.setdiff1d(data.train_ids, forget)
    run = UnlearningRun(make_rule("hamu-q", mode="full", radius=0.1, constraint=0.01, clip_norm=None),
                        model=copy.deepcopy(model).to(device), retain=data.tensors(retain),
                        forget=data.tensors(forget), seed=0)
    records = run.run(3)
    _, g_r = G.loss_and_gradients(run.model_, *(t.to(device) for t in data.tensors(retain)))
    hard = per_sample_hardness(run.model_, *data.tensors(forget), g_r)
    out = sample_outputs(run.model_, data, data.ids)
    return {"weights": torch.cat([p.detach().cpu().flatten() for p in run.model_.parameters()]).numpy(),
            "forget_loss": np.array([r.forget_loss_after for r in records]),
            "kappa": hard.kappa.numpy(), "cos": hard.cos.numpy(), "loss": out.loss}


@pytest.mark.skipif(not HAS_GPU, reason="no CUDA GPU here; bench/bench_device.py runs this comparison where one exists")
def test_gpu_results_match_the_cpu_within_float_tolerance(monkeypatch):
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)  # compare float32 with float32
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    data, config, recipe = blobs(), ModelConfig(arch="resnet20", resnet_width=4), TrainConfig(epochs=3)
    on_cpu = train_model(data, data.train_ids, config, recipe, device="cpu")
    on_gpu = train_model(data, data.train_ids, config, recipe, device="cuda")
    assert model_device(on_gpu).type == "cuda"
    np.testing.assert_allclose(sample_outputs(on_gpu, data, data.ids).loss, sample_outputs(on_cpu, data, data.ids).loss,
                               rtol=2e-2, atol=2e-3)  # nine optimiser steps apart: rounding compounds a little
    cpu, gpu = everything_on("cpu", on_cpu, data), everything_on("cuda", on_cpu, data)  # the same starting weights
    for name in cpu:
        np.testing.assert_allclose(gpu[name], cpu[name], rtol=1e-3, atol=1e-5, err_msg=name)


def test_shadows_train_on_the_bank_device_and_a_bad_device_trains_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("HAMU_DATA_DIR", str(tmp_path))
    data, config, recipe = blobs(), ModelConfig(hidden=(8,)), TrainConfig(epochs=1)
    with pytest.raises(ValueError, match="device must be one of"):
        build_bank(data, config, recipe, k=4, device="tpu")
    assert not list(tmp_path.rglob("*.pt"))
    bank = build_bank(data, config, recipe, k=4, device="cpu")
    assert {model_device(m) for m in bank.models} == {torch.device("cpu")}
    assert len(list(tmp_path.rglob("shadow-*.pt"))) == 4
