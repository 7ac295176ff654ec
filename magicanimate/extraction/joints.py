"""A body's joints and proportions estimated from a DensePose part map alone.

Joints lie on the borders between adjacent body segments: the elbow where the upper arm meets the lower
arm, the wrist where the lower arm meets the hand, the hip where the torso meets the upper leg, and so on;
each is the centroid of that border (or, where the two do not quite touch, the middle of the gap
between them: ``gap``). The head, hands and feet are represented by their centroids, the
pelvis by the midpoint of the hips. Every joint records how it was found (:data:`HOW`), because parts
hide each other: a profile view or an arm behind the back removes borders. Fallbacks, in order:

1. ``part``: the border is missing but the outer segment is seen: its pixel nearest the parent joint
   (e.g. the lower arm's end on the shoulder's side when the upper arm is hidden);
2. ``previous``: the joint keeps its offset from its parent joint in the previous frame;
3. ``part``, from the inner segment: its pixel farthest from the parent joint;
4. ``mirrored`` (shoulders, hips): the other side's joint reflected across the torso's axis;
5. ``missing``: none of the above applies.

Coordinates are (x, y) pixels, x right, y down, pixel centres at integers. Sides are the person's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from magicanimate.extraction.body_parts import (
    SEGMENT_INDEX, SIDES, back_surface_parts, band_width, border_centroids, front_surface_parts, segment_map,
)

#: how a joint was estimated (see the module docstring); ``derived`` = from other joints (the pelvis).
HOW = ("border", "gap", "centroid", "part", "previous", "mirrored", "derived", "missing")
#: widest gap between two segments that still places the joint between them, as a fraction of the square
#: root of the torso's area (segments that should touch can be a pixel or two apart, e.g. at the neck).
MAX_GAP = 0.25
#: fewest border pixel pairs for a border to place a joint (one pair is often a stray pixel).
MIN_BORDER = 2

# joint -> (inner segment, outer segment, parent joint); the joint lies on the border of the two segments.
BORDER_JOINTS: Dict[str, Tuple[str, str, str]] = {"neck": ("torso", "head", "torso_centre")}
# joint -> (segment whose centroid it is, parent joint)
CENTROID_JOINTS: Dict[str, Tuple[str, str]] = {"torso_centre": ("torso", ""), "head": ("head", "neck")}
for _s in SIDES:
    BORDER_JOINTS.update({
        f"shoulder_{_s}": ("torso", f"upper_arm_{_s}", "neck"),
        f"elbow_{_s}": (f"upper_arm_{_s}", f"lower_arm_{_s}", f"shoulder_{_s}"),
        f"wrist_{_s}": (f"lower_arm_{_s}", f"hand_{_s}", f"elbow_{_s}"),
        f"hip_{_s}": ("torso", f"upper_leg_{_s}", "torso_centre"),
        f"knee_{_s}": (f"upper_leg_{_s}", f"lower_leg_{_s}", f"hip_{_s}"),
        f"ankle_{_s}": (f"lower_leg_{_s}", f"foot_{_s}", f"knee_{_s}"),
    })
    CENTROID_JOINTS.update({f"hand_{_s}": (f"hand_{_s}", f"wrist_{_s}"),
                            f"foot_{_s}": (f"foot_{_s}", f"ankle_{_s}")})
_ORDER = ["torso_centre", "neck", "head"] + [
    f"{j}_{s}" for j in ("hip", "shoulder") for s in SIDES] + [
    f"{j}_{s}" for s in SIDES for j in ("elbow", "wrist", "hand", "knee", "ankle", "foot")]
#: every joint name, parents before children; ``pelvis`` last (from the hips).
JOINT_NAMES: Tuple[str, ...] = tuple(_ORDER) + ("pelvis",)


@dataclass
class Joints:
    """Joints of one frame: ``points[name]`` (x, y) for those found, ``how[name]`` for every name."""

    points: Dict[str, np.ndarray] = field(default_factory=dict)
    how: Dict[str, str] = field(default_factory=dict)
    facing: Optional[str] = None  # "front", "back", or None (no front/back surface seen)

    def get(self, name: str) -> Optional[np.ndarray]:
        return self.points.get(name)

    def has(self, *names: str) -> bool:
        return all(n in self.points for n in names)

    @property
    def empty(self) -> bool:
        return not self.points


def _facing(part_map: np.ndarray) -> Optional[str]:
    front = int(np.isin(part_map, front_surface_parts()).sum())
    back = int(np.isin(part_map, back_surface_parts()).sum())
    if front == back == 0:
        return None
    return "front" if front >= back else "back"


class _Frame:
    """Per-frame lookups shared by the estimators: segment pixels and border centroids."""

    def __init__(self, part_map: np.ndarray):
        self.segments = segment_map(part_map)
        self.borders = border_centroids(self.segments)
        ys, xs = np.nonzero(self.segments)
        labels = self.segments[ys, xs]
        order = np.argsort(labels, kind="stable")
        self._xy = np.stack([xs, ys], 1)[order].astype(np.float64)
        self._bounds = np.searchsorted(labels[order], np.arange(len(SEGMENT_INDEX) + 2))

    def pixels(self, segment: str) -> np.ndarray:
        """``(n, 2)`` xy of the segment's pixels."""
        i = SEGMENT_INDEX[segment]
        return self._xy[self._bounds[i]:self._bounds[i + 1]]

    def border_points(self, a: str, b: str) -> np.ndarray:
        """``(n, 2)`` midpoints of the 4-neighbour pixel pairs between segments ``a`` and ``b``."""
        i, j = SEGMENT_INDEX[a], SEGMENT_INDEX[b]
        s = self.segments
        points = []
        for axis in (0, 1):
            p, q = (s[:-1], s[1:]) if axis == 0 else (s[:, :-1], s[:, 1:])
            yy, xx = np.nonzero(((p == i) & (q == j)) | ((p == j) & (q == i)))
            points.append(np.stack([xx + 0.5 * axis, yy + 0.5 * (1 - axis)], 1))
        return np.concatenate(points).astype(np.float64)

    def gap(self, a: str, b: str) -> Optional[np.ndarray]:
        """Midpoint of the narrow gap between segments ``a`` and ``b`` that do not touch; None when one is
        unseen or the gap is wider than :data:`MAX_GAP` times the square root of the torso's area."""
        pa, pb = self.pixels(a), self.pixels(b)
        torso = len(self.pixels("torso"))
        if not len(pa) or not len(pb) or not torso:
            return None
        free = np.full(self.segments.shape, 255, np.uint8)
        free[pa[:, 1].astype(int), pa[:, 0].astype(int)] = 0
        dist, label = cv2.distanceTransformWithLabels(free, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
        ib = pb.astype(int)
        d = dist[ib[:, 1], ib[:, 0]]
        if d.min() > MAX_GAP * np.sqrt(torso):
            return None
        near = d <= d.min() + 0.5
        lookup = np.zeros((label.max() + 1, 2))
        lookup[label[pa[:, 1].astype(int), pa[:, 0].astype(int)]] = pa
        return ((pb[near] + lookup[label[ib[near, 1], ib[near, 0]]]) / 2).mean(0)

    def border(self, a: str, b: str) -> Optional[np.ndarray]:
        i, j = sorted((SEGMENT_INDEX[a], SEGMENT_INDEX[b]))
        hit = self.borders.get((i, j))
        return hit[0] if hit is not None and hit[1] >= MIN_BORDER else None


def _nearest(pixels: np.ndarray, to: np.ndarray, farthest: bool = False) -> np.ndarray:
    d = ((pixels - to) ** 2).sum(1)
    return pixels[int(np.argmax(d) if farthest else np.argmin(d))].copy()


def _reflect(point: np.ndarray, origin: np.ndarray, axis_point: np.ndarray) -> Optional[np.ndarray]:
    u = axis_point - origin
    n = np.linalg.norm(u)
    if n < 1e-6:
        return None
    u = u / n
    rel = point - origin
    return origin + 2 * (rel @ u) * u - rel


def _border_joint(frame: _Frame, name: str, out: Joints, previous: Optional[Joints]) -> None:
    inner, outer, parent = BORDER_JOINTS[name]
    at = frame.border(inner, outer)
    if at is not None:
        out.points[name], out.how[name] = at, "border"
        return
    at = frame.gap(inner, outer)
    if at is not None:
        out.points[name], out.how[name] = at, "gap"
        return
    p = out.get(parent)
    outer_px, inner_px = frame.pixels(outer), frame.pixels(inner)
    if p is not None and len(outer_px) and inner != "torso":
        out.points[name], out.how[name] = _nearest(outer_px, p), "part"
    elif p is not None and previous is not None and previous.has(name, parent):
        out.points[name], out.how[name] = p + previous.points[name] - previous.points[parent], "previous"
    elif p is not None and len(inner_px) and inner != "torso":
        out.points[name], out.how[name] = _nearest(inner_px, p, farthest=True), "part"
    out.how.setdefault(name, "missing")


def _centroid_joint(frame: _Frame, name: str, out: Joints, previous: Optional[Joints]) -> None:
    segment, parent = CENTROID_JOINTS[name]
    px = frame.pixels(segment)
    p = out.get(parent) if parent else None
    if len(px):
        out.points[name], out.how[name] = px.mean(0), "centroid"
    elif p is not None and previous is not None and previous.has(name, parent):
        out.points[name], out.how[name] = p + previous.points[name] - previous.points[parent], "previous"
    else:
        out.how[name] = "missing"


def _mirror_missing(out: Joints, joint: str) -> None:
    for side, other in (SIDES, SIDES[::-1]):
        name = f"{joint}_{side}"
        if out.how.get(name) == "missing" and out.has(f"{joint}_{other}", "torso_centre", "neck"):
            at = _reflect(out.points[f"{joint}_{other}"], out.points["torso_centre"], out.points["neck"])
            if at is not None:
                out.points[name], out.how[name] = at, "mirrored"


def _neck_fallback(frame: _Frame, out: Joints) -> None:
    """No torso|head border (head hidden or cut off): the torso's end towards the head, else its top."""
    if "neck" in out.points or "torso_centre" not in out.points:
        return
    torso = frame.pixels("torso")
    towards = out.get("head")
    if towards is None:
        towards = out.points["torso_centre"] - np.array([0.0, 1.0])  # upright: the head is up
    u = towards - out.points["torso_centre"]
    u = u / max(np.linalg.norm(u), 1e-6)
    proj = (torso - out.points["torso_centre"]) @ u
    top = torso[proj >= np.quantile(proj, 0.95)]
    out.points["neck"], out.how["neck"] = top.mean(0), "part"


def _refine_shoulder(frame: _Frame, out: Joints, side: str) -> None:
    """Where the upper arm lies over (or under) the torso, their border runs along the arm, and its
    centroid slides from the shoulder towards the elbow: keep only the border's end away from the elbow."""
    name = f"shoulder_{side}"
    upper, lower = f"upper_arm_{side}", f"lower_arm_{side}"
    if out.how.get(name) != "border":
        return
    elbow = frame.border(upper, lower)
    elbow = frame.gap(upper, lower) if elbow is None else elbow
    if elbow is None and len(frame.pixels(lower)):  # the elbow's "part" estimate: only its direction counts
        elbow = _nearest(frame.pixels(lower), out.points[name])
    if elbow is None:
        return
    points = frame.border_points("torso", upper)
    dist = np.linalg.norm(points - elbow, axis=1)
    arm = frame.pixels(upper)
    axis = out.points[name] - elbow
    axis = axis / max(np.linalg.norm(axis), 1e-6)
    across = (arm - elbow) @ np.array([-axis[1], axis[0]])
    width = band_width(across) if len(arm) > 1 else 1.0
    out.points[name] = points[dist >= dist.max() - width].mean(0)


def estimate_joints(part_map: np.ndarray, previous: Optional[Joints] = None) -> Joints:
    """Joints of one ``(H, W)`` DensePose part map (ints 0..24); ``previous``: the previous frame's."""
    frame = _Frame(np.asarray(part_map))
    out = Joints(facing=_facing(part_map))
    for name in JOINT_NAMES[:-1]:
        (_border_joint if name in BORDER_JOINTS else _centroid_joint)(frame, name, out, previous)
        if name == "head":
            _neck_fallback(frame, out)
        if name.startswith("shoulder_"):  # before the arm's joints are placed relative to it
            _refine_shoulder(frame, out, name.split("_")[1])
        if name in ("hip_right", "shoulder_right"):  # both sides known: a hidden one mirrors the other
            _mirror_missing(out, name.split("_")[0])
    if out.has("hip_left", "hip_right"):
        out.points["pelvis"] = (out.points["hip_left"] + out.points["hip_right"]) / 2
        out.how["pelvis"] = "derived"
    else:
        out.how["pelvis"] = "missing"
    return out


def track_joints(part_maps: Sequence[np.ndarray]) -> List[Joints]:
    """Joints of every frame of ``(N, H, W)`` part maps, each frame falling back on the one before."""
    previous: Optional[Joints] = None
    result = []
    for part_map in part_maps:
        joints = estimate_joints(part_map, previous)
        result.append(joints)
        if not joints.empty:
            previous = joints
    return result
