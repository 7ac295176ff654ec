"""Typed schema of the reproduction configs (``configs/eval/*.yaml``), loaded with magicanimate.config.

One config describes one table of the paper: where the test split lives, how the animation pipeline is
run on it, and how the results are evaluated. Unknown keys are errors (see :func:`load_eval_config`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from omegaconf import MISSING

from magicanimate.evaluation.harness import METRICS


@dataclass
class PaperNumbers:
    """The published numbers this config reproduces (printed beside ours; null = not reported)."""

    source: str = ""
    l1: Optional[float] = None
    psnr: Optional[float] = None
    ssim: Optional[float] = None
    lpips: Optional[float] = None
    fid: Optional[float] = None
    fid_vid: Optional[float] = None
    fvd: Optional[float] = None


@dataclass
class EvalConfig:
    name: str = MISSING
    data_root: str = MISSING  # one entry per test video: <data_root>/<video>/<frames_dir>, <densepose_dir>
    split_file: str = MISSING  # video names, one per line ('#' comments)
    frames_dir: str = "images"  # folder of frames or a video file name, inside each video's folder
    densepose_dir: str = "densepose"  # our viridis DensePose rendering (folder of frames or video)
    masks_dir: Optional[str] = None  # foreground masks for the foreground L1 (TED-talks)
    reference_frame: int = 0  # index of the ground-truth frame used as the reference image
    eval_size: List[int] = field(default_factory=lambda: [256, 256])  # (H, W) the metrics are computed at
    max_frames: Optional[int] = None
    output_dir: str = "outputs/eval"
    protocol: str = "disco"
    metrics: List[str] = field(default_factory=lambda: list(METRICS))
    weights_dir: Optional[str] = None  # metric network weights (scripts/download_eval_weights.py)
    fvd_clips: Optional[str] = None
    batch_size: int = 8
    # how every test video is animated: any settings of the inference config (configs/inference/default.yaml,
    # e.g. weights: {root: pretrained_models}, steps: 25, size: 512), over its defaults; the driver sets the
    # inputs, the output and the frame count
    animation: Dict[str, Any] = field(default_factory=dict)
    paper: PaperNumbers = field(default_factory=PaperNumbers)


DRIVER_KEYS = ("reference", "motion", "output", "max_frames")


def load_eval_config(path=None, overrides=()):
    """Load ``path`` strictly against :class:`EvalConfig`, then ``key=value`` overrides; the ``animation``
    section is checked against the inference config's schema."""
    from omegaconf import OmegaConf

    from magicanimate.config import load_config
    from magicanimate.errors import ConfigError
    from magicanimate.pipelines.config import new_inference_config

    cfg = load_config(EvalConfig, path, overrides)
    animation = OmegaConf.to_container(cfg.animation, resolve=True)
    driven = sorted(set(animation) & set(DRIVER_KEYS))
    if driven:
        raise ConfigError(f"{path}: animation.{driven[0]} is set by the driver for every test video; remove it")
    try:
        new_inference_config(**animation)
    except ConfigError as exc:
        raise ConfigError(f"{path}: animation: {exc}") from None
    return cfg
