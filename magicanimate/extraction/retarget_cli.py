"""Command line of ``scripts/retarget.py``: fit an existing DensePose motion video to the reference person's
body (kept in the package so it is importable and tested)."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Optional, Sequence

from magicanimate.errors import MagicAnimateError
from magicanimate.extraction.backends import BACKENDS
from magicanimate.extraction.extract import default_preview_path
from magicanimate.extraction.retarget_video import retarget_video


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="retarget.py",
        description="Retarget a DensePose motion video to the body of the person to animate: the dancer's "
                    "joint angles, facing and travel, with the reference's bone lengths, widths and "
                    "position. Writes a control video of the same length, size and fps. See "
                    "docs/retargeting.md.")
    p.add_argument("--motion", required=True, help="DensePose control video in MagicAnimate's colours (e.g. "
                   "from scripts/extract_densepose.py, or TikTok's)")
    ref = p.add_mutually_exclusive_group(required=True)
    ref.add_argument("--reference-map", metavar="IMAGE",
                     help="DensePose rendering of the reference image, in the same colours")
    ref.add_argument("--reference", metavar="IMAGE",
                     help="the reference photo itself; its part map comes from --backend")
    p.add_argument("--output", required=True, help="retargeted control video to write (.mp4)")
    p.add_argument("--preview", nargs="?", const="", default=None, metavar="PATH",
                   help="also write driver | retargeted | reference side by side (default: OUTPUT_preview.mp4)")
    p.add_argument("--backend", choices=BACKENDS, default="mediapipe",
                   help="with --reference: the pose backend that reads the photo (default mediapipe)")
    p.add_argument("--weights", default=None, help="detectron2 backend: DensePose weights (.pkl)")
    p.add_argument("--config", default=None, help="detectron2 backend: DensePose config (.yaml)")
    p.add_argument("--device", default="cpu", help="detectron2 backend: torch device (default cpu)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    preview = None
    if args.preview is not None:
        preview = args.preview or default_preview_path(args.output)
    backend_kwargs = {}
    if args.backend == "detectron2":
        backend_kwargs = dict(weights=args.weights, config=args.config, device=args.device)
    try:
        result = retarget_video(args.motion, args.output, reference_map=args.reference_map,
                                reference=args.reference, preview=preview, backend=args.backend,
                                **backend_kwargs)
    except MagicAnimateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    h, w = result.size
    note = (f"; {len(result.global_frames)} frame(s) without a skeleton moved by the global scale and shift"
            if result.global_frames else "")
    print(f"wrote {result.output} ({result.num_frames} frames, {w}x{h}, {result.fps:g} fps) in "
          f"{result.seconds:.1f} s{note}" + (f"; preview {result.preview}" if result.preview else ""))
    return 0
