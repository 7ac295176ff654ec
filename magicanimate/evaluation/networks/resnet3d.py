"""3D ResNet-50 of Hara et al. (CVPR 2018), Kinetics-400, as used for FID-VID.

Matches ``resnet-50-kinetics.pth`` (``--model resnet --model_depth 50 --resnet_shortcut B``, trained on
16-frame 112x112 clips): ``conv1`` 7x7x7, stride (1, 2, 2), no bias; ``bn1``; 3x3x3 max pool stride 2;
``layer1``-``layer4`` of bottlenecks (1x1x1 -> 3x3x3 (stride) -> 1x1x1, expansion 4; the first block of
each layer has a ``downsample`` = 1x1x1 conv + BN, shortcut type B); ``fc`` 2048 -> 400. In the file every
key carries the DataParallel prefix ``module.`` and the tensors sit under ``{"state_dict": ...}``; the
loader strips both.

:meth:`features` returns the 2048-d average-pooled activations before ``fc`` (what FID-VID compares). At the
trained input size the last map is 1x4x4 and Hara's fixed ``AvgPool3d((1, 4, 4))`` equals the global mean
taken here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Bottleneck3D(nn.Module):
    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1):
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = nn.Conv3d(in_channels, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = nn.Conv3d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = nn.Conv3d(planes, out_channels, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm3d(out_channels)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv3d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm3d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut)


class ResNet3D50(nn.Module):
    """Hara et al.'s 3D ResNet-50; input (B, 3, T, H, W), RGB 0..255 minus the ActivityNet mean."""

    LAYERS = (3, 4, 6, 3)
    PLANES = (64, 128, 256, 512)
    FEATURE_DIM = 2048
    NUM_CLASSES = 400
    CLIP_LENGTH = 16
    INPUT_SIZE = 112
    MEAN = (114.7748, 107.7354, 99.4750)

    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.conv1 = nn.Conv3d(3, 64, kernel_size=7, stride=(1, 2, 2), padding=3, bias=False)
        self.bn1 = nn.BatchNorm3d(64)
        self.maxpool = nn.MaxPool3d(kernel_size=3, stride=2, padding=1)
        in_channels = 64
        for index, (blocks, planes) in enumerate(zip(self.LAYERS, self.PLANES)):
            stride = 1 if index == 0 else 2
            layer = []
            for b in range(blocks):
                layer.append(Bottleneck3D(in_channels, planes, stride if b == 0 else 1))
                in_channels = planes * Bottleneck3D.expansion
            setattr(self, f"layer{index + 1}", nn.Sequential(*layer))
        self.fc = nn.Linear(self.FEATURE_DIM, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) -> (B, 2048)."""
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean(dim=(2, 3, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))
