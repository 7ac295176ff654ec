"""Synthetic benchmark of the demo model on held-out test dancers (docs/demo_model.md).

    python scripts/benchmark_demo.py [--pipeline demo/model] [--clips 8 --frames 24 --long-frames 48 --steps 20]

Writes <out>/results.json and <out>/results.md (default benchmarks/demo): PSNR, SSIM, L1 and temporal error
of the reference-repeated baseline, stage 1 only, stage 2 (tapered) on short clips, and tapered vs parity
fusion on long clips; with --copy-test N, the copy test on train vs test dancers; and, with --gates, the
margins of the CI quality gates to <pipeline>/../quality_gates.json. Sampling settings default to the
model's own (its settings.yaml); flags override them.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Optional, Sequence

from magicanimate.cli.common import add_threads_flag, run_main
from magicanimate.config.cli import CliParser

REPO_ROOT = Path(__file__).resolve().parents[2]
SETTING_FLAGS = ("steps", "guidance_scale", "init_from_reference", "init_strength", "context_frames",
                 "context_overlap", "seed")


def build_parser() -> CliParser:
    ap = CliParser(prog="benchmark_demo.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pipeline", default=str(REPO_ROOT / "demo" / "model"), help="saved pipeline folder")
    ap.add_argument("--clips", type=int, default=8, help="test clips (default 8)")
    ap.add_argument("--frames", type=int, default=24, help="frames per short clip (default 24)")
    ap.add_argument("--long-frames", type=int, default=48, help="frames per long clip (default 48; 0 = skip)")
    ap.add_argument("--no-short", dest="short", action="store_false", help="skip the short-clip comparison")
    ap.add_argument("--steps", type=int, default=None, help="DDIM steps (default: the model's settings.yaml)")
    ap.add_argument("--guidance-scale", type=float, default=None)
    ap.add_argument("--init-from-reference", action=argparse.BooleanOptionalAction, default=None,
                    help="start from the noised reference latent (default: the model's settings.yaml)")
    ap.add_argument("--init-strength", type=float, default=None,
                    help="fraction of the steps run from the noised reference (default: the model's)")
    ap.add_argument("--context-frames", type=int, default=None)
    ap.add_argument("--context-overlap", type=int, default=None)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "demo")
    ap.add_argument("--gates", action="store_true", help="also measure the CI quality-gate margins")
    ap.add_argument("--copy-test", type=int, default=0, metavar="N",
                    help="also the copy test on N train and N test dancers with textured backgrounds (target = "
                         "reference; a gap between the splits means memorised training appearances)")
    ap.add_argument("--quiet", action="store_true")
    add_threads_flag(ap)
    return ap


def sampling_settings(args, pipe_dir: Path) -> dict:
    """The model's own sampling settings over the schema's defaults, then the flags."""
    from magicanimate.pipelines.settings import build_inference_config

    cfg = build_inference_config(values={"weights.pipeline": str(pipe_dir)})
    settings = {key: getattr(cfg, key) for key in SETTING_FLAGS}
    settings.update({k: getattr(args, k) for k in SETTING_FLAGS if getattr(args, k) is not None})
    return settings


def sections(bm, pipe, args, common: dict) -> dict:
    out = {}
    methods = ["reference", "vae", "stage1", "stage2", *(["stage2_noise"] if common["init_from_reference"] else [])]
    if args.short:
        out[f"{args.clips} test clips x {args.frames} frames"] = bm.run_methods(
            pipe, bm.synthetic_test_clips(args.clips, args.frames), methods, **common)
    if args.long_frames:
        out[f"long clips: {args.clips} x {args.long_frames} frames, fusion modes"] = bm.run_methods(
            pipe, bm.synthetic_test_clips(args.clips, args.long_frames), ["reference", "stage2", "stage2_parity"],
            **common)
    if args.copy_test:
        for split, res in bm.copy_test(pipe, args.copy_test, num_frames=8, **common).items():
            out[f"copy test: {args.copy_test} {split} dancers with textured backgrounds, 8 frames, target = "
                f"reference"] = res
    return out


def notes(settings: dict, args, shown, seconds: float) -> str:
    init, strength = settings["init_from_reference"], settings["init_strength"]
    copy_note = " Copy test: every target frame is the reference (frame 0, its own DensePose)." * bool(args.copy_test)
    return (f"Settings: {settings['steps']} DDIM steps, guidance {settings['guidance_scale']}, context "
            f"{settings['context_frames']} frames (overlap {settings['context_overlap']}), "
            f"{'from the noised reference latent' if init else 'from pure noise'}"
            f"{f' (strength {strength:g})' if init and strength < 1 else ''}, seed {settings['seed']}, 64x64, CPU; "
            f"reference = frame 0 of each held-out test video, scored frames 1..N.{copy_note} Pipeline: {shown}. "
            f"Took {seconds:.0f} s.")


def run(args) -> int:
    import torch

    from magicanimate.demo import benchmark as bm
    from magicanimate.pipelines.pipeline_magicanimate import MagicAnimatePipeline
    from magicanimate.utils.devices import set_threads

    set_threads(args.threads)
    pipe_dir = Path(args.pipeline).resolve()
    shown = pipe_dir.relative_to(REPO_ROOT) if pipe_dir.is_relative_to(REPO_ROOT) else pipe_dir
    settings = sampling_settings(args, pipe_dir)
    pipe = MagicAnimatePipeline.from_pretrained(str(pipe_dir)).to(torch.device("cpu"))
    pipe.set_progress_bar_config(disable=True)
    common = dict(settings, progress=not args.quiet)
    start = time.time()
    found = sections(bm, pipe, args, common)
    text = notes(settings, args, shown, time.time() - start)
    if found:
        args.out.mkdir(parents=True, exist_ok=True)
        report = {"pipeline": str(shown), "settings": settings, "sections": found, "notes": text}
        bm.write_report(report, args.out / "results.json", args.out / "results.md")
        print(bm.markdown_table(found))
        print(text)
        print(f"wrote {args.out / 'results.json'} and {args.out / 'results.md'}")
    if args.gates:
        write_gates(bm, pipe, settings, pipe_dir.parent / "quality_gates.json", progress=not args.quiet)
    return 0


def write_gates(bm, pipe, settings: dict, path: Path, *, progress: bool) -> None:
    from magicanimate.utils.files import atomic_path

    guidance, init, strength = settings["guidance_scale"], settings["init_from_reference"], settings["init_strength"]
    results = bm.gate_results(pipe, guidance, init, strength, progress=progress)
    gates = {"settings": dict(bm.GATE_SETTINGS, guidance_scale=guidance, init_from_reference=init,
                              init_strength=strength),
             "means": {k: v["mean"] for k, v in results.items()}, "margins": bm.gate_margins(results)}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(gates, indent=1) + "\n")
    print(json.dumps(gates["margins"], indent=1))
    print(f"wrote {path}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_main(run, build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
