"""Full-size (SD1.5) models built on the meta device have exactly the original checkpoints' keys and shapes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from diffusers import ControlNetModel

from magicanimate.models import AppearanceEncoderModel, UNet3DMotionModel
from magicanimate.models.checkpoints import unet3d_state_dict_to_original
from magicanimate.models.unet3d import MOTION_KEY

SD15 = dict(cross_attention_dim=768)


def read_manifest(path: Path) -> dict[str, tuple[int, ...]]:
    out = {}
    for line in path.read_text().splitlines():
        if line.strip():
            key, shape = line.split("\t")
            out[key] = tuple(json.loads(shape))
    return out


def shapes(state_dict) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state_dict.items()}


@pytest.fixture(scope="module")
def keys_dir(reference_dir: Path) -> Path:
    return reference_dir / "keys"


@pytest.fixture(scope="module")
def full_unet3d():
    with torch.device("meta"):
        return UNet3DMotionModel(**SD15)


def test_unet3d_keys(full_unet3d, keys_dir):
    expected = read_manifest(keys_dir / "keys_unet3d.txt")
    assert shapes(unet3d_state_dict_to_original(full_unet3d.state_dict())) == expected
    assert len(expected) == 1246


def test_motion_module_keys(full_unet3d, keys_dir):
    expected = read_manifest(keys_dir / "keys_motion_modules.txt")
    ours = {k: v for k, v in full_unet3d.state_dict().items() if MOTION_KEY in k}
    assert shapes(unet3d_state_dict_to_original(ours)) == expected
    assert len(expected) == 560


def test_unet3d_without_motion_modules_has_the_spatial_keys(keys_dir):
    with torch.device("meta"):
        unet = UNet3DMotionModel(**SD15, use_motion_module=False)
    expected = {k: v for k, v in read_manifest(keys_dir / "keys_unet3d.txt").items() if MOTION_KEY not in k}
    assert shapes(unet.state_dict()) == expected


def test_appearance_encoder_keys(keys_dir):
    with torch.device("meta"):
        encoder = AppearanceEncoderModel(**SD15)
    expected = read_manifest(keys_dir / "keys_appearance.txt")
    assert shapes(encoder.state_dict()) == expected
    assert len(expected) == 662


def test_controlnet_keys(keys_dir):
    with torch.device("meta"):
        controlnet = ControlNetModel(**SD15, conditioning_channels=3)
    assert shapes(controlnet.state_dict()) == read_manifest(keys_dir / "keys_controlnet.txt")
