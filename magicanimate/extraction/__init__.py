"""Motion extraction: a raw video of a person -> a DensePose control video for MagicAnimate.

Offline and on CPU with mediapipe's BlazePose (landmarks + person mask -> 24-part map); with real DensePose
R-CNN from a DensePose-TorchScript file (torch only); or with detectron2's DensePose when installed. See
:func:`extract_densepose`, ``scripts/extract_densepose.py`` and docs/motion_extraction.md.
"""

from magicanimate.extraction.backends import BACKENDS, BackendUnavailable, mediapipe_available
from magicanimate.extraction.extract import (
    ExtractionResult,
    MotionPlan,
    extract_densepose,
    extract_part_maps,
    plan_motion,
)
from magicanimate.extraction.landmarks import PoseFrame
from magicanimate.extraction.parts import parts_from_landmarks
from magicanimate.extraction.retarget import retarget_parts

__all__ = [
    "BACKENDS",
    "BackendUnavailable",
    "ExtractionResult",
    "MotionPlan",
    "PoseFrame",
    "extract_densepose",
    "extract_part_maps",
    "mediapipe_available",
    "parts_from_landmarks",
    "plan_motion",
    "retarget_parts",
]
