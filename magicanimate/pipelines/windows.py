"""Sliding-window schedules and fusion weights for videos longer than the denoiser's window.

Two modes:

``parity``
    The original MagicAnimate behaviour: windows of ``size`` frames starting every ``size - overlap``
    frames over the whole (already padded) video, the last window wrapping around to the start, and
    every window weighted 1 (the fused prediction is a plain mean over the windows holding a frame).
``tapered`` (default)
    No wrap-around: the last window is aligned to the end of the video. Each window's weight ramps
    linearly across the frames it shares with its neighbours, so consecutive windows cross-fade
    instead of being averaged with a seam at the overlap boundary.

A :class:`WindowSchedule` holds the windows (lists of frame indices) and one raw weight per (window,
frame). Fusion accumulates ``weight * prediction`` and ``weight`` per frame in window order and divides
at the end; :meth:`WindowSchedule.normalized_weights` gives the per-frame weights that sum to 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import math

import torch

from magicanimate.errors import ConfigError

FusionMode = Literal["parity", "tapered"]
FUSION_MODES = ("parity", "tapered")


@dataclass(frozen=True)
class WindowSchedule:
    """Windows over ``num_frames`` frames and their raw fusion weights.

    ``windows[k]`` lists the frame indices of window k (in the order the denoiser sees them);
    ``weights[k][i]`` is the raw weight of the prediction at position i of window k.
    """

    num_frames: int
    windows: tuple[tuple[int, ...], ...]
    weights: tuple[tuple[float, ...], ...]

    def __len__(self) -> int:
        return len(self.windows)

    def weight_tensor(self, k: int, *, device=None, dtype=torch.float32) -> torch.Tensor:
        """Raw weights of window k as a 1-D tensor (one per frame of the window)."""
        return torch.tensor(self.weights[k], device=device, dtype=dtype)

    def coverage(self) -> torch.Tensor:
        """Sum of raw weights per frame, float64 (num_frames,)."""
        total = torch.zeros(self.num_frames, dtype=torch.float64)
        for window, weight in zip(self.windows, self.weights):
            total.index_add_(0, torch.tensor(window), torch.tensor(weight, dtype=torch.float64))
        return total

    def normalized_weights(self) -> list[torch.Tensor]:
        """Per-window weights divided by the per-frame total, so they sum to 1 for every frame."""
        total = self.coverage()
        return [torch.tensor(w, dtype=torch.float64) / total[list(win)] for win, w in zip(self.windows, self.weights)]


def _check(size: int, overlap: int) -> None:
    if not isinstance(size, int) or size < 1:
        raise ConfigError(f"context_frames must be a positive integer, got {size!r}")
    if not isinstance(overlap, int) or overlap < 0 or overlap >= size:
        raise ConfigError(f"context_overlap must be an integer in [0, context_frames={size}), got {overlap!r}")


def _ordered_halving(step: int) -> float:
    """Bit-reversal of ``step`` as a 64-bit fraction in [0, 1): the original's per-step window shift."""
    return int(f"{step:064b}"[::-1], 2) / (1 << 64)


def parity_windows(num_frames: int, size: int = 16, overlap: int = 4, *, step: int = 0) -> list[list[int]]:
    """The original's ``uniform`` context schedule (closed loop, stride 1).

    Windows start every ``size - overlap`` frames (shifted by the original's bit-reversed step offset,
    which is 0 for ``step=0``, the only value MagicAnimate uses) and wrap modulo ``num_frames``; a
    video no longer than ``size`` is one window of all its frames.
    """
    _check(size, overlap)
    if num_frames < 1:
        raise ConfigError(f"a video needs at least one frame, got {num_frames}")
    if num_frames <= size:
        return [list(range(num_frames))]
    shift = _ordered_halving(step)
    pad = int(round(num_frames * shift))
    first = int(shift) + pad
    return [[f % num_frames for f in range(start, start + size)]
            for start in range(first, num_frames + pad, size - overlap)]


def tapered_windows(num_frames: int, size: int = 16, overlap: int = 4) -> list[list[int]]:
    """Windows every ``size - overlap`` frames, the last one shifted back to end at the last frame."""
    _check(size, overlap)
    if num_frames < 1:
        raise ConfigError(f"a video needs at least one frame, got {num_frames}")
    if num_frames <= size:
        return [list(range(num_frames))]
    stride = size - overlap
    starts = list(range(0, num_frames - size, stride)) + [num_frames - size]
    return [list(range(s, s + size)) for s in starts]


def _tapered_weights(windows: list[list[int]]) -> list[list[float]]:
    """Linear cross-fades over each actual overlap with the previous/next window.

    Over an overlap of L frames shared by two windows, the later window's weight rises as
    (j+1)/(L+1) while the earlier one's falls as (L-j)/(L+1): they sum to 1 without normalisation.
    The video's own first and last frames keep full weight.
    """
    weights = []
    for k, window in enumerate(windows):
        n = len(window)
        left = windows[k - 1][-1] - window[0] + 1 if k > 0 else 0
        right = window[-1] - windows[k + 1][0] + 1 if k + 1 < len(windows) else 0
        w = []
        for i in range(n):
            value = 1.0
            if i < left:
                value = min(value, (i + 1) / (left + 1))
            if i >= n - right:
                value = min(value, (n - i) / (right + 1))
            w.append(value)
        weights.append(w)
    return weights


def make_schedule(num_frames: int, mode: FusionMode = "tapered", size: int = 16, overlap: int = 4) -> WindowSchedule:
    """The window schedule and raw fusion weights for a video of ``num_frames`` frames."""
    if mode == "parity":
        windows = parity_windows(num_frames, size, overlap)
        weights = [[1.0] * len(w) for w in windows]
    elif mode == "tapered":
        windows = tapered_windows(num_frames, size, overlap)
        weights = _tapered_weights(windows)
    else:
        raise ConfigError(f"unknown fusion mode {mode!r}; expected one of {', '.join(FUSION_MODES)}")
    return WindowSchedule(num_frames, tuple(tuple(w) for w in windows), tuple(tuple(w) for w in weights))


def padded_length(num_frames: int, multiple: int = 16) -> int:
    """Length the original CLI edge-pads a control video to: the next multiple of ``multiple``."""
    if num_frames < 1:
        raise ConfigError(f"a video needs at least one frame, got {num_frames}")
    return int(math.ceil(num_frames / multiple) * multiple)


def shard(num_windows: int, rank: int, world_size: int) -> list[int]:
    """Window indices handled by ``rank``: a contiguous block, so the union in rank order is 0..K-1."""
    base, extra = divmod(num_windows, world_size)
    start = rank * base + min(rank, extra)
    return list(range(start, start + base + (1 if rank < extra else 0)))
