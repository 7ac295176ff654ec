"""A tiny VAE for the synthetic demo: diffusers ``AutoencoderKL`` trained on synthetic-dancer frames.

Stable Diffusion's VAE is out of reach here (no model hub), and the demo world is simple: a few-MB
``AutoencoderKL`` with the same interface (4 latent channels, x8 down-sampling, ``config.scaling_factor``)
learns it in minutes on a CPU. Training is plain reconstruction (L1 and/or MSE) plus a small KL term,
seeded; ``config.scaling_factor`` is then set to 1 / std of the latents of training frames, so that scaled
latents have unit variance as the diffusion model expects (SD's 0.18215 was measured the same way).

Frames come from a dataset written by ``scripts/make_synthetic_dataset.py`` (``data.root``) or, with no
root, are rendered in memory from the same split seeds (identical frames, no files needed).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import numpy as np
import torch
from tqdm.auto import tqdm

from magicanimate.config import save_config
from magicanimate.errors import ConfigError, InputError, WeightsError
from magicanimate.utils.files import atomic_path

WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"


@dataclass
class TinyVAEModelConfig:
    block_out_channels: List[int] = field(default_factory=lambda: [32, 48, 64, 64])
    layers_per_block: int = 1
    latent_channels: int = 4
    norm_num_groups: int = 16
    mid_block_add_attention: bool = True


@dataclass
class TinyVAEDataConfig:
    # dataset folder written by scripts/make_synthetic_dataset.py; null = render the frames in memory
    root: Optional[str] = None
    size: int = 64
    # used when root is null (same meaning as make_synthetic_dataset.py's options)
    seed: int = 0
    train_videos: int = 96
    test_videos: int = 8
    frames_per_video: int = 24
    fps: float = 25.0
    # held-out frames for the PSNR reported during training (from the test split)
    eval_frames: int = 64
    hflip: bool = True
    # Permute each training frame's RGB channels at random (colour augmentation). Off by default: with
    # 1200 training identities it made no measured difference (docs/demo_model.md, "Tiny VAE").
    channel_shuffle: bool = False
    # Train on random square crops of this size (0 = whole frames). The VAE is convolutional, so it
    # reconstructs whole frames after training on crops; a 32-px crop step costs a quarter of a 64-px one,
    # and on one CPU core the number of steps is what limits this VAE.
    crop_size: int = 0


@dataclass
class TinyVAETrainConfig:
    output_dir: str = "outputs/demo/vae"
    seed: int = 0
    num_threads: int = 1
    steps: int = 3000
    # Budget of the optimisation loop in CPU minutes of this process (0 = none). CPU time, not wall time,
    # so that the result does not depend on how busy a shared machine is. max_wall_minutes (0 = none)
    # caps wall time too. The learning-rate schedule runs to whichever ends first: `steps`, the CPU
    # budget or the wall budget; only when `steps` ends first is the run bit-for-bit reproducible.
    max_minutes: float = 20.0
    max_wall_minutes: float = 0.0
    batch_size: int = 16
    lr: float = 1e-3
    lr_warmup_steps: int = 100
    l1_weight: float = 1.0
    mse_weight: float = 1.0
    kl_weight: float = 1e-6
    eval_every: int = 250
    # PSNR thresholds whose first crossing time is recorded in metrics.json
    psnr_marks: List[float] = field(default_factory=lambda: [25.0, 28.0, 30.0, 32.0])
    scaling_frames: int = 512
    model: TinyVAEModelConfig = field(default_factory=TinyVAEModelConfig)
    data: TinyVAEDataConfig = field(default_factory=TinyVAEDataConfig)


def build_tiny_vae(cfg: TinyVAEModelConfig, sample_size: int = 64):
    from diffusers import AutoencoderKL

    n = len(cfg.block_out_channels)
    if n < 1 or any(c % cfg.norm_num_groups for c in cfg.block_out_channels):
        raise ConfigError(
            f"model.block_out_channels {list(cfg.block_out_channels)} must be non-empty multiples of "
            f"model.norm_num_groups ({cfg.norm_num_groups})"
        )
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=tuple(cfg.block_out_channels),
        layers_per_block=cfg.layers_per_block,
        latent_channels=cfg.latent_channels,
        norm_num_groups=cfg.norm_num_groups,
        sample_size=sample_size,
        mid_block_add_attention=cfg.mid_block_add_attention,
    )


def load_tiny_vae(path: str | Path):
    """Load a saved VAE folder strictly: every tensor of the config's model present, nothing extra."""
    from diffusers import AutoencoderKL
    from safetensors.torch import load_file

    folder = Path(path)
    cfg_file, weights = folder / "config.json", folder / WEIGHTS_NAME
    for f in (cfg_file, weights):
        if not f.is_file():
            raise WeightsError(f"{f}: missing (expected a VAE folder saved by save_pretrained)")
    try:
        config = json.loads(cfg_file.read_text())
        vae = AutoencoderKL.from_config(config)
        state = load_file(str(weights))
    except (json.JSONDecodeError, OSError, ValueError, TypeError) as e:
        raise WeightsError(f"{folder}: cannot load VAE ({e})") from None
    expected = set(vae.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise WeightsError(f"{weights}: missing keys {missing[:10]}, unexpected keys {unexpected[:10]}")
    try:
        vae.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise WeightsError(f"{weights}: {e}") from None
    return vae.eval()


# ----------------------------------------------------------------------------------------------- data


def _read_png_folder(folder: Path) -> list[np.ndarray]:
    from magicanimate.media import read_image

    return [read_image(f) for f in sorted(folder.glob("*.png"))]


def load_frames(cfg: TinyVAEDataConfig, split: str, *, progress: bool = True) -> np.ndarray:
    """RGB frames (N, H, W, 3) uint8 of one split, resized to ``cfg.size`` if needed."""
    import cv2

    if cfg.root is None:
        from magicanimate.demo.synthetic.render import render_clip
        from magicanimate.demo.synthetic.dataset import plan_dataset

        n = cfg.train_videos if split == "train" else cfg.test_videos
        plan = plan_dataset({split: n}, cfg.seed)[split]
        frames = [
            render_clip(v["identity_seed"], v["motion_seed"], cfg.frames_per_video, cfg.size, fps=cfg.fps).rgb
            for v in tqdm(plan, desc=f"render {split} frames", unit="video", leave=False, disable=not progress)
        ]
        return np.concatenate(frames)
    root = Path(cfg.root) / split
    if not root.is_dir():
        raise InputError(f"{root}: missing (data.root must be a dataset written by scripts/make_synthetic_dataset.py)")
    frames = []
    for video in sorted(p for p in root.iterdir() if p.is_dir()):
        frames += _read_png_folder(video / "images")
    if not frames:
        raise InputError(f"{root}: no frames found under <video>/images/*.png")
    size = (cfg.size, cfg.size)
    return np.stack([f if f.shape[:2] == size else cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])


def to_tensor(frames: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


# ------------------------------------------------------------------------------------------ training


def vae_loss(vae, x: torch.Tensor, cfg: TinyVAETrainConfig, generator: torch.Generator | None = None) -> dict:
    posterior = vae.encode(x).latent_dist
    z = posterior.sample(generator=generator)
    recon = vae.decode(z).sample
    l1 = (recon - x).abs().mean()
    mse = ((recon - x) ** 2).mean()
    kl = posterior.kl().mean()
    loss = cfg.l1_weight * l1 + cfg.mse_weight * mse + cfg.kl_weight * kl
    return {"loss": loss, "l1": l1, "mse": mse, "kl": kl}


@torch.no_grad()
def reconstruct(vae, frames: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Encode (posterior mean) and decode uint8 frames; returns uint8 frames."""
    out = []
    for i in range(0, len(frames), batch_size):
        x = to_tensor(frames[i : i + batch_size])
        recon = vae.decode(vae.encode(x).latent_dist.mode()).sample
        out.append(((recon.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy())
    return np.concatenate(out)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of uint8 images, over all pixels of the set (one MSE, not a mean of per-image PSNRs)."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


@torch.no_grad()
def measure_scaling_factor(vae, frames: np.ndarray, seed: int = 0, batch_size: int = 64) -> float:
    """1 / std of posterior samples of ``frames``: what ``config.scaling_factor`` should be."""
    g = torch.Generator().manual_seed(seed)
    zs = [
        vae.encode(to_tensor(frames[i : i + batch_size])).latent_dist.sample(generator=g)
        for i in range(0, len(frames), batch_size)
    ]
    return float(1.0 / torch.cat(zs).float().std())


def _progress(step: int, steps: int, cpu_seconds: float, max_minutes: float, wall_seconds: float = 0.0,
              max_wall_minutes: float = 0.0) -> float:
    """Fraction of training done: by steps, CPU budget or wall budget, whichever is furthest along."""
    by_cpu = cpu_seconds / (max_minutes * 60) if max_minutes > 0 else 0.0
    by_wall = wall_seconds / (max_wall_minutes * 60) if max_wall_minutes > 0 else 0.0
    return max(step / steps, by_cpu, by_wall)


def _evaluate(vae, frames, step, loss, start, cpu_start, cfg, history, marks, bar) -> None:
    vae.eval()
    p = psnr(reconstruct(vae, frames), frames)
    wall, cpu = round(time.perf_counter() - start, 1), round(time.process_time() - cpu_start, 1)
    history.append({"step": step, "seconds": wall, "cpu_seconds": cpu, "loss": loss, "test_psnr": round(p, 2)})
    for m in cfg.psnr_marks:
        if p >= m and str(m) not in marks:
            marks[str(m)] = {"step": step, "seconds": wall, "cpu_seconds": cpu}
    bar.set_postfix(loss=f"{loss:.4f}", psnr=f"{p:.2f}")


def _check_sizes(cfg: TinyVAETrainConfig) -> None:
    factor = 2 ** (len(cfg.model.block_out_channels) - 1)
    if cfg.data.size % factor:
        raise ConfigError(f"data.size {cfg.data.size} must be divisible by the VAE's down-sampling factor")
    if cfg.data.crop_size and (cfg.data.crop_size % factor or not 0 < cfg.data.crop_size <= cfg.data.size):
        raise ConfigError(f"data.crop_size {cfg.data.crop_size} must be a multiple of the VAE's down-sampling "
                          f"factor {factor} and at most data.size {cfg.data.size}")


def _augmented_batch(train: np.ndarray, cfg: TinyVAETrainConfig, rng: np.random.Generator) -> np.ndarray:
    """A random batch: horizontal flips, channel shuffles and one random crop, as the config asks."""
    batch = train[rng.integers(0, len(train), size=cfg.batch_size)]
    if cfg.data.hflip:
        flip = rng.uniform(size=len(batch)) < 0.5
        batch = np.where(flip[:, None, None, None], batch[:, :, ::-1], batch)
    if cfg.data.channel_shuffle:
        perms = np.argsort(rng.uniform(size=(len(batch), 3)), axis=1)
        batch = np.take_along_axis(batch, perms[:, None, None, :], axis=3)
    if cfg.data.crop_size:
        top, left = rng.integers(0, np.array(batch.shape[1:3]) - cfg.data.crop_size + 1)
        batch = batch[:, top : top + cfg.data.crop_size, left : left + cfg.data.crop_size]
    return batch


def train_tiny_vae(cfg: TinyVAETrainConfig, *, progress: bool = True) -> dict:
    """Train, measure the scaling factor, save to ``cfg.output_dir``; returns the metrics."""
    torch.set_num_threads(cfg.num_threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    _check_sizes(cfg)
    train = load_frames(cfg.data, "train", progress=progress)
    test = load_frames(cfg.data, "test", progress=progress)
    n_eval = min(cfg.data.eval_frames, len(test))
    eval_frames = test[np.sort(np.random.default_rng(cfg.seed + 1).choice(len(test), size=n_eval, replace=False))]
    vae = build_tiny_vae(cfg.model, cfg.data.size)
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(cfg.seed)
    history, marks = [], {}
    start, cpu_start = time.perf_counter(), time.process_time()
    bar = tqdm(total=cfg.steps, desc="train tiny VAE", unit="step", disable=not progress)
    step, loss = 0, float("nan")
    while (done := _progress(step, cfg.steps, time.process_time() - cpu_start, cfg.max_minutes,
                             time.perf_counter() - start, cfg.max_wall_minutes)) < 1.0:
        # Linear warm-up, then cosine decay to zero at the end of the steps or of a time budget.
        warm = min(1.0, (step + 1) / max(cfg.lr_warmup_steps, 1))
        for group in opt.param_groups:
            group["lr"] = cfg.lr * warm * 0.5 * (1 + math.cos(math.pi * done))
        batch = _augmented_batch(train, cfg, rng)
        vae.train()
        losses = vae_loss(vae, to_tensor(batch), cfg, gen)
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        opt.step()
        step += 1
        bar.update(1)
        loss = losses["loss"].item()
        if not math.isfinite(loss):
            raise RuntimeError(f"tiny VAE training diverged at step {step} (loss {loss})")
        if step % cfg.eval_every == 0:
            _evaluate(vae, eval_frames, step, loss, start, cpu_start, cfg, history, marks, bar)
    if not history or history[-1]["step"] != step:
        _evaluate(vae, eval_frames, step, loss, start, cpu_start, cfg, history, marks, bar)
    bar.close()
    timing = (time.perf_counter() - start, time.process_time() - cpu_start)
    return _finish(vae, cfg, train, test, step, timing, marks, history)


def _finish(vae, cfg: TinyVAETrainConfig, train, test, step: int, timing, marks, history) -> dict:
    """Held-out PSNR and the latents' scaling factor; the VAE folder written atomically; the metrics."""
    vae.eval()
    test_psnr = psnr(reconstruct(vae, test), test)
    n_scale = min(cfg.scaling_frames, len(train))
    scale_frames = train[np.sort(np.random.default_rng(cfg.seed + 2).choice(len(train), n_scale, replace=False))]
    scaling = measure_scaling_factor(vae, scale_frames, cfg.seed)
    vae.register_to_config(scaling_factor=scaling)
    out = Path(cfg.output_dir)
    metrics = {
        "steps": step, "train_seconds": round(timing[0], 1), "train_cpu_seconds": round(timing[1], 1),
        "num_threads": cfg.num_threads, "test_psnr": round(test_psnr, 2), "test_frames": int(len(test)),
        "train_frames": int(len(train)), "scaling_factor": scaling,
        "parameters": int(sum(p.numel() for p in vae.parameters())), "psnr_marks": marks, "history": history,
    }
    with atomic_path(out) as tmp:
        vae.save_pretrained(tmp, safe_serialization=True)
        save_config(cfg, tmp, name="train_config.yaml")
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=1))
    metrics["weights_bytes"] = (out / WEIGHTS_NAME).stat().st_size
    return metrics
