"""A tiny random MagicAnimatePipeline (SD1.5 block layout at toy width) for tests and benchmarks.

Layers that start at zero in a fresh model (motion-module ``proj_out``, ControlNet zero convolutions) are
given small random values, so that every component influences the output.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel

from magicanimate.pipelines.scheduling import make_scheduler


def _wake_zero_parameters(model: torch.nn.Module, generator: torch.Generator, std: float = 0.05) -> None:
    with torch.no_grad():
        for p in model.parameters():
            if p.numel() and not p.any():
                p.copy_(torch.randn(p.shape, generator=generator) * std)


def tiny_unet2d(width: int = 32, cross_attention_dim: int = 24, norm_groups: int = 8,
                layers_per_block: int = 1) -> UNet2DConditionModel:
    return UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(width,) * 4,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        layers_per_block=layers_per_block, norm_num_groups=norm_groups, cross_attention_dim=cross_attention_dim,
        attention_head_dim=8)


def tiny_vae(width: int = 16) -> AutoencoderKL:
    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
                         up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(width,) * 4,
                         layers_per_block=1, latent_channels=4, norm_num_groups=8, sample_size=64)


def tiny_pipeline(seed: int = 0, *, width: int = 32, cross_attention_dim: int = 24):
    """Random tiny pipeline; deterministic in ``seed``. Frame sizes must be multiples of 64."""
    from magicanimate.models import AppearanceEncoderModel, UNet3DMotionModel
    from magicanimate.models.controlnet import build_densepose_controlnet
    from magicanimate.pipelines.pipeline_magicanimate import MagicAnimatePipeline

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    base = tiny_unet2d(width, cross_attention_dim)
    unet = UNet3DMotionModel.from_unet2d(base, motion_norm_num_groups=min(32, width))
    encoder = AppearanceEncoderModel.from_unet2d(base)
    controlnet = build_densepose_controlnet(base, conditioning_embedding_out_channels=(8, 16, width, width))
    for model in (unet, encoder, controlnet):
        _wake_zero_parameters(model, gen)
    vae = tiny_vae()
    embeds = torch.randn((1, 77, cross_attention_dim), generator=gen)
    return MagicAnimatePipeline(vae=vae, unet=unet.eval(), appearance_encoder=encoder.eval(),
                                controlnet=controlnet.eval(), scheduler=make_scheduler(), prompt_embeds=embeds)
