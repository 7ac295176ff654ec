"""Configs of the original release in ours: its 3D UNet config, or SD1.5's 2D ``unet/config.json`` plus
``inference.yaml``'s ``unet_additional_kwargs``. Features our model does not implement raise ConfigError
naming them (rather than being silently ignored)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional

from magicanimate.errors import ConfigError
from magicanimate.models.unet3d import unet3d_config_from_unet2d

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


def is_original_unet3d_config(config: Mapping) -> bool:
    """Whether a config dict is in the original (AnimateDiff/MagicAnimate UNet3DConditionModel) format."""
    return "motion_module_kwargs" in config or any(
        str(t).endswith("3D") for t in (*config.get("down_block_types", ()), *config.get("up_block_types", ())))


def read_inference_yaml(path: Optional[Path]) -> tuple[dict, dict]:
    """``unet_additional_kwargs`` and ``noise_scheduler_kwargs`` of the original's ``inference.yaml``."""
    if path is None:
        return {}, {}
    from omegaconf import OmegaConf

    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True) or {}
    unknown = set(raw) - {"unet_additional_kwargs", "noise_scheduler_kwargs"}
    if unknown:
        raise ConfigError(f"{path}: unknown keys {sorted(unknown)} (expected unet_additional_kwargs, "
                          "noise_scheduler_kwargs)")
    return dict(raw.get("unet_additional_kwargs") or {}), dict(raw.get("noise_scheduler_kwargs") or {})


MOTION_CONFIG_KEYS = ("use_motion_module", "motion_num_attention_heads", "motion_num_transformer_blocks",
                      "motion_max_seq_length")


def motion_kwargs_from_original(unet2d_config: Mapping, unet_additional_kwargs: Mapping) -> dict:
    """Motion-module arguments of our 3D UNet from the original's ``unet_additional_kwargs``."""
    if not unet_additional_kwargs:
        return {}
    converted = unet3d_config_from_original(dict(unet2d_config), unet_additional_kwargs)
    return {k: converted[k] for k in MOTION_CONFIG_KEYS if k in converted}
