"""The training module: loss, reference dropout, scaling, weighting, overfitting a fixed batch."""

import pytest
import torch
from torch.utils.data import default_collate

from magicanimate.data.datasets import CLIP, FRAME, VideoPoseDataset
from magicanimate.errors import ConfigError
from magicanimate.training.builder import build_training_module
from magicanimate.training.config import load_train_config
from magicanimate.training.module import vae_encode

from .conftest import REPO, tiny_overrides

STAGE1 = REPO / "configs/training/tiny_stage1.yaml"
STAGE2 = REPO / "configs/training/tiny_stage2.yaml"


def _setup(env, tmp_path, config, *extra, kind=FRAME):
    cfg = load_train_config(config, tiny_overrides(env, tmp_path / "out", *extra))
    torch.manual_seed(0)
    module = build_training_module(cfg)
    module.configure_trainable(cfg.train)
    ds = VideoPoseDataset.from_config(cfg.data)
    return cfg, module, default_collate([ds[(0, kind, 1)]])


def _overfit(module, batch, max_steps, lr=1e-3):
    """Train on one batch until the loss halves (or max_steps); return the losses."""
    opt = torch.optim.AdamW(module.trainable_parameters(), lr=lr, weight_decay=0.0)
    losses = []
    for _ in range(max_steps):
        torch.manual_seed(123)  # the same noise and timestep every step: a fixed regression target
        loss = module(batch)["loss"]
        losses.append(loss.item())
        if losses[-1] <= 0.5 * losses[0]:
            break
        loss.backward()
        opt.step()
        opt.zero_grad()
    return losses


@pytest.mark.slow
def test_overfit_stage1(tiny_env, tmp_path):
    _, module, batch = _setup(tiny_env, tmp_path, STAGE1, "loss.ref_drop=0")
    losses = _overfit(module, batch, 60)
    assert losses[-1] <= 0.5 * losses[0], losses


@pytest.mark.slow
def test_overfit_stage2(tiny_env, tmp_path):
    _, module, batch = _setup(tiny_env, tmp_path, STAGE2, "loss.ref_drop=0", "data.num_frames=3", kind=CLIP)
    assert batch["pixel_values"].shape[2] == 3
    losses = _overfit(module, batch, 60)
    assert losses[-1] <= 0.5 * losses[0], losses


def test_ref_drop_one_skips_the_encoder_but_touches_its_weights(tiny_env, tmp_path):
    _, module, batch = _setup(tiny_env, tmp_path, STAGE1, "loss.ref_drop=1.0")
    calls = []
    module.appearance_encoder.register_forward_hook(lambda *a: calls.append(1))
    out = module(batch)
    assert not out["read_mask"].any() and not calls
    out["loss"].backward()
    enc = list(module.appearance_encoder.parameters())
    # Every trainable weight has a gradient (zero for the unused encoder), so DDP sees all of them.
    assert all(p.grad is not None for p in module.trainable_parameters())
    assert all(torch.count_nonzero(p.grad) == 0 for p in enc)

    module.zero_grad(set_to_none=True)
    module.ref_drop = 0.0
    out = module(batch)
    assert out["read_mask"].all() and calls
    out["loss"].backward()
    assert any(torch.count_nonzero(p.grad) > 0 for p in enc)


def test_vae_latents_use_the_configured_scaling_factor(tiny_env, tmp_path):
    _, module, batch = _setup(tiny_env, tmp_path, STAGE1)
    vae = module.vae
    vae.register_to_config(scaling_factor=0.5)
    img = batch["reference"]
    expected = vae.encode(img).latent_dist.mean * 0.5
    assert torch.allclose(vae_encode(vae, img), expected)


def test_min_snr_weight_and_v_prediction(tiny_env, tmp_path):
    _, module, batch = _setup(tiny_env, tmp_path, STAGE1, "loss.ref_drop=0")
    torch.manual_seed(7)
    plain = module(batch)
    module.snr_gamma = 1.0
    torch.manual_seed(7)
    weighted = module(batch)
    t = plain["timesteps"].item()
    assert weighted["timesteps"].item() == t
    ac = module.noise_scheduler.alphas_cumprod[t].double()
    snr = ac / (1 - ac)
    expected = plain["loss"].item() * float(min(snr, 1.0) / snr)
    assert weighted["loss"].item() == pytest.approx(expected, rel=1e-5)

    # v-prediction: the target is sqrt(ac) * eps - sqrt(1 - ac) * x0, so the loss differs from eps's.
    module.snr_gamma = None
    module.prediction_type = "v_prediction"
    torch.manual_seed(7)
    v = module(batch)
    assert v["timesteps"].item() == t and v["loss"].item() != pytest.approx(plain["loss"].item(), rel=1e-3)


def test_config_errors(tiny_env, tmp_path):
    with pytest.raises(ConfigError, match="learning_rat"):
        load_train_config(STAGE1, tiny_overrides(tiny_env, tmp_path, "optim.learning_rat=1e-4"))
    bad = tmp_path / "bad.yaml"
    bad.write_text(STAGE1.read_text().replace("  hflip_prob: 0.5", "  hflip_prob: 0.5\n  hflipp: 1"))
    with pytest.raises(ConfigError, match="hflipp"):
        load_train_config(bad, tiny_overrides(tiny_env, tmp_path))
    with pytest.raises(ConfigError, match="data.sample"):
        load_train_config(STAGE1, tiny_overrides(tiny_env, tmp_path, "data.sample=clips"))
    with pytest.raises(ConfigError, match="no trainable module"):
        load_train_config(STAGE1, tiny_overrides(tiny_env, tmp_path, "train.appearance_encoder=false",
                                                 "train.controlnet=false"))
    with pytest.raises(ConfigError, match="use_motion_module"):
        load_train_config(STAGE1, tiny_overrides(tiny_env, tmp_path, "train.motion_modules=true"))
    with pytest.raises(ConfigError, match="tau1"):
        load_train_config(STAGE2, tiny_overrides(tiny_env, tmp_path, "data.tau1=0.5", "data.tau2=0.2"))
    with pytest.raises(ConfigError, match="data.max_videos"):
        load_train_config(STAGE1, tiny_overrides(tiny_env, tmp_path, "data.max_videos=0"))
    # The shipped full-size configs load and declare the two stages.
    for name, trains in (("stage1", {"appearance_encoder", "controlnet"}), ("stage2", {"motion_modules"})):
        cfg = load_train_config(REPO / f"configs/training/{name}.yaml")
        assert {k for k, v in cfg.train.items() if v} == trains
        assert cfg.optim.learning_rate == 1e-5 and cfg.train_batch_size == 1 and cfg.data.height == 512


def test_trainable_counts_per_module(tiny_env, tmp_path):
    cfg, module, _ = _setup(tiny_env, tmp_path, STAGE2)
    summary = module.configure_trainable(cfg.train)
    counts = summary.counts
    motion = sum(p.numel() for n, p in module.unet.named_parameters() if "motion_modules" in n)
    assert counts["motion_modules"] == (motion, motion) and motion > 0
    assert counts["spatial_unet"][0] == 0 and counts["appearance_encoder"][0] == 0
    assert counts["controlnet"][0] == 0 and counts["vae"][0] == 0
    assert sum(p.numel() for p in module.trainable_parameters()) == motion
    assert any("motion_modules" in line for line in summary.lines())
