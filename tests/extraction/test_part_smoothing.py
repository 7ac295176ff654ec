"""Temporal smoothing of DensePose part maps, on label videos whose true labels the tests draw themselves.

The maps go through the extraction plan as a DensePose backend stores them (part map + person mask per
frame); a 64x64 frame with ``fit="pad"`` and ``size=64`` places them 1:1, so the output is compared with the
drawn truth pixel for pixel.
"""

import numpy as np
import pytest

from magicanimate.extraction import extract as E
from magicanimate.extraction import part_smoothing as PS
from magicanimate.extraction.landmarks import PoseFrame

TORSO, ARM, ARM_BACK, FOREARM = 2, 15, 17, 19
N = 16


def scene(arm_right=20, torso_bottom=60, forearm_x=None, forearm_width=8, arm_label=ARM, arm=True):
    """Torso, an upper arm left of it (touching it at x = ``arm_right``), optionally a forearm."""
    m = np.zeros((64, 64), np.uint8)
    m[10:torso_bottom, 20:44] = TORSO
    if arm:
        m[14:40, 8:arm_right] = arm_label
    if forearm_x is not None:
        x = int(round(forearm_x))
        m[42:58, max(0, x):max(0, x + forearm_width)] = FOREARM
    return m


def plan_maps(maps, smooth):
    poses = [PoseFrame(mask=np.where(m > 0, 255, 0).astype(np.uint8), parts=m) for m in maps]
    plan = E.plan_motion(poses, (64, 64), 25.0, size=64, fit="pad", smooth=smooth)
    return np.stack([plan.part_map(i) for i in range(len(maps))])


def flicker(maps, truth):
    """Label flips the truth does not have: share of (pixel, consecutive frame pair) where ``maps`` changes
    label and ``truth`` does not."""
    return float(((maps[1:] != maps[:-1]) & (truth[1:] == truth[:-1])).mean())


def jittered(rng, **kwargs):
    """The scene with its arm/torso border and the torso's lower edge moved by up to 3 px."""
    return scene(arm_right=20 + int(rng.integers(-3, 4)), torso_bottom=60 + int(rng.integers(-3, 4)), **kwargs)


def test_static_map_is_unchanged():
    maps = np.stack([scene(forearm_x=30)] * N)
    np.testing.assert_array_equal(plan_maps(maps, 1.0), maps)
    np.testing.assert_array_equal(plan_maps(maps, 0.0), maps)


def test_border_flicker_is_removed():
    rng = np.random.default_rng(0)
    truth = np.stack([scene()] * N)
    raw = np.stack([jittered(rng) for _ in range(N)])
    raw_out, smooth_out = plan_maps(raw, 0.0), plan_maps(raw, 1.0)
    np.testing.assert_array_equal(raw_out, raw)  # --smooth 0: the raw maps
    assert flicker(raw, truth) > 0.01
    assert flicker(smooth_out, truth) < 0.4 * flicker(raw, truth), (flicker(raw, truth), flicker(smooth_out, truth))
    # the vote is a weighted median of the jittered border: closer to the truth, not exact
    assert (smooth_out != truth).mean() < 0.9 * (raw != truth).mean()


@pytest.mark.parametrize("smooth", [1.0, 2.0])
@pytest.mark.parametrize("speed", [1.0, 3.0, 5.0])
def test_moving_limb_is_not_shifted(speed, smooth):
    # a forearm sweeping right at up to 5 px/frame (over half its width) across background and torso; at
    # strength 2 the window is twice as long, so pixels it covers for 2 frames are at stake too
    maps = np.stack([scene(forearm_x=4 + speed * i) for i in range(N)])
    np.testing.assert_array_equal(plan_maps(maps, smooth), maps)


def test_moving_limb_under_flicker_keeps_its_place():
    rng = np.random.default_rng(1)
    truth = np.stack([scene(forearm_x=4 + 3 * i) for i in range(N)])
    raw = np.stack([jittered(rng, forearm_x=4 + 3 * i) for i in range(N)])
    out = plan_maps(raw, 1.0)
    for t in range(N):
        ys, xs = np.nonzero(out[t] == FOREARM)
        ty, tx = np.nonzero(truth[t] == FOREARM)
        assert abs(xs.mean() - tx.mean()) <= 0.5 and abs(ys.mean() - ty.mean()) <= 0.5, t
        assert len(xs) >= 0.9 * len(tx), t
    assert flicker(out, truth) < 0.5 * flicker(raw, truth), (flicker(raw, truth), flicker(out, truth))


def test_fast_limb_seen_once_per_pixel_is_kept():
    # 8 px wide, 12 px per frame: every pixel is covered in a single frame, like flicker to a plain vote
    maps = np.stack([scene(forearm_x=-4 + 12 * i) for i in range(6)])
    np.testing.assert_array_equal(plan_maps(maps, 1.0), maps)


def test_one_frame_part_swap_and_dropout_are_repaired():
    truth = np.stack([scene()] * N)
    swapped = truth.copy()
    swapped[5] = scene(arm_label=ARM_BACK)  # front/back surfaces of the arm swapped in one frame
    swapped[10] = scene(arm=False)  # the arm missed in one frame
    out = plan_maps(swapped, 1.0)
    np.testing.assert_array_equal(out, truth)


def test_vote_ignores_frames_without_a_person():
    a = scene()
    maps = [a, a, None, a, a]
    valid = np.array([True, True, False, True, True])
    np.testing.assert_array_equal(PS.vote_parts(maps, 1, 1.0, valid=valid), a)
    labels, soft = PS.smooth_part_map(maps, [None if m is None else (m > 0).astype(np.float32) for m in maps],
                                      3, 1.0, valid=valid)
    np.testing.assert_array_equal(labels, a)
    np.testing.assert_array_equal(soft > 0.5, a > 0)
