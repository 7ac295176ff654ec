"""Which body segment is in front of which, and what each hides, in one frame of a DensePose part map.

A part map shows only the front-most surface at each pixel. When segments move by different amounts, the
one in front must still be painted last, and the part of a segment that was hidden must show where its
occluder moved away. Both come from a *support* per segment: a region where the segment surely is,
whether seen or not (a band along a limb's bone, somewhat narrower than the limb; the quadrilateral
between shoulders and hips; a disc inside the head). Pixels of segment ``q`` inside the support of ``s``
are evidence that ``q`` is in front of ``s``, and they are where ``s`` is hidden.

Without evidence, a pair keeps the order people are usually seen in: facing the camera, the
arms in front of the torso and the torso and head in front of the legs; facing away, the arms behind.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Set, Tuple

import cv2
import numpy as np

from magicanimate.extraction.body_parts import SEGMENT_INDEX, SEGMENT_NAMES, SIDES, band_width
from magicanimate.extraction.body_shape import BONES, END_SEGMENTS, bone_axes
from magicanimate.extraction.joints import Joints

_ARMS = [f"{k}_{s}" for s in SIDES for k in ("upper_arm", "lower_arm", "hand")]
_LEGS = [f"{k}_{s}" for s in SIDES for k in ("upper_leg", "lower_leg", "foot")]
#: a support is this much narrower than the segment it stands for (so that it lies inside the segment).
SUPPORT_SHRINK = 0.8
#: how far (pixels) a joint may be from where it is estimated.
JOINT_ERROR = 1.0
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
    u, n, length = axes
    across = (np.stack([xs, ys], 1) - joints.points[start]) @ n
    width = band_width(across)
    if length <= width:
        return None
    # Joints are placed to about a pixel, and near them the neighbouring segments overlap: the band keeps
    # that far inside the limb at its sides and half a width clear of its ends.
    half = max(SUPPORT_SHRINK * width / 2 - JOINT_ERROR, 0.5)
    a, b = joints.points[start] + width / 2 * u, joints.points[end] - width / 2 * u
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


def _evidence(segments: np.ndarray, support: Dict[str, np.ndarray]) -> List[Tuple[int, str, str]]:
    """``(weight, behind, front)`` for every pair whose evidence decides it (:data:`MIN_EVIDENCE`)."""
    k = len(SEGMENT_NAMES) + 1
    seen = np.zeros((k, k), np.int64)  # seen[q, s]: pixels of q inside the support of s
    for name, mask in support.items():
        seen[:, SEGMENT_INDEX[name]] = np.bincount(segments[mask], minlength=k)
    pairs = []
    for a in SEGMENT_NAMES:
        for b in SEGMENT_NAMES:
            over, under = seen[SEGMENT_INDEX[a], SEGMENT_INDEX[b]], seen[SEGMENT_INDEX[b], SEGMENT_INDEX[a]]
            if over >= MIN_EVIDENCE and over > under:  # a is seen where b must be: a is in front of b
                pairs.append((int(over - under), b, a))
    return sorted(pairs, reverse=True)


def _reaches(edges: Dict[str, Set[str]], start: str, goal: str) -> bool:
    stack, seen = [start], set()
    while stack:
        node = stack.pop()
        if node == goal:
            return True
        if node not in seen:
            seen.add(node)
            stack.extend(edges[node])
    return False


def depth_order(segments: np.ndarray, facing: Optional[str], support: Dict[str, np.ndarray]) -> List[str]:
    """Segments back to front. Every pair the evidence decides keeps that order (strongest evidence first;
    a pair that would contradict stronger ones, in a cycle, is dropped); everything else keeps its place
    in :func:`default_order` as far as those constraints allow (a topological sort preferring it)."""
    order = default_order(facing)
    in_front: Dict[str, Set[str]] = {name: set() for name in order}  # behind -> segments in front of it
    for _, behind, front in _evidence(segments, support):
        if not _reaches(in_front, front, behind):
            in_front[behind].add(front)
    waiting = {name: sum(name in fronts for fronts in in_front.values()) for name in order}
    out: List[str] = []
    while len(out) < len(order):
        name = next(n for n in order if n not in out and waiting[n] == 0)
        out.append(name)
        for front in in_front[name]:
            waiting[front] -= 1
    return out


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
