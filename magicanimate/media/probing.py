"""What a media file or folder holds before decoding it: frame files in order, display rotation, decoders.

decord is optional (no arm64 wheel); :func:`decord_available` says whether this process can use it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import List, Union

PathLike = Union[str, "os.PathLike[str]"]

# OpenCV before decord: decord's wheel bundles its own libpng/zlib, and when it loads first OpenCV's PNG
# codec fails in the same process ("libpng error: bad parameters to zlib", cv2.imread returns None).
import cv2  # noqa: E402,F401

try:  # optional: no arm64 wheel
    import decord as _decord

    # its bundled FFmpeg otherwise prints its internals ("moov atom not found", ...) above our own error line
    _decord.logging.set_level(_decord.logging.QUIET)
except Exception:  # pragma: no cover - depends on the platform
    _decord = None

from magicanimate.media.images import IMAGE_EXTENSIONS  # noqa: E402


def decord_available() -> bool:
    return _decord is not None


def decord_module():
    """The decord module, or None where it cannot be imported."""
    return _decord


def natural_key(name: str) -> list:
    """Sort key that orders embedded numbers by value: ``frame2`` < ``frame10``."""
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", name)]


def list_frame_files(folder: PathLike) -> List[Path]:
    """Image files in ``folder`` (png/jpg/...; hidden files skipped), in natural order."""
    folder = Path(folder)
    files = [
        p for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
    ]
    return sorted(files, key=lambda p: natural_key(p.name))


ZERO_FRAMES = "the video has zero frames"


def probe_video(path: Path) -> tuple[int, str | None]:
    """(display rotation, problem) of a video file, from its container and first frame.

    The rotation is what phones store (degrees counter-clockwise, a multiple of 90). ``problem`` is why the
    file cannot be decoded at all (None when it can): such a file is refused before decord sees it, whose
    bundled FFmpeg would print its own internals above our error line.
    """
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return 0, "no video stream"
            frame = next(container.decode(video=0), None)
            if frame is None:
                return 0, ZERO_FRAMES
            rotation = int(round(getattr(frame, "rotation", 0) or 0))
    except Exception as exc:  # the container's own reason (truncated, not a video, ...)
        return 0, str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ((rotation // 90 * 90) % 360 if rotation % 90 == 0 else 0), None
