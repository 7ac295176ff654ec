"""Activation memory of one training sample, counted by running the differentiable part of the training
step at the real shapes and summing the tensors autograd keeps for the backward pass.

On the ``meta`` device nothing is computed or allocated, so SD1.5 at 768² counts in seconds on any
machine; on a real device the same count is taken (and, on CUDA, the allocator's peak is measured beside
it). On ``meta`` two things a GPU does are emulated (:class:`GpuRules`): mixed precision follows torch's
CUDA autocast rules for the ops that dominate (convolutions, linear layers, matrix products and attention
in the half dtype, normalisations in float32), and attention keeps what a fused kernel keeps (queries,
keys, values, output and a log-sum-exp per query) rather than the full attention matrix of the math path.
Half-precision copies of the weights (autocast's cache) are weights, not activations: not counted here.

With gradient checkpointing, a checkpointed unit (ResNet block, transformer, motion module) keeps only
its input; during the backward pass one unit at a time is recomputed, so the count is
``all saved - saved inside the units + the units' inputs + the largest unit's own saved tensors``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Dict, Iterator, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

# The units the networks' gradient checkpointing recomputes (diffusers checkpoints these blocks).
CHECKPOINT_UNITS = ("ResnetBlock2D", "Transformer2DModel", "AnimateDiffTransformer3D")

_HALF_OPS = {F.conv2d, F.linear, torch.matmul, torch.bmm, torch.baddbmm, F.scaled_dot_product_attention}
_FP32_OPS = {F.group_norm, F.layer_norm}


class GpuRules(TorchFunctionMode):
    """What a GPU run does that the meta device does not: autocast (``dtype`` not float32) and fused
    attention. ``weight_copy(tensor)`` is told of every cast of a parameter (those copies are weights)."""

    def __init__(self, dtype: torch.dtype, weight_copy) -> None:
        super().__init__()
        self.dtype, self.weight_copy = dtype, weight_copy

    def _cast(self, x, target):
        if not (torch.is_tensor(x) and x.is_floating_point()) or x.dtype == target:
            return x
        out = x.to(target)
        if isinstance(x, nn.Parameter):
            self.weight_copy(out)
        return out

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        target = None
        if self.dtype != torch.float32:
            target = self.dtype if func in _HALF_OPS else torch.float32 if func in _FP32_OPS else None
        if target is not None:
            args = tuple(self._cast(a, target) for a in args)
            kwargs = {k: self._cast(v, target) for k, v in kwargs.items()}
        if func is F.scaled_dot_product_attention and kwargs.get("attn_mask") is None and len(args) == 3:
            # the fused kernel's saved set (the CPU flash kernel has a meta implementation)
            return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
                *args, is_causal=kwargs.get("is_causal", False), scale=kwargs.get("scale"))[0]
        return func(*args, **kwargs)


@dataclass
class ActivationCount:
    saved_bytes: int  # without gradient checkpointing
    checkpointed_bytes: int  # with it
    peak_bytes: Optional[int] = None  # the CUDA allocator's peak over forward + backward, when measured there


class _SavedTensors:
    """Unique storages autograd saves (parameters excluded), and how much of that each unit saved."""

    def __init__(self, params) -> None:
        self.params = {p.untyped_storage()._cdata for p in params}
        self.seen: Dict[int, int] = {}
        self.unit_saved: Dict[int, int] = {}
        self.unit_inputs = 0
        self.stack = []

    def weight_copy(self, tensor: torch.Tensor) -> None:
        self.params.add(tensor.untyped_storage()._cdata)

    def pack(self, tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        key = storage._cdata
        if key not in self.params and key not in self.seen:
            self.seen[key] = storage.nbytes()
            if self.stack:
                self.unit_saved[self.stack[0]] = self.unit_saved.get(self.stack[0], 0) + storage.nbytes()
        return tensor

    def enter(self, module, args) -> None:
        if not self.stack:  # outermost unit only: nested units are recomputed with it
            self.unit_inputs += sum(a.untyped_storage().nbytes() for a in args if torch.is_tensor(a))
        self.stack.append(id(module))

    def leave(self, module, args, output) -> None:
        self.stack.pop()


@contextlib.contextmanager
def _counting(networks, counter: _SavedTensors) -> Iterator[None]:
    handles = []
    for net in networks:
        for module in net.modules():
            if type(module).__name__ in CHECKPOINT_UNITS:
                handles.append(module.register_forward_pre_hook(counter.enter))
                handles.append(module.register_forward_hook(counter.leave))
    try:
        with torch.autograd.graph.saved_tensors_hooks(counter.pack, lambda t: t):
            yield
    finally:
        for h in handles:
            h.remove()


def count_activations(networks, *, batch: int, frames: int, height: int, width: int, text_len: int,
                      compute_dtype: torch.dtype = torch.float32, device: str = "meta") -> ActivationCount:
    """Saved bytes of one forward of encoder -> ControlNet -> UNet at (batch, frames, height x width) pixels.

    ``networks``: (unet, appearance_encoder, controlnet) on ``device``, with their trainable flags set.
    The VAE runs without gradients in training, so it saves nothing and is left out; so is the noise."""
    from magicanimate.models import ReferenceInputs
    from magicanimate.models.unet3d import fold_frames, unfold_frames

    unet, encoder, controlnet = networks
    h, w = height // 8, width // 8
    dim = unet.config.cross_attention_dim
    with torch.device(device):
        noisy = torch.randn(batch, unet.config.in_channels, frames, h, w)
        ref = torch.randn(batch, unet.config.in_channels, h, w)
        t = torch.randint(0, 1000, (batch,))
        text = torch.randn(batch, text_len, dim)
        cond = torch.rand(batch, 3, frames, height, width)
    counter = _SavedTensors([p for n in networks for p in n.parameters()])
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
    with _counting(networks, counter), _precision(device, compute_dtype, counter):
        banks = encoder(ref, t, text)
        down, mid = controlnet(fold_frames(noisy), t.repeat_interleave(frames),
                               encoder_hidden_states=text.repeat_interleave(frames, 0),
                               controlnet_cond=fold_frames(cond), return_dict=False)
        pred = unet(noisy, t, text, down_block_additional_residuals=[unfold_frames(r, frames) for r in down],
                    mid_block_additional_residual=unfold_frames(mid, frames),
                    reference=ReferenceInputs(banks=banks, read_mask=torch.ones(batch, dtype=torch.bool))).sample
        loss = F.mse_loss(pred.float(), noisy.float())
    if loss.requires_grad:
        loss.backward()
    peak = torch.cuda.max_memory_allocated() - start if cuda else None
    total = sum(counter.seen.values())
    inside = sum(counter.unit_saved.values())
    largest = max(counter.unit_saved.values(), default=0)
    return ActivationCount(total, total - inside + counter.unit_inputs + largest, peak)


def _precision(device: str, dtype: torch.dtype, counter: _SavedTensors):
    kind = torch.device(device).type
    if kind == "meta":
        return GpuRules(dtype, counter.weight_copy)
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(kind, dtype=dtype)
