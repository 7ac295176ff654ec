"""Sharded training on two CPU processes: FSDP2 (real, on gloo) against DDP, and kill-and-resume under it.

One launch runs four trainings of the tiny stage 1 (see sharded_worker.py): DDP, FSDP, and FSDP again
stopped after 2 of 4 steps then resumed from its sharded checkpoint.
"""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from .conftest import REPO, tiny_overrides
from .test_trainer import STAGE1, _free_port, _validation_inputs

WORKER = REPO / "tests/training/sharded_worker.py"
ACCELERATE = REPO / "configs/accelerate"

# The tolerance of FSDP against DDP. Both start from the same weights and see the same batches and noise;
# they differ in how gradients are summed (reduce-scatter of pre-scaled shards vs all-reduce of buckets)
# and how the clipping norm is summed, so float32 rounding (relative 1e-7 per operation) separates them.
# Adam divides by sqrt(v): a gradient of a few eps moves a weight by up to lr, so the bound is
# relative to the size of the 4 updates (lr = 1e-3 here), not to the weights.
LR = 1e-3
STEPS = 4
ATOL = 1e-3 * LR * STEPS


def _launch(config_file, plan, tmp_path, timeout=600):
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(plan))
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config_file),
           "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()), str(WORKER), str(plan_file)]
    env = dict(os.environ, OMP_NUM_THREADS="1", ACCELERATE_USE_CPU="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)
    # the first rank's traceback says why (torchrun's summary after it does not)
    assert proc.returncode == 0, "\n".join(ln for ln in proc.stderr.splitlines() if ln.startswith("[rank0]"))[-4000:]
    return proc


def _trained(export):
    """The trainable networks of an export, keyed as the training module names them."""
    out = {}
    for folder, prefix in (("appearance_encoder", "appearance_encoder"), ("controlnet", "controlnet")):
        state = load_file(str(export / "pipeline" / folder / "diffusion_pytorch_model.safetensors"))
        out.update({f"{prefix}.{k}": v for k, v in state.items()})
    return out


@pytest.mark.slow
def test_fsdp_matches_ddp_and_resumes_exactly_from_sharded_checkpoints(tiny_env, tmp_path):
    ref, motion = _validation_inputs(tmp_path)
    common = (f"max_train_steps={STEPS}", "checkpointing_steps=2", f"optim.learning_rate={LR}", "loss.ref_drop=0.5",
              "ema.enabled=true", "ema.decay=0.9", "validation.every_n_steps=4", f"validation.reference_image={ref}",
              f"validation.densepose_video={motion}", "validation.num_frames=3", "validation.steps=2")
    runs = [
        {"name": "ddp", "strategy": "ddp", "overrides": tiny_overrides(tiny_env, tmp_path / "ddp", *common)},
        {"name": "full", "strategy": "launched", "overrides": tiny_overrides(tiny_env, tmp_path / "fsdp", *common)},
        {"name": "first", "strategy": "launched", "stop_after": 2,
         "overrides": tiny_overrides(tiny_env, tmp_path / "fsdp_b", *common)},
        {"name": "second", "strategy": "launched",
         "overrides": tiny_overrides(tiny_env, tmp_path / "fsdp_b", *common, "resume=latest")},
    ]
    _launch(ACCELERATE / "fsdp_full_shard.yaml", {"config": str(STAGE1), "runs": runs}, tmp_path)

    # each rank wrote its own shard of the weights and of the optimizer state
    ckpt = tmp_path / "fsdp" / "checkpoints" / "checkpoint-4"
    for part in ("pytorch_model_fsdp_0", "optimizer_0"):
        assert sorted(p.name for p in (ckpt / part).glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]
    assert {"ema_rank0.pt", "ema_rank1.pt", "sharding.json"} <= {p.name for p in ckpt.iterdir()}
    assert json.loads((ckpt / "sharding.json").read_text())["world_size"] == 2

    # FSDP reaches DDP's weights (the exports hold the EMA weights of both)
    ddp, fsdp = _trained(tmp_path / "ddp" / "export"), _trained(tmp_path / "fsdp" / "export")
    assert set(ddp) == set(fsdp)
    worst = max((ddp[k] - fsdp[k]).abs().max().item() for k in ddp)
    assert worst <= ATOL, f"FSDP differs from DDP by {worst:.3g} (> {ATOL:.3g})"
    moved = max((ddp[k] - v).abs().max().item() for k, v in _trained_initial(tiny_env).items())
    assert moved > 100 * ATOL  # the comparison is not of untrained weights
    losses = {n: json.loads((tmp_path / d / f"losses-{n}.json").read_text())
              for n, d in (("ddp", "ddp"), ("full", "fsdp"), ("first", "fsdp_b"), ("second", "fsdp_b"))}
    assert losses["full"] == pytest.approx(losses["ddp"], rel=1e-4)

    # kill-and-resume under sharding equals the uninterrupted run, exactly
    assert losses["first"] + losses["second"] == losses["full"]
    resumed = _trained(tmp_path / "fsdp_b" / "export")
    assert all(torch.equal(resumed[k], fsdp[k]) for k in fsdp)

    # validation ran on rank 0 on the gathered weights; the export loads in the pipeline
    assert (tmp_path / "fsdp" / "validation" / "step-0000004.mp4").is_file()
    from magicanimate.pipelines.pipeline_magicanimate import MagicAnimatePipeline

    pipe = MagicAnimatePipeline.from_pretrained(tmp_path / "fsdp" / "export" / "pipeline")
    key = next(iter(fsdp)).split(".", 1)[1]
    assert torch.equal(pipe.appearance_encoder.state_dict()[key], fsdp[f"appearance_encoder.{key}"])


def _trained_initial(env):
    from magicanimate.training.builder import build_training_module
    from magicanimate.training.config import load_train_config

    module = build_training_module(load_train_config(STAGE1, tiny_overrides(env, "unused")))
    return {f"{name}.{k}": v for name in ("appearance_encoder", "controlnet")
            for k, v in getattr(module, name).state_dict().items()}
