"""Fréchet distance: closed forms from metrics_vectors.json and a cross-check against scipy's sqrtm."""

import json

import numpy as np
import pytest
import scipy.linalg

from magicanimate.evaluation.frechet import (
    feature_statistics, frechet_distance, frechet_distance_from_features, trace_sqrt_product,
)


@pytest.fixture(scope="module")
def closed_forms(reference_dir):
    return json.loads((reference_dir / "metrics_vectors.json").read_text())["frechet_closed_forms"]


@pytest.mark.parametrize("case", ["diagonal", "non_commuting"])
def test_closed_forms(closed_forms, case):
    c = closed_forms[case]
    assert frechet_distance(c["mu1"], c["sigma1"], c["mu2"], c["sigma2"]) == pytest.approx(c["value"], rel=1e-6)


def test_mean_shift_equal_covariance(closed_forms):
    c = closed_forms["mean_shift_equal_cov"]
    d = c["dim"]
    value = frechet_distance(np.zeros(d), np.eye(d), np.ones(d), np.eye(d))
    assert value == pytest.approx(c["value"], rel=1e-6)


def _scipy_frechet(mu1, s1, mu2, s2):
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    covmean = np.real(covmean)
    diff = mu1 - mu2
    return diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_scipy_sqrtm_on_random_statistics(seed):
    rng = np.random.default_rng(seed)
    dim = 12
    x = rng.normal(size=(40, dim))
    y = rng.normal(size=(50, dim)) @ rng.normal(size=(dim, dim)) * 0.5 + 0.3
    mu1, s1 = feature_statistics(x)
    mu2, s2 = feature_statistics(y)
    ours = frechet_distance(mu1, s1, mu2, s2)
    assert ours == pytest.approx(_scipy_frechet(mu1, s1, mu2, s2), rel=1e-8)
    assert frechet_distance_from_features(x, y) == pytest.approx(ours, rel=1e-12)
    # symmetric in its arguments
    assert frechet_distance(mu2, s2, mu1, s1) == pytest.approx(ours, rel=1e-8)


def test_singular_covariances_stay_real_and_close_to_scipy():
    # fewer samples than dimensions: rank-deficient covariances (the usual FID-on-few-frames case)
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(5, 16)), rng.normal(size=(6, 16)) + 0.1
    mu1, s1 = feature_statistics(x)
    mu2, s2 = feature_statistics(y)
    ours = frechet_distance(mu1, s1, mu2, s2)
    assert np.isfinite(ours)
    assert ours == pytest.approx(_scipy_frechet(mu1, s1, mu2, s2), rel=1e-5)


def test_trace_sqrt_product_closed_form():
    s1, s2 = np.diag([4.0, 9.0]), np.diag([1.0, 4.0])
    assert trace_sqrt_product(s1, s2) == pytest.approx(2 + 6)


def test_statistics_use_ddof_1_in_float64():
    x = np.array([[0.0, 1.0], [2.0, 5.0], [4.0, 0.0]], dtype=np.float32)
    mu, sigma = feature_statistics(x)
    assert mu.dtype == np.float64 and sigma.dtype == np.float64
    np.testing.assert_allclose(sigma, np.cov(x.astype(np.float64), rowvar=False, ddof=1))


def test_identical_features_give_zero():
    x = np.random.default_rng(4).normal(size=(30, 8))
    assert frechet_distance_from_features(x, x.copy()) == pytest.approx(0.0, abs=1e-9)


def test_needs_two_samples():
    with pytest.raises(ValueError, match="at least 2 samples"):
        feature_statistics(np.zeros((1, 4)))


@pytest.mark.parametrize("n1, n2", [(5, 7), (3, 40), (40, 40)])
def test_low_rank_path_equals_full_computation(n1, n2):
    # fewer samples than dimensions takes the exact SVD identity; it must equal eigh and scipy
    rng = np.random.default_rng(n1 * 100 + n2)
    dim = 24
    x, y = rng.normal(size=(n1, dim)), rng.normal(size=(n2, dim)) * 1.5 + 0.2
    mu1, s1 = feature_statistics(x)
    mu2, s2 = feature_statistics(y)
    full = frechet_distance(mu1, s1, mu2, s2)
    # eigh of a rank-deficient covariance is the less exact of the two (sqrt of rounding-level eigenvalues)
    assert frechet_distance_from_features(x, y) == pytest.approx(full, rel=1e-6)
    assert full == pytest.approx(_scipy_frechet(mu1, s1, mu2, s2), rel=1e-5)
