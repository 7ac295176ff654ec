"""The one strict loader: read a weight file, check it against a model, load it.

Every model load in the project goes through :func:`load_strict`: any missing or unexpected key and any
shape mismatch raises one :class:`~magicanimate.errors.WeightsError` naming the file, what the weights were
meant for and every offending key (diffusers' own loaders only warn and leave missing tensors
uninitialised). Reading is format-agnostic (safetensors or a torch pickle opened with
``weights_only=True``); what the keys of foreign formats mean is the business of
:mod:`magicanimate.models.checkpoints`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Iterable, Mapping

import torch

from ..errors import WeightsError

logger = logging.getLogger(__name__)

WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
MOTION_KEY = "motion_modules"


def _list(names: Iterable[str], limit: int = 40) -> str:
    names = sorted(names)
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def check_keys(expected: Mapping[str, torch.Size] | Iterable[str], got: Mapping[str, torch.Tensor], *,
               source: str, what: str, allowed_missing: Iterable[str] = ()) -> None:
    """Raise :class:`WeightsError` naming every missing/unexpected key and every shape mismatch."""
    exp_shapes = expected if isinstance(expected, Mapping) else None
    exp = set(expected)
    allowed = set(allowed_missing)
    missing = exp - set(got) - allowed
    unexpected = set(got) - exp
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s): {_list(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): {_list(unexpected)}")
    if exp_shapes is not None:
        bad = [f"{k} {tuple(got[k].shape)} != expected {tuple(exp_shapes[k])}"
               for k in sorted(exp & set(got)) if tuple(got[k].shape) != tuple(exp_shapes[k])]
        if bad:
            problems.append(f"{len(bad)} shape mismatch(es): " + "; ".join(bad[:20]))
    if problems:
        raise WeightsError(f"{source}: weights do not fit {what}: " + " | ".join(problems))


def expected_shapes(model: torch.nn.Module) -> dict[str, torch.Size]:
    return {k: v.shape for k, v in model.state_dict().items()}


def load_strict(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], *, source: str, what: str,
                allowed_missing: Iterable[str] = ()) -> None:
    """Strictly load ``state_dict`` into ``model`` (keys and shapes checked first, errors name them)."""
    check_keys(expected_shapes(model), state_dict, source=source, what=what, allowed_missing=allowed_missing)
    on_meta = any(p.device.type == "meta" for p in model.parameters())
    result = model.load_state_dict(dict(state_dict), strict=not allowed_missing, assign=on_meta)
    if allowed_missing and (result.unexpected_keys or set(result.missing_keys) - set(allowed_missing)):
        raise WeightsError(f"{source}: unexpected loading result {result}")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a ``.safetensors`` file or a torch pickle (``weights_only=True``) into a flat tensor dict.

    Pickles wrapped as ``{"state_dict": ...}`` are unwrapped. Raises :class:`WeightsError` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weight file not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path))
        else:
            sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt/truncated/foreign file: one clear message
        raise WeightsError(f"{path}: cannot read weights ({type(exc).__name__}: {exc})") from exc
    if isinstance(sd, Mapping) and "state_dict" in sd and isinstance(sd["state_dict"], Mapping):
        sd = sd["state_dict"]
    if not isinstance(sd, Mapping):
        raise WeightsError(f"{path}: expected a dict of tensors, found {type(sd).__name__}")
    non_tensors = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if non_tensors:
        raise WeightsError(f"{path}: entries that are not tensors: {_list(non_tensors)}")
    return dict(sd)


def check_weight_file(path: str | Path) -> Path:
    """Cheap integrity check before anything loads: a safetensors file's header and data fit its size; a
    zip-format torch pickle (what ``torch.save`` writes) has its central directory. Reads no tensor."""
    import struct
    import zipfile

    path = Path(path)
    size = path.stat().st_size
    try:
        if path.suffix == ".safetensors":
            with open(path, "rb") as fh:
                (header_len,) = struct.unpack("<Q", fh.read(8))
                if header_len > size - 8:
                    raise ValueError(f"header of {header_len} bytes in a {size}-byte file")
                header = json.loads(fh.read(header_len))
            end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
            if 8 + header_len + end != size:
                raise ValueError(f"{size} bytes, its header describes {8 + header_len + end}")
        elif zipfile.is_zipfile(path):
            zipfile.ZipFile(path).close()
        elif size < 64:
            raise ValueError(f"only {size} bytes")
    except (ValueError, struct.error, zipfile.BadZipFile, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise WeightsError(f"{path}: truncated or corrupt weight file ({exc})") from None
    return path


def find_weight_file(folder: str | Path) -> Path:
    """The diffusers weight file in ``folder`` (.safetensors preferred over .bin)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise WeightsError(f"{folder}: folder not found")
    for name in WEIGHT_NAMES:
        if (folder / name).is_file():
            return folder / name
    raise WeightsError(f"{folder}: no weight file (expected one of {', '.join(WEIGHT_NAMES)})")


def read_config(folder: str | Path) -> dict:
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise WeightsError(f"{path}: config.json not found")
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise WeightsError(f"{path}: not valid JSON ({exc})") from exc


def clean_config(config: Mapping) -> dict:
    """Config dict without diffusers' private bookkeeping keys (``_class_name``, ``_use_default_values``...)."""
    return {k: v for k, v in config.items() if not k.startswith("_")}


def describe_state_dict(state_dict: Mapping[str, torch.Tensor]) -> str:
    """A guess at what a state dict holds, for error messages about weights given to the wrong model."""
    keys = list(state_dict)
    if any(k.startswith(("controlnet_cond_embedding", "controlnet_down_blocks")) for k in keys):
        return "a ControlNet"
    if any(MOTION_KEY in k for k in keys):
        return "a 3D UNet / motion modules"
    if any(k.startswith(("encoder.", "decoder.", "quant_conv")) for k in keys):
        return "a VAE"
    if any(k.startswith(("text_model.", "cond_stage_model.")) for k in keys):
        return "a text encoder"
    if any(k.startswith("model.diffusion_model.") for k in keys):
        return "an original-format (LDM) Stable Diffusion checkpoint"
    if keys and "conv_out.weight" not in state_dict and "conv_in.weight" in state_dict:
        return "an appearance encoder"
    if "conv_out.weight" in state_dict:
        return "a 2D UNet"
    return "an unknown model"


def move_model(model: torch.nn.Module, torch_dtype=None, device=None) -> torch.nn.Module:
    """``model`` on ``device`` in ``torch_dtype`` (floating-point tensors), touching nothing already there.

    diffusers' ``ModelMixin.to`` warns about modules "that should be kept in float32" whenever a dtype is
    passed, even when the model keeps none; such models are moved by ``torch.nn.Module.to`` instead."""
    params = [p for p in model.parameters() if p.is_floating_point()]
    if torch_dtype is not None and all(p.dtype == torch_dtype for p in params):
        torch_dtype = None
    if device is not None and all(p.device == torch.device(device) for p in params):
        device = None
    if torch_dtype is None and device is None:
        return model
    mover = type(model).to if getattr(model, "_keep_in_fp32_modules", None) else torch.nn.Module.to
    mover(model, device=device, dtype=torch_dtype)
    return model
