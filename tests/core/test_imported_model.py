"""Bring your own model: safetensors and .pt2 round trips, unlearning an exported program, named refusals."""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from hamu_core.data.builtin import BUILTIN_DATASETS
from hamu_core.data.labelled import LabelledData, stratified_test_mask
from hamu_core.evaluation.embedding import penultimate_features
from hamu_core.evaluation.hardness import per_sample_hardness, per_sample_hardness_loop
from hamu_core.evaluation.metrics import sample_outputs
from hamu_core.models.architectures import ModelConfig, build_model, eval_mode, model_fingerprint
from hamu_core.models.imported import ExportedClassifier, ModelFileError, load_model_file
from hamu_core.rules import gradients as G
from hamu_core.rules.registry import make_rule
from hamu_core.runs.unlearner import UnlearningRun

ROOT = Path(__file__).resolve().parents[2]
SHAPE = (1, 8, 8)
CNN = ModelConfig(arch="cnn")


def small_images(n_classes: int = 3, per_class: int = 12) -> LabelledData:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(n_classes), per_class)
    X = rng.normal(size=(len(y), *SHAPE)).astype(np.float32) + y[:, None, None, None]
    return LabelledData(name="blobs", kind="image", X=X, y=y.astype(np.int64),
                        ids=np.arange(len(y), dtype=np.int64) + 100, is_test=stratified_test_mask(y, seed=0),
                        classes=tuple(f"c{k}" for k in range(n_classes)))


def own_network(n_classes: int = 3) -> nn.Module:
    """An architecture the Studio does not ship (Tanh, no head attribute): only an export can carry it."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 20), nn.Tanh(), nn.Linear(20, n_classes)).eval()


def export(model: nn.Module, path: Path, *, dynamic: bool = True, shape=SHAPE) -> Path:
    spec = ({0: torch.export.Dim("batch")},) if dynamic else None  # positional: any forward argument name
    program = torch.export.export(model, (torch.randn(4, *shape),), dynamic_shapes=spec)
    torch.export.save(program, str(path))
    return path


def outputs(model: nn.Module, data: LabelledData) -> torch.Tensor:
    with eval_mode(model), torch.no_grad():
        return model(data.tensors(data.ids)[0])


def refusal(path: Path, data: LabelledData, config: ModelConfig = CNN) -> ModelFileError:
    with pytest.raises(ModelFileError) as caught:
        load_model_file(path, data, config)
    return caught.value


@pytest.fixture(scope="module")
def data():
    return small_images()


@pytest.mark.parametrize("config", [ModelConfig(hidden=(16,)), CNN, ModelConfig(arch="resnet20", resnet_width=4)],
                         ids=["mlp", "cnn", "resnet20"])
def test_safetensors_round_trip(tmp_path, data, config):
    model = build_model(config, SHAPE, data.n_classes, seed=3)
    save_file(model.state_dict(), str(tmp_path / "mine.safetensors"))
    loaded = load_model_file(tmp_path / "mine.safetensors", data, config)
    assert (loaded.kind, loaded.arch, loaded.file_name) == ("safetensors", config.arch, "mine.safetensors")
    assert loaded.fingerprint == model_fingerprint(model)  # BatchNorm's running statistics included
    assert torch.equal(outputs(loaded.model, data), outputs(model, data))
    assert f"{config.arch} weights" in loaded.describe()


def test_exported_program_round_trip_and_modes(tmp_path, data):
    network = own_network()
    loaded = load_model_file(export(network, tmp_path / "own.pt2"), data)
    assert loaded.kind == "exported" and loaded.arch is None
    assert isinstance(loaded.model, ExportedClassifier)
    torch.testing.assert_close(outputs(loaded.model, data), outputs(network, data))
    loaded.model.train()
    assert loaded.model.training  # the flag moves; the traced graph keeps its mode
    loaded.model.eval()
    assert loaded.n_parameters == sum(p.numel() for p in network.parameters())


def test_hamu_unlearns_an_exported_program(tmp_path, data):
    loaded = load_model_file(export(own_network(), tmp_path / "own.pt2"), data)
    base = [p.detach().clone() for p in loaded.model.parameters()]
    forget = data.train_ids[data.y[data.rows(data.train_ids)] == 1]
    retain = np.setdiff1d(data.train_ids, forget)
    rule = make_rule("hamu-q", mode="full", radius=0.3, constraint=0.02, clip_norm=None)
    run = UnlearningRun(rule, model=loaded.model, retain=data.tensors(retain), forget=data.tensors(forget))
    records = run.run(3)
    assert all(r.step_norm > 0 for r in records)  # gradients flowed into the exported weights
    assert records[-1].forget_loss_after > records[0].forget_loss_before
    assert all(torch.equal(p, q) for p, q in zip(loaded.model.parameters(), base))  # the run copied it
    run.undo()
    assert len(run.history_) == 2


def test_per_sample_hardness_works_on_an_exported_program(tmp_path, data):
    model = load_model_file(export(own_network(), tmp_path / "own.pt2"), data).model
    _, g_r = G.loss_and_gradients(model, *data.tensors(data.train_ids[8:]))
    x, y = data.tensors(data.train_ids[:8])
    fast = per_sample_hardness(model, x, y, g_r, chunk_size=3)
    slow = per_sample_hardness_loop(model, x, y, g_r)
    torch.testing.assert_close(fast.kappa, slow.kappa, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(fast.cos, slow.cos, rtol=1e-4, atol=1e-6)


class Trap:
    """Unpickling this writes a file: proof that a pickle was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "ran"))


@pytest.mark.parametrize("name", ["weights.pt", "weights.safetensors", "weights.pt2", "weights.bin"])
@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_pickles_are_refused_and_never_run(tmp_path, data, name, writer):
    marker = tmp_path / "ran.txt"
    payload = {"head.weight": torch.zeros(3, 2), "trap": Trap(marker)}
    with open(tmp_path / name, "wb") as fh:
        torch.save(payload, fh) if writer == "torch.save" else pickle.dump(payload, fh)
    error = refusal(tmp_path / name, data)
    assert error.reason == "pickle" and "never opened" in str(error)
    assert not marker.exists()


def test_wrong_shapes_are_named(tmp_path, data):
    other = build_model(ModelConfig(arch="cnn", channels=(8, 16)), SHAPE, data.n_classes)
    save_file(other.state_dict(), str(tmp_path / "narrow.safetensors"))
    error = refusal(tmp_path / "narrow.safetensors", data)
    assert error.reason == "shapes" and "conv.0.weight (8, 1, 3, 3) (expected (16, 1, 3, 3))" in str(error)


def test_weights_of_another_architecture_are_named(tmp_path, data):
    save_file(build_model(ModelConfig(), SHAPE, data.n_classes).state_dict(), str(tmp_path / "mlp.safetensors"))
    error = refusal(tmp_path / "mlp.safetensors", data)
    assert error.reason == "names" and "missing" in str(error) and "body.0.weight" in str(error)


def test_wrong_class_count_is_named_for_both_kinds(tmp_path, data):
    save_file(build_model(CNN, SHAPE, 5).state_dict(), str(tmp_path / "five.safetensors"))
    error = refusal(tmp_path / "five.safetensors", data)
    assert error.reason == "classes" and "5 outputs" in str(error) and "3 classes" in str(error)
    error = refusal(export(own_network(n_classes=7), tmp_path / "seven.pt2"), data)
    assert error.reason == "classes" and "7 classes" in str(error)


def test_non_finite_weights_are_refused(tmp_path, data):
    state = build_model(CNN, SHAPE, data.n_classes).state_dict()
    state["head.bias"][0] = float("nan")
    save_file(state, str(tmp_path / "nan.safetensors"))
    assert refusal(tmp_path / "nan.safetensors", data).reason == "values"


def test_an_export_with_a_fixed_batch_size_or_other_inputs_is_refused(tmp_path, data):
    error = refusal(export(own_network(), tmp_path / "static.pt2", dynamic=False), data)
    assert error.reason == "forward" and "dynamic batch dimension" in str(error)
    wide = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 3)).eval()
    error = refusal(export(wide, tmp_path / "colour.pt2", shape=(3, 8, 8)), data)
    assert error.reason == "forward" and "(1, 8, 8)" in str(error)


def rewrite_archive(source: Path, target: Path, change) -> Path:
    """Copy a zip entry by entry, letting ``change(name, bytes)`` replace an entry's bytes (None drops it)."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            body = change(info.filename, old.read(info))
            if body is not None:
                new.writestr(info, body)
    return target


def test_an_archive_with_pickled_weights_is_refused_before_loading(tmp_path, data):
    marker = tmp_path / "ran.txt"
    good = export(own_network(), tmp_path / "own.pt2")

    def poison(name: str, body: bytes) -> bytes:
        if name.endswith("_weights_config.json"):
            config = json.loads(body)
            first = next(iter(config["config"]))
            config["config"][first]["use_pickle"] = True
            return json.dumps(config).encode()
        if name.endswith("weight_0"):
            return pickle.dumps(Trap(marker))
        return body

    error = refusal(rewrite_archive(good, tmp_path / "poisoned.pt2", poison), data)
    assert error.reason == "pickle" and "pickled tensors" in str(error)
    assert not marker.exists()


def test_an_archive_with_compiled_code_or_bad_sample_inputs_is_refused(tmp_path, data):
    good = export(own_network(), tmp_path / "own.pt2")
    root = zipfile.ZipFile(good).namelist()[0].split("/")[0]

    with_so = Path(shutil.copy(good, tmp_path / "compiled.pt2"))
    with zipfile.ZipFile(with_so, "a") as archive:
        archive.writestr(f"{root}/data/aotinductor/model/model.so", b"\x7fELF")
    error = refusal(with_so, data)
    assert error.reason == "format" and "data/aotinductor/model/model.so" in str(error)

    marker = tmp_path / "ran.txt"

    def trap_inputs(name: str, body: bytes) -> bytes:
        if "/data/sample_inputs/" in name:
            buffer = io.BytesIO()
            torch.save((Trap(marker),), buffer)
            return buffer.getvalue()
        return body

    error = refusal(rewrite_archive(good, tmp_path / "inputs.pt2", trap_inputs), data)
    assert error.reason == "pickle" and "sample inputs" in str(error)
    assert not marker.exists()


@pytest.mark.parametrize("name, body", [("garbage.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!"),
                                        ("garbage.pt2", b"PK\x03\x04 truncated"),
                                        ("model.onnx", b"\x08\x07onnx")])
def test_unreadable_files_are_refused_as_format(tmp_path, data, name, body):
    (tmp_path / name).write_bytes(body)
    assert refusal(tmp_path / name, data).reason == "format"


def test_a_zip_that_is_not_an_export_is_refused(tmp_path, data):
    with zipfile.ZipFile(tmp_path / "photos.pt2", "w") as archive:
        archive.writestr("photos/cat.txt", "meow")
    error = refusal(tmp_path / "photos.pt2", data)
    assert error.reason == "format" and "archive_format" in str(error)


def test_a_missing_file_is_a_file_error(tmp_path, data):
    with pytest.raises(FileNotFoundError, match="no model file"):
        load_model_file(tmp_path / "absent.safetensors", data, CNN)


def cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HAMU_DATA_DIR": str(home), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "hamu_core", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_the_cli_runs_on_an_own_model_and_names_refusals(tmp_path):
    digits = BUILTIN_DATASETS["digits"]()
    save_file(build_model(CNN, digits.input_shape, digits.n_classes, seed=1).state_dict(),
              str(tmp_path / "mine.safetensors"))
    own = ["--dataset", "digits", "--arch", "cnn", "--forget-class", "3", "--device", "cpu", "--quiet",
           "--store", str(tmp_path / "runs")]
    done = cli(tmp_path, "run", *own, "--model-file", str(tmp_path / "mine.safetensors"), "--steps", "2")
    assert done.returncode == 0, done.stderr
    assert "status: step_limit" in done.stdout and "retrain_forget_acc" not in done.stdout
    assert not (tmp_path / "models").exists()  # nothing was trained
    torch.save({"w": torch.zeros(1)}, tmp_path / "mine.pt")
    refused = cli(tmp_path, "run", *own, "--model-file", str(tmp_path / "mine.pt"))
    assert refused.returncode == 2 and "pickle" in refused.stderr and "never opened" in refused.stderr
    bad_device = cli(tmp_path, "run", "--dataset", "digits", "--forget-class", "3", "--device", "tpu")
    assert bad_device.returncode == 2 and "device must be one of" in bad_device.stderr


def test_an_exported_program_has_the_penultimate_features_of_its_source(tmp_path, data):
    cnn = build_model(CNN, SHAPE, data.n_classes, seed=2)
    model = load_model_file(export(cnn, tmp_path / "cnn.pt2"), data).model
    ids = data.train_ids[:5]
    np.testing.assert_allclose(penultimate_features(model, data, ids), penultimate_features(cnn, data, ids), atol=1e-5)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)  # features follow the current weights, as a run changes them
    assert not np.allclose(penultimate_features(model, data, ids), penultimate_features(cnn, data, ids), atol=1e-3)


def test_an_exported_program_without_a_linear_layer_says_it_has_no_features(tmp_path, data):
    convolutional = nn.Sequential(nn.Conv2d(1, 3, 8), nn.Flatten()).eval()  # (n, 3) scores straight from a conv
    model = load_model_file(export(convolutional, tmp_path / "conv.pt2"), data).model
    with pytest.raises(ValueError, match="no Linear layer"):
        penultimate_features(model, data, data.train_ids[:3])
    assert sample_outputs(model, data, data.train_ids).loss.shape == (len(data.train_ids),)
