"""Cleaning part maps decoded from lossy video or images.

Neighbouring DensePose palette levels are only 10-20 RGB units apart (the legs' are closest), and H.264
with 4:2:0 chroma moves colours by several units, most along part borders: a decoded map has scattered
pixels of the neighbouring level, which for the legs is the other leg. Joints and widths measured on such
a map go astray, so decoded maps are cleaned first: a majority vote over a small window (about the
codec's chroma block), then every segment keeps only its large connected pieces, and the pixels it gives
up take the label of the nearest pixel that stays.
"""

from __future__ import annotations

import cv2
import numpy as np

from magicanimate.data.densepose import NUM_PARTS, PALETTE
from magicanimate.extraction.body_parts import SEGMENT_NAMES, segment_map
from magicanimate.extraction.part_warp import nearest_labels

#: side of the majority-vote window, pixels.
VOTE_WINDOW = 5
#: a segment's connected piece smaller than this share of its largest piece is taken as noise.
MIN_PIECE = 0.25


def is_exact_rendering(image: np.ndarray) -> bool:
    """Whether every pixel of an ``(..., 3)`` uint8 image is exactly a palette colour (lossless)."""
    flat = np.asarray(image).reshape(-1, 3).astype(np.int32)
    packed = (flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2]
    pal = PALETTE.astype(np.int32)
    return bool(np.isin(packed, (pal[:, 0] << 16) | (pal[:, 1] << 8) | pal[:, 2]).all())


def majority(part_map: np.ndarray, window: int = VOTE_WINDOW) -> np.ndarray:
    """Each pixel's most frequent label within a ``window`` x ``window`` neighbourhood."""
    labels = np.unique(part_map)
    votes = np.stack([cv2.boxFilter((part_map == l).astype(np.float32), -1, (window, window), normalize=False,
                                    borderType=cv2.BORDER_REPLICATE) for l in labels])
    return labels[votes.argmax(0)].astype(part_map.dtype)


def drop_small_pieces(part_map: np.ndarray, min_piece: float = MIN_PIECE) -> np.ndarray:
    """Relabel every segment's pieces smaller than ``min_piece`` of its largest with nearby labels."""
    segments = segment_map(part_map)
    keep = segments > 0
    for index in range(1, len(SEGMENT_NAMES) + 1):
        mask = (segments == index).astype(np.uint8)
        n, pieces, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        if n <= 2:
            continue
        areas = stats[1:, cv2.CC_STAT_AREA]
        small = np.nonzero(areas < min_piece * areas.max())[0] + 1
        keep &= ~np.isin(pieces, small)
    person = segments > 0
    if keep.all() or not keep.any():
        return part_map
    out = np.where(keep, part_map, 0).astype(part_map.dtype)
    fill = person & ~keep
    out[fill] = nearest_labels(part_map, keep)[fill]
    return out


def clean_part_map(part_map: np.ndarray) -> np.ndarray:
    """A decoded ``(H, W)`` part map with codec noise voted away and stray pieces relabelled."""
    part_map = np.asarray(part_map)
    if part_map.size == 0 or part_map.max() > NUM_PARTS:
        raise ValueError("part_map must hold part indices 0..24")
    return drop_small_pieces(majority(part_map))
