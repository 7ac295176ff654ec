"""Preprocessing and feature extraction for LPIPS, FID, FID-VID and FVD.

Frames arrive as (F, H, W, 3) uint8 RGB numpy arrays at the ground-truth resolution.

* FID: Inception-v3 pool3 (2048-d) per frame; the network resizes to 299 (bilinear) and maps [0, 1] to
  [-1, 1] itself.
* FID-VID: frames resized bicubically to 112x112, RGB 0..255 minus the ActivityNet mean; 16-frame segments
  (the last padded by repeating its final frame); 3D ResNet-50 features averaged over a video's segments:
  one 2048-d vector per video.
* FVD: frames resized bicubically to 224x224, scaled to [-1, 1]; 16-frame clips by one of two builders
  (:data:`CLIP_BUILDERS`); one 400-d I3D logit vector (averaged over time) per clip.

Bicubic resizing can overshoot the input range; values are clamped back into it.
"""

from __future__ import annotations

from typing import Iterator, List

import numpy as np
import torch
import torch.nn.functional as F

CLIP_BUILDERS = {
    "stride1": "every window of 16 consecutive frames, stride 1 (DisCo's code, Sept. 2023)",
    "chunks": "one clip per consecutive 16-frame chunk, the last one padded by repeating its final frame",
}


def to_tensor(frames: np.ndarray, device) -> torch.Tensor:
    """(F, H, W, 3) uint8 -> (F, 3, H, W) float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).to(device).permute(0, 3, 1, 2).float() / 255.0


def batches(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def pad_to_length(frames: np.ndarray, length: int) -> np.ndarray:
    """Repeat the last frame until ``frames`` has ``length`` frames."""
    if len(frames) >= length:
        return frames
    tail = np.repeat(frames[-1:], length - len(frames), axis=0)
    return np.concatenate([frames, tail], axis=0)


def chunk_segments(frames: np.ndarray, length: int) -> List[np.ndarray]:
    """Consecutive non-overlapping segments of ``length`` frames; the last one padded."""
    return [pad_to_length(frames[s:s + length], length) for s in range(0, len(frames), length)]


def stride1_windows(frames: np.ndarray, length: int) -> List[np.ndarray]:
    """All windows of ``length`` consecutive frames (stride 1); a shorter video gives one padded clip."""
    if len(frames) <= length:
        return [pad_to_length(frames, length)]
    return [frames[s:s + length] for s in range(0, len(frames) - length + 1)]


def build_clips(frames: np.ndarray, builder: str, length: int) -> List[np.ndarray]:
    if builder == "stride1":
        return stride1_windows(frames, length)
    if builder == "chunks":
        return chunk_segments(frames, length)
    raise ValueError(f"unknown clip builder {builder!r}; choose one of {sorted(CLIP_BUILDERS)}")


def _resize_clip(clip: np.ndarray, size: int, device) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (3, T, size, size) float on 0..255, bicubic, clamped."""
    x = torch.from_numpy(np.ascontiguousarray(clip)).to(device).permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False).clamp_(0.0, 255.0)
    return x.permute(1, 0, 2, 3)


@torch.no_grad()
def inception_features(model, frames: np.ndarray, *, batch_size: int, device) -> np.ndarray:
    out = [model(to_tensor(frames[s], device)).double().cpu().numpy() for s in batches(len(frames), batch_size)]
    return np.concatenate(out, axis=0)


@torch.no_grad()
def lpips_distances(model, generated: np.ndarray, ground_truth: np.ndarray, *, input_range: str,
                    batch_size: int, device) -> np.ndarray:
    """Per-frame LPIPS. ``input_range`` "-1..1" (LPIPS's convention) or "0..1" (as DisCo fed it)."""
    if input_range not in ("-1..1", "0..1"):
        raise ValueError(f"input_range must be '-1..1' or '0..1', got {input_range!r}")
    values = []
    for s in batches(len(generated), batch_size):
        x, y = to_tensor(generated[s], device), to_tensor(ground_truth[s], device)
        if input_range == "-1..1":
            x, y = 2 * x - 1, 2 * y - 1
        values.append(model(x, y).double().cpu().numpy())
    return np.concatenate(values)


@torch.no_grad()
def resnet3d_video_feature(model, frames: np.ndarray, *, batch_size: int, device) -> np.ndarray:
    """One FID-VID feature per video: the mean of its 16-frame segments' 2048-d features."""
    mean = torch.tensor(model.MEAN, device=device).view(3, 1, 1, 1)
    segments = chunk_segments(frames, model.CLIP_LENGTH)
    feats = []
    for s in batches(len(segments), batch_size):
        clips = torch.stack([_resize_clip(c, model.INPUT_SIZE, device) - mean for c in segments[s]])
        feats.append(model.features(clips).double().cpu().numpy())
    return np.concatenate(feats).mean(axis=0)


@torch.no_grad()
def i3d_clip_features(model, frames: np.ndarray, *, builder: str, batch_size: int, device) -> np.ndarray:
    """FVD features: one (400,) time-averaged I3D logit vector per clip."""
    clips = build_clips(frames, builder, model.CLIP_LENGTH)
    feats = []
    for s in batches(len(clips), batch_size):
        x = torch.stack([_resize_clip(c, model.INPUT_SIZE, device) / 127.5 - 1.0 for c in clips[s]])
        feats.append(model(x).double().cpu().numpy())
    return np.concatenate(feats)
