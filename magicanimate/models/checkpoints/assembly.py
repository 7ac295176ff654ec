"""The one assembler of MagicAnimate's three trained networks: denoiser (3D UNet), appearance encoder and
DensePose ControlNet, from whatever sources a run names. Inference (``MagicAnimatePipeline.from_original``),
training (``magicanimate.training.builder``) and :func:`load_magicanimate` all build them here.

A network without a source is initialised from the base UNet (Stable Diffusion 1.5's): the denoiser is it
inflated with fresh motion modules, the appearance encoder a copy of it, the ControlNet its encoder with
zero convolutions.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import torch
from diffusers import ControlNetModel

from magicanimate.errors import WeightsError
from magicanimate.models.appearance_encoder import AppearanceEncoderModel
from magicanimate.models.checkpoints.loaders import (
    is_whole_unet_file,
    load_appearance_encoder,
    load_controlnet,
    load_motion_modules,
    load_sd15_unet2d,
    load_unet3d_folder,
    load_whole_unet3d,
)
from magicanimate.models.controlnet import build_densepose_controlnet
from magicanimate.models.state_dicts import MOTION_KEY, move_model
from magicanimate.models.unet3d import UNet3DMotionModel

logger = logging.getLogger(__name__)


@dataclass
class MagicAnimateModels:
    """The three trained networks of MagicAnimate."""

    unet: UNet3DMotionModel
    appearance_encoder: AppearanceEncoderModel
    controlnet: ControlNetModel


@dataclass
class NetworkSources:
    """Where each network comes from.

    base_unet: a Stable Diffusion 1.5 folder or its ``unet/`` (a diffusers ``UNet2DConditionModel``).
    unet: one of our 3D UNet folders to start from instead of the base UNet (its motion modules are added
        fresh or dropped when ``motion_kwargs["use_motion_module"]`` asks for the other kind).
    motion_module: a motion-module file (motion-only, or the whole 3D UNet: then its spatial weights win).
    motion_kwargs: motion-module arguments of a denoiser built from the base UNet (see
        :meth:`UNet3DMotionModel.from_unet2d`).
    appearance_encoder, controlnet: folders; None = initialised from the base UNet.
    controlnet_embedding_channels: conditioning-embedding widths of a new ControlNet.
    """

    base_unet: Path
    unet: Optional[Path] = None
    motion_module: Optional[Path] = None
    motion_kwargs: dict = field(default_factory=dict)
    appearance_encoder: Optional[Path] = None
    controlnet: Optional[Path] = None
    controlnet_embedding_channels: Sequence[int] = (16, 32, 96, 256)


def assemble_networks(sources: NetworkSources, *, torch_dtype: Optional[torch.dtype] = None,
                      device: Optional[str | torch.device] = None) -> MagicAnimateModels:
    """Build the three networks ``sources`` describes; every file loads strictly, each tensor straight into
    ``torch_dtype`` on ``device``. A network with its own file never reads the base UNet's weights; when the
    motion file holds the whole 3D UNet, only the base UNet's config is read."""
    base = _Lazy(lambda: load_sd15_unet2d(sources.base_unet, device=device))
    unet = _denoiser(sources, base, torch_dtype, device)
    start = time.perf_counter()
    encoder = (load_appearance_encoder(sources.appearance_encoder, torch_dtype=torch_dtype, device=device)
               if sources.appearance_encoder else AppearanceEncoderModel.from_unet2d(base()))
    controlnet = (load_controlnet(sources.controlnet, torch_dtype=torch_dtype, device=device) if sources.controlnet
                  else build_densepose_controlnet(base(), conditioning_embedding_out_channels=tuple(
                      sources.controlnet_embedding_channels)))
    if controlnet.config.conditioning_channels != 3:
        raise WeightsError(f"{sources.controlnet}: the ControlNet takes {controlnet.config.conditioning_channels} "
                           "conditioning channels; the DensePose ControlNet takes 3 (RGB)")
    for model in (unet, encoder, controlnet):
        move_model(model, torch_dtype, device)
    logger.info("appearance encoder and ControlNet ready in %.1f s", time.perf_counter() - start)
    return MagicAnimateModels(unet, encoder, controlnet)


def _denoiser(sources: NetworkSources, base, torch_dtype, device) -> UNet3DMotionModel:
    start = time.perf_counter()
    motion_kwargs = dict(sources.motion_kwargs)
    if sources.unet is None and sources.motion_module is not None and \
            motion_kwargs.get("use_motion_module", True) and is_whole_unet_file(sources.motion_module):
        unet, report = load_whole_unet3d(sources.base_unet, sources.motion_module, motion_kwargs,
                                         torch_dtype=torch_dtype, device=device)
    else:
        if sources.unet is not None:
            unet = _adapt_motion_modules(load_unet3d_folder(sources.unet, device=device), sources.unet,
                                         motion_kwargs)
        else:
            unet = UNet3DMotionModel.from_unet2d(base(), **motion_kwargs)
        report = load_motion_modules(unet, sources.motion_module) if sources.motion_module is not None else None
    if report is not None:
        logger.info("motion modules: %s (%s, %d tensors)", report.path, report.kind, report.num_tensors)
    logger.info("denoiser ready in %.1f s", time.perf_counter() - start)
    return unet


class _Lazy:
    """The base UNet is read at most once, and only when a network is initialised from it."""

    def __init__(self, load):
        self._load, self._value = load, None

    def __call__(self):
        if self._value is None:
            self._value = self._load()
        return self._value


def _adapt_motion_modules(loaded: UNet3DMotionModel, folder: Path, motion_kwargs: dict) -> UNet3DMotionModel:
    """``loaded`` with fresh motion modules added (or its own dropped) when the run asks for the other kind,
    keeping its spatial weights (e.g. stage 2 after a stage 1 that trained the spatial UNet)."""
    want = bool(motion_kwargs.get("use_motion_module", True))
    extra = {k: v for k, v in motion_kwargs.items() if k != "use_motion_module"}
    if bool(loaded.config.use_motion_module) == want and not extra:
        return loaded
    config = {k: v for k, v in loaded.config.items() if not k.startswith("_")}
    config.update(use_motion_module=want, **extra)
    unet = UNet3DMotionModel.from_config(config)
    if bool(loaded.config.use_motion_module) == want:
        unet.load_state_dict(loaded.state_dict(), strict=True)
    else:
        spatial = {k: v for k, v in loaded.state_dict().items() if MOTION_KEY not in k}
        unet.load_spatial_state_dict(spatial, source=str(folder))
        logger.info("%s: %s motion modules; spatial weights kept", folder,
                    "added fresh" if want else "dropped the")
    return unet


def temporal_attention_file(magicanimate_root: Path) -> Path:
    """The released whole-UNet file of a MagicAnimate folder; its safetensors conversion is preferred."""
    folder = Path(magicanimate_root) / "temporal_attention"
    for name in ("temporal_attention.safetensors", "temporal_attention.ckpt"):
        if (folder / name).is_file():
            return folder / name
    raise WeightsError(f"{folder}: neither temporal_attention.safetensors nor temporal_attention.ckpt found")


def load_magicanimate(sd15_path: str | Path, magicanimate_path: str | Path, *,
                      motion_module_path: str | Path | None = None, torch_dtype: torch.dtype | None = None,
                      device: str | torch.device | None = None) -> MagicAnimateModels:
    """Load the released model: SD1.5 folder + MagicAnimate folder (see docs/inference.md, "Weights").

    The UNet comes from ``temporal_attention/temporal_attention.ckpt`` (or ``motion_module_path``; a
    ``.safetensors`` made by ``scripts/convert_checkpoints.py`` is preferred when present).
    """
    root = Path(magicanimate_path)
    return assemble_networks(NetworkSources(
        base_unet=Path(sd15_path), motion_module=Path(motion_module_path or temporal_attention_file(root)),
        appearance_encoder=root / "appearance_encoder", controlnet=root / "densepose_controlnet"),
        torch_dtype=torch_dtype, device=device)
