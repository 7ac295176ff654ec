"""Fixtures for the model tests: golden models loaded through the same loaders users call."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from magicanimate.models import UNet3DMotionModel
from magicanimate.models.checkpoints import (
    load_appearance_encoder,
    load_controlnet,
    load_motion_modules,
    unet3d_config_from_original,
)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny models gain nothing from intra-op threads, and on a shared 2-core machine OpenMP's spinning
    threads make each forward 10-100x slower than one thread does."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def diffusers_folder(tmp: Path, config: Path, weights: Path) -> Path:
    """A folder laid out like the official ones (config.json + diffusion_pytorch_model.safetensors)."""
    tmp.mkdir(parents=True, exist_ok=True)
    os.symlink(config, tmp / "config.json")
    os.symlink(weights, tmp / "diffusion_pytorch_model.safetensors")
    return tmp


@pytest.fixture(scope="session")
def golden_unet3d(golden_dir: Path) -> UNet3DMotionModel:
    config = json.loads((golden_dir / "unet3d" / "config.json").read_text())
    unet = UNet3DMotionModel.from_config(unet3d_config_from_original(config))
    report = load_motion_modules(unet, golden_dir / "unet3d" / "weights.safetensors")
    assert report.kind == "full"
    return unet.eval()


@pytest.fixture(scope="session")
def golden_appearance_encoder(golden_dir: Path, tmp_path_factory):
    folder = diffusers_folder(tmp_path_factory.mktemp("ae") / "appearance_encoder",
                              golden_dir / "appearance_encoder" / "config.json",
                              golden_dir / "appearance_encoder" / "weights.safetensors")
    return load_appearance_encoder(folder).eval()


@pytest.fixture(scope="session")
def golden_controlnet(golden_dir: Path, tmp_path_factory):
    folder = diffusers_folder(tmp_path_factory.mktemp("cn") / "densepose_controlnet",
                              golden_dir / "controlnet" / "config.json",
                              golden_dir / "controlnet" / "weights.safetensors")
    return load_controlnet(folder).eval()


@pytest.fixture(scope="session")
def golden_io(golden_dir: Path):
    cache: dict[str, dict[str, torch.Tensor]] = {}

    def get(rel: str) -> dict[str, torch.Tensor]:
        if rel not in cache:
            cache[rel] = load_file(str(golden_dir / rel))
        return cache[rel]

    return get
