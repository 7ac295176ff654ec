"""Config conversion from the original formats, and clear errors for what is not supported."""

from __future__ import annotations

import json

import pytest
import torch

from magicanimate.errors import ConfigError
from magicanimate.models import AppearanceEncoderModel, UNet3DMotionModel
from magicanimate.models.checkpoints import load_unet3d_folder, unet3d_config_from_original
from magicanimate.models.unet3d import unet3d_config_from_unet2d

from .conftest import diffusers_folder


@pytest.fixture(scope="module")
def original_configs(golden_dir):
    d = golden_dir / "unet3d"
    return (json.loads((d / "config.json").read_text()), json.loads((d / "unet2d_config.json").read_text()),
            json.loads((d / "unet_additional_kwargs.json").read_text()))


def test_both_original_config_forms_agree(original_configs):
    config3d, config2d, additional = original_configs
    a = unet3d_config_from_original(config3d)
    b = unet3d_config_from_original(config2d, additional)
    assert {k: a[k] for k in b} == b
    assert a["motion_max_seq_length"] == config3d["motion_module_kwargs"]["temporal_position_encoding_max_len"]
    assert a["motion_num_attention_heads"] == config3d["motion_module_kwargs"]["num_attention_heads"]
    # the translated original config builds the model
    unet = UNet3DMotionModel.from_config(a)
    assert list(unet.config.down_block_types) == a["down_block_types"]
    assert unet.config.norm_num_groups == config3d["norm_num_groups"]
    assert unet.config.motion_norm_num_groups == 32  # the original hard-codes it


def test_unet3d_folder_loader_accepts_an_original_folder(golden_dir, tmp_path, golden_unet3d):
    folder = diffusers_folder(tmp_path / "unet", golden_dir / "unet3d" / "config.json",
                              golden_dir / "unet3d" / "weights.safetensors")
    unet = load_unet3d_folder(folder)
    ours = golden_unet3d.state_dict()
    assert all(torch.equal(v, ours[k]) for k, v in unet.state_dict().items())


@pytest.mark.parametrize("key, value", [
    ("motion_module_mid_block", True),
    ("motion_module_decoder_only", True),
    ("unet_use_cross_frame_attention", True),
    ("motion_module_type", "Conv"),
])
def test_unsupported_original_options(original_configs, key, value):
    config3d = dict(original_configs[0])
    config3d[key] = value
    with pytest.raises(ConfigError, match=key if key != "motion_module_type" else "Conv"):
        unet3d_config_from_original(config3d)


def test_unsupported_motion_kwargs(original_configs):
    config3d = json.loads(json.dumps(original_configs[0]))
    config3d["motion_module_kwargs"]["attention_block_types"] = ["Temporal_Self"]
    with pytest.raises(ConfigError, match="attention_block_types"):
        unet3d_config_from_original(config3d)


def test_unsupported_unet2d_features():
    with pytest.raises(ConfigError, match="class_embed_type"):
        unet3d_config_from_unet2d({"class_embed_type": "timestep", "block_out_channels": [32]})
    with pytest.raises(ConfigError, match="addition_embed_type"):
        AppearanceEncoderModel(block_out_channels=(16, 32), norm_num_groups=4, cross_attention_dim=8,
                               down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                               up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), addition_embed_type="text",
                               layers_per_block=1)


def test_motion_groups_must_divide_widths():
    with pytest.raises(ConfigError, match="motion_norm_num_groups"):
        UNet3DMotionModel(block_out_channels=(16, 32), norm_num_groups=4, cross_attention_dim=8,
                          down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                          up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), layers_per_block=1,
                          motion_norm_num_groups=32)
