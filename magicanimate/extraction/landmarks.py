"""Body landmarks: the 33-point BlazePose layout (mediapipe's ``solutions.pose``) and per-frame detections.

Landmarks are stored as ``(33, 4)`` float arrays of ``x, y`` in pixels of the image they refer to, ``z`` in
the same pixel units (mediapipe's depth relative to the hip centre; smaller = closer to the camera) and
``visibility`` in ``[0, 1]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

NUM_LANDMARKS = 33
#: masks (and part maps) are kept at most this many pixels on their longer side: the models predict them at
#: ~112-256 px anyway, and a long video's masks must fit in memory.
MASK_MAX_SIDE = 256

NOSE = 0
LEFT_EYE, RIGHT_EYE = 2, 5
LEFT_EAR, RIGHT_EAR = 7, 8
MOUTH_LEFT, MOUTH_RIGHT = 9, 10
LEFT_SHOULDER, RIGHT_SHOULDER = 11, 12
LEFT_ELBOW, RIGHT_ELBOW = 13, 14
LEFT_WRIST, RIGHT_WRIST = 15, 16
LEFT_PINKY, RIGHT_PINKY = 17, 18
LEFT_INDEX, RIGHT_INDEX = 19, 20
LEFT_THUMB, RIGHT_THUMB = 21, 22
LEFT_HIP, RIGHT_HIP = 23, 24
LEFT_KNEE, RIGHT_KNEE = 25, 26
LEFT_ANKLE, RIGHT_ANKLE = 27, 28
LEFT_HEEL, RIGHT_HEEL = 29, 30
LEFT_FOOT_INDEX, RIGHT_FOOT_INDEX = 31, 32

#: landmark indices of the person's left/right side, for mirroring.
LEFT_RIGHT_PAIRS = (
    (1, 4), (2, 5), (3, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16), (17, 18), (19, 20), (21, 22),
    (23, 24), (25, 26), (27, 28), (29, 30), (31, 32),
)


@dataclass
class PoseFrame:
    """What a backend found in one frame.

    Attributes:
        landmarks: ``(33, 4)`` (x, y, z, visibility) in pixels of the frame, or ``None`` (mediapipe backend).
        mask: ``(h, w)`` person probability, float in ``[0, 1]`` or uint8 in ``[0, 255]`` (how backends store
            it); may be stored at a lower resolution than the frame (it covers the whole frame either way).
            ``None`` when no person was found.
        parts: ``(h, w)`` uint8 DensePose part index 0..24 covering the whole frame (torchscript and
            detectron2 backends), else ``None``.
    """

    landmarks: Optional[np.ndarray] = None
    mask: Optional[np.ndarray] = None
    parts: Optional[np.ndarray] = None

    @property
    def found(self) -> bool:
        return self.landmarks is not None or self.parts is not None


def mask_storage_size(frame_hw) -> tuple:
    """``(h, w)`` at which masks of a ``frame_hw`` frame are stored (longer side <= MASK_MAX_SIDE)."""
    h, w = frame_hw
    f = min(1.0, MASK_MAX_SIDE / max(h, w))
    return max(1, round(h * f)), max(1, round(w * f))


def mirror_landmarks(landmarks: np.ndarray, width: float) -> np.ndarray:
    """Landmarks of the horizontally mirrored image (x -> width - x, left/right indices swapped)."""
    out = np.array(landmarks, dtype=np.float64, copy=True)
    out[..., 0] = width - out[..., 0]
    for a, b in LEFT_RIGHT_PAIRS:
        out[..., [a, b], :] = out[..., [b, a], :]
    return out


def mask_probability(mask: np.ndarray) -> np.ndarray:
    """A person mask as float32 in ``[0, 1]`` (uint8 masks hold probability x 255)."""
    mask = np.asarray(mask)
    if mask.dtype == np.uint8:
        return mask.astype(np.float32) / 255.0
    return mask.astype(np.float32)
