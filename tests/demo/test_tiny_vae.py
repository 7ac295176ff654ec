"""The demo's tiny VAE: it learns, is saved with a measured scaling factor, and loads strictly."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from skimage.metrics import peak_signal_noise_ratio

from magicanimate.config import load_config, to_object
from magicanimate.demo.synthetic.render import render_clip
from magicanimate.errors import ConfigError, WeightsError
from magicanimate.demo.tiny_vae import (
    WEIGHTS_NAME,
    TinyVAEModelConfig,
    TinyVAETrainConfig,
    build_tiny_vae,
    load_frames,
    load_tiny_vae,
    measure_scaling_factor,
    psnr,
    reconstruct,
    to_tensor,
    train_tiny_vae,
    vae_loss,
)

TINY = TinyVAEModelConfig(block_out_channels=[8, 16], layers_per_block=1, latent_channels=4, norm_num_groups=8)


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_training_steps_reduce_the_loss_on_a_tiny_batch():
    torch.manual_seed(0)
    vae = build_tiny_vae(TINY, 16)
    x = to_tensor(render_clip(1, 2, 4, 16).rgb)
    cfg = TinyVAETrainConfig()
    opt = torch.optim.Adam(vae.parameters(), lr=3e-3)
    losses = []
    for _ in range(10):
        loss = vae_loss(vae, x, cfg, torch.Generator().manual_seed(0))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_psnr_matches_scikit_image():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, size=(3, 8, 8, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-20, 21, size=a.shape), 0, 255).astype(np.uint8)
    assert psnr(a, b) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=255), rel=1e-9)


def test_train_saves_scaled_vae_that_loads_strictly(tmp_path):
    out = tmp_path / "vae"
    cfg = to_object(
        load_config(
            TinyVAETrainConfig,
            None,
            [
                f"output_dir={out}",
                "steps=4",
                "eval_every=2",
                "batch_size=2",
                "scaling_frames=8",
                "model.block_out_channels=[8,16]",
                "model.norm_num_groups=8",
                "data.size=16",
                "data.train_videos=2",
                "data.test_videos=1",
                "data.frames_per_video=4",
                "data.eval_frames=2",
            ],
        )
    )
    metrics = train_tiny_vae(cfg, progress=False)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["config.json", WEIGHTS_NAME, "metrics.json", "train_config.yaml"]
    )
    assert json.loads((out / "metrics.json").read_text())["steps"] == metrics["steps"] == 4
    assert [h["step"] for h in metrics["history"]] == [2, 4]
    vae = load_tiny_vae(out)
    config = json.loads((out / "config.json").read_text())
    assert "_use_default_values" not in config
    # The stored scaling factor makes latents of the training frames unit-variance.
    train = load_frames(cfg.data, "train", progress=False)
    assert vae.config.scaling_factor == pytest.approx(measure_scaling_factor(vae, train, cfg.seed), rel=1e-5)
    with torch.no_grad():
        z = vae.encode(to_tensor(train)).latent_dist.sample(generator=torch.Generator().manual_seed(0))
    assert float((z * vae.config.scaling_factor).std()) == pytest.approx(1.0, abs=0.05)

    # Strict loading: an extra or a missing tensor is named.
    state = load_file(str(out / WEIGHTS_NAME))
    save_file({**state, "encoder.extra.weight": torch.zeros(1)}, str(out / WEIGHTS_NAME))
    with pytest.raises(WeightsError, match="encoder.extra.weight"):
        load_tiny_vae(out)
    dropped = sorted(state)[0]
    save_file({k: v for k, v in state.items() if k != dropped}, str(out / WEIGHTS_NAME))
    with pytest.raises(WeightsError, match=dropped):
        load_tiny_vae(out)
    with pytest.raises(WeightsError, match="missing"):
        load_tiny_vae(tmp_path / "nowhere")


def test_bad_model_config_is_a_config_error():
    with pytest.raises(ConfigError, match="norm_num_groups"):
        build_tiny_vae(TinyVAEModelConfig(block_out_channels=[12, 16], norm_num_groups=8))
    with pytest.raises(ConfigError, match="unknown|closest|block_out"):
        load_config(TinyVAETrainConfig, None, ["model.block_out_channel=[8]"])


def test_schedule_progress_follows_the_budget_that_ends_first():
    from magicanimate.demo.tiny_vae import _progress

    assert _progress(50, 100, 0.0, 0.0) == 0.5
    assert _progress(10, 100, 30.0, 1.0) == 0.5  # half the CPU minute is gone
    assert _progress(10, 100, 6.0, 1.0, 90.0, 2.0) == 0.75  # the wall budget leads
    assert _progress(100, 100, 1.0, 20.0, 1.0, 20.0) == 1.0


def _crop_config(tmp_path, crop: int):
    return to_object(load_config(TinyVAETrainConfig, None, [
        f"output_dir={tmp_path / 'vae'}", "steps=3", "eval_every=3", "batch_size=2", "scaling_frames=4",
        "model.block_out_channels=[8,16]", "model.norm_num_groups=8", "data.size=16", "data.train_videos=2",
        "data.test_videos=1", "data.frames_per_video=2", "data.eval_frames=2", f"data.crop_size={crop}"]))


def test_training_on_crops_gives_a_whole_frame_vae(tmp_path):
    cfg = _crop_config(tmp_path, 8)
    seen = []
    import magicanimate.demo.tiny_vae as tv

    real_loss = tv.vae_loss

    def spy(vae, x, cfg_, generator=None):
        seen.append(tuple(x.shape))
        return real_loss(vae, x, cfg_, generator)

    tv.vae_loss = spy
    try:
        metrics = train_tiny_vae(cfg, progress=False)
    finally:
        tv.vae_loss = real_loss
    assert seen == [(2, 3, 8, 8)] * 3  # every training batch is cropped
    assert metrics["steps"] == 3
    vae = load_tiny_vae(tmp_path / "vae")
    frames = load_frames(cfg.data, "test", progress=False)
    assert reconstruct(vae, frames).shape == frames.shape == (2, 16, 16, 3)


@pytest.mark.parametrize("crop", [5, 32])
def test_bad_crop_size_is_a_config_error(tmp_path, crop):
    with pytest.raises(ConfigError, match="crop_size"):
        train_tiny_vae(_crop_config(tmp_path, crop), progress=False)
