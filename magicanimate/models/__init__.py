"""Models: the inflated 3D UNet, the appearance encoder with reference attention, the DensePose ControlNet,
and the strict loaders/converters for their checkpoints."""

from .appearance_encoder import AppearanceEncoderModel
from .controlnet import build_densepose_controlnet, controlnet_residuals
from .convert import (
    MagicAnimateModels,
    MotionLoadReport,
    load_appearance_encoder,
    load_controlnet,
    load_magicanimate,
    load_motion_modules,
    load_sd15_unet2d,
    load_unet3d,
    unet3d_config_from_original,
    unet3d_state_dict_from_original,
    unet3d_state_dict_to_original,
)
from .norms import PerFrameGroupNorm, WindowGroupNorm
from .reference_attention import (
    ReferenceInputs,
    ReferenceReaderProcessor,
    ReferenceWriterProcessor,
    maybe_enable_xformers,
    reference_block_names,
)
from .unet3d import UNet3DMotionModel, UNet3DOutput, fold_frames, unfold_frames

__all__ = [
    "AppearanceEncoderModel", "MagicAnimateModels", "MotionLoadReport", "PerFrameGroupNorm", "ReferenceInputs",
    "ReferenceReaderProcessor", "ReferenceWriterProcessor", "UNet3DMotionModel", "UNet3DOutput", "WindowGroupNorm",
    "build_densepose_controlnet", "controlnet_residuals", "fold_frames", "load_appearance_encoder",
    "load_controlnet", "load_magicanimate", "load_motion_modules", "load_sd15_unet2d", "load_unet3d",
    "maybe_enable_xformers", "reference_block_names", "unet3d_config_from_original",
    "unet3d_state_dict_from_original", "unet3d_state_dict_to_original", "unfold_frames",
]
