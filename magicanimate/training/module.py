"""The module that owns the training step (docs/architecture.md, "Training"): batch in, loss out.

VAE (frozen) encodes the target frames and the reference; t and noise are drawn; the appearance encoder
writes the reference banks from the clean reference latent at t; the DensePose ControlNet turns the control
frames into residuals; the 3D UNet denoises while reading the banks; the loss is the MSE to ε (or to v),
optionally min-SNR weighted. With probability ``ref_drop`` a sample reads no reference, which is exactly the
unconditional branch guidance uses at inference.

The trainer (accelerate) wraps this module once; it only loops, logs and checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, List, Tuple

import torch
import torch.nn.functional as F
from diffusers.training_utils import compute_snr
from torch import nn

from magicanimate.errors import ConfigError

MOTION_KEY = "motion_modules"


@dataclass
class TrainableSummary:
    """Trainable / total parameter counts per module, for the start-up log and its check."""

    counts: Dict[str, Tuple[int, int]]

    def lines(self) -> List[str]:
        return [f"{name:<20} trainable {tr:>13,d} / {tot:>13,d}" for name, (tr, tot) in self.counts.items()]


def vae_encode(vae, images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) in [-1, 1] -> (N, 4, h, w) latents: the posterior mean times the VAE's scaling factor."""
    latents = vae.encode(images.to(vae.dtype)).latent_dist.mean
    return latents * vae.config.scaling_factor


class AnimateTrainingModule(nn.Module):
    """Wires encoder -> ControlNet -> UNet and returns the diffusion loss of a batch.

    Args:
        vae: diffusers AutoencoderKL (frozen).
        unet: the 3D UNet (``UNet3DMotionModel``).
        appearance_encoder: ``AppearanceEncoderModel``.
        controlnet: diffusers ``ControlNetModel`` with 3 conditioning channels.
        noise_scheduler: the diffusers scheduler inference samples with (its ``add_noise``,
            ``get_velocity`` and ``alphas_cumprod`` define the forward process).
        text_embedding: (1, L, D) empty-prompt embedding.
        prediction_type: ``epsilon`` or ``v_prediction``.
        snr_gamma: min-SNR-γ weighting, or None.
        ref_drop: probability that a sample reads no reference.
    """

    # The units FSDP shards and gathers one at a time (its transformer-based wrap reads this list when the
    # accelerate config names no classes; classes a stage does not have are skipped). Each unit is wholly
    # frozen or wholly trainable in both stages, and each is entered through its forward.
    _no_split_modules = ["ResnetBlock2D", "BasicTransformerBlock", "AnimateDiffTransformer3D"]

    def __init__(self, vae, unet, appearance_encoder, controlnet, noise_scheduler, text_embedding: torch.Tensor,
                 prediction_type: str = "epsilon", snr_gamma: float | None = None, ref_drop: float = 0.1):
        super().__init__()
        self.vae = vae
        self.unet = unet
        self.appearance_encoder = appearance_encoder
        self.controlnet = controlnet
        self.noise_scheduler = noise_scheduler
        self.register_buffer("text_embedding", text_embedding.detach().clone(), persistent=False)
        if prediction_type not in ("epsilon", "v_prediction"):
            raise ConfigError(f"prediction_type must be epsilon or v_prediction, got {prediction_type!r}")
        self.prediction_type = prediction_type
        self.snr_gamma = snr_gamma
        self.ref_drop = ref_drop
        # Set by the trainer under FSDP: a weight is whole only inside its unit's forward there, so the
        # encoder always runs (every rank gathers the same units) and is touched through its banks.
        self.sharded_weights = False

    # ------------------------------------------------------------------------------ which weights train
    def module_parameters(self) -> Dict[str, List[nn.Parameter]]:
        """Parameters grouped the way configs name them (``train.*``)."""
        motion, spatial = [], []
        for name, p in self.unet.named_parameters():
            (motion if MOTION_KEY in name else spatial).append(p)
        return {
            "appearance_encoder": list(self.appearance_encoder.parameters()),
            "controlnet": list(self.controlnet.parameters()),
            "motion_modules": motion,
            "spatial_unet": spatial,
            "vae": list(self.vae.parameters()),
        }

    def configure_trainable(self, train) -> TrainableSummary:
        """Freeze everything, unfreeze what ``train`` declares, verify, and return the per-module counts."""
        groups = self.module_parameters()
        declared = {k: bool(getattr(train, k)) for k in ("appearance_encoder", "controlnet", "motion_modules",
                                                         "spatial_unet")}
        declared["vae"] = False
        if declared["motion_modules"] and not groups["motion_modules"]:
            raise ConfigError("train.motion_modules=true but the UNet has no motion modules "
                              "(model.use_motion_module=false?)")
        self.requires_grad_(False)
        for name, params in groups.items():
            for p in params:
                p.requires_grad_(declared[name])
        counts = {}
        for name, params in groups.items():
            trainable = sum(p.numel() for p in params if p.requires_grad)
            total = sum(p.numel() for p in params)
            # Parameters shared between groups would make the declaration ambiguous: refuse.
            if declared[name] and trainable != total or not declared[name] and trainable:
                raise ConfigError(f"module {name!r}: declared train.{name}={declared[name]} but {trainable:,} of "
                                  f"{total:,} parameters are trainable (parameters shared with another module?)")
            counts[name] = (trainable, total)
        if not any(tr for tr, _ in counts.values()):
            raise ConfigError("no trainable parameters: every module declared for training is empty")
        return TrainableSummary(counts)

    def trainable_parameters(self) -> List[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    # ------------------------------------------------------------------------------------------ forward
    def forward(self, batch: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Loss of one batch: ``pixel_values`` (B,3,F,H,W) [-1,1], ``densepose`` (B,3,F,H,W) [0,1],
        ``reference`` (B,3,H,W) [-1,1]. Returns ``loss`` (scalar) and ``read_mask`` (B,)."""
        from magicanimate.models import ReferenceInputs, controlnet_residuals

        pixels = batch["pixel_values"]
        b, _, f, h, w = pixels.shape
        with torch.no_grad():
            frames = pixels.permute(0, 2, 1, 3, 4).reshape(b * f, 3, h, w)
            latents = vae_encode(self.vae, frames)
            latents = latents.reshape(b, f, *latents.shape[1:]).permute(0, 2, 1, 3, 4).float()
            ref_latents = vae_encode(self.vae, batch["reference"]).float()

        noise = torch.randn_like(latents)
        num_t = self.noise_scheduler.config.num_train_timesteps
        timesteps = torch.randint(0, num_t, (b,), device=latents.device).long()
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        text = self.text_embedding.to(noisy.dtype).expand(b, -1, -1)

        read_mask = torch.rand(b, device=latents.device) >= self.ref_drop
        reference, banks = None, None
        if bool(read_mask.any()) or self.sharded_weights:
            banks = self.appearance_encoder(ref_latents, timesteps, text)
        if bool(read_mask.any()):
            reference = ReferenceInputs(banks=banks, read_mask=read_mask)

        down, mid = controlnet_residuals(self.controlnet, noisy, timesteps, text,
                                         batch["densepose"].to(noisy.dtype))
        pred = self.unet(noisy, timesteps, text, down_block_additional_residuals=down,
                         mid_block_additional_residual=mid, reference=reference).sample

        if self.prediction_type == "epsilon":
            target = noise
        else:
            target = self.noise_scheduler.get_velocity(latents, noise, timesteps)
        per_sample = F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=(1, 2, 3, 4))
        if self.snr_gamma is not None:
            snr = compute_snr(self.noise_scheduler, timesteps).to(per_sample.device)
            clipped = torch.minimum(snr, torch.full_like(snr, self.snr_gamma))
            weights = clipped / (snr + 1) if self.prediction_type == "v_prediction" else clipped / snr
            per_sample = per_sample * weights
        loss = per_sample.mean()
        # Touch every trainable parameter with weight zero: a batch in which every sample dropped the
        # reference leaves the encoder out of the graph, and DDP would then wait for gradients that never
        # come (docs/architecture.md, "Training").
        # Under FSDP the weights are whole only inside their units, so the unread banks carry the touch.
        if not self.sharded_weights:
            loss = loss + 0.0 * _touch(self.trainable_parameters())
        elif reference is None:
            loss = loss + 0.0 * sum(bank.float().sum() for bank in banks)
        return {"loss": loss, "read_mask": read_mask, "timesteps": timesteps}


def _touch(params: Iterable[nn.Parameter]) -> torch.Tensor:
    total = None
    for p in params:
        term = p.reshape(-1)[0].float()
        total = term if total is None else total + term
    return total if total is not None else torch.zeros(())
