"""DensePose R-CNN instances -> the chosen person's part map, shared by the torchscript and detectron2 backends.

Both backends give, per frame, K detected people as boxes (xyxy, input pixels), scores and DensePose chart
logits: coarse segmentation (K, 2, S, S: background / person) and fine segmentation (K, 25, S, S: background
and the 24 parts) over each box. Part labels follow detectron2's DensePose result extractor, which is what
DensePose renderings (and so MagicAnimate's training data) were made with: both logit maps are resized
bilinearly (``align_corners=False``) to the box's integer size ``(max(int(x2 - x1), 1), max(int(y2 - y1), 1))``,
the label is ``argmax(fine)`` where ``argmax(coarse)`` says person and 0 elsewhere, and the patch is pasted at
the box's integer top-left corner.

Only the chosen person (:class:`~magicanimate.extraction.tracking.PersonTracker`) is drawn: other people never
reach the control video, and where they overlap the chosen person, its own coarse mask decides.

torch is imported inside the functions that need it, so the extraction package imports without it.
"""

from __future__ import annotations

from typing import Mapping, Optional, Tuple

import cv2
import numpy as np

from magicanimate.extraction.landmarks import PoseFrame, mask_storage_size
from magicanimate.extraction.tracking import PersonTracker

BOXES, SCORES = "pred_boxes", "scores"
COARSE, FINE = "pred_densepose_coarse_segm", "pred_densepose_fine_segm"
#: what the part map needs from a backend's per-frame output (the DensePose-TorchScript names).
REQUIRED_KEYS = (BOXES, SCORES, COARSE, FINE)
NUM_FINE_CHANNELS = 25


def box_patch_geometry(box) -> Tuple[int, int, int, int]:
    """``(x0, y0, w, h)`` of the label patch of an xyxy ``box``, computed as detectron2 does (float32
    differences, truncation toward zero)."""
    x1, y1, x2, y2 = (np.float32(v) for v in box)
    return int(x1), int(y1), max(int(x2 - x1), 1), max(int(y2 - y1), 1)


def instance_labels(fine, coarse, box) -> np.ndarray:
    """``(h, w)`` uint8 part labels of one instance over its box (see the module docstring).

    Args:
        fine: ``(25, S, S)`` fine-segmentation logits (a torch tensor, any device and float dtype).
        coarse: ``(C, S', S')`` coarse-segmentation logits, channel 0 = background.
        box: ``(x1, y1, x2, y2)`` in frame pixels.
    """
    import torch
    from torch.nn import functional as F

    _, _, w, h = box_patch_geometry(box)

    def resized(logits):
        # channels-last: the resize and the argmax over parts run along contiguous memory (~1.5x faster;
        # values equal the channels-first resize up to float rounding)
        x = logits[None].float().contiguous(memory_format=torch.channels_last)
        return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)[0].permute(1, 2, 0)

    with torch.no_grad():
        fine_up, coarse_up = resized(fine), resized(coarse)
        # argmax(coarse) > 0 <=> some person channel beats background (argmax takes the first of ties)
        person = coarse_up[..., 1:].amax(dim=-1) > coarse_up[..., 0]
        labels = torch.where(person, fine_up.argmax(dim=-1), 0)
    return labels.to("cpu", torch.uint8).numpy()


def paste_labels(patch: np.ndarray, x0: int, y0: int, frame_hw) -> np.ndarray:
    """A ``frame_hw`` uint8 map, 0 everywhere except ``patch`` with its top-left corner at ``(x0, y0)``
    (clipped to the frame)."""
    h, w = frame_hw
    out = np.zeros((h, w), np.uint8)
    xs, ys = max(0, x0), max(0, y0)
    xe, ye = min(w, x0 + patch.shape[1]), min(h, y0 + patch.shape[0])
    if xe > xs and ye > ys:
        out[ys:ye, xs:xe] = patch[ys - y0:ye - y0, xs - x0:xe - x0]
    return out


def instance_part_map(instances: Mapping, index: int, frame_hw) -> np.ndarray:
    """Instances -> part map: the ``frame_hw`` uint8 part map of instance ``index`` alone."""
    box = _as_numpy(instances[BOXES])[index]
    patch = instance_labels(instances[FINE][index], instances[COARSE][index], box)
    x0, y0, _, _ = box_patch_geometry(box)
    return paste_labels(patch, x0, y0, frame_hw)


def pose_from_parts(parts: np.ndarray) -> PoseFrame:
    """A full-frame part map as a :class:`PoseFrame` (part map and person mask at storage resolution)."""
    if not parts.any():
        return PoseFrame()
    sh, sw = mask_storage_size(parts.shape)
    small = parts if (sh, sw) == parts.shape else cv2.resize(parts, (sw, sh), interpolation=cv2.INTER_NEAREST)
    return PoseFrame(mask=np.where(small > 0, 255, 0).astype(np.uint8), parts=small)


def _as_numpy(values) -> np.ndarray:
    if hasattr(values, "detach"):  # a torch tensor, possibly on a GPU
        values = values.detach().to("cpu").float().numpy()
    return np.asarray(values, dtype=np.float32)


class InstanceFollower:
    """Per frame: DensePose instances -> the chosen person's :class:`PoseFrame`.

    Args:
        person: ``None`` to choose the main person automatically, or K to take the K-th person from the
            left (see :class:`PersonTracker`).
    """

    def __init__(self, person: Optional[int] = None):
        self.tracker = PersonTracker(person)

    def __call__(self, instances: Optional[Mapping], frame_hw) -> PoseFrame:
        """``instances``: this frame's detections (``None``: nothing detected)."""
        if instances is None:
            self.tracker(np.zeros((0, 4)), np.zeros(0))  # counts the frame
            return PoseFrame()
        boxes = _as_numpy(instances[BOXES]).reshape(-1, 4)
        scores = _as_numpy(instances[SCORES]).reshape(-1)
        chosen = self.tracker(boxes, scores)
        if chosen is None:
            return PoseFrame()
        return pose_from_parts(instance_part_map(instances, chosen, frame_hw))
