"""The full-size benchmark's whole path at a tiny size: build the weights in the released layout, load them
through the public path in a fresh process, time each component, report each saving. CI never builds the
full-size weights."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from magicanimate.benchmarks.fullsize import SD15_UNET, SD15_VAE, build_weights

REPO = Path(__file__).resolve().parents[2]
TINY_UNET = dict(SD15_UNET, block_out_channels=(32,) * 4, layers_per_block=1, cross_attention_dim=24,
                 norm_num_groups=8, sample_size=8)
TINY_VAE = dict(SD15_VAE, block_out_channels=(16,) * 4, layers_per_block=1, norm_num_groups=8, sample_size=64)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return build_weights(tmp_path_factory.mktemp("fullsize") / "weights", seed=3, unet_config=TINY_UNET,
                         vae_config=TINY_VAE)


def test_build_writes_the_released_layout(weights):
    for rel in ("stable-diffusion-v1-5/unet/config.json", "stable-diffusion-v1-5/vae/config.json",
                "MagicAnimate/appearance_encoder/config.json", "MagicAnimate/densepose_controlnet/config.json",
                "MagicAnimate/temporal_attention/temporal_attention.ckpt", "prompt_embeds.safetensors", "BUILT"):
        assert (weights / rel).is_file(), rel


def test_benchmark_records_load_components_steps_and_savings(weights, tmp_path):
    out = tmp_path / "results"
    cmd = [sys.executable, str(REPO / "scripts" / "benchmark_fullsize.py"), "--weights-dir", str(weights),
           "--size", "64", "--frames", "20", "--steps", "2", "--fusion", "tapered", "--threads", "1",
           "--savings", "--label", "tiny", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((out / "fullsize_cpu_fp32.json").read_text())
    (row,) = data["results"]
    assert row["label"] == "tiny" and row["dtype"] == "fp32" and row["frames"] == 20
    assert len(row["step_s"]) == 2 and all(s > 0 for s in row["step_s"])
    # tapered windows of 16 frames with overlap 4 over 20 frames: 2 windows per step, one encoder run per step
    assert row["calls"]["unet"] == 2 * 2 and 2 <= row["calls"]["controlnet"] <= 2 * 2
    assert row["calls"]["appearance_encoder"] == 2
    assert sum(row["components_s"].values()) < row["total_s"]
    assert row["weights_gb"] > 0 and row["load_peak_gb"] > 0 and row["run_peak_gb"] > 0
    # each exact saving switched off gives the same output (float rounding only)
    assert set(row["savings"]) == {"without controlnet_overlap", "without shared_trunk", "without any"}
    for name, saving in row["savings"].items():
        assert saving["max_abs_latent_diff"] < 1e-4, name
    table = (out / "fullsize_cpu_fp32.md").read_text()
    assert "| tiny | fp32 | 64² | 20 | 2 | tapered |" in table and "without shared_trunk" in table

    # a second configuration is merged into the same files, keyed by label
    cmd[cmd.index("tiny")] = "tiny-2"
    cmd.remove("--savings")
    assert subprocess.run(cmd, capture_output=True, text=True, cwd=str(tmp_path)).returncode == 0
    labels = [r["label"] for r in json.loads((out / "fullsize_cpu_fp32.json").read_text())["results"]]
    assert labels == ["tiny", "tiny-2"]
