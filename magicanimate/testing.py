"""Tiny random models and small inputs, built in seconds, for tests and benchmarks (no weights, no downloads).

* :func:`tiny_pipeline`: a whole :class:`~magicanimate.pipelines.MagicAnimatePipeline` in SD1.5's block layout
  at toy width; layers that start at zero in a fresh model are woken, so every component matters.
* :data:`TINY_CONFIGS` / :func:`tiny_unet2d_variant`: UNet layouts deliberately unlike SD1.5's (other widths,
  levels, groups, heads), for the model tests; :func:`variant_inputs` gives matching inputs.
* :func:`make_tiny_base`: a Stable-Diffusion-layout base folder (``unet/``, ``vae/``, empty-prompt embedding)
  for training runs.
* :func:`tiny_clip`: a one-layer CLIP text model and a 4-token tokenizer.
* :func:`densepose_video`, :class:`MovingDensePose`, :func:`reference_image`: inputs in the real formats.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from torch import nn

from magicanimate.data.densepose import render_parts

TEXT_DIM = 16


# ------------------------------------------------------------------------------------------ pipelines


def _wake_zero_parameters(model: torch.nn.Module, generator: torch.Generator, std: float = 0.05) -> None:
    with torch.no_grad():
        for p in model.parameters():
            if p.numel() and not p.any():
                p.copy_(torch.randn(p.shape, generator=generator) * std)


def tiny_unet2d(width: int = 32, cross_attention_dim: int = 24, norm_groups: int = 8,
                layers_per_block: int = 1) -> UNet2DConditionModel:
    return UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(width,) * 4,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        layers_per_block=layers_per_block, norm_num_groups=norm_groups, cross_attention_dim=cross_attention_dim,
        attention_head_dim=8)


def tiny_vae(width: int = 16) -> AutoencoderKL:
    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
                         up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(width,) * 4,
                         layers_per_block=1, latent_channels=4, norm_num_groups=8, sample_size=64)


def tiny_pipeline(seed: int = 0, *, width: int = 32, cross_attention_dim: int = 24):
    """Random tiny pipeline; deterministic in ``seed``. Frame sizes must be multiples of 64."""
    from magicanimate.models import AppearanceEncoderModel, UNet3DMotionModel
    from magicanimate.models.controlnet import build_densepose_controlnet
    from magicanimate.pipelines.pipeline_magicanimate import MagicAnimatePipeline
    from magicanimate.pipelines.scheduling import make_scheduler

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    base = tiny_unet2d(width, cross_attention_dim)
    unet = UNet3DMotionModel.from_unet2d(base, motion_norm_num_groups=min(32, width))
    encoder = AppearanceEncoderModel.from_unet2d(base)
    controlnet = build_densepose_controlnet(base, conditioning_embedding_out_channels=(8, 16, width, width))
    for model in (unet, encoder, controlnet):
        _wake_zero_parameters(model, gen)
    vae = tiny_vae()
    embeds = torch.randn((1, 77, cross_attention_dim), generator=gen)
    return MagicAnimatePipeline(vae=vae, unet=unet.eval(), appearance_encoder=encoder.eval(),
                                controlnet=controlnet.eval(), scheduler=make_scheduler(), prompt_embeds=embeds)


# ------------------------------------------------------------------------------- model-test variants
# Deliberately unlike golden set A: unequal widths, 2 levels, other group/head counts, linear projection.
TINY_CONFIGS = {
    "two_levels": dict(
        unet2d=dict(block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=4, cross_attention_dim=12,
                    attention_head_dim=2, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), sample_size=16),
        motion=dict(motion_num_attention_heads=4, motion_norm_num_groups=8, motion_max_seq_length=10),
        frames=5, latent=(8, 12)),
    "three_levels_linear": dict(
        unet2d=dict(block_out_channels=(8, 16, 24), layers_per_block=2, norm_num_groups=8, cross_attention_dim=16,
                    attention_head_dim=(2, 4, 4), use_linear_projection=True,
                    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), sample_size=16),
        motion=dict(motion_num_attention_heads=2, motion_norm_num_groups=4, motion_max_seq_length=6),
        frames=6, latent=(12, 8)),
}


def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Make every layer matter: random norm affines and non-zero zero-initialised layers."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1 and ("norm" in name) and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            elif p.ndim == 1 and "norm" in name:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif "proj_out" in name or "controlnet_" in name:
                bound = 1 / max(1, p[0].numel()) ** 0.5 if p.ndim > 1 else 0.1
                p.uniform_(-bound, bound, generator=g)
    return model


def tiny_unet2d_variant(name: str, seed: int = 0) -> UNet2DConditionModel:
    torch.manual_seed(seed)
    return randomize_(UNet2DConditionModel(**TINY_CONFIGS[name]["unet2d"]), seed).eval()


def variant_inputs(name: str, batch: int = 2, seed: int = 1, frames: int | None = None):
    cfg = TINY_CONFIGS[name]
    g = torch.Generator().manual_seed(seed)
    f = frames or cfg["frames"]
    h, w = cfg["latent"]
    sample = torch.randn(batch, 4, f, h, w, generator=g)
    context = torch.randn(batch, 7, cfg["unet2d"]["cross_attention_dim"], generator=g)
    ref = torch.randn(batch, 4, h, w, generator=g)
    return sample, torch.tensor(321), context, ref


# ------------------------------------------------------------------------------- training base folder
def make_tiny_base(folder: Path, seed: int = 0) -> Path:
    """<folder>/{unet,vae}/ + prompt_embeds.safetensors: UNet 2 levels of 32 channels, VAE x8, text 16 wide."""
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=4, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 32),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=TEXT_DIM, attention_head_dim=4, norm_num_groups=8)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1, norm_num_groups=4,
        block_out_channels=(4, 4, 4, 4), down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, sample_size=32)
    unet.save_pretrained(str(folder / "unet"))
    vae.save_pretrained(str(folder / "vae"))
    save_file({"prompt_embeds": torch.randn(1, 8, TEXT_DIM)}, str(folder / "prompt_embeds.safetensors"))
    return folder


def tiny_clip(folder):
    """A 4-token CLIP tokenizer and a one-layer CLIP text model of width 24 (the tiny UNet's text width)."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder.mkdir()
    (folder / "vocab.json").write_text(json.dumps({"<|startoftext|>": 0, "<|endoftext|>": 1, "a</w>": 2, "b</w>": 3}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)
    torch.manual_seed(0)
    encoder = CLIPTextModel(CLIPTextConfig(vocab_size=4, hidden_size=24, intermediate_size=32, num_hidden_layers=1,
                                           num_attention_heads=2, max_position_embeddings=77, bos_token_id=0,
                                           eos_token_id=1, pad_token_id=1)).eval()
    return encoder, tokenizer


# ------------------------------------------------------------------------------------------- inputs
def densepose_video(frames: int, height: int = 64, width: int = 64, *, start: int = 0) -> np.ndarray:
    """(frames, H, W, 3) uint8: a DensePose-coloured figure (torso, head, an arm) sliding sideways; frame i of
    the motion is the same whatever ``start`` the clip begins at."""
    out = []
    for i in range(start, start + frames):
        parts = np.zeros((height, width), dtype=np.int64)
        x = 4 + (3 * i) % max(1, width - 24)
        parts[height // 4: 3 * height // 4, x: x + 12] = 2
        parts[height // 8: height // 4, x + 3: x + 9] = 23
        parts[height // 3: height // 2, x + 12: x + 18] = 16
        out.append(render_parts(parts))
    return np.stack(out)


def reference_image(height: int = 64, width: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    img = np.stack([x * 255 // max(1, width - 1), y * 255 // max(1, height - 1), np.full_like(x, 128)], -1)
    img[height // 4: 3 * height // 4, width // 3: 2 * width // 3] = rng.integers(0, 255, 3)
    return img.astype(np.uint8)


class MovingDensePose:
    """:func:`densepose_video`'s figure rendered frame by frame on demand, so a long control video is never
    held in memory (``len()`` and indexing by int or list of ints, as the pipeline expects)."""

    def __init__(self, num_frames: int, height: int = 64, width: int = 64):
        self.num_frames, self.height, self.width = num_frames, height, width

    def __len__(self) -> int:
        return self.num_frames

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            return densepose_video(1, self.height, self.width, start=int(index))[0]
        return np.stack([self[int(i)] for i in index])
