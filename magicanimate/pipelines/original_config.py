"""The original MagicAnimate prompt-config format (``configs/prompts/*.yaml``), read into our settings.

The keys the original's CLI used are honoured, the keys it read but never used are accepted with a warning,
anything else is an error. :func:`jobs_from_original` turns such a file into one ``InferenceConfig`` per
(source image, driving video) pair.
"""

from __future__ import annotations

import difflib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional

from omegaconf import OmegaConf

from magicanimate.errors import ConfigError
from magicanimate.pipelines.config import InferenceConfig, SamplingConfig, new_inference_config

logger = logging.getLogger(__name__)

LIVE_KEYS = {
    "pretrained_model_path", "pretrained_vae_path", "pretrained_controlnet_path",
    "pretrained_appearance_encoder_path", "pretrained_unet_path", "motion_module", "savename", "seed", "steps",
    "guidance_scale", "source_image", "video_path", "inference_config", "size", "offset", "max_length",
    "save_individual_videos",
}
# read by the original's CLI but without effect on its output (or, for L, replaced by context_frames)
DEAD_KEYS = {
    "S": "context stride; the original always used stride 1",
    "I": "unused by the original pipeline",
    "L": "the original pads to a multiple of 16 and uses 16-frame windows whatever L says; "
         "use context_frames in our own configs",
    "clip": "unused by the original pipeline",
    "video_type": "the original only supports DensePose condition videos",
    "invert_video": "unused by the original pipeline",
    "fusion_blocks": "reference attention is always fused into the mid and up blocks ('midup')",
}


@dataclass
class OriginalPromptConfig:
    pretrained_model_path: Optional[str] = None
    pretrained_vae_path: Optional[str] = None
    pretrained_controlnet_path: Optional[str] = None
    pretrained_appearance_encoder_path: Optional[str] = None
    pretrained_unet_path: Optional[str] = None
    motion_module: Optional[str] = None
    savename: Optional[str] = None
    seed: Any = field(default_factory=lambda: [-1])
    # the original CLI's defaults, which are ours
    steps: int = SamplingConfig.steps
    guidance_scale: float = SamplingConfig.guidance_scale
    source_image: List[str] = field(default_factory=list)
    video_path: List[str] = field(default_factory=list)
    inference_config: Optional[str] = None
    size: int = 512
    offset: int = 0
    max_length: Optional[int] = None
    save_individual_videos: bool = False


def is_original_prompt_config(path: os.PathLike) -> bool:
    """True when the YAML file looks like the original's prompt config (has source_image/video_path)."""
    try:
        raw = OmegaConf.to_container(OmegaConf.load(path))
    except Exception:
        return False
    return isinstance(raw, dict) and ("video_path" in raw or "source_image" in raw)


def load_original_prompt_config(path: os.PathLike) -> OriginalPromptConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except Exception as exc:
        raise ConfigError(f"{path}: not a readable YAML file ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    values = {}
    for key, value in raw.items():
        if key in DEAD_KEYS:
            logger.warning("%s: key %r is ignored (%s)", path, key, DEAD_KEYS[key])
        elif key in LIVE_KEYS:
            values[key] = value
        else:
            close = difflib.get_close_matches(key, sorted(LIVE_KEYS | set(DEAD_KEYS)), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{path}: unknown key {key!r}{hint}")
    for key in ("source_image", "video_path"):
        if isinstance(values.get(key), str):
            values[key] = [values[key]]
    seed = values.get("seed", [-1])
    if isinstance(seed, int):
        seed = [seed]
    if not isinstance(seed, list) or not all(isinstance(s, int) for s in seed):
        raise ConfigError(f"{path}: seed must be an integer or a list of integers (-1 = random), got {seed!r}")
    values["seed"] = seed
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(OriginalPromptConfig), values)
    except Exception as exc:
        raise ConfigError(f"{path}: {exc}") from None
    cfg = OriginalPromptConfig(**OmegaConf.to_container(cfg))
    if len(cfg.source_image) != len(cfg.video_path):
        raise ConfigError(f"{path}: source_image has {len(cfg.source_image)} entries but video_path has "
                          f"{len(cfg.video_path)}; they are paired one to one")
    if not cfg.source_image:
        raise ConfigError(f"{path}: source_image and video_path are empty: nothing to animate")
    if len(cfg.seed) not in (1, len(cfg.source_image)):
        raise ConfigError(f"{path}: seed has {len(cfg.seed)} entries; give one, or one per source_image")
    return cfg


def jobs_from_original(cfg: OriginalPromptConfig, *, base_dir: os.PathLike = ".",
                       **overrides: Any) -> List[InferenceConfig]:
    """One InferenceConfig per (source_image, video_path) pair, with the original's output naming
    (``samples/<savename or animation-TIMESTAMP>/videos/<source>_<video>.mp4``) and its square output
    (``size`` x ``size``)."""
    base_dir = Path(base_dir)

    def resolve(p: Optional[str]) -> Optional[str]:
        if not p:
            return None
        return str(p if os.path.isabs(p) else base_dir / p)

    savename = cfg.savename or f"animation-{time.strftime('%Y-%m-%dT%H-%M-%S')}"
    seeds = cfg.seed * len(cfg.source_image) if len(cfg.seed) == 1 else cfg.seed
    weights = dict(stable_diffusion=resolve(cfg.pretrained_model_path), vae=resolve(cfg.pretrained_vae_path),
                   controlnet=resolve(cfg.pretrained_controlnet_path),
                   appearance_encoder=resolve(cfg.pretrained_appearance_encoder_path),
                   unet=resolve(cfg.pretrained_unet_path), motion_module=resolve(cfg.motion_module),
                   inference_config=resolve(cfg.inference_config))
    jobs = []
    for source, video, seed in zip(cfg.source_image, cfg.video_path, seeds):
        name = f"{Path(source).stem}_{Path(video).stem}.mp4"
        values = dict(reference=resolve(source), motion=resolve(video),
                      output=str(base_dir / "samples" / savename / "videos" / name),
                      weights=weights, steps=cfg.steps, guidance_scale=cfg.guidance_scale, seed=seed,
                      width=cfg.size, height=cfg.size, fit="resize", offset=cfg.offset,
                      max_frames=cfg.max_length, fusion="parity", save_inputs=cfg.save_individual_videos)
        values.update(overrides)
        jobs.append(new_inference_config(**values))
    return jobs
