"""Tiny datasets written by the tests: frames whose content follows a moving body-part map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from magicanimate.data.densepose import render_parts
from magicanimate.media import write_video


def part_maps(num_frames: int, height: int, width: int, seed: int) -> np.ndarray:
    """(F, H, W) int part maps: a 'torso' (1), a left (4) and right (3) 'hand' moving over background 0."""
    rng = np.random.default_rng(seed)
    maps = np.zeros((num_frames, height, width), np.int64)
    x0 = int(rng.integers(width // 4, width // 2))
    for f in range(num_frames):
        cx = x0 + f % 5
        maps[f, height // 4: 3 * height // 4, cx - width // 8: cx + width // 8] = 1
        maps[f, height // 3: height // 3 + height // 8, cx - width // 4: cx - width // 8] = 3
        maps[f, height // 3: height // 3 + height // 8, cx + width // 8: cx + width // 4] = 4
    return maps


def frames_for(maps: np.ndarray, seed: int) -> np.ndarray:
    """RGB frames: each part gets a per-video colour; a little noise."""
    rng = np.random.default_rng(seed + 1000)
    colours = rng.integers(0, 256, size=(25, 3)).astype(np.uint8)
    frames = colours[maps]
    noise = rng.integers(-8, 9, size=frames.shape)
    return np.clip(frames.astype(np.int64) + noise, 0, 255).astype(np.uint8)


def make_folder_dataset(root: Path, num_videos: int = 2, num_frames: int = 6, height: int = 40, width: int = 48,
                        iuv: bool = False, densepose_dir: str = "densepose") -> Path:
    """``<root>/<id>/images/NNNN.png`` + ``<root>/<id>/<densepose_dir>/NNNN.png`` (rendered or IUV)."""
    for v in range(num_videos):
        maps = part_maps(num_frames, height, width, seed=v)
        frames = frames_for(maps, seed=v)
        vid = root / f"{v + 1:05d}"
        (vid / "images").mkdir(parents=True, exist_ok=True)
        (vid / densepose_dir).mkdir(parents=True, exist_ok=True)
        for f in range(num_frames):
            Image.fromarray(frames[f]).save(vid / "images" / f"{f + 1:04d}.png")
            if iuv:
                iuv_img = np.zeros((height, width, 3), np.uint8)
                iuv_img[..., 2] = maps[f]  # I in the blue channel, as DensePose's OpenCV dump leaves it
                iuv_img[..., 0] = 77  # a "V"-like channel that must be ignored
                Image.fromarray(iuv_img).save(vid / densepose_dir / f"{f + 1:04d}.png")
            else:
                Image.fromarray(render_parts(maps[f])).save(vid / densepose_dir / f"{f + 1:04d}.png")
    return root


def make_mp4_dataset(root: Path, num_videos: int = 2, num_frames: int = 6, height: int = 48, width: int = 64,
                     videos_dir: str = "videos", densepose_dir: str = "densepose") -> Path:
    for v in range(num_videos):
        maps = part_maps(num_frames, height, width, seed=v)
        write_video(root / videos_dir / f"clip{v}.mp4", frames_for(maps, seed=v), fps=25)
        write_video(root / densepose_dir / f"clip{v}.mp4", render_parts(maps), fps=25)
    return root
