"""DensePose conditioning images in MagicAnimate's encoding.

A control frame is DensePose's fine-segmentation part index ``I`` (0 = background, 1..24 = body parts) drawn
through OpenCV's VIRIDIS colormap at level ``floor(I * 255 / 24)``; the background is therefore
viridis(0) = RGB(68, 1, 84), dark purple, not black. No UV channels. This module is the one place that
holds the palette, the part table and the left/right flip permutation.

Encoded video shifts the colours a little (H.264 + yuv420p: background comes back near (65, 0, 81), and
part borders blur through chroma subsampling), so the inverse map picks the nearest palette colour and
the validator counts pixels *near* a palette colour. PNG round-trips exactly.
"""

from __future__ import annotations

from typing import Optional, Sequence

import cv2
import numpy as np

from magicanimate.errors import InputError

NUM_PARTS = 24
LEVELS = [i * 255 // NUM_PARTS for i in range(NUM_PARTS + 1)]


def _viridis_palette() -> np.ndarray:
    levels = np.asarray(LEVELS, dtype=np.uint8).reshape(-1, 1)
    bgr = cv2.applyColorMap(levels, cv2.COLORMAP_VIRIDIS).reshape(-1, 3)
    return np.ascontiguousarray(bgr[:, ::-1])


#: ``(25, 3)`` uint8 RGB: row ``i`` is the colour of part index ``i`` (row 0 = background (68, 1, 84)).
PALETTE: np.ndarray = _viridis_palette()
PALETTE.setflags(write=False)
BACKGROUND_RGB = tuple(int(c) for c in PALETTE[0])

# DensePose's commonly quoted part table. Left/right are the person's own. Pairs are two surfaces of one
# limb segment (listed here as back, front), except 23/24, the right and left halves of the head.
# Published tables disagree on details (e.g. which foot is 5, which surface comes first): correct them here.
PART_NAMES = (
    "background",
    "torso_back", "torso_front",
    "right_hand", "left_hand",
    "left_foot", "right_foot",
    "right_upper_leg_back", "left_upper_leg_back",
    "right_upper_leg_front", "left_upper_leg_front",
    "right_lower_leg_back", "left_lower_leg_back",
    "right_lower_leg_front", "left_lower_leg_front",
    "left_upper_arm_front", "right_upper_arm_front",
    "left_upper_arm_back", "right_upper_arm_back",
    "left_lower_arm_front", "right_lower_arm_front",
    "left_lower_arm_back", "right_lower_arm_back",
    "head_right", "head_left",
)

#: detectron2's label symmetry list: the part index a pixel takes when the image is mirrored horizontally.
FLIP_PERMUTATION = (0, 1, 2, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15, 18, 17, 20, 19, 22, 21, 24, 23)

#: default largest RGB (Euclidean) distance at which a pixel still counts as a palette colour. H.264 moves
#: flat regions by ~5; part borders blur further, and neighbouring palette levels are ~10-30 apart.
DEFAULT_TOLERANCE = 20.0
#: default share of near-palette pixels for a video to pass as a DensePose rendering: renders score ~0.9-1
#: even at 64 px after H.264, natural videos ~0-0.03.
DEFAULT_MIN_FRACTION = 0.5


def render_parts(part_map: np.ndarray) -> np.ndarray:
    """Render a part-index map ``(..., H, W)`` of ints 0..24 to MagicAnimate's ``(..., H, W, 3)`` uint8 RGB."""
    part_map = np.asarray(part_map)
    if not np.issubdtype(part_map.dtype, np.integer):
        raise ValueError(f"part_map must hold integers, got {part_map.dtype}")
    if part_map.size and (part_map.min() < 0 or part_map.max() > NUM_PARTS):
        raise ValueError(f"part indices must lie in 0..{NUM_PARTS}, got {part_map.min()}..{part_map.max()}")
    return PALETTE[part_map]


def _palette_distances(image: np.ndarray, chunk_pixels: int = 1 << 20):
    """Nearest palette index and its squared distance for each pixel of ``(..., 3)`` uint8.

    Works on the distinct colours only (renders have few; even encoded video has far fewer colours than
    pixels), with ``|x|^2 - 2 x.p + |p|^2`` as one matrix product; all terms are integers below 2^24, so
    float32 arithmetic is exact.
    """
    flat = np.asarray(image).reshape(-1, 3)
    packed = (flat[:, 0].astype(np.int32) << 16) | (flat[:, 1].astype(np.int32) << 8) | flat[:, 2]
    colours, inverse = np.unique(packed, return_inverse=True)
    rgb = np.stack([(colours >> 16) & 255, (colours >> 8) & 255, colours & 255], axis=1).astype(np.float32)
    pal = PALETTE.astype(np.float32)
    pal_sq = (pal ** 2).sum(1)
    idx = np.empty(len(colours), dtype=np.int64)
    dist2 = np.empty(len(colours), dtype=np.int32)
    for start in range(0, len(colours), chunk_pixels):  # bounded memory
        block = rgb[start:start + chunk_pixels]
        d = (block ** 2).sum(1, keepdims=True) - 2 * block @ pal.T + pal_sq
        best = d.argmin(1)
        idx[start:start + chunk_pixels] = best
        dist2[start:start + chunk_pixels] = np.rint(d[np.arange(len(best)), best]).astype(np.int32)
    shape = image.shape[:-1]
    return idx[inverse].reshape(shape), dist2[inverse].reshape(shape)


def _check_rgb(image: np.ndarray, name: str) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim < 3 or image.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (..., H, W, 3), got {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8, got {image.dtype}")
    return image


def parts_from_rgb(image: np.ndarray) -> np.ndarray:
    """Inverse of :func:`render_parts`: the index of the nearest palette colour, ``(..., H, W)`` int64."""
    image = _check_rgb(image, "image")
    return _palette_distances(image)[0]


def flip_parts(part_map: np.ndarray) -> np.ndarray:
    """Mirror a part-index map ``(..., H, W)`` horizontally, swapping left and right part labels."""
    part_map = np.asarray(part_map)
    return np.asarray(FLIP_PERMUTATION, dtype=part_map.dtype)[part_map[..., ::-1]]


def densepose_fraction(frames: np.ndarray, *, tolerance: float = DEFAULT_TOLERANCE) -> float:
    """Share of pixels of ``(..., H, W, 3)`` uint8 frames within ``tolerance`` (RGB distance) of a palette colour."""
    frames = _check_rgb(frames, "frames")
    if frames.size == 0:
        return 0.0
    _, dist2 = _palette_distances(frames)
    return float((dist2 <= tolerance ** 2).mean())


def validate_densepose_video(
    frames: np.ndarray,
    *,
    source: str,
    min_fraction: float = DEFAULT_MIN_FRACTION,
    tolerance: float = DEFAULT_TOLERANCE,
    max_frames: Optional[int] = 16,
    max_side: int = 256,
) -> None:
    """Raise :class:`InputError` unless ``frames`` ``(F, H, W, 3)`` look like a DensePose rendering.

    ``source`` names the file in the message. At most ``max_frames`` frames, spread evenly, are checked
    (``None`` checks all), on a pixel grid strided down to at most ``max_side`` per side (speed: the
    share of palette pixels does not need every pixel).
    """
    frames = _check_rgb(frames, "frames")
    if frames.ndim == 3:
        frames = frames[None]
    if frames.shape[0] == 0:
        raise InputError(f"{source}: the DensePose video has zero frames")
    if max_frames is not None and frames.shape[0] > max_frames:
        frames = frames[np.linspace(0, frames.shape[0] - 1, max_frames).round().astype(int)]
    step = max(1, -(-max(frames.shape[1:3]) // max_side))
    frames = frames[:, ::step, ::step]
    fraction = densepose_fraction(frames, tolerance=tolerance)
    if fraction < min_fraction:
        raise InputError(
            f"{source}: does not look like a DensePose rendering (only {fraction:.0%} of pixels are "
            f"DensePose palette colours, {min_fraction:.0%} expected). The motion input must be a DensePose "
            f"part-map video in MagicAnimate's colours (viridis levels, background RGB{BACKGROUND_RGB}), "
            f"not a raw RGB video; make one from your video with scripts/extract_densepose.py.")


def nearest_palette_fraction_per_frame(frames: np.ndarray, *, tolerance: float = DEFAULT_TOLERANCE) -> np.ndarray:
    """Per-frame share of near-palette pixels, ``(F,)`` float: helps locate bad frames in a long video."""
    frames = _check_rgb(frames, "frames")
    _, dist2 = _palette_distances(frames)
    return (dist2 <= tolerance ** 2).reshape(frames.shape[0], -1).mean(1)


__all__: Sequence[str] = (
    "NUM_PARTS", "LEVELS", "PALETTE", "BACKGROUND_RGB", "PART_NAMES", "FLIP_PERMUTATION",
    "DEFAULT_TOLERANCE", "DEFAULT_MIN_FRACTION", "render_parts", "parts_from_rgb", "flip_parts",
    "densepose_fraction", "validate_densepose_video", "nearest_palette_fraction_per_frame",
)
