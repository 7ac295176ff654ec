"""Reproduce a table: animate every test video of a split, then evaluate against its ground truth.

Layout written under ``cfg.output_dir``::

    references/<video>.png        the reference image (ground-truth frame ``reference_frame``, full size)
    ground_truth/<video>/NNNN.png  ground-truth frames at ``eval_size`` (lossless)
    masks/<video>/NNNN.png         foreground masks at ``eval_size`` (when ``masks_dir`` is set)
    generated/<video>.mp4          the animation, one per test video (existing files are kept: resumable)
    results.json, results.md       the evaluation, with the paper's numbers beside ours

The animation step goes through one small boundary, :data:`AnimateFn`: it receives an
:class:`AnimationJob` and must write ``job.output``. The default calls the inference pipeline
(``magicanimate.pipelines.animate.animate``); tests and other models pass their own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

import cv2
import numpy as np
from omegaconf import OmegaConf
from tqdm.auto import tqdm

from magicanimate.media import read_video, write_image
from magicanimate.errors import ConfigError, InputError
from magicanimate.evaluation.harness import EvalOptions, evaluate_folders, markdown_table, write_results

logger = logging.getLogger(__name__)


@dataclass
class AnimationJob:
    name: str
    reference: Path  # png
    motion: Path  # DensePose rendering (video file or frame folder)
    output: Path  # mp4 to write
    num_frames: int  # frames to generate (= ground-truth frames evaluated)
    settings: dict  # the config's animation section: inference settings


AnimateFn = Callable[[AnimationJob], None]


def read_split(path) -> List[str]:
    """Video names of a split file: one per line, blank lines and ``#`` comments ignored."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: split file not found")
    names = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
    names = [n for n in names if n]
    if not names:
        raise InputError(f"{path}: the split lists no videos")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(f"{path}: videos listed twice: {duplicates}")
    return names


def _resize(frames: np.ndarray, size) -> np.ndarray:
    height, width = size
    if frames.shape[1:3] == (height, width):
        return frames
    return np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_LINEAR) for f in frames])


def _source(root: Path, name: str, sub: str, what: str) -> Path:
    path = root / name / sub
    if not path.exists():
        raise InputError(f"{path}: {what} of test video {name!r} not found")
    return path


def prepare_ground_truth(cfg, names: List[str], out: Path, *, progress: bool = True) -> None:
    """Write references, eval-size ground-truth frames (and masks) for every video of the split."""
    root = Path(cfg.data_root)
    size = list(cfg.eval_size)
    if len(size) != 2 or min(size) < 1:
        raise ConfigError(f"eval_size must be [H, W] with positive values, got {size}")
    for name in tqdm(names, desc="ground truth", unit="video", disable=not progress):
        gt_dir = out / "ground_truth" / name
        frames = read_video(_source(root, name, cfg.frames_dir, "ground-truth frames"), max_frames=cfg.max_frames).frames
        if not 0 <= cfg.reference_frame < len(frames):
            raise InputError(f"{root / name}: reference_frame {cfg.reference_frame} outside its {len(frames)} frames")
        write_image(out / "references" / f"{name}.png", frames[cfg.reference_frame])
        if not gt_dir.is_dir() or len(list(gt_dir.glob("*.png"))) != len(frames):
            for i, frame in enumerate(_resize(frames, size)):
                write_image(gt_dir / f"{i:05d}.png", frame)
        if cfg.masks_dir:
            masks = read_video(_source(root, name, cfg.masks_dir, "foreground masks"), max_frames=len(frames)).frames
            for i, mask in enumerate(_resize(masks, size)):
                write_image(out / "masks" / name / f"{i:05d}.png", mask)


def pipeline_animate_fn() -> AnimateFn:
    """The default :data:`AnimateFn`: the inference pipeline, loaded once and reused for every video."""
    try:
        from magicanimate.pipelines.animate import animate
    except ImportError as exc:  # the pipeline area is optional for pure evaluation
        raise ConfigError(
            f"the animation pipeline is not available ({exc}); generate the videos yourself into "
            f"<output_dir>/generated/<video>.mp4 and rerun with --skip-generation") from None
    state = {"pipeline": None}

    def run(job: AnimationJob) -> None:
        config = dict(job.settings)
        config.update(reference=str(job.reference), motion=str(job.motion), output=str(job.output),
                      max_frames=job.num_frames, grid=False, save_config=False)
        result = animate(config, pipeline=state["pipeline"])
        state["pipeline"] = result.pipeline

    return run


def generate(cfg, names: List[str], out: Path, animate_fn: AnimateFn, *, progress: bool = True) -> None:
    """Animate each test video whose result is not there yet (a rerun resumes)."""
    root = Path(cfg.data_root)
    for name in tqdm(names, desc="animating", unit="video", disable=not progress):
        output = out / "generated" / f"{name}.mp4"
        if output.is_file():
            continue
        num_frames = len(list((out / "ground_truth" / name).glob("*.png")))
        job = AnimationJob(name, out / "references" / f"{name}.png",
                           _source(root, name, cfg.densepose_dir, "DensePose motion"), output, num_frames,
                           OmegaConf.to_container(cfg.animation, resolve=True))
        animate_fn(job)
        if not output.is_file():
            raise InputError(f"{output}: the animation step finished without writing its video")


def paper_table(results: dict, paper) -> str:
    """Our headline numbers beside the paper's."""
    lines = [f"| metric | ours ({results['protocol']}) | paper |", "|---|---|---|"]
    for metric, value in results["metrics"].items():
        theirs = getattr(paper, metric, None) if metric in paper else None
        lines.append(f"| {metric} | {value:.6g} | {'' if theirs is None else f'{theirs:.6g}'} |")
    source = f"\n\npaper numbers: {paper.source}" if paper.source else ""
    return "\n".join(lines) + source


def run_reproduction(cfg, *, animate_fn: Optional[AnimateFn] = None, skip_generation: bool = False,
                     random_networks: bool = False, progress: bool = True) -> dict:
    """Prepare ground truth, animate the split (unless ``skip_generation``), evaluate, write results."""
    out = Path(cfg.output_dir)
    names = read_split(cfg.split_file)
    prepare_ground_truth(cfg, names, out, progress=progress)
    if not skip_generation:
        generate(cfg, names, out, animate_fn or pipeline_animate_fn(), progress=progress)
    options = EvalOptions(
        protocol=cfg.protocol, metrics=list(cfg.metrics), weights_dir=cfg.weights_dir,
        random_networks=random_networks, fvd_clips=cfg.fvd_clips, batch_size=cfg.batch_size,
        masks=out / "masks" if cfg.masks_dir else None, progress=progress,
        extra={"config": cfg.name, "split": str(cfg.split_file),
               "paper": OmegaConf.to_container(cfg.paper, resolve=True)},
    )
    results = evaluate_folders(out / "generated", out / "ground_truth", options)
    write_results(results, out / "results.json")
    text = markdown_table(results) + "\n\n" + paper_table(results, cfg.paper) + "\n"
    from magicanimate.utils.files import atomic_path

    with atomic_path(out / "results.md") as tmp:
        tmp.write_text(text)
    return results
