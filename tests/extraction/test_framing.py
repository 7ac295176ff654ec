"""Crop/pad placement and least-squares alignment (closed forms, numpy/OpenCV references)."""

import cv2
import numpy as np
import pytest

from magicanimate.errors import InputError
from magicanimate.extraction import framing as F


def test_pad_placement_maps_frame_edges_onto_the_output():
    place = F.pad_placement((50, 100), 64)  # wide frame: width fills, height centred
    assert place.scale == pytest.approx(0.64)
    # pixel-edge coordinates: x in [-0.5, 99.5] -> [-0.5, 63.5]; the vertical centre 24.5 -> 31.5
    out = place.apply(np.array([[-0.5, 24.5], [99.5, 24.5]]))
    np.testing.assert_allclose(out, [[-0.5, 31.5], [63.5, 31.5]])


def test_crop_window_contains_the_person_and_stays_in_the_frame():
    h, w, size = 300, 200, 64
    box = (150.0, 40.0, 190.0, 160.0)  # near the right edge
    place = F.crop_placement(box, (h, w), size, margin=0.1)
    side = 120 * 1.2
    assert place.scale == pytest.approx(size / side)
    corners = place.apply(np.array([[box[0] - 0.5, box[1] - 0.5], [box[2] - 0.5, box[3] - 0.5]]))
    assert (corners >= -0.5).all() and (corners <= size - 0.5).all()
    # the window [x0, x0 + side] lies inside the frame: output edges map back inside [0, w]
    inv = lambda q: (q - np.array(place.shift)) / place.scale  # noqa: E731
    left, right = inv(np.array([-0.5, -0.5])), inv(np.array([size - 0.5, size - 0.5]))
    assert left[0] + 0.5 >= -1e-9 and right[0] + 0.5 <= w + 1e-9
    assert left[1] + 0.5 >= -1e-9 and right[1] + 0.5 <= h + 1e-9


def test_crop_larger_than_the_frame_covers_the_whole_axis():
    # a tall person in a landscape frame: the square is taller than the frame -> vertical padding
    place = F.crop_placement((40.0, 0.0, 60.0, 100.0), (100, 300), 50, margin=0.1)
    inv = lambda q: (q - np.array(place.shift)) / place.scale  # noqa: E731
    top, bottom = inv(np.array([-0.5, -0.5]))[1] + 0.5, inv(np.array([49.5, 49.5]))[1] + 0.5
    assert top <= 0 and bottom >= 100
    assert top == pytest.approx(-(120 - 100) / 2)  # centred on the person (who spans the full height)


def test_warp_moves_pixels_as_apply_says():
    img = np.zeros((20, 30), np.float32)
    img[5, 10] = 1.0
    place = F.Placement(1.0, (3.0, 4.0), 32)
    out = place.warp(img)
    assert np.unravel_index(out.argmax(), out.shape) == (9, 13)
    np.testing.assert_allclose(place.apply(np.array([[10.0, 5.0]])), [[13.0, 9.0]])


def test_rescaled_source_matches_full_resolution():
    full = np.zeros((120, 80), np.float32)
    full[30:90, 20:60] = 1.0
    half = full.reshape(60, 2, 40, 2).mean((1, 3))
    place = F.crop_placement((20, 30, 60, 90), (120, 80), 64)
    a = place.warp(full) > 0.5
    b = place.rescaled_source(0.5).warp(half) > 0.5
    assert (a & b).sum() / (a | b).sum() > 0.95


def test_union_and_mask_boxes():
    m = np.zeros((10, 10))
    m[2:4, 3:7] = 1
    assert F.mask_box(m) == (3.0, 2.0, 7.0, 4.0)
    assert F.mask_box(np.zeros((3, 3))) is None
    assert F.union_box([None, (0, 1, 2, 3), (1, 0, 5, 2)]) == (0, 0, 5, 3)
    assert F.union_box([None]) is None


def test_least_squares_scale_shift_recovers_and_matches_lstsq():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, size=(20, 2))
    s, t = 0.7, np.array([12.0, -3.0])
    scale, shift = F.fit_scale_shift(src, s * src + t)
    assert scale == pytest.approx(s) and np.allclose(shift, t)
    noisy = s * src + t + rng.normal(scale=2.0, size=src.shape)
    w = rng.uniform(0.5, 1.0, size=20)
    # independent reference: weighted linear least squares on [x 1 0; y 0 1] [s tx ty]^T = target
    A = np.zeros((40, 3))
    A[0::2, 0], A[0::2, 1] = src[:, 0], 1
    A[1::2, 0], A[1::2, 2] = src[:, 1], 1
    sw = np.sqrt(np.repeat(w, 2))
    ref = np.linalg.lstsq(A * sw[:, None], noisy.ravel() * sw, rcond=None)[0]
    scale, shift = F.fit_scale_shift(src, noisy, w)
    np.testing.assert_allclose([scale, *shift], ref, rtol=1e-9)


def test_alignment_needs_shared_visible_landmarks():
    a = np.zeros((33, 4))
    a[:, :2] = np.random.default_rng(1).uniform(0, 50, (33, 2))
    a[:, 3] = 1.0
    b = a.copy()
    b[:, :2] = 2 * a[:, :2] + 5
    scale, shift = F.alignment(a, b, source="ref.png")
    assert scale == pytest.approx(2.0) and np.allclose(shift, 5.0)
    b[2:, 3] = 0.1
    with pytest.raises(InputError, match="ref.png.*fewer than 3"):
        F.alignment(a, b, source="ref.png")
    mirrored = a.copy()
    mirrored[:, :2] = -a[:, :2]
    with pytest.raises(InputError, match="non-positive scale"):
        F.alignment(a, mirrored, source="ref.png")


def test_alignment_follows_the_body_not_the_face_cluster():
    rng = np.random.default_rng(3)
    a = np.zeros((33, 4))
    a[:, :2] = rng.uniform(0, 100, (33, 2))
    a[:, 3] = 1.0
    b = a.copy()
    b[:, :2] = 2 * a[:, :2] + 5
    b[:F.FACE_LANDMARKS, :2] += 30.0  # the reference's face landmarks disagree (e.g. a turned head)
    scale, shift = F.alignment(a, b, source="ref.png")
    plain_scale, plain_shift = F.fit_scale_shift(a, b)
    body_error = np.abs(np.array([scale, *shift]) - [2, 5, 5]).max()
    assert body_error < 0.5 * np.abs(np.array([plain_scale, *plain_shift]) - [2, 5, 5]).max()


def test_nearest_warp_keeps_labels_when_shrinking():
    labels = np.zeros((100, 100), np.uint8)
    labels[:, 50:] = 7
    labels[40:60, 10:30] = 23
    out = F.Placement(0.25, (0.0, 0.0), 25).warp(labels, interpolation=cv2.INTER_NEAREST)
    assert set(np.unique(out)) == {0, 7, 23}
