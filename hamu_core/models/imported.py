"""Bring your own model: a safetensors state dict for a built-in architecture, or a ``torch.export`` program.

A model file is data from outside, so nothing here ever unpickles it. A state dict is read
only by ``safetensors.torch.load_file`` (a JSON header and raw tensor bytes). A ``.pt2``
archive is read by ``torch.export.load``, which *can* unpickle (pickled weights, custom
objects, a fallback for sample inputs), so the archive is inspected first and refused
unless every entry is one of the plain kinds ``torch.export.save`` writes for an ordinary
model: JSON, raw tensor bytes, and sample inputs that load with ``weights_only=True``.

Every model, either kind, is then checked against the data it will unlearn: the class
count, a forward pass on a few training samples giving finite (k, n_classes) logits, and
gradients reaching its parameters. Each refusal is a ``ModelFileError`` whose ``reason``
names the rule broken, so the app and the CLI can say exactly what does not fit.
"""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from hamu_core.data.labelled import LabelledData
from hamu_core.models.architectures import ModelConfig, build_model, count_parameters, model_fingerprint
from hamu_core.models.device import model_device, resolve_device

# Why a file was refused: a pickle (never run), not a readable file of its kind, tensor names
# or shapes that are not the architecture's, a class count other than the data's, weights that
# are not finite floats, a forward pass that fails or gives the wrong shape, no gradient.
REASONS = ("pickle", "format", "names", "shapes", "classes", "values", "forward", "gradients")
SUFFIXES = (".safetensors", ".pt2")
CHECK_SAMPLES = 4  # training samples pushed through an uploaded model before it is accepted
HEAD_WEIGHT = "head.weight"  # every built-in architecture ends in a Linear called head
PICKLE_MAGIC = b"\x80"  # pickle protocols 2 and up start with PROTO
ZIP_MAGIC = b"PK\x03\x04"
# Entries of a pt2 archive (below its root folder) that hold no pickle: fixed names, JSON configs,
# raw tensor bytes and the models' JSON graphs. Sample inputs are torch.save files, checked apart.
_PT2_PLAIN = ("archive_format", "archive_version", "byteorder", ".data/version", ".data/serialization_id",
              "extra/module_info.json")


class ModelFileError(ValueError):
    """A model file that cannot be used; ``reason`` is one of REASONS and the message says what to fix."""

    def __init__(self, reason: str, message: str) -> None:
        if reason not in REASONS:
            raise ValueError(f"reason must be one of {REASONS}, got {reason!r}")
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, eq=False)
class ImportedModel:
    """A validated outside model, in eval mode on its device, and what the app shows about it."""

    model: nn.Module
    kind: str  # "safetensors" (weights for a built-in architecture) or "exported" (a torch.export program)
    file_name: str
    arch: str | None  # the built-in architecture for safetensors; None for an exported program
    n_parameters: int
    fingerprint: str  # model_fingerprint of the weights as loaded

    def describe(self) -> str:
        what = f"{self.arch} weights" if self.arch else "an exported program"
        return f"{self.file_name}: {what}, {self.n_parameters:,} parameters"


class ExportedClassifier(nn.Module):
    """A ``torch.export`` program as a trainable module.

    ``ExportedProgram.module()`` gives a GraphModule whose parameters train normally but
    which refuses ``train()``/``eval()``: its graph was traced in one mode and keeps it. The
    Studio switches modes around every measurement, so this wrapper records the flag for
    itself and leaves the graph alone. ``features`` gives what the program's last Linear layer
    reads, the penultimate features the embedding map plots for the built-in models.
    """

    def __init__(self, program: nn.Module) -> None:
        super().__init__()
        self.program = program

    def train(self, mode: bool = True) -> ExportedClassifier:
        self.training = mode
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.program(x)  # (n, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return _up_to_last_linear(self.program)(x)  # (n, d): the input of the last Linear layer


def _up_to_last_linear(program: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """The program's graph cut just before its last ``aten.linear``, sharing its weights (built per call, so it
    always reads the current ones); ValueError when the program has no Linear layer."""
    linears = [n for n in program.graph.nodes if n.op == "call_function" and n.target == torch.ops.aten.linear.default]
    if not linears:
        raise ValueError("this exported program has no Linear layer, so it has no penultimate features to map")
    graph, copied = torch.fx.Graph(), {}
    for node in program.graph.nodes:
        if node is linears[-1]:
            graph.output(copied[node.args[0]])
            break
        copied[node] = graph.node_copy(node, lambda n: copied[n])
    return torch.fx.GraphModule(program, graph)


def load_model_file(path: str | Path, data: LabelledData, config: ModelConfig | None = None, *,
                    device: str | torch.device = "cpu") -> ImportedModel:
    """The model in ``path`` checked against ``data``, in eval mode on ``device``; ModelFileError if it does not fit.

    ``.safetensors`` files hold the weights of the built-in architecture ``config``;
    ``.pt2`` files hold a whole ``torch.export`` program (any architecture).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}")
    head = path.open("rb").read(4)
    if head.startswith(PICKLE_MAGIC) or (head == ZIP_MAGIC and _is_torch_save(path)):
        raise ModelFileError("pickle", f"{path.name} is a pickle (torch.save) file; pickles can run code and are "
                             "never opened. Save the state dict with safetensors.torch.save_file, or the whole "
                             "model with torch.export.save")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        config = config or ModelConfig()
        model, kind, arch = _from_safetensors(path, data, config), "safetensors", config.arch
    elif suffix == ".pt2":
        model, kind, arch = _from_exported(path), "exported", None
    else:
        raise ModelFileError("format", f"{path.name}: a model file must end in {' or '.join(SUFFIXES)}")
    model = model.to(resolve_device(device)).eval()
    check_fits(model, data, path.name)  # on the device it will run on: an export may have baked in another
    return ImportedModel(model, kind, path.name, arch, count_parameters(model), model_fingerprint(model))


def load_model_bytes(content: bytes, name: str, data: LabelledData, config: ModelConfig | None = None, *,
                     device: str | torch.device = "cpu") -> ImportedModel:
    """``load_model_file`` for an upload: the bytes go to a private temporary folder under the file's own name."""
    leaf = Path(name).name  # an uploaded name never chooses a folder
    if not leaf:
        raise ModelFileError("format", f"a model file needs a name ending in {' or '.join(SUFFIXES)}")
    with tempfile.TemporaryDirectory(prefix="hamu-model-") as folder:
        path = Path(folder) / leaf
        path.write_bytes(content)
        return load_model_file(path, data, config, device=device)


def check_fits(model: nn.Module, data: LabelledData, name: str) -> None:
    """Refuse ``model`` unless a few training samples give finite (k, n_classes) logits and gradients reach it."""
    device = model_device(model)
    x, y = (t.to(device) for t in data.tensors(data.train_ids[:CHECK_SAMPLES]))
    try:
        logits = model(x)
        model(x[:1])  # steps, hardness and attacks use every batch size down to one sample
    except Exception as exc:  # a foreign graph fails with any exception type; its text is the clue
        raise ModelFileError("forward", f"{name}: the model fails on {data.name}'s inputs of shape "
                             f"{tuple(x.shape[1:])} in batches of {len(x)} and 1 (export it with a dynamic "
                             f"batch dimension, torch.export.Dim): {_first_line(exc)}") from exc
    if logits.ndim != 2 or len(logits) != len(x):
        raise ModelFileError("forward", f"{name}: the model returns shape {tuple(logits.shape)} for {len(x)} "
                             f"samples; it must return one row of class scores per sample")
    if logits.shape[1] != data.n_classes:
        raise ModelFileError("classes", f"{name}: the model scores {logits.shape[1]} classes but {data.name} has "
                             f"{data.n_classes}")
    if not bool(torch.isfinite(logits).all()):
        raise ModelFileError("values", f"{name}: the model's outputs on {data.name} contain NaN or Inf")
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(F.cross_entropy(logits, y), params, allow_unused=True) if params else ()
    if not any(g is not None and bool(g.abs().sum() > 0) for g in grads):
        raise ModelFileError("gradients", f"{name}: no gradient reaches the model's parameters, so it cannot be "
                             "unlearned (were they exported as constants or frozen?)")


def _from_safetensors(path: Path, data: LabelledData, config: ModelConfig) -> nn.Module:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFileError("format", f"{path.name}: not a readable safetensors file ({_first_line(exc)})") from exc
    model = build_model(config, data.input_shape, data.n_classes)
    expected = model.state_dict()
    head = state.get(HEAD_WEIGHT)
    if head is not None and head.ndim == 2 and head.shape[0] != data.n_classes:
        raise ModelFileError("classes", f"{path.name}: its head has {head.shape[0]} outputs but {data.name} has "
                             f"{data.n_classes} classes")
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ModelFileError("names", f"{path.name}: not {config.arch} weights for this data: missing "
                             f"{missing[:5]}, unexpected {unexpected[:5]}")
    wrong = [f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})" for k, v in expected.items()
             if state[k].shape != v.shape]
    if wrong:
        raise ModelFileError("shapes", f"{path.name}: tensor shapes do not match {config.arch} on inputs "
                             f"{data.input_shape}: {wrong[:5]}")
    bad = [k for k, v in state.items() if expected[k].is_floating_point()
           and (not v.is_floating_point() or not bool(torch.isfinite(v).all()))]
    if bad:
        raise ModelFileError("values", f"{path.name}: tensors that are not finite floats: {bad[:5]}")
    model.load_state_dict(state)
    return model.eval()


def _from_exported(path: Path) -> nn.Module:
    _check_archive(path)
    try:
        program = torch.export.load(str(path))
    except Exception as exc:  # the deserialiser raises many types for a damaged archive
        raise ModelFileError("format", f"{path.name}: not a loadable torch.export program "
                             f"({_first_line(exc)})") from exc
    return ExportedClassifier(program.module())


def _check_archive(path: Path) -> None:
    """Refuse a .pt2 archive holding anything ``torch.export.load`` might unpickle or execute."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            roots = {n.split("/", 1)[0] for n in names}
            if len(roots) != 1 or any("/" not in n for n in names):
                raise ModelFileError("format", f"{path.name}: not a torch.export archive (one root folder expected)")
            root = roots.pop() + "/"
            inner = [n[len(root):] for n in names if not n.endswith("/")]
            if "archive_format" not in inner or archive.read(root + "archive_format").strip() != b"pt2":
                raise ModelFileError("format", f"{path.name}: not a torch.export archive (no pt2 archive_format)")
            for entry in inner:
                _check_entry(path.name, entry, lambda e=entry: archive.read(root + e))
    except zipfile.BadZipFile as exc:
        raise ModelFileError("format", f"{path.name}: not a torch.export archive ({exc})") from exc


def _check_entry(file_name: str, entry: str, read) -> None:
    """One archive entry: allowed plain data, or a refusal naming it."""
    folder, _, leaf = entry.rpartition("/")
    if entry in _PT2_PLAIN or (folder == "models" and leaf.endswith(".json")):
        return
    if folder in ("data/weights", "data/constants"):
        if leaf.endswith("_config.json"):
            pickled = [k for k, meta in json.loads(read()).get("config", {}).items() if meta.get("use_pickle")]
            if pickled:
                raise ModelFileError("pickle", f"{file_name}: holds pickled tensors or objects ({pickled[:3]}); "
                                     "only plain tensors are accepted")
            return
        if leaf.startswith(("weight_", "tensor_")):
            return
    if folder == "data/sample_inputs" and leaf.endswith(".pt"):
        try:
            torch.load(io.BytesIO(read()), weights_only=True)
        except Exception as exc:  # weights_only refuses any non-tensor global with its own error types
            raise ModelFileError("pickle", f"{file_name}: its sample inputs are not plain tensors "
                                 f"({_first_line(exc)})") from exc
        return
    raise ModelFileError("format", f"{file_name}: unexpected archive entry {entry!r} (compiled code, custom objects "
                         "and legacy pickled weights are not accepted)")


def _is_torch_save(path: Path) -> bool:
    """Whether a zip file is a torch.save checkpoint (it carries a pickle, data.pkl)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(n.endswith(".pkl") for n in archive.namelist())
    except zipfile.BadZipFile:
        return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
