"""scripts/animate.py end to end on a tiny model saved in the original layout, and its input checks."""

import importlib.util
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
import pytest
import yaml
from PIL import Image

from magicanimate.media import VideoReader, write_video
from magicanimate.pipelines.animate import prepare
from magicanimate.pipelines.config import load_inference_config, new_inference_config
from magicanimate.testing import tiny_pipeline

from magicanimate.testing import densepose_video, reference_image, tiny_clip

from .helpers import save_original_layout

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "animate.py"
_spec = importlib.util.spec_from_file_location("animate_cli", SCRIPT)
animate_cli = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(animate_cli)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Tiny weights in the original layout, a 10-frame 96x64 DensePose video at 12 fps, a reference."""
    base = tmp_path_factory.mktemp("cli")
    embeds = save_original_layout(tiny_pipeline(seed=0), base / "weights")
    write_video(base / "motion.mp4", densepose_video(10, 64, 96), fps=12)
    Image.fromarray(reference_image(80, 60)).save(base / "ref.png")
    return dict(base=base, weights=base / "weights", embeds=embeds, motion=base / "motion.mp4",
                ref=base / "ref.png")


def _args(files, out, *extra):
    return ["--reference", str(files["ref"]), "--motion", str(files["motion"]), "--output", str(out),
            "--weights", str(files["weights"]), "--prompt-embeds", str(files["embeds"]), "--steps", "1",
            "--size", "64", "--context-frames", "8", "--context-overlap", "3", "--seed", "3", "--quiet", *extra]


def test_cli_writes_video_grid_and_config(files, tmp_path):
    out = tmp_path / "out" / "result.mp4"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # steadier on a shared machine
    proc = subprocess.run([sys.executable, str(SCRIPT), *_args(files, out)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    # 96x64 motion, longer side -> 64: output 64x40 (aspect kept, multiples of 8), motion fps, all frames
    with VideoReader(out) as video:
        assert len(video) == 10
        assert video.fps == pytest.approx(12)
        assert video.size == (40, 64)
        frames = video[0:10]
    assert frames.std() > 1  # not a blank video
    with VideoReader(out.with_name("result_grid.mp4")) as grid:
        assert len(grid) == 10 and grid.size == (40, 192)  # reference | DensePose | result
    saved = load_inference_config(out.with_name("result_config.yaml"))
    assert saved.seed == 3 and saved.steps == 1 and saved.weights.root == str(files["weights"])
    assert sorted(p.name for p in out.parent.iterdir()) == ["result.mp4", "result_config.yaml", "result_grid.mp4"]


def test_original_prompt_config(files, tmp_path, monkeypatch, caplog):
    w = files["weights"]
    cfg = {"pretrained_model_path": str(w / "stable-diffusion-v1-5"),
           "pretrained_controlnet_path": str(w / "MagicAnimate" / "densepose_controlnet"),
           "pretrained_appearance_encoder_path": str(w / "MagicAnimate" / "appearance_encoder"),
           "motion_module": str(w / "MagicAnimate" / "temporal_attention" / "temporal_attention.ckpt"),
           "pretrained_vae_path": "", "pretrained_unet_path": "", "savename": "run", "seed": [5], "steps": 1,
           "guidance_scale": 7.5, "source_image": [str(files["ref"])], "video_path": [str(files["motion"])],
           "size": 64, "L": 16, "save_individual_videos": True, "S": 1, "fusion_blocks": "midup", "max_length": 9, "offset": 1}
    path = tmp_path / "animation.yaml"
    path.write_text(yaml.safe_dump(cfg))
    monkeypatch.chdir(tmp_path)
    from magicanimate.pipelines import animate as core

    monkeypatch.setattr(core, "IN_MEMORY_BYTES", 0)  # read the motion video window by window
    with caplog.at_level(logging.WARNING):
        rc = animate_cli.main(["--config", str(path), "--quiet", f"weights.prompt_embeds={files['embeds']}"])
    assert rc == 0
    assert "'L' is ignored" in caplog.text and "'fusion_blocks' is ignored" in caplog.text
    out = tmp_path / "samples" / "run" / "videos" / "ref_motion.mp4"
    with VideoReader(out) as video:
        assert len(video) == 9 and video.size == (64, 64)  # original: max_length frames, size x size
    saved = load_inference_config(out.with_name("ref_motion_config.yaml"))
    assert saved.fusion == "parity" and saved.seed == 5 and saved.offset == 1
    with VideoReader(out.with_name("ref_motion_densepose.mp4")) as control:  # save_individual_videos
        assert len(control) == 9
    assert out.with_name("ref_motion_reference.png").is_file()


def _fails(files, tmp_path, capsys, *args, expect):
    out = tmp_path / "out" / "x.mp4"
    rc = animate_cli.main(list(args) or _args(files, out))
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("error: ")
    for piece in expect:
        assert piece in err, err
    assert not out.parent.exists() or not any(out.parent.iterdir())
    return err


def test_missing_reference(files, tmp_path, capsys):
    out = tmp_path / "out" / "x.mp4"
    args = _args(files, out)
    args[1] = str(tmp_path / "nope.png")
    _fails(files, tmp_path, capsys, *args, expect=["nope.png", "no such file"])


def test_corrupt_motion_video(files, tmp_path, capsys):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x01garbage" * 100)
    args = _args(files, tmp_path / "out" / "x.mp4")
    args[3] = str(bad)
    _fails(files, tmp_path, capsys, *args, expect=["bad.mp4"])


def test_raw_rgb_video_as_motion(files, tmp_path, capsys):
    raw = tmp_path / "dance.mp4"
    rng = np.random.default_rng(0)
    write_video(raw, rng.integers(0, 256, (6, 64, 64, 3), dtype=np.uint8), fps=10)
    args = _args(files, tmp_path / "out" / "x.mp4")
    args[3] = str(raw)
    _fails(files, tmp_path, capsys, *args, expect=["dance.mp4", "DensePose", "scripts/extract_densepose.py"])


def test_incomplete_weights_listed(files, tmp_path, capsys):
    import shutil

    weights = tmp_path / "w"
    shutil.copytree(files["weights"], weights)
    (weights / "MagicAnimate" / "densepose_controlnet" / "diffusion_pytorch_model.safetensors").unlink()
    args = _args(files, tmp_path / "out" / "x.mp4")
    args[args.index("--weights") + 1] = str(weights)
    _fails(files, tmp_path, capsys, *args,
           expect=["densepose_controlnet/diffusion_pytorch_model.safetensors", "(expected <root>/stable-diffusion-v1-5"])


def test_bad_sizes(files, tmp_path, capsys):
    _fails(files, tmp_path, capsys, *_args(files, tmp_path / "out" / "x.mp4", "--width", "100", "--height", "64"),
           expect=["width", "multiple of 8"])
    tiny = tmp_path / "tiny.png"
    Image.fromarray(reference_image(5, 5)).save(tiny)
    args = _args(files, tmp_path / "out" / "x.mp4")
    args[1] = str(tiny)
    _fails(files, tmp_path, capsys, *args, expect=["tiny.png", "8x8"])


def test_context_longer_than_position_encoding(files, tmp_path, capsys):
    args = _args(files, tmp_path / "out" / "x.mp4")
    args[args.index("--context-frames") + 1] = "32"
    _fails(files, tmp_path, capsys, *args, expect=["context_frames=32", "position-encoding length (24)"])


def test_unknown_config_key(files, tmp_path, capsys):
    _fails(files, tmp_path, capsys, *_args(files, tmp_path / "out" / "x.mp4", "stepz=3"), expect=["stepz"])


def test_no_arguments_without_demo(tmp_path, capsys, monkeypatch):
    from magicanimate.demo import bundle

    monkeypatch.setattr(bundle, "DEMO_DIR", tmp_path / "demo")
    assert animate_cli.main([]) == 2
    err = capsys.readouterr().err
    assert "bundled demo" in err and "demo/model" in err


def test_rgba_reference_and_odd_sizes_are_fitted(files, tmp_path, monkeypatch):
    """RGBA is composited on white; odd-sized inputs are fitted (reference edge-padded, DensePose padded
    with the background colour) to the output size, then padded to the model's stride."""
    rgba = np.zeros((45, 67, 4), dtype=np.uint8)
    rgba[..., :3] = 200
    rgba[10:30, 20:40] = (10, 20, 30, 255)  # opaque block, transparent elsewhere
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, f in enumerate(densepose_video(3, 45, 67)):
        Image.fromarray(f).save(frames / f"{i}.png")
    cfg = new_inference_config(reference=str(tmp_path / "rgba.png"), motion=str(frames), size=64,
                               weights={"root": str(files["weights"]), "prompt_embeds": str(files["embeds"])})
    prepared = prepare(cfg)
    box = prepared.box
    assert (box.height, box.width) == (40, 64)  # 67x45 -> longer side 64, aspect kept
    assert prepared.reference.shape == (64, 64, 3) and prepared.control.shape == (3, 64, 64, 3)
    ref = box.crop(prepared.reference)
    assert (ref[0, 0] == 255).all()  # transparent corner -> white
    assert tuple(ref[20, 30]) == (10, 20, 30)
    # processing padding around the output box: background purple in DensePose, edge copies in the reference
    assert tuple(prepared.control[0, 0, 0]) == (68, 1, 84)
    np.testing.assert_array_equal(prepared.reference[0], prepared.reference[box.top])
    # a long video is read on demand instead: same frames
    from magicanimate.pipelines import animate as core

    monkeypatch.setattr(core, "IN_MEMORY_BYTES", 0)
    lazy = prepare(cfg).control
    assert isinstance(lazy, core.FittedMotion) and len(lazy) == 3
    np.testing.assert_array_equal(lazy[[2, 0]], prepared.control[[2, 0]])
    np.testing.assert_array_equal(lazy[1:3], prepared.control[1:3])


def test_saved_pipeline_folder(files, tmp_path):
    """--pipeline: a folder written by save_pretrained (no CLIP: its prompt embedding is saved with it)."""
    tiny_pipeline(seed=0).save_pretrained(tmp_path / "pipe")
    out = tmp_path / "o" / "p.mp4"
    args = ["--reference", str(files["ref"]), "--motion", str(files["motion"]), "--output", str(out),
            "--pipeline", str(tmp_path / "pipe"), "--steps", "1", "--size", "64", "--context-frames", "8",
            "--quiet", "--no-grid", "--max-frames", "4"]
    assert animate_cli.main(args) == 0
    with VideoReader(out) as video:
        assert len(video) == 4 and video.size == (40, 64)
    assert sorted(p.name for p in out.parent.iterdir()) == ["p.mp4", "p_config.yaml"]


def test_original_layout_with_clip_instead_of_saved_embedding(files, tmp_path):
    """Without prompt_embeds the SD1.5 text_encoder/ and tokenizer/ are required, and used."""
    import shutil

    from magicanimate.errors import WeightsError
    from magicanimate.pipelines.config import WeightsConfig
    from magicanimate.pipelines.pipeline_magicanimate import MagicAnimatePipeline
    from magicanimate.pipelines.weights import resolve_weights

    root = tmp_path / "w"
    shutil.copytree(files["weights"], root)
    with pytest.raises(WeightsError, match="text_encoder and tokenizer"):
        resolve_weights(WeightsConfig(root=str(root)))
    encoder, tokenizer = tiny_clip(tmp_path / "clip")
    encoder.save_pretrained(root / "stable-diffusion-v1-5" / "text_encoder")
    tokenizer.save_pretrained(root / "stable-diffusion-v1-5" / "tokenizer")
    pipe = MagicAnimatePipeline.from_original(WeightsConfig(root=str(root)))
    ids = tokenizer([""], padding="max_length", max_length=77, return_tensors="pt").input_ids
    torch.testing.assert_close(pipe.empty_prompt_embeds(), encoder(ids)[0], rtol=0, atol=1e-6)


def test_init_strength_flag(files, tmp_path, capsys):
    _fails(files, tmp_path, capsys, *_args(files, tmp_path / "out" / "x.mp4", "--init-strength", "0.5"),
           expect=["init_strength", "init_from_reference"])
    out = tmp_path / "out" / "s.mp4"
    assert animate_cli.main(_args(files, out, "--init-from-reference", "--init-strength", "0.5", "--no-grid")) == 0
    saved = load_inference_config(out.with_name("s_config.yaml"))
    assert saved.init_from_reference is True and saved.init_strength == 0.5


def test_each_job_runs_on_the_pipeline_loaded_for_its_own_weights(monkeypatch, capsys):
    """Jobs with weights A, B, A: the third job must not run on B's pipeline (it is compared with the
    loaded pipeline's weights, not the first job's)."""
    from types import SimpleNamespace

    from magicanimate.cli import animate as cli
    from magicanimate.pipelines import animate as core

    jobs = [SimpleNamespace(weights=w, device="cpu", dtype="fp32", threads=1) for w in "ABAA"]
    monkeypatch.setattr(cli, "_jobs", lambda args: jobs)
    monkeypatch.setattr(core, "prepare", lambda job: SimpleNamespace(weights=job.weights))
    calls = []

    def fake_animate(job, pipeline=None, prepared=None):
        pipe = pipeline if pipeline is not None else f"pipeline of {prepared.weights} #{len(calls)}"
        calls.append((prepared.weights, pipeline, pipe))
        return SimpleNamespace(pipeline=pipe, video="v.mp4", num_frames=1, width=8, height=8, fps=1.0, seed=1,
                               seconds=0.0, grid=None, config=None)

    monkeypatch.setattr(core, "animate", fake_animate)
    assert cli.main(["--quiet"]) == 0
    assert [c[1] for c in calls] == [None, None, None, "pipeline of A #2"]
    assert all(pipe.startswith(f"pipeline of {w}") for w, _, pipe in calls)
