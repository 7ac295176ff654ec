import json

import pytest
import torch
from diffusers import DDIMScheduler, EulerDiscreteScheduler

from magicanimate.errors import ConfigError
from magicanimate.pipelines.scheduling import make_scheduler


def test_ddim_timesteps_and_alphas_equal_original(golden_dir):
    golden = json.loads((golden_dir / "scheduler_timesteps.json").read_text())
    sched = make_scheduler()
    assert isinstance(sched, DDIMScheduler)
    assert sched.init_noise_sigma == golden["init_noise_sigma"]
    for key in ("beta_start", "beta_end", "beta_schedule", "clip_sample", "set_alpha_to_one", "steps_offset",
                "prediction_type", "timestep_spacing"):
        assert sched.config[key] == golden["config_after_pipeline_init"][key], key
    for n, exp in golden["steps"].items():
        sched.set_timesteps(int(n))
        assert sched.timesteps.tolist() == exp["timesteps"]
        ac = sched.alphas_cumprod[sched.timesteps]
        torch.testing.assert_close(ac, torch.tensor(exp["alphas_cumprod_t"]), rtol=0, atol=1e-7)
        prev = [sched.alphas_cumprod[p].item() if p >= 0 else sched.final_alpha_cumprod.item()
                for p in exp["prev_timesteps"]]
        assert prev == pytest.approx(exp["alphas_cumprod_prev"], abs=1e-7)


def test_ddim_step_reproduces_golden_trajectory(golden_dir):
    from safetensors.torch import load_file
    steps = load_file(golden_dir / "pipeline" / "steps.safetensors")
    final = load_file(golden_dir / "pipeline" / "outputs.safetensors")["final_latents"]
    sched = make_scheduler()
    sched.set_timesteps(4)
    for i, t in enumerate(sched.timesteps):
        out = sched.step(steps[f"step{i}.noise_pred_guided"], t, steps[f"step{i}.latents_in"], eta=0.0).prev_sample
        expected = steps[f"step{i + 1}.latents_in"] if i + 1 < 4 else final
        torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)


def test_other_scheduler_swaps_in_with_same_betas():
    euler = make_scheduler("EulerDiscreteScheduler")
    assert isinstance(euler, EulerDiscreteScheduler)
    torch.testing.assert_close(euler.betas, make_scheduler().betas)
    with pytest.raises(ConfigError, match="unknown scheduler"):
        make_scheduler("NoSuchScheduler")
