"""Retargeting: the driver's motion on the reference person's body, in DensePose part maps.

``retarget_parts(driving, reference)`` keeps what belongs to the motion (the driver's joint angles, which
way they face, the parts they hide, where they move) and takes from the reference what belongs to the
body (every bone's length, every segment's width, the head's size, and where the person stands):

1. joints of the reference and of every driving frame (:mod:`magicanimate.extraction.joints`), and their
   proportions (:mod:`magicanimate.extraction.body_shape`); per segment, the reference's length and width
   over the driver's give the factors that turn one body into the other;
2. per frame, the skeleton is rebuilt from the root outwards: the pelvis starts where the reference's is
   and follows the driver's displacement from its first frame, scaled by the ratio of body sizes; every
   bone keeps the driver's direction with its length scaled;
3. every segment is moved by the transform of its bone (:mod:`magicanimate.extraction.part_warp`) and
   painted in the driver's depth order (:mod:`magicanimate.extraction.layering`).

Frames without a person stay empty. A frame with a person but no torso to hang a skeleton on (a close-up
of a hand) is moved by the global scale and shift instead; :class:`Retargeted` lists such frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np
from tqdm.auto import tqdm

from magicanimate.data.densepose import NUM_PARTS
from magicanimate.errors import InputError
from magicanimate.extraction import layering
from magicanimate.extraction.body_parts import SEGMENT_NAMES, segment_map
from magicanimate.extraction.body_shape import BONES, END_SEGMENTS, BodyShape, bone_axes, measure_body
from magicanimate.extraction.joints import Joints, estimate_joints, track_joints
from magicanimate.extraction.part_warp import BoneTransform, TorsoTransform, paint_segments

#: how much people's proportions differ (spread of log ratios between a segment's and the body's factor).
PROPORTION_SPREAD = 0.2
#: uncertainty of one length or width measured on a part map, pixels.
PIXEL_NOISE = 0.5
#: per-segment factors outside this range are taken as failed measurements (the body ratio is used).
RATIO_RANGE = (0.5, 2.0)
# Segments in the order their bones are rebuilt (parents first); the torso is placed before all of them.
_CHAIN = ("head",) + tuple(f"{k}_{s}" for s in ("left", "right") for k in (
    "upper_arm", "lower_arm", "hand", "upper_leg", "lower_leg", "foot"))

PARENT = {"head": "torso"}
for _s in ("left", "right"):
    PARENT.update({f"upper_arm_{_s}": "torso", f"lower_arm_{_s}": f"upper_arm_{_s}", f"hand_{_s}": f"lower_arm_{_s}",
                   f"upper_leg_{_s}": "torso", f"lower_leg_{_s}": f"upper_leg_{_s}", f"foot_{_s}": f"lower_leg_{_s}"})


@dataclass
class Factors:
    """How the driver's body turns into the reference's: per segment, scale factors (bone, along, across):
    the bone's length, and the segment's shape along and across it (the same as the bone's for limbs)."""

    body: float  # overall size ratio, reference over driver (root displacement, fallbacks)
    segments: Dict[str, Tuple[float, float, float]] = field(default_factory=dict)
    hips: float = 1.0  # torso width at the hips
    hip_span: float = 1.0  # distance between the hip joints (where the legs hang)
    chest: float = 1.0


@dataclass
class Retargeted:
    parts: np.ndarray  # (N, H, W) retargeted part maps
    factors: Factors
    reference_joints: Joints
    driving_joints: List[Joints]
    global_frames: List[int]  # frames moved by the global scale and shift (no skeleton found)


def _ratio(ref: Optional[float], drv: Optional[float], default: float) -> float:
    if ref is None or drv is None or drv <= 0 or ref <= 0:
        return default
    r = ref / drv
    return r if RATIO_RANGE[0] <= r <= RATIO_RANGE[1] else default


def _part_ratio(ref: Optional[float], drv: Optional[float], body: float) -> float:
    """A segment's factor: its measured ratio, drawn towards the body's ratio as far as the measurement is
    uncertain. A width of a few pixels, each end uncertain by about a pixel, says little; a precision-
    weighted mean in log space (:data:`PROPORTION_SPREAD` a priori, :data:`PIXEL_NOISE` per measurement)
    trusts wide segments and thin ones in proportion."""
    r = _ratio(ref, drv, body)
    if r == body:
        return body
    noise = PIXEL_NOISE ** 2 * (1.0 / ref ** 2 + 1.0 / drv ** 2)
    weight = PROPORTION_SPREAD ** 2 / (PROPORTION_SPREAD ** 2 + noise)
    return float(body * (r / body) ** weight)


def _body_size(shape: BodyShape, parts: Tuple[str, ...], torso: str) -> Optional[float]:
    lengths = [shape.length(p) for p in parts] + [getattr(shape, torso) if torso == "shoulder_height"
                                                  else shape.length("torso")]
    return None if any(v is None for v in lengths) else float(sum(lengths))


def body_ratio(ref: BodyShape, drv: BodyShape) -> float:
    """Reference size over driver size: torso plus legs where both show them, else the torso, else 1.
    The torso is measured to the shoulders where both bodies show them, else to the neck."""
    torso = "shoulder_height" if ref.shoulder_height and drv.shoulder_height else "neck"
    for parts in ((f"upper_leg_{s}", f"lower_leg_{s}") for s in ("left", "right")):
        r, d = _body_size(ref, parts, torso), _body_size(drv, parts, torso)
        if r and d:
            return _ratio(r, d, 1.0)
    return _ratio(_body_size(ref, (), torso), _body_size(drv, (), torso), 1.0)


def body_factors(ref: BodyShape, drv: BodyShape) -> Factors:
    """Per-segment scale factors from the driver's body to the reference's (see :class:`Factors`)."""
    k = body_ratio(ref, drv)
    # At the chest, the shoulders' span measures the width better than the torso's pixels, which arms often
    # cover. At the hips the two differ: the torso's width there, and the span of the hip joints (legs set
    # wide or close under the same hips).
    hips = _part_ratio(ref.hips, drv.hips, k)
    chest = _part_ratio(ref.shoulder_span, drv.shoulder_span, _part_ratio(ref.chest, drv.chest, k))
    factors = Factors(body=k, hips=hips, chest=chest, hip_span=_part_ratio(ref.hip_span, drv.hip_span, hips))
    torso = _part_ratio(ref.shoulder_height, drv.shoulder_height,
                        _part_ratio(ref.length("torso"), drv.length("torso"), k))
    for name in SEGMENT_NAMES:
        r, d = ref.segments.get(name), drv.segments.get(name)
        if r is None or d is None:
            factors.segments[name] = (k, k, k)
            continue
        bone = torso if name == "torso" else _part_ratio(ref.length(name), drv.length(name), k)
        across = _part_ratio(r.across, d.across, k)
        along = _part_ratio(r.along, d.along, across) if name in END_SEGMENTS else bone
        factors.segments[name] = (bone, along, across)
    return factors


def driver_shape(maps: np.ndarray, joints: List[Joints], first: int) -> BodyShape:
    """The driver's body as seen in frame ``first``; segments not measured there come from the earliest
    frame where both their joints are seen, rescaled by the torso's length against frame ``first``'s.

    One frame, not a median over the video: a reference is measured in one pose, and measurements (how
    wide a slanted arm looks in pixels, where a border lies) depend a little on the pose; a driver whose
    video starts in the reference's pose (as dances usually do, and as the benchmark's do) cancels them.
    """
    shape = measure_body(maps[first], joints[first])
    base = shape.length("torso")
    missing = [s for s in SEGMENT_NAMES if shape.length(s) is None]
    for i in range(first + 1, len(maps)):
        if not missing or base is None:
            break
        if joints[i].empty:
            continue
        later = measure_body(maps[i], joints[i])
        torso = later.length("torso")
        if torso is None:
            continue
        for name in [s for s in missing if later.length(s) is not None]:
            seg = later.segments[name]
            f = base / torso
            shape.segments[name] = type(seg)(seg.length * f, seg.along and seg.along * f,
                                             seg.across and seg.across * f, True)
            missing.remove(name)
    return shape


def frame_transforms(joints: Joints, factors: Factors, root: np.ndarray) -> Dict[str, object]:
    """The transform of every segment of one driving frame whose skeleton starts at ``root``."""
    axes = bone_axes(joints.points["pelvis"], joints.points["neck"])
    if axes is None:
        return {}
    u, _, length = axes
    torso = TorsoTransform(joints.points["pelvis"], root, u, length, factors.segments["torso"][0],
                           factors.hips, factors.chest)
    transforms: Dict[str, object] = {"torso": torso}
    legs = BoneTransform(joints.points["pelvis"], root, u, factors.segments["torso"][0], factors.hip_span)
    new = {name: (legs if name.startswith("hip") else torso).forward(joints.points[name][None])[0] for name in (
        "pelvis", "neck", "shoulder_left", "shoulder_right", "hip_left", "hip_right") if joints.has(name)}
    for name in _CHAIN:
        start, end = BONES[name]
        if start not in new or not joints.has(end):
            continue
        axes = bone_axes(joints.points[start], joints.points[end])
        if axes is None:
            continue
        bone, along, across = factors.segments[name]
        new[end] = new[start] + bone * (joints.points[end] - joints.points[start])
        pivot = end if name in END_SEGMENTS else start
        transforms[name] = BoneTransform(joints.points[pivot], new[pivot], axes[0], along, across)
    for name in _CHAIN:  # a segment without its own bone moves with the segment it hangs on
        if name not in transforms and PARENT[name] in transforms:
            transforms[name] = transforms[PARENT[name]]
    return transforms


def _global(factors: Factors, src: np.ndarray, dst: np.ndarray) -> BoneTransform:
    return BoneTransform(src, dst, np.array([1.0, 0.0]), factors.body, factors.body)


def _check_maps(driving: np.ndarray, reference: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    driving, reference = np.asarray(driving), np.asarray(reference)
    for name, a, ndim in (("driving", driving, 3), ("reference", reference, 2)):
        if a.ndim != ndim or not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"{name} part maps must be {ndim}-D integers, got {a.shape} {a.dtype}")
        if a.size and (a.min() < 0 or a.max() > NUM_PARTS):
            raise ValueError(f"{name} part indices must lie in 0..{NUM_PARTS}, got {a.min()}..{a.max()}")
    if driving.shape[1:] != reference.shape:
        raise ValueError(f"driving frames {driving.shape[1:]} and reference {reference.shape} differ in size")
    return driving, reference


def _box(part_map: np.ndarray) -> Tuple[np.ndarray, float]:
    """Centre and height of the person's bounding box."""
    ys, xs = np.nonzero(part_map)
    return np.array([(xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2]), float(ys.max() - ys.min() + 1)


def reference_joints(reference: np.ndarray, source: str) -> Joints:
    """The reference's joints; InputError (naming ``source``) when it shows no person or no torso."""
    if not reference.any():
        raise InputError(f"{source}: no person in the reference's DensePose map (every pixel is background); "
                         f"retargeting needs a reference showing the person to animate")
    joints = estimate_joints(reference)
    if not joints.has("pelvis", "neck"):
        raise InputError(f"{source}: the reference's DensePose map shows no torso with hips and neck to measure "
                         f"the body on; retargeting needs a reference showing the person's whole body")
    return joints


def retarget(driving: np.ndarray, reference: np.ndarray, *, source: str = "reference",
             progress: bool = False) -> Retargeted:
    """Retarget ``(N, H, W)`` driving part maps to the body of the ``(H, W)`` reference part map.

    Raises :class:`InputError` (naming ``source``) when the reference shows no person or no torso.
    ``progress``: show a progress bar over the frames.
    """
    driving, reference = _check_maps(driving, reference)
    ref_joints = reference_joints(reference, source)
    joints = track_joints(driving)
    rooted = [i for i, j in enumerate(joints) if j.has("pelvis", "neck")]
    if rooted:
        first = rooted[0]
        factors = body_factors(measure_body(reference, ref_joints), driver_shape(driving, joints, first))
        origin, anchor = joints[first].points["pelvis"], ref_joints.points["pelvis"]
    else:  # no skeleton anywhere: match the bounding boxes of the first person and of the reference
        people = [i for i in range(len(driving)) if driving[i].any()]
        anchor, ref_height = _box(reference)
        origin, height = _box(driving[people[0]]) if people else (anchor, ref_height)
        factors = Factors(_ratio(ref_height, height, 1.0))
    out = np.zeros_like(driving)
    fallback: List[int] = []
    for i in tqdm(range(len(driving)), desc="retarget", unit="frame", leave=False, disable=not progress):
        if not driving[i].any():
            continue
        transforms = {}
        if joints[i].has("pelvis", "neck"):
            root = anchor + factors.body * (joints[i].points["pelvis"] - origin)
            transforms = frame_transforms(joints[i], factors, root)
        if not transforms:
            fallback.append(i)
            whole = _global(factors, origin, anchor)
            transforms = {name: whole for name in SEGMENT_NAMES}
        out[i] = _paint_frame(driving[i], joints[i], transforms)
    return Retargeted(out, factors, ref_joints, joints, fallback)


def _paint_frame(part_map: np.ndarray, joints: Joints, transforms: Dict[str, object]) -> np.ndarray:
    segments = segment_map(part_map)
    support = layering.supports(segments, joints)
    order = layering.depth_order(segments, joints.facing, support)
    hidden = layering.hidden_regions(segments, order, support)
    return paint_segments(part_map, segments, transforms, order, hidden)


def retarget_parts(driving: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``(N, H, W)`` driving part maps retargeted to the body in the ``(H, W)`` reference part map (see the
    module docstring)."""
    return retarget(driving, reference).parts
