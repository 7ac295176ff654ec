"""Inference settings: the one typed schema (and the one home of every default) for animating a video.

:class:`SamplingConfig` holds what shapes the samples (steps, guidance, seed, windows, initialisation);
:class:`InferenceConfig` adds the inputs, output, size and runtime options. Every other place that needs
such settings is a view or a partial override of these: a saved pipeline folder's ``settings.yaml``
(:mod:`magicanimate.pipelines.settings`), the web demo's page, the training validation (which inherits
:class:`SamplingConfig`), the evaluation configs. The command line of ``scripts/animate.py`` is generated
from the same fields (:mod:`magicanimate.config.cli`). Loading is strict (unknown keys are errors); value
rules are declared with each field (:func:`magicanimate.config.setting`) and the few rules tying two
settings together are in :func:`validate_inference_config`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional, Sequence

from omegaconf import OmegaConf

from magicanimate.config import setting, validate_fields
from magicanimate.errors import ConfigError


class Fusion(str, Enum):
    """How overlapping windows are fused (see :mod:`magicanimate.pipelines.windows`)."""

    tapered = "tapered"
    parity = "parity"


class Fit(str, Enum):
    """How the reference (and a motion video of another aspect) is fitted to the output size."""

    pad = "pad"
    crop = "crop"
    resize = "resize"


class DType(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    fp16 = "fp16"
    bf16 = "bf16"


FITS = tuple(m.value for m in Fit)
DTYPES = tuple(m.value for m in DType)


@dataclass
class WeightsConfig:
    """Where the networks come from. Either ``pipeline`` (a folder written by
    ``MagicAnimatePipeline.save_pretrained``) or the original layout: an SD1.5 diffusers folder plus the
    MagicAnimate folders. ``root`` is a shortcut for the original layout under one folder
    (``root/stable-diffusion-v1-5``, ``root/MagicAnimate/...``); explicit paths override it."""

    pipeline: Optional[str] = setting(None, flag="--pipeline",
                                      help="a folder written by MagicAnimatePipeline.save_pretrained")
    root: Optional[str] = setting(None, flag="--weights",
                                  help="weights root in the original layout, or a saved pipeline folder")
    stable_diffusion: Optional[str] = None
    vae: Optional[str] = None
    appearance_encoder: Optional[str] = None
    controlnet: Optional[str] = None
    motion_module: Optional[str] = None
    unet: Optional[str] = None
    # a (1, 77, D) safetensors tensor "prompt_embeds": the empty-prompt embedding, so CLIP need not load
    prompt_embeds: Optional[str] = setting(None, flag="--prompt-embeds",
                                           help="saved empty-prompt embedding (skips CLIP)")
    # the original's inference.yaml (unet_additional_kwargs / noise_scheduler_kwargs); None = built-in defaults
    inference_config: Optional[str] = None


@dataclass
class SamplingConfig:
    """What shapes the samples; a saved pipeline may carry its own values of these (and of the size)."""

    steps: int = setting(25, min=1, help="denoising steps")
    guidance_scale: float = setting(7.5, help="classifier-free guidance scale")
    seed: int = setting(1, min=-1, help="seed of the initial noise; -1 = random (the seed used is saved)")
    scheduler: str = setting("DDIMScheduler", help="diffusers scheduler class (MagicAnimate's noise schedule)")
    controlnet_conditioning_scale: float = setting(1.0, min=0, help="strength of the DensePose ControlNet")
    fusion: Fusion = setting(Fusion.tapered, help="window fusion: tapered cross-fades; parity is the original's")
    context_frames: int = setting(16, min=1, help="frames per window (at most the motion modules' 24)")
    context_overlap: int = setting(4, min=0, help="frames shared by consecutive windows (< context frames)")
    # start from the reference latent noised to the first timestep instead of pure noise (see
    # MagicAnimatePipeline.__call__); the bundled demo model needs it, the original did not do it
    init_from_reference: bool = setting(False, help="start from the noised reference latent, not pure noise")
    # with init_from_reference: the fraction of the steps that is run (image-to-image strength); below 1
    # denoising starts part-way, from the reference latent noised less
    init_strength: float = setting(1.0, gt=0, max=1, help="with --init-from-reference: fraction of the steps "
                                                           "run, in (0, 1] (image-to-image strength)")


@dataclass
class InferenceConfig(SamplingConfig):
    reference: Optional[str] = setting(None, help="reference image (png/jpg)")
    motion: Optional[str] = setting(None, help="DensePose motion video (mp4 or a folder of frames)")
    output: str = setting("samples/animation.mp4", help="result video path (.mp4)")
    weights: WeightsConfig = field(default_factory=WeightsConfig)

    # Output size. width/height both set: used as is (multiples of 8). Otherwise the longer side of the
    # motion video is scaled to `size` and the aspect is kept (rounded to multiples of 8).
    size: int = setting(512, min=8, help="longer output side (the motion video's aspect is kept)")
    width: Optional[int] = setting(None, min=8, multiple_of=8, help="output width (with --height)")
    height: Optional[int] = setting(None, min=8, multiple_of=8, help="output height (with --width)")
    fit: Fit = setting(Fit.pad, help="how the reference is fitted: pad (edge pixels), crop, resize")
    fps: Optional[float] = setting(None, gt=0, help="output fps (default: the motion video's)")
    offset: int = setting(0, min=0, help="first motion frame to use")
    max_frames: Optional[int] = setting(None, min=1, help="use at most this many motion frames")

    device: str = setting("auto", help="auto | cpu | cuda | cuda:N | mps")
    dtype: DType = setting(DType.auto, help="fp16 on CUDA, fp32 elsewhere by default")
    cpu_offload: bool = setting(False, help="keep models on the CPU until used (GPU memory saver)")
    sequential_guidance: bool = setting(False, help="run the two guidance halves one after the other "
                                                     "(memory saver)")
    decode_chunk: Optional[int] = setting(None, min=1, help="frames per VAE decode (default: as many as keep the "
                                                            "decoder within the denoising loop's memory)")
    compile: bool = setting(False, help="torch.compile the networks' blocks (the first call compiles; "
                                        "see docs/benchmarks.md for the measured gain)")
    threads: Optional[int] = setting(None, min=1, help="CPU threads for torch (default: half the available "
                                                       "cores, at most 8; 1 on a busy shared machine)")

    grid: bool = setting(True, help="also write OUT_grid.mp4 (reference | DensePose | result)")
    # also write the fitted inputs: <output>_reference.png and <output>_densepose.mp4
    save_inputs: bool = False
    save_config: bool = True
    progress: bool = True


SAMPLING_KEYS = tuple(f for f in SamplingConfig.__dataclass_fields__)


def validate_inference_config(cfg: Any) -> None:
    """Every field's declared rules, then the rules that tie two settings together; ConfigError names the key."""
    validate_fields(cfg, InferenceConfig)
    check_windows(cfg.context_frames, cfg.context_overlap)
    check_initialisation(cfg.init_from_reference, cfg.init_strength)
    if (cfg.width is None) != (cfg.height is None):
        raise ConfigError("width/height: give both or neither (with neither, `size` and the motion video's "
                          "aspect decide)")


def check_sampling_values(**values: Any) -> None:
    """The :class:`SamplingConfig` rules for values given as call arguments (the pipeline's check_inputs):
    the same rules and messages as a config file gets."""
    from magicanimate.config.fields import check_value

    fields = SamplingConfig.__dataclass_fields__
    for key, value in values.items():
        rules = fields[key].metadata.get("rules", {})
        problem = check_value(key, value, rules, is_float=fields[key].type in (float, "float"))
        if problem:
            raise ConfigError(problem)
    if "fusion" in values and values["fusion"] not in [m.value for m in Fusion]:
        raise ConfigError(f"fusion: must be one of {', '.join(m.value for m in Fusion)}, got {values['fusion']!r}")
    if "context_frames" in values and "context_overlap" in values:
        check_windows(values["context_frames"], values["context_overlap"])
    if "init_strength" in values:
        check_initialisation(values.get("init_from_reference", False), values["init_strength"])


def check_initialisation(init_from_reference: bool, init_strength: float) -> None:
    if init_strength < 1.0 and not init_from_reference:
        raise ConfigError(f"init_strength: {init_strength} needs init_from_reference: true (it starts "
                          "part-way through the schedule from the noised reference)")


def check_windows(context_frames: int, context_overlap: int, max_context_frames: Optional[int] = None) -> None:
    """The window settings, checked in one place for the config, the command line and the pipeline call."""
    if context_frames < 1:
        raise ConfigError(f"context_frames: must be >= 1, got {context_frames}")
    if not 0 <= context_overlap < context_frames:
        raise ConfigError(f"context_overlap: must be in [0, context_frames={context_frames}), got {context_overlap}")
    if max_context_frames is not None and context_frames > max_context_frames:
        raise ConfigError(f"context_frames={context_frames} exceeds the motion modules' position-encoding "
                          f"length ({max_context_frames}); use at most {max_context_frames}")


def load_inference_config(path: Optional[os.PathLike] = None, overrides: Sequence[str] = ()) -> InferenceConfig:
    """Our strict YAML schema (``configs/inference/*.yaml``) plus ``key=value`` overrides."""
    from magicanimate.config import load_config

    cfg = load_config(InferenceConfig, path, overrides)
    validate_inference_config(cfg)
    return cfg


def new_inference_config(**values: Any) -> InferenceConfig:
    """A structured (type-checked) config from keyword values; nested ``weights`` may be a dict, and keys
    may be dotted (``**{"weights.root": path}``)."""
    base = OmegaConf.structured(InferenceConfig)
    try:
        cfg = OmegaConf.merge(base, OmegaConf.create(_plain(values)))
    except Exception as exc:  # omegaconf raises its own ValidationError / ConfigKeyError
        raise ConfigError(f"invalid inference setting: {exc}") from None
    validate_inference_config(cfg)
    return cfg


def _plain(values: dict) -> dict:
    """Enums as their values, dotted keys as nested sections."""
    out: dict = {}
    for key, value in values.items():
        value = value.value if isinstance(value, Enum) else _plain(value) if isinstance(value, dict) else value
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        if isinstance(value, dict) and isinstance(node.get(leaf), dict):
            node[leaf].update(value)
        else:
            node[leaf] = value
    return out
