#!/usr/bin/env python
"""Reproduce the bundled demo model: dataset -> tiny VAE -> base UNet -> stage 1 (+ decay) -> stage 2 -> demo/.

    python scripts/make_demo.py                       # the full recipe (configs/demo/recipe.yaml), ~1 h on 2 cores
    python scripts/make_demo.py --scale 0.1 run_dir=outputs/demo/quick --no-ship   # a smoke run
    python scripts/make_demo.py vae.reuse=outputs/demo/run/vae stage1.steps=3000   # overrides

Every step is one of our ordinary scripts (make_synthetic_dataset.py, train_demo_vae.py, train.py), run as a
subprocess with its log in <run_dir>/logs/. A step whose output already exists is skipped (--force redoes
all), so an interrupted recipe continues where it stopped. At the end the stage-2 export, a held-out test
identity's reference image and DensePose video go to demo/, where `python scripts/animate.py` finds them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from magicanimate.errors import MagicAnimateError  # noqa: E402


def _run(name: str, cmd: list, log_dir: Path, threads: int) -> float:
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    print(f"[{name}] {' '.join(str(c) for c in cmd)}\n[{name}] log: {log}", flush=True)
    start = time.time()
    with open(log, "w") as fh:
        rc = subprocess.call([str(c) for c in cmd], stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT)
    seconds = time.time() - start
    if rc != 0:
        tail = log.read_text(errors="replace").replace("\r", "\n").strip().splitlines()[-15:]
        raise SystemExit(f"error: step {name} failed (exit {rc}) after {seconds:.0f} s; see {log}:\n  "
                         + "\n  ".join(tail))
    print(f"[{name}] done in {seconds:.0f} s", flush=True)
    return seconds


def _init_from(export: Path) -> list:
    """train.py overrides that start a run from a stage-1 export's UNet, appearance encoder and ControlNet."""
    return [f"model.unet={export / 'pipeline' / 'unet'}",
            f"model.appearance_encoder={export / 'MagicAnimate' / 'appearance_encoder'}",
            f"model.controlnet={export / 'MagicAnimate' / 'densepose_controlnet'}"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(REPO_ROOT / "configs" / "demo" / "recipe.yaml"))
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every training step count (0.1 = smoke run)")
    ap.add_argument("--force", action="store_true", help="redo steps whose outputs exist")
    ap.add_argument("--no-ship", dest="ship", action="store_false", help="do not copy the result to demo/")
    ap.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    if args.scale <= 0:
        ap.error("--scale must be > 0")

    from magicanimate.config import load_config, save_config, to_object
    from magicanimate.demo.recipe import RecipeConfig, ship_demo, write_base_folder

    try:
        cfg_node = load_config(RecipeConfig, args.config, args.overrides)
        cfg = to_object(cfg_node)
        # relative to the checkout when not to the working folder
        for part in (cfg.vae, cfg.stage1, cfg.stage1_decay, cfg.stage2):
            if not Path(part.config).is_absolute() and not Path(part.config).exists():
                part.config = str(REPO_ROOT / part.config)
        run = Path(cfg.run_dir)
        if not run.is_absolute():
            run = REPO_ROOT / run
        logs = run / "logs"
        run.mkdir(parents=True, exist_ok=True)
        save_config(cfg_node, run / "recipe.yaml")
        py = sys.executable
        scripts = REPO_ROOT / "scripts"
        scaled = lambda n: max(1, round(n * args.scale))  # noqa: E731
        times = {}

        def fresh(path: Path) -> bool:
            if args.force and path.exists():
                shutil.rmtree(path) if path.is_dir() else path.unlink()
            return not path.exists()

        data = run / "data"
        if fresh(data / "manifest.json"):
            d = cfg.data
            times["dataset"] = _run("dataset", [py, scripts / "make_synthetic_dataset.py", data, "--size", d.size,
                                                "--train", d.train, "--val", d.val, "--test", d.test, "--frames",
                                                d.frames, "--seed", d.seed, "--overwrite", "--quiet"],
                                    logs, cfg.threads)

        vae = Path(cfg.vae.reuse) if cfg.vae.reuse else run / "vae"
        if not cfg.vae.reuse and fresh(vae / "config.json"):
            times["vae"] = _run("vae", [py, scripts / "train_demo_vae.py", "--config", cfg.vae.config, "--quiet",
                                        f"output_dir={vae}", f"seed={cfg.seed}",
                                        *([f"data.root={data}"] if cfg.vae.train_on_dataset else []),
                                        f"num_threads={cfg.threads}", f"steps={scaled(cfg.vae.steps)}",
                                        f"max_minutes={cfg.vae.max_minutes * args.scale}", *cfg.vae.overrides],
                                logs, cfg.threads)

        base = run / "base"
        if fresh(base / "unet"):
            if base.exists():
                shutil.rmtree(base)
            vae_cfg = json.loads((vae / "config.json").read_text())
            latent = cfg.data.size // 2 ** (len(vae_cfg["block_out_channels"]) - 1)
            write_base_folder(base, cfg.base_unet, vae, latent_size=latent, seed=cfg.seed)
        common = [f"model.base_model={base}", f"model.prompt_embeds={base / 'prompt_embeds.safetensors'}",
                  f"data.root={data / 'train'}"]

        def videos(stage) -> list:
            return [] if stage.videos is None else [f"data.max_videos={stage.videos}"]

        s1 = run / "stage1"
        if fresh(s1 / "export" / "pipeline" / "model_index.json"):
            if s1.exists():
                shutil.rmtree(s1)
            times["stage1"] = _run("stage1", [py, scripts / "train.py", "--config", cfg.stage1.config, *common,
                                              f"output_dir={s1}", f"seed={cfg.seed}",
                                              f"max_train_steps={scaled(cfg.stage1.steps)}", *videos(cfg.stage1),
                                              *cfg.stage1.overrides],
                                   logs, cfg.threads)
        exp1 = s1 / "export"
        if cfg.stage1_decay.steps > 0:
            s1d = run / "stage1_decay"
            if fresh(s1d / "export" / "pipeline" / "model_index.json") or "stage1" in times:
                if s1d.exists():
                    shutil.rmtree(s1d)
                times["stage1_decay"] = _run("stage1_decay", [
                    py, scripts / "train.py", "--config", cfg.stage1_decay.config, *common, f"output_dir={s1d}",
                    f"seed={cfg.seed + 2}", *_init_from(exp1), f"max_train_steps={scaled(cfg.stage1_decay.steps)}",
                    *videos(cfg.stage1_decay), *cfg.stage1_decay.overrides], logs, cfg.threads)
            exp1 = s1d / "export"
        s2 = run / "stage2"
        # a stage retrained in this call makes the stages built on it stale
        if fresh(s2 / "export" / "pipeline" / "model_index.json") or {"stage1", "stage1_decay"} & set(times):
            if s2.exists():
                shutil.rmtree(s2)
            times["stage2"] = _run("stage2", [py, scripts / "train.py", "--config", cfg.stage2.config, *common,
                                              f"output_dir={s2}", f"seed={cfg.seed + 1}",
                                              *_init_from(exp1),
                                              f"max_train_steps={scaled(cfg.stage2.steps)}", *videos(cfg.stage2),
                                              *cfg.stage2.overrides],
                                   logs, cfg.threads)
        with open(run / "times.json", "a") as fh:
            fh.write(json.dumps({"scale": args.scale, **{k: round(v, 1) for k, v in times.items()}}) + "\n")
        print(f"recipe done in {sum(times.values()):.0f} s of step time; run folder {run}")
        if args.ship:
            demo = REPO_ROOT / cfg.ship.demo_dir
            ship_demo(s2 / "export" / "pipeline", data / "test", demo, video_id=cfg.ship.video_id,
                      num_frames=cfg.ship.frames,
                      fps=float(json.loads((data / "manifest.json").read_text()).get("fps", 25.0)), settings=dict(cfg.ship.settings))
            print(f"shipped the model and sample inputs to {demo}; try: python scripts/animate.py")
    except MagicAnimateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
