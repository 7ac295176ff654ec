"""Command line of ``scripts/extract_densepose.py`` (kept in the package so it is importable and tested)."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Optional, Sequence

from magicanimate.errors import MagicAnimateError
from magicanimate.extraction.backends import BACKENDS
from magicanimate.extraction.extract import MISSING_MODES, default_preview_path, extract_densepose
from magicanimate.extraction.framing import DEFAULT_MARGIN, FITS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="extract_densepose.py",
        description="Turn a video of a person into a DensePose control video for MagicAnimate "
                    "(viridis part-index encoding, same frame count and fps as the input by default).")
    p.add_argument("--input", required=True, help="video file or folder of frames")
    p.add_argument("--output", required=True,
                   help="control video to write (.mp4), or a folder name without extension for PNG frames")
    p.add_argument("--backend", choices=BACKENDS, default="mediapipe",
                   help="mediapipe (default: offline, CPU, approximate part map from landmarks), torchscript "
                        "(DensePose R-CNN exported to TorchScript; needs --weights FILE.torchscript) or "
                        "detectron2 (needs --weights and --config)")
    p.add_argument("--size", type=int, default=512, help="output side in pixels (default 512)")
    p.add_argument("--fit", choices=FITS, default="crop",
                   help="crop: one square window around the person for the whole video (default); pad: the "
                        "whole frame padded to a square with the DensePose background")
    p.add_argument("--margin", type=float, default=DEFAULT_MARGIN,
                   help=f"--fit crop: space around the person, fraction of their extent (default {DEFAULT_MARGIN})")
    p.add_argument("--fps", type=float, default=None,
                   help="output frame rate (frames dropped/repeated); default: the input's")
    p.add_argument("--input-fps", type=float, default=None,
                   help="frame rate of a folder of frames (default 25)")
    p.add_argument("--smooth", type=float, default=1.0,
                   help="temporal smoothing strength of landmarks, masks and part maps (0 = off: the raw "
                        "per-frame output; default 1)")
    p.add_argument("--missing", choices=MISSING_MODES, default="hold",
                   help="frames without a person: hold the nearest earlier detection (default) or leave "
                        "them background")
    p.add_argument("--align-to", metavar="REFERENCE_IMAGE", default=None,
                   help="scale and shift the motion so the body matches the person in this image")
    p.add_argument("--retarget-to", metavar="REFERENCE_IMAGE", default=None,
                   help="retarget the motion to the body of the person in this image: the dancer's joint "
                        "angles with the reference's bone lengths, widths and position (see "
                        "docs/retargeting.md)")
    p.add_argument("--preview", nargs="?", const="", default=None, metavar="PATH",
                   help="also write a side-by-side preview (default path: OUTPUT_preview.mp4)")
    p.add_argument("--weights", default=None,
                   help="torchscript backend: densepose_r50_fpn_dl.torchscript or densepose_r101_fpn_dl.torchscript "
                        "(DensePose-TorchScript releases); detectron2 backend: DensePose weights (.pkl)")
    p.add_argument("--config", default=None, help="detectron2 backend: DensePose config (.yaml)")
    p.add_argument("--device", default="cpu",
                   help="torchscript and detectron2 backends: torch device, cpu (default) or cuda[:N]")
    p.add_argument("--person", type=int, default=None, metavar="K",
                   help="torchscript and detectron2 backends: follow the K-th person from the left (1 = leftmost) "
                        "in the first frame with a person; default: the largest (box area x score)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    for noisy in ("absl",):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    preview = None
    if args.preview is not None:
        preview = args.preview or default_preview_path(args.output)
    try:
        result = extract_densepose(
            args.input, args.output, backend=args.backend, size=args.size, fit=args.fit, margin=args.margin,
            fps=args.fps, input_fps=args.input_fps, smooth=args.smooth, missing=args.missing,
            align_to=args.align_to, preview=preview, weights=args.weights, config=args.config,
            device=args.device, person=args.person, retarget_to=args.retarget_to)
    except MagicAnimateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {result.output} ({result.num_frames} frames, {result.size}x{result.size}, {result.fps:g} fps) "
          f"in {result.seconds:.1f} s ({result.frames_per_second:.1f} frames/s)"
          + (f"; preview {result.preview}" if result.preview else ""))
    return 0
