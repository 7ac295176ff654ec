"""Lean loading: models built empty and filled tensor by tensor from lazily read files give bit-identical
weights to loading into an allocated model, keep the strict key reports, and never hold the weights twice."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from magicanimate.errors import WeightsError
from magicanimate.models import UNet3DMotionModel
from magicanimate.models.checkpoints import (
    load_appearance_encoder,
    load_motion_modules,
    load_unet3d,
    unet3d_config_from_original,
)
from magicanimate.models.weight_files import LazyTensor, read_state_dict

from .conftest import diffusers_folder

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def golden_full(golden_dir):
    return load_file(str(golden_dir / "unet3d" / "weights.safetensors"))


def _sd_folder(root: Path, golden_dir: Path, spatial: dict) -> Path:
    (root / "unet").mkdir(parents=True)
    (root / "unet" / "config.json").write_text((golden_dir / "unet3d" / "unet2d_config.json").read_text())
    save_file(spatial, str(root / "unet" / "diffusion_pytorch_model.safetensors"))
    return root


@pytest.mark.parametrize("fmt", ["ckpt", "safetensors"])
@pytest.mark.parametrize("dtype", [None, torch.bfloat16])
def test_whole_unet_file_reads_only_the_base_config_and_matches_the_allocating_path(golden_dir, golden_full,
                                                                                  tmp_path, fmt, dtype):
    # the SD folder's weights are garbage of the right shapes: the whole-UNet file must replace every one, and
    # the lean path must not even read them (a truncated file would fail if it did)
    spatial = {k: torch.full_like(v, 7.0) for k, v in golden_full.items() if "motion_modules" not in k}
    sd = _sd_folder(tmp_path / "sd", golden_dir, spatial)
    weights = sd / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    path = tmp_path / f"temporal_attention.{fmt}"
    if fmt == "ckpt":
        torch.save({"state_dict": {f"module.{k}": v for k, v in golden_full.items()}}, path)
    else:
        save_file({k: v.contiguous() for k, v in golden_full.items()}, str(path))
    lean = load_unet3d(sd, path, torch_dtype=dtype)
    config = json.loads((golden_dir / "unet3d" / "config.json").read_text())
    reference = UNet3DMotionModel.from_config(unet3d_config_from_original(config))
    load_motion_modules(reference, path)
    if dtype is not None:
        reference.to(dtype)
    ours, theirs = lean.state_dict(), reference.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) and ours[k].dtype == theirs[k].dtype for k in ours)
    assert not any(t.is_meta for t in ours.values())


def test_lean_loading_names_missing_unexpected_and_misshaped_keys(golden_dir, golden_full, tmp_path):
    spatial = {k: v for k, v in golden_full.items() if "motion_modules" not in k}
    sd = _sd_folder(tmp_path / "sd", golden_dir, spatial)
    broken = dict(golden_full)
    gone = "up_blocks.1.resnets.0.conv1.weight"
    broken.pop(gone)
    broken["mid_block.extra.weight"] = torch.zeros(3)
    pe = next(k for k in broken if k.endswith("attention_blocks.0.pos_encoder.pe"))
    broken[pe.replace("attention_blocks.0", "attention_blocks.1")] = broken[pe][:, :10].clone()
    broken[pe] = broken[pe][:, :10].clone()
    save_file({k: v.contiguous() for k, v in broken.items()}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(WeightsError) as err:
        load_unet3d(sd, tmp_path / "bad.safetensors")
    msg = str(err.value)
    assert gone in msg and "mid_block.extra.weight" in msg and "bad.safetensors" in msg
    assert pe in msg and "!= expected" in msg


def test_lazy_reader_reads_data_only_when_placed(golden_full, tmp_path):
    save_file({k: v.contiguous() for k, v in golden_full.items()}, str(tmp_path / "w.safetensors"))
    lazy = read_state_dict(tmp_path / "w.safetensors")
    assert all(isinstance(v, LazyTensor) for v in lazy.values())
    key = next(iter(golden_full))
    assert lazy[key].shape == golden_full[key].shape
    assert torch.equal(lazy[key].materialize(), golden_full[key])
    assert lazy[key].materialize(torch.bfloat16).dtype == torch.bfloat16


def test_appearance_encoder_folder_with_the_full_unet_weights(golden_dir, tmp_path, golden_appearance_encoder):
    folder = diffusers_folder(tmp_path / "ae", golden_dir / "appearance_encoder" / "config.json",
                              golden_dir / "appearance_encoder" / "weights.safetensors")
    lean = load_appearance_encoder(folder, torch_dtype=torch.bfloat16)
    expected = golden_appearance_encoder.state_dict()
    assert all(torch.equal(v, expected[k].to(torch.bfloat16)) for k, v in lean.state_dict().items())


def test_load_never_holds_the_weights_twice(tmp_path):
    """In a fresh process: the peak resident memory added by loading a ~150 MB whole-UNet pickle stays within
    1.3x of the weights (allocating the model, then reading the file, holds them twice and more)."""
    write = f"""
import json, torch
from diffusers import UNet2DConditionModel
from magicanimate.models import UNet3DMotionModel
from magicanimate.models.checkpoints import unet3d_state_dict_to_original
root = {str(tmp_path)!r}
unet2d = UNet2DConditionModel(block_out_channels=(128, 256, 512, 512), cross_attention_dim=256)
unet2d.save_config(root + "/sd/unet")
unet = UNet3DMotionModel.from_unet2d(unet2d)
torch.save(unet3d_state_dict_to_original(unet.state_dict()), root + "/ta.ckpt")
print(sum(t.numel() * t.element_size() for t in unet.state_dict().values()))
"""
    load = f"""
import json
from magicanimate.models.checkpoints import load_unet3d
from magicanimate.utils.memory import current_rss, peak_rss, reset_peak_rss
root = {str(tmp_path)!r}
base = current_rss()
reset_peak_rss()
unet = load_unet3d(root + "/sd", root + "/ta.ckpt")
print(peak_rss() - base)
"""
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=REPO)
            for code in (write, load)]
    for proc in runs:
        assert proc.returncode == 0, proc.stderr[-3000:]
    nbytes, added = (int(proc.stdout.strip().splitlines()[-1]) for proc in runs)
    assert nbytes > 100e6
    assert added < 1.3 * nbytes, (added / nbytes)
    print(f"load added {added / nbytes:.2f}x the weights")
