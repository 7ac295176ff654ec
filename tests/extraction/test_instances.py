"""DensePose instances -> part map (the step the torchscript and detectron2 backends share)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the pose environment has no torch; the main environment runs these")

from magicanimate.extraction.instances import (  # noqa: E402
    InstanceFollower, box_patch_geometry, instance_part_map, paste_labels,
)

from densepose_standin import expected_quadrants, quadrant_person  # noqa: E402


def bilinear_reference(logits: np.ndarray, h: int, w: int) -> np.ndarray:
    """``(C, S, S')`` -> ``(C, h, w)`` by the documented half-pixel rule (align_corners=False): output pixel i
    samples source coordinate (i + 0.5) * in / out - 0.5, clamped at 0, between its two nearest cells."""
    def axis(n_in, n_out):
        src = np.maximum((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0.0)
        i0 = np.minimum(np.floor(src).astype(int), n_in - 1)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, src - i0

    y0, y1, ly = axis(logits.shape[1], h)
    x0, x1, lx = axis(logits.shape[2], w)
    rows = logits[:, y0, :] * (1 - ly)[None, :, None] + logits[:, y1, :] * ly[None, :, None]
    return rows[:, :, x0] * (1 - lx)[None, None, :] + rows[:, :, x1] * lx[None, None, :]


def instances(people):
    return {"pred_boxes": torch.tensor([p.box for p in people], dtype=torch.float32),
            "scores": torch.tensor([p.score for p in people]),
            "pred_densepose_fine_segm": torch.from_numpy(np.stack([p.fine for p in people])),
            "pred_densepose_coarse_segm": torch.from_numpy(np.stack([p.coarse for p in people]))}


@pytest.mark.parametrize("box", [(3.4, 5.9, 47.2, 40.1), (0.0, 0.0, 9.0, 70.0), (30.5, 2.5, 31.2, 3.1)])
def test_part_map_follows_detectron2s_rule(box):
    rng = np.random.default_rng(0)
    fine = rng.normal(size=(25, 7, 7)).astype(np.float32)
    coarse = rng.normal(size=(2, 7, 7)).astype(np.float32)
    person = quadrant_person(box, (1, 2, 3, 4))._replace(fine=fine, coarse=coarse)
    got = instance_part_map(instances([person]), 0, (72, 80))
    x0, y0, w, h = int(box[0]), int(box[1]), max(int(box[2] - box[0]), 1), max(int(box[3] - box[1]), 1)
    labels = bilinear_reference(fine, h, w).argmax(0) * (bilinear_reference(coarse, h, w).argmax(0) > 0)
    expected = np.zeros((72, 80), np.uint8)
    expected[y0:y0 + h, x0:x0 + w] = labels
    np.testing.assert_array_equal(got, expected)


def test_box_size_uses_float32_differences_like_detectron2():
    # in float32, 70.7 - 52.7 is 17.999996 (float64: 18.0) and 334.4 - 162.4 is 172.0 (float64:
    # 171.99999999999997); detectron2 subtracts float32 boxes before truncating
    assert box_patch_geometry((52.7, 0.0, 70.7, 8.0)) == (52, 0, 17, 8)
    assert box_patch_geometry((0.0, 162.4, 8.0, 334.4)) == (0, 162, 8, 172)
    assert box_patch_geometry((5.0, 5.0, 5.2, 5.9)) == (5, 5, 1, 1)  # never empty


def test_patch_is_clipped_at_the_frame_edges():
    patch = np.arange(1, 13, dtype=np.uint8).reshape(3, 4)
    out = paste_labels(patch, 6, -1, (4, 8))
    np.testing.assert_array_equal(out[:2, 6:], patch[1:, :2])
    assert out.sum() == patch[1:, :2].sum()


def test_quadrant_people_and_only_the_chosen_one():
    frame_hw = (96, 128)
    chosen = quadrant_person((40.2, 20.3, 80.5, 80.9), (2, 15, 9, 23), score=0.9, background="bottom")
    other = quadrant_person((50.0, 10.0, 90.0, 70.0), (3, 4, 5, 6), score=0.3)
    follower = InstanceFollower()
    pose = follower(instances([other, chosen]), frame_hw)
    expected = expected_quadrants(frame_hw, chosen.box, (2, 15, 9, 23), background="bottom")
    np.testing.assert_array_equal(pose.parts, expected)
    np.testing.assert_array_equal(pose.mask, np.where(expected > 0, 255, 0))
    # the other person overlaps the chosen one's background half: it stays background
    assert set(np.unique(pose.parts)) == {0, 2, 15}


def test_large_frames_are_stored_small():
    follower = InstanceFollower()
    person = quadrant_person((100.0, 60.0, 300.0, 460.0), (2, 15, 9, 23))
    pose = follower(instances([person]), (512, 384))
    assert pose.parts.shape == (256, 192)
    full = expected_quadrants((512, 384), person.box, (2, 15, 9, 23))
    np.testing.assert_array_equal(pose.parts, full[::2, ::2])  # nearest: every other pixel (even sizes)
    assert follower(None, (512, 384)).parts is None
