"""Reproduce the bundled demo model: dataset -> tiny VAE -> base UNet -> stage 1 (+ decay) -> stage 2 -> demo/.

    python scripts/make_demo.py                       # the full recipe (configs/demo/recipe.yaml), ~1 h on 2 cores
    python scripts/make_demo.py --scale 0.1 run_dir=outputs/demo/quick --no-ship   # a smoke run
    python scripts/make_demo.py vae.reuse=outputs/demo/run/vae stage1.steps=3000   # overrides

Every step is one of our ordinary command lines, run as a subprocess with its log in <run_dir>/logs/. A step
whose output exists is skipped (--force redoes all); a training stage that was interrupted resumes from its
last checkpoint. At the end the stage-2 export (with the recipe's inference settings), a held-out test
identity's reference image and DensePose video go to demo/, where `python scripts/animate.py` finds them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional, Sequence

from magicanimate.cli.common import run_main
from magicanimate.config.cli import CliParser

REPO_ROOT = Path(__file__).resolve().parents[2]


def build_parser() -> CliParser:
    ap = CliParser(prog="make_demo.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(REPO_ROOT / "configs" / "demo" / "recipe.yaml"))
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every training step count (0.1 = smoke run)")
    ap.add_argument("--force", action="store_true", help="redo every step, from scratch")
    ap.add_argument("--no-ship", dest="ship", action="store_false", help="do not copy the result to demo/")
    ap.add_argument("--threads", type=int, default=None, metavar="N",
                    help="CPU threads per training process (config key `threads`; 1 on a busy shared machine)")
    ap.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    return ap


def _in_checkout(path: str) -> str:
    """Config paths are relative to the checkout when they are not to the working folder."""
    return path if Path(path).is_absolute() or Path(path).exists() else str(REPO_ROOT / path)


def run(args) -> int:
    from magicanimate.config import load_config, save_config, to_object
    from magicanimate.demo.recipe import RecipeConfig, ship_demo
    from magicanimate.demo.recipe_run import RecipeRun
    from magicanimate.errors import ConfigError

    if args.scale <= 0:
        raise ConfigError(f"--scale must be > 0, got {args.scale}")
    overrides = list(args.overrides) + ([f"threads={args.threads}"] if args.threads is not None else [])
    cfg_node = load_config(RecipeConfig, args.config, overrides)
    cfg = to_object(cfg_node)
    for part in (cfg.vae, cfg.stage1, cfg.stage1_decay, cfg.stage2):
        part.config = _in_checkout(part.config)
    run_dir = Path(cfg.run_dir) if Path(cfg.run_dir).is_absolute() else REPO_ROOT / cfg.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg_node, run_dir / "recipe.yaml")
    times = RecipeRun(cfg, run_dir, scale=args.scale, force=args.force).run()
    print(f"recipe done in {sum(times.values()):.0f} s of step time; run folder {run_dir}")
    if args.ship:
        demo = REPO_ROOT / cfg.ship.demo_dir
        data = run_dir / "data"
        ship_demo(run_dir / "stage2" / "export" / "pipeline", data / "test", demo, video_id=cfg.ship.video_id,
                  num_frames=cfg.ship.frames, fps=float(json.loads((data / "manifest.json").read_text()).get("fps", 25.0)),
                  settings=dict(cfg.ship.settings))
        print(f"shipped the model and sample inputs to {demo}; try: python scripts/animate.py")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_main(run, build_parser(), argv, interrupted="interrupted; rerun the same command to continue "
                                                           "where it stopped")


if __name__ == "__main__":
    raise SystemExit(main())
