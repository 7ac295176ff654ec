"""The mediapipe backend on a real photo (skimage.data.astronaut) and videos made from it.

Needs mediapipe (the ``pose`` extra), which cannot share an environment with the core install; CI runs these
tests in its separate pose environment, and they skip elsewhere.
"""

import logging

import cv2
import numpy as np
import pytest
from skimage import data

from magicanimate.data.densepose import PART_NAMES, parts_from_rgb, validate_densepose_video
from magicanimate.media import VideoReader, write_image, write_video
from magicanimate.errors import InputError
from magicanimate.extraction import extract as E
from magicanimate.extraction import landmarks as L

from extraction_helpers import requires_mediapipe

pytestmark = requires_mediapipe

HEAD = [PART_NAMES.index("head_left"), PART_NAMES.index("head_right")]
TORSO = [PART_NAMES.index("torso_front"), PART_NAMES.index("torso_back")]


@pytest.fixture(scope="module")
def astronaut():
    return data.astronaut()


def moving_video(image, n=16, side=192, jitter=1.5, seed=0):
    """The photo shrinking (1 -> 0.8) and drifting right/down, with hand-held jitter, on grey."""
    rng = np.random.default_rng(seed)
    small = cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA)
    frames = []
    for i in range(n):
        s = 1.0 - 0.2 * i / (n - 1)
        tx = 10 * i / (n - 1) + rng.normal(scale=jitter)
        ty = 6 * i / (n - 1) + rng.normal(scale=jitter)
        m = np.array([[s, 0, (1 - s) * side / 2 + tx], [0, s, (1 - s) * side / 2 + ty]])
        frames.append(cv2.warpAffine(small, m, (side, side), borderMode=cv2.BORDER_CONSTANT,
                                     borderValue=(128, 128, 128)))
    return np.stack(frames)


def test_astronaut_landmarks_parts_and_validator(astronaut, tmp_path):
    from magicanimate.extraction.backends import MediaPipePose

    pose = MediaPipePose(video=False)
    try:
        found = pose(astronaut)
    finally:
        pose.close()
    lm = found.landmarks
    assert lm is not None and lm.shape == (33, 4)
    h, w = astronaut.shape[:2]
    nose = lm[L.NOSE]
    assert 0 < nose[0] < w and 0 < nose[1] < h and nose[3] > 0.9
    # he faces the camera: his left shoulder is on the image's right, both below the nose
    assert lm[L.LEFT_SHOULDER, 0] > lm[L.RIGHT_SHOULDER, 0]
    assert lm[L.LEFT_SHOULDER, 1] > nose[1] and lm[L.RIGHT_SHOULDER, 1] > nose[1]
    assert found.mask.max() > 0.9 and 0.1 < (found.mask > 0.5).mean() < 0.9

    src = tmp_path / "frames"
    src.mkdir()
    write_image(src / "0.png", astronaut)
    out = tmp_path / "astronaut_densepose.mp4"
    res = E.extract_densepose(src, out, size=128)
    with VideoReader(out) as r:
        frames = r[:]
    assert frames.shape == (1, 128, 128, 3) and res.num_frames == 1
    validate_densepose_video(frames, source=str(out))
    parts = parts_from_rgb(frames[0])
    rows = np.arange(128)[:, None].repeat(128, 1)
    head, torso = np.isin(parts, HEAD), np.isin(parts, TORSO)
    assert head.sum() > 200 and torso.sum() > 500
    assert rows[head].mean() < rows[torso].mean() - 20
    assert rows[head].max() < rows[torso].max()


def test_moving_video_keeps_frames_and_fps_and_smoothing_reduces_flicker(astronaut, tmp_path):
    frames = moving_video(astronaut)
    path = tmp_path / "moving.mp4"
    write_video(path, frames, fps=24.0)
    out = tmp_path / "moving_densepose.mp4"
    E.extract_densepose(path, out, size=64)
    with VideoReader(out) as r:
        assert len(r) == len(frames) and r.fps == pytest.approx(24.0)
        validate_densepose_video(r[:], source=str(out))

    def flicker(smooth):
        maps, _ = E.extract_part_maps(frames, 24.0, size=64, smooth=smooth)
        return (maps[1:] != maps[:-1]).mean()

    raw, smoothed = flicker(0.0), flicker(1.0)
    assert smoothed < 0.8 * raw, (raw, smoothed)


def test_frames_without_person_are_held_and_named(astronaut, caplog):
    frames = moving_video(astronaut, n=8, jitter=0.0)
    frames[3:5] = 128  # plain grey: nobody there
    with caplog.at_level(logging.WARNING):
        maps, plan = E.extract_part_maps(frames, 25.0, size=64, source="clip")
    assert plan.missing == [3, 4]
    assert "no person found in 2 of 8 frames (3-4)" in caplog.text
    assert maps.shape == (8, 64, 64) and all(m.any() for m in maps)
    np.testing.assert_array_equal(maps[3], maps[2])


def test_video_without_anyone_is_an_error(tmp_path):
    path = tmp_path / "empty.mp4"
    ramp = np.linspace(0, 255, 96, dtype=np.uint8)
    write_video(path, np.broadcast_to(ramp[None, :, None, None], (4, 96, 96, 3)).copy(), fps=25.0)
    with pytest.raises(InputError, match=r"empty\.mp4: no person found in any of its 4 frames"):
        E.extract_densepose(path, tmp_path / "out.mp4", size=64)
    assert not (tmp_path / "out.mp4").exists()


def test_align_to_reference_matches_body_size_and_position(astronaut, tmp_path):
    side = 192
    motion = cv2.resize(astronaut, (side, side), interpolation=cv2.INTER_AREA)
    # the reference: the same person at 60 % size in the lower right of a grey square
    ref = np.full((side, side, 3), 128, np.uint8)
    small = cv2.resize(astronaut, (int(side * 0.6), int(side * 0.6)), interpolation=cv2.INTER_AREA)
    ref[side - small.shape[0]:, side - small.shape[1]:] = small
    ref_path = tmp_path / "ref.png"
    write_image(ref_path, ref)

    aligned, _ = E.extract_part_maps(motion[None], 25.0, size=64, fit="pad", reference_image=ref)
    ref_maps, _ = E.extract_part_maps(ref[None], 25.0, size=64, fit="pad")
    plain, _ = E.extract_part_maps(motion[None], 25.0, size=64, fit="pad")

    def torso_centre_and_area(m):
        ys, xs = np.nonzero(np.isin(m, TORSO))
        return np.array([ys.mean(), xs.mean()]), len(ys)

    (c_al, a_al), (c_ref, a_ref), (c_pl, a_pl) = map(torso_centre_and_area, (aligned[0], ref_maps[0], plain[0]))
    assert np.linalg.norm(c_al - c_ref) < 3 < np.linalg.norm(c_pl - c_ref)
    assert abs(a_al / a_ref - 1) < 0.3 and a_pl > 2 * a_ref


def test_align_to_an_image_without_a_person_is_an_error(astronaut, tmp_path):
    video = tmp_path / "v.mp4"
    write_video(video, moving_video(astronaut, n=3, side=128, jitter=0.0), fps=25.0)
    ref = tmp_path / "wall.png"
    write_image(ref, np.full((64, 64, 3), 200, np.uint8))
    with pytest.raises(InputError, match=r"wall\.png: no person found in the reference image"):
        E.extract_densepose(video, tmp_path / "out.mp4", size=64, align_to=ref)
    assert not (tmp_path / "out.mp4").exists()
