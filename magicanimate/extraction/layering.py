"""Which body segment is in front of which, and what each hides, in one frame of a DensePose part map.

A part map shows only the front-most surface at each pixel. When segments move by different amounts, the
one in front must still be painted last, and the part of a segment that was hidden must show where its
occluder moved away. Both come from a *support* per segment: a region where the segment surely is,
whether seen or not (a band along a limb's bone, somewhat narrower than the limb; the quadrilateral
between shoulders and hips; a disc inside the head). Pixels of segment ``q`` inside the support of ``s``
are evidence that ``q`` is in front of ``s``, and they are where ``s`` is hidden.

Without evidence either way, a pair keeps the order people are usually seen in: facing the camera, the
arms in front of the torso and the torso and head in front of the legs; facing away, the arms behind.
"""

from __future__ import annotations

from typing import Dict, List, Optional

import cv2
import numpy as np

from magicanimate.extraction.body_parts import SEGMENT_INDEX, SEGMENT_NAMES, SIDES, band_width
from magicanimate.extraction.body_shape import BONES, END_SEGMENTS, bone_axes
from magicanimate.extraction.joints import Joints

_ARMS = [f"{k}_{s}" for s in SIDES for k in ("upper_arm", "lower_arm", "hand")]
_LEGS = [f"{k}_{s}" for s in SIDES for k in ("upper_leg", "lower_leg", "foot")]
#: a support is this much narrower than the segment it stands for (so that it lies inside the segment).
SUPPORT_SHRINK = 0.8
#: fewest pixels of evidence that decide a pair's order against the usual one.
MIN_EVIDENCE = 3
_SHIFT = 4  # fixed-point bits for sub-pixel polygon drawing


def default_order(facing: Optional[str]) -> List[str]:
    """Segments back to front for a person facing the camera (``"front"``) or not (``"back"``)."""
    if facing == "back":
        return _ARMS + _LEGS + ["torso", "head"]
    return _LEGS + ["torso", "head"] + _ARMS


def _polygon(shape, points: np.ndarray) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(points * (1 << _SHIFT)).astype(np.int32)], 1, cv2.LINE_8, _SHIFT)
    return mask.astype(bool)


def _limb_support(segments: np.ndarray, name: str, joints: Joints) -> Optional[np.ndarray]:
    start, end = BONES[name]
    ys, xs = np.nonzero(segments == SEGMENT_INDEX[name])
    if len(xs) < 2 or not joints.has(start, end):
        return None
    axes = bone_axes(joints.points[start], joints.points[end])
    if axes is None:
        return None
    u, n, _ = axes
    across = (np.stack([xs, ys], 1) - joints.points[start]) @ n
    half = SUPPORT_SHRINK * band_width(across) / 2
    a, b = joints.points[start], joints.points[end]
    return _polygon(segments.shape, np.array([a + half * n, b + half * n, b - half * n, a - half * n]))


def _torso_support(segments: np.ndarray, joints: Joints) -> Optional[np.ndarray]:
    corners = ["shoulder_left", "shoulder_right", "hip_right", "hip_left"]
    if not joints.has(*corners):
        return None
    points = np.array([joints.points[c] for c in corners])
    centre = points.mean(0)
    return _polygon(segments.shape, centre + SUPPORT_SHRINK * (points - centre))


def _head_support(segments: np.ndarray) -> Optional[np.ndarray]:
    ys, xs = np.nonzero(segments == SEGMENT_INDEX["head"])
    if len(xs) < 4:
        return None
    mask = np.zeros(segments.shape, np.uint8)
    radius = SUPPORT_SHRINK * np.sqrt(len(xs) / np.pi)
    cv2.circle(mask, (int(round(xs.mean())), int(round(ys.mean()))), int(round(radius)), 1, -1)
    return mask.astype(bool)


def supports(segments: np.ndarray, joints: Joints) -> Dict[str, np.ndarray]:
    """Support region (``(H, W)`` bool) of every segment that has one in this frame."""
    out = {}
    for name in SEGMENT_NAMES:
        if name == "torso":
            mask = _torso_support(segments, joints)
        elif name == "head":
            mask = _head_support(segments)
        elif name in END_SEGMENTS:
            continue  # hands and feet are small and hide little
        else:
            mask = _limb_support(segments, name, joints)
        if mask is not None:
            out[name] = mask
    return out


def depth_order(segments: np.ndarray, facing: Optional[str], support: Dict[str, np.ndarray]) -> List[str]:
    """Segments back to front: each pair by its evidence, else by :func:`default_order` (Copeland ranking:
    a segment's rank is how many others it is in front of, less how many are in front of it)."""
    order = default_order(facing)
    k = len(SEGMENT_NAMES) + 1
    evidence = np.zeros((k, k), np.int64)  # evidence[q, s]: pixels of q seen inside the support of s
    for name, mask in support.items():
        evidence[:, SEGMENT_INDEX[name]] = np.bincount(segments[mask], minlength=k)
    rank = {name: i for i, name in enumerate(order)}
    score = {}
    for a in order:
        ia, total = SEGMENT_INDEX[a], 0
        for b in order:
            if a == b:
                continue
            ib = SEGMENT_INDEX[b]
            front, behind = evidence[ia, ib], evidence[ib, ia]
            if max(front, behind) >= MIN_EVIDENCE and front != behind:
                total += 1 if front > behind else -1
            else:
                total += 1 if rank[a] > rank[b] else -1
        score[a] = total
    return sorted(order, key=lambda name: (score[name], rank[name]))


def hidden_regions(segments: np.ndarray, order: List[str], support: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Per segment, the pixels of its support covered by segments in front of it (where it is hidden)."""
    out = {}
    for i, name in enumerate(order):
        if name not in support:
            continue
        in_front = [SEGMENT_INDEX[n] for n in order[i + 1:]]
        hidden = support[name] & np.isin(segments, in_front)
        if hidden.any():
            out[name] = hidden
    return out
