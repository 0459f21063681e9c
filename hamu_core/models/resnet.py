"""ResNet-20 for small colour images: the CIFAR-10 network of He et al. (2016), written here.

The paper's image setting unlearns a CIFAR-class ResNet, and torchvision is deliberately
not a dependency, so the network is spelled out: a 3×3 stem, three stages of three basic
blocks (two 3×3 convolutions each) at ``width``, 2·width and 4·width channels, stride 2 at
the start of stages two and three with a 1×1 projection on the shortcut, global average
pooling, then the ``head`` Linear. With width 16 on 3×32×32 inputs and 10 classes that is
the published 0.27M-parameter model; a narrower width keeps tests to seconds.

Unlike the MLP and the CNN this network has BatchNorm, as the published one does.
Training uses batch statistics; every unlearning step, hardness pass and measurement runs
in eval mode, where BatchNorm is a fixed per-channel affine map of the running statistics.
So a step sees one deterministic function of the weights, per-sample gradients
(``torch.func.vmap``) are well defined, and unlearning never moves the running statistics.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

BLOCKS_PER_STAGE = 3  # ResNet-20: 1 stem conv + 3 stages × 3 blocks × 2 convs + the head = 20 layers


class BasicBlock(nn.Module):
    """conv3×3 → BN → ReLU → conv3×3 → BN, plus the shortcut (a 1×1 conv + BN when the shape changes), → ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))  # (n, c_out, h/stride, w/stride)


class ResNet20(nn.Module):
    """Stem, three stages of basic blocks, global average pool (``features``), ``head``."""

    def __init__(self, input_shape: tuple[int, ...], width: int, n_classes: int) -> None:
        super().__init__()
        c_in = input_shape[0]
        widths = (width, 2 * width, 4 * width)
        self.stem = nn.Sequential(nn.Conv2d(c_in, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        blocks, previous = [], width
        for stage, channels in enumerate(widths):
            for index in range(BLOCKS_PER_STAGE):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(BasicBlock(previous, channels, stride))
                previous = channels
        self.stages = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(widths[-1], n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.stages(self.stem(x))).flatten(1)  # (n, c, h, w) → (n, 4·width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (n, n_classes)
