"""Loaders of each released file and folder, strictly (every missing or unexpected key is named).

* a Stable Diffusion 1.5 diffusers folder (``unet/`` with ``diffusion_pytorch_model.{safetensors,bin}``);
* motion-module files: AnimateDiff's motion-only ``mm_sd_v15.ckpt`` / ``.safetensors`` (560 tensors) or the
  official ``temporal_attention.ckpt``, which holds the whole 3D UNet (686 spatial + 560 motion tensors);
* the official ``appearance_encoder/`` and ``densepose_controlnet/`` folders, VAE folders;
* 3D UNet folders: ours, or one in the original's config and key naming.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel

from magicanimate.errors import ConfigError, WeightsError
from magicanimate.models.appearance_encoder import AppearanceEncoderModel
from magicanimate.models.checkpoints.configs import is_original_unet3d_config, unet3d_config_from_original
from magicanimate.models.checkpoints.keys import motion_key_to_original, strip_prefixes, \
    unet3d_state_dict_from_original
from magicanimate.models.pretrained import load_model_folder
from magicanimate.models.pretrained import build_empty
from magicanimate.models.state_dicts import (MOTION_KEY, check_keys, describe_state_dict, expected_shapes,
                                             load_strict, move_model)
from magicanimate.models.unet3d import UNet3DMotionModel, unet3d_config_from_unet2d
from magicanimate.models.weight_files import clean_config, find_weight_file, materialize, read_config, read_state_dict

logger = logging.getLogger(__name__)


def unet_folder(path: str | Path) -> Path:
    """``path/unet`` for a whole Stable Diffusion folder, else ``path`` itself."""
    path = Path(path)
    return path / "unet" if (path / "unet").is_dir() else path


def load_sd15_unet2d(path: str | Path, *, torch_dtype: torch.dtype | None = None,
                     device: str | torch.device | None = None) -> UNet2DConditionModel:
    """A diffusers UNet2DConditionModel from a SD1.5 folder (or its ``unet/`` subfolder), strictly."""
    return load_model_folder(UNet2DConditionModel, unet_folder(path), torch_dtype=torch_dtype, device=device)


@dataclass
class MotionLoadReport:
    """What :func:`load_motion_modules` loaded.

    kind: "motion" (motion modules only) or "full" (whole 3D UNet: spatial weights replaced too).
    spatial_max_abs_diff: for "full", max |file - previous spatial weights| (e.g. vs SD1.5); else None.
    """

    path: str
    kind: str
    num_tensors: int
    spatial_max_abs_diff: float | None = None


def load_motion_modules(unet: UNet3DMotionModel, path: str | Path, *, torch_dtype: torch.dtype | None = None,
                        device: str | torch.device | None = None) -> MotionLoadReport:
    """Load a motion-module file into ``unet``, strictly.

    Accepts AnimateDiff's motion-only layout (mm_sd_v15.ckpt/.safetensors) and the official
    ``temporal_attention.ckpt`` (whole 3D UNet; its spatial weights replace the current ones, and how far they
    are from those is logged). Pickles are read with ``weights_only=True``; ``{"state_dict": ...}`` wrappers and
    ``module.``/``unet.`` prefixes are removed. Anything else raises WeightsError naming the keys. A UNet built
    empty (on ``meta``) is filled from a whole-UNet file tensor by tensor, in ``torch_dtype`` on ``device``.
    """
    if not unet.config.use_motion_module:
        raise ConfigError("this UNet was built with use_motion_module=False; build it with motion modules to load "
                          f"{path}")
    raw = strip_prefixes(read_state_dict(path))
    n_motion = sum(MOTION_KEY in k for k in raw)
    if n_motion == 0:
        raise WeightsError(f"{path}: expected motion modules (AnimateDiff mm_sd_v15 layout or MagicAnimate's "
                           f"temporal_attention.ckpt, keys containing '{MOTION_KEY}'), but this looks like "
                           f"{describe_state_dict(raw)} ({len(raw)} tensors, none of them motion-module weights)")
    # Checked in the file's own (original) naming so errors name keys as they appear in the file.
    expected_orig = {name: shape for key, shape in expected_shapes(unet).items()
                     for name in motion_key_to_original(key)}
    if n_motion == len(raw):
        expected_orig = {k: v for k, v in expected_orig.items() if MOTION_KEY in k}
        check_keys(expected_orig, raw, source=str(path), what="the motion modules of this 3D UNet "
                   "(AnimateDiff mm_sd_v15 layout)")
        motion = unet3d_state_dict_from_original(raw, source=str(path))
        unet.load_state_dict({k: materialize(v) for k, v in motion.items()}, strict=False)
        return MotionLoadReport(str(path), "motion", len(raw))
    check_keys(expected_orig, raw, source=str(path), what="the 3D UNet (full temporal_attention.ckpt layout)")
    sd = unet3d_state_dict_from_original(raw, source=str(path))
    empty = any(t.is_meta for t in unet.state_dict().values())
    diff = None if empty else _spatial_difference(unet, sd)
    load_strict(unet, sd, source=str(path), what="the 3D UNet", torch_dtype=torch_dtype, device=device)
    if diff is not None:
        logger.info("%s: whole 3D UNet loaded; its spatial weights differ from the previous (e.g. SD1.5) ones by "
                    "max |delta| = %.3g", path, diff)
    return MotionLoadReport(str(path), "full", len(raw), diff)


def is_whole_unet_file(path: str | Path) -> bool:
    """Whether a motion-module file holds the whole 3D UNet (names only: no tensor is read)."""
    keys = list(strip_prefixes(read_state_dict(path)))
    return any(MOTION_KEY in k for k in keys) and not all(MOTION_KEY in k for k in keys)


def load_whole_unet3d(base_unet: str | Path, path: str | Path, motion_kwargs: dict, *,
                      torch_dtype: torch.dtype | None = None, device: str | torch.device | None = None):
    """The 3D UNet of a whole-UNet file (``temporal_attention.ckpt``), built from the base UNet's *config*
    only (its weights would all be replaced), filled tensor by tensor."""
    config = unet3d_config_from_unet2d(clean_config(read_config(unet_folder(base_unet))))
    config.update(motion_kwargs)
    unet = build_empty(UNet3DMotionModel, config)
    report = load_motion_modules(unet, path, torch_dtype=torch_dtype, device=device)
    return unet, report


def _spatial_difference(unet: torch.nn.Module, state_dict: dict) -> float:
    current = unet.state_dict()
    diff = 0.0
    with torch.no_grad():
        for k, v in state_dict.items():
            if MOTION_KEY not in k:
                diff = max(diff, float((materialize(v).float() - current[k].float().cpu()).abs().max()))
    return diff


def load_unet3d(sd15_path: str | Path, motion_module_path: str | Path | None = None, *,
                torch_dtype: torch.dtype | None = None, device: str | torch.device | None = None,
                **motion_kwargs) -> UNet3DMotionModel:
    """3D UNet from a SD1.5 folder, optionally with a motion-module file (see :func:`load_motion_modules`).

    motion_kwargs go to :meth:`UNet3DMotionModel.from_unet2d` (e.g. ``use_motion_module=False``). With a
    whole-UNet file, only the SD1.5 UNet's config is read.
    """
    if motion_module_path is not None and motion_kwargs.get("use_motion_module", True) and \
            is_whole_unet_file(motion_module_path):
        return load_whole_unet3d(sd15_path, motion_module_path, motion_kwargs, torch_dtype=torch_dtype,
                                 device=device)[0]
    unet = UNet3DMotionModel.from_unet2d(load_sd15_unet2d(sd15_path), **motion_kwargs)
    if motion_module_path is not None:
        load_motion_modules(unet, motion_module_path)
    return move_model(unet, torch_dtype, device)


def load_unet3d_folder(path: str | Path, *, torch_dtype: torch.dtype | None = None,
                       device: str | torch.device | None = None) -> UNet3DMotionModel:
    """A 3D UNet folder: ours, or one with the original's config and (AnimateDiff) key naming."""
    folder = Path(path)
    config = clean_config(read_config(folder))
    if not is_original_unet3d_config(config):
        return UNet3DMotionModel.from_pretrained(folder, torch_dtype=torch_dtype, device=device)
    unet = build_empty(UNet3DMotionModel, unet3d_config_from_original(config))
    weights_file = find_weight_file(folder)
    raw = read_state_dict(weights_file)
    sd = unet3d_state_dict_from_original(strip_prefixes(raw), source=str(weights_file))
    load_strict(unet, sd, source=str(weights_file), what=f"UNet3DMotionModel ({describe_state_dict(raw)} given)",
                torch_dtype=torch_dtype, device=device)
    return unet


def load_appearance_encoder(path: str | Path, *, torch_dtype=None, device=None) -> AppearanceEncoderModel:
    """The official ``appearance_encoder/`` folder (or ours), strictly."""
    return load_model_folder(AppearanceEncoderModel, path, torch_dtype=torch_dtype, device=device)


def load_controlnet(path: str | Path, *, torch_dtype=None, device=None) -> ControlNetModel:
    """A diffusers ControlNet folder (the official ``densepose_controlnet/``), strictly."""
    return load_model_folder(ControlNetModel, path, torch_dtype=torch_dtype, device=device)


def load_vae(path: str | Path, *, torch_dtype=None, device=None) -> AutoencoderKL:
    """A diffusers VAE folder (SD1.5's ``vae/``, ``sd-vae-ft-mse``, ...), strictly."""
    return load_model_folder(AutoencoderKL, path, torch_dtype=torch_dtype, device=device)
