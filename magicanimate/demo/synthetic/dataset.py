"""Write synthetic-dancer datasets in the generic training layout, with disjoint splits.

Layout (each split is a dataset root of its own, as the training data layout ``generic`` reads it)::

    <out>/manifest.json
    <out>/train/<video_id>/images/0000.png      RGB frames
    <out>/train/<video_id>/densepose/0000.png   DensePose frames (MagicAnimate encoding, exact palette)
    <out>/val/...   <out>/test/...

Disjoint splits: split number ``k`` (train 0, val 1, test 2) only ever gets identity and motion seeds
``≡ k (mod 3)``, so no identity and no motion of one split occurs in another, whatever the counts. The
seeds are drawn from the dataset seed, so two datasets with different seeds differ. ``manifest.json``
lists every video with its identity and motion seeds (which reproduce it through
:func:`magicanimate.demo.synthetic.render.render_clip`).

Each video folder is written under a temporary name and renamed when complete; the manifest is written
last, so a folder with a manifest is a complete dataset.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Mapping

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from magicanimate.demo.synthetic.render import frame_size, render_clip
from magicanimate.demo.synthetic.body import Identity
from magicanimate.errors import ConfigError, InputError
from magicanimate.utils.files import atomic_path

SPLITS = ("train", "val", "test")
MANIFEST = "manifest.json"
_IDENTITY_DOMAIN, _MOTION_DOMAIN = 1, 2
_SEED_RANGE = 1 << 31


def split_seeds(seed: int, split: str, count: int, domain: int) -> list[int]:
    """``count`` distinct seeds for ``split``, all ``≡ SPLITS.index(split) (mod len(SPLITS))``."""
    k = SPLITS.index(split)
    rng = np.random.default_rng([int(seed), domain, k])
    out: list[int] = []
    seen: set[int] = set()
    while len(out) < count:
        s = int(rng.integers(0, _SEED_RANGE // len(SPLITS))) * len(SPLITS) + k
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out


def plan_dataset(counts: Mapping[str, int], seed: int) -> dict[str, list[dict]]:
    """Video ids and their identity/motion seeds per split (nothing rendered)."""
    plan = {}
    for split in SPLITS:
        n = int(counts.get(split, 0))
        idents = split_seeds(seed, split, n, _IDENTITY_DOMAIN)
        motions = split_seeds(seed, split, n, _MOTION_DOMAIN)
        plan[split] = [
            {"id": f"{split}_{i:04d}", "identity_seed": a, "motion_seed": b}
            for i, (a, b) in enumerate(zip(idents, motions))
        ]
    return plan


def _write_png(path: Path, rgb: np.ndarray) -> None:
    # PIL, not OpenCV: OpenCV's PNG codec fails in a process that loaded decord first (see data/video.py)
    try:
        Image.fromarray(np.ascontiguousarray(rgb)).save(path, format="PNG")
    except OSError as exc:
        raise InputError(f"{path}: could not write PNG ({exc})") from None


def write_synthetic_dataset(
    out: str | os.PathLike,
    *,
    counts: Mapping[str, int],
    num_frames: int,
    size: int | tuple[int, int],
    seed: int = 0,
    fps: float = 25.0,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Render and write a dataset (see the module docstring); returns the manifest."""
    unknown = set(counts) - set(SPLITS)
    if unknown:
        raise ConfigError(f"unknown split(s) {sorted(unknown)}; splits are {list(SPLITS)}")
    if any(int(n) < 0 for n in counts.values()) or sum(int(n) for n in counts.values()) == 0:
        raise ConfigError(f"video counts must be >= 0 and not all zero, got {dict(counts)}")
    if num_frames < 1:
        raise ConfigError(f"frames per video must be at least 1, got {num_frames}")
    height, width = frame_size(size)
    if not fps > 0:
        raise ConfigError(f"fps must be positive, got {fps}")
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise InputError(f"{root}: exists and is not a folder")
    if root.exists() and any(root.iterdir()):
        if not overwrite:
            raise InputError(f"{root}: folder is not empty (pass overwrite / --overwrite to replace it)")
        foreign = sorted(p.name for p in root.iterdir() if p.name not in (*SPLITS, MANIFEST))
        if foreign:
            # Only ever wipe what this writer makes (split folders, manifest), even if interrupted.
            raise InputError(f"{root}: holds {foreign[:5]}, not only a synthetic dataset; refusing to overwrite it")
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)

    plan = plan_dataset(counts, seed)
    total = sum(len(v) for v in plan.values())
    bar = tqdm(total=total, desc="synthetic videos", unit="video", disable=not progress)
    for split, videos in plan.items():
        for video in videos:
            clip = render_clip(video["identity_seed"], video["motion_seed"], num_frames, (height, width), fps=fps)
            with atomic_path(root / split / video["id"]) as tmp:
                for sub, frames in (("images", clip.rgb), ("densepose", clip.densepose)):
                    (tmp / sub).mkdir(parents=True)
                    for i, frame in enumerate(frames):
                        _write_png(tmp / sub / f"{i:04d}.png", frame)
            video["frames"] = num_frames
            video["identity"] = Identity.from_seed(video["identity_seed"]).to_dict()
            bar.update(1)
    bar.close()

    manifest = {
        "format": "magicanimate-synthetic-v1",
        "seed": int(seed),
        "height": int(height),
        "width": int(width),
        "fps": float(fps),
        "frames_per_video": int(num_frames),
        "layout": "<split>/<video_id>/{images,densepose}/NNNN.png",
        "splits": plan,
    }
    with atomic_path(root / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1))
    return manifest


def read_manifest(root: str | os.PathLike) -> dict:
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise InputError(f"{path}: missing; not a synthetic dataset written by scripts/make_synthetic_dataset.py")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not valid JSON ({e})") from None
