"""GPU memory per GPU of a training config: weights, gradients, optimizer state, activations (docs/memory.md).

    python scripts/estimate_memory.py --config configs/training/stage1.yaml --gpus 4 --strategy fsdp
    python scripts/estimate_memory.py --config configs/training/stage2.yaml --table --resolutions 512 768

Parameter counts are exact (the networks built on the meta device at the config's size). Activations are
counted by running the forward at the real shapes, on the meta device by default (no memory, seconds);
--activation-device cuda also measures the allocator's peak. --measure-resolution counts at a smaller size
and scales by the pixel count (labelled "scaled").
"""

from __future__ import annotations

import argparse
from typing import Optional, Sequence

from magicanimate.cli.common import run_main, setup_logging
from magicanimate.config.cli import CliParser

GPU_COUNTS = (1, 2, 4, 8)
TABLE_STRATEGIES = ("ddp", "fsdp", "zero2")


def build_parser() -> CliParser:
    from magicanimate.training.memory import STRATEGIES

    ap = CliParser(prog="estimate_memory.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="training YAML (configs/training/)")
    ap.add_argument("--gpus", type=int, default=1, metavar="N")
    ap.add_argument("--strategy", choices=STRATEGIES, default="ddp",
                    help="ddp | fsdp (full shard) | fsdp-sgo (shard-grad-op) | zero2 (DeepSpeed)")
    ap.add_argument("--mixed-precision", choices=("no", "fp16", "bf16"), default=None, help="default: the config's")
    ap.add_argument("--optimizer", choices=("adamw", "adamw8bit"), default=None,
                    help="default: the config's (auto counts as adamw)")
    ap.add_argument("--gradient-checkpointing", action=argparse.BooleanOptionalAction, default=None,
                    help="default: the config's")
    ap.add_argument("--resolution", type=int, default=None, help="square frames of this size (default: the config's)")
    ap.add_argument("--batch-size", type=int, default=None, help="per GPU (default: the config's)")
    ap.add_argument("--activation-device", default="meta", help="meta (default), cpu or cuda")
    ap.add_argument("--measure-resolution", type=int, default=None, metavar="R",
                    help="count activations at R x R and scale by the pixel count")
    ap.add_argument("--table", action="store_true", help="print the docs/memory.md table (1, 2, 4, 8 GPUs)")
    ap.add_argument("--resolutions", type=int, nargs="+", default=[512, 768], help="with --table")
    ap.add_argument("--json", default=None, metavar="FILE", help="write the estimate as JSON")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="training config overrides")
    return ap


def _setting(args, cfg):
    from magicanimate.training.memory import Setting

    optimizer = args.optimizer or ("adamw8bit" if cfg.optim.optimizer == "adamw8bit" else "adamw")
    return Setting(strategy=args.strategy, gpus=args.gpus, optimizer=optimizer,
                   mixed_precision=args.mixed_precision or cfg.mixed_precision,
                   batch=args.batch_size or cfg.train_batch_size)


def activations_per_sample(module, cfg, setting, resolution: int, checkpointing: bool, device: str,
                           measure_at: Optional[int]) -> dict:
    """Bytes of one sample's activations at ``resolution``², counted (or measured) at ``measure_at``²."""
    import torch

    from magicanimate.training.activations import count_activations

    at = measure_at or resolution
    frames = cfg.data.num_frames if cfg.data.sample == "video" else 1
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(setting.mixed_precision, torch.float32)
    networks = tuple(getattr(module, n).to(device) for n in ("unet", "appearance_encoder", "controlnet"))
    count = count_activations(networks, batch=1, frames=frames, height=at, width=at,
                              text_len=module.text_embedding.shape[1], compute_dtype=dtype, device=device)
    counted = count.checkpointed_bytes if checkpointing else count.saved_bytes
    scale = (resolution / at) ** 2
    how = "measured" if count.peak_bytes is not None else "counted"
    return {"per_sample_bytes": int(counted * scale), "how": how if scale == 1 else f"scaled from {at}x{at}",
            "counted_at": at, "frames": frames, "gradient_checkpointing": checkpointing,
            "allocator_peak_bytes": count.peak_bytes, "device": device}


def _gib(n: float) -> str:
    return f"{n / 2 ** 30:.1f}"


def _table(module, counts, cfg, args, checkpointing: bool) -> str:
    from magicanimate.training.memory import per_gpu_bytes

    rows = ["| resolution | activations / sample | strategy | " + " | ".join(f"{g} GPU" for g in GPU_COUNTS) + " |",
            "|---|---|---|" + "---|" * len(GPU_COUNTS)]
    for res in args.resolutions:
        setting = _setting(args, cfg)
        act = activations_per_sample(module, cfg, setting, res, checkpointing, args.activation_device,
                                     args.measure_resolution)
        for strategy in TABLE_STRATEGIES:
            cells = []
            for gpus in GPU_COUNTS:
                setting.strategy, setting.gpus = strategy, gpus
                cells.append(_gib(per_gpu_bytes(counts, act["per_sample_bytes"], setting)["total"]))
            rows.append(f"| {res}² | {_gib(act['per_sample_bytes'])} GiB ({act['how']}) | {strategy} | "
                        + " | ".join(cells) + " |")
    return "\n".join(rows)


def run(args) -> int:
    setup_logging(args.quiet)
    from magicanimate.errors import ConfigError
    from magicanimate.training.config import load_train_config
    from magicanimate.training.memory import build_on_meta, count_parameters, per_gpu_bytes, report_dict, to_json

    cfg = load_train_config(args.config, list(args.overrides))
    if args.gpus < 1:
        raise ConfigError("--gpus must be >= 1")
    module, found = build_on_meta(cfg)
    counts = count_parameters(module)
    checkpointing = cfg.gradient_checkpointing if args.gradient_checkpointing is None else args.gradient_checkpointing
    sizes = "the base model's config.json files" if found else "SD1.5's published configs (base_model not found)"
    print(f"{args.config}: {counts.trainable:,} trainable, {counts.frozen:,} frozen parameters ({sizes})")
    if args.table:
        print(_table(module, counts, cfg, args, checkpointing))
        return 0
    setting = _setting(args, cfg)
    resolution = args.resolution or max(cfg.data.height, cfg.data.width)
    act = activations_per_sample(module, cfg, setting, resolution, checkpointing, args.activation_device,
                                 args.measure_resolution)
    per_gpu = per_gpu_bytes(counts, act["per_sample_bytes"], setting)
    print(f"{setting.strategy} on {setting.gpus} GPU(s), {setting.mixed_precision}, {setting.optimizer}, "
          f"batch {setting.batch}, {resolution}², gradient checkpointing {'on' if checkpointing else 'off'}:")
    for key, value in per_gpu.items():
        print(f"  {key:<12} {_gib(value):>7} GiB" + (f"  ({act['how']})" if key == "activations" else ""))
    if args.json:
        to_json(args.json, report_dict(counts, setting, per_gpu, act, {"resolution": resolution}))
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_main(run, build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
