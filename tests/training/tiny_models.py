"""A tiny Stable-Diffusion-layout base model folder, built by the tests (no downloads)."""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from safetensors.torch import save_file

TEXT_DIM = 16


def make_tiny_base(folder: Path, seed: int = 0) -> Path:
    """<folder>/{unet,vae}/ + prompt_embeds.safetensors: UNet 2 levels of 32 channels, VAE x8, text 16 wide."""
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=4, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 32),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=TEXT_DIM, attention_head_dim=4, norm_num_groups=8)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1, norm_num_groups=4,
        block_out_channels=(4, 4, 4, 4), down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, sample_size=32)
    unet.save_pretrained(str(folder / "unet"))
    vae.save_pretrained(str(folder / "vae"))
    save_file({"prompt_embeds": torch.randn(1, 8, TEXT_DIM)}, str(folder / "prompt_embeds.safetensors"))
    return folder
