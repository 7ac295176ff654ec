"""The demo recipe's engine: its steps in order, what makes a step done or stale, and resuming.

Steps: ``dataset`` -> ``vae`` -> ``base`` (the toy world's SD-style folder) -> ``stage1`` -> ``stage1_decay``
(optional) -> ``stage2``. Each is one of our ordinary command lines run as a subprocess with its log in
``<run_dir>/logs/``. A step is done when its output exists (a training stage: its export); a rerun skips done
steps, and a training stage that was interrupted resumes from its last checkpoint (``resume=latest``)
instead of starting over. A stage becomes stale, and restarts from scratch, when a stage it builds on was
retrained in this run; ``--force`` redoes everything.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

from magicanimate.errors import MagicAnimateError

PACKAGE_ROOT = Path(__file__).resolve().parents[2]
EXPORT_MARKER = Path("export") / "pipeline" / "model_index.json"


class StepFailed(MagicAnimateError):
    """A recipe step's command exited with an error (its log names the cause)."""


def run_logged(name: str, cmd: List[str], log_dir: Path, threads: int) -> float:
    """Run one step's command with its output in ``<log_dir>/<name>.log``; seconds taken. An interruption
    (Ctrl-C, SIGTERM) stops the child too, so nothing keeps writing after the recipe stopped."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    path = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONPATH=path)
    print(f"[{name}] {' '.join(str(c) for c in cmd)}\n[{name}] log: {log}", flush=True)
    start = time.time()
    with open(log, "w") as fh:
        child = subprocess.Popen([str(c) for c in cmd], stdout=fh, stderr=subprocess.STDOUT, env=env,
                                 cwd=PACKAGE_ROOT)
        try:
            rc = child.wait()
        except BaseException:
            child.terminate()
            child.wait()
            raise
    seconds = time.time() - start
    if rc != 0:
        tail = log.read_text(errors="replace").replace("\r", "\n").strip().splitlines()[-15:]
        raise StepFailed(f"step {name} failed (exit {rc}) after {seconds:.0f} s; see {log}:\n  " + "\n  ".join(tail))
    print(f"[{name}] done in {seconds:.0f} s", flush=True)
    return seconds


def module_command(module: str, *args) -> List[str]:
    return [sys.executable, "-m", f"magicanimate.cli.{module}", *[str(a) for a in args]]


def init_from(export: Path) -> list:
    """train overrides that start a run from a stage's export: its UNet, appearance encoder and ControlNet."""
    return [f"model.unet={export / 'pipeline' / 'unet'}",
            f"model.appearance_encoder={export / 'MagicAnimate' / 'appearance_encoder'}",
            f"model.controlnet={export / 'MagicAnimate' / 'densepose_controlnet'}"]


class RecipeRun:
    """One run of the recipe ``cfg`` (a RecipeConfig) in ``run_dir``; :meth:`run` returns step seconds."""

    def __init__(self, cfg, run_dir: Path, *, scale: float = 1.0, force: bool = False):
        self.cfg, self.run_dir, self.scale, self.force = cfg, Path(run_dir), scale, force
        self.logs = self.run_dir / "logs"
        self.times: Dict[str, float] = {}

    def scaled(self, steps: int) -> int:
        return max(1, round(steps * self.scale))

    STEP_FOLDERS = ("data", "vae", "base", "stage1", "stage1_decay", "stage2")

    def _done(self, marker: Path) -> bool:
        return marker.exists()

    def run(self) -> Dict[str, float]:
        if self.force:  # everything from scratch (a reused VAE folder is not ours to delete)
            for name in self.STEP_FOLDERS:
                shutil.rmtree(self.run_dir / name, ignore_errors=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        data, vae = self.dataset(), self.vae()
        base = self.base(vae)
        common = [f"model.base_model={base}", f"model.prompt_embeds={base / 'prompt_embeds.safetensors'}",
                  f"data.root={data / 'train'}"]
        c = self.cfg
        export = self.stage("stage1", c.stage1, common, seed=c.seed, after=[])
        if c.stage1_decay.steps > 0:
            export = self.stage("stage1_decay", c.stage1_decay, common + init_from(export), seed=c.seed + 2,
                                after=["stage1"])
        self.stage("stage2", c.stage2, common + init_from(export), seed=c.seed + 1, after=["stage1", "stage1_decay"])
        with open(self.run_dir / "times.json", "a") as fh:
            fh.write(json.dumps({"scale": self.scale, **{k: round(v, 1) for k, v in self.times.items()}}) + "\n")
        return self.times

    def dataset(self) -> Path:
        data, d = self.run_dir / "data", self.cfg.data
        if not self._done(data / "manifest.json"):
            self.times["dataset"] = run_logged("dataset", module_command(
                "make_synthetic_dataset", data, "--size", d.size, "--train", d.train, "--val", d.val, "--test",
                d.test, "--frames", d.frames, "--seed", d.seed, "--overwrite", "--quiet"), self.logs, self.cfg.threads)
        return data

    def vae(self) -> Path:
        v = self.cfg.vae
        if v.reuse:
            return Path(v.reuse)
        folder = self.run_dir / "vae"
        if not self._done(folder / "config.json"):
            data = [f"data.root={self.run_dir / 'data'}"] if v.train_on_dataset else []
            self.times["vae"] = run_logged("vae", module_command(
                "train_demo_vae", "--config", v.config, "--quiet", f"output_dir={folder}", f"seed={self.cfg.seed}",
                *data, f"num_threads={self.cfg.threads}", f"steps={self.scaled(v.steps)}",
                f"max_minutes={v.max_minutes * self.scale}", *v.overrides), self.logs, self.cfg.threads)
        return folder

    def base(self, vae: Path) -> Path:
        from magicanimate.demo.recipe import write_base_folder

        base = self.run_dir / "base"
        if not self._done(base / "unet") or "vae" in self.times:
            vae_cfg = json.loads((vae / "config.json").read_text())
            latent = self.cfg.data.size // 2 ** (len(vae_cfg["block_out_channels"]) - 1)
            write_base_folder(base, self.cfg.base_unet, vae, latent_size=latent, seed=self.cfg.seed)
            self.times["base"] = 0.0
        return base

    def stage(self, name: str, stage, common: list, *, seed: int, after: list) -> Path:
        """Train one stage unless its export exists; resume it from its last checkpoint when it was
        interrupted; start it over when a stage it builds on was retrained in this run."""
        folder = self.run_dir / name
        stale = any(step in self.times for step in [*after, "base"])
        if not stale and self._done(folder / EXPORT_MARKER):
            return folder / "export"
        if stale and folder.exists():
            shutil.rmtree(folder)
        videos = [] if stage.videos is None else [f"data.max_videos={stage.videos}"]
        self.times[name] = run_logged(name, module_command(
            "train", "--config", stage.config, *common, f"output_dir={folder}", f"seed={seed}", "resume=latest",
            f"max_train_steps={self.scaled(stage.steps)}", *videos, *stage.overrides), self.logs, self.cfg.threads)
        return folder / "export"
