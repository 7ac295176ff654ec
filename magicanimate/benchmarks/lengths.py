"""Seconds per frame and peak memory of the pipeline versus video length, in both fusion modes.

Each (mode, length) runs in a fresh process so peaks do not carry over. Peak memory is the process's peak
RSS (CPU) or ``torch.cuda.max_memory_allocated`` (GPU); the table also gives the growth over the RSS after
the model was loaded. The control video is rendered frame by frame (never held in memory) and decoded frames
are discarded, so what grows with length is the pipeline's own state.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def measure(mode: str, frames: int, size: int, steps: int, device: str, threads: int) -> dict:
    """One (mode, frames) measurement in this process (call it in a fresh one)."""
    import numpy as np
    import torch

    from magicanimate.testing import MovingDensePose, tiny_pipeline
    from magicanimate.utils.memory import current_rss, peak_rss

    torch.set_num_threads(threads)
    dev = torch.device(device)
    pipe = tiny_pipeline(seed=0).to(dev)
    pipe.set_progress_bar_config(disable=True)
    base_rss = current_rss()
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base_gpu = torch.cuda.memory_allocated()
    decoded = [0]
    start = time.perf_counter()
    pipe(np.full((size, size, 3), 128, dtype=np.uint8), MovingDensePose(frames, size, size),
         num_inference_steps=steps, guidance_scale=7.5, generator=torch.Generator("cpu").manual_seed(0),
         fusion=mode, frame_callback=lambda f: decoded.__setitem__(0, decoded[0] + len(f)))
    if dev.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = peak_rss()
    result = dict(mode=mode, frames=frames, size=size, steps=steps, seconds=seconds, s_per_frame=seconds / frames,
                  decoded=decoded[0], peak_rss_mb=peak / 2 ** 20, rss_after_load_mb=base_rss / 2 ** 20,
                  rss_growth_mb=(peak - base_rss) / 2 ** 20)
    if dev.type == "cuda":
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
        result["gpu_growth_mb"] = (torch.cuda.max_memory_allocated() - base_gpu) / 2 ** 20
    return result


def measure_in_subprocess(mode: str, frames: int, size: int, steps: int, device: str, threads: int) -> dict:
    cmd = [sys.executable, "-m", "magicanimate.cli.benchmark", "--_child", "--mode", mode, "--frames", str(frames),
           "--size", str(size), "--steps", str(steps), "--device", device, "--threads", str(threads)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"benchmark child failed ({mode}, {frames} frames):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


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


def run_lengths(modes, lengths, size: int, steps: int, device: str, threads: int, out: str) -> list[dict]:
    """Every (mode, length) in its own process; writes ``<out>.json`` and ``<out>.md``."""
    import torch

    results = []
    for mode in modes:
        for frames in lengths:
            r = measure_in_subprocess(mode, frames, size, steps, device, threads)
            results.append(r)
            print(f"{mode:8s} {frames:5d} frames: {r['s_per_frame']:.3f} s/frame, peak RSS {r['peak_rss_mb']:.0f} MB "
                  f"(+{r['rss_growth_mb']:.0f} MB after load)", flush=True)
    meta = dict(device=device if device != "cpu" else f"CPU ({platform.processor() or platform.machine()})",
                threads=threads, steps=steps, torch=torch.__version__, date=time.strftime("%Y-%m-%d"))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    from magicanimate.utils.files import atomic_path

    with atomic_path(f"{out}.json") as tmp:
        tmp.write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    with atomic_path(f"{out}.md") as tmp:
        tmp.write_text(markdown(results, meta))
    print(markdown(results, meta))
    return results
