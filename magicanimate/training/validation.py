"""Validation during training: a short clip generated with the inference pipeline, saved as mp4 and logged.

Every rank calls :func:`run_validation` (the pipeline shares its windows between processes when
torch.distributed is initialised); the main process writes the video. Global RNG is untouched, so
validation does not change the training run (exact resume still holds).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from magicanimate.errors import ConfigError

logger = logging.getLogger(__name__)


def check_validation_inputs(cfg) -> None:
    v = cfg.validation
    if not v.every_n_steps:
        return
    if not v.reference_image or not v.densepose_video:
        raise ConfigError("validation.every_n_steps is set: give validation.reference_image and "
                          "validation.densepose_video (or set validation.every_n_steps=0)")
    for key in ("reference_image", "densepose_video"):
        if not Path(getattr(v, key)).exists():
            raise ConfigError(f"validation.{key}={getattr(v, key)}: file not found")


def load_validation_inputs(cfg):
    from magicanimate.media import VideoReader, read_image
    from magicanimate.pipelines.inputs import fit_frame, fit_frames

    v = cfg.validation
    hw = (cfg.data.height, cfg.data.width)
    reference = np.array(fit_frame(read_image(v.reference_image), hw, "crop", densepose=False))
    with VideoReader(v.densepose_video) as reader:
        control = reader[: min(len(reader), v.num_frames)]
    control = np.array(fit_frames(control, hw, "crop", densepose=True))
    return reference, control


def validation_window(cfg, num_frames: int) -> int:
    """Frames per window: the clips stage 2 trains on, or the whole clip for a model without motion modules."""
    return min(num_frames, cfg.data.num_frames if cfg.data.sample == "video" else num_frames)


def run_validation(accelerator, module, cfg, step: int) -> Path | None:
    """Generate the validation clip with the current weights; return its path on the main process."""
    from magicanimate.media import write_video
    from magicanimate.pipelines.pipeline_magicanimate import MagicAnimatePipeline
    from magicanimate.training.builder import make_noise_scheduler

    reference, control = load_validation_inputs(cfg)
    pipe = MagicAnimatePipeline(vae=module.vae, unet=module.unet, appearance_encoder=module.appearance_encoder,
                                controlnet=module.controlnet, scheduler=make_noise_scheduler(cfg, cfg.validation.scheduler),
                                prompt_embeds=module.text_embedding.detach().float().cpu())
    pipe.set_progress_bar_config(disable=True)
    v = cfg.validation
    window = validation_window(cfg, len(control))
    was_training = module.training
    module.eval()
    devices = [accelerator.device] if accelerator.device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices), accelerator.autocast():
            generator = torch.Generator("cpu").manual_seed(v.seed)
            out = pipe(reference, control, num_inference_steps=v.steps, guidance_scale=v.guidance_scale,
                       generator=generator, context_frames=window, context_overlap=min(v.context_overlap, window - 1),
                       fusion=v.fusion.value, controlnet_conditioning_scale=v.controlnet_conditioning_scale,
                       init_from_reference=v.init_from_reference, init_strength=v.init_strength)
    finally:
        module.train(was_training)
    if not accelerator.is_main_process or out.videos is None:
        return None
    frames = (out.videos[0].permute(1, 2, 3, 0).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    grid = np.concatenate([np.broadcast_to(reference, frames.shape), control, frames], axis=2)
    path = Path(cfg.output_dir) / "validation" / f"step-{step:07d}.mp4"
    write_video(path, grid, fps=8)
    _log_video(accelerator, path, grid, step)
    logger.info("validation clip: %s", path)
    return path


def _log_video(accelerator, path: Path, frames: np.ndarray, step: int) -> None:
    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            # add_video needs moviepy; a strip of up to 8 frames (reference | DensePose | result rows) does not.
            pick = np.linspace(0, len(frames) - 1, min(8, len(frames))).round().astype(int)
            strip = np.concatenate(list(frames[pick]), axis=0)
            tracker.writer.add_image("validation", strip, global_step=step, dataformats="HWC")
        elif tracker.name == "wandb":
            import wandb

            tracker.log({"validation": wandb.Video(str(path), format="mp4")}, step=step)
