"""GroupNorm variants for video tensors whose frames are folded into the batch.

The original MagicAnimate UNet normalises its ResNet GroupNorms and ``conv_norm_out`` over the whole window
(statistics per sample and group over frames x height x width), while its motion modules normalise every
frame on its own. diffusers' stock modules do the reverse, so both behaviours are provided here as drop-in
``nn.GroupNorm`` subclasses (same parameters, same state-dict keys).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .context import current_context


def _group_norm(x: torch.Tensor, norm: nn.GroupNorm) -> torch.Tensor:
    """``F.group_norm``, also where a group holds a single value (a 1x1 map with one channel per group, one
    sample): torch refuses that case, whose normalised value is exactly 0, so the output is the bias."""
    per_group = x.shape[1] // norm.num_groups * x[0, 0].numel()
    if per_group > 1:
        return F.group_norm(x, norm.num_groups, norm.weight, norm.bias, norm.eps)
    out = torch.zeros_like(x)
    if norm.affine:
        out = out + norm.bias.view(1, -1, *([1] * (x.ndim - 2)))
    return out


class WindowGroupNorm(nn.GroupNorm):
    """GroupNorm over all frames of a window, for inputs shaped ``(b*f, C, H, W)``.

    The frame count comes from the current :class:`~magicanimate.models.context.ForwardContext`. With no
    frame count (outside a video forward) or ``per_frame=True`` it is an ordinary per-frame GroupNorm, the
    documented alternative (diffusers' ``UNetMotionModel`` / AnimateDiff v2 behaviour).
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True,
                 per_frame: bool = False, device=None, dtype=None):
        super().__init__(num_groups, num_channels, eps=eps, affine=affine, device=device, dtype=dtype)
        self.per_frame = per_frame

    @classmethod
    def from_group_norm(cls, norm: nn.GroupNorm, per_frame: bool = False) -> "WindowGroupNorm":
        new = cls(norm.num_groups, norm.num_channels, eps=norm.eps, affine=norm.affine, per_frame=per_frame,
                  device=norm.weight.device if norm.affine else None,
                  dtype=norm.weight.dtype if norm.affine else None)
        if norm.affine and norm.weight.device.type != "meta":
            with torch.no_grad():
                new.weight.copy_(norm.weight)
                new.bias.copy_(norm.bias)
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = current_context().num_frames
        if self.per_frame or frames is None or frames == 1:
            return _group_norm(x, self)
        bf, c = x.shape[:2]
        if bf % frames:
            raise ValueError(f"batch {bf} is not a multiple of the frame count {frames}")
        spatial = x.shape[2:]
        # (b f) c ... -> b c f ... so group statistics span all frames of each sample.
        video = x.reshape(bf // frames, frames, c, *spatial).transpose(1, 2)
        out = _group_norm(video, self)
        return out.transpose(1, 2).reshape(x.shape)

    def extra_repr(self) -> str:
        return super().extra_repr() + (", per_frame=True" if self.per_frame else ", window")


class PerFrameGroupNorm(nn.GroupNorm):
    """GroupNorm applied to every frame separately, for inputs shaped ``(b, C, f, H, W)``.

    This is the motion modules' norm in AnimateDiff v1 / MagicAnimate (diffusers' ``AnimateDiffTransformer3D``
    normalises over all frames instead).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5:
            return _group_norm(x, self)
        b, c, f = x.shape[:3]
        frames = x.transpose(1, 2).reshape(b * f, c, *x.shape[3:])
        out = _group_norm(frames, self)
        return out.reshape(b, f, c, *x.shape[3:]).transpose(1, 2)
