"""Strict loading of every supported checkpoint format, and the errors for wrong ones."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from diffusers import ControlNetModel
from safetensors.torch import load_file, save_file

from magicanimate.errors import WeightsError
from magicanimate.models import AppearanceEncoderModel, UNet3DMotionModel, build_densepose_controlnet
from magicanimate.models.checkpoints import (
    load_appearance_encoder,
    load_controlnet,
    load_magicanimate,
    load_motion_modules,
    load_sd15_unet2d,
    load_unet3d,
    unet3d_config_from_original,
    unet3d_state_dict_to_original,
)

from .conftest import diffusers_folder
from magicanimate.testing import TINY_CONFIGS, randomize_
from magicanimate.testing import tiny_unet2d_variant as tiny_unet2d

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def golden_weights(golden_dir):
    return load_file(str(golden_dir / "unet3d" / "weights.safetensors"))


@pytest.fixture
def fresh_unet(golden_dir):
    config = json.loads((golden_dir / "unet3d" / "config.json").read_text())
    return UNet3DMotionModel.from_config(unet3d_config_from_original(config))


def _orig(unet):
    return unet3d_state_dict_to_original(unet.state_dict())


def _same(a: dict, b: dict) -> bool:
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_motion_only_file(fresh_unet, golden_weights, tmp_path):
    motion = {k: v for k, v in golden_weights.items() if "motion_modules" in k}
    assert len(motion) == 560
    path = tmp_path / "mm_sd_v15.safetensors"
    save_file(motion, str(path))
    spatial_before = {k: v.clone() for k, v in fresh_unet.state_dict().items() if "motion_modules" not in k}
    report = load_motion_modules(fresh_unet, path)
    assert report.kind == "motion" and report.num_tensors == 560 and report.spatial_max_abs_diff is None
    state = _orig(fresh_unet)
    assert all(torch.equal(state[k], v) for k, v in motion.items())
    after = fresh_unet.state_dict()
    assert all(torch.equal(after[k], v) for k, v in spatial_before.items())


@pytest.mark.parametrize("wrap", ["state_dict+module", "unet", "plain"])
def test_full_pickle_with_wrappers(fresh_unet, golden_weights, tmp_path, wrap):
    if wrap == "state_dict+module":
        obj = {"state_dict": {f"module.{k}": v for k, v in golden_weights.items()}}
    elif wrap == "unet":
        obj = {f"unet.{k}": v for k, v in golden_weights.items()}
    else:
        obj = dict(golden_weights)
    path = tmp_path / "temporal_attention.ckpt"
    torch.save(obj, path)
    report = load_motion_modules(fresh_unet, path)
    assert report.kind == "full" and report.num_tensors == len(golden_weights)
    assert report.spatial_max_abs_diff > 0  # the fresh spatial weights were replaced
    assert _same(_orig(fresh_unet), golden_weights)


def test_wrong_files_say_what_was_expected(fresh_unet, golden_dir, tmp_path):
    with pytest.raises(WeightsError, match=r"expected motion modules.*ControlNet"):
        load_motion_modules(fresh_unet, golden_dir / "controlnet" / "weights.safetensors")
    with pytest.raises(WeightsError, match=r"expected motion modules.*appearance encoder"):
        load_motion_modules(fresh_unet, golden_dir / "appearance_encoder" / "weights.safetensors")
    folder = diffusers_folder(tmp_path / "cn", golden_dir / "controlnet" / "config.json",
                              golden_dir / "unet3d" / "weights.safetensors")
    with pytest.raises(WeightsError, match=r"ControlNetModel \(a 3D UNet / motion modules given\)"):
        load_controlnet(folder)
    with pytest.raises(WeightsError, match="not found"):
        load_motion_modules(fresh_unet, tmp_path / "missing.ckpt")
    (tmp_path / "garbage.ckpt").write_bytes(b"not a pickle")
    with pytest.raises(WeightsError, match="garbage.ckpt: cannot read"):
        load_motion_modules(fresh_unet, tmp_path / "garbage.ckpt")


def test_missing_unexpected_and_misshaped_keys_are_named(fresh_unet, golden_weights, tmp_path):
    motion = {k: v for k, v in golden_weights.items() if "motion_modules" in k}
    gone = "up_blocks.2.motion_modules.1.temporal_transformer.proj_in.weight"
    extra = "mid_block.motion_modules.0.temporal_transformer.norm.weight"
    broken = dict(motion)
    broken.pop(gone)
    broken[extra] = torch.zeros(32)
    save_file(broken, str(tmp_path / "broken.safetensors"))
    with pytest.raises(WeightsError) as err:
        load_motion_modules(fresh_unet, tmp_path / "broken.safetensors")
    msg = str(err.value)
    assert "broken.safetensors" in msg and "missing" in msg and "unexpected" in msg
    assert gone in msg and extra in msg

    # a position encoding of another length (e.g. a 32-frame motion module into a 24-frame model)
    longer = dict(motion)
    for k in [k for k in longer if k.endswith("pos_encoder.pe")]:
        longer[k] = torch.zeros(1, 32, longer[k].shape[-1])
    save_file(longer, str(tmp_path / "pe32.safetensors"))
    with pytest.raises(WeightsError, match=r"pos_encoder\.pe \(1, 32, 32\) != expected \(1, 24, 32\)"):
        load_motion_modules(fresh_unet, tmp_path / "pe32.safetensors")

    # the two stored copies of a position encoding must agree
    skewed = dict(motion)
    key = next(k for k in skewed if k.endswith("attention_blocks.1.pos_encoder.pe"))
    skewed[key] = skewed[key] + 1
    save_file(skewed, str(tmp_path / "skewed.safetensors"))
    with pytest.raises(WeightsError, match="position-encoding buffers"):
        load_motion_modules(fresh_unet, tmp_path / "skewed.safetensors")


def _sd15_folder(root: Path, unet2d, fmt: str) -> Path:
    unet_dir = root / "unet"
    unet_dir.mkdir(parents=True)
    (unet_dir / "config.json").write_text(json.dumps(dict(unet2d.config)))
    if fmt == "bin":
        torch.save(unet2d.state_dict(), unet_dir / "diffusion_pytorch_model.bin")
    else:
        save_file(unet2d.state_dict(), str(unet_dir / "diffusion_pytorch_model.safetensors"))
    return root


@pytest.mark.parametrize("fmt", ["bin", "safetensors"])
def test_sd15_folder_initialises_all_three(tmp_path, fmt):
    name = "two_levels"
    unet2d = tiny_unet2d(name)
    root = _sd15_folder(tmp_path / "sd", unet2d, fmt)
    loaded2d = load_sd15_unet2d(root)
    assert _same(loaded2d.state_dict(), unet2d.state_dict())
    unet = load_unet3d(root, **TINY_CONFIGS[name]["motion"])
    ref = unet2d.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in unet.state_dict().items() if "motion_modules" not in k)
    assert not unet.state_dict().keys() - ref.keys() - {k for k in unet.state_dict() if "motion_modules" in k}
    encoder = AppearanceEncoderModel.from_unet2d(loaded2d)
    assert all(torch.equal(v, ref[k]) for k, v in encoder.state_dict().items())
    assert len(ref) - len(encoder.state_dict()) == 24
    controlnet = build_densepose_controlnet(loaded2d, conditioning_embedding_out_channels=(8, 16))
    assert controlnet.config.conditioning_channels == 3
    assert torch.equal(controlnet.conv_in.weight, unet2d.conv_in.weight)


def test_sd15_folder_strict(tmp_path):
    unet2d = tiny_unet2d("two_levels")
    root = _sd15_folder(tmp_path / "sd", unet2d, "safetensors")
    path = root / "unet" / "diffusion_pytorch_model.safetensors"
    sd = load_file(str(path))
    sd.pop("conv_out.bias")
    save_file(sd, str(path))
    with pytest.raises(WeightsError, match=r"missing key\(s\): conv_out\.bias"):
        load_unet3d(root)
    with pytest.raises(WeightsError, match="config.json not found"):
        load_sd15_unet2d(tmp_path)
    path.unlink()
    with pytest.raises(WeightsError, match="no weight file"):
        load_sd15_unet2d(root)


def test_appearance_folder_accepts_only_the_dead_tail_as_extra(tmp_path):
    unet2d = randomize_(tiny_unet2d("two_levels"))
    full = unet2d.state_dict()
    folder = tmp_path / "ae"
    folder.mkdir()
    config = {**dict(unet2d.config), "_class_name": "AppearanceEncoderModel"}
    (folder / "config.json").write_text(json.dumps(config))
    save_file(full, str(folder / "diffusion_pytorch_model.safetensors"))
    encoder = load_appearance_encoder(folder)  # full UNet weights: the 24 dead tensors are dropped
    assert all(torch.equal(v, full[k]) for k, v in encoder.state_dict().items())
    full["conv_in.extra"] = torch.zeros(1)
    save_file(full, str(folder / "diffusion_pytorch_model.safetensors"))
    with pytest.raises(WeightsError, match=r"unexpected key\(s\): conv_in\.extra"):
        load_appearance_encoder(folder)


def test_appearance_roundtrip(tmp_path, golden_appearance_encoder):
    golden_appearance_encoder.save_pretrained(tmp_path / "ae")
    again = AppearanceEncoderModel.from_pretrained(tmp_path / "ae")
    assert _same(again.state_dict(), golden_appearance_encoder.state_dict())


def test_load_magicanimate_folders_and_converter_cli(golden_dir, golden_weights, tmp_path, capsys):
    """The released layout end to end: SD1.5 folder + official MagicAnimate folder (pickle), then safetensors."""
    unet2d_config = json.loads((golden_dir / "unet3d" / "unet2d_config.json").read_text())
    sd_unet = tmp_path / "sd" / "unet"
    sd_unet.mkdir(parents=True)
    (sd_unet / "config.json").write_text(json.dumps(unet2d_config))
    # SD1.5 stand-in: other spatial weights than the ckpt's, so we see them replaced
    spatial = {k: v + 0.01 for k, v in golden_weights.items() if "motion_modules" not in k}
    save_file(spatial, str(sd_unet / "diffusion_pytorch_model.safetensors"))

    ma = tmp_path / "MagicAnimate"
    diffusers_folder(ma / "appearance_encoder", golden_dir / "appearance_encoder" / "config.json",
                     golden_dir / "appearance_encoder" / "weights.safetensors")
    diffusers_folder(ma / "densepose_controlnet", golden_dir / "controlnet" / "config.json",
                     golden_dir / "controlnet" / "weights.safetensors")
    (ma / "temporal_attention").mkdir()
    torch.save({"state_dict": {f"module.{k}": v for k, v in golden_weights.items()}},
               ma / "temporal_attention" / "temporal_attention.ckpt")

    models = load_magicanimate(tmp_path / "sd", ma)
    assert _same(_orig(models.unet), golden_weights)
    assert isinstance(models.controlnet, ControlNetModel)
    assert len(models.appearance_encoder.state_dict()) == 658

    cli = _convert_cli()
    assert cli.main([str(ma)]) == 0
    converted = load_file(str(ma / "temporal_attention" / "temporal_attention.safetensors"))
    assert _same(converted, golden_weights)
    (ma / "temporal_attention" / "temporal_attention.ckpt").unlink()
    again = load_magicanimate(tmp_path / "sd", ma)  # now from the safetensors file
    assert _same(_orig(again.unet), golden_weights)

    assert cli.main([str(tmp_path / "sd")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no official pickles" in err


def _convert_cli():
    spec = importlib.util.spec_from_file_location("convert_checkpoints", REPO / "scripts" / "convert_checkpoints.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
