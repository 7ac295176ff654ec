"""The memory estimator against independent references: the models' own parameter counts (tiny, real
weights; SD1.5 size, stock diffusers classes on meta), a hand-computed formula case, and activation
counts on meta equal to the same count on a real CPU run."""

import json
from types import SimpleNamespace

import pytest
import torch
from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel

from magicanimate.training.config import load_train_config
from magicanimate.training.memory import (SD15_UNET, SD15_VAE, ParameterCounts, Setting, build_on_meta,
                                          count_parameters, per_gpu_bytes)

from .conftest import REPO, tiny_overrides

STAGE1, STAGE2 = REPO / "configs/training/stage1.yaml", REPO / "configs/training/stage2.yaml"
TINY1, TINY2 = REPO / "configs/training/tiny_stage1.yaml", REPO / "configs/training/tiny_stage2.yaml"


def _split(module):
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in module.parameters()) - trainable


@pytest.mark.parametrize("config", [TINY1, TINY2])
def test_counts_equal_the_built_tiny_model(tiny_env, tmp_path, config):
    from magicanimate.training.builder import build_training_module

    cfg = load_train_config(config, tiny_overrides(tiny_env, tmp_path))
    real = build_training_module(cfg)
    real.configure_trainable(cfg.train)
    meta, found = build_on_meta(cfg)
    counts = count_parameters(meta)
    assert found and (counts.trainable, counts.frozen) == _split(real)


def test_counts_at_sd15_size_equal_the_stock_networks():
    with torch.device("meta"):
        unet = UNet2DConditionModel(**SD15_UNET)
        vae = AutoencoderKL(**SD15_VAE)
        controlnet = ControlNetModel.from_unet(unet, load_weights_from_unet=False, conditioning_channels=3)
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    # SD1.5's published sizes: UNet 859,520,964 and VAE 83,653,863 parameters
    assert (n(unet), n(vae)) == (859_520_964, 83_653_863)
    # the appearance encoder is the UNet without its tail: conv_norm_out, conv_out, and the last transformer
    # block's parts after norm1 together with that transformer's proj_out
    last = "up_blocks.3.attentions.2."
    tail = sum(p.numel() for k, p in unet.named_parameters() if k.startswith(("conv_norm_out", "conv_out"))
               or k.startswith(last + "proj_out") or (k.startswith(last + "transformer_blocks.0.")
                                                     and ".norm1." not in k))
    stage1 = count_parameters(build_on_meta(load_train_config(STAGE1))[0])
    assert (stage1.trainable, stage1.frozen) == (n(unet) - tail + n(controlnet), n(unet) + n(vae))

    module, _ = build_on_meta(load_train_config(STAGE2))
    motion = sum(p.numel() for k, p in module.unet.named_parameters() if "motion_modules" in k)
    stage2 = count_parameters(module)
    assert stage2.trainable == motion and 0.40e9 < motion < 0.43e9
    assert stage2.frozen == n(unet) + n(vae) + n(unet) - tail + n(controlnet)


def test_formula_recomputed_by_hand():
    c = ParameterCounts(trainable=1000, frozen=600, frozen_cast=400, root_unit=50, largest_unit=30)
    # ZeRO-2, 4 GPUs, bf16, AdamW, 2 samples of 7 bytes: half weights of all 1600 + fp32 master shard of
    # 1000/4; half gradient shard; 8 bytes per trainable / 4; two half buckets of min(1000, 5e8)
    got = per_gpu_bytes(c, 7, Setting("zero2", 4, "bf16", "adamw", 2))
    assert got == {"weights": 2 * 1600 + 4 * 250, "gradients": 2 * 250, "optimizer": 8 * 250,
                   "buffers": 2 * 2 * 1000, "activations": 14, "total": 4200 + 500 + 2000 + 4000 + 14}
    # DDP, fp16, 8-bit AdamW: fp32 trainable, half cast-frozen, fp32 kept-frozen; buckets + autocast copies
    got = per_gpu_bytes(c, 5, Setting("ddp", 8, "fp16", "adamw8bit", 1))
    assert got["weights"] == 4 * 1000 + 2 * 400 + 4 * 200 and got["optimizer"] == 2 * 1000
    assert got["buffers"] == 4 * 1000 + 2 * 1000 and got["total"] == 5600 + 4000 + 2000 + 6000 + 5
    # FSDP full shard, 2 GPUs, no mixed precision: everything fp32 / 2, gathered root + two largest units
    got = per_gpu_bytes(c, 0, Setting("fsdp", 2, "no", "adamw", 1))
    assert (got["weights"], got["gradients"], got["buffers"]) == (3200, 2000, 4 * (50 + 60))


def test_activation_count_on_meta_equals_a_real_cpu_run(tiny_env, tmp_path):
    from magicanimate.training.activations import count_activations
    from magicanimate.training.builder import build_training_module

    cfg = load_train_config(TINY2, tiny_overrides(tiny_env, tmp_path))
    real = build_training_module(cfg)
    real.configure_trainable(cfg.train)
    meta, _ = build_on_meta(cfg)
    shape = dict(batch=1, frames=3, height=32, width=32, text_len=real.text_embedding.shape[1])
    counts = [count_activations((m.unet, m.appearance_encoder, m.controlnet), device=d, **shape)
              for m, d in ((real, "cpu"), (meta, "meta"))]
    assert counts[0].saved_bytes == counts[1].saved_bytes > 0
    assert counts[0].checkpointed_bytes == counts[1].checkpointed_bytes < counts[0].saved_bytes
    half = count_activations((meta.unet, meta.appearance_encoder, meta.controlnet), device="meta",
                             compute_dtype=torch.bfloat16, **shape)
    assert half.saved_bytes < counts[1].saved_bytes  # half-precision activations take less room


def test_script_json_and_errors(tmp_path, capsys):
    from magicanimate.cli.estimate_memory import main

    out = tmp_path / "est.json"
    assert main(["--config", str(STAGE1), "--gpus", "2", "--strategy", "fsdp", "--mixed-precision", "bf16",
                 "--resolution", "256", "--json", str(out), "--quiet"]) == 0
    report = json.loads(out.read_text())
    counts = count_parameters(build_on_meta(load_train_config(STAGE1))[0])
    assert (report["trainable_params"], report["frozen_params"]) == (counts.trainable, counts.frozen)
    b = report["per_gpu_bytes"]
    assert b["total"] == sum(v for k, v in b.items() if k != "total")
    assert b["activations"] == report["activations"]["per_sample_bytes"] > 0
    assert main(["--config", str(STAGE1), "--gpus", "0"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: ")


def test_accelerate_configs_parse_and_deepspeed_clipping_is_checked():
    from accelerate.commands.config.config_args import load_config_from_file

    from magicanimate.errors import ConfigError
    from magicanimate.training.sharding import configure_deepspeed

    kinds = {p.stem: load_config_from_file(str(p)) for p in (REPO / "configs/accelerate").glob("*.yaml")}
    assert {k: str(c.distributed_type).split(".")[-1] for k, c in kinds.items()} == {
        "ddp": "MULTI_GPU", "fsdp_full_shard": "FSDP", "fsdp_shard_grad_op": "FSDP", "fsdp1_full_shard": "FSDP",
        "zero2": "DEEPSPEED"}
    assert kinds["zero2"].deepspeed_config["zero_stage"] == 2
    assert kinds["fsdp_shard_grad_op"].fsdp_config["fsdp_reshard_after_forward"] is False

    ds = {"gradient_clipping": 1.0}
    accel = SimpleNamespace(state=SimpleNamespace(deepspeed_plugin=SimpleNamespace(deepspeed_config=ds)),
                            num_processes=4)
    cfg = SimpleNamespace(train_batch_size=2, gradient_accumulation_steps=3, optim=SimpleNamespace(max_grad_norm=1.0))
    configure_deepspeed(accel, cfg)
    assert (ds["train_micro_batch_size_per_gpu"], ds["train_batch_size"]) == (2, 24)
    cfg.optim.max_grad_norm = 0.5
    with pytest.raises(ConfigError, match="max_grad_norm"):
        configure_deepspeed(accel, cfg)
