"""Synthetic dancers: RGB frames and their exact DensePose conditioning, deterministic by seed.

A dancer is an :class:`~magicanimate.demo.synthetic.body.Identity` (proportions, clothes, hair, background;
from an identity seed) moving along a :class:`~magicanimate.demo.synthetic.motion.Motion` (from a motion
seed). :func:`render_clip` renders both streams at any size:

- ``rgb``: (F, H, W, 3) uint8, anti-aliased by supersampling;
- ``densepose``: (F, H, W, 3) uint8, exactly the MagicAnimate encoding (part index through
  :func:`magicanimate.data.densepose.render_parts`; every pixel one of the 25 palette colours);
- ``parts``: (F, H, W) uint8 part indices 0..24 and ``coverage``: (F, H, W) float32 person coverage.

How the two streams agree is stated precisely in :mod:`magicanimate.demo.synthetic.body`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from magicanimate.data import densepose
from magicanimate.demo.synthetic.body import SEG, Identity, Pose, Projection, rasterise, segment_part_tables
from magicanimate.demo.synthetic.motion import Motion
from magicanimate.errors import ConfigError

__all__ = [
    "Identity",
    "Motion",
    "Pose",
    "SyntheticClip",
    "SyntheticFrame",
    "frame_size",
    "render_background",
    "render_clip",
    "render_frame",
]

SUPERSAMPLE = 3  # odd, so each pixel's centre sample lies exactly on the pixel centre


@dataclass
class SyntheticFrame:
    rgb: np.ndarray  # (H, W, 3) uint8
    parts: np.ndarray  # (H, W) uint8, DensePose part index 0..24
    coverage: np.ndarray  # (H, W) float32 in [0, 1]

    @property
    def densepose(self) -> np.ndarray:
        return densepose.render_parts(self.parts.astype(np.int64))


@dataclass
class SyntheticClip:
    rgb: np.ndarray  # (F, H, W, 3) uint8
    densepose: np.ndarray  # (F, H, W, 3) uint8
    parts: np.ndarray  # (F, H, W) uint8
    coverage: np.ndarray  # (F, H, W) float32
    fps: float


def frame_size(size: int | tuple[int, int]) -> tuple[int, int]:
    """(height, width) from an int or a pair; at least 8x8."""
    h, w = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if int(h) < 8 or int(w) < 8:
        raise ConfigError(f"synthetic frame size must be at least 8x8 pixels, got {h}x{w}")
    return int(h), int(w)


def _check_supersample(k: int) -> int:
    if k < 1 or k % 2 == 0:
        raise ConfigError(f"supersample must be a positive odd integer (pixel-centre sampling), got {k}")
    return k


def _sample_grid(h: int, w: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Centres of the supersampled canvas, in output-pixel units (0 = top/left edge)."""
    return (np.arange(h * k) + 0.5) / k, (np.arange(w * k) + 0.5) / k


def _background_canvas(ident: Identity, h: int, w: int, k: int) -> np.ndarray:
    ys, xs = _sample_grid(h, w, k)
    c0, c1 = (np.array(c, np.float32) for c in ident.bg_colours)
    if ident.background == "gradient":
        t = np.broadcast_to((ys / h)[:, None], (h * k, w * k))
    elif ident.background == "checker":
        p = ident.bg_period * h
        t = ((np.floor(ys / p)[:, None] + np.floor(xs / p)[None, :]) % 2).astype(np.float32)
    elif ident.background == "noise":
        t = cv2.resize(ident.bg_noise.astype(np.float32), (w * k, h * k), interpolation=cv2.INTER_CUBIC)
        t = np.clip((t + 1) / 2, 0, 1)
    else:
        t = np.zeros((h * k, w * k), np.float32)
    canvas = c0 + (c1 - c0) * np.asarray(t, np.float32)[..., None]
    floor_rows = ys >= ident.floor * h
    canvas[floor_rows] = np.array(ident.floor_colour, np.float32)
    return canvas


def _downsample(canvas: np.ndarray, k: int) -> np.ndarray:
    hk, wk = canvas.shape[:2]
    return canvas.reshape(hk // k, k, wk // k, k, *canvas.shape[2:]).mean(axis=(1, 3))


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def render_background(identity: Identity, size: int | tuple[int, int], *, supersample: int = SUPERSAMPLE) -> np.ndarray:
    """The identity's background alone, (H, W, 3) uint8: equal bit for bit to :func:`render_frame`'s RGB
    wherever the dancer covers none of a pixel."""
    h, w = frame_size(size)
    k = _check_supersample(supersample)
    return _to_uint8(_downsample(_background_canvas(identity, h, w, k), k))


def _stripes(coord: np.ndarray, period: float) -> np.ndarray:
    return (np.floor(coord / period) % 2).astype(bool)


def _dots(u: np.ndarray, v: np.ndarray, period: float) -> np.ndarray:
    du = u / period - np.round(u / period)
    dv = v / period - np.round(v / period)
    return du * du + dv * dv < 0.28**2


def _colour_person(ident: Identity, pose: Pose, seg_ids: np.ndarray, body: np.ndarray, joints: dict) -> np.ndarray:
    """Colours (N, 3) float32 of person samples with segment ids (N,) at body coordinates (N, 2)."""
    out = np.empty((len(seg_ids), 3), np.float32)
    skin, shirt, pants = (np.array(c, np.float32) for c in (ident.skin, ident.shirt, ident.pants))
    patt = np.array(ident.shirt_pattern, np.float32)
    sleeve_segs = ["torso", "upper_arm_l", "upper_arm_r"] + (
        ["lower_arm_l", "lower_arm_r"] if ident.long_sleeves else []
    )
    for name, base in (
        ("head", skin),
        ("hair", np.array(ident.hair, np.float32)),
        ("hand_l", skin),
        ("hand_r", skin),
        ("lower_arm_l", skin),
        ("lower_arm_r", skin),
        ("upper_leg_l", pants),
        ("upper_leg_r", pants),
        ("lower_leg_l", pants if ident.long_pants else skin),
        ("lower_leg_r", pants if ident.long_pants else skin),
        ("foot_l", np.array(ident.shoes, np.float32)),
        ("foot_r", np.array(ident.shoes, np.float32)),
    ):
        out[seg_ids == SEG[name]] = base
    for name in sleeve_segs:
        sel = seg_ids == SEG[name]
        if not sel.any():
            continue
        out[sel] = shirt
        if ident.pattern == "plain":
            continue
        # Pattern coordinates move with the garment: the torso's own axes, or along/across each sleeve.
        if name == "torso":
            origin, axis = joints["pelvis"], np.array([-math.sin(pose.lean), math.cos(pose.lean)])
        else:
            side = name[-1]
            a = joints[f"shoulder_{side}"] if name.startswith("upper") else joints[f"elbow_{side}"]
            b = joints[f"elbow_{side}"] if name.startswith("upper") else joints[f"wrist_{side}"]
            origin, axis = a, (b - a) / max(np.linalg.norm(b - a), 1e-9)
        rel = body[sel] - origin
        along = rel @ axis
        across = rel @ np.array([axis[1], -axis[0]])
        mark = _stripes(along, ident.pattern_period) if ident.pattern == "stripes" else _dots(
            along, across, ident.pattern_period
        )
        colours = out[sel]
        colours[mark] = patt
        out[sel] = colours
    c = math.cos(pose.yaw)
    if c > 0.5:
        # Eyes only while the face is towards the camera: the RGB shows which way the dancer faces.
        sel = np.nonzero(seg_ids == SEG["head"])[0]
        head_angle = pose.lean + pose.head
        rel = body[sel] - joints["head"]
        lat = rel @ np.array([math.cos(head_angle), math.sin(head_angle)])
        vert = rel @ np.array([-math.sin(head_angle), math.cos(head_angle)])
        r = ident.head_r
        eye = ((np.abs(lat) - 0.38 * r) ** 2 + (vert - 0.1 * r) ** 2) < (0.14 * r) ** 2
        out[sel[eye]] = np.array((30, 25, 25), np.float32)
    return out


def render_frame(
    identity: Identity, pose: Pose, size: int | tuple[int, int], *, supersample: int = SUPERSAMPLE
) -> SyntheticFrame:
    """Render one frame of ``identity`` in ``pose`` at ``size`` (int or (height, width))."""
    h, w = frame_size(size)
    k = _check_supersample(supersample)
    seg, joints, proj = rasterise(identity, pose, h, w, k)
    canvas = _background_canvas(identity, h, w, k)
    iy, ix = np.nonzero(seg)
    if len(iy):
        samples = np.stack([(ix + 0.5) / k, (iy + 0.5) / k], axis=-1)
        canvas[iy, ix] = _colour_person(identity, pose, seg[iy, ix], proj.inverse(samples), joints)
    rgb = _to_uint8(_downsample(canvas, k))
    coverage = _downsample((seg > 0).astype(np.float32), k).astype(np.float32)
    centre = seg[k // 2 :: k, k // 2 :: k]
    parts = _part_map(centre, pose, proj, joints)
    return SyntheticFrame(rgb=rgb, parts=parts, coverage=coverage)


def _part_map(centre_seg: np.ndarray, pose: Pose, proj: Projection, joints: dict) -> np.ndarray:
    front, back, head_right, head_left = segment_part_tables()
    parts = (front if pose.faces_camera else back)[centre_seg]
    hy, hx = np.nonzero((centre_seg == SEG["head"]) | (centre_seg == SEG["hair"]))
    if len(hy):
        body = proj.inverse(np.stack([hx + 0.5, hy + 0.5], axis=-1))
        head_angle = pose.lean + pose.head
        # Split by the head's own midline; body x points to the person's left whichever way they face.
        lateral = (body - joints["head"]) @ np.array([math.cos(head_angle), math.sin(head_angle)])
        parts[hy, hx] = np.where(lateral > 0, head_left, head_right)
    return parts


def render_clip(
    identity: Identity | int,
    motion: Motion | int,
    num_frames: int,
    size: int | tuple[int, int],
    *,
    fps: float = 25.0,
    start: float = 0.0,
    supersample: int = SUPERSAMPLE,
) -> SyntheticClip:
    """Render ``num_frames`` frames at ``fps`` from time ``start`` (seconds). Identity and motion may be
    given as objects or as their seeds."""
    if num_frames < 1:
        raise ConfigError(f"num_frames must be at least 1, got {num_frames}")
    if not fps > 0:
        raise ConfigError(f"fps must be positive, got {fps}")
    ident = identity if isinstance(identity, Identity) else Identity.from_seed(int(identity))
    mot = motion if isinstance(motion, Motion) else Motion.from_seed(int(motion))
    frames = [render_frame(ident, pose, size, supersample=supersample) for pose in mot.poses(num_frames, fps, start)]
    parts = np.stack([f.parts for f in frames])
    return SyntheticClip(
        rgb=np.stack([f.rgb for f in frames]),
        densepose=np.stack([f.densepose for f in frames]),
        parts=parts,
        coverage=np.stack([f.coverage for f in frames]),
        fps=float(fps),
    )
