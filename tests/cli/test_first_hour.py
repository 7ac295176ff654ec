"""A newcomer's first hour (issue "no traps in the CLI"): each test pins one trap that cost a user time.
Points about the command line run the real scripts in a subprocess."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from omegaconf import OmegaConf

from magicanimate.cli import animate as animate_cli
from magicanimate.evaluation.frame_metrics import psnr
from magicanimate.media import read_video, write_image, write_video
from magicanimate.pipelines.settings import write_model_settings
from magicanimate.testing import densepose_video, tiny_pipeline

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts"
DEMO = REPO / "demo"
ENV = dict(os.environ, PYTHONPATH=str(REPO))


def _script(name: str, *args, cwd, timeout=300, **kwargs):
    return subprocess.run([sys.executable, str(SCRIPTS / f"{name}.py"), *map(str, args)], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=timeout, **kwargs)


def _common(cli_files, out):
    return ["--reference", str(cli_files / "ref.png"), "--motion", str(cli_files / "motion.mp4"), "--pipeline",
            str(cli_files / "pipe"), "--output", str(out), "--size", "64", "--context-frames", "8", "--quiet"]


# 1. threads -------------------------------------------------------------------------------------------------
def test_threads_flag_sets_torch_threads_and_keeps_results(cli_files, tmp_path):
    outs = []
    for threads in (1, 2):
        out = tmp_path / f"t{threads}.mp4"
        assert animate_cli.main(_common(cli_files, out) + ["--steps", "1", "--threads", str(threads)]) == 0
        assert torch.get_num_threads() == threads and os.environ["OMP_NUM_THREADS"] == str(threads)
        outs.append(read_video(out).frames)
    # thread counts change float summation order only: equal up to H.264 coding
    assert min(psnr(a, b) for a, b in zip(*outs)) > 30
    assert OmegaConf.load(tmp_path / "t2_config.yaml").threads == 2  # a config key too
    proc = _script("animate", "--threads", "0", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip() == "error: threads: must be >= 1, got 0"
    for name in ("train", "evaluate", "benchmark", "app", "make_demo", "reproduce", "benchmark_demo"):
        assert "--threads" in _script(name, "--help", cwd=tmp_path).stdout, name


# 2. an exported model carries its inference settings ---------------------------------------------------------
def test_saved_pipeline_brings_its_own_settings(cli_files, tmp_path):
    pipe = tmp_path / "pipe"
    tiny_pipeline(seed=0).save_pretrained(pipe)
    write_model_settings(pipe, {"size": 64, "steps": 1, "guidance_scale": 3.0, "init_from_reference": True,
                                "init_strength": 1.0, "context_frames": 8, "context_overlap": 2})
    args = ["--reference", cli_files / "ref.png", "--motion", cli_files / "motion.mp4", "--pipeline", pipe,
            "--output", tmp_path / "a.mp4", "--quiet", "--threads", "1"]
    assert animate_cli.main(list(map(str, args))) == 0
    cfg = OmegaConf.load(tmp_path / "a_config.yaml")
    assert (cfg.size, cfg.steps, cfg.guidance_scale, cfg.init_from_reference, cfg.context_frames) == (64, 1, 3.0, True, 8)
    assert read_video(tmp_path / "a.mp4").frames.shape[1:3] == (64, 64)
    args[args.index(tmp_path / "a.mp4")] = tmp_path / "b.mp4"
    assert animate_cli.main(list(map(str, args)) + ["--guidance-scale", "2", "steps=2"]) == 0
    cfg = OmegaConf.load(tmp_path / "b_config.yaml")
    assert (cfg.guidance_scale, cfg.steps, cfg.size) == (2.0, 2, 64)  # flags win, the rest is the model's


# 3. the demo stays the demo when one thing changes ------------------------------------------------------------
@pytest.mark.skipif(not (DEMO / "model" / "model_index.json").is_file(), reason="no bundled demo in this checkout")
def test_one_flag_modifies_the_bundled_demo(tmp_path):
    proc = _script("animate", "--steps", "1", "--output", "x.mp4", "--quiet", "--seed", "3", "--threads", "1",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    cfg = OmegaConf.load(tmp_path / "x_config.yaml")
    demo = yaml.safe_load((DEMO / "model" / "settings.yaml").read_text())
    assert cfg.reference == str(DEMO / "reference.png") and cfg.weights.pipeline == str(DEMO / "model")
    assert (cfg.steps, cfg.seed) == (1, 3) and cfg.guidance_scale == demo["guidance_scale"]
    assert read_video(tmp_path / "x.mp4").frames.shape[1:3] == (demo["size"],) * 2
    # quiet and honest: no diffusers cast warnings, no NumPy writability warning
    assert "float32" not in proc.stderr and "not writable" not in proc.stderr, proc.stderr


# 4. key=value overrides anywhere ------------------------------------------------------------------------------
def test_overrides_anywhere_on_the_command_line(cli_files, tmp_path):
    args = _common(cli_files, tmp_path / "o.mp4")
    assert animate_cli.main(["steps=1", *args[:4], "seed=4", *args[4:], "guidance_scale=2.5", "--threads", "1"]) == 0
    cfg = OmegaConf.load(tmp_path / "o_config.yaml")
    assert (cfg.steps, cfg.seed, cfg.guidance_scale) == (1, 4, 2.5)
    from magicanimate.cli import make_demo, train
    from magicanimate.config.cli import parse_command_line

    for module, argv in ((train, ["--config", "c.yaml", "max_train_steps=3", "--quiet", "seed=2"]),
                         (make_demo, ["stage1.steps=3", "--scale", "0.1", "seed=1", "--no-ship"])):
        args = parse_command_line(module.build_parser(), argv)
        assert [o for o in args.overrides] == [a for a in argv if "=" in a]


# 5. NaN / inf never succeed ------------------------------------------------------------------------------------
def test_non_finite_settings_and_latents_are_errors(cli_files, tmp_path, capsys):
    for value in ("nan", "inf", "-inf"):
        assert animate_cli.main(_common(cli_files, tmp_path / "n.mp4") + [f"--guidance-scale={value}"]) == 2
        assert "guidance_scale: must be a finite number" in capsys.readouterr().err
    # a finite setting whose arithmetic overflows: the run stops at the step where the latents stop being finite
    assert animate_cli.main(_common(cli_files, tmp_path / "o.mp4") + ["--guidance-scale", "3e38", "--steps", "2",
                                                                      "--threads", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert re.fullmatch(r"error: the latents became NaN or infinite at step [12] of 2 \(timestep \d+\).*", err), err
    assert not any(tmp_path.iterdir())


# 7. signals -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_stops_promptly_and_leaves_nothing(cli_files, tmp_path, sig, code):
    import threading

    long = tmp_path / "long.mp4"
    write_video(long, densepose_video(48, 64, 64), fps=8)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, str(SCRIPTS / "animate.py"), "--reference", str(cli_files / "ref.png"),
                             "--motion", str(long), "--pipeline", str(cli_files / "pipe"), "--output",
                             str(out / "x.mp4"), "--size", "64", "--steps", "300", "--threads", "1"],
                            cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err, denoising = [], threading.Event()

    def read_stderr():
        for chunk in iter(lambda: proc.stderr.read(1), ""):
            err.append(chunk)
            if "2/300" in "".join(err[-40:]):  # the progress bar: two denoising steps done
                denoising.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    assert denoising.wait(120), "".join(err)
    sent = time.time()
    proc.send_signal(sig)
    proc.wait(timeout=60)
    reader.join(10)
    text = "".join(err)
    assert time.time() - sent < 10, "slow to react"
    assert proc.returncode == code, text
    assert text.strip().splitlines()[-1] == "interrupted; nothing written" and "Traceback" not in text, text
    assert not out.exists() or not any(out.iterdir()), list(out.iterdir())


# 8. make_demo resumes inside a stage --------------------------------------------------------------------------
def test_recipe_resumes_an_interrupted_stage_and_restarts_a_stale_one(tmp_path, monkeypatch):
    from magicanimate.config import load_config, to_object
    from magicanimate.demo import recipe_run
    from magicanimate.demo.recipe import RecipeConfig

    cfg = to_object(load_config(RecipeConfig, REPO / "configs" / "demo" / "recipe.yaml"))
    commands = []
    monkeypatch.setattr(recipe_run, "run_logged", lambda name, cmd, *a: commands.append((name, cmd)) or 1.0)
    run = recipe_run.RecipeRun(cfg, tmp_path)
    stage1 = tmp_path / "stage1"
    (stage1 / "checkpoints" / "checkpoint-40").mkdir(parents=True)  # interrupted: checkpoints, no export
    export = run.stage("stage1", cfg.stage1, [], seed=0, after=[])
    assert export == stage1 / "export" and (stage1 / "checkpoints" / "checkpoint-40").is_dir()
    assert "resume=latest" in commands[-1][1]
    run.times = {"stage1": 5.0}  # stage 1 was retrained in this run: stage 2's old work is stale
    stale = tmp_path / "stage2" / "checkpoints" / "checkpoint-7"
    stale.mkdir(parents=True)
    run.stage("stage2", cfg.stage2, [], seed=1, after=["stage1"])
    assert not stale.exists() and commands[-1][0] == "stage2"
    (tmp_path / "stage2" / recipe_run.EXPORT_MARKER).parent.mkdir(parents=True)
    (tmp_path / "stage2" / recipe_run.EXPORT_MARKER).write_text("{}")
    run.times = {}
    n = len(commands)
    run.stage("stage2", cfg.stage2, [], seed=1, after=["stage1"])
    assert len(commands) == n  # done and not stale: skipped


# 9. quiet, honest output --------------------------------------------------------------------------------------
def test_a_truncated_video_is_one_error_line(cli_files, tmp_path):
    bad = tmp_path / "cut.mp4"
    bad.write_bytes((cli_files / "motion.mp4").read_bytes()[:1500])
    proc = _script("animate", "--reference", cli_files / "ref.png", "--motion", bad, "--pipeline",
                   cli_files / "pipe", "--output", tmp_path / "o.mp4", cwd=tmp_path)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"error: {bad}: not a readable video")


def test_error_line_starts_its_own_line_after_a_progress_bar(capsys):
    from tqdm.auto import tqdm

    from magicanimate.cli.common import run_main
    from magicanimate.config.cli import CliParser
    from magicanimate.errors import InputError

    def run(args):
        bar = tqdm(total=10, desc="training")
        bar.update(3)
        raise InputError("data/video7: frame 3 is unreadable")

    assert run_main(run, CliParser(), []) == 2
    err = capsys.readouterr().err
    assert "\nerror: data/video7: frame 3 is unreadable" in err


# 10. evaluation headline --------------------------------------------------------------------------------------
def test_evaluation_table_shows_the_standard_value_beside_disco(tmp_path):
    rng = np.random.default_rng(0)
    truth = rng.integers(60, 200, (3, 32, 32, 3)).astype(np.uint8)
    for name, frames in (("gt", truth), ("noise", rng.integers(0, 256, truth.shape).astype(np.uint8))):
        for i, frame in enumerate(frames):
            write_image(tmp_path / name / "v" / f"{i}.png", frame)
    proc = _script("evaluate", "--generated", tmp_path / "noise", "--ground-truth", tmp_path / "gt", "--metrics",
                   "psnr", "l1", "--no-progress", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    row = next(line for line in proc.stdout.splitlines() if line.startswith("| psnr |"))
    disco, standard = (float(x) for x in row.split("|")[2:4])
    assert "standard (correct definition)" in proc.stdout
    assert standard == pytest.approx(np.mean([psnr(a, b) for a, b in zip(
        read_video(tmp_path / "noise" / "v").frames, truth)]), abs=1e-3)
    assert disco > standard + 10  # the wrap-around arithmetic flatters noise


# 11. one environment ------------------------------------------------------------------------------------------
def test_core_demo_and_wandb_extras_resolve_together():
    import tomllib
    from importlib.metadata import PackageNotFoundError, requires

    from packaging.requirements import Requirement

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pillow = next(Requirement(r) for r in project["dependencies"] if r.startswith("pillow"))
    assert not pillow.specifier.contains("13.0.0"), "core pillow must leave room for Gradio's pillow<13"
    try:
        gradio_pillow = next(Requirement(r) for r in requires("gradio") if r.startswith("pillow"))
    except (PackageNotFoundError, StopIteration):
        pytest.skip("gradio not installed (the [demo] extra; CI installs it): its pillow pin cannot be read")
    assert any(gradio_pillow.specifier.contains(v) for v in ("10.4.0", "11.3.0", "12.0.0") if pillow.specifier.contains(v))


# 12. first steps in the README and the docs' pictures ----------------------------------------------------------
def test_readme_first_steps_and_preview():
    from PIL import Image

    readme = (REPO / "README.md").read_text()
    for needle in ("python scripts/animate.py --steps", "--pipeline", "--threads", "64-px"):
        assert needle in readme, needle
    with Image.open(REPO / "docs" / "preview.gif") as preview:
        assert preview.n_frames > 4 and preview.size[0] == 3 * preview.size[1]  # reference | DensePose | result
    assert (REPO / "docs" / "web_demo.png").is_file()
