"""A body's proportions measured on one DensePose part map: bone lengths and segment widths.

Every segment hangs on a bone between two joints of :mod:`magicanimate.extraction.joints` (the torso from
the pelvis to the neck, the upper arm from the shoulder to the elbow, ...; the head, hands and feet from
their joint to their centroid). A segment's extent along and across its bone is measured from the spread
of its pixels' coordinates between two quantiles (:func:`band_width`), which parts of the band hidden
at its ends and a few stray pixels leave alone. The
torso's width is measured twice, at the chest and at the hips, which vary independently between people.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

import numpy as np

from magicanimate.extraction.body_parts import SEGMENT_INDEX, SIDES, band_width, segment_map
from magicanimate.extraction.joints import Joints

#: segment -> (start joint, end joint) of its bone.
BONES: Dict[str, Tuple[str, str]] = {"torso": ("pelvis", "neck"), "head": ("neck", "head")}
for _s in SIDES:
    BONES.update({
        f"upper_arm_{_s}": (f"shoulder_{_s}", f"elbow_{_s}"), f"lower_arm_{_s}": (f"elbow_{_s}", f"wrist_{_s}"),
        f"hand_{_s}": (f"wrist_{_s}", f"hand_{_s}"), f"upper_leg_{_s}": (f"hip_{_s}", f"knee_{_s}"),
        f"lower_leg_{_s}": (f"knee_{_s}", f"ankle_{_s}"), f"foot_{_s}": (f"ankle_{_s}", f"foot_{_s}"),
    })
#: segments whose bone ends in their own centroid: they keep their shape and are only scaled.
END_SEGMENTS = ("head",) + tuple(f"{k}_{s}" for s in SIDES for k in ("hand", "foot"))
#: joint estimates a measurement may rest on (fallbacks such as "previous" would measure the past).
DIRECT = ("border", "gap", "centroid", "derived")
#: bands of the torso, as fractions of the pelvis-to-neck axis, where its hip and chest widths are taken.
HIP_BAND = (-0.3, 0.25)
CHEST_BAND = (0.55, 1.0)
#: fewest pixels for a segment's extent to count as measured.
MIN_PIXELS = 4


def extent(values: np.ndarray, tail: float = 0.02) -> float:
    """Width from the outermost pixels (robust to a hole in the middle, e.g. an arm across the chest)."""
    lo, hi = np.quantile(values, [tail, 1.0 - tail])
    return float(hi - lo + 1.0)


@dataclass
class SegmentShape:
    length: float  # bone length, pixels
    along: Optional[float]  # the segment's extent along its bone (None: too few pixels)
    across: Optional[float]  # ... and across it
    direct: bool  # both bone joints estimated from this frame's own borders/centroids


@dataclass
class BodyShape:
    segments: Dict[str, SegmentShape] = field(default_factory=dict)
    chest: Optional[float] = None  # torso width near the shoulders, pixels
    hips: Optional[float] = None  # torso width near the hips, pixels
    shoulder_span: Optional[float] = None  # shoulder to shoulder across the torso's axis, pixels
    hip_span: Optional[float] = None  # hip to hip across the torso's axis, pixels
    # Pelvis to the shoulders' midpoint along the torso's axis: unlike the neck (the torso's border with
    # the head), untouched by hair falling over the back.
    shoulder_height: Optional[float] = None

    def length(self, segment: str, direct_only: bool = True) -> Optional[float]:
        s = self.segments.get(segment)
        return None if s is None or (direct_only and not s.direct) else s.length


def bone_axes(a: np.ndarray, b: np.ndarray) -> Optional[Tuple[np.ndarray, np.ndarray, float]]:
    """Unit vectors along and across the bone ``a -> b`` and its length; None for a degenerate bone."""
    d = np.asarray(b, np.float64) - np.asarray(a, np.float64)
    length = float(np.linalg.norm(d))
    if length < 1e-6:
        return None
    u = d / length
    return u, np.array([-u[1], u[0]]), length


def _torso_widths(pixels: np.ndarray, joints: Joints, shape: BodyShape) -> None:
    axes = bone_axes(joints.points["pelvis"], joints.points["neck"])
    if axes is None or len(pixels) < MIN_PIXELS:
        return
    u, n, length = axes
    rel = pixels - joints.points["pelvis"]
    a, v = rel @ u / length, rel @ n
    for name, (lo, hi) in (("hips", HIP_BAND), ("chest", CHEST_BAND)):
        sel = (a >= lo) & (a <= hi)
        if sel.sum() >= MIN_PIXELS:
            setattr(shape, name, extent(v[sel]))
    for joint in ("shoulder", "hip"):
        ends = [f"{joint}_{s}" for s in SIDES]
        if joints.has(*ends) and all(joints.how[e] in DIRECT for e in ends):
            setattr(shape, f"{joint}_span", abs(float((joints.points[ends[0]] - joints.points[ends[1]]) @ n)))
            if joint == "shoulder":
                mid = (joints.points[ends[0]] + joints.points[ends[1]]) / 2
                shape.shoulder_height = float((mid - joints.points["pelvis"]) @ u)


def measure_body(part_map: np.ndarray, joints: Joints) -> BodyShape:
    """Bone lengths and segment extents of the body in ``part_map`` with its ``joints``."""
    segments = segment_map(part_map)
    shape = BodyShape()
    for segment, (j0, j1) in BONES.items():
        if not joints.has(j0, j1):
            continue
        axes = bone_axes(joints.points[j0], joints.points[j1])
        if axes is None:
            continue
        u, n, length = axes
        ys, xs = np.nonzero(segments == SEGMENT_INDEX[segment])
        pixels = np.stack([xs, ys], 1).astype(np.float64)
        along = across = None
        if len(pixels) >= MIN_PIXELS:
            rel = pixels - joints.points[j0]
            along, across = band_width(rel @ u), band_width(rel @ n)
        direct = joints.how.get(j0) in DIRECT and joints.how.get(j1) in DIRECT
        shape.segments[segment] = SegmentShape(length, along, across, direct)
        if segment == "torso":
            _torso_widths(pixels, joints, shape)
    return shape

