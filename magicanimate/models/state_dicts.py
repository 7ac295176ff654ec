"""The one strict loader: read a weight file, check it against a model, load it.

Every model load in the project goes through :func:`load_strict`: any missing or unexpected key and any
shape mismatch raises one :class:`~magicanimate.errors.WeightsError` naming the file, what the weights were
meant for and every offending key (diffusers' own loaders only warn and leave missing tensors
uninitialised). Reading is format-agnostic (safetensors or a torch pickle opened with
``weights_only=True``); what the keys of foreign formats mean is the business of
:mod:`magicanimate.models.checkpoints`.
"""

from __future__ import annotations

import logging
from typing import Iterable, Mapping

import torch

from ..errors import WeightsError
from .weight_files import materialize

logger = logging.getLogger(__name__)

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
                allowed_missing: Iterable[str] = (), torch_dtype: torch.dtype | None = None,
                device: str | torch.device | None = None) -> None:
    """Strictly load ``state_dict`` (real or lazy tensors) into ``model``: keys and shapes are checked first and
    errors name them. A model built empty (on the ``meta`` device) is filled tensor by tensor, each read from
    its file straight into ``torch_dtype`` on ``device``, so no second copy of the weights is ever held."""
    check_keys(expected_shapes(model), state_dict, source=source, what=what, allowed_missing=allowed_missing)
    if any(t.is_meta for t in model.state_dict().values()):
        _fill_empty(model, state_dict, source=source, torch_dtype=torch_dtype, device=device)
        return
    full = {k: materialize(v) for k, v in state_dict.items()}
    result = model.load_state_dict(full, strict=not allowed_missing)
    if allowed_missing and (result.unexpected_keys or set(result.missing_keys) - set(allowed_missing)):
        raise WeightsError(f"{source}: unexpected loading result {result}")
    move_model(model, torch_dtype, device)


def _fill_empty(model: torch.nn.Module, state_dict: Mapping, *, source: str, torch_dtype, device) -> None:
    for name, value in state_dict.items():
        module_name, _, leaf = name.rpartition(".")
        module = model.get_submodule(module_name)
        tensor = materialize(value, torch_dtype)
        if device is not None:
            tensor = tensor.to(device)
        if leaf in module._parameters:
            module._parameters[leaf] = torch.nn.Parameter(tensor, requires_grad=module._parameters[leaf].requires_grad)
        else:
            module._buffers[leaf] = tensor
    empty = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if empty:  # e.g. a tensor shared by two modules, or a buffer no file holds
        raise WeightsError(f"{source}: {len(empty)} tensor(s) of the model were never filled: {_list(empty)}")


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
