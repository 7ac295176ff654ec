"""The denoiser: Stable Diffusion 1.5's UNet inflated with AnimateDiff-v1 motion modules.

Built from diffusers' maintained pieces: the spatial blocks are diffusers' ``*BlockMotion`` blocks (ResNet,
spatial transformer and motion module interleaved exactly as in AnimateDiff v1) or, without motion modules,
the plain 2-D blocks; the mid block is ``UNetMidBlock2DCrossAttn`` (no motion module, as in the original).
Three details differ from the stock classes and are set here (docs/architecture.md, "Inflation and norms"):

* ResNet GroupNorms and ``conv_norm_out`` normalise over the whole window
  (:class:`~magicanimate.models.norms.WindowGroupNorm`; ``resnet_norm="frame"`` gives per-frame norms);
* each motion module's GroupNorm is per frame (:class:`~magicanimate.models.norms.PerFrameGroupNorm`) with
  its own group count ``motion_norm_num_groups`` (32 in the original whatever the spatial groups are);
* the spatial self-attentions of the mid and up blocks carry reference-attention readers, attached by name.

Video tensors are ``(B, C, F, h, w)``; inside, frames are folded into the batch as ``(b f)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
from torch import nn

from diffusers import UNet2DConditionModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.attention import AttentionMixin
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.resnet import ResnetBlock2D
from diffusers.models.unets.unet_2d_blocks import (
    CrossAttnDownBlock2D,
    CrossAttnUpBlock2D,
    DownBlock2D,
    UNetMidBlock2DCrossAttn,
    UpBlock2D,
)
from diffusers.models.unets.unet_motion_model import (
    AnimateDiffTransformer3D,
    CrossAttnDownBlockMotion,
    CrossAttnUpBlockMotion,
    DownBlockMotion,
    UpBlockMotion,
)
from diffusers.utils import BaseOutput

from ..errors import ConfigError, InputError
from .pretrained import StrictPretrainedMixin
from .context import context_preserving_checkpoint, forward_context
from .motion_module import adapt_motion_module
from .norms import WindowGroupNorm
from .reference_attention import ReferenceInputs, install_reference_processors, reference_block_names
from .state_dicts import MOTION_KEY, check_keys


_DOWN = {"CrossAttnDownBlock2D": (CrossAttnDownBlock2D, CrossAttnDownBlockMotion),
         "DownBlock2D": (DownBlock2D, DownBlockMotion)}
_UP = {"CrossAttnUpBlock2D": (CrossAttnUpBlock2D, CrossAttnUpBlockMotion),
       "UpBlock2D": (UpBlock2D, UpBlockMotion)}


@dataclass
class UNet3DOutput(BaseOutput):
    """sample: (B, out_channels, F, h, w)."""

    sample: torch.Tensor


def fold_frames(x: torch.Tensor) -> torch.Tensor:
    """(B, C, F, ...) -> ((B F), C, ...)."""
    b, c, f = x.shape[:3]
    return x.transpose(1, 2).reshape(b * f, c, *x.shape[3:])


def unfold_frames(x: torch.Tensor, frames: int) -> torch.Tensor:
    """((B F), C, ...) -> (B, C, F, ...)."""
    bf, c = x.shape[:2]
    return x.reshape(bf // frames, frames, c, *x.shape[2:]).transpose(1, 2)


def _check_layout(c) -> None:
    """Layouts the model does not build raise ConfigError here, naming the setting."""
    n = len(c.block_out_channels)
    if len(c.down_block_types) != n or len(c.up_block_types) != n:
        raise ConfigError("down_block_types, up_block_types and block_out_channels must have equal lengths")
    if c.mid_block_type != "UNetMidBlock2DCrossAttn":
        raise ConfigError(f"mid_block_type {c.mid_block_type!r} is not supported (UNetMidBlock2DCrossAttn only)")
    if c.resnet_norm not in ("window", "frame"):
        raise ConfigError(f"resnet_norm must be 'window' or 'frame', got {c.resnet_norm!r}")
    for t in (*c.down_block_types, *c.up_block_types):
        if t not in _DOWN and t not in _UP:
            raise ConfigError(f"block type {t!r} is not supported (use {sorted(_DOWN) + sorted(_UP)})")
    if c.use_motion_module:
        for ch in c.block_out_channels:
            if ch % c.motion_norm_num_groups or ch % c.motion_num_attention_heads:
                raise ConfigError(
                    f"motion modules: channel width {ch} is not divisible by motion_norm_num_groups="
                    f"{c.motion_norm_num_groups} and motion_num_attention_heads={c.motion_num_attention_heads}")


def _per_block(value, n: int, name: str) -> tuple:
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ConfigError(f"{name} has {len(value)} entries for {n} blocks")
        return tuple(value)
    return (value,) * n


class UNet3DMotionModel(StrictPretrainedMixin, ModelMixin, AttentionMixin, ConfigMixin):
    """SD1.5-layout UNet inflated with AnimateDiff-v1 motion modules (see module docstring).

    Config keys mirror diffusers' ``UNet2DConditionModel`` (2-D block type names; ``attention_head_dim`` in its
    legacy meaning = number of heads, unless ``num_attention_heads`` is given) plus:

    use_motion_module: False builds the spatial-only UNet of training stage 1 (same spatial keys).
    motion_num_attention_heads, motion_num_transformer_blocks: AnimateDiff v1 uses 8 and 1.
    motion_max_seq_length: length of the sinusoidal position encoding = the most frames per window (24).
    motion_norm_num_groups: GroupNorm groups of the motion modules (32 in the original).
    resnet_norm: "window" (original: statistics over all frames) or "frame" (per frame).
    """

    _supports_gradient_checkpointing = True
    _skip_layerwise_casting_patterns = ["norm"]

    @register_to_config
    def __init__(
        self,
        sample_size: int | None = None,
        in_channels: int = 4,
        out_channels: int = 4,
        flip_sin_to_cos: bool = True,
        freq_shift: int = 0,
        down_block_types: Sequence[str] = ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                           "CrossAttnDownBlock2D", "DownBlock2D"),
        mid_block_type: str = "UNetMidBlock2DCrossAttn",
        up_block_types: Sequence[str] = ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                                         "CrossAttnUpBlock2D"),
        block_out_channels: Sequence[int] = (320, 640, 1280, 1280),
        layers_per_block: int = 2,
        downsample_padding: int = 1,
        mid_block_scale_factor: float = 1.0,
        act_fn: str = "silu",
        norm_num_groups: int = 32,
        norm_eps: float = 1e-5,
        cross_attention_dim: int = 768,
        attention_head_dim: int | Sequence[int] = 8,
        num_attention_heads: int | Sequence[int] | None = None,
        transformer_layers_per_block: int = 1,
        use_linear_projection: bool = False,
        only_cross_attention: bool = False,
        upcast_attention: bool = False,
        resnet_time_scale_shift: str = "default",
        use_motion_module: bool = True,
        motion_num_attention_heads: int = 8,
        motion_num_transformer_blocks: int = 1,
        motion_max_seq_length: int = 24,
        motion_norm_num_groups: int = 32,
        resnet_norm: str = "window",
    ):
        super().__init__()
        _check_layout(self.config)
        heads = _per_block(num_attention_heads or attention_head_dim, len(block_out_channels), "attention_head_dim")
        temb = block_out_channels[0] * 4
        self.conv_in = nn.Conv2d(in_channels, block_out_channels[0], kernel_size=3, padding=1)
        self.time_proj = Timesteps(block_out_channels[0], flip_sin_to_cos, freq_shift)
        self.time_embedding = TimestepEmbedding(block_out_channels[0], temb, act_fn=act_fn)
        common = dict(temb_channels=temb, resnet_eps=norm_eps, resnet_act_fn=act_fn,
                      resnet_groups=norm_num_groups, resnet_time_scale_shift=resnet_time_scale_shift)
        motion_kw = dict(temporal_num_attention_heads=motion_num_attention_heads,
                         temporal_max_seq_length=motion_max_seq_length,
                         temporal_transformer_layers_per_block=motion_num_transformer_blocks) if use_motion_module else {}
        self.down_blocks = self._down_blocks(heads, common, motion_kw)
        self.mid_block = UNetMidBlock2DCrossAttn(
            in_channels=block_out_channels[-1], output_scale_factor=mid_block_scale_factor,
            cross_attention_dim=cross_attention_dim, num_attention_heads=heads[-1],
            use_linear_projection=use_linear_projection, upcast_attention=upcast_attention,
            transformer_layers_per_block=transformer_layers_per_block, **common)
        self.up_blocks = self._up_blocks(heads, common, motion_kw)
        self.conv_norm_out = WindowGroupNorm(norm_num_groups, block_out_channels[0], eps=norm_eps,
                                             per_frame=resnet_norm == "frame")
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(block_out_channels[0], out_channels, kernel_size=3, padding=1)
        self._adapt_norms(resnet_norm == "frame", motion_norm_num_groups)
        self.reference_block_names = install_reference_processors(self, "reader")

    def _attention_kwargs(self, kind: str, num_heads: int) -> dict:
        if not kind.startswith("CrossAttn"):
            return {}
        c = self.config
        return dict(num_attention_heads=num_heads, cross_attention_dim=c.cross_attention_dim,
                    use_linear_projection=c.use_linear_projection, only_cross_attention=c.only_cross_attention,
                    upcast_attention=c.upcast_attention, transformer_layers_per_block=c.transformer_layers_per_block)

    def _down_blocks(self, heads, common: dict, motion_kw: dict) -> nn.ModuleList:
        channels, n = self.config.block_out_channels, len(self.config.block_out_channels)
        blocks, out_ch = nn.ModuleList(), channels[0]
        for i, kind in enumerate(self.config.down_block_types):
            if kind not in _DOWN:
                raise ConfigError(f"{kind!r} is not a down block type")
            in_ch, out_ch = out_ch, channels[i]
            cls = _DOWN[kind][1 if self.config.use_motion_module else 0]
            blocks.append(cls(num_layers=self.config.layers_per_block, in_channels=in_ch, out_channels=out_ch,
                              add_downsample=i < n - 1, downsample_padding=self.config.downsample_padding,
                              **common, **self._attention_kwargs(kind, heads[i]), **motion_kw))
        return blocks

    def _up_blocks(self, heads, common: dict, motion_kw: dict) -> nn.ModuleList:
        rev_ch, rev_heads = list(reversed(self.config.block_out_channels)), list(reversed(heads))
        n, blocks, out_ch = len(rev_ch), nn.ModuleList(), rev_ch[0]
        for i, kind in enumerate(self.config.up_block_types):
            if kind not in _UP:
                raise ConfigError(f"{kind!r} is not an up block type")
            prev, out_ch, in_ch = out_ch, rev_ch[i], rev_ch[min(i + 1, n - 1)]
            cls = _UP[kind][1 if self.config.use_motion_module else 0]
            blocks.append(cls(num_layers=self.config.layers_per_block + 1, in_channels=in_ch, out_channels=out_ch,
                              prev_output_channel=prev, add_upsample=i < n - 1, resolution_idx=i,
                              **common, **self._attention_kwargs(kind, rev_heads[i]), **motion_kw))
        return blocks

    def _adapt_norms(self, per_frame: bool, motion_norm_num_groups: int) -> None:
        """The original's norms: ResNets normalise over the window, motion modules per frame."""
        for module in list(self.modules()):
            if isinstance(module, ResnetBlock2D):
                module.norm1 = WindowGroupNorm.from_group_norm(module.norm1, per_frame=per_frame)
                module.norm2 = WindowGroupNorm.from_group_norm(module.norm2, per_frame=per_frame)
            elif isinstance(module, AnimateDiffTransformer3D):
                adapt_motion_module(module, motion_norm_num_groups)

    # ---- construction -------------------------------------------------------------------------------
    @classmethod
    def from_unet2d(cls, unet2d: UNet2DConditionModel, *, use_motion_module: bool = True,
                    motion_num_attention_heads: int = 8, motion_num_transformer_blocks: int = 1,
                    motion_max_seq_length: int = 24, motion_norm_num_groups: int = 32,
                    resnet_norm: str = "window", load_weights: bool = True) -> "UNet3DMotionModel":
        """Inflate a diffusers ``UNet2DConditionModel``: same spatial config and (strictly) weights.

        Motion modules start as AnimateDiff initialises them (``proj_out`` zero, i.e. identity).
        """
        config = unet3d_config_from_unet2d(dict(unet2d.config))
        config.update(use_motion_module=use_motion_module, motion_num_attention_heads=motion_num_attention_heads,
                      motion_num_transformer_blocks=motion_num_transformer_blocks,
                      motion_max_seq_length=motion_max_seq_length, motion_norm_num_groups=motion_norm_num_groups,
                      resnet_norm=resnet_norm)
        model = cls.from_config(config)
        if unet2d.dtype != model.dtype:
            model.to(dtype=unet2d.dtype)
        if load_weights:
            model.load_spatial_state_dict(unet2d.state_dict(), source="UNet2DConditionModel")
        return model

    def load_spatial_state_dict(self, state_dict: dict, *, source: str) -> None:
        """Strictly load SD-style spatial weights; motion modules are left as they are."""
        spatial = {k: v.shape for k, v in self.state_dict().items() if MOTION_KEY not in k}
        check_keys(spatial, state_dict, source=source, what="the spatial part of the 3D UNet")
        result = self.load_state_dict(dict(state_dict), strict=False)
        assert not result.unexpected_keys

    # ---- parameter groups ---------------------------------------------------------------------------
    def motion_module_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the motion modules (names contain ``motion_modules``)."""
        return (p for name, p in self.named_parameters() if MOTION_KEY in name)

    def spatial_parameters(self) -> Iterator[nn.Parameter]:
        """Every parameter that is not part of a motion module."""
        return (p for name, p in self.named_parameters() if MOTION_KEY not in name)

    # ---- processors ---------------------------------------------------------------------------------
    def set_attn_processor(self, processor) -> None:
        """diffusers' ``set_attn_processor``; the reference readers stay wrapped around the new processors."""
        super().set_attn_processor(processor)
        install_reference_processors(self, "reader")

    def enable_xformers_memory_efficient_attention(self, attention_op=None) -> None:
        super().enable_xformers_memory_efficient_attention(attention_op)
        install_reference_processors(self, "reader")

    def disable_xformers_memory_efficient_attention(self) -> None:
        super().disable_xformers_memory_efficient_attention()
        install_reference_processors(self, "reader")

    def enable_gradient_checkpointing(self, gradient_checkpointing_func=None) -> None:
        """Checkpoint ResNets and transformer blocks; recomputation sees the same frame count and reference."""
        super().enable_gradient_checkpointing(context_preserving_checkpoint(gradient_checkpointing_func))

    # ---- forward --------------------------------------------------------------------------------------
    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | int | float,
        encoder_hidden_states: torch.Tensor,
        down_block_additional_residuals: Sequence[torch.Tensor] | None = None,
        mid_block_additional_residual: torch.Tensor | None = None,
        reference: ReferenceInputs | None = None,
        cross_attention_kwargs: dict | None = None,
        return_dict: bool = True,
    ) -> UNet3DOutput | tuple[torch.Tensor]:
        """Predict noise for a video latent.

        sample: (B, C, F, h, w). timestep: int, 0-dim or (B,) tensor. encoder_hidden_states: (B, L, D),
        repeated over the frames of each sample. down_block_additional_residuals: ControlNet residuals, one
        5-D (B, C_i, F, h_i, w_i) tensor per skip connection (12 for SD1.5), added once all down blocks ran;
        mid_block_additional_residual: (B, C, F, h', w'), added to the mid-block output. reference: banks
        read by the mid/up self-attentions in this call only.
        """
        frames = self._check_call(sample, encoder_hidden_states, reference)
        emb, context = self._conditioning(sample, timestep, encoder_hidden_states)
        h, skips = self._trunk(sample, emb, context, down_block_additional_residuals, cross_attention_kwargs)
        out = self._head(h, skips, emb, context, frames, reference, mid_block_additional_residual,
                         cross_attention_kwargs)
        return UNet3DOutput(sample=out) if return_dict else (out,)

    def forward_guided(self, sample: torch.Tensor, timestep, encoder_hidden_states: torch.Tensor,
                       down_block_additional_residuals: Sequence[torch.Tensor], mid_block_additional_residual,
                       banks: Sequence[torch.Tensor], *, strength: float = 1.0,
                       sequential: bool = False) -> torch.Tensor:
        """Both halves of classifier-free guidance for one batch of latents and text, ``[no reference;
        reference]`` stacked along the batch: (2B, C, F, h, w).

        The halves see the same latents, text and ControlNet residuals and differ only where the reference is
        read (the mid and up blocks), so the input convolution, the time embedding and the down blocks run once
        and their outputs are shared: the same result as :meth:`forward` on the doubled batch, with the down
        path's work halved. ``sequential`` runs the two heads one after the other (less memory).
        """
        frames = self._check_call(sample, encoder_hidden_states, None)
        emb, context = self._conditioning(sample, timestep, encoder_hidden_states)
        h, skips = self._trunk(sample, emb, context, down_block_additional_residuals, None)
        batch = sample.shape[0]
        mid = mid_block_additional_residual
        if sequential:
            plain = self._head(h, skips, emb, context, frames, None, mid, None)
            read = self._head(h, skips, emb, context, frames, ReferenceInputs(banks, strength=strength), mid, None)
            return torch.cat([plain, read])
        double = lambda x: None if x is None else torch.cat([x, x])  # noqa: E731
        mask = torch.tensor([False] * batch + [True] * batch)
        return self._head(double(h), tuple(double(s) for s in skips), double(emb), double(context), frames,
                          ReferenceInputs(banks, read_mask=mask, strength=strength), double(mid), None)

    def _check_call(self, sample, encoder_hidden_states, reference) -> int:
        if sample.ndim != 5:
            raise InputError(f"sample must be (B, C, F, h, w), got shape {tuple(sample.shape)}")
        batch, _, frames = sample.shape[:3]
        cfg = self.config
        if cfg.use_motion_module and frames > cfg.motion_max_seq_length:
            raise InputError(f"{frames} frames exceed the motion modules' position-encoding length "
                             f"{cfg.motion_max_seq_length}: use context windows of at most that many frames")
        if encoder_hidden_states.shape[0] != batch:
            raise InputError(f"encoder_hidden_states batch {encoder_hidden_states.shape[0]} != sample batch {batch}")
        if reference is not None and len(reference.banks) != len(self.reference_block_names):
            raise InputError(f"reference has {len(reference.banks)} banks; this UNet reads "
                             f"{len(self.reference_block_names)}")
        return frames

    def _conditioning(self, sample, timestep, encoder_hidden_states):
        """Time embedding and text per folded frame."""
        batch, _, frames = sample.shape[:3]
        timesteps = torch.as_tensor(timestep, device=sample.device)
        if timesteps.ndim == 0:
            timesteps = timesteps[None]
        emb = self.time_embedding(self.time_proj(timesteps.expand(batch)).to(dtype=sample.dtype))
        return emb.repeat_interleave(frames, dim=0), encoder_hidden_states.repeat_interleave(frames, dim=0)

    def _trunk(self, sample, emb, context, residuals, cross_attention_kwargs):
        """conv_in and the down blocks (no reference is read there); the skips with the residuals added."""
        frames = sample.shape[2]
        motion = dict(num_frames=frames) if self.config.use_motion_module else {}
        with forward_context(num_frames=frames):
            h = self.conv_in(fold_frames(sample))
            skips: tuple[torch.Tensor, ...] = (h,)
            for block in self.down_blocks:
                if getattr(block, "has_cross_attention", False):
                    h, res = block(hidden_states=h, temb=emb, encoder_hidden_states=context,
                                   cross_attention_kwargs=cross_attention_kwargs, **motion)
                else:
                    h, res = block(hidden_states=h, temb=emb, **motion)
                skips += res
        if residuals is not None:
            if len(residuals) != len(skips):
                raise InputError(f"{len(residuals)} down-block residuals given; the UNet has {len(skips)} skip "
                                 "connections")
            skips = tuple(s + fold_frames(r) for s, r in zip(skips, residuals))
        return h, skips

    def _head(self, h, skips, emb, context, frames: int, reference, mid_residual, cross_attention_kwargs):
        """The mid block, the up blocks (where the reference is read) and the output convolution."""
        motion = dict(num_frames=frames) if self.config.use_motion_module else {}
        with forward_context(num_frames=frames, reference=reference):
            h = self.mid_block(h, emb, encoder_hidden_states=context, cross_attention_kwargs=cross_attention_kwargs)
            if mid_residual is not None:
                h = h + fold_frames(mid_residual)
            for block in self.up_blocks:
                n_res = len(block.resnets)
                res, skips = skips[-n_res:], skips[:-n_res]
                size = skips[-1].shape[2:] if skips else None
                if getattr(block, "has_cross_attention", False):
                    h = block(hidden_states=h, res_hidden_states_tuple=res, temb=emb, encoder_hidden_states=context,
                              cross_attention_kwargs=cross_attention_kwargs, upsample_size=size, **motion)
                else:
                    h = block(hidden_states=h, res_hidden_states_tuple=res, temb=emb, upsample_size=size, **motion)
            h = self.conv_out(self.conv_act(self.conv_norm_out(h)))
        return unfold_frames(h, frames)


_UNET2D_UNSUPPORTED = {
    "class_embed_type": None, "num_class_embeds": None, "addition_embed_type": None, "time_cond_proj_dim": None,
    "encoder_hid_dim": None, "encoder_hid_dim_type": None, "dual_cross_attention": False,
    "conv_in_kernel": 3, "conv_out_kernel": 3, "time_embedding_type": "positional", "timestep_post_act": None,
    "time_embedding_act_fn": None, "time_embedding_dim": None, "reverse_transformer_layers_per_block": None,
    "resnet_skip_time_act": False, "resnet_out_scale_factor": 1.0, "attention_type": "default",
    "class_embeddings_concat": False, "mid_block_only_cross_attention": None, "cross_attention_norm": None,
}

_UNET3D_FROM_2D = ("sample_size", "in_channels", "out_channels", "flip_sin_to_cos", "freq_shift", "down_block_types",
                   "up_block_types", "block_out_channels", "layers_per_block", "downsample_padding",
                   "mid_block_scale_factor", "act_fn", "norm_num_groups", "norm_eps", "cross_attention_dim",
                   "attention_head_dim", "num_attention_heads", "transformer_layers_per_block",
                   "use_linear_projection", "only_cross_attention", "upcast_attention", "resnet_time_scale_shift",
                   "mid_block_type")


def unet3d_config_from_unet2d(config: dict) -> dict:
    """Our UNet3D config for the spatial layout of a ``UNet2DConditionModel`` config (unsupported features
    raise :class:`ConfigError`)."""
    for key, ok in _UNET2D_UNSUPPORTED.items():
        if key in config and config[key] != ok and not (isinstance(ok, float) and config[key] == int(ok)):
            raise ConfigError(f"UNet2D config {key}={config[key]!r} is not supported by the 3D UNet (needs {ok!r})")
    out = {k: config[k] for k in _UNET3D_FROM_2D if k in config}
    for key in ("down_block_types", "up_block_types", "block_out_channels"):
        if key in out:
            out[key] = list(out[key])
    if out.get("mid_block_type") is None:
        out.pop("mid_block_type", None)
    tl = out.get("transformer_layers_per_block", 1)
    if isinstance(tl, (list, tuple)):
        if len(set(tl)) != 1:
            raise ConfigError(f"transformer_layers_per_block={tl} (per block) is not supported")
        out["transformer_layers_per_block"] = tl[0]
    return out


__all__ = ["UNet3DMotionModel", "UNet3DOutput", "fold_frames", "unfold_frames", "unet3d_config_from_unet2d",
           "reference_block_names"]
