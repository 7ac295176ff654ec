"""Per-frame image metrics: L1, PSNR and SSIM, each the way the published tables computed it and the correct way.

Frames are ``(H, W, 3)`` uint8 RGB arrays of equal size (the harness resizes generated frames to the ground
truth first). Every function takes ``(generated, ground_truth)`` and returns a Python float.

Why two variants exist (DisCo's evaluation code set the scale of the TikTok tables that MagicAnimate copies):

* **L1** -- DisCo divides the mean absolute difference on 0..255 by ``H*W`` once more, so the number
  depends on resolution (the tables' ~3e-4 is at 256x256). :func:`l1_disco` reproduces it;
  :func:`mae` is the plain mean absolute error on 0..255.
* **PSNR** -- DisCo subtracted and squared ``uint8`` arrays, which wrap modulo 256: the squared error is
  mostly small garbage, hence ~29 dB in the tables where the real PSNR is ~16-18 dB.
  :func:`psnr_disco` reproduces the overflow; :func:`psnr` is correct (float, data range 255).
* **SSIM** -- DisCo used scikit-image's defaults on OpenCV grayscale (7x7 uniform window, sample covariance);
  :func:`ssim_standard` is Wang et al.'s definition (11x11 Gaussian, sigma 1.5, population covariance) on
  the same grayscale image.

An identical pair has an infinite PSNR. Per frame we report :data:`PSNR_CAP_DB` (100 dB) instead, exactly as
DisCo's ``psnr_eval`` returns 100 when the MSE is 0, so means over a video set and the JSON stay finite.
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage.metrics import structural_similarity

PSNR_CAP_DB = 100.0
DATA_RANGE = 255.0


def _check_pair(generated: np.ndarray, ground_truth: np.ndarray) -> None:
    if generated.shape != ground_truth.shape:
        raise ValueError(f"frame shapes differ: generated {generated.shape} vs ground truth {ground_truth.shape}")
    if generated.dtype != np.uint8 or ground_truth.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {generated.dtype} and {ground_truth.dtype}")
    if generated.ndim != 3 or generated.shape[2] != 3:
        raise ValueError(f"frames must be (H, W, 3), got {generated.shape}")


def mae(generated: np.ndarray, ground_truth: np.ndarray) -> float:
    """Mean absolute error on the 0..255 scale."""
    _check_pair(generated, ground_truth)
    return float(np.abs(generated.astype(np.float64) - ground_truth.astype(np.float64)).mean())


def l1_disco(generated: np.ndarray, ground_truth: np.ndarray) -> float:
    """DisCo's L1: mean absolute error on 0..255 divided by ``H*W`` (resolution dependent)."""
    h, w = ground_truth.shape[:2]
    return mae(generated, ground_truth) / float(h * w)


def masked_mae(generated: np.ndarray, ground_truth: np.ndarray, mask: np.ndarray) -> float:
    """Mean absolute error on 0..255 over the pixels where ``mask`` (H, W) is true (foreground L1).

    Returns NaN when the mask is empty, so callers can skip the frame.
    """
    _check_pair(generated, ground_truth)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != ground_truth.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match frame size {ground_truth.shape[:2]}")
    if not mask.any():
        return float("nan")
    diff = np.abs(generated.astype(np.float64) - ground_truth.astype(np.float64))
    return float(diff[mask].mean())


def _psnr_from_mse(mse: float) -> float:
    if mse <= 0.0:
        return PSNR_CAP_DB
    return float(min(10.0 * np.log10(DATA_RANGE ** 2 / mse), PSNR_CAP_DB))


def psnr(generated: np.ndarray, ground_truth: np.ndarray) -> float:
    """PSNR in dB with data range 255, computed in float (capped at 100 dB for identical frames)."""
    _check_pair(generated, ground_truth)
    diff = generated.astype(np.float64) - ground_truth.astype(np.float64)
    return _psnr_from_mse(float(np.mean(diff * diff)))


def psnr_disco(generated: np.ndarray, ground_truth: np.ndarray) -> float:
    """PSNR as in DisCo's tables: uint8 subtraction and squaring wrap modulo 256 before the mean."""
    _check_pair(generated, ground_truth)
    # Deliberately wrong arithmetic, reproduced on purpose: numpy uint8 ops wrap silently.
    wrapped = generated - ground_truth
    squared = wrapped * wrapped
    return _psnr_from_mse(float(np.mean(squared)))


def to_gray(frame: np.ndarray, layout: str = "rgb") -> np.ndarray:
    """OpenCV's colour->gray (ITU-R 601 luma 0.299 R + 0.587 G + 0.114 B, rounded to uint8).

    DisCo read frames with ``cv2.imread`` (BGR in memory) and converted with ``COLOR_BGR2GRAY``: the same
    luma. Our frames are RGB, so ``layout="rgb"`` (the default) gives DisCo's numbers; pass
    ``layout="bgr"`` for arrays in OpenCV's channel order.
    """
    if layout not in ("rgb", "bgr"):
        raise ValueError(f"layout must be 'rgb' or 'bgr', got {layout!r}")
    code = cv2.COLOR_RGB2GRAY if layout == "rgb" else cv2.COLOR_BGR2GRAY
    return cv2.cvtColor(np.ascontiguousarray(frame), code)


def ssim_disco(generated: np.ndarray, ground_truth: np.ndarray, *, layout: str = "rgb") -> float:
    """SSIM with scikit-image defaults on grayscale: 7x7 uniform window, sample covariance, range 255."""
    _check_pair(generated, ground_truth)
    return float(structural_similarity(
        to_gray(generated, layout), to_gray(ground_truth, layout), data_range=DATA_RANGE))


def ssim_standard(generated: np.ndarray, ground_truth: np.ndarray, *, layout: str = "rgb") -> float:
    """SSIM of Wang et al. (2004) on grayscale: 11x11 Gaussian window, sigma 1.5, population covariance."""
    _check_pair(generated, ground_truth)
    return float(structural_similarity(
        to_gray(generated, layout), to_gray(ground_truth, layout), data_range=DATA_RANGE,
        gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    ))
