"""The sampler MagicAnimate was released with, and a way to swap in any diffusers scheduler."""

from __future__ import annotations

from typing import Any, Mapping

import diffusers
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from magicanimate.errors import ConfigError

# DDIM as the original AnimationPipeline leaves it: linear betas (AnimateDiff v1's, not SD's
# scaled_linear), "leading" spacing with steps_offset 1 (25 steps -> 961, 921, ..., 1), no clipping,
# alpha_prod at t<0 equal to 1, epsilon prediction.
MAGICANIMATE_DDIM_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "linear",
    "trained_betas": None,
    "clip_sample": False,
    "set_alpha_to_one": True,
    "steps_offset": 1,
    "prediction_type": "epsilon",
    "thresholding": False,
    "timestep_spacing": "leading",
    "rescale_betas_zero_snr": False,
}


def make_scheduler(name: str = "DDIMScheduler", overrides: Mapping[str, Any] | None = None) -> SchedulerMixin:
    """A diffusers scheduler of class ``name`` configured with MagicAnimate's noise schedule.

    Keys the chosen class does not know (e.g. ``clip_sample`` for Euler) are dropped by diffusers'
    ``from_config``; ``overrides`` replace entries of the base config.
    """
    cls = getattr(diffusers, name, None)
    if cls is None or not isinstance(cls, type) or not issubclass(cls, SchedulerMixin):
        raise ConfigError(f"unknown scheduler {name!r}: expected a diffusers scheduler class such as DDIMScheduler")
    config = dict(MAGICANIMATE_DDIM_CONFIG)
    config.update(overrides or {})
    return cls.from_config(config)

