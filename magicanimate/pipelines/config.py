"""Inference configuration: our typed schema, and the original MagicAnimate prompt-config format.

``InferenceConfig`` is strict (an unknown key is an error, via :func:`magicanimate.config.load_config`).
``configs/prompts/*.yaml`` files in the original's format are read by :func:`load_original_prompt_config`:
the keys the original's CLI used are honoured, the keys it read but never used are accepted with a warning,
anything else is an error. :func:`jobs_from_original` turns such a file into one ``InferenceConfig`` per
(source image, driving video) pair.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional, Sequence

from omegaconf import OmegaConf

from magicanimate.errors import ConfigError

logger = logging.getLogger(__name__)

FITS = ("pad", "crop", "resize")
DTYPES = ("auto", "fp32", "fp16", "bf16")


@dataclass
class WeightsConfig:
    """Where the networks come from. Either ``pipeline`` (a folder written by
    ``MagicAnimatePipeline.save_pretrained``) or the original layout: an SD1.5 diffusers folder plus the
    MagicAnimate folders. ``root`` is a shortcut for the original layout under one folder
    (``root/stable-diffusion-v1-5``, ``root/MagicAnimate/...``); explicit paths override it."""

    pipeline: Optional[str] = None
    root: Optional[str] = None
    stable_diffusion: Optional[str] = None
    vae: Optional[str] = None
    appearance_encoder: Optional[str] = None
    controlnet: Optional[str] = None
    motion_module: Optional[str] = None
    unet: Optional[str] = None
    # a (1, 77, D) safetensors tensor "prompt_embeds": the empty-prompt embedding, so CLIP need not load
    prompt_embeds: Optional[str] = None
    # the original's inference.yaml (unet_additional_kwargs / noise_scheduler_kwargs); None = built-in defaults
    inference_config: Optional[str] = None


@dataclass
class InferenceConfig:
    reference: Optional[str] = None
    motion: Optional[str] = None
    output: str = "samples/animation.mp4"
    weights: WeightsConfig = field(default_factory=WeightsConfig)

    steps: int = 25
    guidance_scale: float = 7.5
    # -1 draws a random seed (the one used is written to the saved config)
    seed: int = 1
    scheduler: str = "DDIMScheduler"
    controlnet_conditioning_scale: float = 1.0

    # Output size. width/height both set: used as is (multiples of 8). Otherwise the longer side of the
    # motion video is scaled to `size` and the aspect is kept (rounded to multiples of 8).
    size: int = 512
    width: Optional[int] = None
    height: Optional[int] = None
    # how the reference (and, with width/height of another aspect, the motion video) is fitted to the output
    fit: str = "pad"
    fps: Optional[float] = None
    offset: int = 0
    max_frames: Optional[int] = None

    fusion: str = "tapered"
    context_frames: int = 16
    context_overlap: int = 4
    # start from the reference latent noised to the first timestep instead of pure noise (see
    # MagicAnimatePipeline.__call__); the bundled demo model needs it, the original did not do it
    init_from_reference: bool = False
    # with init_from_reference: the fraction of the steps that is run (image-to-image strength); below 1
    # denoising starts part-way, from the reference latent noised less
    init_strength: float = 1.0

    device: str = "auto"
    dtype: str = "auto"
    cpu_offload: bool = False
    sequential_guidance: bool = False
    decode_chunk: int = 8

    grid: bool = True
    # also write the fitted inputs: <output>_reference.png and <output>_densepose.mp4
    save_inputs: bool = False
    save_config: bool = True
    progress: bool = True


def validate_inference_config(cfg: Any) -> None:
    """Value checks that a type schema cannot express; ConfigError names the key."""
    def bad(key, msg):
        raise ConfigError(f"{key}: {msg}")

    if cfg.steps < 1:
        bad("steps", f"must be >= 1, got {cfg.steps}")
    if cfg.fit not in FITS:
        bad("fit", f"must be one of {', '.join(FITS)}, got {cfg.fit!r}")
    if cfg.fusion not in ("parity", "tapered"):
        bad("fusion", f"must be 'parity' or 'tapered', got {cfg.fusion!r}")
    if cfg.dtype not in DTYPES:
        bad("dtype", f"must be one of {', '.join(DTYPES)}, got {cfg.dtype!r}")
    if cfg.context_frames < 1:
        bad("context_frames", f"must be >= 1, got {cfg.context_frames}")
    if not 0 <= cfg.context_overlap < cfg.context_frames:
        bad("context_overlap", f"must be in [0, context_frames={cfg.context_frames}), got {cfg.context_overlap}")
    for key in ("width", "height"):
        value = getattr(cfg, key)
        if value is not None and (value < 8 or value % 8):
            bad(key, f"must be a positive multiple of 8, got {value}")
    if (cfg.width is None) != (cfg.height is None):
        bad("width/height", "give both or neither (with neither, `size` and the motion video's aspect decide)")
    if cfg.size < 8:
        bad("size", f"must be >= 8, got {cfg.size}")
    if cfg.fps is not None and cfg.fps <= 0:
        bad("fps", f"must be positive, got {cfg.fps}")
    if cfg.offset < 0:
        bad("offset", f"must be >= 0, got {cfg.offset}")
    if cfg.max_frames is not None and cfg.max_frames < 1:
        bad("max_frames", f"must be >= 1, got {cfg.max_frames}")
    if not 0.0 < cfg.init_strength <= 1.0:
        bad("init_strength", f"must be in (0, 1], got {cfg.init_strength}")
    if cfg.init_strength < 1.0 and not cfg.init_from_reference:
        bad("init_strength", f"{cfg.init_strength} needs init_from_reference: true (it starts part-way through "
                             "the schedule from the noised reference)")
    if cfg.decode_chunk < 1:
        bad("decode_chunk", f"must be >= 1, got {cfg.decode_chunk}")


def load_inference_config(path: Optional[os.PathLike] = None, overrides: Sequence[str] = ()) -> InferenceConfig:
    """Our strict YAML schema (``configs/inference/*.yaml``) plus ``key=value`` overrides."""
    from magicanimate.config import load_config

    cfg = load_config(InferenceConfig, path, overrides)
    validate_inference_config(cfg)
    return cfg


def new_inference_config(**values: Any) -> InferenceConfig:
    """A structured (type-checked) config from keyword values; nested ``weights`` may be a dict."""
    base = OmegaConf.structured(InferenceConfig)
    try:
        cfg = OmegaConf.merge(base, OmegaConf.create(values))
    except Exception as exc:  # omegaconf raises its own ValidationError / ConfigKeyError
        raise ConfigError(f"invalid inference setting: {exc}") from None
    validate_inference_config(cfg)
    return cfg


# --------------------------------------------------------------------------- the original's prompt config

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
    steps: int = 25
    guidance_scale: float = 7.5
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


def to_dict(cfg: Any) -> dict:
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return dataclasses.asdict(cfg)
    return OmegaConf.to_container(cfg, resolve=True)
