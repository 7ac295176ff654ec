"""Helpers for the motion-extraction tests: a hand-made skeleton, and the mediapipe skip rule.

(A uniquely named module rather than conftest.py, so that `from ... import` cannot pick up another
folder's conftest.)
"""

import cv2
import numpy as np
import pytest

from magicanimate.extraction import landmarks as L
from magicanimate.extraction.backends import mediapipe_available
from magicanimate.extraction.landmarks import PoseFrame

MEDIAPIPE_REASON = "mediapipe not installed (pose extra; CI runs these in the pose env)"
requires_mediapipe = pytest.mark.skipif(not mediapipe_available(), reason=MEDIAPIPE_REASON)

# A person facing the camera in a 64x64 frame, arms slightly out: (x, y) per landmark. The person's left
# side appears on the image's right.
_POINTS = {
    L.NOSE: (32, 9), 1: (33, 7), L.LEFT_EYE: (34, 7), 3: (35, 7), 4: (31, 7), L.RIGHT_EYE: (30, 7), 6: (29, 7),
    L.LEFT_EAR: (36, 8), L.RIGHT_EAR: (28, 8), L.MOUTH_LEFT: (33.5, 11), L.MOUTH_RIGHT: (30.5, 11),
    L.LEFT_SHOULDER: (40, 16), L.RIGHT_SHOULDER: (24, 16), L.LEFT_ELBOW: (46, 26), L.RIGHT_ELBOW: (18, 26),
    L.LEFT_WRIST: (49, 35), L.RIGHT_WRIST: (15, 35), L.LEFT_PINKY: (51, 38), L.RIGHT_PINKY: (13, 38),
    L.LEFT_INDEX: (50, 39), L.RIGHT_INDEX: (14, 39), L.LEFT_THUMB: (48, 38), L.RIGHT_THUMB: (16, 38),
    L.LEFT_HIP: (37, 36), L.RIGHT_HIP: (27, 36), L.LEFT_KNEE: (38, 47), L.RIGHT_KNEE: (26, 47),
    L.LEFT_ANKLE: (38, 57), L.RIGHT_ANKLE: (26, 57), L.LEFT_HEEL: (37, 59), L.RIGHT_HEEL: (27, 59),
    L.LEFT_FOOT_INDEX: (40, 61), L.RIGHT_FOOT_INDEX: (24, 61),
}


def skeleton(scale: float = 1.0, shift=(0.0, 0.0)) -> np.ndarray:
    """``(33, 4)`` landmarks of the test person (z = 0, fully visible), scaled and shifted."""
    lm = np.zeros((L.NUM_LANDMARKS, 4))
    for i, (x, y) in _POINTS.items():
        lm[i] = (x * scale + shift[0], y * scale + shift[1], 0.0, 1.0)
    return lm


def body_mask(lm: np.ndarray, shape=(64, 64)) -> np.ndarray:
    """A person silhouette drawn around the landmarks: torso polygon, thick limbs, round head."""
    unit = np.linalg.norm((lm[11, :2] + lm[12, :2]) / 2 - (lm[23, :2] + lm[24, :2]) / 2)
    m = np.zeros(shape, np.uint8)
    pt = lambda i: tuple(int(round(v)) for v in lm[i, :2])  # noqa: E731
    cv2.fillPoly(m, [np.array([pt(11), pt(12), pt(24), pt(23)], np.int32)], 1)
    for a, b, r in [(11, 13, .12), (13, 15, .1), (12, 14, .12), (14, 16, .1), (15, 19, .08), (16, 20, .08),
                    (23, 25, .18), (25, 27, .14), (24, 26, .18), (26, 28, .14), (29, 31, .07), (30, 32, .07)]:
        cv2.line(m, pt(a), pt(b), 1, max(1, int(round(2 * r * unit))))
    head = (lm[7, :2] + lm[8, :2] + 2 * lm[0, :2]) / 4
    cv2.circle(m, tuple(int(round(v)) for v in head), int(round(0.3 * unit)), 1, -1)
    neck = (lm[11, :2] + lm[12, :2]) / 2
    cv2.line(m, tuple(int(round(v)) for v in head), tuple(int(round(v)) for v in neck), 1,
             max(1, int(round(0.2 * unit))))
    return m.astype(bool)


def pose_frame(lm: np.ndarray, shape=(64, 64)) -> PoseFrame:
    """A detection as the mediapipe backend stores it (mask: uint8 probability x 255)."""
    return PoseFrame(landmarks=lm, mask=np.where(body_mask(lm, shape), 255, 0).astype(np.uint8))
