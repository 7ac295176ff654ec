"""Tiny model configurations for tests (other widths, groups, heads than the golden set)."""

from __future__ import annotations

import torch
from diffusers import UNet2DConditionModel
from torch import nn

# Deliberately unlike golden set A: unequal widths, 2 levels, other group/head counts, linear projection.
TINY_CONFIGS = {
    "two_levels": dict(
        unet2d=dict(block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=4, cross_attention_dim=12,
                    attention_head_dim=2, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), sample_size=16),
        motion=dict(motion_num_attention_heads=4, motion_norm_num_groups=8, motion_max_seq_length=10),
        frames=5, latent=(8, 12)),
    "three_levels_linear": dict(
        unet2d=dict(block_out_channels=(8, 16, 24), layers_per_block=2, norm_num_groups=8, cross_attention_dim=16,
                    attention_head_dim=(2, 4, 4), use_linear_projection=True,
                    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), sample_size=16),
        motion=dict(motion_num_attention_heads=2, motion_norm_num_groups=4, motion_max_seq_length=6),
        frames=6, latent=(12, 8)),
}


def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Make every layer matter: random norm affines and non-zero zero-initialised layers."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1 and ("norm" in name) and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            elif p.ndim == 1 and "norm" in name:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif "proj_out" in name or "controlnet_" in name:
                bound = 1 / max(1, p[0].numel()) ** 0.5 if p.ndim > 1 else 0.1
                p.uniform_(-bound, bound, generator=g)
    return model


def tiny_unet2d(name: str, seed: int = 0) -> UNet2DConditionModel:
    torch.manual_seed(seed)
    return randomize_(UNet2DConditionModel(**TINY_CONFIGS[name]["unet2d"]), seed).eval()


def inputs(name: str, batch: int = 2, seed: int = 1, frames: int | None = None):
    cfg = TINY_CONFIGS[name]
    g = torch.Generator().manual_seed(seed)
    f = frames or cfg["frames"]
    h, w = cfg["latent"]
    sample = torch.randn(batch, 4, f, h, w, generator=g)
    context = torch.randn(batch, 7, cfg["unet2d"]["cross_attention_dim"], generator=g)
    ref = torch.randn(batch, 4, h, w, generator=g)
    return sample, torch.tensor(321), context, ref
