"""Convert MagicAnimate's official pickles to safetensors (loads faster, no pickle execution).

    python scripts/convert_checkpoints.py pretrained_models/MagicAnimate
    python scripts/convert_checkpoints.py --input some.ckpt --output some.safetensors
"""

from __future__ import annotations

import argparse
import logging

from magicanimate.cli.common import run_main
from magicanimate.config.cli import CliParser


def build_parser() -> CliParser:
    parser = CliParser(prog="convert_checkpoints.py", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", help="official MagicAnimate folder (temporal_attention/, ...)")
    parser.add_argument("--input", help="a single pickle (.ckpt/.bin/.pth) to convert")
    parser.add_argument("--output", help="output .safetensors for --input")
    return parser


def run(args) -> int:
    from magicanimate.errors import ConfigError
    from magicanimate.models.checkpoints import convert_checkpoint_to_safetensors, convert_magicanimate_folder

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.input:
        if not args.output or args.folder:
            raise ConfigError("--input needs --output and no folder")
        n = convert_checkpoint_to_safetensors(args.input, args.output)
        print(f"{args.output}: {n} tensors")
    elif args.folder:
        for path in convert_magicanimate_folder(args.folder):
            print(path)
    else:
        raise ConfigError("give a MagicAnimate folder or --input/--output")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_main(run, build_parser(), argv, interrupted="interrupted; no half-written file left")


if __name__ == "__main__":
    raise SystemExit(main())
