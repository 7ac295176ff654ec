"""scripts/make_demo.py end to end at a tiny scale: dataset -> VAE -> base folder -> stage 1 -> decay phase ->
stage 2 -> shipped demo folder, which then loads strictly and animates."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from magicanimate.media import read_image, read_video

REPO = Path(__file__).resolve().parents[2]


def test_recipe_smoke_run_ships_a_working_demo(tmp_path):
    run, demo = tmp_path / "run", tmp_path / "demo"
    cmd = [sys.executable, str(REPO / "scripts" / "make_demo.py"), "--scale", "0.001", f"run_dir={run}",
           "threads=1", "data.train=2", "stage1.videos=1", "data.val=1", "data.test=1", "data.frames=10",
           "vae.train_on_dataset=true", f"ship.demo_dir={demo}", "ship.frames=9",
           "vae.max_minutes=600"]  # the wall budget (x scale) must not end the 10 VAE steps on a busy machine
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    for step in ("dataset", "vae", "stage1", "stage1_decay", "stage2"):
        assert (run / "logs" / f"{step}.log").is_file(), step
    from omegaconf import OmegaConf

    # stage 1 on the first train dancer only (stage1.videos), the decay phase and stage 2 on both
    assert OmegaConf.load(run / "stage1" / "config.yaml").data.max_videos == 1
    assert OmegaConf.load(run / "stage1_decay" / "config.yaml").data.max_videos is None
    assert OmegaConf.load(run / "stage2" / "config.yaml").data.max_videos is None
    vae_metrics = json.loads((run / "vae" / "metrics.json").read_text())
    assert vae_metrics["steps"] == 10  # 10000 steps x 0.001
    assert json.loads((run / "base" / "vae" / "config.json").read_text())["scaling_factor"] == \
        vae_metrics["scaling_factor"]

    source = json.loads((demo / "source.json").read_text())
    assert source == {"video_id": "test_0000", "split": "test", "frames": 9}
    motion = read_video(demo / "motion.mp4")
    assert motion.frames.shape == (9, 64, 64, 3)

    from magicanimate.pipelines.pipeline_magicanimate import MagicAnimatePipeline

    pipe = MagicAnimatePipeline.from_pretrained(str(demo / "model"))
    assert pipe.unet.config.use_motion_module and pipe.text_encoder is None
    # stage 2 trained the motion modules only: the spatial UNet is the decay phase's export, which went on
    # training stage 1's
    decayed = MagicAnimatePipeline.from_pretrained(str(run / "stage1_decay" / "export" / "pipeline"))
    stage1 = MagicAnimatePipeline.from_pretrained(str(run / "stage1" / "export" / "pipeline"))
    spatial = {k: v for k, v in pipe.unet.state_dict().items() if "motion_modules" not in k}
    for k, v in decayed.unet.state_dict().items():
        torch.testing.assert_close(spatial[k], v, rtol=0, atol=0)
    assert any(not torch.equal(v, stage1.unet.state_dict()[k]) for k, v in decayed.unet.state_dict().items())

    shipped = OmegaConf.to_container(OmegaConf.load(demo / "model" / "settings.yaml"))
    assert shipped == OmegaConf.to_container(OmegaConf.load(REPO / "configs" / "demo" / "recipe.yaml").ship.settings)
    assert shipped["init_strength"] < 1  # the recipe's own choice reaches the demo
    ref = read_image(demo / "reference.png")
    assert ref.shape == (64, 64, 3)
    pipe.set_progress_bar_config(disable=True)
    out = pipe(ref, motion.frames[:4], num_inference_steps=1, context_frames=4, context_overlap=0,
               generator=torch.Generator().manual_seed(0), init_from_reference=True, init_strength=0.7)
    assert tuple(out.videos.shape) == (1, 3, 4, 64, 64) and np.isfinite(out.videos.numpy()).all()

    # a second run finds every step done and only ships again
    again = subprocess.run(cmd + ["--no-ship"], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "[stage1]" not in again.stdout and "[vae]" not in again.stdout and "[stage2]" not in again.stdout
