"""Synthetic benchmark: the demo model against ground truth on held-out test dancers.

Test clips are rendered in memory from the synthetic dataset's test-split seeds (identities and motions
never seen in training). For each clip the reference is frame 0 and the scored frames are 1..N (frame 0
would flatter the repeated-reference baseline). Methods:

* ``reference repeated``: the reference image as every output frame (the floor a model must beat);
* ``stage 1 only``: the trained pipeline with its motion modules removed (what stage 1 produced);
* ``stage 2``: the trained pipeline, tapered fusion (our default) and the original's parity fusion.

Metrics per frame, averaged over frames then clips: PSNR (correct: float, data range 255), SSIM (Wang et
al.'s Gaussian definition on grayscale), L1 (mean absolute error on 0..255) — from
:mod:`magicanimate.evaluation.frame_metrics` — and a temporal error: the mean absolute difference between
the generated and the true frame-to-frame changes, ``|(g[t+1] - g[t]) - (y[t+1] - y[t])|`` on 0..255, which
flicker raises and which a still video scores as the true motion's size.
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from magicanimate.evaluation.frame_metrics import mae, psnr, ssim_standard
from magicanimate.evaluation.metrics import PerFrameMetric, TemporalError, score_videos
from magicanimate.utils.files import atomic_path

logger = logging.getLogger(__name__)

METRICS = ("psnr", "ssim", "l1", "temporal")
# higher is better for these; lower for the others
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "l1": False, "temporal": False}


@dataclass
class TestClip:
    video_id: str
    reference: np.ndarray  # (H, W, 3) uint8
    densepose: np.ndarray  # (N, H, W, 3) uint8, the frames to animate
    ground_truth: np.ndarray  # (N, H, W, 3) uint8


def synthetic_test_clips(num_clips: int, num_frames: int, size: int = 64, *, seed: int = 0,
                         fps: float = 25.0, split: str = "test") -> List[TestClip]:
    """The first ``num_clips`` videos of a split (default: test) of a synthetic dataset with ``seed`` (as
    scripts/make_synthetic_dataset.py writes them), rendered in memory: reference = frame 0, then
    ``num_frames`` frames to animate. Settings such as the guidance scale are chosen on ``split="val"``."""
    from magicanimate.demo.synthetic.render import render_clip
    from magicanimate.demo.synthetic.dataset import plan_dataset

    clips = []
    for video in plan_dataset({split: num_clips}, seed)[split]:
        c = render_clip(video["identity_seed"], video["motion_seed"], num_frames + 1, size, fps=fps)
        clips.append(TestClip(video["id"], c.rgb[0], c.densepose[1:], c.rgb[1:]))
    return clips


# Background kinds with fine structure, where copying through reference attention shows (smooth ones a model
# can redraw from the noised reference's residue alone).
TEXTURED_BACKGROUNDS = ("checker", "noise")


def copy_test_clips(num_clips: int, split: str, *, num_frames: int = 8, size: int = 64, seed: int = 0,
                    backgrounds: Optional[Sequence[str]] = None) -> List[TestClip]:
    """Clips for the copy test: every target frame is the reference itself (frame 0 of the video, its own
    DensePose repeated). A model that learned to copy through reference attention reproduces it for any
    identity; one that memorised its training dancers does so only for ``split="train"`` (the first videos
    of the recipe's train split with ``seed``). ``backgrounds``: only identities with these background
    kinds (e.g. :data:`TEXTURED_BACKGROUNDS`), the first ``num_clips`` such videos of the split."""
    from magicanimate.demo.synthetic.render import render_clip
    from magicanimate.demo.synthetic.body import Identity
    from magicanimate.demo.synthetic.dataset import plan_dataset

    search = max(64, 50 * num_clips)
    clips = []
    for video in plan_dataset({split: search}, seed)[split]:
        if backgrounds is not None and Identity.from_seed(video["identity_seed"]).background not in backgrounds:
            continue
        c = render_clip(video["identity_seed"], video["motion_seed"], 1, size)
        clips.append(TestClip(video["id"], c.rgb[0], np.repeat(c.densepose[:1], num_frames, axis=0),
                              np.repeat(c.rgb[:1], num_frames, axis=0)))
        if len(clips) == num_clips:
            return clips
    raise ValueError(f"only {len(clips)} of the first {search} {split} videos have backgrounds {backgrounds}")


def video_metrics():
    """The benchmark's metrics, as the evaluation harness's metric objects (one set per method)."""
    return [PerFrameMetric("psnr", psnr), PerFrameMetric("ssim", ssim_standard), PerFrameMetric("l1", mae),
            TemporalError()]


def temporal_error(generated: np.ndarray, ground_truth: np.ndarray) -> float:
    """Mean |(g[t+1]-g[t]) - (y[t+1]-y[t])| on 0..255 over all pixels and consecutive pairs."""
    return TemporalError().add(generated, ground_truth)["temporal"]


def score_video(generated: np.ndarray, ground_truth: np.ndarray) -> Dict[str, float]:
    """Frame-averaged PSNR, SSIM, L1 and the temporal error of one video."""
    if generated.shape != ground_truth.shape:
        raise ValueError(f"generated {generated.shape} and ground truth {ground_truth.shape} differ")
    return score_videos(video_metrics(), generated, ground_truth)


def without_motion_modules(pipe):
    """A copy of ``pipe`` whose UNet has no motion modules (same spatial weights): the stage-1 model."""
    from magicanimate.models import UNet3DMotionModel

    unet = pipe.unet
    config = {k: v for k, v in unet.config.items() if not k.startswith("_")}
    config["use_motion_module"] = False
    still = UNet3DMotionModel.from_config(config)
    still.load_spatial_state_dict({k: v for k, v in unet.state_dict().items() if "motion_modules" not in k},
                                  source="stage-2 UNet")
    still.to(dtype=unet.dtype, device=unet.device).eval()
    out = copy.copy(pipe)
    out.register_modules(unet=still)
    return out


def _to_uint8(video) -> np.ndarray:
    if torch.is_tensor(video):
        video = video.detach().cpu()
        if video.ndim == 5:  # (1, 3, F, H, W) or (1, F, 3, H, W)
            video = video[0]
        if video.shape[0] == 3:
            video = video.permute(1, 2, 3, 0)
        elif video.shape[1] == 3:
            video = video.permute(0, 2, 3, 1)
        video = video.float().numpy()
    video = np.asarray(video)
    if video.dtype != np.uint8:
        video = np.clip(np.rint(video * 255.0), 0, 255).astype(np.uint8)
    return video


@torch.no_grad()
def vae_reconstruction(pipe, frames: np.ndarray) -> np.ndarray:
    """Ground-truth frames through the pipeline's VAE (encode, latent mean, decode): the ceiling any
    latent-diffusion output of this model can reach."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).float().permute(0, 3, 1, 2) / 127.5 - 1.0
    x = x.to(device=pipe.vae.device, dtype=pipe.vae.dtype)
    y = pipe.vae.decode(pipe.vae.encode(x).latent_dist.mean).sample.float()
    return (((y / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy())


def animate_clip(pipe, clip: TestClip, *, steps: int, guidance_scale: float, seed: int, fusion: str,
                 context_frames: int, context_overlap: int, init_from_reference: bool = False,
                 init_strength: float = 1.0) -> np.ndarray:
    """(N, H, W, 3) uint8 frames the pipeline makes for one test clip."""
    out = pipe(clip.reference, clip.densepose, num_inference_steps=steps, guidance_scale=guidance_scale,
               generator=torch.Generator("cpu").manual_seed(seed), fusion=fusion, context_frames=context_frames,
               context_overlap=context_overlap, init_from_reference=init_from_reference,
               init_strength=init_strength)
    frames = _to_uint8(out.videos if hasattr(out, "videos") else out[0])
    if frames.shape != clip.ground_truth.shape:
        raise ValueError(f"pipeline returned {frames.shape}, expected {clip.ground_truth.shape}")
    return frames


def run_methods(pipe, clips: Sequence[TestClip], methods: Sequence[str], *, steps: int, guidance_scale: float,
                seed: int, context_frames: int, context_overlap: int, init_from_reference: bool = False,
                init_strength: float = 1.0, progress: bool = True) -> Dict[str, dict]:
    """Scores (mean over clips, and per clip) of each method: ``reference``, ``vae`` (ground truth through
    the VAE), ``stage1``, ``stage2`` (tapered), ``stage2_parity`` or ``stage2_noise`` (tapered, started from
    pure noise, all steps, whatever ``init_from_reference`` and ``init_strength`` say)."""
    known = ("reference", "vae", "stage1", "stage2", "stage2_parity", "stage2_noise")
    unknown = [m for m in methods if m not in known]
    if unknown:
        raise ValueError(f"unknown methods {unknown}; known: {known}")
    stage1 = without_motion_modules(pipe) if "stage1" in methods else None
    results = {}
    for method in methods:
        per_clip = {}
        for clip in tqdm(clips, desc=method, disable=not progress, leave=False):
            if method == "reference":
                frames = np.repeat(clip.reference[None], len(clip.ground_truth), axis=0)
            elif method == "vae":
                frames = vae_reconstruction(pipe, clip.ground_truth)
            else:
                model = stage1 if method == "stage1" else pipe
                frames = animate_clip(model, clip, steps=steps, guidance_scale=guidance_scale, seed=seed,
                                      fusion="parity" if method == "stage2_parity" else "tapered",
                                      context_frames=context_frames, context_overlap=context_overlap,
                                      init_from_reference=init_from_reference and method != "stage2_noise",
                                      init_strength=1.0 if method == "stage2_noise" else init_strength)
            per_clip[clip.video_id] = score_video(frames, clip.ground_truth)
        mean = {k: float(np.mean([s[k] for s in per_clip.values()])) for k in METRICS}
        results[method] = {"mean": mean, "clips": per_clip}
    return results


def copy_test(pipe, num_clips: int, *, splits: Sequence[str] = ("train", "test"),
              backgrounds: Optional[Sequence[str]] = TEXTURED_BACKGROUNDS, num_frames: int = 8,
              **kwargs) -> Dict[str, Dict[str, dict]]:
    """Copy test per split (see :func:`copy_test_clips`): the VAE's reconstruction (the ceiling) and stage 2
    against the reference itself. ``kwargs`` go to :func:`run_methods` (steps, guidance, ...); a large gap
    between the train and test splits means the model memorised its training appearances."""
    return {split: run_methods(pipe, copy_test_clips(num_clips, split, num_frames=num_frames,
                                                     backgrounds=backgrounds), ["vae", "stage2"], **kwargs)
            for split in splits}


LABELS = {"reference": "reference image repeated (baseline)", "vae": "ground truth through the VAE (ceiling)", "stage1": "stage 1 only (no motion modules)",
          "stage2": "stage 2, tapered fusion", "stage2_parity": "stage 2, parity fusion",
          "stage2_noise": "stage 2, tapered, from pure noise"}


def markdown_table(sections: Dict[str, Dict[str, dict]]) -> str:
    """One table per section (e.g. short / long clips): method | PSNR | SSIM | L1 | temporal error."""
    lines = []
    for title, results in sections.items():
        lines += [f"**{title}**", "", "| method | PSNR (dB) ↑ | SSIM ↑ | L1 (0-255) ↓ | temporal error ↓ |",
                  "|---|---|---|---|---|"]
        for method, r in results.items():
            m = r["mean"]
            lines.append(f"| {LABELS.get(method, method)} | {m['psnr']:.2f} | {m['ssim']:.4f} | {m['l1']:.2f} | "
                         f"{m['temporal']:.2f} |")
        lines.append("")
    return "\n".join(lines)


def write_report(report: dict, json_path, md_path) -> None:
    with atomic_path(json_path) as tmp:
        tmp.write_text(json.dumps(report, indent=1) + "\n")
    with atomic_path(md_path) as tmp:
        tmp.write_text(markdown_table(report["sections"]) + "\n" + report.get("notes", "") + "\n")


# Settings of the quality gates that tests/demo checks on every CI run (few clips, to stay fast): the
# benchmark script measures the margins under exactly these settings and records them in
# demo/quality_gates.json. 32 frames (1.3 s at 25 fps) after the reference frame: over the first few frames
# a dancer has hardly left the reference pose, and the repeated reference then scores only its background.
GATE_SETTINGS = dict(num_clips=2, num_frames=32, steps=8, seed=1, context_frames=8, context_overlap=2)


def gate_results(pipe, guidance_scale: float, init_from_reference: bool = False, init_strength: float = 1.0,
                 progress: bool = False) -> Dict[str, dict]:
    """The gate methods under GATE_SETTINGS, with the demo's guidance scale and initialisation."""
    s = GATE_SETTINGS
    clips = synthetic_test_clips(s["num_clips"], s["num_frames"])
    return run_methods(pipe, clips, ["reference", "stage1", "stage2"], steps=s["steps"],
                       guidance_scale=guidance_scale, seed=s["seed"], context_frames=s["context_frames"],
                       context_overlap=s["context_overlap"], init_from_reference=init_from_reference,
                       init_strength=init_strength,
                       progress=progress)


def gate_margins(results: Dict[str, dict]) -> Dict[str, float]:
    """Stage 2 minus the repeated-reference baseline (PSNR, SSIM), and stage 1 minus stage 2 (temporal error)."""
    base, s1, s2 = results["reference"]["mean"], results["stage1"]["mean"], results["stage2"]["mean"]
    return {"psnr": s2["psnr"] - base["psnr"], "ssim": s2["ssim"] - base["ssim"],
            "temporal": s1["temporal"] - s2["temporal"]}
