"""Fréchet distance between Gaussians fitted to feature sets (FID, FID-VID, FVD).

``d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1^1/2 S2 S1^1/2)^1/2)``

The trace of the matrix square root is taken through the symmetric form: ``S1^1/2`` by an eigen-
decomposition (``eigh``, negative eigenvalues from rounding clipped to 0), then the eigenvalues of the
symmetric PSD matrix ``S1^1/2 S2 S1^1/2``. Unlike ``scipy.linalg.sqrtm(S1 @ S2)`` this never produces
complex parts and is stable for the singular covariances one gets from fewer samples than dimensions.
Everything is float64; covariances use ``ddof=1`` (as pytorch-fid's ``np.cov``).

From features with fewer samples than dimensions (FID-VID has one sample per video) the covariances are
low rank, and :func:`frechet_distance_from_features` uses the exact identity
``tr((S1 S2)^1/2) = ||X2 X1^T||_* / sqrt((n1 - 1)(n2 - 1))`` (X centred features, ``||.||_*`` the sum of
singular values): the nonzero eigenvalues of ``S1 S2`` are the squared singular values of that small
``n2 x n1`` matrix. Same number, without decomposing two ``D x D`` matrices.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np


def feature_statistics(features: np.ndarray, *, what: str = "features") -> Tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (``ddof=1``) of ``features`` shaped ``(N, D)``; needs N >= 2."""
    feats = np.asarray(features, dtype=np.float64)
    if feats.ndim != 2:
        raise ValueError(f"{what}: expected a (N, D) array, got shape {feats.shape}")
    if feats.shape[0] < 2:
        raise ValueError(
            f"{what}: a Fréchet distance needs at least 2 samples to estimate a covariance (ddof=1), got "
            f"{feats.shape[0]}")
    mu = feats.mean(axis=0)
    sigma = np.cov(feats, rowvar=False, ddof=1)
    return mu, np.atleast_2d(sigma)


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    sym = (matrix + matrix.T) / 2.0
    values, vectors = np.linalg.eigh(sym)
    values = np.clip(values, 0.0, None)
    return (vectors * np.sqrt(values)) @ vectors.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """``tr((S1 S2)^1/2)`` for symmetric PSD ``S1``, ``S2``, via ``S1^1/2 S2 S1^1/2``."""
    root1 = _sqrt_psd(np.asarray(sigma1, dtype=np.float64))
    inner = root1 @ np.asarray(sigma2, dtype=np.float64) @ root1
    eigenvalues = np.linalg.eigvalsh((inner + inner.T) / 2.0)
    return float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Squared Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2)."""
    mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(
            f"mismatched statistics: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}")
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2)
    # Rounding can leave a tiny negative number for identical statistics.
    return float(max(value, 0.0))


def frechet_distance_from_features(features1: np.ndarray, features2: np.ndarray, *, what: str = "features") -> float:
    """Fréchet distance between the Gaussians fitted to two ``(N, D)`` feature sets."""
    mu1, s1 = feature_statistics(features1, what=f"{what} (generated)")
    mu2, s2 = feature_statistics(features2, what=f"{what} (ground truth)")
    if s1.shape != s2.shape:
        raise ValueError(f"{what}: feature dimensions differ ({s1.shape[0]} vs {s2.shape[0]})")
    n1, n2, dim = len(features1), len(features2), s1.shape[0]
    if min(n1, n2) >= dim:
        return frechet_distance(mu1, s1, mu2, s2)
    x1 = np.asarray(features1, dtype=np.float64) - mu1
    x2 = np.asarray(features2, dtype=np.float64) - mu2
    trace_sqrt = np.linalg.svd(x2 @ x1.T, compute_uv=False).sum() / np.sqrt((n1 - 1) * (n2 - 1))
    diff = mu1 - mu2
    value = diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt
    return float(max(value, 0.0))
