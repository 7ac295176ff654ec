#!/usr/bin/env python
"""Synthetic benchmark of the demo model on held-out test dancers (README "Synthetic dancers and the demo model").

    python scripts/benchmark_demo.py [--pipeline demo/model] [--clips 8 --frames 24 --long-frames 48 --steps 20]

Writes <out>/results.json and <out>/results.md (default benchmarks/demo): PSNR, SSIM, L1 and temporal error
of the reference-repeated baseline, stage 1 only, stage 2 (tapered) on short clips, and tapered vs parity
fusion on long clips; with --copy-test N, the copy test on train vs test dancers; and, with --gates, the
margins of the CI quality gates to <pipeline>/../quality_gates.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from magicanimate.errors import MagicAnimateError  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pipeline", default=str(REPO_ROOT / "demo" / "model"), help="saved pipeline folder")
    ap.add_argument("--clips", type=int, default=8, help="test clips (default 8)")
    ap.add_argument("--frames", type=int, default=24, help="frames per short clip (default 24)")
    ap.add_argument("--long-frames", type=int, default=48, help="frames per long clip (default 48; 0 = skip)")
    ap.add_argument("--no-short", dest="short", action="store_false", help="skip the short-clip comparison")
    ap.add_argument("--steps", type=int, default=None, help="DDIM steps (default: demo/settings.yaml's)")
    ap.add_argument("--guidance-scale", type=float, default=None)
    ap.add_argument("--init-from-reference", action=argparse.BooleanOptionalAction, default=None,
                    help="start from the noised reference latent (default: demo/settings.yaml's)")
    ap.add_argument("--init-strength", type=float, default=None,
                    help="fraction of the steps run from the noised reference (default: demo/settings.yaml's, or 1)")
    ap.add_argument("--context-frames", type=int, default=None)
    ap.add_argument("--context-overlap", type=int, default=None)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "demo")
    ap.add_argument("--gates", action="store_true", help="also measure the CI quality-gate margins")
    ap.add_argument("--copy-test", type=int, default=0, metavar="N",
                    help="also the copy test on N train and N test dancers with textured backgrounds (target = "
                         "reference; a gap between the splits means memorised training appearances)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)

    import torch
    from omegaconf import OmegaConf

    from magicanimate.demo import benchmark as bm
    from magicanimate.pipelines.pipeline_magicanimate import MagicAnimatePipeline
    from magicanimate.utils.files import atomic_path

    try:
        pipe_dir = Path(args.pipeline).resolve()
        shown = pipe_dir.relative_to(REPO_ROOT) if pipe_dir.is_relative_to(REPO_ROOT) else pipe_dir
        settings_file = pipe_dir.parent / "settings.yaml"
        settings = OmegaConf.to_container(OmegaConf.load(settings_file)) if settings_file.is_file() else {}
        steps = args.steps or settings.get("steps", 20)
        guidance = args.guidance_scale if args.guidance_scale is not None else settings.get("guidance_scale", 7.5)
        cf = args.context_frames or settings.get("context_frames", 16)
        co = args.context_overlap if args.context_overlap is not None else settings.get("context_overlap", 4)
        init = (args.init_from_reference if args.init_from_reference is not None
                else bool(settings.get("init_from_reference", False)))
        strength = float(args.init_strength if args.init_strength is not None else settings.get("init_strength", 1.0))
        pipe = MagicAnimatePipeline.from_pretrained(str(pipe_dir)).to(torch.device("cpu"))
        pipe.set_progress_bar_config(disable=True)
        common = dict(steps=steps, guidance_scale=guidance, seed=args.seed, context_frames=cf, context_overlap=co,
                      init_from_reference=init, init_strength=strength, progress=not args.quiet)
        start = time.time()
        sections = {}
        if args.short:
            short = bm.synthetic_test_clips(args.clips, args.frames)
            sections[f"{args.clips} test clips x {args.frames} frames"] = bm.run_methods(
                pipe, short, ["reference", "vae", "stage1", "stage2", *(["stage2_noise"] if init else [])], **common)
        if args.long_frames:
            long_clips = bm.synthetic_test_clips(args.clips, args.long_frames)
            sections[f"long clips: {args.clips} x {args.long_frames} frames, fusion modes"] = bm.run_methods(
                pipe, long_clips, ["reference", "stage2", "stage2_parity"], **common)
        if args.copy_test:
            frames = 8
            for split, res in bm.copy_test(pipe, args.copy_test, num_frames=frames, **common).items():
                sections[f"copy test: {args.copy_test} {split} dancers with textured backgrounds, {frames} "
                         f"frames, target = reference"] = res
        copy_note = " Copy test: every target frame is the reference (frame 0, its own DensePose)." * bool(args.copy_test)
        notes = (f"Settings: {steps} DDIM steps, guidance {guidance}, context {cf} frames (overlap {co}), "
                 f"{'from the noised reference latent' if init else 'from pure noise'}"
                 f"{f' (strength {strength:g})' if init and strength < 1 else ''}, seed "
                 f"{args.seed}, 64x64, CPU; reference = frame 0 of each held-out test video, scored frames 1..N."
                 f"{copy_note} Pipeline: {shown}. Took {time.time() - start:.0f} s.")
        report = {"pipeline": str(shown), "settings": {"steps": steps, "guidance_scale": guidance,
                  "context_frames": cf, "context_overlap": co, "init_from_reference": init,
                  "init_strength": strength, "seed": args.seed},
                  "sections": sections,
                  "notes": notes}
        if sections:
            args.out.mkdir(parents=True, exist_ok=True)
            bm.write_report(report, args.out / "results.json", args.out / "results.md")
            print(bm.markdown_table(sections))
            print(notes)
            print(f"wrote {args.out / 'results.json'} and {args.out / 'results.md'}")
        if args.gates:
            results = bm.gate_results(pipe, guidance, init, strength, progress=not args.quiet)
            gates = {"settings": dict(bm.GATE_SETTINGS, guidance_scale=guidance, init_from_reference=init,
                                      init_strength=strength),
                     "means": {k: v["mean"] for k, v in results.items()}, "margins": bm.gate_margins(results)}
            path = pipe_dir.parent / "quality_gates.json"
            with atomic_path(path) as tmp:
                tmp.write_text(json.dumps(gates, indent=1) + "\n")
            print(json.dumps(gates["margins"], indent=1))
            print(f"wrote {path}")
    except MagicAnimateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
