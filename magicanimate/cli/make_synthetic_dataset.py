"""Render a synthetic-dancer dataset (train/val/test with disjoint identities and motions).

Example:
    python scripts/make_synthetic_dataset.py data/synthetic --size 64 --train 64 --val 8 --test 8 --frames 32

Writes <out>/{train,val,test}/<video_id>/{images,densepose}/NNNN.png and <out>/manifest.json; each split
folder is a dataset root in the training "generic" layout.
"""

from __future__ import annotations

import argparse

from magicanimate.cli.common import run_main
from magicanimate.config.cli import CliParser


def _size(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    try:
        vals = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be N or HxW, got {text!r}") from None
    if len(vals) == 1:
        return vals[0], vals[0]
    if len(vals) == 2:
        return vals[0], vals[1]
    raise argparse.ArgumentTypeError(f"size must be N or HxW, got {text!r}")


def build_parser() -> CliParser:
    p = CliParser(prog="make_synthetic_dataset.py", description=__doc__,
                  formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", help="output folder (created; must be empty unless --overwrite)")
    p.add_argument("--size", type=_size, default=(64, 64), help="frame size: N or HxW (default 64)")
    p.add_argument("--train", type=int, default=64, help="training videos (default 64)")
    p.add_argument("--val", type=int, default=8, help="validation videos (default 8)")
    p.add_argument("--test", type=int, default=8, help="test videos (default 8)")
    p.add_argument("--frames", type=int, default=32, help="frames per video (default 32)")
    p.add_argument("--fps", type=float, default=25.0, help="frame rate the motion is sampled at (default 25)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing synthetic dataset at OUT")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def run(args) -> int:
    from magicanimate.demo.synthetic.dataset import write_synthetic_dataset

    manifest = write_synthetic_dataset(args.out, counts={"train": args.train, "val": args.val, "test": args.test},
                                       num_frames=args.frames, size=args.size, seed=args.seed, fps=args.fps,
                                       overwrite=args.overwrite, progress=not args.quiet)
    n = {k: len(v) for k, v in manifest["splits"].items()}
    print(f"wrote {sum(n.values())} videos ({n}) of {args.frames} frames at {args.size[0]}x{args.size[1]} to {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_main(run, build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
