"""Temporal smoothing: One-Euro filter and Gaussian mask averaging, against scipy references."""

import math

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d
from scipy.signal import lfilter

from magicanimate.extraction import smoothing as S


def test_one_euro_without_speed_term_is_an_exponential_smoother():
    # beta = 0: y_t = a x_t + (1 - a) y_{t-1}, a = 1 / (1 + tau / dt), tau = 1 / (2 pi f_c), y_0 = x_0
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3))
    fps, fc = 30.0, 1.5
    a = 1.0 / (1.0 + (1.0 / (2 * math.pi * fc)) * fps)
    ref = np.stack([lfilter([a], [1, -(1 - a)], x[:, k], zi=[(1 - a) * x[0, k]])[0] for k in range(3)], 1)
    np.testing.assert_allclose(S.one_euro(x, fps, min_cutoff=fc, beta=0.0), ref, rtol=1e-12, atol=1e-12)


def test_one_euro_speed_term_raises_the_cutoff():
    t = np.arange(60) / 30.0
    ramp = 5.0 * t  # fast, steady motion
    slow = S.one_euro(ramp, 30.0, min_cutoff=0.5, beta=0.0)
    fast = S.one_euro(ramp, 30.0, min_cutoff=0.5, beta=2.0)
    assert np.abs(fast - ramp)[-10:].mean() < 0.5 * np.abs(slow - ramp)[-10:].mean()


def test_constant_signal_is_unchanged_and_jitter_is_damped():
    const = np.full((40, 2), 3.25)
    np.testing.assert_allclose(S.one_euro_zero_phase(const, 25.0, min_cutoff=1.0, beta=1.0), const)
    rng = np.random.default_rng(1)
    noisy = 1.0 + 0.05 * rng.normal(size=200)
    out = S.one_euro_zero_phase(noisy, 25.0, min_cutoff=1.0, beta=0.5)
    assert np.std(out - 1.0) < 0.4 * np.std(noisy - 1.0)


def test_zero_phase_removes_the_lag_of_the_causal_filter():
    t = np.arange(100) / 25.0
    sine = np.sin(2 * math.pi * 0.5 * t)
    causal = S.one_euro(sine, 25.0, min_cutoff=1.0, beta=0.0)
    both = S.one_euro_zero_phase(sine, 25.0, min_cutoff=1.0, beta=0.0)

    def lag(y):  # shift (frames) that best matches the output to the input
        shifts = range(-8, 9)
        return list(shifts)[int(np.argmax([np.dot(sine[20:80], y[20 + k:80 + k]) for k in shifts]))]

    assert lag(causal) >= 2
    assert lag(both) == 0


def test_mask_average_matches_scipy_gaussian_filter():
    rng = np.random.default_rng(2)
    masks = rng.random((9, 5, 4)).astype(np.float32)
    sigma = 1.3
    ref = gaussian_filter1d(masks.astype(np.float64), sigma, axis=0, mode="nearest", truncate=3.0)
    got = np.stack([S.smoothed_mask(list(masks), i, sigma) for i in range(9)])
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_mask_average_skips_frames_without_a_person():
    masks = [np.full((2, 2), v, np.float32) for v in (1.0, 0.0, 1.0)]
    valid = np.array([True, False, True])
    np.testing.assert_allclose(S.smoothed_mask(masks, 1, 1.0, valid=valid), 1.0)
    np.testing.assert_allclose(S.smoothed_mask(masks, 1, 0.0), 0.0)  # sigma 0: the frame itself


def test_strength_parameters():
    assert S.smoothing_parameters(0.0, 25.0) is None
    weak, strong = S.smoothing_parameters(0.5, 25.0), S.smoothing_parameters(2.0, 25.0)
    assert strong["min_cutoff"] < weak["min_cutoff"] and strong["mask_sigma"] > weak["mask_sigma"]
    with pytest.raises(ValueError, match="smoothing strength"):
        S.smoothing_parameters(-1.0, 25.0)
    with pytest.raises(ValueError):
        S.one_euro(np.zeros(3), 0.0)
