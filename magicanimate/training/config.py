"""Typed training configuration.

One schema serves both stages: a stage is a config, not a script. ``train.*`` declares which modules
train; :func:`magicanimate.training.module.configure_trainable` applies it and start-up verifies it. Load
with :func:`load_train_config` (YAML + dotted ``key=value`` overrides; unknown keys are errors).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from omegaconf import MISSING

from magicanimate.errors import ConfigError
from magicanimate.pipelines.config import SamplingConfig


@dataclass
class ModelConfig:
    # Stable Diffusion 1.5 folder in diffusers layout: unet/, vae/ and, unless empty_prompt_embedding is
    # given, text_encoder/ + tokenizer/.
    base_model: str = MISSING
    # Optional VAE folder replacing base_model/vae (e.g. sd-vae-ft-mse).
    vae: Optional[str] = None
    # Optional 3D UNet folder of ours (config.json + safetensors) to start from instead of base_model/unet,
    # e.g. the export of a stage that also trained the spatial UNet.
    unet: Optional[str] = None
    # Motion-module weights: None = fresh (AnimateDiff init: zero output projection, i.e. identity); or
    # AnimateDiff's mm_sd_v15.ckpt (motion only), or the official temporal_attention.ckpt (the whole 3D
    # UNet: its spatial weights replace the base model's too).
    motion_module: Optional[str] = None
    use_motion_module: bool = True
    # Extra keyword arguments for the motion modules (as the models package names them).
    motion_module_kwargs: Dict[str, Any] = field(default_factory=dict)
    # Appearance encoder / ControlNet initialisation: None = built from the base UNet; else a folder
    # (official layout or our export).
    appearance_encoder: Optional[str] = None
    controlnet: Optional[str] = None
    # Channels of a new ControlNet's conditioning embedding (SD ControlNets: 16, 32, 96, 256; its length - 1
    # is the number of stride-2 steps, which must match the VAE's downsampling).
    controlnet_embedding_channels: List[int] = field(default_factory=lambda: [16, 32, 96, 256])
    # A .safetensors file holding the empty-prompt CLIP embedding (tensor "prompt_embeds", (1, L, D)), the
    # same file inference accepts. When unset, it is computed once from base_model/text_encoder + tokenizer.
    prompt_embeds: Optional[str] = None


@dataclass
class NoiseSchedulerConfig:
    """The schedule training noises with; the same DDIM object inference samples with (docs/architecture.md, "Sampler").

    Linear betas 0.00085 -> 0.012 are an assumption: AnimateDiff v1 (and so MagicAnimate's released
    sampler) uses them, while SD1.5 itself trained with ``scaled_linear``. One key, ``beta_schedule``.
    """

    num_train_timesteps: int = 1000
    beta_start: float = 0.00085
    beta_end: float = 0.012
    beta_schedule: str = "linear"
    steps_offset: int = 1
    clip_sample: bool = False
    set_alpha_to_one: bool = True


@dataclass
class TrainableConfig:
    """Which modules receive gradients. Stage 1: appearance_encoder + controlnet. Stage 2: motion_modules.

    ``spatial_unet: true`` in stage 1 also trains the denoiser's spatial layers (used to build a base model
    for a toy world without SD1.5, docs/architecture.md "The toy world")."""

    appearance_encoder: bool = False
    controlnet: bool = False
    motion_modules: bool = False
    spatial_unet: bool = False


@dataclass
class DataConfig:
    # generic: <root>/<id>/{images,densepose}/*.png or <root>/videos/<id>.mp4 + <root>/densepose/<id>.mp4
    # tiktok:  <root>/<00001..>/images/NNNN.png + <root>/<id>/<densepose_dir>/NNNN.png (IUV or rendered)
    # ted:     <root>/<split>/<clip>.mp4 + <densepose_root>/<split>/<clip>.mp4
    layout: str = "generic"
    root: str = MISSING
    densepose_root: Optional[str] = None
    densepose_dir: str = "densepose"
    # "rendered" = our viridis part rendering; "iuv" = DensePose IUV PNGs (part index I in one channel).
    densepose_format: str = "rendered"
    # Channel of I in an IUV PNG, as RGB index. DensePose's own tools write IUV with OpenCV (BGR), I first,
    # which is the blue channel (2) when read as RGB.
    iuv_part_channel: int = 2
    # tiktok: a text file of video ids (one per line, ranges like 00001-00335 allowed, # comments);
    # ted: the subfolder (train | test). None = every video found.
    split: Optional[str] = None
    # Only the first N videos found (in the layout's id order; None = all): e.g. one dataset written once,
    # and a stage trained on a subset of its identities.
    max_videos: Optional[int] = None
    height: int = 512
    width: int = 512
    crop: str = "random"  # random | center
    hflip_prob: float = 0.0
    # "image": stage-1 samples (reference, one target frame); "video": stage-2 image-video joint samples.
    sample: str = "image"
    num_frames: int = 16
    frame_stride: int = 1
    # Stage 1: with probability tau0 the target is the reference frame itself.
    tau0: float = 0.1
    # Stage 2 (per batch, r ~ U[0,1)): r < tau1 reconstructs the reference image; tau1 <= r < tau2 a
    # single other frame; else a num_frames clip.
    tau1: float = 0.1
    tau2: float = 0.2
    samples_per_video: int = 1
    skip_bad_samples: bool = False
    # Open every frame's header at start-up (catches unreadable files before hours of training).
    check_all_frames: bool = True
    num_workers: int = 0


@dataclass
class OptimizerConfig:
    learning_rate: float = 1e-5
    # adamw | adamw8bit | auto (8-bit when bitsandbytes imports and the device is CUDA)
    optimizer: str = "auto"
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_weight_decay: float = 1e-2
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0
    lr_scheduler: str = "constant_with_warmup"
    lr_warmup_steps: int = 0
    scale_lr: bool = False


@dataclass
class LossConfig:
    prediction_type: str = "epsilon"  # epsilon | v_prediction
    snr_gamma: Optional[float] = None  # min-SNR weighting (e.g. 5.0); None = plain MSE
    # Probability that a sample reads no reference (the unconditional branch of guidance).
    ref_drop: float = 0.1


@dataclass
class EMAConfig:
    enabled: bool = False
    decay: float = 0.9999
    update_after_step: int = 0


@dataclass
class ValidationConfig(SamplingConfig):
    """A short clip generated every ``every_n_steps`` with the inference pipeline. The sampling settings are
    inference's own (steps, guidance_scale, seed, init_from_reference, ...: SamplingConfig), and the export
    stores them with the model as its inference defaults."""

    every_n_steps: int = 0  # 0 = never
    reference_image: Optional[str] = None
    densepose_video: Optional[str] = None
    num_frames: int = 16


@dataclass
class TrainConfig:
    output_dir: str = MISSING
    seed: int = 42
    model: ModelConfig = field(default_factory=ModelConfig)
    noise_scheduler: NoiseSchedulerConfig = field(default_factory=NoiseSchedulerConfig)
    train: TrainableConfig = field(default_factory=TrainableConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimizerConfig = field(default_factory=OptimizerConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    ema: EMAConfig = field(default_factory=EMAConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    train_batch_size: int = 1  # per process
    gradient_accumulation_steps: int = 1
    max_train_steps: int = 1000
    mixed_precision: str = "no"  # no | fp16 | bf16
    gradient_checkpointing: bool = False
    # DDP: a rank whose batch drops every reference gives the encoder no gradient. By default the loss
    # touches every trainable parameter with weight zero; set true to use DDP's unused-parameter search.
    find_unused_parameters: bool = False
    checkpointing_steps: int = 500
    checkpoints_total_limit: Optional[int] = 3
    resume: Optional[str] = None  # None | latest | path to a checkpoint-N folder
    report_to: str = "none"  # none | tensorboard | wandb
    tracker_project_name: str = "magicanimate"
    log_every_n_steps: int = 10
    export_at_end: bool = True
    allow_tf32: bool = True
    # CPU threads for torch (None: half the available cores, at most 8; see magicanimate.utils.devices)
    threads: Optional[int] = None


_CHOICES = {
    "data.layout": ("generic", "tiktok", "ted"),
    "data.densepose_format": ("rendered", "iuv"),
    "data.crop": ("random", "center"),
    "data.sample": ("image", "video"),
    "optim.optimizer": ("adamw", "adamw8bit", "auto"),
    "loss.prediction_type": ("epsilon", "v_prediction"),
    "mixed_precision": ("no", "fp16", "bf16"),
    "report_to": ("none", "tensorboard", "wandb"),
    "noise_scheduler.beta_schedule": ("linear", "scaled_linear", "squaredcos_cap_v2"),
}


def _get(cfg, dotted: str):
    node = cfg
    for part in dotted.split("."):
        node = getattr(node, part)
    return node


def validate_train_config(cfg: TrainConfig, source: str = "config") -> None:
    """Check values a schema cannot express; raise ConfigError naming the key."""
    for key, allowed in _CHOICES.items():
        value = _get(cfg, key)
        if value not in allowed:
            raise ConfigError(f"{source}: {key}={value!r} is not one of {', '.join(allowed)}")
    positive = ["train_batch_size", "gradient_accumulation_steps", "max_train_steps", "data.height",
                "data.width", "data.num_frames", "data.frame_stride", "data.samples_per_video",
                "checkpointing_steps", "log_every_n_steps"]
    for key in positive:
        if _get(cfg, key) < 1:
            raise ConfigError(f"{source}: {key} must be >= 1 (got {_get(cfg, key)})")
    for key in ("data.tau0", "data.tau1", "data.tau2", "data.hflip_prob", "loss.ref_drop"):
        v = _get(cfg, key)
        if not 0.0 <= v <= 1.0:
            raise ConfigError(f"{source}: {key} must lie in [0, 1] (got {v})")
    if cfg.data.tau1 > cfg.data.tau2:
        raise ConfigError(f"{source}: data.tau1 ({cfg.data.tau1}) must be <= data.tau2 ({cfg.data.tau2})")
    if cfg.data.height % 8 or cfg.data.width % 8:
        raise ConfigError(f"{source}: data.height/width must be multiples of 8 (VAE factor); got "
                          f"{cfg.data.height}x{cfg.data.width}")
    t = cfg.train
    if not (t.appearance_encoder or t.controlnet or t.motion_modules or t.spatial_unet):
        raise ConfigError(f"{source}: train.* declares no trainable module; set at least one of "
                          "train.appearance_encoder, train.controlnet, train.motion_modules, train.spatial_unet")
    if t.motion_modules and not cfg.model.use_motion_module:
        raise ConfigError(f"{source}: train.motion_modules=true needs model.use_motion_module=true")
    if cfg.data.sample == "video" and not cfg.model.use_motion_module and cfg.data.num_frames > 1:
        raise ConfigError(f"{source}: data.sample=video trains clips; it needs model.use_motion_module=true")
    if cfg.checkpoints_total_limit is not None and cfg.checkpoints_total_limit < 1:
        raise ConfigError(f"{source}: checkpoints_total_limit must be >= 1 or null")
    if cfg.data.max_videos is not None and cfg.data.max_videos < 1:
        raise ConfigError(f"{source}: data.max_videos must be >= 1 or null (got {cfg.data.max_videos})")
    if cfg.loss.snr_gamma is not None and cfg.loss.snr_gamma <= 0:
        raise ConfigError(f"{source}: loss.snr_gamma must be > 0 or null")


def load_train_config(path: Optional[str | Path] = None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Load a training YAML onto the schema, apply ``key=value`` overrides, validate."""
    from magicanimate.config import load_config

    cfg = load_config(TrainConfig, path, list(overrides))
    validate_train_config(cfg, str(path) if path else "config")
    return cfg


__all__: List[str] = [
    "ModelConfig", "NoiseSchedulerConfig", "TrainableConfig", "DataConfig", "OptimizerConfig", "LossConfig",
    "EMAConfig", "ValidationConfig", "TrainConfig", "validate_train_config", "load_train_config",
]
