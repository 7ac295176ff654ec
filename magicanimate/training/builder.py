"""Build the networks a training config names and wrap them in the training module."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import torch
from safetensors.torch import load_file

from magicanimate.errors import ConfigError, WeightsError

logger = logging.getLogger(__name__)

PROMPT_EMBEDS_KEY = "prompt_embeds"


def make_noise_scheduler(cfg, name: str = "DDIMScheduler"):
    """A scheduler of class ``name`` (inference's DDIM by default) with the config's noise schedule: training
    noises with it, validation samples with it, and the export saves it (docs/architecture.md, "Sampler")."""
    from magicanimate.pipelines.scheduling import make_scheduler

    ns = cfg.noise_scheduler
    return make_scheduler(name, {
        "num_train_timesteps": ns.num_train_timesteps, "beta_start": ns.beta_start, "beta_end": ns.beta_end,
        "beta_schedule": ns.beta_schedule, "steps_offset": ns.steps_offset, "clip_sample": ns.clip_sample,
        "set_alpha_to_one": ns.set_alpha_to_one, "prediction_type": cfg.loss.prediction_type,
    })


def load_prompt_embeds(path: Path) -> torch.Tensor:
    if not path.is_file():
        raise WeightsError(f"{path}: empty-prompt embedding file not found")
    state = load_file(str(path))
    if PROMPT_EMBEDS_KEY not in state:
        raise WeightsError(f"{path}: no tensor named {PROMPT_EMBEDS_KEY!r} (found {sorted(state)})")
    emb = state[PROMPT_EMBEDS_KEY]
    if emb.ndim == 2:
        emb = emb[None]
    if emb.ndim != 3 or emb.shape[0] != 1:
        raise WeightsError(f"{path}: {PROMPT_EMBEDS_KEY} must have shape (1, L, D), got {tuple(emb.shape)}")
    return emb.float()


def empty_prompt_embedding(base_model: Path, embeds_file: Optional[str]) -> torch.Tensor:
    """(1, L, D) CLIP embedding of the empty prompt: from a file, or computed once with the base model's CLIP."""
    if embeds_file:
        return load_prompt_embeds(Path(embeds_file))
    te_dir, tok_dir = base_model / "text_encoder", base_model / "tokenizer"
    if not (te_dir.is_dir() and tok_dir.is_dir()):
        raise WeightsError(f"{base_model}: no text_encoder/ and tokenizer/ to embed the empty prompt; give "
                           "model.prompt_embeds (a safetensors file with a (1, 77, D) 'prompt_embeds' tensor)")
    from transformers import CLIPTextModel, CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(str(tok_dir))
    text_encoder = CLIPTextModel.from_pretrained(str(te_dir))
    ids = tokenizer([""], padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids
    with torch.no_grad():
        return text_encoder(ids)[0].float()


def build_networks(cfg):
    """(vae, unet3d, appearance_encoder, controlnet, prompt_embeds) as ``cfg.model`` describes. Every
    weight file loads strictly (missing/unexpected keys are named)."""
    from magicanimate.models.checkpoints import NetworkSources, assemble_networks, load_vae

    m = cfg.model
    base = Path(m.base_model)
    if not (base / "unet").is_dir():
        raise WeightsError(f"{base}: model.base_model must be a Stable Diffusion folder in diffusers layout "
                           "(unet/, vae/, text_encoder/, tokenizer/)")
    vae_dir = Path(m.vae) if m.vae else base / "vae"
    if not vae_dir.is_dir():
        raise WeightsError(f"{vae_dir}: VAE folder not found")
    if m.motion_module and not m.use_motion_module:
        raise ConfigError("model.motion_module is set but model.use_motion_module=false")
    vae = load_vae(vae_dir)
    nets = assemble_networks(NetworkSources(
        base_unet=base / "unet", unet=Path(m.unet) if m.unet else None,
        motion_module=Path(m.motion_module) if m.motion_module else None,
        motion_kwargs=dict(use_motion_module=m.use_motion_module, **dict(m.motion_module_kwargs)),
        appearance_encoder=Path(m.appearance_encoder) if m.appearance_encoder else None,
        controlnet=Path(m.controlnet) if m.controlnet else None,
        controlnet_embedding_channels=tuple(m.controlnet_embedding_channels)))
    prompt_embeds = empty_prompt_embedding(base, m.prompt_embeds)
    if prompt_embeds.shape[-1] != nets.unet.config.cross_attention_dim:
        raise WeightsError(f"empty-prompt embedding width {prompt_embeds.shape[-1]} does not match the UNet's "
                           f"cross_attention_dim {nets.unet.config.cross_attention_dim}")
    return vae, nets.unet, nets.appearance_encoder, nets.controlnet, prompt_embeds


def build_training_module(cfg):
    from magicanimate.training.module import AnimateTrainingModule

    vae, unet, encoder, controlnet, prompt_embeds = build_networks(cfg)
    vae.requires_grad_(False)
    return AnimateTrainingModule(vae, unet, encoder, controlnet, make_noise_scheduler(cfg), prompt_embeds,
                                 prediction_type=cfg.loss.prediction_type, snr_gamma=cfg.loss.snr_gamma,
                                 ref_drop=cfg.loss.ref_drop)
