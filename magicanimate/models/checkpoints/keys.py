"""Tensor names of foreign checkpoints in ours, and back.

The motion modules are diffusers' ``AnimateDiffTransformer3D``; the original MagicAnimate / AnimateDiff-v1
checkpoints name the same tensors differently (``temporal_transformer.`` prefix, ``attention_blocks.N``
instead of ``attnN``, ``norms.N`` / ``ff_norm`` instead of ``normN``, and one position-encoding buffer per
attention where diffusers shares one). Everything else in a 3D UNet has SD1.5's names in both.
Checkpoints saved by DDP or wrapped as ``unet.`` carry prefixes that are dropped here.
"""

from __future__ import annotations

import re
from typing import Mapping

import torch

from magicanimate.errors import WeightsError

_MM = re.compile(r"^(?P<prefix>.*\.motion_modules\.\d+\.)(?P<rest>.+)$")
_OURS_TO_ORIG_BLOCK = [
    (re.compile(r"^transformer_blocks\.(\d+)\.attn1\.(.+)$"), r"transformer_blocks.\1.attention_blocks.0.\2"),
    (re.compile(r"^transformer_blocks\.(\d+)\.attn2\.(.+)$"), r"transformer_blocks.\1.attention_blocks.1.\2"),
    (re.compile(r"^transformer_blocks\.(\d+)\.norm1\.(.+)$"), r"transformer_blocks.\1.norms.0.\2"),
    (re.compile(r"^transformer_blocks\.(\d+)\.norm2\.(.+)$"), r"transformer_blocks.\1.norms.1.\2"),
    (re.compile(r"^transformer_blocks\.(\d+)\.norm3\.(.+)$"), r"transformer_blocks.\1.ff_norm.\2"),
    (re.compile(r"^transformer_blocks\.(\d+)\.ff\.(.+)$"), r"transformer_blocks.\1.ff.\2"),
    (re.compile(r"^(norm|proj_in|proj_out)\.(.+)$"), r"\1.\2"),
]
_ORIG_TO_OURS_BLOCK = [
    (re.compile(r"^transformer_blocks\.(\d+)\.attention_blocks\.(\d+)\.pos_encoder\.pe$"), None),  # handled apart
    (re.compile(r"^transformer_blocks\.(\d+)\.attention_blocks\.0\.(.+)$"), r"transformer_blocks.\1.attn1.\2"),
    (re.compile(r"^transformer_blocks\.(\d+)\.attention_blocks\.1\.(.+)$"), r"transformer_blocks.\1.attn2.\2"),
    (re.compile(r"^transformer_blocks\.(\d+)\.norms\.0\.(.+)$"), r"transformer_blocks.\1.norm1.\2"),
    (re.compile(r"^transformer_blocks\.(\d+)\.norms\.1\.(.+)$"), r"transformer_blocks.\1.norm2.\2"),
    (re.compile(r"^transformer_blocks\.(\d+)\.ff_norm\.(.+)$"), r"transformer_blocks.\1.norm3.\2"),
    (re.compile(r"^transformer_blocks\.(\d+)\.ff\.(.+)$"), r"transformer_blocks.\1.ff.\2"),
    (re.compile(r"^(norm|proj_in|proj_out)\.(.+)$"), r"\1.\2"),
]
_PE_OURS = re.compile(r"^transformer_blocks\.(\d+)\.pos_embed\.pe$")


def motion_key_to_original(key: str) -> list[str]:
    """Original names of one of our motion-module keys (the shared position encoding maps to two)."""
    m = _MM.match(key)
    if not m:
        return [key]
    prefix, rest = m["prefix"], m["rest"]
    pe = _PE_OURS.match(rest)
    if pe:
        return [f"{prefix}temporal_transformer.transformer_blocks.{pe[1]}.attention_blocks.{i}.pos_encoder.pe"
                for i in (0, 1)]
    for pattern, repl in _OURS_TO_ORIG_BLOCK:
        if pattern.match(rest):
            return [prefix + "temporal_transformer." + pattern.sub(repl, rest)]
    raise KeyError(f"no original name for motion-module key {key}")


def unet3d_state_dict_to_original(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our 3D UNet state dict in the original MagicAnimate / AnimateDiff naming."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        for name in motion_key_to_original(key):
            out[name] = value
    return out


def unet3d_state_dict_from_original(state_dict: Mapping[str, torch.Tensor], *, source: str) -> dict[str, torch.Tensor]:
    """Original-naming 3D UNet tensors (full or motion-only) in our naming. Keys it cannot map are kept as
    they are (so the strict check later reports them by name)."""
    out: dict[str, torch.Tensor] = {}
    pes: dict[str, dict[int, torch.Tensor]] = {}
    for key, value in state_dict.items():
        m = _MM.match(key)
        if not m or not m["rest"].startswith("temporal_transformer."):
            out[key] = value
            continue
        prefix, rest = m["prefix"], m["rest"][len("temporal_transformer."):]
        for pattern, repl in _ORIG_TO_OURS_BLOCK:
            hit = pattern.match(rest)
            if not hit:
                continue
            if repl is None:
                pes.setdefault(f"{prefix}transformer_blocks.{hit[1]}.pos_embed.pe", {})[int(hit[2])] = value
            else:
                out[prefix + pattern.sub(repl, rest)] = value
            break
        else:
            out[key] = value
    for name, copies in pes.items():
        # diffusers' block shares one position encoding between its two attentions; the original stores two
        # (identical) buffers. Both must be present and equal.
        if set(copies) != {0, 1}:
            raise WeightsError(f"{source}: position encoding of {name} should appear for attention_blocks 0 and 1, "
                               f"found {sorted(copies)}")
        if copies[0].shape != copies[1].shape or not torch.allclose(copies[0].float(), copies[1].float(), atol=1e-3):
            raise WeightsError(f"{source}: the two position-encoding buffers of {name} differ")
        out[name] = copies[0]
    return out


def strip_prefixes(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop ``module.`` (DDP) and ``unet.`` wrappers from checkpoint keys."""
    out = {}
    for key, value in state_dict.items():
        changed = True
        while changed:
            changed = False
            for prefix in ("module.", "unet."):
                if key.startswith(prefix):
                    key, changed = key[len(prefix):], True
        out[key] = value
    return out


def motion_module_state_dict_from_original(state_dict: Mapping[str, torch.Tensor], *, source: str) -> dict:
    """Module-local original names (``temporal_transformer.…``) -> ours, for one standalone motion module."""
    prefix = "m.motion_modules.0."
    mapped = unet3d_state_dict_from_original({prefix + k: v for k, v in state_dict.items()}, source=source)
    return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in mapped.items()}
