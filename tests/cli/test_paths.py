"""Paths pass through scripts/animate.py unchanged: backslashes, both quote kinds, spaces, YAML-looking
names, as flags and as key=value overrides (the CLI applies typed values; nothing is re-parsed as YAML)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from magicanimate.media import read_video

REPO = Path(__file__).resolve().parents[2]
ODD = ["back\\slash\\\\double", "both \"double\" and 'single'", "yaml: [not, a, list] #no-comment", "nul"]


@pytest.mark.parametrize("name", ODD)
def test_odd_paths_pass_through_unchanged(cli_files, tmp_path, name):
    folder = tmp_path / name
    folder.mkdir()
    reference = folder / f"{name}.png"
    motion = folder / f"{name}.mp4"
    shutil.copyfile(cli_files / "ref.png", reference)
    shutil.copyfile(cli_files / "motion.mp4", motion)
    output = folder / f"out {name}.mp4"
    cmd = [sys.executable, str(REPO / "scripts" / "animate.py"), "--reference", str(reference),
           f"motion={motion}", "--pipeline", str(cli_files / "pipe"), "--output", str(output), "--size", "64",
           "--steps", "1", "--context-frames", "6", "--quiet", "--threads", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=str(tmp_path),
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode == 0, proc.stderr
    assert read_video(output).frames.shape == (6, 64, 64, 3)
    saved = OmegaConf.load(folder / f"out {name}_config.yaml")
    assert (saved.reference, saved.motion, saved.output) == (str(reference), str(motion), str(output))


def test_text_settings_take_the_override_text_as_it_is():
    from magicanimate.config import apply_overrides
    from magicanimate.pipelines.config import InferenceConfig

    cfg = OmegaConf.structured(InferenceConfig)
    apply_overrides(cfg, ["reference=a #b.png", "motion=x: [1, 2].mp4", "output='quoted whole.mp4'",
                          "weights.vae=C:\\models\\vae", "steps=3", "fps=null"])
    assert (cfg.reference, cfg.motion, cfg.output) == ("a #b.png", "x: [1, 2].mp4", "quoted whole.mp4")
    assert cfg.weights.vae == "C:\\models\\vae" and cfg.steps == 3 and cfg.fps is None
    apply_overrides(cfg, ["reference=null"])
    assert cfg.reference is None
