"""animate(config) -> result files: the core of scripts/animate.py, also used by the web demo and evaluation.

Order of work (so that a bad input never costs a model load and never leaves a partial file):
1. :func:`prepare` reads and checks every input: the reference decodes, the motion video decodes and is a
   DensePose rendering, sizes are valid, the weights folder is complete. It returns the fitted frames.
2. :func:`~magicanimate.pipelines.runtime.load_pipeline` builds the pipeline (strict weight loading).
3. :func:`animate` runs it, streaming decoded frames into the result video and the side-by-side grid
   (reference | DensePose | result), both written atomically, and saves the resolved config beside them.
   Progress is reported per window and cancellation checked between windows (``on_progress``,
   ``cancelled``).
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from omegaconf import OmegaConf

from magicanimate.data.densepose import validate_densepose_video
from magicanimate.errors import InputError
from magicanimate.media import VideoReader, VideoWriter, check_video_output, read_image, write_image, write_video
from magicanimate.media.images import image_warnings
from magicanimate.pipelines.config import InferenceConfig, check_windows, validate_inference_config
from magicanimate.pipelines.distributed import init_distributed
from magicanimate.pipelines.inputs import Box, fit_frame, fit_frames, output_size, pad_into, pad_to_multiple
from magicanimate.pipelines.progress import AnimationProgress, ProgressTracker
from magicanimate.pipelines.runtime import load_pipeline, resolve_dtype
from magicanimate.pipelines.weights import WeightsSpec, resolve_weights
from magicanimate.utils.devices import resolve_device

logger = logging.getLogger(__name__)

# motion videos up to this size (after fitting) are decoded once and kept in memory; longer ones are read
# window by window
IN_MEMORY_BYTES = 1 << 30


@dataclass
class AnimationResult:
    video: Path
    grid: Optional[Path]
    config: Optional[Path]
    seed: int
    num_frames: int
    fps: float
    height: int
    width: int
    seconds: float
    # the pipeline used, so a caller animating several pairs can pass it back in
    pipeline: object = field(default=None, repr=False, compare=False)


@dataclass
class PreparedInputs:
    """Inputs fitted to the processing size (a multiple of the model's stride), ready for the pipeline."""

    reference: np.ndarray  # (PH, PW, 3) uint8
    control: "np.ndarray | FittedMotion"  # (N, PH, PW, 3) uint8
    box: Box  # the output-size region inside the processing size
    fps: float
    weights: WeightsSpec


def grid_path(output: Path) -> Path:
    return output.with_name(f"{output.stem}_grid{output.suffix}")


def config_path(output: Path) -> Path:
    return output.with_name(f"{output.stem}_config.yaml")


def prepare(cfg: InferenceConfig) -> PreparedInputs:
    """Read, check and fit every input; raises InputError/ConfigError/WeightsError before any model loads."""
    from magicanimate.errors import ConfigError

    validate_inference_config(cfg)
    if not cfg.reference:
        raise ConfigError("reference: no reference image given (--reference IMAGE)")
    if not cfg.motion:
        raise ConfigError("motion: no DensePose motion video given (--motion VIDEO)")
    output = check_video_output(cfg.output)
    if cfg.grid:
        check_video_output(grid_path(output))
    reference = read_image(cfg.reference)
    if min(reference.shape[:2]) < 8:
        raise InputError(f"{cfg.reference}: image is {reference.shape[1]}x{reference.shape[0]} pixels; "
                         "at least 8x8 is needed")
    for note in image_warnings(cfg.reference, reference):
        logger.warning(note)
    reader = VideoReader(cfg.motion)
    total = len(reader)
    if total == 0:
        raise InputError(f"{cfg.motion}: the motion video has no frames")
    if cfg.offset >= total:
        raise InputError(f"{cfg.motion}: offset {cfg.offset} is past the end of the video ({total} frames)")
    stop = total if cfg.max_frames is None else min(total, cfg.offset + cfg.max_frames)
    fps = float(cfg.fps or reader.fps or 25.0)
    sample = reader[sorted({int(i) for i in np.linspace(cfg.offset, stop - 1, min(16, stop - cfg.offset))})]
    if min(sample.shape[1:3]) < 8:
        raise InputError(f"{cfg.motion}: frames are {sample.shape[2]}x{sample.shape[1]} pixels; at least 8x8 is "
                         "needed")
    validate_densepose_video(sample, source=str(cfg.motion))
    weights = resolve_weights(cfg.weights)  # checks the folders before anything heavy loads
    check_windows(cfg.context_frames, cfg.context_overlap, weights.max_context_frames)

    out_hw = output_size(sample.shape[1:3], cfg.size, cfg.width, cfg.height)
    padded_hw, box = pad_to_multiple(out_hw, weights.size_multiple)
    reference = pad_into(fit_frame(reference, out_hw, cfg.fit, densepose=False), box, padded_hw, densepose=False)
    control = FittedMotion(reader, cfg.offset, stop, out_hw, cfg.fit, box, padded_hw)
    if len(control) * padded_hw[0] * padded_hw[1] * 3 <= IN_MEMORY_BYTES:
        control = control[0:len(control)]  # small enough: decode once instead of once per step
        reader.close()
    return PreparedInputs(reference=reference, control=control, box=box, fps=fps, weights=weights)


class FittedMotion:
    """Motion frames decoded on demand and fitted/padded to the processing size (long videos stay on disk).

    Supports ``len()`` and indexing by int, slice or list of ints, as the pipeline expects.
    """

    def __init__(self, reader: VideoReader, start: int, stop: int, out_hw, fit: str, box: Box, padded_hw):
        self.reader, self.start, self.stop = reader, start, stop
        self.out_hw, self.fit, self.box, self.padded_hw = out_hw, fit, box, padded_hw

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            return self[[int(index)]][0]
        if isinstance(index, slice):
            index = range(*index.indices(len(self)))
        frames = self.reader[[self.start + int(i) for i in index]]
        fitted = fit_frames(frames, self.out_hw, self.fit, densepose=True)
        return np.ascontiguousarray(pad_into(fitted, self.box, self.padded_hw, densepose=True))


def as_config(config) -> InferenceConfig:
    """An InferenceConfig from a config or a dict of settings (over the model's own defaults, see
    :mod:`magicanimate.pipelines.settings`)."""
    if OmegaConf.is_config(config):
        return config
    if isinstance(config, dict):
        from magicanimate.pipelines.settings import build_inference_config

        return build_inference_config(values=config)
    return OmegaConf.structured(config)


def animate(config, pipeline=None, prepared: Optional[PreparedInputs] = None, *,
            on_progress: Optional[Callable[[AnimationProgress], None]] = None,
            cancelled: Optional[Callable[[], bool]] = None) -> AnimationResult:
    """Animate one (reference, motion) pair as ``config`` (InferenceConfig, its DictConfig, or a dict) says.

    ``pipeline``: an already-loaded MagicAnimatePipeline to reuse (e.g. by the web demo); otherwise it is
    loaded from ``config.weights`` after the inputs were checked. ``prepared``: the result of
    :func:`prepare` when the caller already checked the inputs. ``on_progress`` receives an
    :class:`~magicanimate.pipelines.progress.AnimationProgress` when the model loads and after every window
    and step; ``cancelled()`` is checked between windows (Cancelled is raised, nothing is written).
    """
    cfg = as_config(config)
    start = time.time()
    inputs = prepared if prepared is not None else prepare(cfg)
    tracker_report = on_progress or (lambda p: None)
    rank, _, device = init_distributed(resolve_device(cfg.device))
    dtype = resolve_dtype(cfg.dtype, device)
    seed = int(cfg.seed) if int(cfg.seed) != -1 else secrets.randbelow(2 ** 31)
    if pipeline is None:
        tracker_report(AnimationProgress(stage="loading model"))
        pipeline = load_pipeline(inputs.weights, device, dtype)
    pipe = _place(pipeline, cfg, device, rank)
    tracker = ProgressTracker(pipe, on_progress, cancelled)
    tracker.check()
    call = dict(num_inference_steps=cfg.steps, guidance_scale=cfg.guidance_scale,
                generator=torch.Generator("cpu").manual_seed(seed), fusion=cfg.fusion.value,
                context_frames=cfg.context_frames, context_overlap=cfg.context_overlap,
                controlnet_conditioning_scale=cfg.controlnet_conditioning_scale,
                sequential_guidance=cfg.sequential_guidance, decode_chunk=cfg.decode_chunk,
                init_from_reference=cfg.init_from_reference, init_strength=cfg.init_strength,
                window_callback=tracker.on_window, callback_on_step_end=tracker.on_step_end,
                callback_on_step_end_tensor_inputs=[])
    output = Path(cfg.output)
    if rank != 0:  # this process only denoises its share of the windows; rank 0 decodes and writes
        pipe(inputs.reference, inputs.control, output_type="latent", **call)
    else:
        _write_result(pipe, inputs, cfg, output, call)
    saved = _save_config(cfg, seed, output) if rank == 0 else (config_path(output) if cfg.save_config else None)
    return AnimationResult(output, grid_path(output) if cfg.grid else None, saved, seed, len(inputs.control),
                           inputs.fps, inputs.box.height, inputs.box.width, time.time() - start, pipeline)


def _place(pipe, cfg: InferenceConfig, device: torch.device, rank: int):
    """The pipeline on its device (or offloaded), with this run's scheduler and progress bar."""
    if cfg.cpu_offload and device.type != "cpu":
        pipe.enable_model_cpu_offload(device=device)
    else:
        if cfg.cpu_offload:
            logger.warning("cpu_offload ignored: the pipeline already runs on the CPU")
        pipe.to(device)
    pipe.set_progress_bar_config(disable=not cfg.progress or rank != 0)
    if cfg.compile:
        pipe.compile_models()
    if cfg.scheduler != type(pipe.scheduler).__name__:
        from magicanimate.pipelines.scheduling import make_scheduler

        pipe.scheduler = make_scheduler(cfg.scheduler)
    return pipe


def _write_result(pipe, inputs: PreparedInputs, cfg: InferenceConfig, output: Path, call: dict) -> None:
    """Run the pipeline, streaming frames into the result (and grid) video; both atomic."""
    box, num_frames = inputs.box, len(inputs.control)
    ref_out = box.crop(inputs.reference)
    written = [0]
    with VideoWriter(output, inputs.fps) as video_writer:
        grid_writer = VideoWriter(grid_path(output), inputs.fps).open() if cfg.grid else None
        try:
            def on_frames(frames: np.ndarray) -> None:
                frames = box.crop(frames)
                video_writer.write(frames)
                if grid_writer is not None:
                    control = box.crop(inputs.control[written[0]:written[0] + len(frames)])
                    grid_writer.write(np.concatenate([np.broadcast_to(ref_out, frames.shape), control, frames], 2))
                written[0] += len(frames)

            pipe(inputs.reference, inputs.control, frame_callback=on_frames, **call)
            if written[0] != num_frames:
                raise RuntimeError(f"decoded {written[0]} frames, expected {num_frames}")
        except BaseException as exc:
            if grid_writer is not None:
                grid_writer.abort(type(exc), exc, exc.__traceback__)
            raise
        if grid_writer is not None:
            grid_writer.close()
    if cfg.save_inputs:  # only after the result exists: a failed run leaves nothing
        write_image(output.with_name(f"{output.stem}_reference.png"), ref_out)
        write_video(output.with_name(f"{output.stem}_densepose{output.suffix}"),
                    (box.crop(inputs.control[i]) for i in range(num_frames)), inputs.fps)


def _save_config(cfg: InferenceConfig, seed: int, output: Path) -> Optional[Path]:
    if not cfg.save_config:
        return None
    from magicanimate.config import save_config

    resolved = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    resolved["seed"] = seed
    return save_config(OmegaConf.create(resolved), config_path(output))
