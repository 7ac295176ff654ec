"""Strict, atomic ``from_pretrained``/``save_pretrained`` for our model classes, and the folder loader
every model folder goes through (ours and diffusers' classes alike).

diffusers' own loader leaves missing tensors on ``meta`` with a warning; ours raises WeightsError naming every
missing or unexpected key, and saving never leaves a half-written folder. A class can accept weights that
differ from its own state dict in a known way by defining the hook ``adapt_checkpoint(state_dict, *,
source)`` (the appearance encoder drops the dead tail of a full SD UNet that way); the loader never asks what
class it is loading.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from ..errors import WeightsError
from .state_dicts import describe_state_dict, load_strict
from .weight_files import clean_config, find_weight_file, read_config, read_state_dict

logger = logging.getLogger(__name__)


def build_empty(cls, config: dict):
    """``cls`` built from ``config`` on the ``meta`` device: the module tree without memory for its tensors,
    to be filled from a file (:func:`~magicanimate.models.state_dicts.load_strict`)."""
    with torch.device("meta"):
        return cls.from_config(config)


def load_model_folder(cls, folder: str | Path, *, torch_dtype: torch.dtype | None = None,
                      device: str | torch.device | None = None):
    """``cls`` built from ``folder/config.json`` with ``folder``'s weights loaded strictly.

    Works for any diffusers-style class (``from_config`` + a ``diffusion_pytorch_model`` file); a class with
    an ``adapt_checkpoint`` hook sees the weights first (names and shapes only: data is read when placed). The
    model is built empty and each tensor read straight into ``torch_dtype`` on ``device``.
    """
    start = time.perf_counter()
    folder = Path(folder)
    config = clean_config(read_config(folder))
    weights_file = find_weight_file(folder)
    state_dict = read_state_dict(weights_file)
    try:
        model = build_empty(cls, config)
    except (TypeError, ValueError) as exc:
        raise WeightsError(f"{folder / 'config.json'}: not a valid {cls.__name__} config ({exc})") from exc
    what = f"{cls.__name__} ({describe_state_dict(state_dict)} given)"
    adapt = getattr(model, "adapt_checkpoint", None)
    if adapt is not None:
        state_dict = adapt(state_dict, source=str(weights_file))
    load_strict(model, state_dict, source=str(weights_file), what=what, torch_dtype=torch_dtype, device=device)
    logger.info("%s: %s loaded in %.1f s", weights_file, cls.__name__, time.perf_counter() - start)
    return model


class StrictPretrainedMixin:
    """Put before the diffusers base class: ``class M(StrictPretrainedMixin, ModelMixin, ...)``."""

    @classmethod
    def from_pretrained(cls, path: str | Path, *, subfolder: str | None = None,
                        torch_dtype: torch.dtype | None = None,
                        device: str | torch.device | None = None):
        """Load one of our folders (config.json + weights), strictly: every missing or unexpected tensor
        raises WeightsError naming it."""
        folder = Path(path) / subfolder if subfolder else Path(path)
        return load_model_folder(cls, folder, torch_dtype=torch_dtype, device=device)

    def adapt_checkpoint(self, state_dict: dict, *, source: str) -> dict:
        """Hook: the checkpoint's tensors as this model names them (default: unchanged)."""
        return state_dict

    def save_pretrained(self, save_directory: str | Path, **kwargs) -> None:
        """diffusers' ``save_pretrained`` (config.json + safetensors), written to a temporary folder that
        replaces ``save_directory`` only once complete."""
        from ..utils.files import atomic_path

        with atomic_path(save_directory) as tmp:
            super().save_pretrained(tmp, **kwargs)
