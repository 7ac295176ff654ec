"""Per-call state that travels with one forward pass (frame count, reference banks).

The window-wide GroupNorm needs the number of frames and the reference-attention processors need the
reference banks, but both sit deep inside diffusers modules whose signatures we do not control. Instead of
storing them on the modules (state that would leak into the next call and that gradient checkpointing's
recomputation might see stale), each forward creates a :class:`ForwardContext` and publishes it through a
:mod:`contextvars` variable for the duration of the call. :func:`context_preserving_checkpoint` captures the
context when a checkpointed segment first runs and re-enters the same context when it is recomputed
during the backward pass, so recomputation sees exactly what the forward saw.
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator

import torch
import torch.utils.checkpoint


@dataclass(frozen=True)
class ForwardContext:
    """What the current forward call tells the modules inside it.

    num_frames: frames folded into the batch as ``(b f)``; None outside a video forward.
    reference: the :class:`~magicanimate.models.reference_attention.ReferenceInputs` read by the
        denoiser's reference readers during this call, or None.
    bank_sink: a dict the appearance encoder's writers fill (block name -> norm1 output), or None.
    """

    num_frames: int | None = None
    reference: Any = None
    bank_sink: dict | None = None


_CURRENT: contextvars.ContextVar[ForwardContext] = contextvars.ContextVar(
    "magicanimate_forward_context", default=ForwardContext()
)


def current_context() -> ForwardContext:
    """The context of the forward call in progress (an empty one outside any call)."""
    return _CURRENT.get()


@contextmanager
def forward_context(**fields: Any) -> Iterator[ForwardContext]:
    """Publish a fresh context for the duration of a ``with`` block; the previous one is restored after."""
    ctx = replace(ForwardContext(), **fields)
    token = _CURRENT.set(ctx)
    try:
        yield ctx
    finally:
        _CURRENT.reset(token)


def context_preserving_checkpoint(checkpoint_func: Callable | None = None) -> Callable:
    """Wrap a diffusers ``gradient_checkpointing_func`` so recomputation runs in the forward's context.

    ``checkpoint_func(module, *args)`` is diffusers' convention; None means torch's non-reentrant checkpoint.
    """

    def _default(function: Callable, *args: Any) -> Any:
        return torch.utils.checkpoint.checkpoint(function, *args, use_reentrant=False)

    inner = checkpoint_func or _default

    def _checkpoint(module: Callable, *args: Any) -> Any:
        captured = contextvars.copy_context()

        def run(*run_args: Any) -> Any:
            # A fresh copy per run: a Context object cannot be entered twice at the same time.
            return captured.copy().run(module, *run_args)

        return inner(run, *args)

    return _checkpoint
