"""Evaluate generated videos against ground truth: L1, PSNR, SSIM, LPIPS, FID, FID-VID, FVD.

    python scripts/evaluate.py --generated G --ground-truth T --weights-dir W [--protocol disco|standard]
        [--metrics l1 psnr ssim lpips fid fid_vid fvd] [--output results.json]

G and T hold one video per entry (an mp4 or a folder of frames), matched by name; frames are matched in
sorted order and the generated ones resized to the ground-truth size (bilinear). See docs/evaluation.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from magicanimate.cli.common import add_threads_flag, run_main
from magicanimate.config.cli import CliParser
from magicanimate.evaluation.features import CLIP_BUILDERS
from magicanimate.evaluation.harness import (
    METRICS, PROTOCOLS, RANDOM_WARNING, EvalOptions, evaluate_folders, markdown_table, write_results,
)


def build_parser() -> argparse.ArgumentParser:
    parser = CliParser(prog="evaluate.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generated", required=True, type=Path, help="folder of generated videos (or one video)")
    parser.add_argument("--ground-truth", required=True, type=Path, help="folder of ground-truth videos (or one)")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="disco",
                        help="disco: as the TikTok tables were computed; standard: correct definitions")
    parser.add_argument("--metrics", nargs="+", choices=METRICS, default=list(METRICS), metavar="METRIC",
                        help=f"subset of {' '.join(METRICS)} (default: all)")
    parser.add_argument("--weights-dir", type=Path, default=None,
                        help="folder with the published metric weight files (scripts/download_eval_weights.py)")
    parser.add_argument("--output", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--fvd-clips", choices=sorted(CLIP_BUILDERS), default=None,
                        help="FVD clip builder (default: stride1 for disco, chunks for standard)")
    parser.add_argument("--masks", type=Path, default=None,
                        help="foreground masks, one video/frame folder per ground-truth video (foreground L1)")
    parser.add_argument("--allow-length-mismatch", action="store_true",
                        help="compare the first min(len) frames when a pair's frame counts differ")
    parser.add_argument("--max-frames", type=int, default=None, help="use at most this many frames per video")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="auto", help="auto (cuda, mps or cpu), cpu, cuda, cuda:1, ...")
    parser.add_argument("--no-hash-check", action="store_true", help="skip the size and SHA-256 checks of weight files")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--random-networks-for-tests", action="store_true",
                        help="TESTS ONLY: seeded random weights for the metric networks; numbers are meaningless")
    parser.add_argument("--seed", type=int, default=0, help="seed of --random-networks-for-tests")
    add_threads_flag(parser)
    return parser


def run(args) -> int:
    from magicanimate.utils.devices import set_threads

    set_threads(args.threads)
    if args.random_networks_for_tests:
        print(f"!!! {RANDOM_WARNING} !!!", file=sys.stderr)
    options = EvalOptions(
        protocol=args.protocol, metrics=args.metrics, weights_dir=args.weights_dir,
        random_networks=args.random_networks_for_tests, seed=args.seed, device=args.device,
        batch_size=args.batch_size, fvd_clips=args.fvd_clips, allow_length_mismatch=args.allow_length_mismatch,
        max_frames=args.max_frames, masks=args.masks, verify_hash=not args.no_hash_check,
        progress=not args.no_progress,
    )
    results = evaluate_folders(args.generated, args.ground_truth, options)
    if args.output is not None:
        write_results(results, args.output)
    print(markdown_table(results))
    if args.output is not None:
        print(f"\nresults written to {args.output}")
    if args.random_networks_for_tests:
        print(f"\n!!! {RANDOM_WARNING} !!!")
    return 0


def main(argv=None) -> int:
    return run_main(run, build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
