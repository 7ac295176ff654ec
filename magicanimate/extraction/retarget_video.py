"""Retargeting whole control videos: a DensePose motion video (or an extraction plan) and the reference's
part map in, a retargeted control video (and a preview: driver | retargeted | reference) out.

Everything written goes through :class:`magicanimate.media.VideoWriter` (temporary file, then rename), so
an error leaves nothing behind.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Tuple, Union

import numpy as np
from tqdm.auto import tqdm

from magicanimate.data.densepose import render_parts, validate_densepose_video
from magicanimate.errors import ConfigError, InputError
from magicanimate.extraction.landmarks import PoseFrame
from magicanimate.extraction.reference import decode_part_map, read_reference_map, reference_from_photo
from magicanimate.extraction.retarget import Retargeted, retarget

PathLike = Union[str, Path]
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi")


@dataclass
class RetargetVideoResult:
    output: Path
    num_frames: int
    fps: float
    size: Tuple[int, int]  # (H, W)
    global_frames: List[int]  # frames moved by the global scale and shift (no skeleton found)
    seconds: float
    preview: Optional[Path] = None


def check_outputs(inputs: List[Path], output: Path, preview: Optional[Path]) -> None:
    """ConfigError for outputs that are not videos or would overwrite an input, before any work."""
    for path in [output] + ([preview] if preview is not None else []):
        if path.suffix.lower() not in VIDEO_SUFFIXES:
            raise ConfigError(f"{path}: the output must be a video file (.mp4)")
        if any(path.resolve() == p.resolve() for p in inputs):
            raise ConfigError(f"{path}: the output would overwrite an input")


def check_motion(reader, path: PathLike) -> None:
    """InputError unless the opened video has frames that look like a DensePose rendering."""
    if len(reader) == 0:
        raise InputError(f"{path}: the video has zero frames")
    # a few frames tell a DensePose rendering from a photo video before any decoding work
    validate_densepose_video(reader[np.linspace(0, len(reader) - 1, min(16, len(reader))).astype(int)],
                             source=str(path))


def decode_motion(reader) -> np.ndarray:
    """``(F, H, W)`` uint8 part maps of every frame, cleaned of codec noise."""
    return np.stack([decode_part_map(frame) for frame in tqdm(reader, total=len(reader), desc="read",
                                                                unit="frame", leave=False)])


def write_retargeted(result: Retargeted, driving: np.ndarray, reference: np.ndarray, output: Path, fps: float,
                     preview: Optional[Path]) -> None:
    """The retargeted control video, and optionally the preview driver | retargeted | reference."""
    from magicanimate.media import VideoWriter

    ref_panel = render_parts(reference)
    with VideoWriter(output, fps) as writer:
        pwriter = VideoWriter(preview, fps, preset="veryfast").open() if preview is not None else None
        try:
            for i in tqdm(range(len(driving)), desc="write", unit="frame", leave=False):
                control = render_parts(result.parts[i])
                writer.write(control)
                if pwriter is not None:
                    pwriter.write(np.concatenate([render_parts(driving[i]), control, ref_panel], axis=1))
        except BaseException as exc:
            if pwriter is not None:
                pwriter.abort(exc)
            raise
        if pwriter is not None:
            pwriter.close()


def retarget_video(motion: PathLike, output: PathLike, *, reference_map: Optional[PathLike] = None,
                   reference: Optional[PathLike] = None, preview: Optional[PathLike] = None,
                   backend: str = "mediapipe", estimator: Optional[Callable[[np.ndarray], PoseFrame]] = None,
                   **backend_kwargs) -> RetargetVideoResult:
    """Retarget the DensePose video ``motion`` to the reference person and write it to ``output``.

    The reference is either ``reference_map`` (a DensePose image of the reference) or ``reference`` (the
    photo; its part map comes from ``backend`` or ``estimator``); it is placed in the motion's frame as
    animate.py places the reference image (``--fit pad``).
    """
    start = time.perf_counter()
    motion, output = Path(motion), Path(output)
    preview = Path(preview) if preview is not None else None
    if (reference_map is None) == (reference is None):
        raise ConfigError("give the reference either as a DensePose map or as a photo (one of the two)")
    source = Path(reference_map if reference_map is not None else reference)
    check_outputs([motion, source], output, preview)
    from magicanimate.media import VideoReader

    with VideoReader(motion) as reader:
        check_motion(reader, motion)
        fps, hw = float(reader.fps), tuple(reader.size)
        # the reference before the long decoding, so that a bad one fails at once
        if reference_map is not None:
            ref = read_reference_map(reference_map, hw)
        else:
            ref = reference_from_photo(reference, hw, backend=backend, estimator=estimator, **backend_kwargs)
        driving = decode_motion(reader)
    result = retarget(driving, ref, source=str(source), progress=True)
    write_retargeted(result, driving, ref, output, fps, preview)
    return RetargetVideoResult(output, len(driving), fps, hw, result.global_frames,
                               time.perf_counter() - start, preview)


def read_retarget_image(retarget_to: Optional[PathLike], align_to: Optional[PathLike]) -> Optional[np.ndarray]:
    """``extract_densepose --retarget-to``: the reference photo (None without one), checked before any work."""
    if retarget_to is None:
        return None
    if align_to is not None:
        raise ConfigError("--align-to and --retarget-to both place the motion on the reference; use one "
                          "(--retarget-to also fits the body's proportions)")
    from magicanimate.media import read_image

    return read_image(retarget_to)


def retarget_plan(plan, reference: np.ndarray, *, source: str) -> np.ndarray:
    """Every output frame of an extraction plan (:class:`magicanimate.extraction.extract.MotionPlan`),
    retarget to the ``reference`` part map: ``(F, size, size)`` uint8."""
    driving = np.stack([plan.part_map(i) for i in range(plan.num_frames)])
    return retarget(driving, reference, source=source, progress=True).parts
