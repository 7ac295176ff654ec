"""Animate a reference image with a DensePose motion video.

    python scripts/animate.py                                   # the bundled CPU demo (demo/)
    python scripts/animate.py --steps 20 --seed 3               # the demo, with a change
    python scripts/animate.py --reference me.png --motion dance_densepose.mp4 --output out.mp4 \\
        --weights pretrained_models [--steps 25 --guidance-scale 7.5 --seed 1 --fusion tapered ...]
    python scripts/animate.py --pipeline outputs/run/export/pipeline --reference me.png --motion d.mp4
    python scripts/animate.py --config configs/prompts/animation.yaml   # the original's config format
    python scripts/animate.py --config configs/inference/default.yaml reference=a.png motion=b.mp4

Writes OUT.mp4, OUT_grid.mp4 (reference | DensePose | result) and OUT_config.yaml. The motion input must be
a DensePose rendering; make one from an ordinary video with scripts/extract_densepose.py. A saved pipeline
folder brings its own defaults (settings.yaml: size, steps, guidance, ...); flags override them.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Optional, Sequence

from magicanimate.cli.common import run_main, setup_logging
from magicanimate.config.cli import CliParser, add_schema_flags, apply_values, flag_values
from magicanimate.pipelines.config import InferenceConfig

DESCRIPTION = __doc__


def build_parser() -> CliParser:
    ap = CliParser(prog="animate.py", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", help="YAML: our inference schema (configs/inference/) or the original's prompt "
                                     "format (configs/prompts/, with source_image/video_path lists)")
    ap.set_defaults(schema_flags=add_schema_flags(ap, InferenceConfig))
    ap.add_argument("--quiet", action="store_true", help="no progress bar, warnings only")
    ap.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. weights.vae=...")
    return ap


def _jobs(args) -> list:
    """One InferenceConfig per (reference, motion) pair, every layer of settings applied."""
    from magicanimate.config import apply_overrides
    from magicanimate.demo.bundle import demo_inputs, is_demo_request
    from magicanimate.pipelines.config import validate_inference_config
    from magicanimate.pipelines.original_config import (is_original_prompt_config, jobs_from_original,
                                                        load_original_prompt_config)
    from magicanimate.pipelines.settings import build_inference_config, explicit_keys

    values = flag_values(args, args.schema_flags)
    if args.quiet:
        values["progress"] = False
    if args.config and is_original_prompt_config(args.config):
        jobs = jobs_from_original(load_original_prompt_config(args.config), base_dir=Path.cwd())
        for job in jobs:
            apply_values(apply_overrides(job, args.overrides), values)
            validate_inference_config(job)
        return jobs
    given = explicit_keys(args.config, args.overrides, values)
    base = demo_inputs() if is_demo_request(given) else None
    return [build_inference_config(args.config, args.overrides, values, base=base)]


def run(args) -> int:
    setup_logging(args.quiet)
    from magicanimate.pipelines.animate import animate, prepare
    from magicanimate.utils.devices import set_threads

    jobs = _jobs(args)
    prepared = [prepare(job) for job in jobs]  # every job's inputs and weights, before any model loads
    set_threads(jobs[0].threads)
    pipe, loaded = None, None
    for job, inputs in zip(jobs, prepared):
        key = (inputs.weights, job.device, job.dtype)
        if key != loaded:  # reuse only the pipeline loaded for these very weights
            pipe = None
        result = animate(job, pipeline=pipe, prepared=inputs)
        pipe, loaded = result.pipeline, key
        if int(os.environ.get("RANK", "0")) != 0:  # several processes: rank 0 wrote the files
            continue
        print(f"wrote {result.video} ({result.num_frames} frames, {result.width}x{result.height}, "
              f"{result.fps:g} fps, seed {result.seed}, {result.seconds:.1f} s)")
        for extra in (result.grid, result.config):
            if extra:
                print(f"wrote {extra}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_main(run, build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
