"""Raw video -> DensePose control video in MagicAnimate's encoding.

Two passes over the input: the first runs the pose backend on every frame and keeps its detection (landmarks
and a small person mask, or a DensePose part map); then the whole track is smoothed, one crop is chosen for
the whole video (and, optionally, the motion is aligned to a reference image); the second pass renders the
part maps through the DensePose palette and streams them to an H.264 file or a folder of PNG frames (written
atomically), with an optional side-by-side preview.

Frames where the backend finds no person hold the nearest earlier detection (``missing="hold"``, the
default; frames before the first detection take the first one) or are left empty (``"background"``); a
warning names those frames. A video without a person anywhere is an error.
"""

from __future__ import annotations

import logging
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from tqdm.auto import tqdm

from magicanimate.data.densepose import BACKGROUND_RGB, render_parts
from magicanimate.errors import ConfigError, InputError
from magicanimate.extraction import framing, outputs, part_smoothing, parts as parts_mod, smoothing
from magicanimate.extraction.backends import BACKENDS, create_backend
from magicanimate.extraction.tracking import PersonChoiceError, check_person
from magicanimate.extraction.landmarks import PoseFrame, mask_probability
from magicanimate.extraction.reference import photo_reference
from magicanimate.extraction.retarget_video import read_retarget_image, retarget_plan

logger = logging.getLogger(__name__)

PathLike = Union[str, Path]
Estimator = Callable[[np.ndarray], PoseFrame]
MISSING_MODES = ("hold", "background")


def format_frame_list(indices: Sequence[int], limit: int = 12) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``"0-2, 5, 7-8"`` (at most ``limit`` ranges, then "...")."""
    ranges: List[Tuple[int, int]] = []
    for i in sorted(indices):
        if ranges and i == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], i)
        else:
            ranges.append((i, i))
    text = [f"{a}" if a == b else f"{a}-{b}" for a, b in ranges[:limit]]
    if len(ranges) > limit:
        text.append("...")
    return ", ".join(text)


def detect_poses(frames: Iterable[np.ndarray], estimator: Estimator, *, total: Optional[int] = None,
                 desc: str = "pose") -> List[PoseFrame]:
    """Run ``estimator`` on every frame (first pass), with a progress bar."""
    # closed on errors too, before the CLI prints its one error line
    with tqdm(frames, total=total, desc=desc, unit="frame", leave=False) as bar:
        return [estimator(frame) for frame in bar]


@dataclass
class MotionPlan:
    """Everything needed to render each output frame; built by :func:`plan_motion`."""

    poses: List[PoseFrame]
    frame_hw: Tuple[int, int]
    fps: float
    placement: framing.Placement
    found: np.ndarray  # (F,) bool: the backend saw a person in this frame
    source_index: np.ndarray  # (F,) int: frame whose detection renders this frame (-1: render empty)
    landmarks: Optional[np.ndarray]  # (F, 33, 4) smoothed, in source pixels (mediapipe), else None
    facing: np.ndarray  # (F,) bool: facing the camera
    mask_sigma: float  # temporal Gaussian sigma for masks, in frames (0: off)
    missing: List[int] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return len(self.poses)

    @property
    def size(self) -> int:
        return self.placement.size

    def _mask_placement(self, stored_hw) -> framing.Placement:
        return self.placement.rescaled_source(stored_hw[1] / self.frame_hw[1])

    def part_map(self, index: int) -> np.ndarray:
        """``(size, size)`` uint8 DensePose part map of output frame ``index``."""
        j = int(self.source_index[index])
        size = self.size
        if j < 0:
            return np.zeros((size, size), np.uint8)
        masks = [p.mask for p in self.poses]
        if self.poses[j].parts is not None:
            # DensePose backends: part evidence is smoothed over time in frame coordinates, then placed
            labels, soft = part_smoothing.smooth_part_map([p.parts for p in self.poses], masks, j,
                                                          self.mask_sigma, valid=self.found)
            place = self._mask_placement(soft.shape)
            return part_smoothing.fill_parts(place.warp(labels, interpolation=cv2.INTER_NEAREST),
                                             place.warp(soft) > 0.5)
        soft = (smoothing.smoothed_mask(masks, j, self.mask_sigma, valid=self.found) if self.mask_sigma > 0
                else np.asarray(masks[j], np.float32))
        if masks[j].dtype == np.uint8:  # backends store probability x 255
            soft = soft / 255.0
        person = self._mask_placement(soft.shape).warp(soft) > 0.5
        lm = self.placement.apply(self.landmarks[j])
        return parts_mod.parts_from_landmarks(lm, person, front=bool(self.facing[j]))


def _hold_indices(found: np.ndarray) -> np.ndarray:
    """For each frame, the nearest earlier frame with a person (leading frames: the first one)."""
    idx = np.where(found, np.arange(len(found)), -1)
    idx = np.maximum.accumulate(idx)
    first = int(np.argmax(found))
    idx[idx < 0] = first
    return idx


def _facing_track(landmarks: np.ndarray, found: np.ndarray) -> np.ndarray:
    facing = np.ones(len(landmarks), bool)
    previous = None
    for i, lm in enumerate(landmarks):
        if found[i]:
            previous = parts_mod.facing_front(lm, previous)
        facing[i] = True if previous is None else previous
    return facing


def _landmark_box(lm: np.ndarray, min_visibility: float = 0.5):
    seen = lm[lm[:, 3] >= min_visibility, :2]
    if len(seen) == 0:
        return None
    return (float(seen[:, 0].min()), float(seen[:, 1].min()), float(seen[:, 0].max()), float(seen[:, 1].max()))


def check_options(*, size: int, fit: str, margin: float, smooth: float, missing: str,
                  fps: Optional[float] = None) -> None:
    """ConfigError for option values extraction cannot use (checked before any work starts)."""
    if fit not in framing.FITS:
        raise ConfigError(f"fit must be one of {', '.join(framing.FITS)}, got {fit!r}")
    if missing not in MISSING_MODES:
        raise ConfigError(f"missing must be one of {', '.join(MISSING_MODES)}, got {missing!r}")
    if int(size) != size or size < 16 or size % 2:
        # H.264 in yuv420p needs even sides
        raise ConfigError(f"size must be an even number of pixels >= 16, got {size}")
    if not (margin >= 0 and np.isfinite(margin)):
        raise ConfigError(f"margin must be >= 0, got {margin}")
    if not (smooth >= 0 and np.isfinite(smooth)):
        raise ConfigError(f"smooth must be >= 0 (0 turns smoothing off), got {smooth}")
    if fps is not None and not (fps > 0 and np.isfinite(fps)):
        raise ConfigError(f"fps must be a positive number, got {fps}")


def _person_box(pose: PoseFrame, lm: Optional[np.ndarray], frame_hw):
    """The person's box in source pixels: the mask where it can be labelled (near the skeleton), else the
    visible landmarks."""
    if pose.mask is None:
        return None if lm is None else _landmark_box(lm)
    prob = mask_probability(pose.mask)
    f = prob.shape[1] / frame_hw[1]
    x0 = y0 = 0
    if lm is not None:
        # parts_from_landmarks leaves mask pixels this far from every segment as background: ignore them
        # here too, so a stray blob (another person, an object) cannot widen the crop.
        reach = (parts_mod.MAX_DISTANCE + max(parts_mod.RADII.values())) * parts_mod.torso_length(lm)
        lo = np.floor((lm[:, :2].min(0) - reach) * f).astype(int)
        hi = np.ceil((lm[:, :2].max(0) + reach) * f).astype(int) + 1
        x0, y0 = max(0, lo[0]), max(0, lo[1])
        prob = prob[y0:max(y0, hi[1]), x0:max(x0, hi[0])]
    box = framing.mask_box(prob)
    if box is None:
        return None if lm is None else _landmark_box(lm)
    return ((box[0] + x0) / f, (box[1] + y0) / f, (box[2] + x0) / f, (box[3] + y0) / f)


def plan_motion(
    poses: List[PoseFrame],
    frame_hw: Tuple[int, int],
    fps: float,
    *,
    size: int = 512,
    fit: str = "crop",
    margin: float = framing.DEFAULT_MARGIN,
    smooth: float = 1.0,
    missing: str = "hold",
    reference: Optional[Tuple[np.ndarray, Tuple[int, int]]] = None,
    source: str = "input",
) -> MotionPlan:
    """Smooth the detections, choose the crop (and alignment) once for the whole video.

    Args:
        reference: ``(landmarks, (H, W))`` of the reference image to align the motion to (``--align-to``).
        source: the input's name, for messages.
    """
    check_options(size=size, fit=fit, margin=margin, smooth=smooth, missing=missing)
    n = len(poses)
    if n == 0:
        raise InputError(f"{source}: the video has zero frames")
    found = np.array([p.found for p in poses])
    if not found.any():
        raise InputError(f"{source}: no person found in any of its {n} frames; motion extraction needs a "
                         f"video of one person (whole body or upper body) clearly visible")
    missing_frames = [int(i) for i in np.nonzero(~found)[0]]
    hold = _hold_indices(found)
    if missing_frames:
        what = ("they hold the nearest earlier detection" if missing == "hold"
                else "they are rendered as background")
        logger.warning("%s: no person found in %d of %d frames (%s); %s", source, len(missing_frames), n,
                       format_frame_list(missing_frames), what)
    source_index = hold.copy() if missing == "hold" else np.where(found, np.arange(n), -1)

    params = smoothing.smoothing_parameters(smooth, fps)
    landmarks = None
    facing = np.ones(n, bool)
    uses_landmarks = poses[int(np.argmax(found))].landmarks is not None
    if uses_landmarks:
        track = np.stack([poses[j].landmarks for j in hold])  # gaps hold the last detection
        unit = float(np.median([parts_mod.torso_length(poses[i].landmarks) for i in np.nonzero(found)[0]]))
        if params is not None:
            track = smoothing.smooth_landmark_track(track, fps, unit, min_cutoff=params["min_cutoff"],
                                                    beta=params["beta"], d_cutoff=params["d_cutoff"])
        landmarks = track
        facing = _facing_track(track, found)

    if fit == "pad":
        placement = framing.pad_placement(frame_hw, size)
    else:
        box = framing.union_box(
            _person_box(poses[i], None if landmarks is None else landmarks[i], frame_hw)
            for i in np.nonzero(found)[0])
        placement = (framing.pad_placement(frame_hw, size) if box is None
                     else framing.crop_placement(box, frame_hw, size, margin))

    if reference is not None:
        if landmarks is None:
            raise ConfigError("--align-to needs body landmarks, which only the mediapipe backend gives")
        ref_lm, ref_hw = reference
        ref_out = framing.pad_placement(ref_hw, size).apply(ref_lm)
        first = int(np.argmax(found))
        motion_out = placement.apply(landmarks[first])
        scale, shift = framing.alignment(motion_out, ref_out, source=source)
        placement = placement.then(scale, tuple(shift))
        logger.info("%s: aligned to the reference: scale %.3f, shift (%.1f, %.1f) px", source, scale, *shift)

    return MotionPlan(poses=poses, frame_hw=tuple(frame_hw), fps=float(fps), placement=placement, found=found,
                      source_index=source_index, landmarks=landmarks, facing=facing,
                      mask_sigma=0.0 if params is None else params["mask_sigma"], missing=missing_frames)


def reference_landmarks(image: np.ndarray, *, source: str, estimator: Optional[Estimator] = None):
    """``(landmarks, (H, W))`` of the person in a reference image (mediapipe, single-image mode)."""
    own = estimator is None
    if own:
        estimator = create_backend("mediapipe", video=False)
    try:
        pose = estimator(image)
    finally:
        if own:
            estimator.close()
    if pose.landmarks is None:
        raise InputError(f"{source}: no person found in the reference image; --align-to needs an image "
                         f"of the person to animate")
    return pose.landmarks, image.shape[:2]


def resample_indices(num_frames: int, fps_in: float, fps_out: Optional[float]) -> np.ndarray:
    """Source frame of each output frame when changing the frame rate (nearest earlier frame in time)."""
    if fps_out is None or abs(fps_out - fps_in) < 1e-6:
        return np.arange(num_frames)
    if fps_out <= 0:
        raise ConfigError(f"fps must be positive, got {fps_out}")
    n_out = max(1, int(round(num_frames * fps_out / fps_in)))
    idx = np.floor(np.arange(n_out) * fps_in / fps_out + 1e-6).astype(int)
    return np.minimum(idx, num_frames - 1)


def extract_part_maps(
    frames: np.ndarray,
    fps: float,
    *,
    backend: str = "mediapipe",
    estimator: Optional[Estimator] = None,
    reference_image: Optional[np.ndarray] = None,
    size: int = 512,
    fit: str = "crop",
    margin: float = framing.DEFAULT_MARGIN,
    smooth: float = 1.0,
    missing: str = "hold",
    source: str = "frames",
    **backend_kwargs,
) -> Tuple[np.ndarray, MotionPlan]:
    """In-memory extraction: ``(F, H, W, 3)`` uint8 RGB frames -> ``(F, size, size)`` uint8 part maps."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise InputError(f"{source}: frames must be (F, H, W, 3) uint8 RGB, got {frames.shape} {frames.dtype}")
    own = estimator is None
    if own:
        estimator = create_backend(backend, smooth=smooth > 0, **backend_kwargs)
    try:
        poses = detect_poses(frames, estimator, total=len(frames))
    finally:
        if own:
            estimator.close()
    reference = None
    if reference_image is not None:
        reference = reference_landmarks(reference_image, source=f"{source} (reference)")
    plan = plan_motion(poses, frames.shape[1:3], fps, size=size, fit=fit, margin=margin, smooth=smooth,
                       missing=missing, reference=reference, source=source)
    maps = np.stack([plan.part_map(i) for i in range(plan.num_frames)])
    return maps, plan


@dataclass
class ExtractionResult:
    output: Path
    num_frames: int
    fps: float
    size: int
    missing_frames: List[int]
    placement: framing.Placement
    seconds: float
    preview: Optional[Path] = None

    @property
    def frames_per_second(self) -> float:
        """Processing speed (frames per wall-clock second)."""
        return self.num_frames / self.seconds if self.seconds > 0 else float("inf")


def default_preview_path(output: PathLike) -> Path:
    output = Path(output)
    return output.with_name(f"{output.stem}_preview{output.suffix or '.mp4'}")


def extract_densepose(
    input: PathLike,
    output: PathLike,
    *,
    backend: str = "mediapipe",
    size: int = 512,
    fit: str = "crop",
    margin: float = framing.DEFAULT_MARGIN,
    fps: Optional[float] = None,
    input_fps: Optional[float] = None,
    smooth: float = 1.0,
    missing: str = "hold",
    align_to: Optional[PathLike] = None,
    preview: Optional[PathLike] = None,
    weights: Optional[str] = None,
    config: Optional[str] = None,
    device: str = "cpu",
    person: Optional[int] = None,
    estimator: Optional[Estimator] = None,
    retarget_to: Optional[PathLike] = None,
) -> ExtractionResult:
    """Turn a video of a person into a DensePose control video for MagicAnimate.

    Args:
        input: video file or folder of frames.
        output: the control, ``size`` x ``size``, written atomically: a video (.mp4) or, for a path without an
            extension, a folder of PNG frames (lossless).
        backend: ``"mediapipe"`` (default), ``"torchscript"`` (needs ``weights``: a DensePose-TorchScript
            file) or ``"detectron2"`` (needs ``weights`` and ``config``).
        fit: ``"crop"`` (one square window around the person for the whole video) or ``"pad"`` (the whole
            frame, padded to a square with the DensePose background).
        margin: for ``fit="crop"``, space around the person, as a fraction of their extent.
        fps: output frame rate (frames are dropped/repeated); default: the input's.
        input_fps: frame rate of a frame folder (default 25).
        smooth: temporal smoothing strength (0 = off; also turns off mediapipe's own smoothing).
        missing: frames without a person: ``"hold"`` the nearest earlier detection, or ``"background"``.
        align_to: reference image: scale and shift the motion so the body matches the person in it.
        preview: also write a side-by-side video (input placed like the control | control) here; with
            ``retarget_to``: input | driver's control | retargeted control | reference's part map.
        device: torch device of the torchscript and detectron2 backends.
        person: torchscript/detectron2: follow the K-th person from the left (default: the largest).
        estimator: a ready pose backend (callable frame -> PoseFrame) instead of ``backend``.
        retarget_to: reference image: retarget the motion to the body of the person in it
            (:mod:`magicanimate.extraction.retarget`; its part map comes from the same backend).
    """
    start = time.perf_counter()
    from magicanimate.media import VideoReader

    input, output = Path(input), Path(output)
    check_options(size=size, fit=fit, margin=margin, smooth=smooth, missing=missing, fps=fps)
    reference_image, retarget_image = _check_request(input, output, backend, estimator, input_fps=input_fps,
                                                     person=person, align_to=align_to, retarget_to=retarget_to)

    with VideoReader(input, fps=input_fps) as reader:
        in_fps = float(reader.fps)
        out_fps = float(fps) if fps else in_fps
        indices = resample_indices(len(reader), in_fps, fps)
        own = estimator is None
        if own:
            estimator = create_backend(backend, smooth=smooth > 0, weights=weights, config=config,
                                       device=device, person=person)
        photo = None if retarget_image is None else (lambda image: photo_reference(
            image, (size, size), source=str(retarget_to), backend=backend, estimator=None if own else estimator,
            weights=weights, config=config, device=device))
        poses, reference, retarget_ref = _first_pass(reader, indices, estimator, own=own,
                                                     reference_image=reference_image, align_to=align_to,
                                                     source=input, retarget=(photo, retarget_image))
        plan = plan_motion(poses, reader.size, out_fps, size=size, fit=fit, margin=margin, smooth=smooth,
                           missing=missing, reference=reference, source=str(input))
        retargeted = None if retarget_ref is None else retarget_plan(plan, retarget_ref, source=str(retarget_to))
        preview_path = Path(preview) if preview is not None else None
        _render(plan, output, preview_path, lambda: _selected(reader, indices), retargeted, retarget_ref)
    seconds = time.perf_counter() - start
    logger.info("%s -> %s: %d frames in %.1f s (%.1f frames/s)", input, output, plan.num_frames, seconds,
                plan.num_frames / max(seconds, 1e-9))
    return ExtractionResult(output=output, num_frames=plan.num_frames, fps=out_fps, size=plan.size,
                            missing_frames=plan.missing, placement=plan.placement, seconds=seconds,
                            preview=preview_path)


def _check_request(input: Path, output: Path, backend: str, estimator, *, input_fps, person, align_to, retarget_to):
    """Everything about a request that can be wrong, checked before any frame is decoded; the reference
    images it names (for alignment, for retargeting), read."""
    from magicanimate.media import read_image

    if input_fps is not None and not (input_fps > 0 and np.isfinite(input_fps)):
        raise ConfigError(f"input fps must be a positive number, got {input_fps}")
    if backend not in BACKENDS and estimator is None:
        raise ConfigError(f"unknown extraction backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    outputs.check_output(output, input)
    check_person(person)
    reference_image = read_image(align_to) if align_to is not None else None
    if align_to is not None and backend != "mediapipe" and estimator is None:
        raise ConfigError("--align-to needs body landmarks, which only the mediapipe backend gives")
    return reference_image, read_retarget_image(retarget_to, align_to)


def _first_pass(reader, indices, estimator, *, own: bool, reference_image, align_to, source: Path,
                retarget=(None, None)):
    """Detections of every output frame (and the reference's landmarks, and the retargeting reference's part
    map); closes an estimator it owns."""
    photo, retarget_image = retarget
    try:
        # the retargeting reference first, so that a bad one fails before the long pass over the video
        retarget_ref = None if photo is None else photo(retarget_image)
        try:
            poses = detect_poses(_selected(reader, indices), estimator, total=len(indices), desc="pose")
        except PersonChoiceError as exc:
            raise PersonChoiceError(f"{source}: {exc}") from None
        reference = None
        if reference_image is not None:
            reference = reference_landmarks(reference_image, source=str(align_to))
    finally:
        if own:
            estimator.close()
    return poses, reference, retarget_ref


def _render(plan: MotionPlan, output: Path, preview: Optional[Path], source_frames, retargeted=None,
            retarget_ref=None) -> None:
    """Second pass: every part map through the palette into the control (and the preview) atomically."""
    from magicanimate.media import VideoWriter

    with ExitStack() as stack:
        writer = stack.enter_context(outputs.open_control_writer(output, plan.fps))
        # the preview is for eyes only: a fast x264 preset keeps it from doubling the run time
        pwriter = (stack.enter_context(VideoWriter(preview, plan.fps, preset="veryfast"))
                   if preview is not None else None)
        frames = source_frames() if pwriter is not None else None
        for i in tqdm(range(plan.num_frames), desc="render", unit="frame", leave=False):
            control = render_parts(plan.part_map(i) if retargeted is None else retargeted[i])
            writer.write(control)
            if pwriter is not None:
                placed = plan.placement.warp(next(frames), border_value=BACKGROUND_RGB)
                panels = [placed, control] if retargeted is None else [
                    placed, render_parts(plan.part_map(i)), control, render_parts(retarget_ref)]
                pwriter.write(np.concatenate(panels, axis=1))


def _selected(reader, indices: np.ndarray):
    """Frames ``reader[indices]`` in order, decoding each source frame once (indices are non-decreasing)."""
    wanted = iter(indices.tolist())
    target = next(wanted, None)
    for i, frame in enumerate(reader):
        while target is not None and target == i:
            yield frame
            target = next(wanted, None)
        if target is None:
            return
