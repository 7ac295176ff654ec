"""Finding and pairing the videos of a generated folder and a ground-truth folder.

Each folder holds one entry per video: a video file (mp4, avi, ...) or a sub-folder of frames. Entries are
matched by name (file stem or folder name). A folder that directly contains image frames (and no video
entries) is one video; two such single videos are paired whatever their names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import cv2
import numpy as np

from magicanimate.media import IMAGE_EXTENSIONS, natural_key, read_video
from magicanimate.errors import InputError

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".gif", ".m4v")


@dataclass
class VideoPair:
    name: str
    generated: Path
    ground_truth: Path
    mask: Optional[Path] = None


def _has_frames(folder: Path) -> bool:
    return any(p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS for p in folder.iterdir())


def discover_videos(root, *, role: str) -> Dict[str, Path]:
    """Map video name -> path for the videos in ``root`` (a folder, or one video file)."""
    return _discover(root, role=role)[0]


def _discover(root, *, role: str):
    """``(videos, single)``: ``single`` when ``root`` itself is one video (a file or a frame folder)."""
    root = Path(root)
    if not root.exists():
        raise InputError(f"{root}: no such file or folder ({role} videos)")
    if root.is_file():
        if root.suffix.lower() not in VIDEO_EXTENSIONS:
            raise InputError(f"{root}: not a video file ({role}); expected {', '.join(VIDEO_EXTENSIONS)} or a folder")
        return {root.stem: root}, True
    videos: Dict[str, Path] = {}
    for entry in sorted(root.iterdir(), key=lambda p: natural_key(p.name)):
        if entry.name.startswith("."):
            continue
        if entry.is_file() and entry.suffix.lower() in VIDEO_EXTENSIONS:
            name = entry.stem
        elif entry.is_dir() and _has_frames(entry):
            name = entry.name
        else:
            continue
        if name in videos:
            raise InputError(f"{root}: two {role} videos are named {name!r} ({videos[name].name} and {entry.name})")
        videos[name] = entry
    if not videos:
        if _has_frames(root):
            return {root.name: root}, True
        raise InputError(
            f"{root}: no {role} videos found (expected video files or sub-folders of png/jpg frames, one per video)")
    return videos, False


def pair_videos(generated, ground_truth, masks=None) -> List[VideoPair]:
    """Pair generated and ground-truth videos by name; every video must have its counterpart."""
    gen, gen_single = _discover(generated, role="generated")
    gt, gt_single = _discover(ground_truth, role="ground-truth")
    if gen_single and gt_single:
        # Two single videos were given directly: their names need not agree.
        gen = {next(iter(gt)): next(iter(gen.values()))}
    missing = [n for n in gt if n not in gen]
    extra = [n for n in gen if n not in gt]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"no generated video for {sorted(missing, key=natural_key)[:10]} (in {ground_truth})")
        if extra:
            parts.append(f"no ground truth for generated {sorted(extra, key=natural_key)[:10]} (in {generated})")
        raise InputError("videos do not match by name: " + "; ".join(parts))
    mask_paths: Dict[str, Path] = {}
    if masks is not None:
        mask_paths = discover_videos(masks, role="mask")
        absent = [n for n in gt if n not in mask_paths]
        if absent:
            raise InputError(f"{masks}: no foreground mask for {sorted(absent, key=natural_key)[:10]}")
    return [VideoPair(n, gen[n], gt[n], mask_paths.get(n)) for n in gt]


def resize_frames(frames: np.ndarray, size) -> np.ndarray:
    """Resize (F, H, W, 3) uint8 frames to ``size`` = (H, W), bilinear (OpenCV, as DisCo); no-op if equal."""
    height, width = size
    if frames.shape[1:3] == (height, width):
        return frames
    return np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_LINEAR) for f in frames])


def load_pair(pair: VideoPair, *, allow_length_mismatch: bool = False, max_frames: Optional[int] = None):
    """Frames of one pair: generated resized to the ground-truth size, equal frame counts.

    Returns ``(generated, ground_truth, mask or None)``; masks are (F, H, W) bool (gray > 127).
    """
    gt = read_video(pair.ground_truth, max_frames=max_frames).frames
    gen = read_video(pair.generated, max_frames=max_frames).frames
    if len(gen) != len(gt):
        if not allow_length_mismatch:
            raise InputError(
                f"{pair.generated}: {len(gen)} frames but the ground truth {pair.ground_truth} has {len(gt)} "
                f"(pass --allow-length-mismatch to compare the first min(...) frames)")
        n = min(len(gen), len(gt))
        gen, gt = gen[:n], gt[:n]
    gen = resize_frames(gen, gt.shape[1:3])
    mask = None
    if pair.mask is not None:
        mask_frames = read_video(pair.mask, max_frames=max_frames).frames
        if len(mask_frames) < len(gt):
            raise InputError(f"{pair.mask}: {len(mask_frames)} mask frames for {len(gt)} ground-truth frames")
        mask_frames = resize_frames(mask_frames[: len(gt)], gt.shape[1:3])
        mask = mask_frames.mean(axis=3) > 127
    return gen, gt, mask
