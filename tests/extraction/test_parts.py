"""Part maps from landmarks + mask (no mediapipe needed)."""

import numpy as np
import pytest
from scipy.spatial import cKDTree
from skimage.measure import points_in_poly

from magicanimate.data import densepose
from magicanimate.extraction import landmarks as L
from magicanimate.extraction import parts as P

from extraction_helpers import body_mask, skeleton

NAMES = densepose.PART_NAMES


def _labels(part_map, *names):
    idx = [NAMES.index(n) for n in names]
    return np.isin(part_map, idx)


def test_every_label_comes_from_the_densepose_table_and_all_24_are_reachable():
    used = P.part_names_used()
    assert set(used) <= set(NAMES)
    assert sorted(P.part_index(n) for n in used) == list(range(1, 25))
    with pytest.raises(KeyError, match="not in magicanimate.data.densepose.PART_NAMES"):
        P.part_index("tail")


def test_frontal_person_layout(person):
    lm, mask = person
    pm = P.parts_from_landmarks(lm, mask)
    assert pm.dtype == np.uint8 and pm.shape == mask.shape
    # every person pixel is labelled (all lie near the body), nothing outside the mask
    assert (pm[mask] > 0).all() and (pm[~mask] == 0).all()
    rows = np.arange(64)[:, None].repeat(64, 1)
    cols = rows.T
    head = _labels(pm, "head_left", "head_right")
    torso = _labels(pm, "torso_front")
    assert head.sum() > 20 and torso.sum() > 100
    assert rows[head].mean() < rows[torso].mean() - 10
    assert not _labels(pm, "torso_back").any()  # facing the camera: front surfaces only
    # the person's left limbs appear on the image's right when they face the camera
    for side, sign in (("left", 1), ("right", -1)):
        limb = _labels(pm, f"{side}_upper_arm_front", f"{side}_lower_arm_front", f"{side}_hand")
        assert limb.sum() > 20
        assert sign * (cols[limb].mean() - 32) > 8
        legs = _labels(pm, f"{side}_upper_leg_front", f"{side}_lower_leg_front")
        assert sign * (cols[legs].mean() - 32) > 2
        assert rows[_labels(pm, f"{side}_upper_leg_front")].mean() < rows[_labels(pm, f"{side}_lower_leg_front")].mean()
        assert rows[_labels(pm, f"{side}_foot")].mean() > 55
    # head halves: the person's right half is on the side of their right ear (image left here)
    assert cols[_labels(pm, "head_right")].mean() < 32 < cols[_labels(pm, "head_left")].mean()


def test_facing_away_uses_back_surfaces(person):
    lm, mask = person
    pm = P.parts_from_landmarks(lm, mask, front=False)
    assert _labels(pm, "torso_back").sum() > 100 and not _labels(pm, "torso_front").any()
    assert _labels(pm, "left_upper_arm_back").any() and not _labels(pm, "left_upper_arm_front").any()
    # the same person turned around (left side now on the image's left): the facing score flips
    turned = L.mirror_landmarks(lm, 64.0)
    turned[:, 0] = 64.0 - turned[:, 0]  # mirror back the positions, keep the swapped left/right labels
    assert P.facing_score(lm) > 0.3 and P.facing_score(turned) < -0.3
    assert P.facing_front(lm) and not P.facing_front(turned)


def test_profile_keeps_previous_facing(person):
    lm, _ = person
    side = lm.copy()
    for a, b in ((L.LEFT_SHOULDER, L.RIGHT_SHOULDER), (L.LEFT_HIP, L.RIGHT_HIP)):
        side[[a, b], 0] = 32.0
    assert abs(P.facing_score(side)) < P.FACING_MARGIN
    assert P.facing_front(side, previous=False) is False
    assert P.facing_front(side, previous=True) is True


def test_mirrored_person_gets_mirrored_labels(person):
    # Mirroring image + landmarks must give the map mirrored with left/right labels swapped by
    # detectron2's symmetry list (magicanimate.data.densepose.flip_parts): checks the table lookups.
    lm, mask = person
    pm = P.parts_from_landmarks(lm, mask)
    mirrored = P.parts_from_landmarks(L.mirror_landmarks(lm, 63.0), mask[:, ::-1])
    expected = densepose.flip_parts(pm)
    agree = (mirrored == expected)[mask[:, ::-1]].mean()
    assert agree > 0.97, agree


def test_arm_in_front_of_torso_wins_when_closer_else_torso(person):
    lm, mask = person
    across = lm.copy()
    # left forearm folded across the belly
    across[L.LEFT_WRIST, :2] = (28, 30)
    for i in (L.LEFT_PINKY, L.LEFT_INDEX, L.LEFT_THUMB):
        across[i, :2] = (25, 31)
    probe = (29, 34)  # (row, col) on the forearm, inside the torso quadrilateral
    across[[L.LEFT_ELBOW, L.LEFT_WRIST], 2] = -5.0  # closer to the camera than the torso (z = 0)
    front = P.parts_from_landmarks(across, mask)
    assert front[probe] == NAMES.index("left_lower_arm_front")
    across[[L.LEFT_ELBOW, L.LEFT_WRIST], 2] = 5.0  # behind the torso
    behind = P.parts_from_landmarks(across, mask)
    assert behind[probe] == NAMES.index("torso_front")
    across[[L.LEFT_ELBOW, L.LEFT_WRIST], 2] = -5.0
    across[[L.LEFT_ELBOW, L.LEFT_WRIST], 3] = 0.1  # in front, but not visible: occluded, torso wins
    assert P.parts_from_landmarks(across, mask)[probe] == NAMES.index("torso_front")


def test_outside_all_segments_the_nearest_surface_wins(person):
    # Independent reference: distances from densely sampled segment points (KD-tree) and a point-in-polygon
    # test for the torso, compared on pixels that lie inside no segment and have a clear nearest one.
    lm, _ = person
    mask = np.ones((64, 64), bool)
    pm = P.parts_from_landmarks(lm, mask, max_distance=10.0)
    unit = P.torso_length(lm)
    ys, xs = np.mgrid[0:64, 0:64]
    pix = np.stack([xs.ravel(), ys.ravel()], 1).astype(float)
    surfaces, labels = [], []
    t = np.linspace(0, 1, 400)[:, None]
    for seg in P.SEGMENTS:
        pts = lm[list(seg.points), :2]
        if seg.kind == "torso":
            edges = np.concatenate([pts[k] + t * (pts[(k + 1) % 4] - pts[k]) for k in range(4)])
            d = cKDTree(edges).query(pix)[0]
            d[points_in_poly(pix, pts)] = 0.0
            labels.append(NAMES.index("torso_front"))
        elif seg.kind == "head":
            centre = ((lm[L.LEFT_EAR, :2] + lm[L.RIGHT_EAR, :2]) / 2 + lm[L.NOSE, :2]) / 2
            d = np.linalg.norm(pix - centre, axis=1)
            labels.append(-1)
        else:
            a, b = pts[0], pts[1]
            if seg.kind == "hand":
                tip = (pts[1] + pts[2]) / 2
                b = tip + (tip - pts[0]) / 3
            d = cKDTree(a + t * (b - a)).query(pix)[0]
            labels.append(P.segment_part(seg, True))
        surfaces.append(d - P.RADII[seg.kind] * unit)
    surfaces = np.stack(surfaces)
    order = np.sort(surfaces, 0)
    clear = (order[0] > 0.5) & (order[1] - order[0] > 1.5)
    best = np.asarray(labels)[surfaces.argmin(0)]
    got = pm.ravel()
    check = clear & (best >= 0)
    assert check.sum() > 500
    np.testing.assert_array_equal(got[check], best[check])
    head_px = clear & (best < 0)
    assert np.isin(got[head_px], [NAMES.index("head_left"), NAMES.index("head_right")]).all()


def test_far_pixels_and_empty_masks_stay_background(person):
    lm, mask = person
    far = mask.copy()
    far[60:64, 0:4] = True  # a blob far from every body segment (another object)
    pm = P.parts_from_landmarks(lm, far)
    assert (pm[60:64, 0:4] == 0).all()
    assert not P.parts_from_landmarks(lm, np.zeros_like(mask)).any()
    with pytest.raises(ValueError, match="landmarks must have shape"):
        P.parts_from_landmarks(lm[:10], mask)


def test_scale_invariance():
    # the same body at twice the size gives (nearly) the same map, upsampled
    small_lm = skeleton()
    big_lm = skeleton(scale=2.0, shift=(0.5, 0.5))  # pixel centres: 2x + 0.5
    small = P.parts_from_landmarks(small_lm, body_mask(small_lm))
    big = P.parts_from_landmarks(big_lm, body_mask(big_lm, (128, 128)))
    down = big[::2, ::2]
    both = (small > 0) & (down > 0)
    assert (small[both] == down[both]).mean() > 0.9
