#!/usr/bin/env python
"""Animate a reference image with a DensePose motion video.

    python scripts/animate.py                                   # the bundled CPU demo (demo/)
    python scripts/animate.py --reference me.png --motion dance_densepose.mp4 --output out.mp4 \
        --weights pretrained_models [--steps 25 --guidance-scale 7.5 --seed 1 --fusion tapered ...]
    python scripts/animate.py --config configs/prompts/animation.yaml   # the original's config format
    python scripts/animate.py --config configs/inference/default.yaml reference=a.png motion=b.mp4

Writes OUT.mp4, OUT_grid.mp4 (reference | DensePose | result) and OUT_config.yaml. The motion input must be
a DensePose rendering; make one from an ordinary video with scripts/extract_densepose.py.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from magicanimate.errors import MagicAnimateError  # noqa: E402

# flag -> config key (flags left unset keep the config file's / schema's value)
FLAGS = {
    "reference": "reference", "motion": "motion", "output": "output", "steps": "steps",
    "guidance_scale": "guidance_scale", "seed": "seed", "size": "size", "width": "width", "height": "height",
    "fps": "fps", "fit": "fit", "context_frames": "context_frames", "context_overlap": "context_overlap",
    "fusion": "fusion", "device": "device", "dtype": "dtype", "scheduler": "scheduler", "offset": "offset",
    "max_frames": "max_frames", "decode_chunk": "decode_chunk", "weights": "weights.root",
    "pipeline": "weights.pipeline", "prompt_embeds": "weights.prompt_embeds",
    "init_from_reference": "init_from_reference", "init_strength": "init_strength",
}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", help="YAML: our inference schema (configs/inference/) or the original's prompt "
                                     "format (configs/prompts/, with source_image/video_path lists)")
    ap.add_argument("--reference", help="reference image (png/jpg)")
    ap.add_argument("--motion", help="DensePose motion video (mp4 or a folder of frames)")
    ap.add_argument("--output", help="result video path (.mp4)")
    ap.add_argument("--weights", help="weights root in the original layout, or a saved pipeline folder")
    ap.add_argument("--pipeline", help="a folder written by MagicAnimatePipeline.save_pretrained")
    ap.add_argument("--prompt-embeds", dest="prompt_embeds", help="saved empty-prompt embedding (skips CLIP)")
    ap.add_argument("--steps", type=int)
    ap.add_argument("--guidance-scale", dest="guidance_scale", type=float)
    ap.add_argument("--seed", type=int, help="-1 = random (the seed used is saved in the config)")
    ap.add_argument("--size", type=int, help="longer output side (aspect of the motion video kept)")
    ap.add_argument("--width", type=int)
    ap.add_argument("--height", type=int)
    ap.add_argument("--fps", type=float, help="output fps (default: the motion video's)")
    ap.add_argument("--fit", choices=["pad", "crop", "resize"])
    ap.add_argument("--context-frames", dest="context_frames", type=int)
    ap.add_argument("--context-overlap", dest="context_overlap", type=int)
    ap.add_argument("--fusion", choices=["parity", "tapered"])
    ap.add_argument("--scheduler", help="diffusers scheduler class (default DDIMScheduler)")
    ap.add_argument("--device", help="auto | cpu | cuda | cuda:N | mps")
    ap.add_argument("--dtype", choices=["auto", "fp32", "fp16", "bf16"])
    ap.add_argument("--offset", type=int, help="first motion frame to use")
    ap.add_argument("--max-frames", dest="max_frames", type=int)
    ap.add_argument("--decode-chunk", dest="decode_chunk", type=int, help="frames per VAE decode")
    ap.add_argument("--cpu-offload", dest="cpu_offload", action="store_true", default=None,
                    help="keep models on the CPU until used (GPU memory saver)")
    ap.add_argument("--sequential-guidance", dest="sequential_guidance", action="store_true", default=None,
                    help="run the two guidance halves one after the other (GPU memory saver)")
    ap.add_argument("--init-from-reference", dest="init_from_reference", action=argparse.BooleanOptionalAction,
                    default=None, help="start from the noised reference latent instead of pure noise")
    ap.add_argument("--init-strength", dest="init_strength", type=float,
                    help="with --init-from-reference: fraction of the steps run, in (0, 1] (image-to-image strength)")
    ap.add_argument("--no-grid", dest="grid", action="store_false", default=None)
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    ap.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. weights.vae=...")
    return ap


def _flag_overrides(args) -> list[str]:
    out = []
    for flag, key in FLAGS.items():
        value = getattr(args, flag)
        if value is not None:
            out.append(f"{key}={value!r}" if isinstance(value, str) else f"{key}={value}")
    for flag in ("cpu_offload", "sequential_guidance", "grid"):
        if getattr(args, flag) is not None:
            out.append(f"{flag}={str(getattr(args, flag)).lower()}")
    if args.quiet:
        out.append("progress=false")
    return out


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    from magicanimate.config import apply_overrides
    from magicanimate.pipelines.animate import animate, demo_config, prepare
    from magicanimate.pipelines.config import (is_original_prompt_config, jobs_from_original,
                                               load_inference_config, load_original_prompt_config)

    try:
        overrides = _flag_overrides(args) + list(args.overrides)
        if args.config and is_original_prompt_config(args.config):
            jobs = jobs_from_original(load_original_prompt_config(args.config), base_dir=Path.cwd())
            for job in jobs:
                apply_overrides(job, overrides)
        elif args.config or overrides:
            jobs = [load_inference_config(args.config, overrides)]
        else:
            jobs = [demo_config()]
        # check every job's inputs and weights before loading any model
        prepared = [prepare(job) for job in jobs]
        pipe = None
        for job, inputs in zip(jobs, prepared):
            if pipe is None or inputs.weights != prepared[0].weights:
                pipe = None
            result = animate(job, pipeline=pipe, prepared=inputs)
            pipe = result.pipeline
            if int(os.environ.get("RANK", "0")) != 0:  # several processes: rank 0 wrote the files
                continue
            print(f"wrote {result.video} ({result.num_frames} frames, {result.width}x{result.height}, "
                  f"{result.fps:g} fps, seed {result.seed}, {result.seconds:.1f} s)")
            if result.grid:
                print(f"wrote {result.grid}")
            if result.config:
                print(f"wrote {result.config}")
    except MagicAnimateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
