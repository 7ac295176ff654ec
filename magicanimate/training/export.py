"""Write trained networks where inference finds them.

``<export>/pipeline/``: a complete :class:`MagicAnimatePipeline` folder (our safetensors format, with the
empty-prompt embedding and the training noise schedule): ``scripts/animate.py --pipeline <export>/pipeline``.

``<export>/MagicAnimate/``: the official release's layout, ``appearance_encoder/``, ``densepose_controlnet/``
and ``temporal_attention/temporal_attention.ckpt`` (the whole 3D UNet with the original key names), used
together with a Stable Diffusion 1.5 folder (``scripts/animate.py --weights``-style layouts).

Both are written to temporary folders and renamed into place, so an interrupted export leaves nothing
half-written.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import torch

from magicanimate.utils.files import atomic_path

logger = logging.getLogger(__name__)


def _fp32_copy(module: torch.nn.Module) -> torch.nn.Module:
    # Frozen modules may run in fp16/bf16 during training; exported weights are float32.
    out = copy.deepcopy(module).to(device="cpu").eval()
    if any(p.dtype != torch.float32 for p in out.parameters()):
        out.to(dtype=torch.float32)
    return out


def export_official(unet, appearance_encoder, controlnet, folder: Path) -> Path:
    from magicanimate.models.checkpoints import unet3d_state_dict_to_original

    with atomic_path(folder) as tmp:
        tmp.mkdir(parents=True)
        appearance_encoder.save_pretrained(str(tmp / "appearance_encoder"), safe_serialization=True)
        controlnet.save_pretrained(str(tmp / "densepose_controlnet"), safe_serialization=True)
        (tmp / "temporal_attention").mkdir()
        state = {k: v.contiguous() for k, v in unet3d_state_dict_to_original(unet.state_dict()).items()}
        torch.save(state, tmp / "temporal_attention" / "temporal_attention.ckpt")
    return folder


def export_pipeline(vae, unet, appearance_encoder, controlnet, scheduler, prompt_embeds, folder: Path,
                    settings: dict | None = None) -> Path:
    """A saved pipeline folder; ``settings`` (inference defaults) are stored with it as settings.yaml."""
    from magicanimate.pipelines.pipeline_magicanimate import MagicAnimatePipeline
    from magicanimate.pipelines.settings import write_model_settings

    pipe = MagicAnimatePipeline(vae=vae, unet=unet, appearance_encoder=appearance_encoder, controlnet=controlnet,
                                scheduler=scheduler, prompt_embeds=prompt_embeds.detach().float().cpu())
    with atomic_path(folder) as tmp:
        pipe.save_pretrained(str(tmp))
        if settings:
            write_model_settings(tmp, settings)
    return folder


def trained_settings(cfg) -> dict:
    """The inference defaults a trained model carries: the validation's sampling settings (what the run was
    watched with) and the training size; windows as long as the clips stage 2 trained on."""
    from magicanimate.pipelines.config import SAMPLING_KEYS
    from magicanimate.pipelines.settings import settings_view

    settings = settings_view(cfg.validation, SAMPLING_KEYS)
    settings["size"] = max(int(cfg.data.height), int(cfg.data.width))
    if cfg.data.sample == "video" and cfg.model.use_motion_module:
        settings["context_frames"] = int(cfg.data.num_frames)
        settings["context_overlap"] = min(int(settings["context_overlap"]), int(cfg.data.num_frames) - 1)
    if cfg.data.height != cfg.data.width:
        settings.update(width=int(cfg.data.width), height=int(cfg.data.height))
    return settings


def export_trained(module, cfg, export_dir: Path) -> Path:
    """Export the networks of a training module (see the module docstring for the layout)."""
    from magicanimate.training.builder import make_noise_scheduler

    export_dir = Path(export_dir)
    export_dir.mkdir(parents=True, exist_ok=True)
    vae, unet = _fp32_copy(module.vae), _fp32_copy(module.unet)
    encoder, controlnet = _fp32_copy(module.appearance_encoder), _fp32_copy(module.controlnet)
    export_pipeline(vae, unet, encoder, controlnet, make_noise_scheduler(cfg), module.text_embedding,
                    export_dir / "pipeline", settings=trained_settings(cfg))
    if unet.config.use_motion_module:
        export_official(unet, encoder, controlnet, export_dir / "MagicAnimate")
    else:
        # The official layout has no UNet without motion modules: write the two trained networks only.
        with atomic_path(export_dir / "MagicAnimate") as tmp:
            tmp.mkdir(parents=True)
            encoder.save_pretrained(str(tmp / "appearance_encoder"), safe_serialization=True)
            controlnet.save_pretrained(str(tmp / "densepose_controlnet"), safe_serialization=True)
    logger.info("exported to %s (pipeline/ and MagicAnimate/)", export_dir)
    return export_dir
