"""Inputs for the web-demo tests: a tiny random model folder, a reference image, DensePose and raw videos.

Also runnable, to try the page by hand: ``python -m tests.app.fixtures OUT_DIR`` writes the same files.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from magicanimate.media import write_image, write_video
from magicanimate.testing import densepose_video, reference_image

FPS = 8.0


def make_model(folder: Path) -> Path:
    """A saved tiny random pipeline (frame sizes: multiples of 64)."""
    from magicanimate.testing import tiny_pipeline

    tiny_pipeline(seed=0).save_pretrained(folder)
    return folder


def make_inputs(folder: Path, *, frames: int = 6, size: int = 64) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    paths = dict(reference=folder / "reference.png", motion=folder / "motion.mp4",
                 long_motion=folder / "long_motion.mp4", raw=folder / "raw.mp4", text=folder / "notes.txt",
                 fake_image=folder / "fake.png", fake_video=folder / "fake.mp4")
    write_image(paths["reference"], reference_image(size, size, seed=3))
    write_video(paths["motion"], densepose_video(frames, size, size), FPS)
    write_video(paths["long_motion"], densepose_video(20, size, size), FPS)
    rng = np.random.default_rng(0)
    write_video(paths["raw"], rng.integers(0, 256, (frames, size, size, 3), dtype=np.uint8), FPS)
    paths["text"].write_text("not an image\n")
    paths["fake_image"].write_text("not an image either\n")
    paths["fake_video"].write_bytes(b"\x00\x00\x00\x18ftypmp42 this is no video")
    return paths


if __name__ == "__main__":
    out = Path(sys.argv[1])
    make_model(out / "model")
    print(make_inputs(out / "inputs"))
