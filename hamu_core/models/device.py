"""Which device the Studio computes on: a setting passed down from the session or the CLI.

"auto" means CUDA when PyTorch sees a GPU and the CPU otherwise, so the same settings run
on a laptop and on a GPU box. A named device is checked here, once, so a request for a GPU
that is not there fails with a message instead of deep inside a forward pass. Core code
never assumes the CPU: it puts inputs on ``model_device(model)`` and brings results back
to the CPU only where they leave torch (numpy arrays, plots, stored records).
"""

from __future__ import annotations

import torch
from torch import nn

DEVICE_CHOICES = ("auto", "cpu", "cuda")  # what the CLI's --device and the Setup control offer; "cuda:N" also works


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """The torch device for a setting: "auto", "cpu", "cuda" or "cuda:N"; ValueError naming what is wrong."""
    if isinstance(name, torch.device):
        name = str(name)
    text = str(name).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(text)
    except RuntimeError as exc:
        raise ValueError(f"device must be one of {DEVICE_CHOICES} or 'cuda:N', got {name!r}") from exc
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be one of {DEVICE_CHOICES} or 'cuda:N', got {name!r}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} asked for, but PyTorch sees no CUDA GPU here; use 'auto' or 'cpu'")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r} asked for, but only {torch.cuda.device_count()} CUDA GPU(s) exist")
    return device


def device_label(name: str | torch.device = "auto") -> str:
    """A short line for the UI and CLI: what ``name`` resolves to here, e.g. "auto → cpu (no CUDA GPU)"."""
    device = resolve_device(name)
    if device.type == "cuda":
        where = torch.cuda.get_device_name(device)
    else:
        where = "CPU" if torch.cuda.is_available() else "no CUDA GPU"
    return f"{name} → {device} ({where})"


def model_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (or buffer); the CPU for a model with neither."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")
