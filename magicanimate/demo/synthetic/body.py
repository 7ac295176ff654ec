"""The synthetic dancer's body: identity (proportions, clothes, background), pose, and rasterisation.

The dancer is a flat 2D articulated figure. It is rasterised once into a map of *segments* (torso, head,
hair, upper/lower arms, hands, upper/lower legs, feet) at ``supersample`` times the output resolution;
from that one map come both outputs, so they cannot disagree:

- the DensePose part map takes, for every output pixel, the segment under the pixel's *centre* sample
  (``supersample`` is odd, so the centre sample sits exactly on the pixel centre) and maps it to the
  DensePose fine-segmentation index through the single part table of :mod:`magicanimate.data.densepose`
  (front or back surface by which way the dancer faces; the head split into the person's right/left half);
- the RGB frame is the area mean of the supersampled colour image (person colours over the background),
  which anti-aliases the silhouette. ``coverage`` is the share of a pixel's samples on the person.

Hence, per pixel: coverage 0 ⇒ background in both outputs and the RGB equals :func:`render_background`
bit for bit; coverage 1 ⇒ a body part in both. They can differ only where 0 < coverage < 1 (edge pixels).

Body coordinates: origin at the pelvis, x towards the person's own left, y up, unit = body height.
The figure is projected frontally; ``yaw`` turns it (0 faces the camera, π shows the back): the image is
mirrored when the back faces the camera and the width shrinks with |cos yaw| down to a profile floor.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from magicanimate.data import densepose

# Internal segment ids (0 = background). Hair is its own segment for colouring but labelled as head.
SEGMENTS = (
    "background",
    "torso",
    "head",
    "hair",
    "upper_arm_l",
    "lower_arm_l",
    "hand_l",
    "upper_arm_r",
    "lower_arm_r",
    "hand_r",
    "upper_leg_l",
    "lower_leg_l",
    "foot_l",
    "upper_leg_r",
    "lower_leg_r",
    "foot_r",
)
SEG = {name: i for i, name in enumerate(SEGMENTS)}

# Which DensePose part each segment is, as words of its name in densepose.PART_NAMES (matched as a subset
# of the name's words, so the table itself stays in densepose.py). Sided parts use the person's own side.
_PART_WORDS = {
    "torso": ("torso",),
    "upper_arm_l": ("upper", "arm", "left"),
    "lower_arm_l": ("lower", "arm", "left"),
    "hand_l": ("left", "hand"),
    "upper_arm_r": ("upper", "arm", "right"),
    "lower_arm_r": ("lower", "arm", "right"),
    "hand_r": ("right", "hand"),
    "upper_leg_l": ("upper", "leg", "left"),
    "lower_leg_l": ("lower", "leg", "left"),
    "foot_l": ("left", "foot"),
    "upper_leg_r": ("upper", "leg", "right"),
    "lower_leg_r": ("lower", "leg", "right"),
    "foot_r": ("right", "foot"),
}


def _name_words(name: str) -> set[str]:
    return set(name.lower().replace("_", " ").replace("-", " ").split())


def _find_part(words: tuple[str, ...]) -> int:
    names = list(densepose.PART_NAMES)
    offset = 0 if len(names) == densepose.NUM_PARTS + 1 else 1  # with or without a background entry
    hits = [i + offset for i, n in enumerate(names) if set(words) <= _name_words(n) and i + offset > 0]
    if len(hits) != 1:
        raise RuntimeError(f"DensePose part table: expected one part named like {words}, found {hits}")
    return hits[0]


@functools.lru_cache(maxsize=1)
def segment_part_tables() -> tuple[np.ndarray, np.ndarray, int, int]:
    """(front_lut, back_lut, head_right, head_left): segment id -> DensePose part index.

    front_lut is used while the dancer's front faces the camera, back_lut while its back does. Head and
    hair entries are 0 in both: they are split into the right/left head halves per pixel.
    """
    front = np.zeros(len(SEGMENTS), np.uint8)
    back = np.zeros(len(SEGMENTS), np.uint8)
    for seg, words in _PART_WORDS.items():
        if words[-1] in ("hand", "foot"):
            front[SEG[seg]] = back[SEG[seg]] = _find_part(words)
        else:
            front[SEG[seg]] = _find_part(words + ("front",))
            back[SEG[seg]] = _find_part(words + ("back",))
    return front, back, _find_part(("head", "right")), _find_part(("head", "left"))


# ----------------------------------------------------------------------------------------------------------
# Identity

_SKIN_TONES = np.array(
    [(255, 224, 196), (241, 194, 160), (224, 172, 125), (198, 134, 86), (141, 85, 46), (92, 56, 32)],
    np.float64,
)
_HAIR_COLOURS = np.array(
    [(20, 16, 14), (60, 40, 25), (110, 70, 35), (200, 160, 90), (150, 60, 30), (170, 170, 170)], np.float64
)
PATTERNS = ("plain", "stripes", "dots")
BACKGROUNDS = ("solid", "gradient", "checker", "noise")
HAIR_STYLES = ("short", "long", "bald")


@dataclass(frozen=True)
class Identity:
    """Everything about a dancer that does not move: body proportions, clothes, hair, background.

    Lengths are in body-height units; colours are RGB triples in 0..255.
    """

    seed: int
    # proportions
    head_r: float
    neck: float
    torso_len: float
    shoulder_w: float
    waist_w: float
    hip_w: float
    upper_arm: float
    lower_arm: float
    arm_r: float
    hand_r: float
    upper_leg: float
    lower_leg: float
    leg_r: float
    foot_len: float
    # looks
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    hair_style: str
    shirt: tuple[int, int, int]
    shirt_pattern: tuple[int, int, int]
    pattern: str
    pattern_period: float
    long_sleeves: bool
    pants: tuple[int, int, int]
    long_pants: bool
    shoes: tuple[int, int, int]
    background: str
    bg_colours: tuple[tuple[int, int, int], tuple[int, int, int]]
    bg_period: float
    bg_noise: np.ndarray = field(repr=False, compare=False)
    floor: float  # image-height fraction where a floor band starts (> 1: no floor)
    floor_colour: tuple[int, int, int]

    @classmethod
    def from_seed(cls, seed: int) -> Identity:
        """Sample an identity; the same seed always gives the same identity."""
        rng = np.random.default_rng([int(seed), 0x1D])
        u = rng.uniform

        def colour(sat=(0.35, 0.95), val=(0.35, 0.95)) -> np.ndarray:
            hsv = np.array([[[u(0, 180), u(*sat) * 255, u(*val) * 255]]], np.float32)
            return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float64)

        background = BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
        bg = [colour((0.05, 0.6), (0.25, 1.0)) for _ in range(2)]
        if background == "solid":
            bg[1] = bg[0]
        bg_mean = (bg[0] + bg[1]) / 2

        def contrasting(**kw) -> tuple[int, int, int]:
            # Clothes must stand out from the background, or the silhouette is invisible in RGB.
            for _ in range(64):
                c = colour(**kw)
                if np.linalg.norm(c - bg_mean) > 90:
                    break
            return tuple(int(v) for v in c)

        w = rng.dirichlet(np.ones(2))
        i = rng.integers(len(_SKIN_TONES) - 1)
        skin = w[0] * _SKIN_TONES[i] + w[1] * _SKIN_TONES[i + 1]
        shirt = contrasting()
        shirt_pattern = contrasting()
        head_r = u(0.058, 0.075)
        return cls(
            seed=int(seed),
            head_r=head_r,
            neck=u(0.015, 0.035),
            torso_len=u(0.26, 0.32),
            shoulder_w=u(0.09, 0.13),
            waist_w=u(0.06, 0.09),
            hip_w=u(0.07, 0.1),
            upper_arm=u(0.14, 0.17),
            lower_arm=u(0.13, 0.16),
            arm_r=u(0.02, 0.03),
            hand_r=u(0.022, 0.03),
            upper_leg=u(0.21, 0.25),
            lower_leg=u(0.2, 0.24),
            leg_r=u(0.028, 0.04),
            foot_len=u(0.05, 0.07),
            skin=tuple(int(v) for v in skin),
            hair=tuple(int(v) for v in _HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))]),
            hair_style=HAIR_STYLES[rng.integers(len(HAIR_STYLES))],
            shirt=shirt,
            shirt_pattern=shirt_pattern,
            pattern=PATTERNS[rng.integers(len(PATTERNS))],
            pattern_period=u(0.035, 0.07),
            long_sleeves=bool(rng.integers(2)),
            pants=contrasting(val=(0.15, 0.8)),
            long_pants=bool(rng.integers(3) > 0),
            shoes=contrasting(sat=(0.0, 0.6), val=(0.05, 0.6)),
            background=background,
            bg_colours=(tuple(int(v) for v in bg[0]), tuple(int(v) for v in bg[1])),
            bg_period=u(0.08, 0.25),
            bg_noise=rng.uniform(-1, 1, size=(5, 5)),
            floor=u(0.75, 0.9) if rng.uniform() < 0.5 else 2.0,
            floor_colour=tuple(int(v) for v in colour((0.0, 0.4), (0.2, 0.7))),
        )

    def to_dict(self) -> dict:
        """JSON-friendly summary (for manifests); the seed alone reproduces the identity."""
        return {
            "seed": self.seed,
            "pattern": self.pattern,
            "hair_style": self.hair_style,
            "long_sleeves": self.long_sleeves,
            "long_pants": self.long_pants,
            "background": self.background,
            "skin": list(self.skin),
            "shirt": list(self.shirt),
            "pants": list(self.pants),
        }


# ----------------------------------------------------------------------------------------------------------
# Pose


@dataclass(frozen=True)
class Pose:
    """One frame's pose. Limb angles are in radians, 0 = hanging straight down, positive = outwards
    (away from the body's midline); elbow/knee angles are relative to the upper limb."""

    x: float = 0.5  # pelvis position, fraction of image width
    y: float = 0.52  # pelvis position, fraction of image height
    scale: float = 0.8  # body height, fraction of image height
    yaw: float = 0.0  # 0 faces the camera, pi shows the back
    lean: float = 0.0  # upper-body rotation about the pelvis, towards the person's left
    head: float = 0.0  # head tilt relative to the torso
    shoulder_l: float = 0.2
    elbow_l: float = 0.1
    shoulder_r: float = 0.2
    elbow_r: float = 0.1
    hip_l: float = 0.06
    knee_l: float = 0.0
    hip_r: float = 0.06
    knee_r: float = 0.0

    @property
    def faces_camera(self) -> bool:
        return math.cos(self.yaw) >= 0


# Width of the figure in profile, relative to frontal: a 2D figure squashed to zero width would vanish.
PROFILE_WIDTH = 0.45


def _rot(v: np.ndarray, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def _limb_dir(side: float, angle: float, lean: float = 0.0) -> np.ndarray:
    return _rot(np.array([side * math.sin(angle), -math.cos(angle)]), lean)


def skeleton(ident: Identity, pose: Pose) -> dict[str, np.ndarray]:
    """Joint positions in body coordinates (see the module docstring)."""
    j: dict[str, np.ndarray] = {"pelvis": np.zeros(2)}
    up = lambda p: _rot(np.asarray(p, np.float64), pose.lean)  # noqa: E731  (upper body follows the lean)
    j["neck"] = up((0.0, ident.torso_len))
    j["head"] = j["neck"] + _rot(np.array([0.0, ident.neck + ident.head_r * 1.05]), pose.lean + pose.head)
    for side, s in (("l", 1.0), ("r", -1.0)):
        sh_angle, el_angle = getattr(pose, f"shoulder_{side}"), getattr(pose, f"elbow_{side}")
        j[f"shoulder_{side}"] = up((s * ident.shoulder_w, ident.torso_len - ident.arm_r))
        d1 = _limb_dir(s, sh_angle, pose.lean)
        d2 = _limb_dir(s, sh_angle + el_angle, pose.lean)
        j[f"elbow_{side}"] = j[f"shoulder_{side}"] + ident.upper_arm * d1
        j[f"wrist_{side}"] = j[f"elbow_{side}"] + ident.lower_arm * d2
        j[f"hand_{side}"] = j[f"wrist_{side}"] + ident.hand_r * 0.9 * d2
        hip_angle, knee_angle = getattr(pose, f"hip_{side}"), getattr(pose, f"knee_{side}")
        j[f"hip_{side}"] = np.array([s * (ident.hip_w - ident.leg_r * 0.8), -0.02])
        j[f"knee_{side}"] = j[f"hip_{side}"] + ident.upper_leg * _limb_dir(s, hip_angle)
        j[f"ankle_{side}"] = j[f"knee_{side}"] + ident.lower_leg * _limb_dir(s, hip_angle + knee_angle)
        # Feet point outwards and a little down: a frontal dancer's feet are seen turned out.
        j[f"toe_{side}"] = j[f"ankle_{side}"] + ident.foot_len * _limb_dir(s, hip_angle + knee_angle + 1.2)
    return j


@dataclass(frozen=True)
class Projection:
    """Body coordinates -> continuous image coordinates of the supersampled canvas (x right, y down)."""

    cx: float
    cy: float
    sx: float  # signed: negative when the back faces the camera (the figure is mirrored)
    sy: float
    k: int  # supersampling factor

    @classmethod
    def make(cls, pose: Pose, height: int, width: int, k: int) -> Projection:
        s = pose.scale * height
        c = math.cos(pose.yaw)
        squash = max(abs(c), PROFILE_WIDTH)
        return cls(cx=pose.x * width, cy=pose.y * height, sx=(1.0 if c >= 0 else -1.0) * squash * s, sy=s, k=k)

    def __call__(self, p: np.ndarray) -> np.ndarray:
        """Points (..., 2) in body units -> canvas coordinates in OpenCV's convention (integer = sample
        centre) at k x resolution."""
        p = np.asarray(p, np.float64)
        x = self.cx + self.sx * p[..., 0]
        y = self.cy - self.sy * p[..., 1]
        return np.stack([x * self.k - 0.5, y * self.k - 0.5], axis=-1)

    def inverse(self, xy: np.ndarray) -> np.ndarray:
        """Output-pixel coordinates (..., 2) (continuous, 0 = left edge) -> body units."""
        xy = np.asarray(xy, np.float64)
        return np.stack([(xy[..., 0] - self.cx) / self.sx, (self.cy - xy[..., 1]) / self.sy], axis=-1)


# ----------------------------------------------------------------------------------------------------------
# Shapes (body-unit polygons; filled with sub-pixel precision)

_SHIFT = 6  # fixed-point bits for cv2.fillPoly


def _circle(c: np.ndarray, rx: float, ry: float | None = None, angle: float = 0.0, n: int = 40) -> np.ndarray:
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    pts = np.stack([rx * np.cos(t), (ry if ry is not None else rx) * np.sin(t)], axis=-1)
    ca, sa = math.cos(angle), math.sin(angle)
    pts = pts @ np.array([[ca, sa], [-sa, ca]])
    return pts + c


def _capsule(a: np.ndarray, b: np.ndarray, ra: float, rb: float) -> np.ndarray:
    pts = np.concatenate([_circle(a, ra, n=24), _circle(b, rb, n=24)])
    return pts  # filled through its convex hull


class _Canvas:
    def __init__(self, h: int, w: int, proj: Projection):
        self.seg = np.zeros((h, w), np.uint8)
        self.proj = proj

    def fill(self, seg_id: int, body_pts: np.ndarray, convex: bool = True) -> None:
        pts = self.proj(body_pts)
        if convex:
            pts = cv2.convexHull(pts.astype(np.float32))[:, 0]
        fixed = np.round(pts * (1 << _SHIFT)).astype(np.int32)
        cv2.fillPoly(self.seg, [fixed], int(seg_id), lineType=cv2.LINE_8, shift=_SHIFT)


def _draw_order(pose: Pose) -> list[str]:
    legs = ["upper_leg_l", "lower_leg_l", "foot_l", "upper_leg_r", "lower_leg_r", "foot_r"]
    arms = ["upper_arm_l", "lower_arm_l", "hand_l", "upper_arm_r", "lower_arm_r", "hand_r"]
    if pose.faces_camera:
        # Arms in front of the body; long hair hangs behind the torso, the face covers the hair's front.
        return ["hair_back"] + legs + ["torso", "hair", "head"] + arms
    return arms + legs + ["torso", "head", "hair_back", "hair"]


def rasterise(ident: Identity, pose: Pose, height: int, width: int, k: int) -> tuple[np.ndarray, dict, Projection]:
    """Segment map (k*height, k*width) uint8, the joints, and the projection used."""
    proj = Projection.make(pose, height, width, k)
    j = skeleton(ident, pose)
    cv = _Canvas(height * k, width * k, proj)
    head_angle = pose.lean + pose.head
    head_up = _rot(np.array([0.0, 1.0]), head_angle)
    for part in _draw_order(pose):
        if part == "torso":
            sw, ww, hw, t = ident.shoulder_w + ident.arm_r * 0.6, ident.waist_w, ident.hip_w, ident.torso_len
            upper = [(-sw, t), (sw, t), (ww, t * 0.45), (-ww, t * 0.45)]
            upper = np.array([_rot(np.array(p), pose.lean) for p in upper])
            lower = np.array([(hw, -0.05), (-hw, -0.05)])
            # Two convex pieces (chest, hips) so a lean never folds the outline.
            cv.fill(SEG["torso"], upper)
            cv.fill(SEG["torso"], np.concatenate([upper[2:], lower]))
            cv.fill(SEG["torso"], _capsule(upper[0], upper[1], ident.arm_r * 0.8, ident.arm_r * 0.8))
        elif part == "head":
            cv.fill(SEG["head"], _circle(j["head"], ident.head_r, ident.head_r * 1.15, angle=-head_angle))
        elif part == "hair":
            if ident.hair_style == "bald":
                continue
            if pose.faces_camera:
                cap = j["head"] + head_up * ident.head_r * 0.3
                cv.fill(SEG["hair"], _circle(cap, ident.head_r * 1.08, ident.head_r * 1.0, angle=-head_angle))
            else:
                cv.fill(SEG["hair"], _circle(j["head"], ident.head_r * 1.08, ident.head_r * 1.22, angle=-head_angle))
        elif part == "hair_back":
            if ident.hair_style == "long":
                side = _rot(np.array([1.0, 0.0]), head_angle) * ident.head_r * 1.05
                bottom = j["neck"] - _rot(np.array([0.0, 1.0]), pose.lean) * ident.torso_len * 0.3
                pts = np.stack([j["head"] + side, j["head"] - side, bottom - side * 0.9, bottom + side * 0.9])
                cv.fill(SEG["hair"], pts)
        else:
            kind, _, side = part.rpartition("_")
            if kind == "upper_arm":
                a, b, ra, rb = j[f"shoulder_{side}"], j[f"elbow_{side}"], ident.arm_r * 1.1, ident.arm_r
            elif kind == "lower_arm":
                a, b, ra, rb = j[f"elbow_{side}"], j[f"wrist_{side}"], ident.arm_r, ident.arm_r * 0.8
            elif kind == "upper_leg":
                a, b, ra, rb = j[f"hip_{side}"], j[f"knee_{side}"], ident.leg_r * 1.15, ident.leg_r
            elif kind == "lower_leg":
                a, b, ra, rb = j[f"knee_{side}"], j[f"ankle_{side}"], ident.leg_r, ident.leg_r * 0.75
            elif kind == "foot":
                a, b, ra, rb = j[f"ankle_{side}"], j[f"toe_{side}"], ident.leg_r * 0.8, ident.leg_r * 0.6
            else:  # hand
                cv.fill(SEG[part], _circle(j[f"hand_{side}"], ident.hand_r))
                continue
            cv.fill(SEG[part], _capsule(a, b, ra, rb))
    return cv.seg, j, proj
