#!/usr/bin/env python
"""Train MagicAnimate (stage 1: appearance encoder + DensePose ControlNet; stage 2: motion modules).

    python scripts/train.py --config configs/training/stage1.yaml [key=value ...]
    accelerate launch --multi_gpu --num_processes 8 scripts/train.py --config configs/training/stage2.yaml
    python scripts/train.py --config configs/training/stage1.yaml resume=latest

Checkpoints go to <output_dir>/checkpoints/checkpoint-N, the resolved config to <output_dir>/config.yaml, and
at the end the trained weights to <output_dir>/export/ (pipeline/ for scripts/animate.py --pipeline, and
MagicAnimate/ in the official layout). See README "Training".
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from magicanimate.errors import MagicAnimateError  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="training YAML (configs/training/)")
    ap.add_argument("--quiet", action="store_true", help="warnings only")
    ap.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. max_train_steps=10")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        from magicanimate.training.config import load_train_config
        from magicanimate.training.trainer import train

        cfg = load_train_config(args.config, args.overrides)
        result = train(cfg)
    except MagicAnimateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    done = f"trained to step {result.global_step} of {cfg.max_train_steps}"
    if result.export_dir is not None:
        print(f"{done}; weights exported to {result.export_dir}")
    else:
        print(f"{done}; last checkpoint {result.last_checkpoint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
