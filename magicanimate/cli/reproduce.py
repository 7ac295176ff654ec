"""Reproduce a table of the paper: animate a test split with the pipeline, then evaluate it.

    python scripts/reproduce.py --config configs/eval/tiktok.yaml animation.weights_root=pretrained_models
    python scripts/reproduce.py --config configs/eval/ted.yaml --skip-generation   # videos already there

Writes ground truth, generated videos, results.json and results.md (ours beside the paper's numbers) under
the config's output_dir. See docs/evaluation.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from magicanimate.cli.common import add_threads_flag, run_main
from magicanimate.config.cli import CliParser
from magicanimate.evaluation.harness import RANDOM_WARNING


def build_parser() -> argparse.ArgumentParser:
    from magicanimate.config import add_config_arguments

    parser = CliParser(prog="reproduce.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser, required=True)
    parser.add_argument("--skip-generation", action="store_true",
                        help="evaluate <output_dir>/generated as it is (no pipeline run)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--random-networks-for-tests", action="store_true",
                        help="TESTS ONLY: random metric networks; numbers are meaningless")
    add_threads_flag(parser)
    return parser


def run(args, animate_fn=None) -> int:
    from magicanimate.evaluation.config import load_eval_config
    from magicanimate.evaluation.reproduce import paper_table, run_reproduction
    from magicanimate.utils.devices import set_threads

    set_threads(args.threads)

    if args.random_networks_for_tests:
        print(f"!!! {RANDOM_WARNING} !!!", file=sys.stderr)
    cfg = load_eval_config(args.config, args.overrides)
    results = run_reproduction(cfg, animate_fn=animate_fn, skip_generation=args.skip_generation,
                               random_networks=args.random_networks_for_tests, progress=not args.no_progress)
    from magicanimate.evaluation.harness import markdown_table

    print(markdown_table(results))
    print()
    print(paper_table(results, cfg.paper))
    print(f"\nresults written to {Path(cfg.output_dir) / 'results.json'} and results.md")
    return 0


def main(argv=None, animate_fn=None) -> int:
    return run_main(lambda args: run(args, animate_fn), build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
