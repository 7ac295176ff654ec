"""Per-frame metrics against ../shared/reference/metrics_vectors.json (independent numpy/skimage/OpenCV values)."""

import json

import numpy as np
import pytest

from magicanimate.evaluation import frame_metrics as fm


@pytest.fixture(scope="module")
def vectors(reference_dir):
    return json.loads((reference_dir / "metrics_vectors.json").read_text())["image_pair"]


@pytest.fixture(scope="module")
def pair():
    y, x, c = np.meshgrid(np.arange(64), np.arange(64), np.arange(3), indexing="ij")
    a = ((3 * x + 5 * y + 50 * c) % 256).astype(np.uint8)
    b = np.clip(a.astype(np.int64) + (7 * x + 11 * y) % 41 - 20, 0, 255).astype(np.uint8)
    return a, b


def test_l1_and_psnr_match_reference(vectors, pair):
    a, b = pair
    assert fm.mae(b, a) == pytest.approx(vectors["mean_abs_diff_0_255"], rel=1e-6)
    assert fm.l1_disco(b, a) == pytest.approx(vectors["disco_L1"], rel=1e-6)
    assert fm.psnr(b, a) == pytest.approx(vectors["psnr_fixed_dB"], rel=1e-6)
    assert fm.psnr_disco(b, a) == pytest.approx(vectors["psnr_overflow_dB"], rel=1e-6)


def test_ssim_matches_reference(vectors, pair):
    # The reference's gray values are OpenCV's COLOR_BGR2GRAY of the arrays as defined, i.e. the arrays
    # are in OpenCV's channel order, as DisCo held frames read by cv2.imread. layout="bgr" says so.
    a, b = pair
    disco_key = "ssim_gray_skimage_default(7x7 uniform, sample cov, data_range=255)"
    wang_key = "ssim_gray_wang(gaussian sigma=1.5, population cov, data_range=255)"
    assert fm.ssim_disco(b, a, layout="bgr") == pytest.approx(vectors[disco_key], rel=1e-6)
    assert fm.ssim_standard(b, a, layout="bgr") == pytest.approx(vectors[wang_key], rel=1e-6)
    # Our frames are RGB: the same image stored RGB gives the same number with the default layout.
    assert fm.ssim_disco(b[..., ::-1], a[..., ::-1]) == pytest.approx(vectors[disco_key], rel=1e-6)
    assert fm.ssim_standard(b[..., ::-1], a[..., ::-1]) == pytest.approx(vectors[wang_key], rel=1e-6)


def test_gray_is_rec601_luma(pair):
    a, _ = pair
    expected = a.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    assert np.abs(fm.to_gray(a).astype(np.float64) - expected).max() <= 0.5 + 1e-9


def test_identical_frames(pair):
    a, _ = pair
    assert fm.mae(a, a) == 0.0 and fm.l1_disco(a, a) == 0.0
    assert fm.psnr(a, a) == fm.PSNR_CAP_DB == 100.0
    assert fm.psnr_disco(a, a) == 100.0
    assert fm.ssim_disco(a, a) == pytest.approx(1.0) and fm.ssim_standard(a, a) == pytest.approx(1.0)


def test_l1_disco_scales_with_resolution():
    small = np.zeros((8, 8, 3), np.uint8)
    large = np.zeros((16, 16, 3), np.uint8)
    assert fm.l1_disco(small + 10, small) == pytest.approx(10 / 64)
    assert fm.l1_disco(large + 10, large) == pytest.approx(10 / 256)


def test_psnr_disco_wraps_where_correct_psnr_does_not():
    # A difference of 16 squares to 256 == 0 (mod 256): DisCo's arithmetic sees no error at all.
    gt = np.full((4, 4, 3), 100, np.uint8)
    gen = gt + 16
    assert fm.psnr(gen, gt) == pytest.approx(10 * np.log10(255 ** 2 / 256))
    assert fm.psnr_disco(gen, gt) == 100.0


def test_masked_mae():
    gt = np.zeros((4, 4, 3), np.uint8)
    gen = gt.copy()
    gen[:2] = 30
    mask = np.zeros((4, 4), bool)
    mask[:2, :2] = True
    assert fm.masked_mae(gen, gt, mask) == pytest.approx(30.0)
    assert np.isnan(fm.masked_mae(gen, gt, np.zeros((4, 4), bool)))


def test_bad_pairs_rejected():
    with pytest.raises(ValueError, match="shapes differ"):
        fm.mae(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        fm.psnr(np.zeros((4, 4, 3), np.float32), np.zeros((4, 4, 3), np.float32))
