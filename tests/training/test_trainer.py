"""The accelerate trainer: which weights change, exact resume, NaN stop, errors, export, two processes."""

import importlib.util
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from magicanimate.errors import ConfigError
from magicanimate.models import UNet3DMotionModel
from magicanimate.models.checkpoints import load_sd15_unet2d, unet3d_state_dict_to_original
from magicanimate.training.config import load_train_config
from magicanimate.training.trainer import TrainingDivergedError, list_checkpoints, train

from .conftest import REPO, tiny_overrides

STAGE1 = REPO / "configs/training/tiny_stage1.yaml"
STAGE2 = REPO / "configs/training/tiny_stage2.yaml"
SCRIPT = REPO / "scripts/train.py"


def _folder_state(folder):
    return load_file(str(folder / "diffusion_pytorch_model.safetensors"))


def _same(a, b):
    return a.shape == b.shape and torch.equal(a, b)


@pytest.mark.slow
def test_stages_change_only_declared_weights_and_export_runs_in_the_pipeline(tiny_env, tmp_path):
    base_unet = load_sd15_unet2d(tiny_env["base"]).state_dict()
    base_vae = _folder_state(tiny_env["base"] / "vae")

    # ---- stage 1: appearance encoder + ControlNet
    cfg1 = load_train_config(STAGE1, tiny_overrides(tiny_env, tmp_path / "s1", "max_train_steps=3",
                                                    "checkpointing_steps=3", "loss.ref_drop=0"))
    r1 = train(cfg1)
    exp1 = r1.export_dir
    unet1 = _folder_state(exp1 / "pipeline" / "unet")
    assert set(unet1) == set(base_unet)  # stage 1 has no motion modules
    assert all(_same(unet1[k], base_unet[k]) for k in base_unet), "frozen spatial UNet changed"
    assert all(_same(v, base_vae[k]) for k, v in _folder_state(exp1 / "pipeline" / "vae").items())
    enc1 = _folder_state(exp1 / "MagicAnimate" / "appearance_encoder")
    assert any(not _same(v, base_unet[k]) for k, v in enc1.items()), "appearance encoder did not train"
    cn1 = _folder_state(exp1 / "MagicAnimate" / "densepose_controlnet")
    zero_convs = [k for k in cn1 if k.startswith(("controlnet_down_blocks", "controlnet_mid_block"))]
    assert zero_convs and any(torch.count_nonzero(cn1[k]) for k in zero_convs), "ControlNet did not train"

    # ---- stage 2: motion modules only, initialised from an AnimateDiff-layout motion file
    torch.manual_seed(1)
    fresh = UNet3DMotionModel.from_unet2d(load_sd15_unet2d(tiny_env["base"]))
    init = {k: v.clone() for k, v in unet3d_state_dict_to_original(fresh.state_dict()).items()
            if "motion_modules" in k}
    save_file(init, str(tmp_path / "mm_init.safetensors"))
    cfg2 = load_train_config(STAGE2, tiny_overrides(
        tiny_env, tmp_path / "s2", "max_train_steps=2", "checkpointing_steps=2", "data.num_frames=2",
        f"model.motion_module={tmp_path / 'mm_init.safetensors'}",
        f"model.appearance_encoder={exp1 / 'MagicAnimate' / 'appearance_encoder'}",
        f"model.controlnet={exp1 / 'MagicAnimate' / 'densepose_controlnet'}", "validation.steps=7",
        "validation.guidance_scale=2.5", "validation.init_from_reference=true", "validation.init_strength=0.6"))
    r2 = train(cfg2)
    exp2 = r2.export_dir
    # the export carries the settings it was validated with, as the model's inference defaults
    from magicanimate.pipelines.settings import read_model_settings

    settings = read_model_settings(exp2 / "pipeline")
    assert (settings["steps"], settings["guidance_scale"], settings["init_from_reference"],
            settings["init_strength"]) == (7, 2.5, True, 0.6)
    assert settings["size"] == max(cfg2.data.height, cfg2.data.width)
    assert (settings["context_frames"], settings["context_overlap"]) == (2, 1)  # stage 2's clips of 2 frames
    unet2 = _folder_state(exp2 / "pipeline" / "unet")
    motion = [k for k in unet2 if "motion_modules" in k]
    assert len(motion) == sum("motion_modules" in k for k in fresh.state_dict())
    assert all(_same(unet2[k], base_unet[k]) for k in base_unet), "frozen spatial UNet changed in stage 2"
    init_ours = fresh.state_dict()
    changed = [k for k in motion if not _same(unet2[k], init_ours[k])]
    assert changed, "motion modules did not train"
    for name in ("appearance_encoder", "densepose_controlnet"):
        before, after = _folder_state(exp1 / "MagicAnimate" / name), _folder_state(exp2 / "MagicAnimate" / name)
        assert set(before) == set(after) and all(_same(after[k], before[k]) for k in before), name
    assert (exp2 / "MagicAnimate" / "temporal_attention" / "temporal_attention.ckpt").is_file()

    # ---- the exports load strictly and animate
    from magicanimate.media import read_video, write_video
    from magicanimate.models.checkpoints import load_magicanimate
    from magicanimate.pipelines.pipeline_magicanimate import MagicAnimatePipeline

    official = load_magicanimate(tiny_env["base"], exp2 / "MagicAnimate")
    assert torch.equal(official.unet.state_dict()[changed[0]], unet2[changed[0]])
    pipe = MagicAnimatePipeline.from_pretrained(exp2 / "pipeline")
    from .data_utils import frames_for, part_maps
    from magicanimate.data.densepose import render_parts

    maps = part_maps(3, 32, 32, seed=0)
    out = pipe(frames_for(maps, 0)[0], render_parts(maps), num_inference_steps=2, context_frames=3,
               context_overlap=0, generator=torch.Generator().manual_seed(0))
    video = (out.videos[0].permute(1, 2, 3, 0) * 255).round().to(torch.uint8).numpy()
    write_video(tmp_path / "anim.mp4", video, fps=8)
    assert read_video(tmp_path / "anim.mp4").frames.shape == (3, 32, 32, 3)
    assert np.isfinite(out.latents.numpy()).all()


@pytest.mark.slow
def test_kill_and_resume_equals_uninterrupted(tiny_env, tmp_path):
    # EMA and validation clips on: neither may disturb the exact continuation.
    ref, motion = _validation_inputs(tmp_path)
    extra = ("max_train_steps=4", "checkpointing_steps=2", "loss.ref_drop=0.5", "data.tau0=0.3",
             "export_at_end=false", "ema.enabled=true", "ema.decay=0.9", "validation.every_n_steps=4",
             f"validation.reference_image={ref}", f"validation.densepose_video={motion}",
             "validation.num_frames=3", "validation.steps=2")
    full = train(load_train_config(STAGE1, tiny_overrides(tiny_env, tmp_path / "a", *extra)))
    assert full.global_step == 4
    first = train(load_train_config(STAGE1, tiny_overrides(tiny_env, tmp_path / "b", *extra)), stop_after=2)
    assert first.global_step == 2 and first.last_checkpoint.name == "checkpoint-2"
    second = train(load_train_config(STAGE1, tiny_overrides(tiny_env, tmp_path / "b", *extra, "resume=latest")))
    assert second.global_step == 4
    assert second.losses == full.losses[2:]
    a = load_file(str(tmp_path / "a/checkpoints/checkpoint-4/trainable.safetensors"))
    b = load_file(str(tmp_path / "b/checkpoints/checkpoint-4/trainable.safetensors"))
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    opt_a = torch.load(tmp_path / "a/checkpoints/checkpoint-4/optimizer.bin", weights_only=False)
    opt_b = torch.load(tmp_path / "b/checkpoints/checkpoint-4/optimizer.bin", weights_only=False)
    assert all(torch.equal(opt_a["state"][i]["exp_avg_sq"], opt_b["state"][i]["exp_avg_sq"]) for i in opt_a["state"])
    ema_a = torch.load(tmp_path / "a/checkpoints/checkpoint-4/custom_checkpoint_1.pkl", weights_only=False)
    ema_b = torch.load(tmp_path / "b/checkpoints/checkpoint-4/custom_checkpoint_1.pkl", weights_only=False)
    assert ema_a["optimization_step"] == ema_b["optimization_step"] == 4
    assert all(torch.equal(x, y) for x, y in zip(ema_a["shadow_params"], ema_b["shadow_params"]))
    # checkpoints_total_limit=2 keeps the last two
    assert [p.name for p in list_checkpoints(tmp_path / "b")] == ["checkpoint-2", "checkpoint-4"]
    for run in ("a", "b"):
        clips = sorted(p.name for p in (tmp_path / run / "validation").glob("*.mp4"))
        assert clips == ["step-0000004.mp4"]
    from magicanimate.media import read_video

    assert read_video(tmp_path / "a/validation/step-0000004.mp4").frames.shape == (3, 32, 96, 3)


def _validation_inputs(tmp_path):
    from PIL import Image

    from magicanimate.data.densepose import render_parts
    from magicanimate.media import write_video

    from .data_utils import frames_for, part_maps

    maps = part_maps(5, 40, 40, seed=3)
    Image.fromarray(frames_for(maps, 3)[0]).save(tmp_path / "ref.png")
    write_video(tmp_path / "motion.mp4", render_parts(maps), fps=8)
    return tmp_path / "ref.png", tmp_path / "motion.mp4"


def test_nan_loss_saves_state_and_stops_with_a_clear_message(tiny_env, tmp_path):
    # An absurd learning rate blows the weights up on the first update; the next loss is not finite.
    cfg = load_train_config(STAGE1, tiny_overrides(tiny_env, tmp_path / "o", "optim.learning_rate=1e30",
                                                   "optim.lr_warmup_steps=0", "optim.max_grad_norm=0",
                                                   "max_train_steps=5"))
    with pytest.raises(TrainingDivergedError, match=r"loss is .* at step (2|3).*state was saved to"):
        train(cfg)
    saved = list_checkpoints(tmp_path / "o")
    assert saved and (saved[-1] / "trainable.safetensors").is_file()
    assert not (tmp_path / "o" / "export").exists()


def test_script_reports_bad_dataset_and_bad_config(tiny_env, tmp_path, capsys):
    from .data_utils import make_folder_dataset

    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import train as train_script
    finally:
        sys.path.pop(0)
    data = make_folder_dataset(tmp_path / "data", num_videos=2, num_frames=4, height=32, width=32)
    (data / "00002" / "densepose" / "0003.png").unlink()
    args = ["--config", str(STAGE1), f"output_dir={tmp_path / 'o'}", f"model.base_model={tiny_env['base']}",
            f"model.prompt_embeds={tiny_env['embeds']}", f"data.root={data}"]
    assert train_script.main(args) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and "'00002'" in last and "0003.png" in last and "Traceback" not in err

    assert train_script.main(args + ["data.skip_bad_samples=true", "max_train_steps=1", "export_at_end=false"]) == 0

    assert train_script.main(args + ["optim.lr=1"]) == 2
    err = capsys.readouterr().err
    assert "optim.lr" in err and "learning_rate" in err

    assert train_script.main(args[:-1] + [f"data.root={tmp_path / 'nowhere'}"]) == 2
    assert "nowhere" in capsys.readouterr().err


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_train_in_sync_with_all_references_dropped(tiny_env, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()), str(SCRIPT), "--config", str(STAGE1),
           *tiny_overrides(tiny_env, out, "max_train_steps=2", "checkpointing_steps=2", "loss.ref_drop=1.0",
                           "gradient_accumulation_steps=2", "export_at_end=false")]
    env = dict(os.environ, OMP_NUM_THREADS="1", ACCELERATE_USE_CPU="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
    first_error = proc.stderr.find("Traceback")
    assert proc.returncode == 0, proc.stderr[max(0, first_error):][:4000] if first_error >= 0 else proc.stderr[-4000:]
    assert "identical on all 2 ranks" in proc.stderr
    ckpt = out / "checkpoints" / "checkpoint-2"
    assert {"random_states_0.pkl", "random_states_1.pkl", "trainable.safetensors"} <= {p.name for p in ckpt.iterdir()}
    # The checkpoint loads in a one-process run (resume, no further steps, then export).
    r = train(load_train_config(STAGE1, tiny_overrides(tiny_env, out, "max_train_steps=2", f"resume={ckpt}",
                                                       "gradient_accumulation_steps=2")))
    assert r.global_step == 2 and (r.export_dir / "pipeline" / "model_index.json").is_file()
    trained = load_file(str(ckpt / "trainable.safetensors"))
    exported = _folder_state(r.export_dir / "pipeline" / "controlnet")
    key = next(k for k in exported if k.startswith("controlnet_down_blocks"))
    assert torch.equal(exported[key], trained[f"controlnet.{key}"])


def test_resume_from_a_folder_that_is_not_a_checkpoint(tiny_env, tmp_path):
    cfg = load_train_config(STAGE1, tiny_overrides(tiny_env, tmp_path / "o", f"resume={tmp_path}"))
    with pytest.raises(ConfigError, match="not a training checkpoint"):
        train(cfg)


def test_trackers(tiny_env, tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_wandb(name, *args, **kwargs):
        if name == "wandb":
            raise ImportError("no wandb here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_wandb)
    cfg = load_train_config(STAGE1, tiny_overrides(tiny_env, tmp_path / "w", "report_to=wandb"))
    with pytest.raises(ConfigError, match=r"report_to=wandb needs the wandb package"):
        train(cfg)


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None,
                    reason="tensorboard not installed (the [tensorboard] extra; CI installs it)")
def test_tensorboard_logs_the_losses(tiny_env, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "tb"
    r = train(load_train_config(STAGE1, tiny_overrides(tiny_env, out, "report_to=tensorboard", "max_train_steps=2",
                                                       "export_at_end=false")))
    events = EventAccumulator(str(out / "logs" / "magicanimate"))
    events.Reload()
    logged = [e.value for e in events.Scalars("train/loss")]
    assert logged == pytest.approx(r.losses)


@pytest.mark.slow
def test_stage1_can_also_train_the_spatial_unet_for_a_toy_base_model(tiny_env, tmp_path):
    from magicanimate.training.builder import build_training_module

    base_unet = load_sd15_unet2d(tiny_env["base"]).state_dict()
    r = train(load_train_config(STAGE1, tiny_overrides(tiny_env, tmp_path / "s1", "train.spatial_unet=true",
                                                       "max_train_steps=2", "loss.ref_drop=0")))
    unet1 = _folder_state(r.export_dir / "pipeline" / "unet")
    assert any(not _same(unet1[k], base_unet[k]) for k in base_unet), "spatial UNet did not train"
    # Stage 2 starts from that UNet: its spatial weights, plus fresh motion modules.
    cfg2 = load_train_config(STAGE2, tiny_overrides(tiny_env, tmp_path / "s2",
                                                    f"model.unet={r.export_dir / 'pipeline' / 'unet'}"))
    module = build_training_module(cfg2)
    state = module.unet.state_dict()
    assert any("motion_modules" in k for k in state)
    assert all(_same(state[k], unet1[k]) for k in unet1)
