"""Train MagicAnimate (stage 1: appearance encoder + DensePose ControlNet; stage 2: motion modules).

    python scripts/train.py --config configs/training/stage1.yaml [key=value ...]
    accelerate launch --multi_gpu --num_processes 8 scripts/train.py --config configs/training/stage2.yaml
    python scripts/train.py --config configs/training/stage1.yaml resume=latest

Checkpoints go to <output_dir>/checkpoints/checkpoint-N, the resolved config to <output_dir>/config.yaml, and
at the end the trained weights to <output_dir>/export/ (pipeline/ for scripts/animate.py --pipeline, with the
run's inference settings, and MagicAnimate/ in the official layout). See docs/training.md.
"""

from __future__ import annotations

import argparse
from typing import Optional, Sequence

from magicanimate.cli.common import run_main, setup_logging
from magicanimate.config.cli import CliParser


def build_parser() -> CliParser:
    ap = CliParser(prog="train.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="training YAML (configs/training/)")
    ap.add_argument("--threads", type=int, default=None, metavar="N",
                    help="CPU threads for torch (config key `threads`; default: half the available cores, at most 8)")
    ap.add_argument("--quiet", action="store_true", help="warnings only")
    ap.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. max_train_steps=10")
    return ap


def run(args) -> int:
    setup_logging(args.quiet)
    from magicanimate.training.config import load_train_config
    from magicanimate.training.trainer import train
    from magicanimate.utils.devices import set_threads

    overrides = list(args.overrides) + ([f"threads={args.threads}"] if args.threads is not None else [])
    cfg = load_train_config(args.config, overrides)
    set_threads(cfg.threads)
    result = train(cfg)
    done = f"trained to step {result.global_step} of {cfg.max_train_steps}"
    if result.export_dir is not None:
        print(f"{done}; weights exported to {result.export_dir}")
    else:
        print(f"{done}; last checkpoint {result.last_checkpoint}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_main(run, build_parser(), argv, interrupted="interrupted; the last checkpoint is kept (resume=latest)")


if __name__ == "__main__":
    raise SystemExit(main())
