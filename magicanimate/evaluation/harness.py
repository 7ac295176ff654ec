"""The evaluation harness: generated vs ground-truth videos -> every metric, labelled by protocol.

Protocols (see docs/evaluation.md):

* ``disco`` reproduces how the TikTok tables (DisCo, MagicAnimate) were computed: L1 divided by H*W,
  PSNR with uint8 overflow, SSIM with scikit-image defaults, LPIPS fed [0, 1], FVD over stride-1 windows.
* ``standard`` uses the correct definitions: mean absolute error, float PSNR, Wang et al.'s SSIM, LPIPS
  fed [-1, 1], FVD over one clip per 16-frame chunk.

Every cheap variant (both L1s, both PSNRs, both SSIMs) is computed and stored under ``variants`` whatever
the protocol; the headline ``metrics`` use the protocol's definitions.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from magicanimate.errors import InputError
from magicanimate.utils.devices import resolve_device
from magicanimate.evaluation import features as feats
from magicanimate.evaluation import frame_metrics as fm
from magicanimate.evaluation.metrics import (ForegroundL1, FrechetMetric, LpipsMetric, PerFrameMetric,
                                             finalize_all, score_videos)
from magicanimate.evaluation.videos import load_pair, pair_videos
from magicanimate.evaluation.weights import build_network

logger = logging.getLogger(__name__)

METRICS = ("l1", "psnr", "ssim", "lpips", "fid", "fid_vid", "fvd")
PROTOCOLS = ("disco", "standard")
RANDOM_WARNING = ("RANDOM-INITIALISED METRIC NETWORKS (test-only flag): LPIPS, FID, FID-VID and FVD values "
                  "are meaningless")

# protocol -> metric -> (variant key, definition); FVD's entry depends on the clip builder (set per run)
_HEADLINE = {
    "disco": {
        "l1": ("l1_disco", "mean abs(gen - gt) on 0..255 divided by H*W (DisCo; resolution dependent)"),
        "psnr": ("psnr_disco", "PSNR after uint8 subtraction/squaring that wrap mod 256 (DisCo); 100 dB if identical"),
        "ssim": ("ssim_disco", "scikit-image defaults on OpenCV gray: 7x7 uniform, sample covariance, range 255"),
        "lpips": ("lpips_0_1", "LPIPS v0.1 VGG fed [0, 1] without rescaling (as DisCo)"),
    },
    "standard": {
        "l1": ("mae", "mean abs(gen - gt) on 0..255"),
        "psnr": ("psnr", "PSNR in float, data range 255, per frame then averaged; 100 dB if identical"),
        "ssim": ("ssim_standard", "Wang et al.: 11x11 Gaussian sigma 1.5, population covariance, on OpenCV gray"),
        "lpips": ("lpips_-1_1", "LPIPS v0.1 VGG fed [-1, 1] (LPIPS's convention)"),
    },
}
_COMMON = {
    "fid": ("fid", "FID, pytorch-fid Inception-v3 pool3, all generated frames vs all ground-truth frames"),
    "fid_vid": ("fid_vid", "FID-VID, Hara 3D ResNet-50 features averaged per video over 16-frame segments"),
}
_PER_FRAME = {
    "l1_disco": fm.l1_disco, "mae": fm.mae, "psnr": fm.psnr, "psnr_disco": fm.psnr_disco,
    "ssim_disco": fm.ssim_disco, "ssim_standard": fm.ssim_standard,
}
_PER_FRAME_FOR = {"l1": ("l1_disco", "mae"), "psnr": ("psnr", "psnr_disco"), "ssim": ("ssim_disco", "ssim_standard")}


@dataclass
class EvalOptions:
    protocol: str = "disco"
    metrics: Sequence[str] = METRICS
    weights_dir: Optional[Path] = None
    random_networks: bool = False  # tests only: seeded random weights for the four networks
    seed: int = 0
    device: str = "auto"
    batch_size: int = 8
    fvd_clips: Optional[str] = None  # None: the protocol's builder
    allow_length_mismatch: bool = False
    max_frames: Optional[int] = None
    masks: Optional[Path] = None  # foreground masks (TED-talks foreground L1)
    verify_hash: bool = True
    progress: bool = True
    extra: Dict[str, object] = field(default_factory=dict)

    def validate(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise InputError(f"unknown protocol {self.protocol!r}; choose one of {PROTOCOLS}")
        unknown = [m for m in self.metrics if m not in METRICS]
        if unknown or not self.metrics:
            raise InputError(f"unknown metrics {unknown or '(none given)'}; choose from {', '.join(METRICS)}")
        if self.fvd_clips is not None and self.fvd_clips not in feats.CLIP_BUILDERS:
            raise InputError(f"unknown FVD clip builder {self.fvd_clips!r}; choose one of {sorted(feats.CLIP_BUILDERS)}")


# Networks and features are cached per process: a validation loop or a reproduction run evaluates many
# generated sets against the same ground truth, whose features then need computing once. Keys hold the
# weights' origin and a digest of the frames, so a cached value is only reused for identical inputs.
_NETWORKS: "OrderedDict[tuple, tuple]" = OrderedDict()
_FEATURES: "OrderedDict[tuple, object]" = OrderedDict()
_MAX_FEATURES = 4096


def _network(name: str, options: "EvalOptions", device: torch.device):
    key = (name, str(options.weights_dir), bool(options.random_networks), options.seed if options.random_networks
           else None, str(device))
    if key not in _NETWORKS:
        _NETWORKS[key] = build_network(name, options.weights_dir, random_init=options.random_networks,
                                       seed=options.seed, verify_hash=options.verify_hash, device=device)
    return key, _NETWORKS[key]


def _cached(network_key: tuple, kind: str, frames: np.ndarray, compute):
    digest = hashlib.sha1(np.ascontiguousarray(frames).data).hexdigest()
    key = (network_key, kind, frames.shape, digest)
    if key in _FEATURES:
        _FEATURES.move_to_end(key)
        return _FEATURES[key]
    value = compute()
    _FEATURES[key] = value
    while len(_FEATURES) > _MAX_FEATURES:
        _FEATURES.popitem(last=False)
    return value


def _build_metrics(options: "EvalOptions", metrics: List[str], device, fvd_builder: str, lpips_range: str) -> list:
    """The metric objects a run needs, with their networks (cached per process)."""
    bs = options.batch_size
    out: list = [PerFrameMetric(k, _PER_FRAME[k]) for m in metrics if m in _PER_FRAME_FOR for k in _PER_FRAME_FOR[m]]
    out.append(ForegroundL1())
    if "lpips" in metrics:
        _, (lpips, _) = _network("lpips", options, device)
        out.append(LpipsMetric(f"lpips_{lpips_range.replace('..', '_')}", lambda g, t: feats.lpips_distances(
            lpips, g, t, input_range=lpips_range, batch_size=bs, device=device)))
    for metric, net, kind, key, what, stack in (
            ("fid", "inception", "pool3", "fid", "FID frames", False),
            ("fid_vid", "resnet3d", "video", "fid_vid", "FID-VID videos", True),
            ("fvd", "i3d", fvd_builder, f"fvd_{fvd_builder}", "FVD clips", False)):
        if metric in metrics:
            out.append(FrechetMetric(key, _feature_fn(net, kind, options, device, fvd_builder), what, stack=stack))
    return out


def _feature_fn(net: str, kind: str, options: "EvalOptions", device, fvd_builder: str):
    net_key, (model, _) = _network(net, options, device)
    bs = options.batch_size
    compute = {
        "inception": lambda f: feats.inception_features(model, f, batch_size=bs, device=device),
        "resnet3d": lambda f: feats.resnet3d_video_feature(model, f, batch_size=bs, device=device),
        "i3d": lambda f: feats.i3d_clip_features(model, f, builder=fvd_builder, batch_size=bs, device=device),
    }[net]
    return lambda frames: _cached(net_key, kind, frames, lambda: compute(frames))


def _weights_used(options: "EvalOptions", metrics: List[str], device) -> dict:
    used = {}
    for metric, net in (("lpips", "lpips"), ("fid", "inception"), ("fid_vid", "resnet3d"), ("fvd", "i3d")):
        if metric in metrics:
            used.update(_network(net, options, device)[1][1])
    return used


def _check_sizes(pair, gt: np.ndarray, metrics: List[str]) -> None:
    smallest = min(gt.shape[1:3])
    for metric, need in (("ssim", 11), ("lpips", 16)):
        if metric in metrics and smallest < need:
            raise InputError(f"{pair.ground_truth}: frames of {gt.shape[1]}x{gt.shape[2]} are too small for {metric} "
                             f"(needs at least {need}x{need}); drop it with --metrics")


def evaluate_folders(generated, ground_truth, options: Optional[EvalOptions] = None) -> dict:
    """Evaluate every generated video against its ground truth; returns the results dictionary."""
    options = options or EvalOptions()
    options.validate()
    device = resolve_device(options.device)
    metrics = [m for m in METRICS if m in options.metrics]
    fvd_builder = options.fvd_clips or ("stride1" if options.protocol == "disco" else "chunks")
    lpips_range = "0..1" if options.protocol == "disco" else "-1..1"
    pairs = pair_videos(generated, ground_truth, options.masks)
    if ("fid_vid" in metrics or "fvd" in metrics) and len(pairs) < 2:
        raise InputError(
            f"FID-VID and FVD need at least 2 videos (covariance with ddof=1), {ground_truth} has {len(pairs)}; "
            f"drop them with --metrics or add videos")
    scorers = _build_metrics(options, metrics, device, fvd_builder, lpips_range)
    per_video, sizes, total_frames, identical = {}, set(), 0, 0
    bar = tqdm(pairs, desc="evaluating videos", unit="video", disable=not options.progress)
    for pair in bar:
        bar.set_postfix_str(pair.name)
        gen, gt, mask = load_pair(pair, allow_length_mismatch=options.allow_length_mismatch,
                                  max_frames=options.max_frames)
        _check_sizes(pair, gt, metrics)
        sizes.add(tuple(gt.shape[1:3]))
        total_frames += len(gt)
        identical += int(sum(np.array_equal(g, t) for g, t in zip(gen, gt)))
        per_video[pair.name] = {"frames": len(gt), **score_videos(scorers, gen, gt, mask)}
    if "fid" in metrics and total_frames < 2:
        raise InputError(f"FID needs at least 2 frames (covariance with ddof=1), {ground_truth} has {total_frames}; "
                         f"drop it with --metrics or add frames")
    variants = finalize_all(scorers)
    clips = sum(m.samples() for m in scorers if isinstance(m, FrechetMetric) and m.key.startswith("fvd"))
    headline, definitions = _headline(options.protocol, metrics, variants, fvd_builder)
    results = {
        "protocol": options.protocol, "random_networks": bool(options.random_networks), "generated": str(generated),
        "ground_truth": str(ground_truth), "resolution": sorted([list(s) for s in sizes]), "videos": len(pairs),
        "frames": total_frames, "identical_frames": identical, "clips": clips,
        "fvd_clip_builder": fvd_builder if "fvd" in metrics else None,
        "lpips_input_range": lpips_range if "lpips" in metrics else None,
        "metrics": headline, "definitions": definitions, "variants": variants, "per_video": per_video,
        "weights": _weights_used(options, metrics, device), "device": str(device), **options.extra,
    }
    if options.random_networks:
        results["WARNING"] = RANDOM_WARNING
    return results


def _headline(protocol: str, metrics: List[str], variants: dict, fvd_builder: str) -> tuple[dict, dict]:
    """The protocol's value of each metric, and its definition."""
    headline, definitions = {}, {}
    table = dict(_HEADLINE[protocol])
    table["fvd"] = (f"fvd_{fvd_builder}", "FVD, I3D-400 logits, clips = " + feats.CLIP_BUILDERS[fvd_builder])
    for metric in metrics:
        key, text = table.get(metric) or _COMMON[metric]
        headline[metric] = variants[key]
        definitions[metric] = text
    if "mae_foreground" in variants:
        headline["l1_foreground"] = variants["mae_foreground"]
        definitions["l1_foreground"] = "mean abs(gen - gt) on 0..255 inside the ground-truth foreground mask"
    return headline, definitions


def _json_safe(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def write_results(results: dict, path) -> Path:
    """Write ``results`` as JSON (NaN/inf -> null) atomically: no half-written file on failure."""
    from magicanimate.utils.files import atomic_path

    path = Path(path)
    text = json.dumps(_json_safe(results), indent=2, allow_nan=False)
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n")
    return path


def _format(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if value != 0 and (abs(value) < 1e-2 or abs(value) >= 1e5):
        return f"{value:.4e}"
    return f"{value:.4f}"


def markdown_table(results: dict) -> str:
    """The headline numbers as a markdown table, with the run's protocol and sizes above it.

    Under the ``disco`` protocol every metric whose DisCo arithmetic differs from the correct definition also
    shows the correct (``standard``) value beside it, labelled: a wrap-around "PSNR" must not be read as
    quality (pure noise scores close to a real result there)."""
    lines = []
    if results.get("random_networks"):
        lines += [f"**!!! {RANDOM_WARNING} !!!**", ""]
    res = ", ".join("x".join(str(v) for v in s) for s in results["resolution"])
    lines += [
        f"protocol: **{results['protocol']}** | resolution (HxW): {res} | videos: {results['videos']} | "
        f"frames: {results['frames']} | clips: {results['clips']}"
        + (f" ({results['fvd_clip_builder']})" if results.get("fvd_clip_builder") else ""),
        "",
    ]
    standard = _standard_values(results) if results["protocol"] == "disco" else {}
    if standard:
        lines += ["| metric | value (disco: as the tables computed it) | standard (correct definition) | definition |",
                  "|---|---|---|---|"]
    else:
        lines += ["| metric | value | definition |", "|---|---|---|"]
    for metric, value in results["metrics"].items():
        definition = results["definitions"][metric]
        if standard:
            other = standard.get(metric, "same")
            shown = other if isinstance(other, str) else _format(other)
            lines.append(f"| {metric} | {_format(value)} | {shown} | {definition} |")
        else:
            lines.append(f"| {metric} | {_format(value)} | {definition} |")
    return "\n".join(lines)


def _standard_values(results: dict) -> dict:
    """The ``standard`` protocol's value of each headline metric whose DisCo variant differs (a note where this
    run did not compute it)."""
    out = {}
    for metric in results["metrics"]:
        disco, standard = _HEADLINE["disco"].get(metric), _HEADLINE["standard"].get(metric)
        if disco and standard and disco[0] != standard[0]:
            out[metric] = results["variants"].get(standard[0], "not computed (rerun with --protocol standard)")
    return out
