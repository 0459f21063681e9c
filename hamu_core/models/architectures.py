"""The small classifiers the Studio trains and unlearns: an MLP and a CNN that run on a CPU.

Both expose ``features(x)`` (the penultimate-layer activations the embedding view plots)
and a final ``head`` Linear layer, and neither has BatchNorm or dropout: an unlearning
step must see the same function whether the model is in train or eval mode. Weights are
initialised from an explicit ``torch.Generator`` so a seed alone fixes them, whatever
else has drawn from torch's global random state.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

from hamu_core.models.resnet import ResNet20

ARCHS = ("mlp", "cnn", "resnet20")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the classifier; the seed that initialises it lives in ``TrainConfig``."""

    arch: str = "mlp"  # "mlp" for any input, "cnn" for (c, h, w) images, "resnet20" for 32×32 colour images
    hidden: tuple[int, ...] = (128, 128)  # MLP hidden widths; the last is the feature size
    channels: tuple[int, int] = (16, 32)  # CNN conv widths: few, so a Fashion-MNIST epoch fits 2 cores
    cnn_hidden: int = 128  # CNN feature size (the Linear before the head): ~23k params on 8×8, ~72k on 28×28
    resnet_width: int = 16  # ResNet-20 channels of the first stage (then ×2, ×4): 16 is the published 0.27M model

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {self.arch!r}")
        if not self.hidden or any(int(h) < 1 for h in self.hidden):
            raise ValueError(f"hidden must be a non-empty tuple of positive widths, got {self.hidden}")
        if len(self.channels) != 2 or any(int(c) < 1 for c in self.channels):
            raise ValueError(f"channels must be two positive widths, got {self.channels}")
        if self.cnn_hidden < 1:
            raise ValueError(f"cnn_hidden must be positive, got {self.cnn_hidden}")
        if self.resnet_width < 1:
            raise ValueError(f"resnet_width must be positive, got {self.resnet_width}")


class MLP(nn.Module):
    """Flatten → (Linear → ReLU) per hidden width → head."""

    def __init__(self, n_inputs: int, hidden: tuple[int, ...], n_classes: int) -> None:
        super().__init__()
        widths = (n_inputs, *hidden)
        self.body = nn.Sequential(*[layer for a, b in zip(widths, widths[1:]) for layer in (nn.Linear(a, b), nn.ReLU())])
        self.head = nn.Linear(hidden[-1], n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.flatten(1))  # (n, hidden[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (n, n_classes)


class CNN(nn.Module):
    """Two 3×3 conv blocks with 2×2 max-pooling, adaptive average pooling, one hidden Linear, head.

    The adaptive pool (2×2 for 8×8 digits, 4×4 from 28×28 up) keeps the parameter count
    between roughly 20k and 100k whatever the image size.
    """

    def __init__(self, input_shape: tuple[int, ...], channels: tuple[int, int], hidden: int, n_classes: int) -> None:
        super().__init__()
        c_in, height, width = input_shape
        pooled = max(1, min(4, min(height, width) // 4))
        c1, c2 = channels
        self.conv = nn.Sequential(
            nn.Conv2d(c_in, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(pooled),
        )
        self.fc = nn.Sequential(nn.Linear(c2 * pooled * pooled, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).flatten(1))  # (n, c, h, w) → (n, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _initialise(model: nn.Module, generator: torch.Generator) -> None:
    """PyTorch's default Linear/Conv initialisation, drawn from ``generator`` instead of the global RNG."""
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
            fan_in = module.weight[0].numel()
            bound = 1.0 / math.sqrt(fan_in)
            if module.bias is not None:  # ResNet convolutions have none: BatchNorm supplies the shift
                nn.init.uniform_(module.bias, -bound, bound, generator=generator)


def build_model(config: ModelConfig, input_shape: tuple[int, ...], n_classes: int, *, seed: int = 0) -> nn.Module:
    """A freshly initialised classifier for inputs of ``input_shape`` (no batch dimension)."""
    if n_classes < 2:
        raise ValueError(f"n_classes must be at least 2, got {n_classes}")
    if config.arch in ("cnn", "resnet20") and len(input_shape) != 3:
        raise ValueError(f"arch {config.arch!r} needs image inputs (channels, height, width), got shape {input_shape}")
    if config.arch == "cnn":
        model = CNN(tuple(input_shape), config.channels, config.cnn_hidden, n_classes)
    elif config.arch == "resnet20":
        model = ResNet20(tuple(input_shape), config.resnet_width, n_classes)
    else:
        model = MLP(math.prod(input_shape), tuple(config.hidden), n_classes)
    _initialise(model, torch.Generator().manual_seed(seed))
    return model.eval()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def model_fingerprint(model: nn.Module) -> str:
    """Short sha256 of every state-dict entry (name, dtype, shape, bytes): a cache key for the weights."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        # reshape: a 0-dim tensor (BatchNorm's num_batches_tracked) cannot be viewed as bytes directly
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()[:16]



@dataclass(frozen=True, eq=False)
class TrainedModel:
    """A model treated as read-only, with the fingerprint of its weights as its key.

    The key is computed here from the weights, never passed in, so no caller can hand a
    cache one model under another model's key: caches hash a ``TrainedModel`` by its key.
    Wrap a model again after changing it (a live run's model changes every step).
    """

    model: nn.Module
    key: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", model_fingerprint(self.model))

@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode for the duration (dropout off, BatchNorm on running stats), then the caller's mode again.

    Measuring a model must not change it: a user's model (or an uploaded one with dropout)
    that was in train mode is left in train mode. Gradients stay on; add ``torch.no_grad()``
    where none are needed.
    """
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
