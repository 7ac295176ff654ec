"""The DensePose ControlNet: a stock diffusers ``ControlNetModel`` (3 conditioning channels, RGB in [0, 1])
run per frame, with its residuals reshaped for the 3D UNet."""

from __future__ import annotations

from typing import Sequence

import torch

from diffusers import ControlNetModel, UNet2DConditionModel

from ..errors import InputError
from .unet3d import fold_frames, unfold_frames


def build_densepose_controlnet(unet2d: UNet2DConditionModel,
                               conditioning_embedding_out_channels: Sequence[int] = (16, 32, 96, 256),
                               ) -> ControlNetModel:
    """A new DensePose ControlNet initialised from a UNet (diffusers ``ControlNetModel.from_unet``).

    Its encoder copies the UNet's; the zero convolutions start at zero, so it adds nothing until trained.
    """
    return ControlNetModel.from_unet(unet2d, conditioning_embedding_out_channels=tuple(conditioning_embedding_out_channels),
                                     load_weights_from_unet=True, conditioning_channels=3)


def controlnet_residuals(controlnet: ControlNetModel, sample: torch.Tensor, timestep: torch.Tensor | int,
                         encoder_hidden_states: torch.Tensor, cond: torch.Tensor,
                         conditioning_scale: float = 1.0) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Run the ControlNet on every frame and return its residuals as 5-D tensors for the 3D UNet.

    sample: noisy latents (B, 4, F, h, w); timestep: int, 0-dim or (B,) tensor; encoder_hidden_states:
    (B, L, D) (repeated per frame); cond: control frames (B, 3, F, H, W) in [0, 1] (H = 8h for SD).
    Returns (12 down residuals (B, C_i, F, h_i, w_i), mid residual (B, C, F, h', w')).
    """
    if sample.ndim != 5 or cond.ndim != 5:
        raise InputError(f"sample and cond must be 5-D (B, C, F, h, w); got {tuple(sample.shape)} and "
                         f"{tuple(cond.shape)}")
    b, _, f = sample.shape[:3]
    if cond.shape[0] != b or cond.shape[2] != f or cond.shape[1] != 3:
        raise InputError(f"cond shape {tuple(cond.shape)} does not match sample {tuple(sample.shape)} "
                         f"(expected (B, 3, F, H, W))")
    lo, hi = float(cond.min()), float(cond.max())
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise InputError(f"control frames must be RGB in [0, 1]; got values in [{lo:.3g}, {hi:.3g}]")
    t = torch.as_tensor(timestep, device=sample.device)
    if t.ndim == 0:
        t = t[None].expand(b)
    down, mid = controlnet(
        fold_frames(sample),
        t.repeat_interleave(f),
        encoder_hidden_states=encoder_hidden_states.repeat_interleave(f, dim=0),
        controlnet_cond=fold_frames(cond).to(sample.dtype),
        conditioning_scale=conditioning_scale,
        return_dict=False,
    )
    return [unfold_frames(r, f) for r in down], unfold_frames(mid, f)
