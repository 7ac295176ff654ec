"""Models: the inflated 3D UNet, the appearance encoder with reference attention, the DensePose ControlNet.

Loading released and foreign checkpoints, and assembling the three networks, is
:mod:`magicanimate.models.checkpoints` (which imports these classes, never the other way round).
"""

from .appearance_encoder import AppearanceEncoderModel
from .controlnet import build_densepose_controlnet, controlnet_residuals
from .norms import PerFrameGroupNorm, WindowGroupNorm
from .reference_attention import (
    ReferenceInputs,
    ReferenceReaderProcessor,
    ReferenceWriterProcessor,
    maybe_enable_xformers,
    reference_block_names,
)
from .unet3d import UNet3DMotionModel, UNet3DOutput, fold_frames, unet3d_config_from_unet2d, unfold_frames

__all__ = [
    "AppearanceEncoderModel", "PerFrameGroupNorm", "ReferenceInputs", "ReferenceReaderProcessor",
    "ReferenceWriterProcessor", "UNet3DMotionModel", "UNet3DOutput", "WindowGroupNorm", "build_densepose_controlnet",
    "controlnet_residuals", "fold_frames", "maybe_enable_xformers", "reference_block_names",
    "unet3d_config_from_unet2d", "unfold_frames",
]
