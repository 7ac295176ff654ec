"""Inputs for the command-line tests: a saved tiny pipeline folder, a reference image, DensePose videos."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from magicanimate.media import write_image, write_video
from magicanimate.testing import densepose_video, reference_image, tiny_pipeline


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def cli_files(tmp_path_factory):
    base = tmp_path_factory.mktemp("cli_inputs")
    tiny_pipeline(seed=0).save_pretrained(base / "pipe")
    write_image(base / "ref.png", reference_image(64, 64))
    write_video(base / "motion.mp4", densepose_video(6, 64, 64), fps=8)
    write_video(base / "one.mp4", densepose_video(1, 64, 64), fps=8)
    write_video(base / "raw.mp4", np.random.default_rng(0).integers(0, 256, (6, 64, 64, 3), dtype=np.uint8), fps=8)
    return base
