"""AnimateDiff-v1 motion modules on diffusers' ``AnimateDiffTransformer3D``.

The diffusers class holds the same layers as AnimateDiff's ``VanillaTemporalModule`` (GroupNorm, proj_in, one
transformer block of two temporal self-attentions with a sinusoidal position encoding added after their
pre-LayerNorm, GEGLU feed-forward, proj_out, residual). Two things are adapted to match the original:
its GroupNorm becomes per frame with its own group count, and ``proj_out`` starts at zero (identity module).
"""

from __future__ import annotations

from torch import nn

from diffusers.models.unets.unet_motion_model import AnimateDiffTransformer3D

from .norms import PerFrameGroupNorm


def adapt_motion_module(module: AnimateDiffTransformer3D, norm_num_groups: int = 32, zero_init: bool = True) -> None:
    """Give a diffusers motion module the original's per-frame GroupNorm (eps 1e-6) and zero ``proj_out``."""
    old = module.norm
    module.norm = PerFrameGroupNorm(norm_num_groups, module.in_channels, eps=1e-6, affine=True,
                                    device=old.weight.device, dtype=old.weight.dtype)
    if zero_init:
        nn.init.zeros_(module.proj_out.weight)
        nn.init.zeros_(module.proj_out.bias)


def build_motion_module(channels: int, *, num_attention_heads: int = 8, num_transformer_blocks: int = 1,
                        max_seq_length: int = 24, norm_num_groups: int = 32) -> AnimateDiffTransformer3D:
    """One standalone motion module, built exactly as the 3D UNet builds its 20.

    Call it as ``module(x, num_frames=F)`` on frames folded into the batch, ``x`` of shape ``(b*f, C, h, w)``.
    """
    module = AnimateDiffTransformer3D(
        num_attention_heads=num_attention_heads, attention_head_dim=channels // num_attention_heads,
        in_channels=channels, num_layers=num_transformer_blocks, norm_num_groups=norm_num_groups,
        attention_bias=False, activation_fn="geglu", positional_embeddings="sinusoidal",
        num_positional_embeddings=max_seq_length, double_self_attention=True)
    adapt_motion_module(module, norm_num_groups)
    return module
