"""DensePose parts grouped into body segments, and the borders between segments.

A *segment* is one rigid piece of the body as a skeleton sees it: the torso, the head, and per side the
upper arm, lower arm, hand, upper leg, lower leg and foot. DensePose splits most of them into two surfaces
(front and back; the head into its right and left halves); joint estimation and retargeting work on the
segment, and keep each pixel's own part label. The grouping is read from the part names in
:mod:`magicanimate.data.densepose`, so the part table stays in one place.
"""

from __future__ import annotations

import functools
from typing import Dict, Tuple

import numpy as np

from magicanimate.data import densepose

SIDES = ("left", "right")
LIMB_KINDS = ("upper_arm", "lower_arm", "hand", "upper_leg", "lower_leg", "foot")
#: segment names; index ``i + 1`` in a segment map (0 = background).
SEGMENT_NAMES: Tuple[str, ...] = ("torso", "head") + tuple(f"{kind}_{side}" for side in SIDES
                                                              for kind in LIMB_KINDS)
SEGMENT_INDEX: Dict[str, int] = {name: i + 1 for i, name in enumerate(SEGMENT_NAMES)}
_SURFACE_WORDS = {"front", "back"}


def _segment_of(part_name: str) -> str:
    words = part_name.split("_")
    side = next((w for w in words if w in SIDES), None)
    kind = "_".join(w for w in words if w not in SIDES and w not in _SURFACE_WORDS)
    if kind in ("torso", "head"):  # the head's halves are one rigid piece
        return kind
    name = f"{kind}_{side}"
    if name not in SEGMENT_INDEX:
        raise RuntimeError(f"DensePose part {part_name!r} does not name a known body segment")
    return name


@functools.lru_cache(maxsize=1)
def part_to_segment() -> np.ndarray:
    """``(25,)`` lookup table: DensePose part index -> segment index (0 = background)."""
    lut = np.zeros(densepose.NUM_PARTS + 1, np.int64)
    for index, name in enumerate(densepose.PART_NAMES):
        if index:
            lut[index] = SEGMENT_INDEX[_segment_of(name)]
    return lut


@functools.lru_cache(maxsize=1)
def back_surface_parts() -> np.ndarray:
    """Part indices of back surfaces (seen when the person's back faces the camera)."""
    return np.array([i for i, n in enumerate(densepose.PART_NAMES) if "back" in n.split("_")], np.int64)


@functools.lru_cache(maxsize=1)
def front_surface_parts() -> np.ndarray:
    return np.array([i for i, n in enumerate(densepose.PART_NAMES) if "front" in n.split("_")], np.int64)


def segment_map(part_map: np.ndarray) -> np.ndarray:
    """Segment indices of a part-index map of any shape (see :data:`SEGMENT_NAMES`)."""
    return part_to_segment()[np.asarray(part_map, np.int64)]


def band_width(values: np.ndarray, tail: float = 0.05) -> float:
    """Width of a uniform band from the coordinates of its pixel centres (which span the width less one
    pixel), from the spread between the ``tail`` and ``1 - tail`` quantiles: stray pixels do not move it."""
    lo, hi = np.quantile(values, [tail, 1.0 - tail])
    return float((hi - lo) / (1.0 - 2.0 * tail) + 1.0)


def border_centroids(segments: np.ndarray) -> Dict[Tuple[int, int], Tuple[np.ndarray, int]]:
    """Centroid and length of the border between every pair of touching segments of a ``(H, W)`` map.

    The border runs between 4-neighbour pixels of different segments; each such pixel pair contributes its
    midpoint. Keys are ``(a, b)`` segment indices with ``a < b``; values ``(xy centroid, pair count)``.
    Coordinates: x right, y down, pixel centres at integers.
    """
    k = len(SEGMENT_NAMES) + 1
    codes, xs, ys = [], [], []
    for axis in (0, 1):
        a = segments[:-1, :] if axis == 0 else segments[:, :-1]
        b = segments[1:, :] if axis == 0 else segments[:, 1:]
        yy, xx = np.nonzero((a != b) & (a > 0) & (b > 0))
        lo, hi = np.minimum(a[yy, xx], b[yy, xx]), np.maximum(a[yy, xx], b[yy, xx])
        codes.append(lo * k + hi)
        xs.append(xx + (0.5 if axis == 1 else 0.0))
        ys.append(yy + (0.5 if axis == 0 else 0.0))
    code = np.concatenate(codes)
    if code.size == 0:
        return {}
    count = np.bincount(code, minlength=k * k)
    sx = np.bincount(code, weights=np.concatenate(xs), minlength=k * k)
    sy = np.bincount(code, weights=np.concatenate(ys), minlength=k * k)
    out = {}
    for c in np.nonzero(count)[0]:
        out[(int(c // k), int(c % k))] = (np.array([sx[c], sy[c]]) / count[c], int(count[c]))
    return out
