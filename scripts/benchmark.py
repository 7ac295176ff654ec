#!/usr/bin/env python
"""Seconds per frame and peak memory of the pipeline versus video length, in both fusion modes.

    python scripts/benchmark.py                                 # 32/128/512/1000 frames, 64x64, tiny model
    python scripts/benchmark.py --frames 32 128 --size 256 --steps 2 --out bench_256

Each (mode, length) runs in a fresh subprocess so peaks do not carry over. Peak memory is the process's
peak RSS (CPU) or ``torch.cuda.max_memory_allocated`` (GPU); the table also gives the growth over the
RSS after the model was loaded. The control video is generated frame by frame (never held in memory) and
decoded frames are discarded, so what grows with length is the pipeline's own state.
Writes ``<out>.json`` and ``<out>.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


class SyntheticDensePose:
    """A DensePose-coloured figure that moves over time; frames are rendered on demand."""

    def __init__(self, num_frames: int, size: int):
        self.num_frames, self.size = num_frames, size

    def __len__(self) -> int:
        return self.num_frames

    def _frame(self, i: int):
        import numpy as np

        from magicanimate.data.densepose import render_parts

        s = self.size
        parts = np.zeros((s, s), dtype=np.int64)
        cx = int(s * (0.5 + 0.25 * np.sin(i / 10)))
        parts[s // 4: 3 * s // 4, max(0, cx - s // 8): cx + s // 8] = 2
        parts[s // 8: s // 4, max(0, cx - s // 16): cx + s // 16] = 23
        return render_parts(parts)

    def __getitem__(self, index):
        import numpy as np

        if isinstance(index, (int, np.integer)):
            return self._frame(int(index))
        return np.stack([self._frame(int(i)) for i in index])


def run_one(args) -> dict:
    """Child process: one (mode, frames) measurement, printed as JSON."""
    import numpy as np
    import psutil
    import torch

    from magicanimate.testing import tiny_pipeline

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    pipe = tiny_pipeline(seed=0).to(device)
    pipe.set_progress_bar_config(disable=True)
    proc = psutil.Process()
    base_rss = proc.memory_info().rss
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base_gpu = torch.cuda.memory_allocated()
    reference = np.full((args.size, args.size, 3), 128, dtype=np.uint8)
    control = SyntheticDensePose(args.frames, args.size)
    decoded = [0]

    def sink(frames):
        decoded[0] += len(frames)

    start = time.perf_counter()
    pipe(reference, control, num_inference_steps=args.steps, guidance_scale=7.5,
         generator=torch.Generator("cpu").manual_seed(0), fusion=args.mode, frame_callback=sink,
         decode_chunk=8)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    import resource

    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux
    result = dict(mode=args.mode, frames=args.frames, size=args.size, steps=args.steps, seconds=seconds,
                  s_per_frame=seconds / args.frames, decoded=decoded[0], peak_rss_mb=peak_rss / 2 ** 20,
                  rss_after_load_mb=base_rss / 2 ** 20, rss_growth_mb=(peak_rss - base_rss) / 2 ** 20)
    if device.type == "cuda":
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
        result["gpu_growth_mb"] = (torch.cuda.max_memory_allocated() - base_gpu) / 2 ** 20
    print(json.dumps(result))
    return result


def markdown(results: list[dict], meta: dict) -> str:
    gpu = any("peak_gpu_mb" in r for r in results)
    head = "| mode | frames | size | s/frame | total s | peak RSS MB | RSS growth MB |" + (
        " peak GPU MB | GPU growth MB |" if gpu else "")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        row = (f"| {r['mode']} | {r['frames']} | {r['size']}² | {r['s_per_frame']:.3f} | {r['seconds']:.1f} | "
               f"{r['peak_rss_mb']:.0f} | {r['rss_growth_mb']:.0f} |")
        if gpu:
            row += f" {r['peak_gpu_mb']:.0f} | {r['gpu_growth_mb']:.0f} |"
        lines.append(row)
    lines.append("")
    lines.append(f"{meta['device']}, {meta['threads']} threads, {meta['steps']} DDIM steps, tiny model "
                 f"(magicanimate.testing), torch {meta['torch']}, {meta['date']}.")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, nargs="+", default=[32, 128, 512, 1000])
    ap.add_argument("--modes", nargs="+", default=["tapered", "parity"], choices=["tapered", "parity"])
    ap.add_argument("--size", type=int, default=64, help="frame size in pixels (square)")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="benchmark", help="output prefix (writes .json and .md)")
    ap.add_argument("--_child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    import torch

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args._child:
        args.frames = args.frames[0]
        run_one(args)
        return 0
    results = []
    for mode in args.modes:
        for frames in args.frames:
            cmd = [sys.executable, __file__, "--_child", "--mode", mode, "--frames", str(frames), "--size",
                   str(args.size), "--steps", str(args.steps), "--device", args.device, "--threads",
                   str(args.threads)]
            out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
            if out.returncode != 0:
                print(out.stderr, file=sys.stderr)
                return 1
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
            r = results[-1]
            print(f"{mode:8s} {frames:5d} frames: {r['s_per_frame']:.3f} s/frame, peak RSS {r['peak_rss_mb']:.0f} MB "
                  f"(+{r['rss_growth_mb']:.0f} MB after load)", flush=True)
    meta = dict(device=args.device if args.device != "cpu" else f"CPU ({platform.processor() or platform.machine()})",
                threads=args.threads, steps=args.steps, torch=torch.__version__,
                date=time.strftime("%Y-%m-%d"))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(f"{args.out}.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    Path(f"{args.out}.md").write_text(markdown(results, meta))
    print(markdown(results, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
