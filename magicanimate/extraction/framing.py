"""Where the person goes in the output square: one crop for the whole video, padding, and alignment.

Every placement is a similarity without rotation, ``p_out = scale * p_src + shift`` (pixel coordinates,
x right, y down, pixel centres at integers), so landmarks, masks and preview frames move together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional, Tuple

import cv2
import numpy as np

from magicanimate.errors import InputError

FITS = ("crop", "pad")
#: BlazePose landmarks 0..10 are on the face (nose, eyes, ears, mouth).
FACE_LANDMARKS = 11
#: margin around the person's box for ``fit="crop"``, as a fraction of the box's longer side, each side.
DEFAULT_MARGIN = 0.1


@dataclass(frozen=True)
class Placement:
    """``p_out = scale * p_src + shift`` onto a ``size`` x ``size`` output."""

    scale: float
    shift: Tuple[float, float]
    size: int

    def matrix(self) -> np.ndarray:
        """2x3 affine matrix for :func:`cv2.warpAffine`."""
        return np.array([[self.scale, 0.0, self.shift[0]], [0.0, self.scale, self.shift[1]]], np.float64)

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Map ``(..., 2+)`` points (x, y first; a third column, depth, is scaled too)."""
        out = np.array(points, dtype=np.float64, copy=True)
        out[..., 0] = self.scale * out[..., 0] + self.shift[0]
        out[..., 1] = self.scale * out[..., 1] + self.shift[1]
        if out.shape[-1] > 2:
            out[..., 2] = self.scale * out[..., 2]
        return out

    def then(self, scale: float, shift: Tuple[float, float]) -> "Placement":
        """This placement followed by ``p -> scale * p + shift`` in output coordinates."""
        return Placement(self.scale * scale,
                         (scale * self.shift[0] + shift[0], scale * self.shift[1] + shift[1]), self.size)

    def rescaled_source(self, factor: float) -> "Placement":
        """The placement for a source image stored at ``factor`` times the original resolution."""
        # p_src = q / factor  ->  p_out = (scale / factor) q + shift, up to the pixel-centre offset
        s = self.scale / factor
        off = 0.5 * (s - self.scale)  # keep pixel centres aligned: (q + 0.5) / factor - 0.5 = p_src
        return Placement(s, (self.shift[0] + off, self.shift[1] + off), self.size)

    def warp(self, image: np.ndarray, *, interpolation: int = cv2.INTER_LINEAR, border_value=0) -> np.ndarray:
        """Resample ``image`` (``(H, W)`` or ``(H, W, C)``) into the ``size`` x ``size`` output."""
        if self.scale < 1 and interpolation != cv2.INTER_NEAREST:  # labels must never be blurred
            # Shrinking with bilinear sampling aliases; pre-blur to roughly the output's sampling rate.
            sigma = 0.5 * (1 / self.scale - 1)
            if sigma > 0.3:
                image = cv2.GaussianBlur(image, (0, 0), sigma)
        return cv2.warpAffine(image, self.matrix(), (self.size, self.size), flags=interpolation,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=border_value)


def mask_box(mask: np.ndarray, threshold: float = 0.5) -> Optional[Tuple[float, float, float, float]]:
    """``(x0, y0, x1, y1)`` pixel-edge box of ``mask > threshold``, or ``None`` when empty."""
    ys, xs = np.nonzero(np.asarray(mask) > threshold)
    if ys.size == 0:
        return None
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


def union_box(boxes: Iterable[Optional[Tuple[float, float, float, float]]]):
    """Smallest box containing all given boxes (``None`` entries skipped); ``None`` if there are none."""
    boxes = [b for b in boxes if b is not None]
    if not boxes:
        return None
    arr = np.asarray(boxes, dtype=np.float64)
    return float(arr[:, 0].min()), float(arr[:, 1].min()), float(arr[:, 2].max()), float(arr[:, 3].max())


def _axis_start(centre: float, side: float, extent: float) -> float:
    """Start of a window of length ``side`` centred near ``centre`` on an axis ``[0, extent]``.

    A window that fits stays inside the frame; a larger one covers the whole axis, as close to centred on
    the person as that allows.
    """
    start = centre - side / 2
    lo, hi = (0.0, extent - side) if side <= extent else (extent - side, 0.0)
    return float(min(max(start, lo), hi))


def crop_placement(box, frame_hw: Tuple[int, int], size: int, margin: float = DEFAULT_MARGIN) -> Placement:
    """One square window around ``box`` (the person over the whole video), scaled to ``size``.

    The square's side is the box's longer side plus ``margin`` of it on each side. It is moved to stay inside
    the frame where the frame is large enough; where it is not, the output is padded (with the DensePose
    background when rendering).
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    h, w = frame_hw
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * (1 + 2 * margin)
    side = max(side, 1.0)
    sx = _axis_start((x0 + x1) / 2, side, w)
    sy = _axis_start((y0 + y1) / 2, side, h)
    return _window_placement(sx, sy, side, size)


def pad_placement(frame_hw: Tuple[int, int], size: int) -> Placement:
    """The whole frame, centred and padded to a square, scaled to ``size``."""
    h, w = frame_hw
    side = float(max(h, w))
    return _window_placement((w - side) / 2, (h - side) / 2, side, size)


def _window_placement(x0: float, y0: float, side: float, size: int) -> Placement:
    # The window's edges [x0, x0+side] map onto the output's edges [0, size]; pixel centres sit at +0.5.
    scale = size / side
    return Placement(scale, (0.5 * scale - 0.5 - scale * x0, 0.5 * scale - 0.5 - scale * y0), size)


def fit_scale_shift(source: np.ndarray, target: np.ndarray, weights: Optional[np.ndarray] = None):
    """Least-squares ``scale, shift`` with ``scale * source + shift ≈ target`` for ``(N, 2)`` points.

    Closed form: with weighted centroids ``s̄, t̄``, ``scale = Σw (s-s̄)·(t-t̄) / Σw |s-s̄|²`` and
    ``shift = t̄ - scale s̄``.
    """
    src = np.asarray(source, dtype=np.float64)[:, :2]
    tgt = np.asarray(target, dtype=np.float64)[:, :2]
    w = np.ones(len(src)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.sum() <= 0:
        raise ValueError("no points with positive weight to align")
    w = w / w.sum()
    cs, ct = w @ src, w @ tgt
    ds, dt = src - cs, tgt - ct
    var = float(w @ (ds ** 2).sum(1))
    if var <= 1e-12:
        raise ValueError("alignment points coincide: cannot estimate a scale")
    scale = float(w @ (ds * dt).sum(1)) / var
    return scale, (ct - scale * cs)


def alignment(motion_landmarks: np.ndarray, reference_landmarks: np.ndarray, *, source: str,
              min_visibility: float = 0.5) -> Tuple[float, np.ndarray]:
    """Scale and shift (output coordinates) moving the motion's person onto the reference's person.

    Uses the landmarks seen (visibility >= ``min_visibility``) in both, weighted by the lower visibility;
    the face's 11 landmarks (0..10) together weigh as much as one body joint, so that the head's cluster of
    points does not outweigh the body whose size is being matched.
    """
    vis = np.minimum(motion_landmarks[:, 3], reference_landmarks[:, 3])
    use = vis >= min_visibility
    weights = vis.copy()
    weights[:FACE_LANDMARKS] /= FACE_LANDMARKS
    if use.sum() < 3:
        raise InputError(
            f"{source}: fewer than 3 body landmarks are visible in both the reference image and the first "
            f"frame of the motion; cannot align them (drop --align-to, or use a reference showing more "
            f"of the body)")
    scale, shift = fit_scale_shift(motion_landmarks[use], reference_landmarks[use], weights[use])
    if not scale > 0:
        raise InputError(f"{source}: aligning the motion to this reference gives a non-positive scale "
                         f"({scale:.3g}); the poses are too different to align")
    return scale, shift
