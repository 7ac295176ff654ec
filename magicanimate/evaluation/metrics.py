"""Metrics as objects that see one video at a time: ``add(generated, ground_truth, mask)`` returns that
video's numbers, ``finalize()`` the numbers over every video added.

The evaluation harness runs a list of them over a folder of videos; the demo benchmark scores its clips with
the same objects. Per-frame metrics average over every frame of every video (not over per-video means).
"""

from __future__ import annotations

import math
from typing import Callable, Dict, List, Optional

import numpy as np

from magicanimate.evaluation import frame_metrics as fm
from magicanimate.evaluation.frechet import frechet_distance_from_features


class VideoMetric:
    """One metric over a set of videos. ``key``: the name its results go under."""

    key: str = ""

    def add(self, generated: np.ndarray, ground_truth: np.ndarray, mask: Optional[np.ndarray] = None) -> Dict[str, float]:
        raise NotImplementedError

    def finalize(self) -> Dict[str, float]:
        raise NotImplementedError


class PerFrameMetric(VideoMetric):
    """A function of one (generated, ground-truth) frame pair, averaged over frames."""

    def __init__(self, key: str, fn: Callable[[np.ndarray, np.ndarray], float]):
        self.key, self.fn, self.values = key, fn, []

    def add(self, generated, ground_truth, mask=None):
        values = [self.fn(g, t) for g, t in zip(generated, ground_truth)]
        self.values.extend(values)
        return {self.key: float(np.mean(values))}

    def finalize(self):
        return {self.key: float(np.mean(self.values))} if self.values else {}


def finite_mean(values: List[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")


class ForegroundL1(VideoMetric):
    """Mean absolute error inside the ground truth's foreground mask (frames without foreground skipped)."""

    key = "mae_foreground"

    def __init__(self):
        self.values: List[float] = []

    def add(self, generated, ground_truth, mask=None):
        if mask is None:
            return {}
        values = [fm.masked_mae(g, t, m) for g, t, m in zip(generated, ground_truth, mask)]
        self.values.extend(values)
        return {self.key: finite_mean(values)}

    def finalize(self):
        return {self.key: finite_mean(self.values)} if self.values else {}


class TemporalError(VideoMetric):
    """Mean |(g[t+1]-g[t]) - (y[t+1]-y[t])| on 0..255: flicker raises it, a still video scores the true
    motion's size. Averaged over videos."""

    key = "temporal"

    def __init__(self):
        self.values: List[float] = []

    def add(self, generated, ground_truth, mask=None):
        if generated.shape != ground_truth.shape:
            raise ValueError(f"shapes differ: {generated.shape} vs {ground_truth.shape}")
        if len(generated) < 2:
            raise ValueError("the temporal error needs at least 2 frames")
        g, y = generated.astype(np.float64), ground_truth.astype(np.float64)
        value = float(np.abs(np.diff(g, axis=0) - np.diff(y, axis=0)).mean())
        self.values.append(value)
        return {self.key: value}

    def finalize(self):
        return {self.key: float(np.mean(self.values))} if self.values else {}


class LpipsMetric(VideoMetric):
    """LPIPS distance per frame pair, averaged over frames; ``distances(gen, gt)`` runs the network."""

    def __init__(self, key: str, distances: Callable[[np.ndarray, np.ndarray], np.ndarray]):
        self.key, self.distances, self.values = key, distances, []

    def add(self, generated, ground_truth, mask=None):
        values = self.distances(generated, ground_truth)
        self.values.extend(values.tolist())
        return {"lpips": float(values.mean())}

    def finalize(self):
        return {self.key: float(np.mean(self.values))} if self.values else {}


class FrechetMetric(VideoMetric):
    """A Fréchet distance between feature sets: ``features(video)`` gives one array per video (rows are
    samples: frames, clips, or one row per video), stacked (``stack=True``) or concatenated."""

    def __init__(self, key: str, features: Callable[[np.ndarray], np.ndarray], what: str, *, stack: bool = False):
        self.key, self.features, self.what, self.stack = key, features, what, stack
        self.generated: List[np.ndarray] = []
        self.ground_truth: List[np.ndarray] = []

    def add(self, generated, ground_truth, mask=None):
        self.generated.append(self.features(generated))
        self.ground_truth.append(self.features(ground_truth))
        return {"clips": len(self.generated[-1])} if self.key.startswith("fvd") else {}

    def samples(self) -> int:
        return int(sum(len(f) for f in self.generated))

    def finalize(self):
        join = np.stack if self.stack else np.concatenate
        return {self.key: frechet_distance_from_features(join(self.generated), join(self.ground_truth),
                                                         what=self.what)}


def score_videos(metrics: List[VideoMetric], generated, ground_truth, mask=None) -> Dict[str, float]:
    """Add one video to every metric; that video's numbers."""
    out: Dict[str, float] = {}
    for metric in metrics:
        out.update(metric.add(generated, ground_truth, mask))
    return out


def finalize_all(metrics: List[VideoMetric]) -> Dict[str, float]:
    out: Dict[str, float] = {}
    for metric in metrics:
        out.update(metric.finalize())
    return out
