"""``scripts/benchmark_retarget.py``: the retargeting benchmark (part maps, and end to end with the demo
model) written to ``benchmarks/retarget.md`` and ``benchmarks/retarget.json``."""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Dict, Optional, Sequence

from magicanimate.demo import retarget_benchmark as rb
from magicanimate.utils.files import atomic_path

REPO_ROOT = Path(__file__).resolve().parents[2]
COMMAND = "python scripts/benchmark_retarget.py"
LABELS = {"none": "none (driving maps as they are)",
          "global": "global scale + shift on frame 0 (`--align-to`; true joints)",
          "ours": "ours (`retarget_parts`)"}
E2E_LABELS = {"none": "B's motion as it is", "ours": "B's motion retargeted to A",
              "truth": "A's own motion maps (ceiling)"}


def parts_table(summary: dict, results: Dict[str, dict]) -> list:
    lines = ["| method | mean part IoU ↑ | foreground IoU ↑ |", "|---|---|---|"]
    for m, v in summary["mean"].items():
        lines.append(f"| {LABELS.get(m, m)} | {v['part_iou']:.3f} | {v['foreground_iou']:.3f} |")
    below = summary.get("ours_below_global", [])
    lines += ["", f"Ours below global (part IoU) on {len(below)} of {summary['triples']} triples"
              + (f": {', '.join(below)}." if below else "."), "",
              "<details><summary>per triple (mean part IoU)</summary>", "",
              "| triple (A identity, B identity, M motion seeds) | none | global | ours |", "|---|---|---|---|"]
    for name, r in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{r[m]['part_iou']:.3f}" for m in rb.METHODS if m in r) + " |")
    return lines + ["", "</details>"]


def e2e_table(e2e: Dict[str, dict]) -> list:
    lines = ["| control video | PSNR (dB) ↑ | SSIM ↑ | L1 (0-255) ↓ | temporal error ↓ |", "|---|---|---|---|---|"]
    for name, r in e2e.items():
        m = r["mean"]
        lines.append(f"| {E2E_LABELS.get(name, name)} | {m['psnr']:.2f} | {m['ssim']:.4f} | {m['l1']:.2f} | "
                     f"{m['temporal']:.2f} |")
    return lines


def markdown(report: dict) -> str:
    s = report["settings"]
    lines = ["# Retargeting benchmark", "",
             f"Reproduce: `{report['command']}` ({s['machine']}; {report['seconds']:.0f} s).", "",
             f"## Part maps: {s['triples']} held-out triples (A, B, M), {s['size']}², {s['frames']} frames", "",
             f"Triples from the synthetic dataset's test split (seed {s['seed']}); driving = parts(B, M), "
             "reference = parts(A, M) frame 0, truth = parts(A, M); scored on frames 1..N (see "
             "`magicanimate/demo/retarget_benchmark.py`).", ""]
    lines += parts_table(report["summary"], report["parts"])
    if report.get("end_to_end"):
        e = report["e2e_settings"]
        lines += ["", f"## End to end: the demo model, {e['triples']} triples, {e['size']}², {e['frames']} frames",
                  "", f"Reference = A's frame 0; scored against A doing M (frames 1..N) with the demo benchmark's "
                  f"metrics. Sampling: {e['steps']} steps, guidance {e['guidance_scale']}, seed {e['seed']}, "
                  f"init from reference {e['init_from_reference']} (strength {e['init_strength']}), context "
                  f"{e['context_frames']}/{e['context_overlap']}. Control maps made at {s['size']}² and resized "
                  f"with nearest neighbours.", ""]
        lines += e2e_table(report["end_to_end"])
    return "\n".join(lines) + "\n"


def write(report: dict, out: Path) -> None:
    with atomic_path(out.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(report, indent=1) + "\n")
    with atomic_path(out.with_suffix(".md")) as tmp:
        tmp.write_text(markdown(report))


def run_e2e(args, cases) -> tuple:
    import torch

    from magicanimate.demo.retarget_e2e import run_end_to_end
    from magicanimate.pipelines.settings import build_inference_config
    from magicanimate.pipelines.pipeline_magicanimate import MagicAnimatePipeline

    torch.set_num_threads(args.threads)
    # the model's own inference settings (its settings.yaml) over the schema's defaults
    cfg = build_inference_config(values={"weights.pipeline": str(args.pipeline)})
    settings = {k: (getattr(cfg, k).value if hasattr(getattr(cfg, k), "value") else getattr(cfg, k))
                for k in ("size", "steps", "guidance_scale", "init_from_reference", "init_strength", "context_frames",
                          "context_overlap")}
    pipe = MagicAnimatePipeline.from_pretrained(args.pipeline).to(torch.device(args.device))
    pipe.set_progress_bar_config(disable=True)
    e = dict(triples=len(cases), size=int(settings.get("size", 64)), frames=args.frames, seed=1,
             steps=int(settings["steps"]), guidance_scale=float(settings["guidance_scale"]),
             init_from_reference=bool(settings.get("init_from_reference", False)),
             init_strength=float(settings.get("init_strength", 1.0)),
             context_frames=int(settings["context_frames"]), context_overlap=int(settings["context_overlap"]))
    results = run_end_to_end(pipe, cases, num_frames=e["frames"], steps=e["steps"], guidance_scale=e["guidance_scale"],
                             seed=e["seed"], context_frames=e["context_frames"], context_overlap=e["context_overlap"],
                             init_from_reference=e["init_from_reference"], init_strength=e["init_strength"],
                             size=e["size"])
    return e, results


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description="Retargeting benchmark on synthetic ground truth (docs/retargeting.md).")
    ap.add_argument("--triples", type=int, default=24, help="held-out (A, B, M) triples (default 24)")
    ap.add_argument("--frames", type=int, default=24, help="frames per clip (default 24)")
    ap.add_argument("--size", type=int, default=128, help="part-map side in pixels (default 128)")
    ap.add_argument("--seed", type=int, default=0, help="synthetic dataset seed (default 0)")
    ap.add_argument("--e2e-triples", type=int, default=8, help="triples animated with the demo model (0 = skip)")
    ap.add_argument("--pipeline", default=str(REPO_ROOT / "demo" / "model"), help="saved pipeline for the end to end run")
    ap.add_argument("--device", default="cpu", help="torch device for the end to end run (default cpu)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "retarget",
                    help="output path without suffix (.md and .json are written)")
    return ap


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    start = time.time()
    cases = rb.triples(args.triples, seed=args.seed)
    parts = rb.evaluate(cases, num_frames=args.frames, size=args.size)
    report = {"command": " ".join([COMMAND] + argv), "parts": parts, "summary": rb.summarise(parts),
              "settings": dict(triples=args.triples, frames=args.frames, size=args.size, seed=args.seed,
                               machine=(f"{platform.machine()} CPU, {args.threads} thread(s)" if args.device == "cpu"
                                        else f"device {args.device}"))}
    if args.e2e_triples:
        report["e2e_settings"], report["end_to_end"] = run_e2e(args, cases[:args.e2e_triples])
    report["seconds"] = time.time() - start
    write(report, args.out)
    print(markdown(report))
    return 0
