"""Strict loading of a saved MagicAnimatePipeline folder, and checks that a weights folder is complete.

diffusers' own ``from_pretrained`` is not strict (missing keys only warn and stay uninitialised), so each
model component is built from its config and its state dict is loaded here with every missing or
unexpected key reported by name.
"""

from __future__ import annotations

import importlib
import json
import logging
from pathlib import Path
from typing import Optional

import torch

from magicanimate.errors import WeightsError
from magicanimate.models.pretrained import load_model_folder
from magicanimate.models.weight_files import WEIGHT_NAMES as WEIGHT_FILES

logger = logging.getLogger(__name__)

MODEL_COMPONENTS = ("vae", "unet", "appearance_encoder", "controlnet")
PIPELINE_LAYOUT = ("model_index.json, prompt_embeds.safetensors (or text_encoder/ + tokenizer/), "
                   "{vae,unet,appearance_encoder,controlnet}/config.json + diffusion_pytorch_model.safetensors, "
                   "scheduler/scheduler_config.json")


def _weight_file(folder: Path) -> Optional[Path]:
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    return None


def load_model_strict(cls, folder: Path, dtype: Optional[torch.dtype] = None):
    """``cls`` from ``folder`` through the project's one strict loader, in eval mode."""
    return load_model_folder(cls, folder, torch_dtype=dtype).eval()


def missing_pipeline_files(folder: Path) -> list[str]:
    """Files a saved pipeline folder lacks (empty when complete)."""
    folder = Path(folder)
    missing = []
    if not (folder / "model_index.json").is_file():
        return ["model_index.json"]
    for name in MODEL_COMPONENTS:
        if not (folder / name / "config.json").is_file():
            missing.append(f"{name}/config.json")
        if _weight_file(folder / name) is None:
            missing.append(f"{name}/{WEIGHT_FILES[0]}")
    if not (folder / "scheduler" / "scheduler_config.json").is_file():
        missing.append("scheduler/scheduler_config.json")
    has_text = (folder / "text_encoder").is_dir() and (folder / "tokenizer").is_dir()
    if not (folder / "prompt_embeds.safetensors").is_file() and not has_text:
        missing.append("prompt_embeds.safetensors (or text_encoder/ and tokenizer/)")
    return missing


def _class_from_index(entry, name: str, folder: Path):
    library, class_name = entry
    try:
        return getattr(importlib.import_module(library), class_name)
    except (ImportError, AttributeError) as exc:
        raise WeightsError(f"{folder / 'model_index.json'}: component {name!r} names {library}.{class_name}, "
                           f"which cannot be imported ({exc})") from None


def load_pipeline_folder(pipeline_cls, folder, *, torch_dtype: Optional[torch.dtype] = None,
                         load_text_encoder: Optional[bool] = None):
    from safetensors.torch import load_file

    folder = Path(folder)
    missing = missing_pipeline_files(folder)
    if missing:
        raise WeightsError(f"{folder}: incomplete pipeline folder, missing: {', '.join(missing)}. "
                           f"a saved pipeline folder holds {PIPELINE_LAYOUT}")
    index = json.loads((folder / "model_index.json").read_text())
    parts = {}
    for name in MODEL_COMPONENTS:
        parts[name] = load_model_strict(_class_from_index(index[name], name, folder), folder / name, torch_dtype)
    sched_cls = _class_from_index(index["scheduler"], "scheduler", folder)
    parts["scheduler"] = sched_cls.from_pretrained(str(folder / "scheduler"))
    embeds_file = folder / "prompt_embeds.safetensors"
    embeds = load_file(str(embeds_file))["prompt_embeds"] if embeds_file.is_file() else None
    want_text = load_text_encoder if load_text_encoder is not None else embeds is None
    if want_text and index.get("text_encoder", [None])[0] is not None:
        te_cls = _class_from_index(index["text_encoder"], "text_encoder", folder)
        tok_cls = _class_from_index(index["tokenizer"], "tokenizer", folder)
        parts["text_encoder"] = te_cls.from_pretrained(str(folder / "text_encoder"), torch_dtype=torch_dtype)
        parts["tokenizer"] = tok_cls.from_pretrained(str(folder / "tokenizer"))
    return pipeline_cls(**parts, prompt_embeds=embeds)


def load_original_components(weights, *, load_text_encoder: Optional[bool] = None,
                             torch_dtype: Optional[torch.dtype] = None) -> dict:
    """The pipeline's components from the original release's layout (a WeightsSpec or a WeightsConfig):
    the three networks from the one assembler, the VAE, the scheduler (with ``inference.yaml``'s noise
    schedule), and CLIP unless a saved empty-prompt embedding is given."""
    from magicanimate.models.checkpoints import (NetworkSources, assemble_networks, load_vae,
                                                 motion_kwargs_from_original, read_inference_yaml)
    from magicanimate.models.checkpoints.loaders import unet_folder
    from magicanimate.models.weight_files import clean_config, read_config
    from magicanimate.pipelines.scheduling import make_scheduler
    from magicanimate.pipelines.weights import WeightsSpec, resolve_weights

    spec = weights if isinstance(weights, WeightsSpec) else resolve_weights(weights)
    unet_kwargs, scheduler_overrides = read_inference_yaml(spec.inference_config)
    base_unet = unet_folder(spec.unet or spec.stable_diffusion / "unet")
    motion_kwargs = motion_kwargs_from_original(clean_config(read_config(base_unet)), unet_kwargs)
    nets = assemble_networks(NetworkSources(base_unet=base_unet, motion_module=spec.motion_module,
                                            motion_kwargs=motion_kwargs, appearance_encoder=spec.appearance_encoder,
                                            controlnet=spec.controlnet), torch_dtype=torch_dtype)
    parts = dict(unet=nets.unet, appearance_encoder=nets.appearance_encoder, controlnet=nets.controlnet,
                 vae=load_vae(spec.vae, torch_dtype=torch_dtype),
                 scheduler=make_scheduler("DDIMScheduler", scheduler_overrides),
                 prompt_embeds=_read_prompt_embeds(spec.prompt_embeds))
    if load_text_encoder or (load_text_encoder is None and parts["prompt_embeds"] is None):
        from transformers import CLIPTextModel, CLIPTokenizer

        parts["text_encoder"] = CLIPTextModel.from_pretrained(str(spec.stable_diffusion / "text_encoder"))
        parts["tokenizer"] = CLIPTokenizer.from_pretrained(str(spec.stable_diffusion / "tokenizer"))
    return parts


def _read_prompt_embeds(path: Optional[Path]):
    if path is None:
        return None
    from safetensors.torch import load_file

    try:
        return load_file(str(path))["prompt_embeds"]
    except Exception as exc:
        raise WeightsError(f"{path}: expected a safetensors file with a (1, L, D) tensor 'prompt_embeds' "
                           f"({exc})") from None
