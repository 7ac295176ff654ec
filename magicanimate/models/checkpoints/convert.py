"""Pickle -> safetensors: the released ``.ckpt``/``.bin`` files rewritten once so they load without
unpickling (and memory-mapped); loaders prefer the converted files when both exist."""

from __future__ import annotations

import logging
from pathlib import Path

from magicanimate.errors import WeightsError
from magicanimate.models.checkpoints.keys import strip_prefixes
from magicanimate.models.weight_files import materialize, read_state_dict

logger = logging.getLogger(__name__)


def convert_checkpoint_to_safetensors(src: str | Path, dst: str | Path) -> int:
    """Rewrite a torch pickle (``.ckpt``/``.bin``/``.pth``) as safetensors, keys kept in their naming.

    ``{"state_dict": ...}`` wrappers and ``module.``/``unet.`` prefixes are removed; the pickle is read with
    ``weights_only=True``. The output is written atomically. Returns the number of tensors.
    """
    from safetensors.torch import save_file

    from magicanimate.utils.files import atomic_path

    # each tensor read afresh from the pickle: no two entries share memory, which safetensors refuses
    # (the original's two copies of a position encoding are one tensor in memory)
    out = {key: materialize(value).contiguous() for key, value in strip_prefixes(read_state_dict(src)).items()}
    with atomic_path(dst) as tmp:
        save_file(out, str(tmp), metadata={"format": "pt", "converted_from": Path(src).name})
    return len(out)


def convert_magicanimate_folder(folder: str | Path) -> list[Path]:
    """Convert every pickle of an official MagicAnimate folder to safetensors next to it.

    ``temporal_attention/temporal_attention.ckpt`` -> ``temporal_attention.safetensors``;
    ``{appearance_encoder,densepose_controlnet}/diffusion_pytorch_model.bin`` -> ``.safetensors``.
    Returns the files written. Loaders prefer the safetensors files once they exist.
    """
    root = Path(folder)
    jobs = [(root / "temporal_attention" / "temporal_attention.ckpt",
             root / "temporal_attention" / "temporal_attention.safetensors")]
    for sub in ("appearance_encoder", "densepose_controlnet"):
        jobs.append((root / sub / "diffusion_pytorch_model.bin", root / sub / "diffusion_pytorch_model.safetensors"))
    todo = [(s, d) for s, d in jobs if s.is_file()]
    if not todo:
        raise WeightsError(f"{root}: no official pickles found (expected temporal_attention/temporal_attention.ckpt "
                           "or */diffusion_pytorch_model.bin)")
    written = []
    for src, dst in todo:
        n = convert_checkpoint_to_safetensors(src, dst)
        logger.info("%s -> %s (%d tensors)", src, dst, n)
        written.append(dst)
    return written
