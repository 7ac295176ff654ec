"""Strict, atomic ``from_pretrained``/``save_pretrained`` shared by our model classes.

diffusers' own loader leaves missing tensors on ``meta`` with a warning (DESIGN §0.11); ours raises
WeightsError naming every missing or unexpected key, and saving never leaves a half-written folder.
"""

from __future__ import annotations

from pathlib import Path

import torch


class StrictPretrainedMixin:
    """Put before the diffusers base class: ``class M(StrictPretrainedMixin, ModelMixin, ...)``."""

    @classmethod
    def from_pretrained(cls, path: str | Path, *, subfolder: str | None = None,
                        torch_dtype: torch.dtype | None = None,
                        device: str | torch.device | None = None):
        """Load a folder (ours or the official layout), strictly: every missing or unexpected tensor
        raises WeightsError naming it."""
        from .convert import load_pretrained_folder

        folder = Path(path) / subfolder if subfolder else Path(path)
        return load_pretrained_folder(cls, folder, torch_dtype=torch_dtype, device=device)

    def save_pretrained(self, save_directory: str | Path, **kwargs) -> None:
        """diffusers' ``save_pretrained`` (config.json + safetensors), written to a temporary folder that
        replaces ``save_directory`` only once complete."""
        from ..utils.files import atomic_path

        with atomic_path(save_directory) as tmp:
            super().save_pretrained(tmp, **kwargs)
