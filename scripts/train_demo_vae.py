#!/usr/bin/env python
"""Train the demo's tiny VAE on synthetic-dancer frames.

Example:
    python scripts/train_demo_vae.py --config configs/demo/vae.yaml output_dir=outputs/demo/vae steps=4000

Saves a diffusers AutoencoderKL folder (config.json with the measured scaling_factor, safetensors
weights, train_config.yaml, metrics.json with held-out PSNR and the time taken to reach PSNR marks).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from magicanimate.config import add_config_arguments, load_config, to_object  # noqa: E402
from magicanimate.errors import MagicAnimateError  # noqa: E402
from magicanimate.demo.tiny_vae import TinyVAETrainConfig, train_tiny_vae  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(p, default_config="configs/demo/vae.yaml")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    try:
        cfg = to_object(load_config(TinyVAETrainConfig, args.config, args.overrides))
        metrics = train_tiny_vae(cfg, progress=not args.quiet)
    except MagicAnimateError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    summary = {k: metrics[k] for k in ("steps", "train_seconds", "test_psnr", "scaling_factor", "weights_bytes", "psnr_marks")}
    print(json.dumps(summary, indent=1))
    print(f"saved the VAE to {cfg.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
