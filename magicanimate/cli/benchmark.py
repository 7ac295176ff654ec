"""Seconds per frame and peak memory of the pipeline versus video length, in both fusion modes.

    python scripts/benchmark.py                                 # 32/128/512/1000 frames, 64x64, tiny model
    python scripts/benchmark.py --frames 32 128 --size 256 --steps 2 --out bench_256

Writes ``<out>.json`` and ``<out>.md`` (see magicanimate.benchmarks.lengths).
"""

from __future__ import annotations

import argparse
import json
from typing import Optional, Sequence

from magicanimate.cli.common import run_main
from magicanimate.config.cli import CliParser


def build_parser() -> CliParser:
    ap = CliParser(prog="benchmark.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, nargs="+", default=[32, 128, 512, 1000])
    ap.add_argument("--modes", nargs="+", default=["tapered", "parity"], choices=["tapered", "parity"])
    ap.add_argument("--size", type=int, default=64, help="frame size in pixels (square)")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads for torch (fixed, so runs compare)")
    ap.add_argument("--out", default="benchmark", help="output prefix (writes .json and .md)")
    ap.add_argument("--_child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    return ap


def run(args) -> int:
    from magicanimate.benchmarks import lengths
    from magicanimate.utils.devices import resolve_device

    device = str(resolve_device(args.device))
    if args._child:
        print(json.dumps(lengths.measure(args.mode, args.frames[0], args.size, args.steps, device, args.threads)))
        return 0
    lengths.run_lengths(args.modes, args.frames, args.size, args.steps, device, args.threads, args.out)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_main(run, build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
