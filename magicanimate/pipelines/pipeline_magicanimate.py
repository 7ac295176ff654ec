"""MagicAnimatePipeline: reference image + DensePose video -> animated video, window by window.

One denoising step, for a video of N frames split into windows (see :mod:`.windows`):

1. the appearance encoder runs once on the clean reference latent at t (batch 1: only the conditional
   guidance half reads its banks);
2. for each window (:meth:`MagicAnimatePipeline.predict_window`): the ControlNet runs on that window's
   control frames (its residuals are never kept for the whole video), then the 3D UNet on
   ``[uncond; cond]`` copies of the window's latents, both halves getting the residuals and only the
   conditional half the reference banks;
3. the window predictions are fused per frame with the schedule's weights (accumulated in window order),
   classifier-free guidance is applied (:meth:`MagicAnimatePipeline.guide`), and the scheduler takes one
   step over all frames.

After the last step the latents are decoded a few frames at a time; with ``frame_callback`` each chunk goes
straight to e.g. a video writer, so memory stays flat in the video's length. The call is laid out as
diffusers pipelines are (``check_inputs``, ``prepare_latents``, ..., ``callback_on_step_end``); the
multi-process sharing of windows is :mod:`.distributed`.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
from diffusers import AutoencoderKL, DiffusionPipeline
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput

from magicanimate.errors import ConfigError, InputError, NonFiniteError, WeightsError
from magicanimate.pipelines.config import SamplingConfig, check_sampling_values, check_windows
from magicanimate.pipelines.distributed import dist_info, gather_predictions
from magicanimate.pipelines.windows import WindowSchedule, make_schedule, padded_length, shard

logger = logging.getLogger(__name__)

PROMPT_EMBEDS_FILE = "prompt_embeds.safetensors"
_DEFAULTS = SamplingConfig


@dataclass
class MagicAnimatePipelineOutput(BaseOutput):
    """``videos``: (1, 3, N, H, W) float in [0, 1] (None when frames went to ``frame_callback`` or
    ``output_type="latent"``); ``latents``: final latents of all (padded) frames, (1, 4, N', h, w)."""

    videos: Optional[torch.Tensor]
    latents: torch.Tensor


class PaddedFrames:
    """Frames of ``source`` indexed past its end repeat the last frame (the original's edge padding)."""

    def __init__(self, source, length: int):
        self.source = source
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index):
        last = len(self.source) - 1
        if isinstance(index, (int, np.integer)):
            return self.source[min(int(index), last)]
        return self.source[[min(int(i), last) for i in index]]


@dataclass
class WindowPlan:
    """The frames a call denoises: ``total`` (padded in parity mode), their source, and the windows."""

    num_frames: int
    total: int
    frames: object  # len() and [list of indices] -> (n, H, W, 3) uint8
    schedule: WindowSchedule


@dataclass
class SpeedOptions:
    """Exact savings, on by default; switches exist so that benchmarks can report each one's gain.

    controlnet_overlap: the ControlNet residuals of frames the previous window already computed in this step
        are reused (a frame's residuals depend only on its own latent, control frame, t and the text).
    shared_trunk: the two guidance halves share the UNet's input convolution and down blocks, which see the
        same inputs in both halves (only the mid and up blocks read the reference); used when both halves have
        the same text (the empty prompt).
    """

    controlnet_overlap: bool = True
    shared_trunk: bool = True


@dataclass
class StepInputs:
    """What every window of one denoising step reads."""

    t: torch.Tensor
    model_in: torch.Tensor
    text_c: torch.Tensor
    text_u: torch.Tensor
    banks: List[torch.Tensor]
    conditioning_scale: float
    sequential_guidance: bool


class MagicAnimatePipeline(DiffusionPipeline):
    """Components: ``vae``, ``unet`` (3D, with motion modules), ``appearance_encoder``, ``controlnet``,
    ``scheduler``; ``text_encoder`` and ``tokenizer`` are optional once the empty-prompt embedding is known
    (passed as ``prompt_embeds`` or saved with the pipeline)."""

    _optional_components = ["text_encoder", "tokenizer"]
    model_cpu_offload_seq = "text_encoder->appearance_encoder->controlnet->unet->vae"
    # what callback_on_step_end may ask for: the latents after the step (replaceable, as in diffusers), the
    # latents the step started from and the guided noise prediction (read-only observations)
    _callback_tensor_inputs = ["latents", "latents_in", "noise_pred"]

    def __init__(self, vae: AutoencoderKL, unet, appearance_encoder, controlnet, scheduler: SchedulerMixin,
                 text_encoder=None, tokenizer=None, prompt_embeds: Optional[torch.Tensor] = None):
        super().__init__()
        self.register_modules(vae=vae, unet=unet, appearance_encoder=appearance_encoder, controlnet=controlnet,
                              scheduler=scheduler, text_encoder=text_encoder, tokenizer=tokenizer)
        self._prompt_embeds = None if prompt_embeds is None else prompt_embeds.detach().cpu()
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self._num_timesteps = 0
        self._num_windows = 0
        self._guidance_scale = _DEFAULTS.guidance_scale
        self.speed = SpeedOptions()

    def compile_models(self, **compile_kwargs) -> None:
        """``torch.compile`` the repeated blocks of the UNet, appearance encoder and ControlNet (opt-in).

        Blocks rather than whole networks, so the pipeline's own calls (the shared trunk of the guidance
        halves, reference reads, windows) stay eager and every window size reuses the same compiled blocks;
        the first call pays the compilation. Outputs differ from eager by float reassociation only."""
        if getattr(self, "_compiled", False):
            return
        for net in (self.unet, self.appearance_encoder, self.controlnet):
            blocks = [*net.down_blocks, getattr(net, "mid_block", None), *getattr(net, "up_blocks", [])]
            for block in blocks:
                if block is not None:
                    block.compile(**compile_kwargs)
        self._compiled = True

    # ------------------------------------------------------------------------------------------ state
    @property
    def num_timesteps(self) -> int:
        """Denoising steps of the current (or last) call."""
        return self._num_timesteps

    @property
    def num_windows(self) -> int:
        """Windows per denoising step of the current (or last) call."""
        return self._num_windows

    @property
    def guidance_scale(self) -> float:
        return self._guidance_scale

    @property
    def max_context_frames(self) -> Optional[int]:
        """The most frames per window: the motion modules' position-encoding length (None without them)."""
        cfg = self.unet.config
        return cfg.get("motion_max_seq_length") if cfg.get("use_motion_module") else None

    # ------------------------------------------------------------------------------------------ prompt
    @torch.no_grad()
    def empty_prompt_embeds(self) -> torch.Tensor:
        """CLIP("") as (1, L, D), computed once and cached (saved by :meth:`save_pretrained`)."""
        if self._prompt_embeds is None:
            if self.text_encoder is None or self.tokenizer is None:
                raise InputError("no empty-prompt embedding: pass prompt_embeds, load a pipeline saved with one, "
                                 "or provide the SD1.5 text_encoder and tokenizer")
            ids = self.tokenizer([""], padding="max_length", max_length=self.tokenizer.model_max_length,
                                 truncation=True, return_tensors="pt").input_ids
            device = next(self.text_encoder.parameters()).device
            self._prompt_embeds = self.text_encoder(ids.to(device))[0].detach().float().cpu()
        return self._prompt_embeds

    def encode_prompt(self, prompt_embeds, negative_prompt_embeds, device, dtype):
        """(conditional, unconditional) text embeddings, (1, L, D) each; both the empty prompt by default."""
        text_c = (self.empty_prompt_embeds() if prompt_embeds is None else prompt_embeds).to(device, dtype)
        text_u = text_c if negative_prompt_embeds is None else negative_prompt_embeds.to(device, dtype)
        if text_c.ndim != 3 or text_c.shape[0] != 1:
            raise InputError(f"prompt_embeds must be (1, L, D), got {tuple(text_c.shape)}")
        return text_c, text_u

    # ------------------------------------------------------------------------------------------ save/load
    def save_pretrained(self, save_directory, safe_serialization: bool = True, **kwargs):
        from safetensors.torch import save_file

        super().save_pretrained(save_directory, safe_serialization=safe_serialization, **kwargs)
        embeds = self._prompt_embeds
        if embeds is None and self.text_encoder is not None and self.tokenizer is not None:
            embeds = self.empty_prompt_embeds()
        if embeds is not None:
            save_file({"prompt_embeds": embeds.contiguous()}, str(Path(save_directory) / PROMPT_EMBEDS_FILE))

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *, torch_dtype: Optional[torch.dtype] = None,
                        load_text_encoder: Optional[bool] = None, **kwargs) -> "MagicAnimatePipeline":
        """Strict loading of a folder written by :meth:`save_pretrained` (see :mod:`.loading`)."""
        from magicanimate.pipelines.loading import load_pipeline_folder

        return load_pipeline_folder(cls, pretrained_model_name_or_path, torch_dtype=torch_dtype,
                                    load_text_encoder=load_text_encoder)

    @classmethod
    def from_original(cls, weights, *, torch_dtype: Optional[torch.dtype] = None,
                      load_text_encoder: Optional[bool] = None) -> "MagicAnimatePipeline":
        """Build from the original release's layout (a :class:`~magicanimate.pipelines.weights.WeightsSpec`
        or a WeightsConfig): the networks from :func:`magicanimate.models.checkpoints.assemble_networks`,
        the VAE, and CLIP unless ``prompt_embeds`` is given. Strict throughout."""
        from magicanimate.pipelines.loading import load_original_components

        from magicanimate.models.state_dicts import move_model

        pipe = cls(**load_original_components(weights, load_text_encoder=load_text_encoder, torch_dtype=torch_dtype))
        for model in (pipe.unet, pipe.appearance_encoder, pipe.controlnet, pipe.vae, pipe.text_encoder):
            if model is not None:
                move_model(model.eval(), torch_dtype)
        return pipe

    # ------------------------------------------------------------------------------------------ VAE
    @torch.no_grad()
    def encode_reference(self, image: np.ndarray, device, dtype) -> torch.Tensor:
        """Clean VAE latent of an (H, W, 3) uint8 image: latent_dist.mean * scaling_factor, (1, 4, h, w)."""
        x = torch.from_numpy(np.array(image, dtype=np.uint8, copy=True)).to(device=device, dtype=torch.float32)
        x = (x / 127.5 - 1.0).permute(2, 0, 1)[None].to(self.vae.dtype)
        latent = self.vae.encode(x).latent_dist.mean
        return (latent * self.vae.config.scaling_factor).to(dtype)

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor, *, chunk: int = 8,
                       frame_callback: Optional[Callable[[np.ndarray], None]] = None,
                       num_frames: Optional[int] = None, device=None) -> Optional[torch.Tensor]:
        """Decode (1, 4, F, h, w) latents ``chunk`` frames at a time.

        With ``frame_callback``, each chunk is passed on as (n, H, W, 3) uint8 and nothing is kept;
        otherwise the (1, 3, F, H, W) float video in [0, 1] is returned (on the CPU).
        """
        device = self._execution_device if device is None else device
        frames = latents.shape[2] if num_frames is None else num_frames
        video = None
        for start in range(0, frames, chunk):
            z = latents[0, :, start:min(start + chunk, frames)].permute(1, 0, 2, 3)
            z = z.to(device=device, dtype=self.vae.dtype) / self.vae.config.scaling_factor
            x = (self.vae.decode(z).sample.float() / 2 + 0.5).clamp(0, 1)
            if frame_callback is not None:
                frame_callback((x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy())
                continue
            if video is None:
                video = torch.empty((1, 3, frames, *x.shape[-2:]), dtype=torch.float32)
            video[0, :, start:start + x.shape[0]] = x.permute(1, 0, 2, 3).cpu()
        return video

    def decode_chunk_for(self, frame_hw, window_frames: int) -> int:
        """Frames per VAE decode such that decoding does not raise the peak above the denoising loop's.

        The loop's largest activations are the UNet's at full latent resolution: 2 guidance halves x the window's
        frames x its first width x h x w; the decoder's are its first width at full image resolution per frame.
        Both hold several such tensors at once (taken as 8 and 6 here), in their own dtypes. On a CPU this is
        usually 1 frame (decoding frame by frame costs nothing there); on a GPU at low resolution, more."""
        height, width = frame_hw
        h, w = height // self.vae_scale_factor, width // self.vae_scale_factor
        unet_bytes = 2 * window_frames * self.unet.config.block_out_channels[0] * h * w * self.unet.dtype.itemsize * 8
        frame_bytes = self.vae.config.block_out_channels[0] * height * width * self.vae.dtype.itemsize * 6
        return int(max(1, min(16, unet_bytes // max(1, frame_bytes))))

    # ------------------------------------------------------------------------------------------ inputs
    def check_inputs(self, reference_image, control, *, output_type: str, callback_on_step_end_tensor_inputs,
                     **sampling) -> np.ndarray:
        """Every call argument checked once, here (sampling values by the same rules as a config file);
        returns the reference image as an array."""
        check_sampling_values(**sampling)
        check_windows(sampling["context_frames"], sampling["context_overlap"], self.max_context_frames)
        if output_type not in ("pt", "latent"):
            raise InputError(f"output_type must be 'pt' or 'latent', got {output_type!r}")
        unknown = set(callback_on_step_end_tensor_inputs or ()) - set(self._callback_tensor_inputs)
        if unknown:
            raise InputError(f"callback_on_step_end_tensor_inputs: {sorted(unknown)} are not among "
                             f"{self._callback_tensor_inputs}")
        reference_image = np.asarray(reference_image)
        if len(control) < 1:
            raise InputError("the control video has no frames")
        first = np.asarray(control[[0]])
        if reference_image.ndim != 3 or reference_image.shape[2] != 3 or reference_image.dtype != np.uint8:
            raise InputError(f"reference image must be (H, W, 3) uint8, got {reference_image.shape} "
                             f"{reference_image.dtype}")
        if first.ndim != 4 or first.shape[3] != 3 or first.dtype != np.uint8:
            raise InputError(f"control frames must be (N, H, W, 3) uint8, got {first.shape} {first.dtype}")
        height, width = first.shape[1:3]
        if reference_image.shape[:2] != (height, width):
            raise InputError(f"reference image is {reference_image.shape[1]}x{reference_image.shape[0]} but the "
                             f"control frames are {width}x{height}; fit them to one size first")
        if height % self.vae_scale_factor or width % self.vae_scale_factor:
            raise InputError(f"frame size {width}x{height} must be a multiple of {self.vae_scale_factor}")
        return reference_image

    def prepare_windows(self, control, fusion: str, context_frames: int, context_overlap: int) -> WindowPlan:
        """Parity edge-pads the control video to a multiple of the window (lazily, by index clamping)."""
        num_frames = len(control)
        total = padded_length(num_frames, context_frames) if fusion == "parity" else num_frames
        frames = PaddedFrames(control, total) if total != num_frames else control
        return WindowPlan(num_frames, total, frames, make_schedule(total, fusion, context_frames, context_overlap))

    def prepare_timesteps(self, num_inference_steps: int, init_strength: float, device) -> torch.Tensor:
        """The schedule's timesteps; with ``init_strength`` < 1 only its last part (image-to-image)."""
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        if init_strength < 1.0:
            start = len(timesteps) - max(1, int(init_strength * len(timesteps)))
            timesteps = timesteps[start:]
            if hasattr(self.scheduler, "set_begin_index"):  # schedulers that count their own steps
                self.scheduler.set_begin_index(start)
        return timesteps

    def prepare_latents(self, latents, generator, plan: WindowPlan, fusion: str, context_frames: int,
                        height: int, width: int) -> torch.Tensor:
        """Initial noise (1, C, total, h, w) float32 on the CPU: drawn (parity: one ``context_frames`` block,
        tiled along time, as the original) or given, then tiled when it has fewer frames."""
        h, w = height // self.vae_scale_factor, width // self.vae_scale_factor
        channels, total = self.unet.config.in_channels, plan.total
        if latents is None:
            block = context_frames if fusion == "parity" else total
            latents = torch.randn((1, channels, min(block, total), h, w), generator=generator,
                                  device=generator.device if generator is not None else "cpu", dtype=torch.float32)
        if latents.shape[2] != total:
            if latents.ndim != 5 or total % latents.shape[2]:
                raise InputError(f"initial latents have {latents.shape[2]} frames, which does not divide the "
                                 f"{total} frames to generate")
            latents = latents.repeat(1, 1, total // latents.shape[2], 1, 1)
        if tuple(latents.shape) != (1, channels, total, h, w):
            raise InputError(f"initial latents must be (1, {channels}, {total}, {h}, {w}), got {tuple(latents.shape)}")
        return latents

    def start_latents(self, noise, ref_latent, timesteps, init_from_reference: bool, device) -> torch.Tensor:
        """Scaled noise, or (``init_from_reference``) the reference latent noised to the first timestep."""
        noise = noise.to(device=device, dtype=torch.float32)
        if not init_from_reference:
            return noise * self.scheduler.init_noise_sigma
        if not hasattr(self.scheduler, "add_noise"):
            raise ConfigError(f"init_from_reference needs a scheduler with add_noise; "
                              f"{type(self.scheduler).__name__} has none")
        clean = ref_latent.to(torch.float32)[:, :, None].expand(-1, -1, noise.shape[2], -1, -1)
        return self.scheduler.add_noise(clean, noise, timesteps[:1])

    def prepare_extra_step_kwargs(self, generator, eta: float) -> dict:
        params = set(inspect.signature(self.scheduler.step).parameters)
        kwargs = {}
        if "eta" in params:
            kwargs["eta"] = eta
        if "generator" in params:
            kwargs["generator"] = generator
        return kwargs

    # ------------------------------------------------------------------------------------------ one step
    def _controlnet_window(self, latents_w, t, text, control_w, scale, device):
        from magicanimate.models import controlnet_residuals

        cond = torch.from_numpy(np.ascontiguousarray(control_w)).to(device)
        cond = (cond.to(torch.float32) / 255.0).permute(3, 0, 1, 2)[None].to(self.controlnet.dtype)
        return controlnet_residuals(self.controlnet, latents_w.to(self.controlnet.dtype), t,
                                    text.to(self.controlnet.dtype), cond, conditioning_scale=scale)

    def _unet_window(self, latents_w, t, text_u, text_c, banks, down, mid, sequential: bool) -> torch.Tensor:
        """[uncond; cond] noise prediction for one window, (2, 4, F, h, w)."""
        from magicanimate.models import ReferenceInputs

        if self.speed.shared_trunk and text_u is text_c and hasattr(self.unet, "forward_guided"):
            return self.unet.forward_guided(latents_w, t, text_c, down, mid, banks, sequential=sequential)
        if sequential:
            out_u = self.unet(latents_w, t, encoder_hidden_states=text_u, down_block_additional_residuals=down,
                              mid_block_additional_residual=mid, reference=None).sample
            out_c = self.unet(latents_w, t, encoder_hidden_states=text_c, down_block_additional_residuals=down,
                              mid_block_additional_residual=mid, reference=ReferenceInputs(banks)).sample
            return torch.cat([out_u, out_c])
        read = torch.tensor([False, True], device=latents_w.device)
        return self.unet(torch.cat([latents_w, latents_w]), t, encoder_hidden_states=torch.cat([text_u, text_c]),
                         down_block_additional_residuals=[torch.cat([r, r]) for r in down],
                         mid_block_additional_residual=torch.cat([mid, mid]),
                         reference=ReferenceInputs(banks, read_mask=read)).sample

    def predict_window(self, step: StepInputs, plan: WindowPlan, k: int, device, cache: Optional[dict] = None):
        """[uncond; cond] prediction (2, C, F, h, w) float32 for window ``k``: ControlNet, then the UNet.
        ``cache`` carries the ControlNet residuals the next window shares (see :class:`SpeedOptions`)."""
        frames = list(plan.schedule.windows[k])
        x_w = step.model_in[:, :, frames]
        down, mid = self._window_residuals(step, plan, k, x_w, device, cache)
        dtype = self.unet.dtype
        return self._unet_window(x_w, step.t, step.text_u, step.text_c, step.banks, [d.to(dtype) for d in down],
                                 mid.to(dtype), step.sequential_guidance).float()

    def _window_residuals(self, step: StepInputs, plan: WindowPlan, k: int, x_w, device, cache: Optional[dict]):
        """The window's ControlNet residuals: frames the previous window of this step computed are taken from
        ``cache``, the others computed; afterwards ``cache`` keeps only what window ``k + 1`` shares."""
        frames = list(plan.schedule.windows[k])
        known = {} if cache is None else cache.get("frames", {})
        fresh = [i for i, f in enumerate(frames) if f not in known]
        residuals = None
        if fresh:
            residuals = self._controlnet_window(x_w[:, :, fresh], step.t, step.text_c, plan.frames[[frames[i] for i in fresh]],
                                                step.conditioning_scale, device)
        if len(fresh) < len(frames):
            residuals = _gather_frames(frames, fresh, residuals, known, cache["residuals"])
        if cache is not None:
            following = set(plan.schedule.windows[k + 1]) if k + 1 < len(plan.schedule) else set()
            keep = [i for i, f in enumerate(frames) if f in following]
            cache["frames"] = {frames[i]: j for j, i in enumerate(keep)}
            cache["residuals"] = ([d[:, :, keep] for d in residuals[0]], residuals[1][:, :, keep])
        return residuals

    def predict_noise(self, step: StepInputs, plan: WindowPlan, device, step_index: int,
                      window_callback=None) -> torch.Tensor:
        """Every window's prediction, fused per frame with the schedule's weights (in window order):
        (2, C, total, h, w) float32, ``[uncond; cond]``."""
        schedule = plan.schedule
        _, world = dist_info()
        shape = step.model_in.shape
        fused = torch.zeros((2, shape[1], plan.total, shape[3], shape[4]), device=device, dtype=torch.float32)
        weight_sum = torch.zeros((1, 1, plan.total, 1, 1), device=device, dtype=torch.float32)
        weights = [schedule.weight_tensor(k, device=device).view(1, 1, -1, 1, 1) for k in range(len(schedule))]

        def accumulate(k, pred):
            frames = list(schedule.windows[k])
            fused[:, :, frames] = fused[:, :, frames] + pred * weights[k]
            weight_sum[:, :, frames] = weight_sum[:, :, frames] + weights[k]

        local: Dict[int, torch.Tensor] = {}
        mine = shard(len(schedule), *dist_info())
        cache = self._primed_cache(step, plan, mine[0], device) if self.speed.controlnet_overlap and mine else None
        for k in mine:
            pred = self.predict_window(step, plan, k, device, cache)
            if window_callback is not None:
                window_callback(step_index, k, list(schedule.windows[k]), pred)
            if world == 1:
                accumulate(k, pred)  # windows run in order: sum as we go, keep nothing
            else:
                local[k] = pred
        if world > 1:
            window_shape = (2, shape[1], len(schedule.windows[0]), shape[3], shape[4])
            gathered = gather_predictions(local, schedule, window_shape, device)
            for k in range(len(schedule)):
                accumulate(k, gathered[k])
        return fused.div_(weight_sum)

    def _primed_cache(self, step: StepInputs, plan: WindowPlan, first: int, device) -> dict:
        """The residual cache as a one-process run holds it on reaching window ``first``: a process whose share
        of the windows starts later computes the frames it shares with the window before, in the very
        ControlNet batches a single process computed them in (the earlier windows' new frames), so results do
        not depend on the number of processes."""
        windows = plan.schedule.windows
        needed = [f for f in windows[first] if first > 0 and f in set(windows[first - 1])]
        found: Dict[int, tuple] = {}
        j = first - 1
        while j >= 0 and any(f not in found for f in needed):
            before = set(windows[j - 1]) if j > 0 else set()
            new = [f for f in windows[j] if f not in before]
            down, mid = self._controlnet_window(step.model_in[:, :, new], step.t, step.text_c, plan.frames[new],
                                                step.conditioning_scale, device)
            for i, f in enumerate(new):
                if f in needed and f not in found:
                    found[f] = ([d[:, :, i:i + 1] for d in down], mid[:, :, i:i + 1])
            j -= 1
        if not needed:
            return {}
        kept_down = [torch.cat([found[f][0][level] for f in needed], dim=2) for level in range(len(found[needed[0]][0]))]
        return {"frames": {f: i for i, f in enumerate(needed)},
                "residuals": (kept_down, torch.cat([found[f][1] for f in needed], dim=2))}

    @staticmethod
    def guide(fused: torch.Tensor, guidance_scale: float) -> torch.Tensor:
        """eps = u + g * (c - u), computed in place on the fused ``[uncond; cond]`` (no per-frame copies)."""
        eps_u, eps_c = fused.chunk(2)
        return eps_u.add_(eps_c.sub_(eps_u).mul_(guidance_scale))

    # ------------------------------------------------------------------------------------------ call
    @torch.no_grad()
    def __call__(
        self,
        reference_image: np.ndarray,
        control,
        *,
        num_inference_steps: int = _DEFAULTS.steps,
        guidance_scale: float = _DEFAULTS.guidance_scale,
        generator: Optional[torch.Generator] = None,
        latents: Optional[torch.Tensor] = None,
        fusion: str = _DEFAULTS.fusion.value,
        context_frames: int = _DEFAULTS.context_frames,
        context_overlap: int = _DEFAULTS.context_overlap,
        controlnet_conditioning_scale: float = _DEFAULTS.controlnet_conditioning_scale,
        prompt_embeds: Optional[torch.Tensor] = None,
        negative_prompt_embeds: Optional[torch.Tensor] = None,
        eta: float = 0.0,
        output_type: str = "pt",
        frame_callback: Optional[Callable[[np.ndarray], None]] = None,
        decode_chunk: Optional[int] = None,
        sequential_guidance: bool = False,
        callback_on_step_end: Optional[Callable[["MagicAnimatePipeline", int, torch.Tensor, dict], dict]] = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
        window_callback: Optional[Callable[[int, int, Sequence[int], torch.Tensor], None]] = None,
        init_from_reference: bool = _DEFAULTS.init_from_reference,
        init_strength: float = _DEFAULTS.init_strength,
    ) -> MagicAnimatePipelineOutput:
        """Animate ``reference_image`` (H, W, 3) uint8 with ``control`` (N, H, W, 3) uint8 DensePose frames.

        ``control`` may be any object with ``len()`` and ``control[list_of_indices] -> (n, H, W, 3)``, so a
        long video need not be in memory. ``fusion="parity"`` reproduces the original exactly: the control
        video is edge-padded to a multiple of ``context_frames`` (the output trimmed back), the initial noise
        is one ``context_frames`` block tiled along time, windows wrap around and are averaged uniformly.
        ``latents``: initial noise, (1, 4, F0, h, w) with F0 dividing the (padded) length (tiled).

        ``callback_on_step_end(pipe, i, t, callback_kwargs)`` (diffusers' convention) runs after each step
        with the tensors named in ``callback_on_step_end_tensor_inputs`` (see ``_callback_tensor_inputs``);
        a returned ``"latents"`` replaces the latents. ``window_callback(i, k, frames, prediction)`` observes
        every window's ``[uncond; cond]`` prediction; an exception raised by a callback stops the call.

        ``init_from_reference``: start every frame from the reference latent noised to the first timestep
        (``scheduler.add_noise(z_ref, noise, t_0)``, as image-to-image at strength 1) instead of from pure
        noise. SD-style schedules keep some signal at the first timestep (8% of it at t=876 for 8 DDIM steps
        of the linear schedule), and a model learns to read the frame's overall colours from that residue
        (Lin et al., "Common Diffusion Noise Schedules and Sample Steps are Flawed"); from pure noise it then
        drifts to greyish colours. Off by default (the original starts from noise).
        ``init_strength`` (with ``init_from_reference``): image-to-image strength, as in diffusers' img2img
        pipelines: only the last ``int(init_strength * num_inference_steps)`` steps of the schedule are run
        (at least one), starting from the reference latent noised to the first of them.
        """
        reference_image = self.check_inputs(
            reference_image, control, output_type=output_type,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs, steps=num_inference_steps,
            guidance_scale=guidance_scale, fusion=str(getattr(fusion, "value", fusion)),
            context_frames=context_frames, context_overlap=context_overlap,
            controlnet_conditioning_scale=controlnet_conditioning_scale, init_from_reference=init_from_reference,
            init_strength=init_strength)
        fusion = str(getattr(fusion, "value", fusion))
        device = self._execution_device  # looked up once: it walks every module
        self._guidance_scale = guidance_scale
        if self.vae.dtype == torch.float16 and getattr(self.vae.config, "force_upcast", False):
            self.vae.to(torch.float32)  # SD's VAE overflows in fp16 (its config asks for fp32)
        plan = self.prepare_windows(control, fusion, context_frames, context_overlap)
        self._num_windows = len(plan.schedule)
        text_c, text_u = self.encode_prompt(prompt_embeds, negative_prompt_embeds, device, self.unet.dtype)
        ref_latent = self.encode_reference(reference_image, device, self.appearance_encoder.dtype)
        noise = self.prepare_latents(latents, generator, plan, fusion, context_frames, *reference_image.shape[:2])
        timesteps = self.prepare_timesteps(num_inference_steps, init_strength, device)
        self._num_timesteps = len(timesteps)
        latents = self.start_latents(noise, ref_latent, timesteps, init_from_reference, device)
        latents = self._denoise(latents, timesteps, plan, ref_latent, text_c, text_u, device,
                                self.prepare_extra_step_kwargs(generator, eta), controlnet_conditioning_scale,
                                sequential_guidance, callback_on_step_end, callback_on_step_end_tensor_inputs,
                                window_callback)
        videos = None
        if output_type != "latent" and dist_info()[0] == 0:
            chunk = decode_chunk or self.decode_chunk_for(reference_image.shape[:2], len(plan.schedule.windows[0]))
            videos = self.decode_latents(latents, chunk=chunk, frame_callback=frame_callback,
                                         num_frames=plan.num_frames, device=device)
        self.maybe_free_model_hooks()
        return MagicAnimatePipelineOutput(videos=videos, latents=latents)

    def _denoise(self, latents, timesteps, plan, ref_latent, text_c, text_u, device, step_kwargs, scale,
                 sequential, callback_on_step_end, tensor_inputs, window_callback) -> torch.Tensor:
        """The denoising loop; stops with NonFiniteError the first time the latents stop being finite."""
        for i, t in enumerate(self.progress_bar(timesteps)):
            banks = self.appearance_encoder(ref_latent, t, encoder_hidden_states=text_c.to(
                self.appearance_encoder.dtype))
            step = StepInputs(t, self.scheduler.scale_model_input(latents, t).to(self.unet.dtype), text_c, text_u,
                              banks, scale, sequential)
            noise_pred = self.guide(self.predict_noise(step, plan, device, i, window_callback), self.guidance_scale)
            latents_in = latents
            latents = self.scheduler.step(noise_pred, t, latents, **step_kwargs).prev_sample
            if not torch.isfinite(latents).all():
                raise NonFiniteError(f"the latents became NaN or infinite at step {i + 1} of {len(timesteps)} "
                                     f"(timestep {int(t)}); lower the guidance scale or use fp32 (--dtype fp32)")
            if callback_on_step_end is not None:
                local = {"latents": latents, "latents_in": latents_in, "noise_pred": noise_pred}
                out = callback_on_step_end(self, i, t, {k: local[k] for k in tensor_inputs}) or {}
                latents = out.get("latents", latents)
        return latents


def _gather_frames(frames, fresh, computed, known: dict, kept):
    """Window residuals in window order from the newly computed frames (at positions ``fresh``) and the kept
    ones (``known``: frame -> its position in ``kept``); consecutive frames from one source are one slice."""
    position = {i: j for j, i in enumerate(fresh)}
    runs = []  # (source, start, stop): source 0 = kept, 1 = computed
    for i, f in enumerate(frames):
        src, at = (1, position[i]) if i in position else (0, known[f])
        if runs and runs[-1][0] == src and runs[-1][2] == at:
            runs[-1] = (src, runs[-1][1], at + 1)
        else:
            runs.append((src, at, at + 1))

    def assemble(new, old):
        parts = [(new if src else old)[:, :, a:b] for src, a, b in runs]
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=2)

    new_down, new_mid = computed if computed is not None else ([None] * len(kept[0]), None)
    return [assemble(n, o) for n, o in zip(new_down, kept[0])], assemble(new_mid, kept[1])


__all__ = ["MagicAnimatePipeline", "MagicAnimatePipelineOutput", "PaddedFrames", "WeightsError"]
