"""Reference attention (MagicAnimate's appearance injection) as diffusers attention processors.

The appearance encoder's writer processors record the input of their self-attention (the transformer block's
``norm1`` output) into the bank sink of the current call. The denoiser's reader processors append the
matching bank, repeated over the frames of each sample, to the keys and values of their own self-attention
(queries stay the frame's own tokens; the denoiser's own ``to_k``/``to_v`` project the bank).

Everything a call needs travels in a :class:`~magicanimate.models.context.ForwardContext` created for that
call, so the processors hold no tensors between calls and gradient checkpointing recomputes correctly.

``reference_strength`` s scales how much attention mass the reference tokens get: ``log(s)`` is added to
the attention logits of the reference keys, i.e. every reference key's unnormalised weight is multiplied by
s. s = 1 is the original model; s = 0 is exactly no reference (those rows take the plain self-attention
path); s > 1 strengthens the reference.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .context import current_context

# Spatial transformer blocks of the mid and up blocks; motion modules and down blocks do not match.
REFERENCE_BLOCK_PATTERN = re.compile(r"^(mid_block|up_blocks\.\d+)\.attentions\.\d+\.transformer_blocks\.\d+$")


@dataclass
class ReferenceInputs:
    """Reference banks for one denoiser call.

    banks: one tensor ``(B or 1, L_i, C_i)`` per reader block, in reader order
        (:func:`reference_block_names`); a batch of 1 is broadcast to every sample.
    read_mask: bool tensor ``(B,)``: which samples read the reference (the original's CFG passes
        ``[False, True]``: the unconditional half reads nothing). None = all samples read.
    strength: reference strength s >= 0 (see module docstring); 1.0 reproduces the original.
    """

    banks: Sequence[torch.Tensor]
    read_mask: torch.Tensor | None = None
    strength: float = 1.0

    def __post_init__(self) -> None:
        if self.strength < 0 or not math.isfinite(self.strength):
            raise ValueError(f"reference strength must be a finite number >= 0, got {self.strength}")
        if self.read_mask is not None:
            # kept on the CPU: the readers index rows with it (one device sync per call, not per layer)
            self.read_mask = torch.as_tensor(self.read_mask, dtype=torch.bool).cpu()
            if self.read_mask.ndim != 1:
                raise ValueError(f"read_mask must be a 1-D bool tensor (B,), got shape {tuple(self.read_mask.shape)}")


def reference_block_names(model: nn.Module) -> list[str]:
    """Names of the transformer blocks that exchange reference banks, in bank order.

    The order is the original's: mid block then up blocks in module order, stably sorted by channel width
    (descending). Encoder and denoiser built from the same layout yield the same names.
    """
    names = [name for name, _ in model.named_modules() if REFERENCE_BLOCK_PATTERN.match(name)]
    names.sort(key=lambda n: 0 if n.startswith("mid_block") else 1)  # stable: mid first, then up blocks
    widths = {n: model.get_submodule(n).norm1.normalized_shape[0] for n in names}
    return sorted(names, key=lambda n: -widths[n])


def _unwrap(processor):
    while isinstance(processor, (ReferenceReaderProcessor, ReferenceWriterProcessor)):
        processor = processor.inner
    return processor


class ReferenceWriterProcessor:
    """Records the self-attention input of one encoder block, then runs the wrapped processor unchanged."""

    def __init__(self, name: str, inner) -> None:
        self.name = name
        self.inner = _unwrap(inner)

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                 *args, **kwargs):
        sink = current_context().bank_sink
        if sink is not None:
            sink[self.name] = hidden_states
        return self.inner(attn, hidden_states, encoder_hidden_states=encoder_hidden_states,
                          attention_mask=attention_mask, temb=temb, *args, **kwargs)


class ReferenceReaderProcessor:
    """Self-attention that also attends to the reference bank ``index`` of the current call.

    Without a reference in the current context it is the wrapped processor, unchanged.
    """

    def __init__(self, name: str, index: int, inner) -> None:
        self.name = name
        self.index = index
        self.inner = _unwrap(inner)

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                 *args, **kwargs):
        ctx = current_context()
        ref: ReferenceInputs | None = ctx.reference
        plain = lambda h: self.inner(attn, h, encoder_hidden_states=encoder_hidden_states,  # noqa: E731
                                     attention_mask=attention_mask, temb=temb, *args, **kwargs)
        if ref is None or ref.strength == 0:
            return plain(hidden_states)
        if encoder_hidden_states is not None or attention_mask is not None or hidden_states.ndim != 3:
            raise ValueError(f"{self.name}: reference attention expects plain self-attention on (N, L, C) tokens")

        rows = hidden_states.shape[0]
        frames = ctx.num_frames or 1
        batch = rows // frames
        bank = ref.banks[self.index]
        if bank.ndim != 3 or bank.shape[0] not in (1, batch) or bank.shape[2] != hidden_states.shape[2]:
            raise ValueError(
                f"{self.name}: reference bank {self.index} has shape {tuple(bank.shape)}; expected "
                f"(1 or {batch}, L, {hidden_states.shape[2]})"
            )
        if ref.read_mask is None:
            read = torch.ones(batch, dtype=torch.bool)
        else:
            read = ref.read_mask
            if read.shape[0] != batch:
                raise ValueError(f"read_mask has {read.shape[0]} entries for a batch of {batch}")
        if not bool(read.any()):
            return plain(hidden_states)

        sample_of_row = torch.arange(rows) // frames
        read_rows = read[sample_of_row]
        if bool(read_rows.all()):
            return self._read(attn, hidden_states, bank, sample_of_row, ref.strength)
        device = hidden_states.device
        idx_read = read_rows.nonzero().squeeze(1).to(device)
        idx_plain = (~read_rows).nonzero().squeeze(1).to(device)
        out_read = self._read(attn, hidden_states.index_select(0, idx_read), bank,
                              sample_of_row[read_rows], ref.strength)
        out_plain = plain(hidden_states.index_select(0, idx_plain))
        out = out_read.new_zeros((rows, *out_read.shape[1:]))
        return out.index_copy(0, idx_read, out_read).index_copy(0, idx_plain, out_plain.to(out_read.dtype))

    def _read(self, attn, hidden_states, bank, sample_of_row, strength):
        residual = hidden_states
        n, length, _ = hidden_states.shape
        bank = bank.to(hidden_states.dtype)
        if bank.shape[0] == 1:
            bank_rows = torch.zeros_like(sample_of_row)
        else:
            bank_rows = sample_of_row
        bank_rows = bank_rows.to(hidden_states.device)
        query = attn.to_q(hidden_states)
        # Projecting the bank once per sample equals projecting its per-frame copies (linear per token).
        key = torch.cat([attn.to_k(hidden_states), attn.to_k(bank).index_select(0, bank_rows)], dim=1)
        value = torch.cat([attn.to_v(hidden_states), attn.to_v(bank).index_select(0, bank_rows)], dim=1)
        heads = attn.heads
        head_dim = key.shape[-1] // heads
        query = query.view(n, -1, heads, head_dim).transpose(1, 2)
        key = key.view(n, -1, heads, head_dim).transpose(1, 2)
        value = value.view(n, -1, heads, head_dim).transpose(1, 2)
        if getattr(attn, "norm_q", None) is not None:
            query = attn.norm_q(query)
        if getattr(attn, "norm_k", None) is not None:
            key = attn.norm_k(key)
        bias = None
        if strength != 1.0:
            bias = query.new_zeros((1, 1, 1, key.shape[2]))
            bias[..., length:] = math.log(strength)
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=bias, dropout_p=0.0, is_causal=False,
                                             scale=attn.scale)
        out = out.transpose(1, 2).reshape(n, -1, heads * head_dim).to(query.dtype)
        out = attn.to_out[0](out)
        out = attn.to_out[1](out)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


def install_reference_processors(model: nn.Module, role: str) -> list[str]:
    """Wrap the processors of ``model``'s mid/up spatial self-attentions as readers or writers, by name.

    role: "reader" (denoiser) or "writer" (appearance encoder). Returns the block names in bank order.
    Idempotent; the currently set processor (SDPA, xformers, ...) becomes the wrapped one.
    """
    names = reference_block_names(model)
    for index, name in enumerate(names):
        attn = model.get_submodule(name).attn1
        if attn is None:
            continue
        current = attn.get_processor()
        if role == "reader":
            proc = ReferenceReaderProcessor(name, index, current)
        elif role == "writer":
            proc = ReferenceWriterProcessor(name, current)
        else:
            raise ValueError(f"role must be 'reader' or 'writer', got {role!r}")
        attn.set_processor(proc)
    return names


def maybe_enable_xformers(*models: nn.Module) -> bool:
    """Enable xformers attention on ``models`` when xformers is installed and they sit on a CUDA device.

    Returns whether it was enabled. PyTorch SDPA stays the default everywhere else.
    """
    try:
        import xformers  # noqa: F401
    except ImportError:
        return False
    if not all(next(m.parameters()).device.type == "cuda" for m in models):
        return False
    for m in models:
        m.enable_xformers_memory_efficient_attention()
    return True
