"""The full-size benchmark: SD1.5-shaped random weights in the released layout, loaded and run as users do.

    python scripts/benchmark_fullsize.py --weights-dir /data/sd15-random            # builds them once (~14 GB)
    python scripts/benchmark_fullsize.py --weights-dir /data/sd15-random --dtype bf16 --size 256 --frames 16 \\
        --steps 2 --fusion parity --savings
    python scripts/benchmark_fullsize.py --weights-dir D --code-root /src/old-checkout --label before

Each configuration runs in a fresh process: load time and its peak memory against the weights' size, seconds
per component (appearance encoder, ControlNet, UNet, VAE decode) and per step, peak memory of the run (and peak
VRAM on CUDA). Results are merged into <out>/fullsize_<device>_<dtype>.{json,md}. ``--code-root`` measures
another checkout of the project (e.g. an older commit) with the same weights and inputs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence

from magicanimate.cli.common import run_main
from magicanimate.config.cli import CliParser

REPO_ROOT = Path(__file__).resolve().parents[2]
FULLSIZE = Path(__file__).resolve().parents[1] / "benchmarks" / "fullsize.py"


def build_parser() -> CliParser:
    ap = CliParser(prog="benchmark_fullsize.py", description=__doc__,
                   formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights-dir", type=Path, required=True, help="folder of the random SD1.5-size weights")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="fp32")
    ap.add_argument("--fusion", choices=["parity", "tapered"], default="parity")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads (fixed, so runs compare)")
    ap.add_argument("--cpu-offload", action="store_true")
    ap.add_argument("--sequential-guidance", action="store_true")
    ap.add_argument("--decode-chunk", type=int, default=None)
    ap.add_argument("--compile", action="store_true", help="after the eager run, time the same call with the "
                    "networks' blocks torch.compiled (this checkout only)")
    ap.add_argument("--savings", action="store_true", help="also run with each exact saving switched off")
    ap.add_argument("--code-root", type=Path, default=REPO_ROOT, help="checkout whose code is measured")
    ap.add_argument("--label", default="this", help="row label in the table (e.g. before / after)")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random weights (when building)")
    return ap


def _child(code: str, code_root: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(code_root), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=code_root)
    if proc.returncode != 0:
        from magicanimate.errors import MagicAnimateError

        raise MagicAnimateError(f"benchmark process failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(args) -> int:
    from magicanimate.utils.devices import resolve_device

    folder = args.weights_dir.resolve()
    if not (folder / "BUILT").is_file():
        print(f"building SD1.5-size random weights in {folder} (once)", flush=True)
        _child(f"import runpy, json; m = runpy.run_path({str(FULLSIZE)!r}); "
               f"m['build_weights']({str(folder)!r}, {args.seed}); print(json.dumps({{}}))", REPO_ROOT)
    device = str(resolve_device(args.device))
    settings = dict(size=args.size, frames=args.frames, steps=args.steps, dtype=args.dtype, fusion=args.fusion,
                    device=device, threads=args.threads, cpu_offload=args.cpu_offload,
                    sequential_guidance=args.sequential_guidance, decode_chunk=args.decode_chunk,
                    compile=args.compile, savings=args.savings, label=args.label)
    result = _child(f"import runpy, json; m = runpy.run_path({str(FULLSIZE)!r}); "
                    f"print(json.dumps(m['measure']({str(folder)!r}, {settings!r})))", args.code_root.resolve())
    return _record(result, args.out, device, args.dtype)


def _record(result: dict, out: Path, device: str, dtype: str) -> int:
    import runpy

    from magicanimate.utils.files import atomic_path

    module = runpy.run_path(str(FULLSIZE))
    name = f"fullsize_{device.split(':')[0]}_{dtype}"
    path = out / f"{name}.json"
    rows = json.loads(path.read_text())["results"] if path.is_file() else []
    key = lambda r: tuple(r.get(k) for k in ("label", "size", "frames", "steps", "fusion", "cpu_offload",  # noqa: E731
                                              "sequential_guidance", "decode_chunk", "compile"))
    rows = [r for r in rows if key(r) != key(result)] + [result]
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"machine": module["machine"](), "results": rows}, indent=1) + "\n")
    text = module["markdown"](rows, f"{module['machine']()}, {dtype}, {result['threads']} threads")
    with atomic_path(out / f"{name}.md") as tmp:
        tmp.write_text(text)
    print(text)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_main(run, build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
