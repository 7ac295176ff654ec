"""Where and how a pipeline runs: device, dtype, and loading it from a checked weights spec."""

from __future__ import annotations

import torch

from magicanimate.pipelines.weights import WeightsSpec

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_dtype(name, device: torch.device) -> torch.dtype:
    name = getattr(name, "value", name)
    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    return DTYPES[name]


def load_pipeline(weights: WeightsSpec, device: torch.device, dtype: torch.dtype):
    """The pipeline a checked weights spec names (a saved folder, or the original layout), strictly."""
    from magicanimate.pipelines.pipeline_magicanimate import MagicAnimatePipeline

    if weights.pipeline is not None:
        return MagicAnimatePipeline.from_pretrained(weights.pipeline, torch_dtype=dtype)
    return MagicAnimatePipeline.from_original(weights, torch_dtype=dtype)
