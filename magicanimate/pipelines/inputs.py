"""Fitting a reference image and a DensePose video to one frame size, without squashing either.

- ``resize``: stretch to the target size.
- ``pad`` (default): scale to fit inside, then pad: the reference with its edge pixels (as the authors
  advise), DensePose frames with the background colour (edge-replicating a part map would smear body
  parts to the border).
- ``crop``: scale to cover, then crop the centre.

DensePose frames are resized with nearest-neighbour so every pixel keeps an exact palette colour.
The model needs sizes divisible by its total stride (64 for SD1.5's layout); :func:`pad_to_multiple` pads
an output-size frame to that, and :class:`Box` crops the result back.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from magicanimate.data.densepose import BACKGROUND_RGB
from magicanimate.errors import ConfigError


@dataclass(frozen=True)
class Box:
    """Where the output-size frame sits inside the padded processing frame."""

    top: int
    left: int
    height: int
    width: int

    def crop(self, frames: np.ndarray) -> np.ndarray:
        return frames[..., self.top:self.top + self.height, self.left:self.left + self.width, :]


def output_size(motion_hw: tuple[int, int], size: int, width=None, height=None) -> tuple[int, int]:
    """(H, W) of the result: explicit width/height, else the motion video's aspect with its longer side
    scaled to ``size``, both rounded to multiples of 8."""
    if width is not None and height is not None:
        return int(height), int(width)
    mh, mw = motion_hw
    scale = size / max(mh, mw)
    return max(8, int(round(mh * scale / 8)) * 8), max(8, int(round(mw * scale / 8)) * 8)


def _resize(image: np.ndarray, hw: tuple[int, int], nearest: bool) -> np.ndarray:
    h, w = hw
    if image.shape[:2] == (h, w):
        return image
    if nearest:
        interp = cv2.INTER_NEAREST
    else:
        interp = cv2.INTER_AREA if h * w < image.shape[0] * image.shape[1] else cv2.INTER_CUBIC
    return cv2.resize(image, (w, h), interpolation=interp)


def _pad(image: np.ndarray, top: int, bottom: int, left: int, right: int, fill) -> np.ndarray:
    if not (top or bottom or left or right):
        return image
    if fill == "edge":
        return cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_REPLICATE)
    return cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=tuple(int(c) for c in fill))


def fit_frame(image: np.ndarray, hw: tuple[int, int], mode: str, *, densepose: bool) -> np.ndarray:
    """Fit one (h, w, 3) uint8 frame to ``hw`` = (H, W) by ``mode`` (pad | crop | resize)."""
    H, W = hw
    h, w = image.shape[:2]
    if mode == "resize":
        return _resize(image, hw, densepose)
    if mode == "pad":
        scale = min(H / h, W / w)
    elif mode == "crop":
        scale = max(H / h, W / w)
    else:
        raise ConfigError(f"fit must be pad, crop or resize, got {mode!r}")
    nh = min(H, max(1, int(round(h * scale)))) if mode == "pad" else max(H, int(round(h * scale)))
    nw = min(W, max(1, int(round(w * scale)))) if mode == "pad" else max(W, int(round(w * scale)))
    scaled = _resize(image, (nh, nw), densepose)
    if mode == "crop":
        top, left = (nh - H) // 2, (nw - W) // 2
        return np.ascontiguousarray(scaled[top:top + H, left:left + W])
    top, left = (H - nh) // 2, (W - nw) // 2
    fill = BACKGROUND_RGB if densepose else "edge"
    return _pad(scaled, top, H - nh - top, left, W - nw - left, fill)


def fit_frames(frames: np.ndarray, hw: tuple[int, int], mode: str, *, densepose: bool) -> np.ndarray:
    if frames.shape[1:3] == tuple(hw):
        return frames
    return np.stack([fit_frame(f, hw, mode, densepose=densepose) for f in frames])


def pad_to_multiple(hw: tuple[int, int], multiple: int) -> tuple[tuple[int, int], Box]:
    """Processing size (H', W') >= ``hw`` divisible by ``multiple``, and the box of ``hw`` inside it."""
    H, W = hw
    PH, PW = -(-H // multiple) * multiple, -(-W // multiple) * multiple
    return (PH, PW), Box((PH - H) // 2, (PW - W) // 2, H, W)


def pad_into(frames: np.ndarray, box: Box, padded_hw: tuple[int, int], *, densepose: bool) -> np.ndarray:
    """Place (.., H, W, 3) frames into the padded size (edge pixels for images, background for DensePose)."""
    PH, PW = padded_hw
    pads = (box.top, PH - box.height - box.top, box.left, PW - box.width - box.left)
    if not any(pads):
        return frames
    fill = BACKGROUND_RGB if densepose else "edge"
    if frames.ndim == 3:
        return _pad(frames, *pads, fill)
    return np.stack([_pad(f, *pads, fill) for f in frames])
