"""Inception-v1 I3D (Carreira & Zisserman 2017), Kinetics-400, as used for FVD.

Names follow piergiaj/pytorch-i3d, the layout of ``i3d_pretrained_400.pt``: end points ``Conv3d_1a_7x7``,
``Conv3d_2b_1x1``, ``Conv3d_2c_3x3``, ``Mixed_3b`` ... ``Mixed_5c`` (branches ``b0``, ``b1a``, ``b1b``,
``b2a``, ``b2b``, ``b3b``; ``b3a`` is a parameterless max pool), each unit a ``conv3d`` (no bias) + ``bn``
(eps 1e-3), and the classifier ``logits.conv3d`` (1x1x1, with bias). Convolutions and max pools use
TensorFlow "SAME" padding computed from the input size (zeros). Pool kernels: 1x3x3/s(1,2,2) twice,
3x3x3/s2, 2x2x2/s2; the head averages over a fixed 2x7x7 window (stride 1).

``forward`` takes clips (B, 3, T, 224, 224) in [-1, 1] and returns the 400 logits averaged over the
remaining time steps: the FVD feature. With 16-frame clips one time step remains.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn


def _same_padding(size: int, kernel: int, stride: int) -> Tuple[int, int]:
    remainder = size % stride
    total = max(kernel - (stride if remainder == 0 else remainder), 0)
    return total // 2, total - total // 2


def _pad_same(x: torch.Tensor, kernel: Sequence[int], stride: Sequence[int]) -> torch.Tensor:
    t, h, w = x.shape[2:]
    pt, ph, pw = (_same_padding(s, k, st) for s, k, st in zip((t, h, w), kernel, stride))
    return F.pad(x, (*pw, *ph, *pt))


class Unit3D(nn.Module):
    """conv3d with SAME padding, optional BN (eps 1e-3) and ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel: Sequence[int] = (1, 1, 1),
                 stride: Sequence[int] = (1, 1, 1), *, batch_norm: bool = True, relu: bool = True,
                 bias: bool = False):
        super().__init__()
        self.kernel = tuple(kernel)
        self.stride = tuple(stride)
        self.relu = relu
        self.conv3d = nn.Conv3d(in_channels, out_channels, self.kernel, stride=self.stride, padding=0, bias=bias)
        self.bn = nn.BatchNorm3d(out_channels, eps=0.001, momentum=0.01) if batch_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(_pad_same(x, self.kernel, self.stride))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.relu else x


class MaxPoolSame(nn.Module):
    def __init__(self, kernel: Sequence[int], stride: Sequence[int]):
        super().__init__()
        self.kernel = tuple(kernel)
        self.stride = tuple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(_pad_same(x, self.kernel, self.stride), self.kernel, self.stride)


class Mixed(nn.Module):
    """Inception module; ``widths`` = (b0, b1a, b1b, b2a, b2b, b3b) output channels."""

    def __init__(self, in_channels: int, widths: Sequence[int]):
        super().__init__()
        w0, w1a, w1b, w2a, w2b, w3b = widths
        self.b0 = Unit3D(in_channels, w0)
        self.b1a = Unit3D(in_channels, w1a)
        self.b1b = Unit3D(w1a, w1b, (3, 3, 3))
        self.b2a = Unit3D(in_channels, w2a)
        self.b2b = Unit3D(w2a, w2b, (3, 3, 3))
        self.b3a = MaxPoolSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(in_channels, w3b)
        self.out_channels = w0 + w1b + w2b + w3b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], 1)


# (name, in_channels, widths) of the Inception modules, in order; pools sit between the groups.
_MIXED = {
    "Mixed_3b": (192, (64, 96, 128, 16, 32, 32)),
    "Mixed_3c": (256, (128, 128, 192, 32, 96, 64)),
    "Mixed_4b": (480, (192, 96, 208, 16, 48, 64)),
    "Mixed_4c": (512, (160, 112, 224, 24, 64, 64)),
    "Mixed_4d": (512, (128, 128, 256, 24, 64, 64)),
    "Mixed_4e": (512, (112, 144, 288, 32, 64, 64)),
    "Mixed_4f": (528, (256, 160, 320, 32, 128, 128)),
    "Mixed_5b": (832, (256, 160, 320, 32, 128, 128)),
    "Mixed_5c": (832, (384, 192, 384, 48, 128, 128)),
}


class InceptionI3D(nn.Module):
    """I3D RGB stream; ``forward`` (B, 3, T, 224, 224) in [-1, 1] -> (B, num_classes) time-averaged logits."""

    NUM_CLASSES = 400
    INPUT_SIZE = 224
    CLIP_LENGTH = 16
    # Shortest clip the fixed 2x7x7 head accepts: three temporal stride-2 stages must leave 2 steps.
    MIN_FRAMES = 9

    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3D(3, 64, (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPoolSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPoolSame((1, 3, 3), (1, 2, 2))
        for name in ("Mixed_3b", "Mixed_3c"):
            setattr(self, name, Mixed(*_MIXED[name]))
        self.MaxPool3d_4a_3x3 = MaxPoolSame((3, 3, 3), (2, 2, 2))
        for name in ("Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f"):
            setattr(self, name, Mixed(*_MIXED[name]))
        self.MaxPool3d_5a_2x2 = MaxPoolSame((2, 2, 2), (2, 2, 2))
        for name in ("Mixed_5b", "Mixed_5c"):
            setattr(self, name, Mixed(*_MIXED[name]))
        self.logits = Unit3D(1024, num_classes, batch_norm=False, relu=False, bias=True)
        self._order = ["Conv3d_1a_7x7", "MaxPool3d_2a_3x3", "Conv3d_2b_1x1", "Conv3d_2c_3x3", "MaxPool3d_3a_3x3",
                       "Mixed_3b", "Mixed_3c", "MaxPool3d_4a_3x3", "Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e",
                       "Mixed_4f", "MaxPool3d_5a_2x2", "Mixed_5b", "Mixed_5c"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[2] < self.MIN_FRAMES or min(x.shape[3:]) < 193:
            raise ValueError(
                f"I3D needs clips of >= {self.MIN_FRAMES} frames and >= 193 px (224 in FVD), got {tuple(x.shape)}")
        for name in self._order:
            x = getattr(self, name)(x)
        x = F.avg_pool3d(x, kernel_size=(2, 7, 7), stride=1)
        # Dropout of the original is identity in eval mode.
        x = self.logits(x)
        return x.mean(dim=(2, 3, 4))
