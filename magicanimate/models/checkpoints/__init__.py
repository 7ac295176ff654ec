"""Checkpoints: every foreign format mapped onto our models, strictly, and the one assembler of the networks.

* :mod:`.keys`: tensor names of the original release / AnimateDiff in ours and back, wrapper prefixes;
* :mod:`.configs`: the original's UNet configs and ``inference.yaml`` in ours;
* :mod:`.loaders`: each released file and folder (SD1.5 UNet, motion modules, appearance encoder,
  ControlNet, VAE, 3D UNet folders);
* :mod:`.assembly`: :func:`assemble_networks` / :func:`load_magicanimate`, used by inference and training;
* :mod:`.convert`: pickle -> safetensors.

The model classes never import this package: they load their own format strictly
(:mod:`magicanimate.models.pretrained`) and expose the ``adapt_checkpoint`` hook where a released file
differs from their state dict in a known way.
"""

from magicanimate.models.checkpoints.assembly import (
    MagicAnimateModels,
    NetworkSources,
    assemble_networks,
    load_magicanimate,
    temporal_attention_file,
)
from magicanimate.models.checkpoints.configs import (
    is_original_unet3d_config,
    motion_kwargs_from_original,
    read_inference_yaml,
    unet3d_config_from_original,
)
from magicanimate.models.checkpoints.convert import convert_checkpoint_to_safetensors, convert_magicanimate_folder
from magicanimate.models.checkpoints.keys import (
    motion_key_to_original,
    motion_module_state_dict_from_original,
    strip_prefixes,
    unet3d_state_dict_from_original,
    unet3d_state_dict_to_original,
)
from magicanimate.models.checkpoints.loaders import (
    MotionLoadReport,
    load_appearance_encoder,
    load_controlnet,
    load_motion_modules,
    load_sd15_unet2d,
    load_unet3d,
    load_unet3d_folder,
    load_vae,
)

__all__ = [
    "MagicAnimateModels", "MotionLoadReport", "NetworkSources", "assemble_networks", "convert_checkpoint_to_safetensors",
    "convert_magicanimate_folder", "is_original_unet3d_config", "load_appearance_encoder", "load_controlnet",
    "load_magicanimate", "load_motion_modules", "load_sd15_unet2d", "load_unet3d", "load_unet3d_folder",
    "load_vae", "motion_key_to_original", "motion_kwargs_from_original", "motion_module_state_dict_from_original",
    "read_inference_yaml", "strip_prefixes", "temporal_attention_file", "unet3d_config_from_original",
    "unet3d_state_dict_from_original", "unet3d_state_dict_to_original",
]
