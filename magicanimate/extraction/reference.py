"""The reference person's DensePose part map, placed in the control video's frame as animate.py places the
reference image (``--fit pad``, its default: scaled to fit inside, centred, padded with background).

Two sources: a DensePose rendering of the reference (e.g. made by the same tool as the motion video), or
the reference photo itself, run through a pose backend of :mod:`magicanimate.extraction.backends` the way
``scripts/extract_densepose.py`` runs it on video frames.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Optional, Tuple, Union

import cv2
import numpy as np

from magicanimate.data.densepose import parts_from_rgb, validate_densepose_video
from magicanimate.errors import InputError
from magicanimate.extraction import framing
from magicanimate.extraction.landmarks import PoseFrame
from magicanimate.extraction.part_cleanup import clean_part_map, is_exact_rendering
from magicanimate.extraction.retarget import reference_joints

PathLike = Union[str, Path]


def place_part_map(part_map: np.ndarray, hw: Tuple[int, int]) -> np.ndarray:
    """Fit a ``(h, w)`` part map into ``hw`` = (H, W) like animate.py's ``pad`` fit of the reference image:
    the same scale (``min(H/h, W/w)``, sizes rounded), nearest-neighbour labels, centred, background around."""
    H, W = hw
    h, w = part_map.shape
    scale = min(H / h, W / w)
    nh, nw = min(H, max(1, int(round(h * scale)))), min(W, max(1, int(round(w * scale))))
    scaled = part_map if (nh, nw) == (h, w) else cv2.resize(
        part_map.astype(np.uint8), (nw, nh), interpolation=cv2.INTER_NEAREST)
    out = np.zeros((H, W), np.uint8)
    top, left = (H - nh) // 2, (W - nw) // 2
    out[top:top + nh, left:left + nw] = scaled
    return out


def decode_part_map(image: np.ndarray) -> np.ndarray:
    """``(H, W)`` uint8 part map of a DensePose rendering; lossy ones (video frames, JPEG) are cleaned of
    codec noise (:mod:`magicanimate.extraction.part_cleanup`), exact ones are read as they are."""
    part_map = parts_from_rgb(image).astype(np.uint8)
    return part_map if is_exact_rendering(image) else clean_part_map(part_map)


def read_reference_map(path: PathLike, hw: Tuple[int, int]) -> np.ndarray:
    """The part map in a DensePose image file (MagicAnimate's colours), placed into ``hw``; InputError if
    it is not a DensePose rendering or shows no body to retarget to."""
    from magicanimate.media import read_image

    image = read_image(path)
    validate_densepose_video(image[None], source=f"{path} (reference DensePose map)")
    placed = place_part_map(decode_part_map(image), hw)
    reference_joints(placed, str(path))  # a map without a body to measure fails here, before any work
    return placed


def photo_part_map(image: np.ndarray, estimator: Callable[[np.ndarray], PoseFrame], *,
                   source: str) -> np.ndarray:
    """``(h, w)`` part map of the person in an RGB photo, from a pose backend (single-image mode)."""
    from magicanimate.extraction.extract import plan_motion

    pose = estimator(image)
    if not pose.found:
        raise InputError(f"{source}: no person found in the reference image; retargeting needs an image of "
                         f"the person to animate, whole body in view")
    h, w = image.shape[:2]
    side = max(h, w) + max(h, w) % 2
    plan = plan_motion([pose], (h, w), 25.0, size=max(side, 16), fit="pad", smooth=0.0, source=source)
    # Draw in the photo's own pixels (scale 1, no shift) and cut the photo's rectangle out of the square.
    plan = dataclasses.replace(plan, placement=framing.Placement(1.0, (0.0, 0.0), max(side, 16)))
    return plan.part_map(0)[:h, :w]


def photo_reference(image: np.ndarray, hw: Tuple[int, int], *, source: str, backend: str = "mediapipe",
                    estimator: Optional[Callable[[np.ndarray], PoseFrame]] = None, **backend_kwargs) -> np.ndarray:
    """The part map of the person in an RGB photo, placed into ``hw``; InputError if it shows no body to
    retarget to. ``estimator``: a ready backend; else ``backend`` is created in single-image mode
    (``backend_kwargs``: weights, config, device)."""
    from magicanimate.extraction import backends

    own = estimator is None
    if own:
        estimator = backends.create_backend(backend, video=False, **backend_kwargs)
    try:
        part_map = photo_part_map(image, estimator, source=source)
    finally:
        if own:
            estimator.close()
    placed = place_part_map(part_map, hw)
    reference_joints(placed, source)
    return placed


def reference_from_photo(path: PathLike, hw: Tuple[int, int], **kwargs) -> np.ndarray:
    """:func:`photo_reference` of the image file at ``path``."""
    from magicanimate.media import read_image

    return photo_reference(read_image(path), hw, source=str(path), **kwargs)
