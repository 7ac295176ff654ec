"""The demo recipe's own steps: the toy world's base folder and shipping a trained pipeline into ``demo/``.

The rest of the recipe is our ordinary scripts (dataset writer, tiny-VAE trainer, ``scripts/train.py``);
``scripts/make_demo.py`` runs them in order. There is no Stable Diffusion here, so the base folder that
``scripts/train.py`` expects (``unet/``, ``vae/``, an empty-prompt embedding) is made up: a small randomly
initialised ``UNet2DConditionModel`` (trained by the recipe's first stage, docs/architecture.md "The toy world"), the trained tiny
VAE, and a text-free conditioning: an all-zero "empty-prompt" embedding, so no CLIP is ever needed.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from omegaconf import MISSING

from magicanimate.errors import InputError, WeightsError
from magicanimate.utils.files import atomic_path


@dataclass
class BaseUNetConfig:
    """A small SD-layout UNet for 64x64 frames (8x8 latents with the x8 tiny VAE)."""

    block_out_channels: List[int] = field(default_factory=lambda: [32, 64, 64])
    down_block_types: List[str] = field(default_factory=lambda: [
        "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"])
    up_block_types: List[str] = field(default_factory=lambda: [
        "UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"])
    layers_per_block: int = 1
    attention_head_dim: int = 8
    norm_num_groups: int = 16
    cross_attention_dim: int = 32
    # the zero "empty-prompt" embedding is (1, text_tokens, cross_attention_dim)
    text_tokens: int = 1


def build_base_unet(cfg: BaseUNetConfig, sample_size: int, seed: int):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(
        sample_size=sample_size, in_channels=4, out_channels=4, layers_per_block=cfg.layers_per_block,
        block_out_channels=tuple(cfg.block_out_channels), down_block_types=tuple(cfg.down_block_types),
        up_block_types=tuple(cfg.up_block_types), cross_attention_dim=cfg.cross_attention_dim,
        attention_head_dim=cfg.attention_head_dim, norm_num_groups=cfg.norm_num_groups)


def write_base_folder(folder, unet_cfg: BaseUNetConfig, vae_dir, *, latent_size: int, seed: int = 0,
                      unet=None) -> Path:
    """``<folder>/{unet,vae}/`` + ``prompt_embeds.safetensors`` (zeros): what scripts/train.py takes as
    ``model.base_model`` + ``model.prompt_embeds``. ``unet``: a trained UNet2DConditionModel to use instead
    of a fresh one (e.g. after an image-diffusion stage 0)."""
    from safetensors.torch import save_file

    vae_dir = Path(vae_dir)
    if not (vae_dir / "config.json").is_file():
        raise WeightsError(f"{vae_dir}: not a VAE folder (config.json missing); train one with "
                           "scripts/train_demo_vae.py")
    folder = Path(folder)
    with atomic_path(folder) as tmp:
        tmp.mkdir(parents=True)
        if unet is None:
            unet = build_base_unet(unet_cfg, latent_size, seed)
        unet.save_pretrained(str(tmp / "unet"), safe_serialization=True)
        shutil.copytree(vae_dir, tmp / "vae")
        embeds = torch.zeros(1, unet_cfg.text_tokens, unet.config.cross_attention_dim)
        save_file({"prompt_embeds": embeds}, str(tmp / "prompt_embeds.safetensors"))
    return folder


def _read_frames(folder: Path) -> np.ndarray:
    from magicanimate.media import read_video

    return read_video(folder).frames


def ship_demo(pipeline_dir, data_root, demo_dir, *, video_id: str, num_frames: int, fps: float,
              settings: dict) -> Path:
    """Copy a trained pipeline folder to ``<demo_dir>/model`` with ``settings`` as the model's own inference
    defaults (``model/settings.yaml``), and write the sample inputs: ``reference.png`` (the held-out
    identity's first frame) and ``motion.mp4`` (its DensePose video, ``num_frames`` long)."""
    from magicanimate.media import write_image, write_video
    from magicanimate.pipelines.settings import write_model_settings

    pipeline_dir, demo_dir = Path(pipeline_dir), Path(demo_dir)
    if not (pipeline_dir / "model_index.json").is_file():
        raise WeightsError(f"{pipeline_dir}: not a pipeline folder (model_index.json missing)")
    clip = Path(data_root) / video_id
    if not (clip / "images").is_dir() or not (clip / "densepose").is_dir():
        raise InputError(f"{clip}: expected images/ and densepose/ (a synthetic dataset video)")
    images, dense = _read_frames(clip / "images"), _read_frames(clip / "densepose")
    if len(dense) < num_frames:
        raise InputError(f"{clip}: {len(dense)} frames, the demo needs {num_frames}")
    demo_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(demo_dir / "model") as tmp:
        shutil.copytree(pipeline_dir, tmp)
        write_model_settings(tmp, settings)
    write_image(demo_dir / "reference.png", images[0])
    write_video(demo_dir / "motion.mp4", dense[:num_frames], fps)
    (demo_dir / "source.json").write_text(json.dumps(
        {"video_id": video_id, "split": Path(data_root).name, "frames": num_frames}, indent=1) + "\n")
    return demo_dir


# ------------------------------------------------------------------------------------------ recipe config

@dataclass
class RecipeDataConfig:
    size: int = 64
    train: int = 64
    val: int = 4
    test: int = 8
    frames: int = 48
    seed: int = 0


@dataclass
class RecipeVAEConfig:
    config: str = "configs/demo/vae.yaml"
    reuse: Optional[str] = None
    # true: train on the recipe's dataset (<run_dir>/data, as the shipped VAE was); false: on the VAE
    # config's own in-memory frames (many more identities, see configs/demo/vae.yaml)
    train_on_dataset: bool = True
    steps: int = 2800
    max_minutes: float = 20.0
    overrides: List[str] = field(default_factory=list)


@dataclass
class RecipeStageConfig:
    config: str = MISSING
    steps: int = 1000
    # train on the first N train dancers only (data.max_videos; None = all of them)
    videos: Optional[int] = None
    overrides: List[str] = field(default_factory=list)


@dataclass
class RecipeShipConfig:
    demo_dir: str = "demo"
    video_id: str = "test_0000"
    frames: int = 24
    settings: Dict[str, Any] = field(default_factory=dict)


@dataclass
class RecipeConfig:
    run_dir: str = "outputs/demo/run"
    seed: int = 0
    threads: int = 1
    data: RecipeDataConfig = field(default_factory=RecipeDataConfig)
    vae: RecipeVAEConfig = field(default_factory=RecipeVAEConfig)
    base_unet: BaseUNetConfig = field(default_factory=BaseUNetConfig)
    stage1: RecipeStageConfig = field(default_factory=lambda: RecipeStageConfig(config="configs/demo/stage1.yaml"))
    # the decay phase of stage 1 (learning rate to zero from the stage-1 export); steps 0 skips it
    stage1_decay: RecipeStageConfig = field(
        default_factory=lambda: RecipeStageConfig(config="configs/demo/stage1_decay.yaml", steps=0))
    stage2: RecipeStageConfig = field(default_factory=lambda: RecipeStageConfig(config="configs/demo/stage2.yaml"))
    ship: RecipeShipConfig = field(default_factory=RecipeShipConfig)
