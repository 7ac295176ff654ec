"""The one place that maps checkpoint formats onto our models, strictly.

Formats handled:

* Stable Diffusion 1.5 diffusers folders (``unet/`` with ``diffusion_pytorch_model.{safetensors,bin}``) ->
  spatial weights of the 3D UNet, the appearance encoder, and a new ControlNet;
* the official MagicAnimate folders ``appearance_encoder/``, ``densepose_controlnet/`` and
  ``temporal_attention/temporal_attention.ckpt`` (a torch pickle holding the whole 3D UNet -- 686 spatial +
  560 motion tensors -- possibly wrapped as ``{"state_dict": ...}`` and with ``module.``/``unet.`` prefixes);
* AnimateDiff motion modules (``mm_sd_v15.ckpt`` / ``.safetensors``; 560 motion tensors, same naming);
* our own ``save_pretrained`` folders (config.json + safetensors).

Original (AnimateDiff) motion-module names differ from diffusers': see :func:`motion_key_to_original`.
Every missing or unexpected key raises :class:`~magicanimate.errors.WeightsError` naming it; the only
tolerated difference is the appearance encoder's dead tail (24 tensors of a full SD UNet it does not use).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import torch

from diffusers import ControlNetModel, UNet2DConditionModel

from ..errors import ConfigError, WeightsError
from .appearance_encoder import AppearanceEncoderModel
from .state_dicts import (
    check_keys,
    clean_config,
    expected_shapes,
    find_weight_file,
    load_into,
    read_config,
    read_state_dict,
)
from .unet3d import MOTION_KEY, UNet3DMotionModel, unet3d_config_from_unet2d

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------------------
# Motion-module key names: ours (diffusers AnimateDiffTransformer3D) <-> original (AnimateDiff v1)
# ---------------------------------------------------------------------------------------------------------
_MM = re.compile(r"^(?P<prefix>.*\.motion_modules\.\d+\.)(?P<rest>.+)$")
_OURS_TO_ORIG_BLOCK = [
    (re.compile(r"^transformer_blocks\.(\d+)\.attn1\.(.+)$"), r"transformer_blocks.\1.attention_blocks.0.\2"),
    (re.compile(r"^transformer_blocks\.(\d+)\.attn2\.(.+)$"), r"transformer_blocks.\1.attention_blocks.1.\2"),
    (re.compile(r"^transformer_blocks\.(\d+)\.norm1\.(.+)$"), r"transformer_blocks.\1.norms.0.\2"),
    (re.compile(r"^transformer_blocks\.(\d+)\.norm2\.(.+)$"), r"transformer_blocks.\1.norms.1.\2"),
    (re.compile(r"^transformer_blocks\.(\d+)\.norm3\.(.+)$"), r"transformer_blocks.\1.ff_norm.\2"),
    (re.compile(r"^transformer_blocks\.(\d+)\.ff\.(.+)$"), r"transformer_blocks.\1.ff.\2"),
    (re.compile(r"^(norm|proj_in|proj_out)\.(.+)$"), r"\1.\2"),
]
_ORIG_TO_OURS_BLOCK = [
    (re.compile(r"^transformer_blocks\.(\d+)\.attention_blocks\.(\d+)\.pos_encoder\.pe$"), None),  # handled apart
    (re.compile(r"^transformer_blocks\.(\d+)\.attention_blocks\.0\.(.+)$"), r"transformer_blocks.\1.attn1.\2"),
    (re.compile(r"^transformer_blocks\.(\d+)\.attention_blocks\.1\.(.+)$"), r"transformer_blocks.\1.attn2.\2"),
    (re.compile(r"^transformer_blocks\.(\d+)\.norms\.0\.(.+)$"), r"transformer_blocks.\1.norm1.\2"),
    (re.compile(r"^transformer_blocks\.(\d+)\.norms\.1\.(.+)$"), r"transformer_blocks.\1.norm2.\2"),
    (re.compile(r"^transformer_blocks\.(\d+)\.ff_norm\.(.+)$"), r"transformer_blocks.\1.norm3.\2"),
    (re.compile(r"^transformer_blocks\.(\d+)\.ff\.(.+)$"), r"transformer_blocks.\1.ff.\2"),
    (re.compile(r"^(norm|proj_in|proj_out)\.(.+)$"), r"\1.\2"),
]
_PE_OURS = re.compile(r"^transformer_blocks\.(\d+)\.pos_embed\.pe$")


def motion_key_to_original(key: str) -> list[str]:
    """Original names of one of our motion-module keys (the shared position encoding maps to two)."""
    m = _MM.match(key)
    if not m:
        return [key]
    prefix, rest = m["prefix"], m["rest"]
    pe = _PE_OURS.match(rest)
    if pe:
        return [f"{prefix}temporal_transformer.transformer_blocks.{pe[1]}.attention_blocks.{i}.pos_encoder.pe"
                for i in (0, 1)]
    for pattern, repl in _OURS_TO_ORIG_BLOCK:
        if pattern.match(rest):
            return [prefix + "temporal_transformer." + pattern.sub(repl, rest)]
    raise KeyError(f"no original name for motion-module key {key}")


def unet3d_state_dict_to_original(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our 3D UNet state dict in the original MagicAnimate / AnimateDiff naming."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        for name in motion_key_to_original(key):
            out[name] = value
    return out


def unet3d_state_dict_from_original(state_dict: Mapping[str, torch.Tensor], *, source: str) -> dict[str, torch.Tensor]:
    """Original-naming 3D UNet tensors (full or motion-only) in our naming. Keys it cannot map are kept as
    they are (so the strict check later reports them by name)."""
    out: dict[str, torch.Tensor] = {}
    pes: dict[str, dict[int, torch.Tensor]] = {}
    for key, value in state_dict.items():
        m = _MM.match(key)
        if not m or not m["rest"].startswith("temporal_transformer."):
            out[key] = value
            continue
        prefix, rest = m["prefix"], m["rest"][len("temporal_transformer."):]
        for pattern, repl in _ORIG_TO_OURS_BLOCK:
            hit = pattern.match(rest)
            if not hit:
                continue
            if repl is None:
                pes.setdefault(f"{prefix}transformer_blocks.{hit[1]}.pos_embed.pe", {})[int(hit[2])] = value
            else:
                out[prefix + pattern.sub(repl, rest)] = value
            break
        else:
            out[key] = value
    for name, copies in pes.items():
        # diffusers' block shares one position encoding between its two attentions; the original stores two
        # (identical) buffers. Both must be present and equal.
        if set(copies) != {0, 1}:
            raise WeightsError(f"{source}: position encoding of {name} should appear for attention_blocks 0 and 1, "
                               f"found {sorted(copies)}")
        if copies[0].shape != copies[1].shape or not torch.allclose(copies[0].float(), copies[1].float(), atol=1e-3):
            raise WeightsError(f"{source}: the two position-encoding buffers of {name} differ")
        out[name] = copies[0]
    return out


def strip_prefixes(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop ``module.`` (DDP) and ``unet.`` wrappers from checkpoint keys."""
    out = {}
    for key, value in state_dict.items():
        changed = True
        while changed:
            changed = False
            for prefix in ("module.", "unet."):
                if key.startswith(prefix):
                    key, changed = key[len(prefix):], True
        out[key] = value
    return out


def _describe(state_dict: Mapping[str, torch.Tensor]) -> str:
    """A guess at what a foreign state dict is, for error messages."""
    keys = list(state_dict)
    if any(k.startswith(("controlnet_cond_embedding", "controlnet_down_blocks")) for k in keys):
        return "a ControlNet"
    if any(MOTION_KEY in k for k in keys):
        return "a 3D UNet / motion modules"
    if any(k.startswith(("encoder.", "decoder.", "quant_conv")) for k in keys):
        return "a VAE"
    if any(k.startswith(("text_model.", "cond_stage_model.")) for k in keys):
        return "a text encoder"
    if any(k.startswith("model.diffusion_model.") for k in keys):
        return "an original-format (LDM) Stable Diffusion checkpoint"
    if keys and "conv_out.weight" not in state_dict and "conv_in.weight" in state_dict:
        return "an appearance encoder"
    if "conv_out.weight" in state_dict:
        return "a 2D UNet"
    return "an unknown model"


# ---------------------------------------------------------------------------------------------------------
# Configs
# ---------------------------------------------------------------------------------------------------------
_3D_TO_2D = {"CrossAttnDownBlock3D": "CrossAttnDownBlock2D", "DownBlock3D": "DownBlock2D",
             "CrossAttnUpBlock3D": "CrossAttnUpBlock2D", "UpBlock3D": "UpBlock2D",
             "UNetMidBlock3DCrossAttn": "UNetMidBlock2DCrossAttn"}


def unet3d_config_from_original(config: Mapping, unet_additional_kwargs: Mapping | None = None) -> dict:
    """Our config from the original's: its UNet3DConditionModel config, or a 2D ``unet/config.json`` plus
    ``inference.yaml:unet_additional_kwargs``. Features our model does not implement raise ConfigError."""
    config = dict(config)
    if unet_additional_kwargs:
        config.update(unet_additional_kwargs)
    for key in ("down_block_types", "up_block_types"):
        config[key] = [_3D_TO_2D.get(t, t) for t in config[key]]
    if "mid_block_type" in config:
        config["mid_block_type"] = _3D_TO_2D.get(config["mid_block_type"], config["mid_block_type"])
    out = unet3d_config_from_unet2d(config)
    use_mm = bool(config.get("use_motion_module", False))
    out["use_motion_module"] = use_mm
    for key in ("unet_use_cross_frame_attention", "unet_use_temporal_attention", "motion_module_mid_block",
                "motion_module_decoder_only"):
        if config.get(key):
            raise ConfigError(f"original config {key}=True is not supported (MagicAnimate/AnimateDiff v1 use False)")
    if use_mm:
        if config.get("motion_module_type", "Vanilla") != "Vanilla":
            raise ConfigError(f"motion_module_type {config['motion_module_type']!r} is not supported (Vanilla only)")
        levels = len(out["block_out_channels"])
        res = config.get("motion_module_resolutions", [2 ** i for i in range(levels)])
        if sorted(res)[:levels] != [2 ** i for i in range(levels)]:
            raise ConfigError(f"motion_module_resolutions {res}: motion modules at every level are required")
        kw = dict(config.get("motion_module_kwargs") or {})
        if list(kw.get("attention_block_types", ["Temporal_Self", "Temporal_Self"])) != ["Temporal_Self",
                                                                                      "Temporal_Self"]:
            raise ConfigError(f"attention_block_types {kw['attention_block_types']} not supported "
                              "(['Temporal_Self', 'Temporal_Self'] only)")
        if not kw.get("temporal_position_encoding", True):
            raise ConfigError("temporal_position_encoding=False is not supported")
        if kw.get("temporal_attention_dim_div", 1) != 1:
            raise ConfigError("temporal_attention_dim_div other than 1 is not supported")
        if kw.get("cross_frame_attention_mode"):
            raise ConfigError("cross_frame_attention_mode is not supported")
        out.update(motion_num_attention_heads=kw.get("num_attention_heads", 8),
                   motion_num_transformer_blocks=kw.get("num_transformer_block", 1),
                   motion_max_seq_length=kw.get("temporal_position_encoding_max_len", 24))
    return out


# ---------------------------------------------------------------------------------------------------------
# Loaders
# ---------------------------------------------------------------------------------------------------------
def _to(model: torch.nn.Module, torch_dtype, device) -> torch.nn.Module:
    if torch_dtype is not None or device is not None:
        model.to(device=device, dtype=torch_dtype)
    return model


def _unet_folder(path: str | Path) -> Path:
    path = Path(path)
    if (path / "unet").is_dir():
        return path / "unet"
    return path


def load_sd15_unet2d(path: str | Path, *, torch_dtype: torch.dtype | None = None,
                     device: str | torch.device | None = None) -> UNet2DConditionModel:
    """A diffusers UNet2DConditionModel from a SD1.5 folder (or its ``unet/`` subfolder), strictly."""
    folder = _unet_folder(path)
    config = clean_config(read_config(folder))
    weights_file = find_weight_file(folder)
    sd = read_state_dict(weights_file)
    unet = UNet2DConditionModel.from_config(config)
    load_into(unet, sd, source=str(weights_file), what=f"a UNet2DConditionModel ({_describe(sd)} given)")
    return _to(unet, torch_dtype, device)


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


def load_motion_modules(unet: UNet3DMotionModel, path: str | Path) -> MotionLoadReport:
    """Load a motion-module file into ``unet``, strictly.

    Accepts AnimateDiff's motion-only layout (mm_sd_v15.ckpt/.safetensors) and the official
    ``temporal_attention.ckpt`` (whole 3D UNet; its spatial weights replace the current ones, and how far they
    are from those is logged). Pickles are read with ``weights_only=True``; ``{"state_dict": ...}`` wrappers and
    ``module.``/``unet.`` prefixes are removed. Anything else raises WeightsError naming the keys.
    """
    if not unet.config.use_motion_module:
        raise ConfigError("this UNet was built with use_motion_module=False; build it with motion modules to load "
                          f"{path}")
    raw = strip_prefixes(read_state_dict(path))
    what_given = _describe(raw)
    n_motion = sum(MOTION_KEY in k for k in raw)
    if n_motion == 0:
        raise WeightsError(f"{path}: expected motion modules (AnimateDiff mm_sd_v15 layout or MagicAnimate's "
                           f"temporal_attention.ckpt, keys containing '{MOTION_KEY}'), but this looks like "
                           f"{what_given} ({len(raw)} tensors, none of them motion-module weights)")
    # Check in the file's own (original) naming so errors name keys as they appear in the file.
    expected_orig = {name: shape for key, shape in expected_shapes(unet).items()
                     for name in motion_key_to_original(key)}
    if n_motion == len(raw):
        expected_orig = {k: v for k, v in expected_orig.items() if MOTION_KEY in k}
        check_keys(expected_orig, raw, source=str(path), what="the motion modules of this 3D UNet "
                   "(AnimateDiff mm_sd_v15 layout)")
        sd = unet3d_state_dict_from_original(raw, source=str(path))
        unet.load_state_dict(sd, strict=False)
        report = MotionLoadReport(str(path), "motion", len(raw))
    else:
        check_keys(expected_orig, raw, source=str(path), what="the 3D UNet (full temporal_attention.ckpt layout)")
        sd = unet3d_state_dict_from_original(raw, source=str(path))
        current = unet.state_dict()
        diff = 0.0
        with torch.no_grad():
            for k, v in sd.items():
                if MOTION_KEY not in k:
                    diff = max(diff, float((v.float() - current[k].float().to(v.device)).abs().max()))
        unet.load_state_dict(sd, strict=True)
        report = MotionLoadReport(str(path), "full", len(raw), diff)
        logger.info("%s: whole 3D UNet loaded; its spatial weights differ from the previous (e.g. SD1.5) ones by "
                    "max |delta| = %.3g", path, diff)
    return report


def load_unet3d(sd15_path: str | Path, motion_module_path: str | Path | None = None, *,
                torch_dtype: torch.dtype | None = None, device: str | torch.device | None = None,
                **motion_kwargs) -> UNet3DMotionModel:
    """3D UNet from a SD1.5 folder, optionally with a motion-module file (see :func:`load_motion_modules`).

    motion_kwargs go to :meth:`UNet3DMotionModel.from_unet2d` (e.g. ``use_motion_module=False``).
    """
    unet = UNet3DMotionModel.from_unet2d(load_sd15_unet2d(sd15_path), **motion_kwargs)
    if motion_module_path is not None:
        load_motion_modules(unet, motion_module_path)
    return _to(unet, torch_dtype, device)


def appearance_dead_keys(model: AppearanceEncoderModel, unet2d_keys) -> set[str]:
    return set(unet2d_keys) - set(model.state_dict())


def appearance_state_dict_from_unet2d(state_dict: Mapping[str, torch.Tensor],
                                      model: AppearanceEncoderModel) -> dict[str, torch.Tensor]:
    """Drop the dead tail of a full UNet state dict for the appearance encoder (keys checked strictly)."""
    ours = expected_shapes(model)
    dead = set(state_dict) - set(ours)
    tail = tuple(f"{model.reference_block_names_last}.{p}." for p in ("attn1", "norm2", "attn2", "norm3", "ff"))
    tail_prefix = model.reference_block_names_last.rsplit(".transformer_blocks", 1)[0] + ".proj_out."
    legit = {k for k in dead if k.startswith(tail) or k.startswith(tail_prefix)
             or k.startswith(("conv_norm_out.", "conv_out."))}
    check_keys(ours, {k: v for k, v in state_dict.items() if k not in legit}, source="UNet state dict",
               what="the appearance encoder")
    return {k: v for k, v in state_dict.items() if k in ours}


def load_pretrained_folder(cls, path: str | Path, *, torch_dtype=None, device=None):
    """Load one of our model folders (config.json + weights), or the official ``appearance_encoder/``."""
    folder = Path(path)
    config = clean_config(read_config(folder))
    weights_file = find_weight_file(folder)
    sd = read_state_dict(weights_file)
    try:
        model = cls.from_config(config)
    except (TypeError, ValueError) as exc:
        raise WeightsError(f"{folder / 'config.json'}: not a valid {cls.__name__} config ({exc})") from exc
    what = f"{cls.__name__} ({_describe(sd)} given)"
    if isinstance(model, AppearanceEncoderModel):
        sd = appearance_state_dict_from_unet2d(sd, model) if set(sd) - set(model.state_dict()) else sd
    elif isinstance(model, UNet3DMotionModel):  # original (AnimateDiff) motion-module naming is accepted too
        sd = unet3d_state_dict_from_original(strip_prefixes(sd), source=str(weights_file))
    load_into(model, sd, source=str(weights_file), what=what)
    return _to(model, torch_dtype, device)


def load_appearance_encoder(path: str | Path, **kw) -> AppearanceEncoderModel:
    """The official ``appearance_encoder/`` folder (or ours), strictly."""
    return load_pretrained_folder(AppearanceEncoderModel, path, **kw)


def load_controlnet(path: str | Path, *, torch_dtype=None, device=None) -> ControlNetModel:
    """A diffusers ControlNet folder (the official ``densepose_controlnet/``), strictly."""
    folder = Path(path)
    config = clean_config(read_config(folder))
    weights_file = find_weight_file(folder)
    sd = read_state_dict(weights_file)
    model = ControlNetModel.from_config(config)
    load_into(model, sd, source=str(weights_file), what=f"a ControlNetModel ({_describe(sd)} given)")
    return _to(model, torch_dtype, device)


@dataclass
class MagicAnimateModels:
    """The three trained networks of MagicAnimate."""

    unet: UNet3DMotionModel
    appearance_encoder: AppearanceEncoderModel
    controlnet: ControlNetModel


def load_magicanimate(sd15_path: str | Path, magicanimate_path: str | Path, *,
                      motion_module_path: str | Path | None = None, torch_dtype: torch.dtype | None = None,
                      device: str | torch.device | None = None) -> MagicAnimateModels:
    """Load the released model: SD1.5 folder + MagicAnimate folder (see README "Weights").

    The UNet starts from SD1.5 and then loads ``temporal_attention/temporal_attention.ckpt`` (or
    ``motion_module_path``; a ``.safetensors`` made by scripts/convert_checkpoints.py is preferred when present).
    """
    root = Path(magicanimate_path)
    if motion_module_path is None:
        folder = root / "temporal_attention"
        for name in ("temporal_attention.safetensors", "temporal_attention.ckpt"):
            if (folder / name).is_file():
                motion_module_path = folder / name
                break
        else:
            raise WeightsError(f"{folder}: neither temporal_attention.safetensors nor temporal_attention.ckpt found")
    unet = load_unet3d(sd15_path, motion_module_path)
    encoder = load_appearance_encoder(root / "appearance_encoder")
    controlnet = load_controlnet(root / "densepose_controlnet")
    for m in (unet, encoder, controlnet):
        _to(m, torch_dtype, device)
    return MagicAnimateModels(unet, encoder, controlnet)


# ---------------------------------------------------------------------------------------------------------
# Pickle -> safetensors (DESIGN §0.12)
# ---------------------------------------------------------------------------------------------------------
def convert_checkpoint_to_safetensors(src: str | Path, dst: str | Path) -> int:
    """Rewrite a torch pickle (``.ckpt``/``.bin``/``.pth``) as safetensors, keys kept in their naming.

    ``{"state_dict": ...}`` wrappers and ``module.``/``unet.`` prefixes are removed; the pickle is read with
    ``weights_only=True``. The output is written atomically. Returns the number of tensors.
    """
    from safetensors.torch import save_file

    from ..utils.files import atomic_path

    sd = strip_prefixes(read_state_dict(src))
    seen: set[tuple[int, int]] = set()
    out = {}
    for key, value in sd.items():
        value = value.contiguous()
        ident = (value.untyped_storage().data_ptr(), value.storage_offset())
        # safetensors refuses tensors sharing memory (e.g. tied position encodings): copy the repeats
        out[key] = value.clone() if ident in seen else value
        seen.add(ident)
    with atomic_path(dst) as tmp:
        save_file(out, str(tmp), metadata={"format": "pt", "converted_from": Path(src).name})
    return len(out)


def convert_magicanimate_folder(folder: str | Path) -> list[Path]:
    """Convert every pickle of an official MagicAnimate folder to safetensors next to it.

    ``temporal_attention/temporal_attention.ckpt`` -> ``temporal_attention.safetensors``;
    ``{appearance_encoder,densepose_controlnet}/diffusion_pytorch_model.bin`` -> ``.safetensors``.
    Returns the files written. Loaders prefer the safetensors files once they exist.
    """
    root = Path(folder)
    jobs = [(root / "temporal_attention" / "temporal_attention.ckpt",
             root / "temporal_attention" / "temporal_attention.safetensors")]
    for sub in ("appearance_encoder", "densepose_controlnet"):
        jobs.append((root / sub / "diffusion_pytorch_model.bin", root / sub / "diffusion_pytorch_model.safetensors"))
    todo = [(s, d) for s, d in jobs if s.is_file()]
    if not todo:
        raise WeightsError(f"{root}: no official pickles found (expected temporal_attention/temporal_attention.ckpt "
                           "or */diffusion_pytorch_model.bin)")
    written = []
    for src, dst in todo:
        n = convert_checkpoint_to_safetensors(src, dst)
        logger.info("%s -> %s (%d tensors)", src, dst, n)
        written.append(dst)
    return written
