"""The appearance encoder: a copy of the SD1.5 UNet that only produces reference banks.

It is a diffusers ``UNet2DConditionModel`` with its dead tail removed, as in the released MagicAnimate
weights: no ``conv_norm_out``/``conv_out``, and the last transformer block of the last up block reduced to its
``norm1`` (that attention's ``proj_out`` is gone too) -- 24 tensors fewer than SD1.5. The forward stops at
that ``norm1``: nothing after it influences the banks.

The banks are the inputs of the self-attentions (``norm1`` outputs) of the mid- and up-block transformer
blocks, recorded by :class:`~magicanimate.models.reference_attention.ReferenceWriterProcessor` during the
call and returned in reader order.
"""

from __future__ import annotations

import functools


import torch
from torch import nn

from diffusers import UNet2DConditionModel
from diffusers.models.transformers.transformer_2d import Transformer2DModel

from ..errors import ConfigError, InputError
from .pretrained import StrictPretrainedMixin
from .context import context_preserving_checkpoint, forward_context
from .reference_attention import install_reference_processors
from .state_dicts import check_keys, expected_shapes, load_strict
from .unet3d import unet3d_config_from_unet2d

TRIMMED_BLOCK_PARTS = ("attn1", "norm2", "attn2", "norm3", "ff")


class BankNorm(nn.Module):
    """What is left of the last transformer block: its ``norm1``, whose output is the last bank.

    It is a module of its own that is *called*, so that wrappers which gather sharded weights in a forward
    hook (FSDP) see it run; its state-dict keys are the trimmed block's (``<block>.norm1.*``)."""

    attn1 = None  # no self-attention: reference_block_names still finds it, processors skip it

    def __init__(self, norm1: nn.Module) -> None:
        super().__init__()
        self.norm1 = norm1

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.norm1(tokens)


class AppearanceEncoderModel(StrictPretrainedMixin, UNet2DConditionModel):
    """SD1.5-layout UNet trimmed to what the reference banks need (config = ``UNet2DConditionModel``'s).

    forward(ref_latent (B, 4, h, w), timestep, encoder_hidden_states (B, L, D)) -> list of banks
    ``(B, L_i, C_i)``, one per reader block of the denoiser, in reader order (``self.reference_block_names``).
    """

    # Same config (signature) as UNet2DConditionModel: ConfigMixin reads it through functools.wraps.
    @functools.wraps(UNet2DConditionModel.__init__)
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Unsupported UNet2D features fail here rather than being silently ignored by our forward.
        unet3d_config_from_unet2d(dict(self.config))
        last_up = self.up_blocks[-1]
        attentions = getattr(last_up, "attentions", None)
        if not attentions or getattr(last_up, "upsamplers", None) is not None:
            raise ConfigError("appearance encoder: the last up block must be a cross-attention block without "
                              "upsampler (SD layout)")
        last_attn = attentions[-1]
        if not isinstance(last_attn, Transformer2DModel) or not last_attn.is_input_continuous:
            raise ConfigError("appearance encoder: unsupported transformer type in the last up block")
        last_attn.transformer_blocks[-1] = BankNorm(last_attn.transformer_blocks[-1].norm1)
        last_attn.proj_out = None
        self.conv_norm_out = None
        self.conv_act = None
        self.conv_out = None
        self.reference_block_names = install_reference_processors(self, "writer")

    @classmethod
    def from_unet2d(cls, unet2d: UNet2DConditionModel) -> "AppearanceEncoderModel":
        """Copy of a diffusers UNet (e.g. SD1.5's) with the dead tail dropped."""
        model = cls.from_config({k: v for k, v in unet2d.config.items() if not k.startswith("_")})
        if unet2d.dtype != model.dtype:
            model.to(dtype=unet2d.dtype)
        state = model.adapt_checkpoint(unet2d.state_dict(), source="UNet state dict")
        load_strict(model, state, source="UNet state dict", what="the appearance encoder")
        return model

    def adapt_checkpoint(self, state_dict: dict, *, source: str) -> dict:
        """A full UNet's weights (SD1.5, or a released file that kept them) lose the dead tail; every other
        difference from this model's keys is left for the strict check to report."""
        ours = expected_shapes(self)
        dead = set(state_dict) - set(ours)
        if not dead:
            return state_dict
        last = self.reference_block_names_last
        tail = tuple(f"{last}.{part}." for part in TRIMMED_BLOCK_PARTS)
        tail_proj = last.rsplit(".transformer_blocks", 1)[0] + ".proj_out."
        legit = {k for k in dead if k.startswith(tail) or k.startswith(tail_proj)
                 or k.startswith(("conv_norm_out.", "conv_out."))}
        check_keys(ours, {k: v for k, v in state_dict.items() if k not in legit}, source=source,
                   what="the appearance encoder")
        return {k: v for k, v in state_dict.items() if k in ours}

    # processors: the writers stay wrapped around whatever processor is set
    def set_attn_processor(self, processor) -> None:
        super().set_attn_processor(processor)
        install_reference_processors(self, "writer")

    def enable_xformers_memory_efficient_attention(self, attention_op=None) -> None:
        super().enable_xformers_memory_efficient_attention(attention_op)
        install_reference_processors(self, "writer")

    def disable_xformers_memory_efficient_attention(self) -> None:
        super().disable_xformers_memory_efficient_attention()
        install_reference_processors(self, "writer")

    def enable_gradient_checkpointing(self, gradient_checkpointing_func=None) -> None:
        super().enable_gradient_checkpointing(context_preserving_checkpoint(gradient_checkpointing_func))

    def forward(self, ref_latent: torch.Tensor, timestep: torch.Tensor | int | float,
                encoder_hidden_states: torch.Tensor) -> list[torch.Tensor]:
        """Reference banks for ``ref_latent`` (B, C, h, w) at ``timestep``, in reader order."""
        if ref_latent.ndim != 4:
            raise InputError(f"ref_latent must be (B, C, h, w), got shape {tuple(ref_latent.shape)}")
        batch = ref_latent.shape[0]
        if encoder_hidden_states.shape[0] != batch:
            raise InputError(f"encoder_hidden_states batch {encoder_hidden_states.shape[0]} != ref_latent batch "
                             f"{batch}")
        emb = self.time_embedding(self.get_time_embed(sample=ref_latent, timestep=timestep))
        ctx_kw = dict(temb=emb, encoder_hidden_states=encoder_hidden_states)
        sink: dict[str, torch.Tensor] = {}
        with forward_context(bank_sink=sink):
            h = self.conv_in(ref_latent)
            skips: tuple[torch.Tensor, ...] = (h,)
            for block in self.down_blocks:
                if getattr(block, "has_cross_attention", False):
                    h, res = block(hidden_states=h, **ctx_kw)
                else:
                    h, res = block(hidden_states=h, temb=emb)
                skips += res
            h = self.mid_block(h, emb, encoder_hidden_states=encoder_hidden_states)
            for i, block in enumerate(self.up_blocks):
                n_res = len(block.resnets)
                res, skips = skips[-n_res:], skips[:-n_res]
                if i < len(self.up_blocks) - 1:
                    size = skips[-1].shape[2:]
                    if getattr(block, "has_cross_attention", False):
                        h = block(hidden_states=h, res_hidden_states_tuple=res, upsample_size=size, **ctx_kw)
                    else:
                        h = block(hidden_states=h, res_hidden_states_tuple=res, temb=emb, upsample_size=size)
                else:
                    self._last_block_banks(block, h, res, emb, encoder_hidden_states, sink)
        missing = [n for n in self.reference_block_names if n not in sink]
        if missing:  # a writer processor was replaced behind our back (e.g. attn.set_processor)
            raise RuntimeError(f"appearance encoder: no bank recorded for {missing}")
        return [sink[n] for n in self.reference_block_names]

    def _last_block_banks(self, block: nn.Module, h, res, emb, context, sink) -> None:
        """Run the last up block up to the ``norm1`` of its last transformer block, recording its bank."""
        pairs = list(zip(block.resnets, block.attentions))
        for j, (resnet, attn) in enumerate(pairs):
            h = torch.cat([h, res[-1 - j]], dim=1)
            if torch.is_grad_enabled() and block.gradient_checkpointing:
                h = block._gradient_checkpointing_func(resnet, h, emb)
            else:
                h = resnet(h, emb)
            if j < len(pairs) - 1:
                h = attn(h, encoder_hidden_states=context, return_dict=False)[0]
                continue
            tokens, _ = attn._operate_on_continuous_inputs(h)
            for tb in attn.transformer_blocks[:-1]:
                tokens = tb(tokens, encoder_hidden_states=context)
            sink[self.reference_block_names_last] = attn.transformer_blocks[-1](tokens)

    @property
    def reference_block_names_last(self) -> str:
        block = len(self.up_blocks) - 1
        attn = len(self.up_blocks[-1].attentions) - 1
        tb = len(self.up_blocks[-1].attentions[-1].transformer_blocks) - 1
        return f"up_blocks.{block}.attentions.{attn}.transformer_blocks.{tb}"
