"""Retargeting measured on synthetic ground truth.

The synthetic world renders any body with any motion, so "dancer B's motion M retargeted to dancer A" has
an exact answer: A's body doing M. A *triple* (A, B, M) gives

* driving = parts(B, M): the dancer's part maps, all frames;
* reference = parts(A, M), frame 0: the person to animate, as one part map;
* truth = parts(A, M): what retargeting should produce.

Three ways to turn the driving maps into A's are scored on frames 1..N (frame 0 is the reference's own
pose): ``none`` (the driving maps as they are), ``global`` (one scale and shift, least squares on frame 0
from B's joints onto A's, as ``--align-to`` fits landmarks; here the renderer's true joints, the best such
a fit can do) and ``ours`` (:func:`magicanimate.extraction.retarget.retarget_parts`, which sees part maps
only). Metrics per frame: the mean IoU over the parts present in either map (each of the 24 DensePose
parts counts alike, so hands and feet weigh as much as the torso) and the IoU of the whole person; averaged
over frames, then triples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence

import cv2
import numpy as np
from tqdm.auto import tqdm

from magicanimate.demo.synthetic.body import Identity, Projection, skeleton
from magicanimate.demo.synthetic.dataset import plan_dataset
from magicanimate.demo.synthetic.motion import Motion
from magicanimate.demo.synthetic.render import render_clip
from magicanimate.extraction.framing import fit_scale_shift
from magicanimate.extraction.retarget import retarget_parts

METHODS = ("none", "global", "ours")
#: the renderer's joints a global fit uses: the body landmarks a pose estimator would give.
FIT_JOINTS = ("neck", "head") + tuple(f"{j}_{s}" for j in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle")
                                      for s in ("l", "r"))


@dataclass(frozen=True)
class Triple:
    identity_a: int  # the person to animate (reference and truth)
    identity_b: int  # the dancer in the driving video
    motion: int

    def name(self) -> str:
        return f"A{self.identity_a}-B{self.identity_b}-M{self.motion}"


def triples(count: int, *, split: str = "test", seed: int = 0) -> List[Triple]:
    """``count`` triples from a split of the synthetic dataset with ``seed``: video k's identity is A, video
    k+1's identity (cyclically) is B, video k's motion is M. Splits never share identities or motions."""
    videos = plan_dataset({split: count}, seed)[split]
    return [Triple(v["identity_seed"], videos[(k + 1) % count]["identity_seed"], v["motion_seed"])
            for k, v in enumerate(videos)]


def true_joints(identity: int, motion: int, frame: int, size: int, fps: float = 25.0) -> np.ndarray:
    """``(J, 2)`` image positions (pixel centres at integers) of :data:`FIT_JOINTS` in one rendered frame."""
    pose = Motion.from_seed(motion).poses(frame + 1, fps)[frame]
    joints = skeleton(Identity.from_seed(identity), pose)
    project = Projection.make(pose, size, size, 1)
    return np.stack([project(joints[name]) for name in FIT_JOINTS])


def global_alignment(driving: np.ndarray, triple: Triple, size: int) -> np.ndarray:
    """The driving maps moved by the scale and shift that best carry B's frame-0 joints onto A's."""
    scale, shift = fit_scale_shift(true_joints(triple.identity_b, triple.motion, 0, size),
                                   true_joints(triple.identity_a, triple.motion, 0, size))
    matrix = np.array([[scale, 0.0, shift[0]], [0.0, scale, shift[1]]])
    return np.stack([cv2.warpAffine(np.ascontiguousarray(f, np.uint8), matrix, (size, size),
                                    flags=cv2.INTER_NEAREST, borderValue=0) for f in driving])


def part_iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean IoU of one frame over the parts present in either ``(H, W)`` map (1.0 when both are empty)."""
    labels = np.union1d(np.unique(pred), np.unique(truth))
    labels = labels[labels > 0]
    if not len(labels):
        return 1.0
    return float(np.mean([((pred == l) & (truth == l)).sum() / ((pred == l) | (truth == l)).sum() for l in labels]))


def foreground_iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """IoU of the person (any part) in one frame (1.0 when both are empty)."""
    union = ((pred > 0) | (truth > 0)).sum()
    return 1.0 if union == 0 else float(((pred > 0) & (truth > 0)).sum() / union)


def score_maps(pred: np.ndarray, truth: np.ndarray) -> Dict[str, float]:
    """Both IoUs averaged over frames 1..N of ``(N, H, W)`` maps."""
    frames = range(1, len(truth)) if len(truth) > 1 else range(len(truth))
    return {"part_iou": float(np.mean([part_iou(pred[i], truth[i]) for i in frames])),
            "foreground_iou": float(np.mean([foreground_iou(pred[i], truth[i]) for i in frames]))}


def render_triple(triple: Triple, num_frames: int, size: int):
    """``(driving, reference, truth)``: part maps as :func:`retarget_parts` takes them (int64)."""
    driving = render_clip(triple.identity_b, triple.motion, num_frames, size).parts.astype(np.int64)
    truth = render_clip(triple.identity_a, triple.motion, num_frames, size).parts.astype(np.int64)
    return driving, truth[0], truth


def method_maps(method: str, triple: Triple, driving: np.ndarray, reference: np.ndarray, size: int) -> np.ndarray:
    if method == "none":
        return driving
    if method == "global":
        return global_alignment(driving, triple, size)
    if method == "ours":
        return retarget_parts(driving, reference)
    raise ValueError(f"unknown method {method!r}; known: {METHODS}")


def evaluate(cases: Sequence[Triple], *, num_frames: int = 24, size: int = 128,
             methods: Sequence[str] = METHODS, progress: bool = True) -> Dict[str, Dict[str, Dict[str, float]]]:
    """``{triple name: {method: {"part_iou": .., "foreground_iou": ..}}}``."""
    results = {}
    for triple in tqdm(cases, desc="retarget benchmark", unit="triple", disable=not progress):
        driving, reference, truth = render_triple(triple, num_frames, size)
        results[triple.name()] = {m: score_maps(method_maps(m, triple, driving, reference, size), truth)
                                  for m in methods}
    return results


def summarise(results: Dict[str, Dict[str, Dict[str, float]]]) -> Dict[str, object]:
    """Means per method and metric, and how often ours falls below the global fit (part IoU)."""
    methods = list(next(iter(results.values())))
    mean = {m: {k: float(np.mean([r[m][k] for r in results.values()])) for k in ("part_iou", "foreground_iou")}
            for m in methods}
    out: Dict[str, object] = {"mean": mean, "triples": len(results)}
    if "ours" in methods and "global" in methods:
        below = [name for name, r in results.items() if r["ours"]["part_iou"] < r["global"]["part_iou"]]
        out["ours_below_global"] = below
    return out
