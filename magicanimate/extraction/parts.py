"""DensePose part maps from body landmarks and a person mask.

Each person pixel takes the label of the body segment it belongs to. Segments are the torso (the
shoulder-hip quadrilateral), capsules around the bones of arms, legs, hands and feet, and a disc around the
head. A pixel inside several segments (an arm in front of the torso, crossed legs) takes the one nearest to
the camera (mediapipe's landmark depth); a pixel inside none takes the segment whose surface is nearest.
Person pixels far from every segment (another person, a bag) stay background.

The label of a segment comes from DensePose's part table in :mod:`magicanimate.data.densepose`, looked up
by name: torso and limbs take their front surface when the person faces the camera and their back surface
otherwise (one facing for the whole body, from the order of the shoulders and hips); the head is split into
its right and left halves by the line through the nose perpendicular to the ear-to-ear axis.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import List, Optional, Tuple

import cv2
import numpy as np

from magicanimate.data import densepose
from magicanimate.extraction import landmarks as L

# Segment radii as fractions of the torso length (shoulder centre to hip centre): rough adult proportions.
# They decide which segment a pixel is "inside" of; outside all segments the nearest surface wins.
RADII = {
    "upper_arm": 0.13, "lower_arm": 0.11, "hand": 0.10,
    "upper_leg": 0.20, "lower_leg": 0.15, "foot": 0.10,
    "head": 0.36, "torso": 0.0,
}
#: person pixels farther than this (in torso lengths) from every segment surface stay background.
MAX_DISTANCE = 0.75
#: landmarks below this visibility never claim pixels that lie inside another segment (occluded limbs).
MIN_VISIBILITY = 0.5
#: shoulders/hips closer than this (torso lengths, horizontally) leave the facing undecided (side view).
FACING_MARGIN = 0.1
# Fixed-point bits for sub-pixel drawing with OpenCV.
_SHIFT = 4


@dataclass(frozen=True)
class Segment:
    """A body segment: a polyline (2 points: a bone) or polygon (>2 points), labelled by ``kind``/``side``."""

    kind: str  # torso, upper_arm, lower_arm, hand, upper_leg, lower_leg, foot, head
    side: str  # "left", "right" or "" (torso, head)
    points: Tuple[int, ...]  # landmark indices (bone endpoints, or polygon corners)


def _hand(side: str) -> Segment:
    s = side.upper()
    return Segment("hand", side, (getattr(L, f"{s}_WRIST"), getattr(L, f"{s}_PINKY"), getattr(L, f"{s}_INDEX")))


SEGMENTS: Tuple[Segment, ...] = (
    Segment("torso", "", (L.LEFT_SHOULDER, L.RIGHT_SHOULDER, L.RIGHT_HIP, L.LEFT_HIP)),
    Segment("head", "", (L.LEFT_EAR, L.RIGHT_EAR, L.NOSE)),
    *(seg for side in ("left", "right") for seg in (
        Segment("upper_arm", side, (getattr(L, f"{side.upper()}_SHOULDER"), getattr(L, f"{side.upper()}_ELBOW"))),
        Segment("lower_arm", side, (getattr(L, f"{side.upper()}_ELBOW"), getattr(L, f"{side.upper()}_WRIST"))),
        _hand(side),
        Segment("upper_leg", side, (getattr(L, f"{side.upper()}_HIP"), getattr(L, f"{side.upper()}_KNEE"))),
        Segment("lower_leg", side, (getattr(L, f"{side.upper()}_KNEE"), getattr(L, f"{side.upper()}_ANKLE"))),
        Segment("foot", side, (getattr(L, f"{side.upper()}_HEEL"), getattr(L, f"{side.upper()}_FOOT_INDEX"))),
    )),
)


@functools.lru_cache(maxsize=None)
def part_index(name: str) -> int:
    """DensePose part index of a part name in :data:`magicanimate.data.densepose.PART_NAMES`."""
    try:
        return densepose.PART_NAMES.index(name)
    except ValueError:
        raise KeyError(f"DensePose part {name!r} is not in magicanimate.data.densepose.PART_NAMES "
                       f"{densepose.PART_NAMES}") from None


def segment_part(segment: Segment, facing_front: bool) -> Optional[int]:
    """The part index of a (non-head) segment for the given facing; ``None`` for the head (two halves)."""
    if segment.kind == "head":
        return None
    if segment.kind in ("hand", "foot"):
        return part_index(f"{segment.side}_{segment.kind}")
    surface = "front" if facing_front else "back"
    if segment.kind == "torso":
        return part_index(f"torso_{surface}")
    return part_index(f"{segment.side}_{segment.kind}_{surface}")


def torso_length(landmarks: np.ndarray) -> float:
    """Distance from the shoulder centre to the hip centre, in the landmarks' pixel units (>= 1)."""
    lm = np.asarray(landmarks)[:, :2]
    shoulders = (lm[L.LEFT_SHOULDER] + lm[L.RIGHT_SHOULDER]) / 2
    hips = (lm[L.LEFT_HIP] + lm[L.RIGHT_HIP]) / 2
    shoulder_width = np.linalg.norm(lm[L.LEFT_SHOULDER] - lm[L.RIGHT_SHOULDER])
    # a torso seen from above/below is short: never let the scale collapse below ~ the shoulder width.
    return float(max(np.linalg.norm(shoulders - hips), 0.8 * shoulder_width, 1.0))


def facing_score(landmarks: np.ndarray) -> float:
    """> 0 when the person faces the camera, < 0 when turned away, near 0 in profile (torso lengths).

    Facing the camera, the person's left shoulder and hip appear to the right of their right ones.
    """
    lm = np.asarray(landmarks)
    dx = (lm[L.LEFT_SHOULDER, 0] - lm[L.RIGHT_SHOULDER, 0]) + (lm[L.LEFT_HIP, 0] - lm[L.RIGHT_HIP, 0])
    return float(dx / 2 / torso_length(lm))


def facing_front(landmarks: np.ndarray, previous: Optional[bool] = None, margin: float = FACING_MARGIN) -> bool:
    """Whether the person faces the camera; in profile (|score| < margin) keep ``previous`` (default front)."""
    score = facing_score(landmarks)
    if abs(score) < margin:
        return True if previous is None else previous
    return score > 0


def _bone_distance(xs: np.ndarray, ys: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distance of the pixels ``(xs, ys)`` to the segment a-b (pixel coordinates, x right, y down)."""
    ab = (b - a).astype(np.float32)
    denom = float(ab @ ab)
    px, py = xs - np.float32(a[0]), ys - np.float32(a[1])
    if denom < 1e-9:
        return np.hypot(px, py)
    t = np.clip((px * ab[0] + py * ab[1]) / denom, 0.0, 1.0)
    return np.hypot(px - t * ab[0], py - t * ab[1])


def _polygon_distance(shape: Tuple[int, int], points: np.ndarray) -> np.ndarray:
    """Distance of every pixel to the filled polygon (0 inside)."""
    outside = np.full(shape, 255, np.uint8)
    pts = np.round(points * (1 << _SHIFT)).astype(np.int32).reshape(-1, 1, 2)
    cv2.fillPoly(outside, [pts], 0, lineType=cv2.LINE_8, shift=_SHIFT)
    if outside.all():  # degenerate polygon smaller than a pixel: fall back to its outline
        cv2.polylines(outside, [pts], True, 0, 1, lineType=cv2.LINE_8, shift=_SHIFT)
    return cv2.distanceTransform(outside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)


def segment_geometry(seg: Segment, lm: np.ndarray, xs: np.ndarray, ys: np.ndarray, mask: np.ndarray,
                     unit: float):
    """``(distance of the pixels (xs, ys) to the segment's core, radius in pixels, depth)`` for one segment.

    ``mask`` is the boolean grid the pixels come from (the torso's polygon is rasterised on it).
    """
    pts = lm[list(seg.points), :2]
    if seg.kind == "torso":
        dist = _polygon_distance(mask.shape, pts)[mask]
    elif seg.kind == "head":
        centre = head_centre(lm)
        dist = _bone_distance(xs, ys, centre, centre)
    elif seg.kind == "hand":
        # wrist to the knuckles' midpoint, extended by a third to reach the fingertips.
        tip = (pts[1] + pts[2]) / 2
        dist = _bone_distance(xs, ys, pts[0], tip + (tip - pts[0]) / 3)
    else:
        dist = _bone_distance(xs, ys, pts[0], pts[1])
    depth = float(lm[list(seg.points), 2].mean())
    if lm[list(seg.points), 3].min() < MIN_VISIBILITY and seg.kind not in ("torso", "head"):
        depth = np.inf  # an occluded limb is behind whatever else covers the pixel
    return dist, RADII[seg.kind] * unit, depth


def head_centre(lm: np.ndarray) -> np.ndarray:
    """Centre of the head disc: halfway between the nose and the ears' midpoint."""
    ears = (lm[L.LEFT_EAR, :2] + lm[L.RIGHT_EAR, :2]) / 2
    return (ears + lm[L.NOSE, :2]) / 2


def head_right_side(lm: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Whether pixels ``(xs, ys)`` lie on the person's right of the head's midline (through the nose,
    normal to the ear-to-ear axis)."""
    axis = (lm[L.RIGHT_EAR, :2] - lm[L.LEFT_EAR, :2]).astype(np.float32)
    if float(axis @ axis) < 1e-6:  # ears coincide (pure profile): split along the shoulders' axis
        axis = (lm[L.RIGHT_SHOULDER, :2] - lm[L.LEFT_SHOULDER, :2]).astype(np.float32)
    nose = lm[L.NOSE, :2].astype(np.float32)
    return (xs - nose[0]) * axis[0] + (ys - nose[1]) * axis[1] > 0


def parts_from_landmarks(
    landmarks: np.ndarray,
    mask: np.ndarray,
    *,
    front: Optional[bool] = None,
    max_distance: float = MAX_DISTANCE,
) -> np.ndarray:
    """Label the person pixels of ``mask`` with DensePose part indices.

    Args:
        landmarks: ``(33, 4)`` x, y, z, visibility in pixels of the mask's grid.
        mask: ``(H, W)`` bool (or 0/1) person mask.
        front: whether the person faces the camera (default: from the landmarks, see :func:`facing_front`).
        max_distance: person pixels farther than this many torso lengths from every segment stay 0.

    Returns:
        ``(H, W)`` uint8 part map (0 = background, 1..24 as in ``PART_NAMES``).
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (L.NUM_LANDMARKS, 4):
        raise ValueError(f"landmarks must have shape ({L.NUM_LANDMARKS}, 4), got {lm.shape}")
    mask = np.asarray(mask).astype(bool)
    out = np.zeros(mask.shape, np.uint8)
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return out
    if front is None:
        front = facing_front(lm)
    unit = torso_length(lm)
    # Work inside the person's bounding box only: the distance maps are the expensive part.
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    sub = mask[y0:y1, x0:x1]
    local = lm.copy()
    local[:, 0] -= x0
    local[:, 1] -= y0
    pys, pxs = np.nonzero(sub)  # row-major, the order of sub's True pixels
    pxs, pys = pxs.astype(np.float32), pys.astype(np.float32)

    n = len(SEGMENTS)
    surface = np.empty((n, pxs.size), np.float32)  # distance to the segment surface (<= 0: inside)
    depths = np.empty(n)
    for k, seg in enumerate(SEGMENTS):
        dist, radius, depth = segment_geometry(seg, local, pxs, pys, sub, unit)
        surface[k] = dist - radius
        depths[k] = depth
    inside = surface <= 0
    # Inside at least one segment: the front-most (smallest depth) of those; ties by nearest surface.
    depth_key = np.where(inside, depths[:, None], np.inf)
    front_most = np.argmin(np.where(depth_key == depth_key.min(0, keepdims=True), surface, np.inf), axis=0)
    nearest = np.argmin(surface, axis=0)
    choice = np.where(inside.any(0), front_most, nearest)
    keep = surface.min(0) <= max_distance * unit

    labels_of = np.zeros(n, np.uint8)
    head_k = next(k for k, s in enumerate(SEGMENTS) if s.kind == "head")
    for k, seg in enumerate(SEGMENTS):
        if k != head_k:
            labels_of[k] = segment_part(seg, front)
    labels = labels_of[choice]
    is_head = choice == head_k
    if is_head.any():
        right = head_right_side(local, pxs[is_head], pys[is_head])
        labels[is_head] = np.where(right, part_index("head_right"), part_index("head_left"))
    labels[~keep] = 0
    block = out[y0:y1, x0:x1]
    block[sub] = labels
    return out


def part_names_used() -> List[str]:
    """Every part name this module looks up (all must exist in the DensePose table)."""
    names = ["head_right", "head_left"]
    for seg in SEGMENTS:
        if seg.kind != "head":
            for front in (True, False):
                kind = seg.kind
                side = seg.side
                if kind in ("hand", "foot"):
                    names.append(f"{side}_{kind}")
                elif kind == "torso":
                    names.append(f"torso_{'front' if front else 'back'}")
                else:
                    names.append(f"{side}_{kind}_{'front' if front else 'back'}")
    return sorted(set(names))
