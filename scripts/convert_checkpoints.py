#!/usr/bin/env python
"""Convert MagicAnimate's official pickles to safetensors (loads faster, no pickle execution).

    python scripts/convert_checkpoints.py pretrained_models/MagicAnimate
    python scripts/convert_checkpoints.py --input some.ckpt --output some.safetensors
"""

from __future__ import annotations

import argparse
import logging
import sys

from magicanimate.errors import MagicAnimateError
from magicanimate.models.checkpoints import convert_checkpoint_to_safetensors, convert_magicanimate_folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", help="official MagicAnimate folder (temporal_attention/, ...)")
    parser.add_argument("--input", help="a single pickle (.ckpt/.bin/.pth) to convert")
    parser.add_argument("--output", help="output .safetensors for --input")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.input:
            if not args.output or args.folder:
                parser.error("--input needs --output and no folder")
            n = convert_checkpoint_to_safetensors(args.input, args.output)
            print(f"{args.output}: {n} tensors")
        elif args.folder:
            for path in convert_magicanimate_folder(args.folder):
                print(path)
        else:
            parser.error("give a MagicAnimate folder or --input/--output")
    except MagicAnimateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
