"""MagicAnimatePipeline: reference image + DensePose video -> animated video, window by window.

One denoising step, for a video of N frames split into windows (see :mod:`.windows`):

1. the appearance encoder runs once on the clean reference latent at t (batch 1: only the conditional
   guidance half reads its banks);
2. for each window: the ControlNet runs on that window's control frames (its residuals are never kept for
   the whole video), then the 3D UNet on ``[uncond; cond]`` copies of the window's latents, both halves
   getting the residuals and only the conditional half the reference banks;
3. the window predictions are fused per frame with the schedule's weights (accumulated in window order),
   classifier-free guidance is applied, and the scheduler takes one step over all frames.

After the last step the latents are decoded a few frames at a time; with ``frame_callback`` each chunk goes
straight to e.g. a video writer, so memory stays flat in the video's length.

With ``torch.distributed`` initialised, each process runs a contiguous share of the windows; the
per-window predictions are gathered and summed in the same window order on every process, so the
result equals a one-process run.
"""

from __future__ import annotations

import inspect
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from diffusers import AutoencoderKL, DiffusionPipeline
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput

from magicanimate.errors import ConfigError, InputError, WeightsError
from magicanimate.pipelines.windows import FUSION_MODES, WindowSchedule, make_schedule, padded_length, shard

logger = logging.getLogger(__name__)

PROMPT_EMBEDS_FILE = "prompt_embeds.safetensors"


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


def _dist_info() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class MagicAnimatePipeline(DiffusionPipeline):
    """Components: ``vae``, ``unet`` (3D, with motion modules), ``appearance_encoder``, ``controlnet``,
    ``scheduler``; ``text_encoder`` and ``tokenizer`` are optional once the empty-prompt embedding is known
    (passed as ``prompt_embeds`` or saved with the pipeline)."""

    _optional_components = ["text_encoder", "tokenizer"]
    model_cpu_offload_seq = "text_encoder->appearance_encoder->controlnet->unet->vae"

    def __init__(self, vae: AutoencoderKL, unet, appearance_encoder, controlnet, scheduler: SchedulerMixin,
                 text_encoder=None, tokenizer=None, prompt_embeds: Optional[torch.Tensor] = None):
        super().__init__()
        self.register_modules(vae=vae, unet=unet, appearance_encoder=appearance_encoder, controlnet=controlnet,
                              scheduler=scheduler, text_encoder=text_encoder, tokenizer=tokenizer)
        self._prompt_embeds = None if prompt_embeds is None else prompt_embeds.detach().cpu()
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)

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
        or a WeightsConfig): SD1.5 UNet (or ``unet``) inflated with the motion modules of
        ``motion_module`` (motion-only or the full ``temporal_attention.ckpt``), the appearance encoder, the
        DensePose ControlNet, the VAE, and CLIP unless ``prompt_embeds`` is given. Strict throughout."""
        from safetensors.torch import load_file

        from magicanimate.models.checkpoints import (NetworkSources, assemble_networks, load_vae,
                                                     motion_kwargs_from_original, read_inference_yaml)
        from magicanimate.models.state_dicts import clean_config, read_config
        from magicanimate.pipelines.scheduling import make_scheduler
        from magicanimate.pipelines.weights import WeightsSpec, resolve_weights

        spec = weights if isinstance(weights, WeightsSpec) else resolve_weights(weights)
        unet_kwargs, scheduler_overrides = read_inference_yaml(spec.inference_config)
        base_unet = spec.unet or spec.stable_diffusion / "unet"
        motion_kwargs = motion_kwargs_from_original(clean_config(read_config(base_unet)), unet_kwargs)
        nets = assemble_networks(NetworkSources(base_unet=base_unet, motion_module=spec.motion_module,
                                                motion_kwargs=motion_kwargs,
                                                appearance_encoder=spec.appearance_encoder,
                                                controlnet=spec.controlnet))
        unet = nets.unet
        parts = dict(unet=unet, appearance_encoder=nets.appearance_encoder, controlnet=nets.controlnet,
                     vae=load_vae(spec.vae), scheduler=make_scheduler("DDIMScheduler", scheduler_overrides))
        embeds = None
        if spec.prompt_embeds is not None:
            try:
                embeds = load_file(str(spec.prompt_embeds))["prompt_embeds"]
            except Exception as exc:
                raise WeightsError(f"{spec.prompt_embeds}: expected a safetensors file with a (1, L, D) tensor "
                                   f"'prompt_embeds' ({exc})") from None
        if load_text_encoder or (load_text_encoder is None and embeds is None):
            from transformers import CLIPTextModel, CLIPTokenizer

            parts["text_encoder"] = CLIPTextModel.from_pretrained(str(spec.stable_diffusion / "text_encoder"))
            parts["tokenizer"] = CLIPTokenizer.from_pretrained(str(spec.stable_diffusion / "tokenizer"))
        pipe = cls(**parts, prompt_embeds=embeds)
        for model in (unet, pipe.appearance_encoder, pipe.controlnet, pipe.vae):
            model.eval()
        if torch_dtype is not None and torch_dtype != unet.dtype:
            pipe.to(dtype=torch_dtype)
        return pipe

    # ------------------------------------------------------------------------------------------ helpers
    def _device(self) -> torch.device:
        return self._execution_device

    @torch.no_grad()
    def encode_reference(self, image: np.ndarray, device, dtype) -> torch.Tensor:
        """Clean VAE latent of an (H, W, 3) uint8 image: latent_dist.mean * scaling_factor, (1, 4, h, w)."""
        x = torch.from_numpy(np.ascontiguousarray(image)).to(device=device, dtype=torch.float32)
        x = (x / 127.5 - 1.0).permute(2, 0, 1)[None].to(self.vae.dtype)
        latent = self.vae.encode(x).latent_dist.mean
        return (latent * self.vae.config.scaling_factor).to(dtype)

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor, *, chunk: int = 8,
                       frame_callback: Optional[Callable[[np.ndarray], None]] = None,
                       num_frames: Optional[int] = None) -> Optional[torch.Tensor]:
        """Decode (1, 4, F, h, w) latents ``chunk`` frames at a time.

        With ``frame_callback``, each chunk is passed on as (n, H, W, 3) uint8 and nothing is kept;
        otherwise the (1, 3, F, H, W) float video in [0, 1] is returned (on the CPU).
        """
        frames = latents.shape[2] if num_frames is None else num_frames
        video = None
        for start in range(0, frames, chunk):
            z = latents[0, :, start:min(start + chunk, frames)].permute(1, 0, 2, 3)
            z = z.to(device=self._device(), dtype=self.vae.dtype) / self.vae.config.scaling_factor
            x = (self.vae.decode(z).sample.float() / 2 + 0.5).clamp(0, 1)
            if frame_callback is not None:
                frame_callback((x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy())
                continue
            if video is None:
                video = torch.empty((1, 3, frames, *x.shape[-2:]), dtype=torch.float32)
            video[0, :, start:start + x.shape[0]] = x.permute(1, 0, 2, 3).cpu()
        return video

    def _controlnet_window(self, latents_w, t, text, control_w, scale):
        from magicanimate.models import controlnet_residuals

        cond = torch.from_numpy(np.ascontiguousarray(control_w)).to(self._device())
        cond = (cond.to(torch.float32) / 255.0).permute(3, 0, 1, 2)[None].to(self.controlnet.dtype)
        return controlnet_residuals(self.controlnet, latents_w.to(self.controlnet.dtype), t,
                                    text.to(self.controlnet.dtype), cond, conditioning_scale=scale)

    def _unet_window(self, latents_w, t, text_u, text_c, banks, down, mid, sequential: bool) -> torch.Tensor:
        """[uncond; cond] noise prediction for one window, (2, 4, F, h, w)."""
        from magicanimate.models import ReferenceInputs

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

    # ------------------------------------------------------------------------------------------ call
    @torch.no_grad()
    def __call__(
        self,
        reference_image: np.ndarray,
        control,
        *,
        num_inference_steps: int = 25,
        guidance_scale: float = 7.5,
        generator: Optional[torch.Generator] = None,
        latents: Optional[torch.Tensor] = None,
        fusion: str = "tapered",
        context_frames: int = 16,
        context_overlap: int = 4,
        controlnet_conditioning_scale: float = 1.0,
        prompt_embeds: Optional[torch.Tensor] = None,
        negative_prompt_embeds: Optional[torch.Tensor] = None,
        eta: float = 0.0,
        output_type: str = "pt",
        frame_callback: Optional[Callable[[np.ndarray], None]] = None,
        decode_chunk: int = 8,
        sequential_guidance: bool = False,
        step_callback: Optional[Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], None]] = None,
        window_callback: Optional[Callable[[int, int, Sequence[int], torch.Tensor], None]] = None,
        init_from_reference: bool = False,
        init_strength: float = 1.0,
    ) -> MagicAnimatePipelineOutput:
        """Animate ``reference_image`` (H, W, 3) uint8 with ``control`` (N, H, W, 3) uint8 DensePose frames.

        ``control`` may be any object with ``len()`` and ``control[list_of_indices] -> (n, H, W, 3)``, so a
        long video need not be in memory. ``fusion="parity"`` reproduces the original exactly: the control
        video is edge-padded to a multiple of ``context_frames`` (the output trimmed back), the initial noise
        is one ``context_frames`` block tiled along time, windows wrap around and are averaged uniformly.
        ``latents``: initial noise, (1, 4, F0, h, w) with F0 dividing the (padded) length (tiled).
        ``step_callback(i, t, latents_in, noise_pred_guided)`` and ``window_callback(i, k, frames, pred)``
        observe the loop.

        ``init_from_reference``: start every frame from the reference latent noised to the first timestep
        (``scheduler.add_noise(z_ref, noise, t_0)``, as image-to-image at strength 1) instead of from pure
        noise. SD-style schedules keep some signal at the first timestep (8% of it at t=876 for 8 DDIM steps
        of the linear schedule), and a model learns to read the frame's overall colours from that residue
        (Lin et al., "Common Diffusion Noise Schedules and Sample Steps are Flawed"); from pure noise it then
        drifts to greyish colours. Off by default (the original starts from noise).
        ``init_strength`` (with ``init_from_reference``): image-to-image strength, as in diffusers' img2img
        pipelines: only the last ``int(init_strength * num_inference_steps)`` steps of the schedule are run
        (at least one), starting from the reference latent noised to the first of them, so more of the
        reference's layout and colours survive.
        """
        if fusion not in FUSION_MODES:
            raise InputError(f"unknown fusion mode {fusion!r}; expected one of {', '.join(FUSION_MODES)}")
        if not 0.0 < init_strength <= 1.0:
            raise InputError(f"init_strength must be in (0, 1], got {init_strength}")
        if init_strength < 1.0 and not init_from_reference:
            raise InputError(f"init_strength={init_strength} starts part-way through the schedule from the "
                             "noised reference latent: it needs init_from_reference=True")
        if output_type not in ("pt", "latent"):
            raise InputError(f"output_type must be 'pt' or 'latent', got {output_type!r}")
        reference_image = np.asarray(reference_image)
        num_frames = len(control)
        if num_frames < 1:
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

        device = self._device()
        dtype = self.unet.dtype
        rank, world = _dist_info()
        if self.vae.dtype == torch.float16 and getattr(self.vae.config, "force_upcast", False):
            self.vae.to(torch.float32)  # SD's VAE overflows in fp16 (its config asks for fp32)

        # Parity: edge-pad the control video to a multiple of the window (done lazily by index clamping).
        total = padded_length(num_frames, context_frames) if fusion == "parity" else num_frames
        frames_src = PaddedFrames(control, total) if total != num_frames else control
        schedule: WindowSchedule = make_schedule(total, fusion, context_frames, context_overlap)
        max_len = self.unet.config.get("motion_max_seq_length") if self.unet.config.get("use_motion_module") else None
        if max_len is not None and len(schedule.windows[0]) > max_len:
            raise ConfigError(f"context_frames={context_frames} exceeds the motion modules' position-encoding "
                              f"length ({max_len}); use at most {max_len}")

        text_c = (self.empty_prompt_embeds() if prompt_embeds is None else prompt_embeds).to(device, dtype)
        text_u = text_c if negative_prompt_embeds is None else negative_prompt_embeds.to(device, dtype)
        if text_c.ndim != 3 or text_c.shape[0] != 1:
            raise InputError(f"prompt_embeds must be (1, L, D), got {tuple(text_c.shape)}")

        ref_latent = self.encode_reference(reference_image, device, self.appearance_encoder.dtype)

        h, w = height // self.vae_scale_factor, width // self.vae_scale_factor
        channels = self.unet.config.in_channels
        if latents is None:
            block = context_frames if fusion == "parity" else total
            latents = torch.randn((1, channels, min(block, total), h, w), generator=generator,
                                  device=generator.device if generator is not None else "cpu",
                                  dtype=torch.float32)
        if latents.shape[2] != total:
            if latents.ndim != 5 or total % latents.shape[2]:
                raise InputError(f"initial latents have {latents.shape[2]} frames, which does not divide the "
                                 f"{total} frames to generate")
            latents = latents.repeat(1, 1, total // latents.shape[2], 1, 1)
        if tuple(latents.shape) != (1, channels, total, h, w):
            raise InputError(f"initial latents must be (1, {channels}, {total}, {h}, {w}), got {tuple(latents.shape)}")
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        if init_strength < 1.0:
            start = len(timesteps) - max(1, int(init_strength * len(timesteps)))
            timesteps = timesteps[start:]
            if hasattr(self.scheduler, "set_begin_index"):  # schedulers that count their own steps
                self.scheduler.set_begin_index(start)
        latents = latents.to(device=device, dtype=torch.float32)
        if init_from_reference:
            if not hasattr(self.scheduler, "add_noise"):
                raise ConfigError(f"init_from_reference needs a scheduler with add_noise; "
                                  f"{type(self.scheduler).__name__} has none")
            clean = ref_latent.to(torch.float32)[:, :, None].expand(-1, -1, total, -1, -1)
            latents = self.scheduler.add_noise(clean, latents, timesteps[:1])
        else:
            latents = latents * self.scheduler.init_noise_sigma
        step_kwargs = {}
        step_params = set(inspect.signature(self.scheduler.step).parameters)
        if "eta" in step_params:
            step_kwargs["eta"] = eta
        if "generator" in step_params:
            step_kwargs["generator"] = generator

        my_windows = shard(len(schedule), rank, world)
        weights = [schedule.weight_tensor(k, device=device).view(1, 1, -1, 1, 1) for k in range(len(schedule))]

        for i, t in enumerate(self.progress_bar(timesteps)):
            model_in = self.scheduler.scale_model_input(latents, t).to(dtype)
            banks = self.appearance_encoder(ref_latent, t, encoder_hidden_states=text_c.to(
                self.appearance_encoder.dtype))
            fused = torch.zeros((2, channels, total, h, w), device=device, dtype=torch.float32)
            weight_sum = torch.zeros((1, 1, total, 1, 1), device=device, dtype=torch.float32)

            def accumulate(k, pred):
                frames = list(schedule.windows[k])
                fused[:, :, frames] = fused[:, :, frames] + pred * weights[k]
                weight_sum[:, :, frames] = weight_sum[:, :, frames] + weights[k]

            preds = {}
            for k in my_windows:
                frames = list(schedule.windows[k])
                x_w = model_in[:, :, frames]
                down, mid = self._controlnet_window(x_w, t, text_c, frames_src[frames],
                                                    controlnet_conditioning_scale)
                pred = self._unet_window(x_w, t, text_u, text_c, banks, [d.to(dtype) for d in down],
                                         mid.to(dtype), sequential_guidance).float()
                del down, mid
                if window_callback is not None:
                    window_callback(i, k, frames, pred)
                if world == 1:
                    accumulate(k, pred)  # windows run in order: sum as we go, keep nothing
                else:
                    preds[k] = pred
            if world > 1:
                shape = (2, channels, len(schedule.windows[0]), h, w)
                preds = self._gather_predictions(preds, schedule, world, shape, device)
                for k in range(len(schedule)):
                    accumulate(k, preds[k])
                del preds
            # eps = u + g * (c - u), computed in place (same operations, no extra per-frame copies)
            eps_u, eps_c = fused.div_(weight_sum).chunk(2)
            eps = eps_u.add_(eps_c.sub_(eps_u).mul_(guidance_scale))
            del fused, eps_c
            if step_callback is not None:
                step_callback(i, t, latents, eps)
            latents = self.scheduler.step(eps, t, latents, **step_kwargs).prev_sample

        videos = None
        if output_type != "latent" and rank == 0:
            videos = self.decode_latents(latents, chunk=decode_chunk, frame_callback=frame_callback,
                                         num_frames=num_frames)
        self.maybe_free_model_hooks()
        return MagicAnimatePipelineOutput(videos=videos, latents=latents)

    @staticmethod
    def _gather_predictions(local: dict, schedule: WindowSchedule, world: int, shape, device) -> dict:
        """All windows' predictions on every process, keyed by window index.

        Each process contributes its contiguous share (zero-padded to the same count); afterwards every
        process sums the windows in the same order as a single process would, so results are identical.
        """
        rank, _ = _dist_info()
        num = len(schedule)
        per_rank = math.ceil(num / world)
        stacked = torch.zeros((per_rank, *shape), dtype=torch.float32, device=device)
        for j, k in enumerate(shard(num, rank, world)):
            stacked[j] = local[k]
        gathered = [torch.empty_like(stacked) for _ in range(world)]
        torch.distributed.all_gather(gathered, stacked)
        return {k: gathered[r][j] for r in range(world) for j, k in enumerate(shard(num, r, world))}
