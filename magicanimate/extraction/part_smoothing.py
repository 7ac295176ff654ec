"""Temporal smoothing of DensePose part maps (torchscript and detectron2 backends), in frame coordinates.

DensePose labels each frame on its own, so part borders flicker. Per pixel, over a short centred window of
frames with Gaussian weights (the window of the person masks, :func:`smoothing.smoothed_mask`):

* whether the pixel is person comes from the averaged person mask (> 0.5), as for every backend;
* which part: a weighted vote, the part with the largest summed weight among the window's frames where the
  pixel was a part (one-hot evidence, then argmax).

The window is symmetric and its centre frame weighs most, so a border sweeping monotonically across a pixel
switches the majority exactly in the frame where it crossed: moving parts are not shifted or smeared. What the
vote removes are labels lasting less than about half the window's weight: flicker.

A fast limb that covers a pixel in a single frame looks like flicker to the vote. Such changes are undone for
a part region (one connected piece of one label) that is thicker than :data:`FLICKER_MAX_WIDTH` (not a
sliver along a border), mostly new in this frame (it moved by more than half its size since the previous
or until the next frame, where a jittering border leaves most of the part in place) and found close by in a
neighbouring frame (it moved, rather than being mislabelled). A part swapped for one frame (front/back
surfaces of a limb, left/right) or one that dropped out for a frame is still smoothed.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

from magicanimate.extraction.landmarks import mask_probability
from magicanimate.extraction.smoothing import gaussian_weights, smoothed_mask

NUM_LABELS = 25
#: changes at most this many pixels wide (at the resolution maps are stored, <= 256 px) count as flicker.
FLICKER_MAX_WIDTH = 2
#: how far (fraction of the map's longer side) a limb may move per frame and still count as motion.
MOTION_RADIUS = 0.1


def fill_parts(labels: np.ndarray, person: np.ndarray) -> np.ndarray:
    """Labels inside ``person`` only; person pixels the labels miss take the nearest label (smoothed masks)."""
    out = np.where(person, labels, 0).astype(np.uint8)
    holes = person & (out == 0)
    if holes.any() and (labels > 0).any():
        # distanceTransformWithLabels: for every pixel, the label of its nearest zero pixel.
        src = np.where(labels > 0, 0, 255).astype(np.uint8)
        _, nearest = cv2.distanceTransformWithLabels(src, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
        ys, xs = np.nonzero(labels > 0)
        lookup = np.zeros(nearest.max() + 1, np.uint8)
        lookup[nearest[ys, xs]] = labels[ys, xs]
        out[holes] = lookup[nearest[holes]]
    return out


def _window(n: int, index: int, sigma: float, valid: Optional[np.ndarray]):
    """``(frame, weight)`` pairs of the centred window (edges: nearest frame repeated; invalid skipped)."""
    weights = gaussian_weights(sigma)
    radius = len(weights) // 2
    for w, offset in zip(weights, range(-radius, radius + 1)):
        j = min(max(index + offset, 0), n - 1)
        if valid is None or valid[j]:
            yield j, w


def vote_parts(label_maps: Sequence[np.ndarray], index: int, sigma: float,
               valid: Optional[np.ndarray] = None) -> np.ndarray:
    """The part (1..24) with the largest summed window weight at each pixel; 0 where no frame had a part."""
    shape = np.shape(label_maps[index])
    votes = np.zeros((NUM_LABELS, shape[0] * shape[1]), np.float64)
    pixels = np.arange(shape[0] * shape[1])
    for j, w in _window(len(label_maps), index, sigma, valid):
        votes[np.asarray(label_maps[j], np.intp).ravel(), pixels] += w  # one label per pixel: no repeats
    votes[0] = 0.0
    best = votes.argmax(0)
    return np.where(votes.max(0) > 0, best, 0).astype(np.uint8).reshape(shape)


def _disc(diameter: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (diameter, diameter))


def motion_support(raw: np.ndarray, smoothed: np.ndarray, neighbours: Sequence[np.ndarray],
                   frames_apart: int = 1) -> np.ndarray:
    """Pixels whose smoothing should be undone because a part moved fast (see the module docstring).

    The vote's changes to one raw part region (a connected piece of one label) are undone when the region is
    thicker than FLICKER_MAX_WIDTH somewhere, mostly new in this frame (under half of it had that label in
    the neighbour before or in the one after, ``frames_apart`` frames away) and its label lies within
    MOTION_RADIUS per frame apart of it in a neighbour.
    """
    changed = (raw != smoothed) & (raw > 0)
    restore = np.zeros(raw.shape, bool)
    if not changed.any() or not neighbours:
        return restore
    reach = max(1, round(MOTION_RADIUS * frames_apart * max(raw.shape)))
    core = _disc(FLICKER_MAX_WIDTH + 1)
    for label in np.unique(raw[changed]):
        before = [other == label for other in neighbours]
        _, pieces = cv2.connectedComponents((raw == label).astype(np.uint8), connectivity=8)
        for piece in np.unique(pieces[changed & (raw == label)]):
            region = pieces == piece
            if not cv2.erode(region.astype(np.uint8), core).any():
                continue  # a sliver: border flicker
            kept = min(int((b & region).sum()) for b in before)  # how much of it stayed in place
            if kept < 0.5 * region.sum() and _near(region, np.logical_or.reduce(before), reach):
                restore |= region & changed
    return restore


def _near(region: np.ndarray, other: np.ndarray, radius: int) -> bool:
    """Whether ``other`` has a pixel within ``radius`` of ``region`` (looked at around the region only)."""
    ys, xs = np.nonzero(region)
    y0, x0 = max(0, ys.min() - radius), max(0, xs.min() - radius)
    y1, x1 = ys.max() + radius + 1, xs.max() + radius + 1
    grown = cv2.dilate(region[y0:y1, x0:x1].astype(np.uint8), _disc(2 * radius + 1))
    return bool((grown.astype(bool) & other[y0:y1, x0:x1]).any())


def smooth_part_map(label_maps: Sequence[np.ndarray], masks: Sequence[np.ndarray], index: int, sigma: float,
                    valid: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Smoothed ``(labels, person probability)`` of frame ``index``, both at the stored maps' resolution.

    Args:
        label_maps: per frame, a part map (uint8 0..24) or ``None`` where ``valid`` is False.
        masks: per frame, the person mask (uint8 x 255 or float) at the same resolution.
        sigma: Gaussian window in frames (<= 0: the frame itself).
        valid: per frame, whether it has a detection (others are left out of every window).
    """
    raw_soft = mask_probability(masks[index])
    raw = fill_parts(np.asarray(label_maps[index]), raw_soft > 0.5)
    if sigma <= 0 or len(label_maps) < 2:
        return raw, raw_soft
    # smoothed_mask keeps the masks' range: uint8 masks hold probability x 255
    scale = 255.0 if np.asarray(masks[index]).dtype == np.uint8 else 1.0
    soft = smoothed_mask(masks, index, sigma, valid=valid) / scale
    smoothed = fill_parts(vote_parts(label_maps, index, sigma, valid), soft > 0.5)
    # the vote removes events shorter than about sigma frames: look for motion that far before and after
    step = max(1, int(round(sigma)))
    neighbours = [np.asarray(label_maps[j]) for j in (index - step, index + step)
                  if 0 <= j < len(label_maps) and (valid is None or valid[j])]
    restore = motion_support(raw, smoothed, neighbours, frames_apart=step)
    return np.where(restore, raw, smoothed), np.where(restore, raw_soft, soft).astype(np.float32)
