"""Where the weights are, and whether they are all there, checked before anything is loaded.

Two layouts are accepted:

* a pipeline folder written by ``MagicAnimatePipeline.save_pretrained`` (has ``model_index.json``);
* the original release's layout::

    <root>/stable-diffusion-v1-5/{unet,vae,text_encoder,tokenizer}/     (diffusers folders)
    <root>/MagicAnimate/appearance_encoder/{config.json,diffusion_pytorch_model.safetensors}
    <root>/MagicAnimate/densepose_controlnet/{config.json,diffusion_pytorch_model.safetensors}
    <root>/MagicAnimate/temporal_attention/temporal_attention.ckpt

  (each part may also be given by its own path; the text encoder may be replaced by a saved empty-prompt
  embedding, ``prompt_embeds``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from magicanimate.errors import WeightsError
from magicanimate.models.weight_files import check_weight_file, find_weight_file
from magicanimate.pipelines.loading import MODEL_COMPONENTS, PIPELINE_LAYOUT, WEIGHT_FILES, missing_pipeline_files

ORIGINAL_LAYOUT = ("<root>/stable-diffusion-v1-5/{unet,vae}/ (config.json + diffusion_pytorch_model.safetensors "
                   "or .bin) and text_encoder/ + tokenizer/ (or weights.prompt_embeds), "
                   "<root>/MagicAnimate/{appearance_encoder,densepose_controlnet}/ (config.json + "
                   "diffusion_pytorch_model.safetensors), <root>/MagicAnimate/temporal_attention/temporal_attention.ckpt "
                   "(docs/inference.md, \"Weights\")")


@dataclass
class WeightsSpec:
    pipeline: Optional[Path] = None
    stable_diffusion: Optional[Path] = None
    vae: Optional[Path] = None
    unet: Optional[Path] = None
    appearance_encoder: Optional[Path] = None
    controlnet: Optional[Path] = None
    motion_module: Optional[Path] = None
    prompt_embeds: Optional[Path] = None
    inference_config: Optional[Path] = None
    # frame sizes must be divisible by this (VAE stride x UNet downsampling)
    size_multiple: int = 64
    # most frames per window: the motion modules' position-encoding length (None: no motion modules)
    max_context_frames: Optional[int] = 24


def _has_weights(folder: Path) -> bool:
    return any((folder / n).is_file() for n in WEIGHT_FILES + ("model.safetensors", "pytorch_model.bin"))


def _stride(vae_dir: Path, unet_dir: Path) -> int:
    try:
        vae = json.loads((vae_dir / "config.json").read_text())
        unet = json.loads((unet_dir / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise WeightsError(f"cannot read a model config ({exc})") from None
    return 2 ** (len(vae["block_out_channels"]) - 1) * 2 ** (len(unet["block_out_channels"]) - 1)


def _temporal_attention(root: Path) -> Path:
    """A converted temporal_attention.safetensors is preferred to the pickle when both exist."""
    folder = root / "MagicAnimate" / "temporal_attention"
    converted = folder / "temporal_attention.safetensors"
    return converted if converted.is_file() else folder / "temporal_attention.ckpt"


def _path(value) -> Optional[Path]:
    return Path(value) if value else None


def resolve_weights(cfg) -> WeightsSpec:
    """Turn a WeightsConfig into paths and check they are complete and intact (no model is loaded);
    WeightsError lists what is missing."""
    pipeline, root = _path(cfg.pipeline), _path(cfg.root)
    if pipeline is None and root is not None and (root / "model_index.json").is_file():
        pipeline = root
    return _pipeline_spec(pipeline) if pipeline is not None else _original_spec(cfg, root)


def _pipeline_spec(pipeline: Path) -> WeightsSpec:
    missing = missing_pipeline_files(pipeline) if pipeline.is_dir() else ["(the folder itself)"]
    if missing:
        raise WeightsError(f"{pipeline}: incomplete pipeline folder; missing: {', '.join(missing)} (a saved "
                           f"pipeline folder holds {PIPELINE_LAYOUT})")
    for name in MODEL_COMPONENTS:
        check_weight_file(find_weight_file(pipeline / name))
    unet_config = json.loads((pipeline / "unet" / "config.json").read_text())
    max_len = unet_config.get("motion_max_seq_length", 24) if unet_config.get("use_motion_module", True) else None
    return WeightsSpec(pipeline=pipeline, size_multiple=_stride(pipeline / "vae", pipeline / "unet"),
                       max_context_frames=max_len)


def _original_spec(cfg, root: Optional[Path]) -> WeightsSpec:
    p = _path
    spec = WeightsSpec(
        stable_diffusion=p(cfg.stable_diffusion) or (root / "stable-diffusion-v1-5" if root else None),
        appearance_encoder=p(cfg.appearance_encoder) or (root / "MagicAnimate" / "appearance_encoder" if root else None),
        controlnet=p(cfg.controlnet) or (root / "MagicAnimate" / "densepose_controlnet" if root else None),
        motion_module=p(cfg.motion_module) or (_temporal_attention(root) if root else None),
        prompt_embeds=p(cfg.prompt_embeds), inference_config=p(cfg.inference_config), unet=p(cfg.unet))
    if spec.stable_diffusion is None and spec.appearance_encoder is None:
        raise WeightsError("no weights given: set weights.pipeline (a saved pipeline folder) or weights.root "
                           f"(the original layout: {ORIGINAL_LAYOUT})")
    sd = spec.stable_diffusion
    spec.vae = p(cfg.vae) or (sd / "vae" if sd else None)
    missing = _missing_original_files(spec)
    if missing:
        raise WeightsError(f"incomplete weights; missing: {', '.join(missing)} (expected {ORIGINAL_LAYOUT})")
    for folder in (sd / "unet", spec.vae, spec.appearance_encoder, spec.controlnet, spec.unet):
        if folder is not None:
            check_weight_file(find_weight_file(folder))
    check_weight_file(spec.motion_module)
    spec.size_multiple = _stride(spec.vae, sd / "unet")
    if spec.inference_config is not None:
        spec.max_context_frames = _max_context_frames(spec.inference_config)
    return spec


def _missing_original_files(spec: WeightsSpec) -> list:
    sd, missing = spec.stable_diffusion, []

    def need_model(folder: Optional[Path], what: str):
        if folder is None:
            missing.append(f"{what} (no path given)")
            return
        if not (folder / "config.json").is_file():
            missing.append(str(folder / "config.json"))
        if not _has_weights(folder):
            missing.append(str(folder / WEIGHT_FILES[0]))

    need_model(sd / "unet" if sd else None, "stable-diffusion-v1-5/unet")
    need_model(spec.vae, "vae")
    need_model(spec.appearance_encoder, "appearance_encoder")
    need_model(spec.controlnet, "densepose_controlnet")
    if spec.unet is not None:
        need_model(spec.unet, "unet (pretrained_unet_path)")
    if spec.motion_module is None or not spec.motion_module.is_file():
        missing.append(str(spec.motion_module) if spec.motion_module else "temporal_attention.ckpt (no path given)")
    if spec.prompt_embeds is not None:
        if not spec.prompt_embeds.is_file():
            missing.append(str(spec.prompt_embeds))
    elif sd is None or not ((sd / "text_encoder").is_dir() and (sd / "tokenizer").is_dir()):
        missing.append("stable-diffusion-v1-5/text_encoder and tokenizer (or weights.prompt_embeds)")
    if spec.inference_config is not None and not spec.inference_config.is_file():
        missing.append(str(spec.inference_config))
    return missing


def _max_context_frames(inference_config: Path) -> int:
    from omegaconf import OmegaConf

    try:
        kwargs = OmegaConf.to_container(OmegaConf.load(inference_config)).get("unet_additional_kwargs") or {}
    except Exception as exc:
        raise WeightsError(f"{inference_config}: unreadable inference config ({exc})") from None
    return (kwargs.get("motion_module_kwargs") or {}).get("temporal_position_encoding_max_len", 24)
