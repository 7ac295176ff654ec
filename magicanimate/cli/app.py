"""The web demo: a local page to animate a photo (needs the [demo] extra: pip install -e ".[demo]").

    python scripts/app.py                                  # the bundled CPU demo model, http://127.0.0.1:7860
    python scripts/app.py --weights pretrained_models      # + a weights folder (original layout or saved pipeline)
    python scripts/app.py --weights full=pretrained_models --device cuda --pose-python ~/venv-pose/bin/python

It binds to 127.0.0.1 unless --host says otherwise, and makes no public share link unless --share true.
Results go to --output-dir (one folder per job: the video, the grid and the resolved config).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Optional, Sequence

from magicanimate.app.service import PAGE_SETTINGS
from magicanimate.cli.common import add_threads_flag, run_main, setup_logging
from magicanimate.config.cli import CliParser
from magicanimate.errors import ConfigError

# a local demo reports nothing to Gradio's servers (set before Gradio is imported)
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

GRADIO_MISSING = ("the web demo needs Gradio, which is not installed in this environment. Install the "
                  "demo extra (preferably in its own environment, since Gradio pins pillow<13): "
                  "pip install \"torch==2.13.0\" -e \".[demo]\"")


def _bool(value: str) -> bool:
    v = value.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def build_parser() -> argparse.ArgumentParser:
    ap = CliParser(prog="app.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    ap.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    ap.add_argument("--share", type=_bool, nargs="?", const=True, default=False, metavar="true|false",
                    help="make a public Gradio share link (default false)")
    ap.add_argument("--weights", action="append", default=[], metavar="[NAME=]PATH",
                    help="a weights folder to offer (original layout or a saved pipeline); repeatable")
    ap.add_argument("--no-demo-model", dest="demo_model", action="store_false",
                    help="do not offer the bundled demo model")
    ap.add_argument("--example", action="append", nargs=2, default=[], metavar=("IMAGE", "MOTION"),
                    help="an extra one-click example (reference image, motion video); repeatable")
    ap.add_argument("--output-dir", default="samples/app", help="where job folders are written")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    ap.add_argument("--dtype", default="auto", choices=["auto", "fp32", "fp16", "bf16"])
    ap.add_argument("--max-frames", type=int, default=300, help="longest motion video accepted (frames)")
    ap.add_argument("--max-queue", type=int, default=16, help="jobs that may wait per model")
    ap.add_argument("--pose-python", default=None,
                    help="Python of the pose environment (mediapipe), used to convert raw motion videos")
    # the page's initial settings
    ap.add_argument("--steps", type=int, default=None, help="initial denoising steps shown on the page")
    ap.add_argument("--guidance-scale", dest="guidance_scale", type=float, default=None)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--size", type=int, default=None, help="initial output size (longer side)")
    ap.add_argument("--fusion", choices=["tapered", "parity"], default=None)
    ap.add_argument("--fit", choices=["pad", "crop", "resize"], default=None)
    add_threads_flag(ap)
    return ap


def page_defaults(args) -> dict:
    """The page settings given as flags: they win over every model's own defaults."""
    return {key: getattr(args, key) for key in PAGE_SETTINGS if getattr(args, key) is not None}


def bundled_examples() -> list:
    from magicanimate.demo.bundle import DEMO_DIR

    pair = [DEMO_DIR / "reference.png", DEMO_DIR / "motion.mp4"]
    return [[str(p) for p in pair]] if all(p.is_file() for p in pair) else []


def run(args) -> int:
    setup_logging()
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise ConfigError(GRADIO_MISSING) from None
    from magicanimate.app.models import ModelRegistry, parse_model_arg
    from magicanimate.app.service import DemoService
    from magicanimate.app.ui import build_ui
    from magicanimate.app.uploads import MotionConverter
    from magicanimate.utils.devices import set_threads

    registry = ModelRegistry(dict(parse_model_arg(w) for w in args.weights), include_demo=args.demo_model)
    examples = bundled_examples() + [list(e) for e in args.example]
    for path in (path for pair in examples for path in pair):
        if not Path(path).is_file():
            raise ConfigError(f"--example: {path}: no such file")
    if args.max_frames < 1:
        raise ConfigError(f"--max-frames must be >= 1, got {args.max_frames}")
    service = DemoService(registry, args.output_dir, device=args.device, dtype=args.dtype,
                          max_frames=args.max_frames, converter=MotionConverter(args.pose_python),
                          max_waiting=args.max_queue)
    demo = build_ui(service, examples=examples, defaults=page_defaults(args))
    set_threads(args.threads)
    output_dir = Path(args.output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    allowed = [str(output_dir)] + sorted({str(Path(p).resolve().parent) for pair in examples for p in pair})
    print(f"models: {', '.join(registry.names)}; motion conversion: {service.converter.describe()}", flush=True)
    try:
        demo.queue(max_size=None).launch(server_name=args.host, server_port=args.port, share=args.share,
                                         allowed_paths=allowed, show_error=False)
    finally:
        service.shutdown()
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_main(run, build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
