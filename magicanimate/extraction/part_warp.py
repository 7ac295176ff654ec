"""Moving the segments of a part map, each by the transform of its own bone, and layering them.

A limb segment is stretched along its bone and across it by separate factors and carried to where its
bone starts in the new skeleton (:class:`BoneTransform`, an affine map). The torso is stretched along its
axis and across it by a factor that changes from the hips' to the chest's (:class:`TorsoTransform`, a
smooth warp), because hips and shoulders differ in width independently.

Segments are drawn by inverse mapping: every output pixel near a moved segment looks up, through the
inverse transform, the pixel of the input it comes from, and takes its part label when that pixel belongs
to the segment. So labels are never blended, each pixel keeps its front/back surface, and a segment
scaled up has no holes. Segments are painted from back to front in a given depth order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Sequence

import cv2
import numpy as np

from magicanimate.extraction.body_parts import SEGMENT_INDEX


@dataclass(frozen=True)
class BoneTransform:
    """``x' = dst + M (x - src)`` with ``M = along u u^T + across n n^T`` (``u``: unit bone direction)."""

    src: np.ndarray
    dst: np.ndarray
    u: np.ndarray
    along: float
    across: float

    @property
    def n(self) -> np.ndarray:
        return np.array([-self.u[1], self.u[0]])

    def forward(self, points: np.ndarray) -> np.ndarray:
        rel = np.asarray(points, np.float64) - self.src
        return self.dst + np.outer(rel @ self.u * self.along, self.u) + np.outer(rel @ self.n * self.across, self.n)

    def inverse(self, points: np.ndarray) -> np.ndarray:
        rel = np.asarray(points, np.float64) - self.dst
        return self.src + np.outer(rel @ self.u / self.along, self.u) + np.outer(rel @ self.n / self.across, self.n)


@dataclass(frozen=True)
class TorsoTransform:
    """The torso from pelvis ``src`` to neck (``length`` along ``u``), moved to ``dst``: stretched by
    ``along`` along its axis, and across it by ``hips`` at the pelvis changing linearly to ``chest`` at the
    neck (constant beyond them)."""

    src: np.ndarray
    dst: np.ndarray
    u: np.ndarray
    length: float
    along: float
    hips: float
    chest: float

    @property
    def n(self) -> np.ndarray:
        return np.array([-self.u[1], self.u[0]])

    def _across(self, a: np.ndarray) -> np.ndarray:
        return self.hips + (self.chest - self.hips) * np.clip(a, 0.0, 1.0)

    def forward(self, points: np.ndarray) -> np.ndarray:
        rel = np.asarray(points, np.float64) - self.src
        a = rel @ self.u / self.length
        v = rel @ self.n
        return self.dst + np.outer(a * self.length * self.along, self.u) + np.outer(v * self._across(a), self.n)

    def inverse(self, points: np.ndarray) -> np.ndarray:
        rel = np.asarray(points, np.float64) - self.dst
        a = rel @ self.u / (self.length * self.along)
        v = rel @ self.n
        return self.src + np.outer(a * self.length, self.u) + np.outer(v / self._across(a), self.n)


def _target_box(transform, pixels: np.ndarray, shape) -> Optional[tuple]:
    """Output pixel box covering the moved segment (its pixel squares' corners, moved), clipped."""
    corners = np.concatenate([pixels + d for d in ((-0.5, -0.5), (0.5, -0.5), (-0.5, 0.5), (0.5, 0.5))])
    moved = transform.forward(corners)
    x0, y0 = np.floor(moved.min(0)).astype(int)
    x1, y1 = np.ceil(moved.max(0)).astype(int)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, shape[1] - 1), min(y1, shape[0] - 1)
    return None if x0 > x1 or y0 > y1 else (x0, y0, x1, y1)


def bilinear(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """``image`` (H, W) sampled at points ``xy`` (n, 2) by bilinear interpolation; 0 outside."""
    h, w = image.shape
    padded = np.zeros((h + 2, w + 2), np.float32)
    padded[1:-1, 1:-1] = image
    x = np.clip(xy[:, 0] + 1, 0, w + 1 - 1e-6)
    y = np.clip(xy[:, 1] + 1, 0, h + 1 - 1e-6)
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    x1, y1 = np.minimum(x0 + 1, w + 1), np.minimum(y0 + 1, h + 1)
    fx, fy = x - x0, y - y0
    top = padded[y0, x0] * (1 - fx) + padded[y0, x1] * fx
    bottom = padded[y1, x0] * (1 - fx) + padded[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def nearest_labels(part_map: np.ndarray, own: np.ndarray) -> np.ndarray:
    """For every pixel, the label of the nearest pixel of ``own`` (a non-empty ``(H, W)`` bool mask)."""
    free = np.where(own, 0, 255).astype(np.uint8)
    _, nearest = cv2.distanceTransformWithLabels(free, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    ys, xs = np.nonzero(own)
    lookup = np.zeros(nearest.max() + 1, part_map.dtype)
    lookup[nearest[ys, xs]] = part_map[ys, xs]
    return lookup[nearest]


def paint_segments(part_map: np.ndarray, segments: np.ndarray, transforms: Dict[str, object],
                   order: Sequence[str], hidden: Optional[Dict[str, np.ndarray]] = None) -> np.ndarray:
    """Paint every segment of ``part_map`` (``(H, W)`` labels; ``segments`` its segment map) moved by
    ``transforms[name]``, back to front in ``order``, onto an empty map of the same size.

    A segment is its own pixels plus ``hidden[name]`` (pixels where it lies behind another segment); a
    moved pixel is in the segment where the segment's mask, sampled bilinearly, reaches one half, and
    takes the label of the segment's nearest own pixel.
    """
    h, w = part_map.shape
    out = np.zeros((h, w), part_map.dtype)
    for name in order:
        transform = transforms.get(name)
        own = segments == SEGMENT_INDEX[name]
        if transform is None or not own.any():
            continue
        region = own | hidden[name] if hidden is not None and name in hidden else own
        ys, xs = np.nonzero(region)
        box = _target_box(transform, np.stack([xs, ys], 1).astype(np.float64), (h, w))
        if box is None:
            continue
        x0, y0, x1, y1 = box
        gy, gx = np.mgrid[y0:y1 + 1, x0:x1 + 1]
        exact = transform.inverse(np.stack([gx.ravel(), gy.ravel()], 1))
        hit = bilinear(region.astype(np.float32), exact) >= 0.5
        src = np.clip(np.rint(exact[hit]).astype(np.int64), 0, [w - 1, h - 1])
        labels = nearest_labels(part_map, own)[src[:, 1], src[:, 0]]
        out[gy.ravel()[hit], gx.ravel()[hit]] = labels
    return out
