"""Fetch the published metric-network weights into a folder (needs internet; the library never downloads).

    python scripts/download_eval_weights.py --weights-dir weights/eval            # fetch what is missing
    python scripts/download_eval_weights.py --weights-dir weights/eval --dry-run  # only list

Direct URLs are fetched and checked (size and SHA-256 prefix where published). Files published on Google
Drive (Hara's resnet-50-kinetics.pth, i3d_pretrained_400.pt) cannot be fetched reliably by a script: the
command prints where to get them and where to put them. Then pass --weights-dir to scripts/evaluate.py.
"""

from __future__ import annotations

import argparse
import shutil
import urllib.request
from pathlib import Path

from magicanimate.cli.common import run_main
from magicanimate.config.cli import CliParser
from magicanimate.errors import InputError
from magicanimate.evaluation.weights import WEIGHT_FILES, check_file
from magicanimate.utils.files import atomic_path


def _direct(url: str) -> bool:
    return url.startswith("https://") and " " not in url and "drive.google" not in url and "(" not in url


def build_parser() -> CliParser:
    parser = CliParser(prog="download_eval_weights.py", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights-dir", type=Path, required=True)
    parser.add_argument("--dry-run", action="store_true", help="list what would be fetched; download nothing")
    parser.add_argument("--only", nargs="+", choices=sorted(WEIGHT_FILES), help="fetch only these files")
    return parser


def run(args) -> int:
    manual = []
    for key, spec in WEIGHT_FILES.items():
        if args.only and key not in args.only:
            continue
        target = args.weights_dir / spec.filename
        if target.is_file():
            print(f"present   {target}")
            continue
        if not _direct(spec.url):
            manual.append(spec)
            print(f"manual    {target}  <- {spec.url}")
            continue
        print(f"{'would get' if args.dry_run else 'fetching '} {target}  <- {spec.url}")
        if args.dry_run:
            continue
        try:
            with atomic_path(target) as tmp:
                with urllib.request.urlopen(spec.url) as response, open(tmp, "wb") as handle:
                    shutil.copyfileobj(response, handle, length=1 << 22)
                check_file(tmp, spec)
        except OSError as exc:
            raise InputError(f"{spec.url}: download failed ({exc})") from None
    if manual:
        print("\nFetch these by hand (Google Drive) into", args.weights_dir)
        for spec in manual:
            print(f"  {spec.describe()}")
    return 0


def main(argv=None) -> int:
    return run_main(run, build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
