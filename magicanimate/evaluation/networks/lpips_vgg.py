"""LPIPS (Zhang et al. 2018), version 0.1, with the VGG16 backbone.

Two published files: torchvision's ImageNet VGG16 (``vgg16-397923af.pth``: ``features.N.weight/bias`` for
the 13 convolutions at indices 0, 2, 5, ..., 28, plus ``classifier.{0,3,6}.*``) and the LPIPS v0.1 linear
heads (``vgg.pth``: ``lin0.model.1.weight`` ... ``lin4.model.1.weight``, shapes (1, C, 1, 1); ``model.0``
is a parameterless dropout). Only ``features`` is defined: the classifier is never used and costs 124M
parameters, so the loader allowlists its keys (checked by name and shape, then dropped).

Distance: inputs are shifted/scaled by LPIPS's ScalingLayer, features are taken after relu1_2, relu2_2,
relu3_3, relu4_3, relu5_3, unit-normalised over channels, squared differences weighted by the linear
heads, averaged over space and summed over the five layers. The LPIPS package expects inputs in [-1, 1];
DisCo fed [0, 1] tensors without conversion, which the ``disco`` protocol reproduces (see the harness).
"""

from __future__ import annotations

from typing import List

import torch
from torch import nn

# torchvision's vgg16 "D" configuration; "M" = 2x2 max pool.
_VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
# Index (in ``features``) of the ReLU after which each LPIPS layer is tapped.
_TAPS = (3, 8, 15, 22, 29)
CHANNELS = (64, 128, 256, 512, 512)

# LPIPS ScalingLayer constants (inputs are expected in [-1, 1]).
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


class VGG16Features(nn.Module):
    """torchvision-compatible ``vgg16().features`` (module indices match ``features.N`` in the file)."""

    def __init__(self):
        super().__init__()
        layers: List[nn.Module] = []
        in_channels = 3
        for item in _VGG16_LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers.append(nn.Conv2d(in_channels, item, kernel_size=3, padding=1))
                layers.append(nn.ReLU(inplace=False))
                in_channels = item
        self.features = nn.Sequential(*layers)

    def taps(self, x: torch.Tensor) -> List[torch.Tensor]:
        outputs = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in _TAPS:
                outputs.append(x)
                if index == _TAPS[-1]:
                    break
        return outputs


class LinearHead(nn.Module):
    """``lin{k}``: dropout (``model.0``, no weights) then a 1x1 conv without bias (``model.1``)."""

    def __init__(self, channels: int):
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(p=0.5), nn.Conv2d(channels, 1, kernel_size=1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class LPIPSVGG(nn.Module):
    """LPIPS v0.1 distance with VGG16. ``forward(x, y)`` -> (B,) distances for inputs in [-1, 1]."""

    def __init__(self):
        super().__init__()
        self.net = VGG16Features()
        self.lin0, self.lin1, self.lin2, self.lin3, self.lin4 = (LinearHead(c) for c in CHANNELS)
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)

    def heads(self) -> List[LinearHead]:
        return [self.lin0, self.lin1, self.lin2, self.lin3, self.lin4]

    @staticmethod
    def _unit(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
        return x / (torch.sqrt(torch.sum(x * x, dim=1, keepdim=True)) + eps)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        fx = self.net.taps((x - self.shift) / self.scale)
        fy = self.net.taps((y - self.shift) / self.scale)
        total = 0.0
        for head, a, b in zip(self.heads(), fx, fy):
            diff = (self._unit(a) - self._unit(b)) ** 2
            total = total + head(diff).mean(dim=(2, 3), keepdim=True)
        return total.flatten()
