"""GPU memory of a training run, per GPU: weights, gradients, optimizer state, activations, buffers.

The parameter counts are exact: the networks are built on the ``meta`` device at the config's size (from
the base model's ``config.json`` files, or SD1.5's published configs when the folder is absent) and the
trainable flags set as the trainer sets them. The activations are counted by running the forward at the
real shapes (:mod:`magicanimate.training.activations`). The rest is this formula (bytes per GPU;
``T`` trainable, ``F`` frozen parameters, ``N`` GPUs, ``h`` 2 with fp16/bf16 else 4, ``o`` 8 for AdamW,
2 for 8-bit AdamW):

=========  ==========================================  ===========  =================  ================
strategy   weights                                     gradients    optimizer          buffers
=========  ==========================================  ===========  =================  ================
ddp        4T + h*F_cast + 4*F_kept                    4T           o*T                4T + a*T
fsdp       4(T+F)/N                                    4T/N         o*T/N              h*(R + 2U)
fsdp-sgo   4(T+F)/N                                    4T/N         o*T/N              h*(T+F)
zero2      h(T+F) + 4T/N (fp32 master; 0 without mp)   h*T/N        o*T/N              2h*min(T, 5e8)
=========  ==========================================  ===========  =================  ================

``F_cast``: frozen weights of wholly frozen networks, which the trainer casts to the half dtype;
``F_kept``: frozen weights inside a network that also trains (stage 2's spatial UNet), kept in float32.
DDP's buffers are its gradient buckets (4T) and autocast's half copies of the trainable weights (``a`` 2
with fp16/bf16, else 0). FSDP keeps every weight float32 and sharded and gathers the root unit ``R`` and up to two of the other
units (the running one and the prefetched one, ``U`` the largest) in the compute dtype; shard-grad-op keeps
every gathered unit until its backward. ZeRO-2 holds the whole model in the half dtype and two
communication buckets of DeepSpeed's default size. Activations: the per-sample count times the per-GPU
batch. Not included: the CUDA context and allocator fragmentation (about 1 GB together).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, Optional

import torch

STRATEGIES = ("ddp", "fsdp", "fsdp-sgo", "zero2")
OPTIMIZER_BYTES = {"adamw": 8, "adamw8bit": 2}
ZERO_BUCKET = 500_000_000  # DeepSpeed's default reduce/allgather bucket, in elements
WRAP_UNITS = ("ResnetBlock2D", "BasicTransformerBlock", "AnimateDiffTransformer3D")  # the FSDP units

# Stable Diffusion 1.5's published unet/config.json and vae/config.json (the keys that set the sizes).
SD15_UNET = dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, cross_attention_dim=768,
                 attention_head_dim=8, block_out_channels=[320, 640, 1280, 1280], norm_num_groups=32,
                 down_block_types=["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
                 up_block_types=["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3)
SD15_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, norm_num_groups=32,
                block_out_channels=[128, 256, 512, 512], down_block_types=["DownEncoderBlock2D"] * 4,
                up_block_types=["UpDecoderBlock2D"] * 4, sample_size=512)
SD15_TEXT_LEN = 77


@dataclass
class ParameterCounts:
    trainable: int
    frozen: int
    frozen_cast: int  # frozen weights in wholly frozen networks (cast to the half dtype by the trainer)
    root_unit: int  # FSDP: weights outside every wrapped unit
    largest_unit: int
    per_network: Dict[str, list] = field(default_factory=dict)  # name -> [trainable, total]


def _read_config(folder: Path, fallback: dict) -> tuple[dict, bool]:
    path = folder / "config.json"
    if path.is_file():
        return {k: v for k, v in json.loads(path.read_text()).items() if not k.startswith("_")}, True
    return dict(fallback), False


def build_on_meta(cfg):
    """The training module at the config's size on the meta device (no weights read or allocated), with
    the config's trainable flags; and whether the base model's own configs were found."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from magicanimate.models import AppearanceEncoderModel, UNet3DMotionModel
    from magicanimate.models.controlnet import build_densepose_controlnet
    from magicanimate.models.unet3d import unet3d_config_from_unet2d
    from magicanimate.training.builder import make_noise_scheduler
    from magicanimate.training.module import AnimateTrainingModule

    base = Path(cfg.model.base_model)
    unet_cfg, found = _read_config(base / "unet", SD15_UNET)
    vae_cfg, _ = _read_config(Path(cfg.model.vae) if cfg.model.vae else base / "vae", SD15_VAE)
    with torch.device("meta"):
        unet2d = UNet2DConditionModel.from_config(unet_cfg)
        config3d = unet3d_config_from_unet2d(dict(unet2d.config))
        config3d.update(use_motion_module=cfg.model.use_motion_module, **dict(cfg.model.motion_module_kwargs))
        unet = UNet3DMotionModel.from_config(config3d)
        encoder = AppearanceEncoderModel.from_config(dict(unet2d.config))
        controlnet = build_densepose_controlnet(unet2d, tuple(cfg.model.controlnet_embedding_channels))
        vae = AutoencoderKL.from_config(vae_cfg)
        text = torch.zeros(1, SD15_TEXT_LEN, unet2d.config.cross_attention_dim)
    module = AnimateTrainingModule(vae, unet, encoder, controlnet, make_noise_scheduler(cfg), text)
    module.configure_trainable(cfg.train)
    return module, found


def count_parameters(module) -> ParameterCounts:
    """Exact counts of a training module (trainable flags set), and its FSDP units."""
    per_network, cast = {}, 0
    for name in ("vae", "unet", "appearance_encoder", "controlnet"):
        params = list(getattr(module, name).parameters())
        trainable = sum(p.numel() for p in params if p.requires_grad)
        total = sum(p.numel() for p in params)
        per_network[name] = [trainable, total]
        cast += total if trainable == 0 else 0
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    total = sum(p.numel() for p in module.parameters())
    units, in_units = [], set()
    for sub in module.modules():
        if type(sub).__name__ in WRAP_UNITS:
            own = [p for p in sub.parameters() if id(p) not in in_units]
            in_units.update(id(p) for p in own)
            units.append(sum(p.numel() for p in own))
    root = total - sum(units)
    return ParameterCounts(trainable, total - trainable, cast, root, max(units, default=0), per_network)


@dataclass
class Setting:
    strategy: str = "ddp"
    gpus: int = 1
    mixed_precision: str = "fp16"
    optimizer: str = "adamw"
    batch: int = 1


def per_gpu_bytes(counts: ParameterCounts, activations_per_sample: int, s: Setting) -> Dict[str, int]:
    """The formula of the module docstring; every figure in bytes."""
    T, F, N = counts.trainable, counts.frozen, s.gpus
    h = 4 if s.mixed_precision == "no" else 2
    o = OPTIMIZER_BYTES[s.optimizer]
    if s.strategy == "ddp":
        weights = 4 * T + h * counts.frozen_cast + 4 * (F - counts.frozen_cast)
        grads, optim, buffers = 4 * T, o * T, 4 * T + (0 if s.mixed_precision == "no" else 2 * T)
    elif s.strategy in ("fsdp", "fsdp-sgo"):
        weights, grads, optim = 4 * (T + F) / N, 4 * T / N, o * T / N
        buffers = h * (T + F) if s.strategy == "fsdp-sgo" else h * (counts.root_unit + 2 * counts.largest_unit)
    elif s.strategy == "zero2":
        master = 4 * T / N if s.mixed_precision != "no" else 0
        weights, grads, optim = h * (T + F) + master, h * T / N, o * T / N
        buffers = 2 * h * min(T, ZERO_BUCKET)
    else:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {s.strategy!r}")
    out = {"weights": weights, "gradients": grads, "optimizer": optim, "buffers": buffers,
           "activations": activations_per_sample * s.batch}
    out = {k: int(round(v)) for k, v in out.items()}
    out["total"] = sum(out.values())
    return out


def to_json(path: Path, report: dict) -> None:
    from magicanimate.utils.files import atomic_path

    with atomic_path(Path(path)) as tmp:
        Path(tmp).write_text(json.dumps(report, indent=1))


def report_dict(counts: ParameterCounts, setting: Setting, bytes_: Dict[str, int], activations: dict,
                extra: Optional[dict] = None) -> dict:
    return {"trainable_params": counts.trainable, "frozen_params": counts.frozen, "setting": asdict(setting),
            "per_gpu_bytes": bytes_, "activations": activations, "per_network": counts.per_network,
            "fsdp_units": {"root": counts.root_unit, "largest": counts.largest_unit}, **(extra or {})}
