"""Synthetic dancer renderer: determinism, exact DensePose encoding, RGB/part-map agreement, turning."""

import math

import numpy as np
import pytest
from scipy import ndimage

from magicanimate.data import densepose
from magicanimate.demo.synthetic import Identity, Motion, Pose, render_background, render_clip, render_frame
from magicanimate.errors import ConfigError

PART = {name: i for i, name in enumerate(densepose.PART_NAMES)}


def test_deterministic_by_seed():
    a = render_clip(11, 22, 4, 48)
    b = render_clip(11, 22, 4, 48)
    np.testing.assert_array_equal(a.rgb, b.rgb)
    np.testing.assert_array_equal(a.densepose, b.densepose)
    other_identity = render_clip(12, 22, 4, 48)
    other_motion = render_clip(11, 23, 4, 48)
    assert not np.array_equal(a.rgb, other_identity.rgb)
    assert not np.array_equal(a.parts, other_motion.parts)
    # Same motion, other identity: the pose is the same but the body (proportions) is not.
    assert not np.array_equal(a.parts, other_identity.parts)


@pytest.mark.parametrize("size", [64, (40, 56), (31, 17)])
def test_densepose_frames_are_exact_palette_colours(size):
    clip = render_clip(5, 6, 3, size)
    h, w = (size, size) if isinstance(size, int) else size
    assert clip.rgb.shape == clip.densepose.shape == (3, h, w, 3)
    assert clip.rgb.dtype == clip.densepose.dtype == np.uint8
    pixels = clip.densepose.reshape(-1, 3)
    is_palette = (pixels[:, None, :] == densepose.PALETTE[None, :, :]).all(-1).any(-1)
    assert is_palette.all()
    # The foundation's inverse map recovers the part indices exactly, and the person is there.
    np.testing.assert_array_equal(densepose.parts_from_rgb(clip.densepose[0]), clip.parts[0])
    assert (clip.parts > 0).mean() > 0.03


def _person_in_rgb(frame_rgb, background):
    return (frame_rgb != background).any(-1)


@pytest.mark.parametrize("identity_seed,motion_seed", [(0, 0), (1, 7), (2, 13), (3, 21)])
def test_part_map_agrees_with_rgb_silhouette(identity_seed, motion_seed):
    """Person pixels in RGB (pixels that differ from the identity's background) and in the part map
    (non-background part) differ only on the silhouette's edge band: pixels whose 3x3 neighbourhood
    holds both person and background in the part map. Inside that band a pixel is partly covered and
    the RGB is anti-aliased; everywhere else they agree exactly."""
    ident = Identity.from_seed(identity_seed)
    size = 64
    background = render_background(ident, size)
    for pose in Motion.from_seed(motion_seed).poses(4, 6.0):
        frame = render_frame(ident, pose, size)
        in_rgb = _person_in_rgb(frame.rgb, background)
        in_parts = frame.parts > 0
        edge_band = ndimage.binary_dilation(in_parts, np.ones((3, 3))) & ~ndimage.binary_erosion(
            in_parts, np.ones((3, 3)), border_value=1
        )
        disagree = in_rgb ^ in_parts
        assert not (disagree & ~edge_band).any()
        assert in_parts.sum() > 50
        # Coverage states the same thing from the renderer's side.
        assert (frame.parts[frame.coverage == 1] > 0).all()
        assert (frame.parts[frame.coverage == 0] == 0).all()
        np.testing.assert_array_equal(frame.rgb[frame.coverage == 0], background[frame.coverage == 0])


def _centroid_x(parts, index):
    ys, xs = np.nonzero(parts == index)
    assert len(xs), f"part {densepose.PART_NAMES[index]} not visible"
    return xs.mean()


def test_front_back_swap_and_mirroring_when_turning():
    ident = Identity.from_seed(4)
    arms_out = dict(shoulder_l=1.2, shoulder_r=1.2, elbow_l=0.2, elbow_r=0.2)
    front = render_frame(ident, Pose(yaw=0.0, **arms_out), 64).parts
    back = render_frame(ident, Pose(yaw=math.pi, **arms_out), 64).parts
    front_parts, back_parts = set(np.unique(front)), set(np.unique(back))
    for surface in ("torso", "left_upper_arm", "right_lower_arm", "left_upper_leg", "right_lower_leg"):
        assert PART[f"{surface}_front"] in front_parts and PART[f"{surface}_back"] not in front_parts
        assert PART[f"{surface}_back"] in back_parts and PART[f"{surface}_front"] not in back_parts
    # Facing the camera the person's left hand is on the image's right; from behind, on its left.
    assert _centroid_x(front, PART["left_hand"]) > _centroid_x(front, PART["right_hand"])
    assert _centroid_x(back, PART["left_hand"]) < _centroid_x(back, PART["right_hand"])
    assert _centroid_x(front, PART["head_left"]) > _centroid_x(front, PART["head_right"])
    assert _centroid_x(back, PART["head_left"]) < _centroid_x(back, PART["head_right"])


def test_motion_turns_swap_surfaces_within_a_clip():
    motion = next(m for m in map(Motion.from_seed, range(100)) if math.isfinite(m.turn_period))
    fps = 10.0
    clip = render_clip(3, motion, int(2 * motion.turn_period * fps) + 2, 48, fps=fps)
    yaws = [motion.yaw(i / fps) for i in range(len(clip.parts))]
    facing = [i for i, y in enumerate(yaws) if math.cos(y) > 0.9]
    away = [i for i, y in enumerate(yaws) if math.cos(y) < -0.9]
    assert facing and away
    for i in facing:
        assert (clip.parts[i] == PART["torso_front"]).any() and not (clip.parts[i] == PART["torso_back"]).any()
    for i in away:
        assert (clip.parts[i] == PART["torso_back"]).any() and not (clip.parts[i] == PART["torso_front"]).any()


def test_motion_is_smooth_and_moves():
    motion = Motion.from_seed(9)
    fields = ["shoulder_l", "elbow_l", "shoulder_r", "hip_l", "knee_r", "lean", "head", "x", "y", "scale", "yaw"]

    def max_steps(fps, seconds=4.0):
        values = np.array([[getattr(p, f) for f in fields] for p in motion.poses(int(seconds * fps), fps)])
        return values, np.abs(np.diff(values, axis=0)).max(axis=0)

    values, at_25 = max_steps(25.0)
    _, at_250 = max_steps(250.0)
    # At 25 fps joints turn by under 0.4 rad per frame and the body moves by under 1% of the frame.
    assert (at_25[:7] < 0.4).all() and (at_25[7:10] < 0.01).all()
    # Continuity: ten times the frame rate, ten times smaller steps (a jump would not shrink).
    assert (at_250 <= at_25 / 10 * 1.1 + 1e-6).all()
    assert values[:, 0].std() > 0.02  # it does dance
    # Starting later is the same motion, shifted.
    poses = motion.poses(50, 25.0)
    assert motion.poses(1, 25.0, start=40 / 25.0)[0] == poses[40]


def test_sizes_and_options_are_checked():
    with pytest.raises(ConfigError):
        render_clip(0, 0, 2, 4)
    with pytest.raises(ConfigError):
        render_frame(Identity.from_seed(0), Pose(), 32, supersample=2)
    with pytest.raises(ConfigError):
        render_clip(0, 0, 0, 32)
    # Other supersampling still gives exact parts of the same layout.
    clip = render_clip(0, 0, 1, 32, supersample=5)
    assert set(np.unique(clip.parts)) <= set(range(25)) and (clip.parts > 0).any()
