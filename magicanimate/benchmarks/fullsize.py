"""The full-size benchmark: SD1.5-shaped random networks in the released layout, loaded and run as users do.

:func:`build_weights` writes, once, seeded random networks of Stable Diffusion 1.5's shapes into a folder in
the original release's layout (our own ``export_official`` writes ``MagicAnimate/``). :func:`measure` runs in
a fresh process per configuration (so peaks do not carry over): it loads through the public loading path (the
one ``scripts/animate.py`` uses), records the load time and its peak memory, then animates a synthetic DensePose
clip and times each component (appearance encoder, ControlNet, UNet per window, VAE decode) and each step, and the
peak memory of the whole run. With ``savings``, the same loaded pipeline runs once more with each exact saving
switched off, so each one's gain is reported apart.

Only the pipeline's public interface is used, so the same measurement runs against an older checkout (``before``
numbers) when that checkout is first on ``PYTHONPATH``.
"""

from __future__ import annotations

import inspect
import json
import platform
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch

# Stable Diffusion 1.5's published shapes (its unet/ and vae/ config.json).
SD15_UNET = dict(sample_size=64, in_channels=4, out_channels=4, block_out_channels=(320, 640, 1280, 1280),
                 layers_per_block=2, cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32,
                 down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                 up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3)
SD15_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512),
                layers_per_block=2, norm_num_groups=32, sample_size=512,
                down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


# ------------------------------------------------------------------------------------------------ building
def build_weights(folder: Path, seed: int = 0, unet_config: Optional[dict] = None,
                  vae_config: Optional[dict] = None) -> Path:
    """``folder/{stable-diffusion-v1-5/{unet,vae}, MagicAnimate/..., prompt_embeds.safetensors}`` (seeded); the
    shapes are SD1.5's unless other configs are given (tests build a tiny one)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors.torch import save_file

    from magicanimate.models import AppearanceEncoderModel, UNet3DMotionModel, build_densepose_controlnet
    from magicanimate.training.export import export_official

    folder = Path(folder)
    torch.manual_seed(seed)
    unet2d = UNet2DConditionModel(**(unet_config or SD15_UNET))
    unet2d.save_pretrained(folder / "stable-diffusion-v1-5" / "unet")
    AutoencoderKL(**(vae_config or SD15_VAE)).save_pretrained(folder / "stable-diffusion-v1-5" / "vae")
    unet = UNet3DMotionModel.from_unet2d(unet2d)
    with torch.no_grad():  # a released model's motion modules are trained, not the identity
        for name, p in unet.named_parameters():
            if "motion_modules" in name and "proj_out" in name:
                p.normal_(0, 0.02)
    export_official(unet, AppearanceEncoderModel.from_unet2d(unet2d), build_densepose_controlnet(unet2d),
                    folder / "MagicAnimate")
    width = unet2d.config.cross_attention_dim
    save_file({"prompt_embeds": torch.randn(1, 77, width, generator=torch.Generator().manual_seed(seed))},
              str(folder / "prompt_embeds.safetensors"))
    (folder / "BUILT").write_text(json.dumps({"seed": seed}))
    return folder


# ------------------------------------------------------------------------------------------------ measuring
def _rss() -> tuple[int, int]:
    """(current, peak) resident bytes of this process (Linux /proc; the peak resettable)."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) * 1024
    return fields["VmRSS"], fields["VmHWM"]


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def _load(folder: Path, device: torch.device, dtype: torch.dtype):
    """The public loading path of ``scripts/animate.py`` (a newer and an older checkout)."""
    from magicanimate.pipelines.config import WeightsConfig
    from magicanimate.pipelines.weights import resolve_weights

    try:
        from magicanimate.pipelines.runtime import load_pipeline
    except ImportError:  # an older checkout
        from magicanimate.pipelines.animate import load_pipeline
    cfg = WeightsConfig(root=str(folder), prompt_embeds=str(folder / "prompt_embeds.safetensors"))
    return load_pipeline(resolve_weights(cfg), device, dtype)


class ComponentTimer:
    """Seconds spent in each network, with the device synchronised around every call."""

    def __init__(self, device: torch.device):
        self.device, self.seconds, self.calls = device, {}, {}

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def wrap(self, obj, method: str, name: str) -> None:
        inner = getattr(obj, method)

        def timed(*args, **kwargs):
            self._sync()
            start = time.perf_counter()
            out = inner(*args, **kwargs)
            self._sync()
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
            self.calls[name] = self.calls.get(name, 0) + 1
            return out

        setattr(obj, method, timed)


def _instrument(pipe, device) -> ComponentTimer:
    timer = ComponentTimer(device)
    timer.wrap(pipe.appearance_encoder, "forward", "appearance_encoder")
    timer.wrap(pipe.controlnet, "forward", "controlnet")
    timer.wrap(pipe.unet, "forward", "unet")
    if hasattr(pipe.unet, "forward_guided"):
        timer.wrap(pipe.unet, "forward_guided", "unet")
    timer.wrap(pipe.vae, "decode", "vae_decode")
    return timer


def synthetic_control(frames: int, size: int) -> np.ndarray:
    from magicanimate.data.densepose import render_parts

    out = []
    for i in range(frames):
        parts = np.zeros((size, size), np.int64)
        x = int(size * (0.3 + 0.3 * np.sin(i / 5)))
        parts[size // 4: 3 * size // 4, x: x + size // 4] = 2
        parts[size // 8: size // 4, x + size // 16: x + 3 * size // 16] = 23
        out.append(render_parts(parts))
    return np.stack(out)


def _call(pipe, control, reference, args, timer: ComponentTimer) -> dict:
    steps = []
    params = inspect.signature(pipe.__call__).parameters

    def mark(*_a):
        steps.append(time.perf_counter())
        return {}

    kw = dict(callback_on_step_end=lambda p, i, t, k: mark()) if "callback_on_step_end" in params else \
        dict(step_callback=lambda *a: mark())
    if args.get("decode_chunk"):
        kw["decode_chunk"] = args["decode_chunk"]
    timer.seconds.clear()
    timer.calls.clear()
    start = time.perf_counter()
    out = pipe(reference, control, num_inference_steps=args["steps"], guidance_scale=7.5, fusion=args["fusion"],
               generator=torch.Generator("cpu").manual_seed(0), frame_callback=lambda frames: None,
               sequential_guidance=args.get("sequential_guidance", False), **kw)
    total = time.perf_counter() - start
    per_step = np.diff([start] + steps).tolist()
    return dict(total_s=total, step_s=per_step, components_s=dict(timer.seconds), calls=dict(timer.calls),
                latents=out.latents)


def measure(folder: Path, args: dict) -> dict:
    """One configuration in this (fresh) process; see the module docstring."""
    torch.set_num_threads(args["threads"])
    device = torch.device(args["device"])
    dtype = DTYPES[args["dtype"]]
    _reset_peak()
    base, _ = _rss()
    start = time.perf_counter()
    pipe = _load(Path(folder), device, dtype)
    load_s = time.perf_counter() - start
    _, load_peak = _rss()
    weights = sum(p.numel() * p.element_size() for m in (pipe.unet, pipe.appearance_encoder, pipe.controlnet,
                                                          pipe.vae) for p in m.parameters())
    _place(pipe, device, args)
    result = dict(args, load_s=load_s, weights_gb=weights / 1e9, load_peak_gb=(load_peak - base) / 1e9,
                  load_peak_ratio=(load_peak - base) / weights)
    timer = _instrument(pipe, device)
    control = synthetic_control(args["frames"], args["size"])
    reference = np.full((args["size"], args["size"], 3), 128, np.uint8)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    run = _call(pipe, control, reference, args, timer)
    latents = run.pop("latents")
    result.update(run, run_peak_gb=(_rss()[1] - base) / 1e9)
    if device.type == "cuda":
        result["peak_vram_gb"] = torch.cuda.max_memory_allocated() / 1e9
    if args.get("savings") and hasattr(pipe, "speed"):
        result["savings"] = _savings(pipe, control, reference, args, timer, latents)
    if args.get("compile"):
        result["compiled"] = _compiled(pipe, control, reference, args, timer, latents)
    return result


def _place(pipe, device: torch.device, args: dict) -> None:
    if args.get("cpu_offload") and device.type != "cpu":
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)
    pipe.set_progress_bar_config(disable=True)


def _savings(pipe, control, reference, args, timer, latents) -> Dict[str, dict]:
    """The same call with each exact saving off, then all off: seconds and output difference."""
    import dataclasses

    from magicanimate.pipelines.pipeline_magicanimate import SpeedOptions

    variants = {f"without {f.name}": {f.name: False} for f in dataclasses.fields(SpeedOptions)}
    variants["without any"] = {f.name: False for f in dataclasses.fields(SpeedOptions)}
    out = {}
    for name, off in variants.items():
        pipe.speed = dataclasses.replace(SpeedOptions(), **off)
        run = _call(pipe, control, reference, args, timer)
        out[name] = dict(total_s=run["total_s"], step_s=run["step_s"], components_s=run["components_s"],
                         max_abs_latent_diff=float((run["latents"] - latents).abs().max()))
    pipe.speed = SpeedOptions()
    return out


def _compiled(pipe, control, reference, args, timer, latents) -> dict:
    """After the eager run: the same call with the networks' blocks compiled (``compile_models``), once to
    compile and once more to time, and its output difference from the eager run."""
    pipe.compile_models()
    first = _call(pipe, control, reference, args, timer)
    run = _call(pipe, control, reference, args, timer)
    return dict(first_call_s=first["total_s"], total_s=run["total_s"], step_s=run["step_s"],
                components_s=run["components_s"], max_abs_latent_diff=float((run["latents"] - latents).abs().max()))


@contextmanager
def _quiet():
    import logging

    level = logging.getLogger().level
    logging.getLogger().setLevel(logging.WARNING)
    try:
        yield
    finally:
        logging.getLogger().setLevel(level)


# ------------------------------------------------------------------------------------------------ report
def machine() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU ({platform.machine()})"


def markdown(results: list, title: str) -> str:
    head = ("| code | dtype | size | frames | steps | fusion | load s | load peak / weights | s/step | encoder s | "
            "ControlNet s | UNet s | VAE decode s | run peak GB |")
    lines = [f"### {title}", "", head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        c = r["components_s"]
        step = float(np.mean(r["step_s"])) if r["step_s"] else float("nan")
        lines.append(f"| {r.get('label', 'this')} | {r['dtype']} | {r['size']}² | {r['frames']} | {r['steps']} | "
                     f"{r['fusion']} | {r['load_s']:.0f} | {r['load_peak_ratio']:.2f} | {step:.1f} | "
                     f"{c.get('appearance_encoder', 0):.1f} | {c.get('controlnet', 0):.1f} | {c.get('unet', 0):.1f} | "
                     f"{c.get('vae_decode', 0):.1f} | {r['run_peak_gb']:.1f} |")
    lines += _comparisons(results)
    for r in results:
        if r.get("compiled"):
            c = r["compiled"]
            lines.append(f"- {r.get('label', 'this')} {r['dtype']}: compiled (--compile): {np.mean(c['step_s']):.1f} s/step "
                         f"({np.mean(c['step_s']) / np.mean(r['step_s']):.2f}x of eager) after a first call of "
                         f"{c['first_call_s']:.0f} s, max |latent diff| {c['max_abs_latent_diff']:.2e}")
        for name, s in (r.get("savings") or {}).items():
            gain = float(np.mean(s["step_s"])) / float(np.mean(r["step_s"]))
            lines.append(f"- {r.get('label', 'this')} {r['dtype']}: {name}: {np.mean(s['step_s']):.1f} s/step "
                         f"({gain:.2f}x of with), max |latent diff| {s['max_abs_latent_diff']:.2e}")
    return "\n".join(lines) + "\n"


def _comparisons(results: list) -> list:
    """One line per measured row whose configuration also has a ``before*`` row: the speed and load ratios
    against the mean of those baseline rows (labels starting with "before" are the baselines)."""
    def key(r):
        return tuple(r.get(k) for k in ("dtype", "size", "frames", "steps", "fusion", "cpu_offload",
                                         "sequential_guidance", "decode_chunk"))

    def mean(rows, field):
        return float(np.mean([np.mean(r[field]) if isinstance(r[field], list) else r[field] for r in rows]))

    lines = []
    for r in results:
        base = [b for b in results if str(b.get("label", "")).startswith("before") and key(b) == key(r)]
        if not base or str(r.get("label", "")).startswith("before"):
            continue
        lines.append(f"- {r.get('label')} {r['dtype']} vs before: {mean(base, 'step_s') / np.mean(r['step_s']):.2f}x "
                     f"faster per step, load {mean(base, 'load_s') / r['load_s']:.2f}x faster, load peak "
                     f"{r['load_peak_gb']:.1f} GB vs {mean(base, 'load_peak_gb'):.1f} GB, run peak "
                     f"{r['run_peak_gb']:.1f} GB vs {mean(base, 'run_peak_gb'):.1f} GB")
    return lines
