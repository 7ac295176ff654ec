"""Temporal smoothing of landmarks and masks, so that part labels do not flicker.

Landmarks go through a One-Euro filter (Casiez, Roussel & Vogel, CHI 2012): an exponential smoother whose
cut-off frequency rises with speed, so slow jitter is removed while fast motion keeps little lag. Since
extraction is offline, the filter runs forwards and backwards and the two passes are averaged, which
cancels most of the remaining lag. Person masks are averaged over neighbouring frames with a Gaussian
window (centred, offline).
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np


def _alpha(cutoff: np.ndarray, dt: float) -> np.ndarray:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


def one_euro(
    values: np.ndarray,
    fps: float,
    *,
    min_cutoff: float = 1.0,
    beta: float = 0.0,
    d_cutoff: float = 1.0,
) -> np.ndarray:
    """Causal One-Euro filter along axis 0 of ``values`` ``(T, ...)`` sampled at ``fps``.

    Args:
        min_cutoff: cut-off frequency (Hz) at rest; lower = smoother.
        beta: how fast the cut-off rises with the (filtered) speed, per unit of ``values`` per second.
        d_cutoff: cut-off frequency (Hz) of the speed estimate.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.shape[0] == 0:
        return x.copy()
    if fps <= 0 or min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
        raise ValueError(f"need fps, min_cutoff, d_cutoff > 0 and beta >= 0; got {fps}, {min_cutoff}, "
                         f"{d_cutoff}, {beta}")
    dt = 1.0 / fps
    out = np.empty_like(x)
    out[0] = x[0]
    speed = np.zeros_like(x[0])
    a_d = _alpha(np.asarray(d_cutoff), dt)
    for t in range(1, x.shape[0]):
        raw_speed = (x[t] - out[t - 1]) / dt
        speed = a_d * raw_speed + (1 - a_d) * speed
        a = _alpha(min_cutoff + beta * np.abs(speed), dt)
        out[t] = a * x[t] + (1 - a) * out[t - 1]
    return out


def one_euro_zero_phase(values: np.ndarray, fps: float, **kwargs) -> np.ndarray:
    """Average of the One-Euro filter run forwards and backwards in time (offline: lag cancels)."""
    x = np.asarray(values, dtype=np.float64)
    forward = one_euro(x, fps, **kwargs)
    backward = one_euro(x[::-1], fps, **kwargs)[::-1]
    return (forward + backward) / 2


def smoothing_parameters(strength: float, fps: float) -> Optional[dict]:
    """One-Euro parameters and the mask window for a user-facing smoothing ``strength`` (0 = off, 1 = default).

    Landmarks are filtered in units of the person's size (torso lengths), so the same strength behaves
    alike for small and large people. Returns ``None`` when smoothing is off.
    """
    if strength < 0 or not math.isfinite(strength):
        raise ValueError(f"smoothing strength must be >= 0, got {strength}")
    if strength == 0:
        return None
    return {
        "min_cutoff": 2.0 / strength,  # Hz: at strength 1, jitter above ~2 Hz is damped at rest
        "beta": 1.0 / strength,         # per torso length per second: fast limbs follow closely
        "d_cutoff": 1.0,
        # Gaussian sigma in frames for masks: 0.04 s (one frame at 25 fps) per unit of strength
        "mask_sigma": 0.04 * strength * fps,
    }


def smooth_landmark_track(
    track: np.ndarray,
    fps: float,
    unit: float,
    *,
    min_cutoff: float,
    beta: float,
    d_cutoff: float = 1.0,
) -> np.ndarray:
    """Smooth a ``(T, 33, 4)`` landmark track (x, y, z in pixels; visibility) measured in ``unit`` pixels.

    x, y and z are filtered; visibility is averaged by the same filter (it only gates occlusion).
    """
    track = np.asarray(track, dtype=np.float64)
    scaled = track.copy()
    scaled[..., :3] /= unit
    smoothed = one_euro_zero_phase(scaled, fps, min_cutoff=min_cutoff, beta=beta, d_cutoff=d_cutoff)
    smoothed[..., :3] *= unit
    return smoothed


def gaussian_weights(sigma_frames: float, truncate: float = 3.0) -> np.ndarray:
    """Normalised Gaussian window of radius ``round(truncate * sigma)`` frames."""
    radius = int(truncate * sigma_frames + 0.5)
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * (offsets / sigma_frames) ** 2)
    return w / w.sum()


def smoothed_mask(masks, index: int, sigma_frames: float, valid: Optional[np.ndarray] = None) -> np.ndarray:
    """Gaussian average over time of ``masks[index]`` and its neighbours (edges: nearest frame repeated).

    ``masks`` is a sequence of equally shaped ``(H, W)`` arrays (uint8 0..255 or float 0..1); the result is
    float32 in the same range. Computed one frame at a time, so a long video's masks are never held twice.
    Frames where ``valid`` is False (no person) are skipped and the remaining weights renormalised.
    """
    n = len(masks)
    if sigma_frames <= 0 or n < 2:
        return np.asarray(masks[index], dtype=np.float32)
    weights = gaussian_weights(sigma_frames)
    radius = len(weights) // 2
    acc = np.zeros(np.shape(masks[index]), np.float64)
    total = 0.0
    for w, offset in zip(weights, range(-radius, radius + 1)):
        j = min(max(index + offset, 0), n - 1)
        if valid is not None and not valid[j]:
            continue
        acc += w * np.asarray(masks[j], dtype=np.float64)
        total += w
    return (acc / total).astype(np.float32) if total > 0 else np.asarray(masks[index], np.float32)
