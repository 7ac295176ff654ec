"""Train the demo's tiny VAE on synthetic-dancer frames.

Example:
    python scripts/train_demo_vae.py --config configs/demo/vae.yaml output_dir=outputs/demo/vae steps=4000

Saves a diffusers AutoencoderKL folder (config.json with the measured scaling_factor, safetensors
weights, train_config.yaml, metrics.json with held-out PSNR and the time taken to reach PSNR marks).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from magicanimate.cli.common import run_main
from magicanimate.config import add_config_arguments, load_config, to_object
from magicanimate.config.cli import CliParser

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "demo" / "vae.yaml"


def build_parser() -> CliParser:
    p = CliParser(prog="train_demo_vae.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(p, default_config=str(DEFAULT_CONFIG))
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def run(args) -> int:
    from magicanimate.demo.tiny_vae import TinyVAETrainConfig, train_tiny_vae

    cfg = to_object(load_config(TinyVAETrainConfig, args.config, args.overrides))
    metrics = train_tiny_vae(cfg, progress=not args.quiet)
    summary = {k: metrics[k] for k in ("steps", "train_seconds", "test_psnr", "scaling_factor", "weights_bytes", "psnr_marks")}
    print(json.dumps(summary, indent=1))
    print(f"saved the VAE to {cfg.output_dir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_main(run, build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
