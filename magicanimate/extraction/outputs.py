"""Where the control goes: an H.264 video, or a folder of PNG frames (lossless: part colours come back exactly).

A path with a video extension (.mp4, .mkv, .mov, .avi) is a video; a path without an extension is a folder of
PNG frames ``00000.png, 00001.png, ...`` that every frame reader of this project takes as a video (a folder
holds no frame rate: readers assume 25 fps unless told). Both are written atomically: the folder is filled
under a temporary name and renamed at the end, so a failed run leaves nothing behind.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import numpy as np

from magicanimate.errors import ConfigError
from magicanimate.media import VideoWriter, write_image
from magicanimate.utils.files import atomic_path

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi")
_FRAME_NAME = re.compile(r"\d{5,}\.png")


def is_frame_folder(output: Path) -> bool:
    return Path(output).suffix == ""


def check_output(output: Path, input: Path) -> None:
    """ConfigError for an output extraction must not write (checked before any work starts)."""
    output = Path(output)
    if not is_frame_folder(output) and output.suffix.lower() not in VIDEO_SUFFIXES:
        raise ConfigError(f"{output}: the output must be a video file (.mp4) or a folder name without an "
                          f"extension (PNG frames)")
    if output.resolve() == Path(input).resolve():
        raise ConfigError(f"{output}: the output would overwrite the input")
    if is_frame_folder(output) and output.exists():
        # replacing a folder is only safe when it holds nothing but an earlier run's frames
        if not output.is_dir():
            raise ConfigError(f"{output}: exists and is not a folder; PNG frames go to a folder")
        others = [p.name for p in output.iterdir() if not _FRAME_NAME.fullmatch(p.name)]
        if others:
            raise ConfigError(f"{output}: the folder exists and holds other files ({', '.join(sorted(others)[:3])}"
                              f"{', ...' if len(others) > 3 else ''}); choose a new folder for the PNG frames")


class FrameFolderWriter:
    """``with FrameFolderWriter(folder) as w: w.write(frame)``: RGB uint8 frames as numbered PNG files."""

    def __init__(self, folder: Path):
        self.path = Path(folder)
        self.frames_written = 0
        self._atomic = None
        self._tmp: Optional[Path] = None

    def __enter__(self) -> "FrameFolderWriter":
        self._atomic = atomic_path(self.path)
        self._tmp = self._atomic.__enter__()
        self._tmp.mkdir()
        return self

    def write(self, frame: np.ndarray) -> None:
        write_image(self._tmp / f"{self.frames_written:05d}.png", frame)
        self.frames_written += 1

    def __exit__(self, exc_type, exc, tb) -> None:
        # atomic_path deletes the temporary folder when given the exception, renames it otherwise
        self._atomic.__exit__(exc_type, exc, tb)


def open_control_writer(output: Path, fps: float):
    """The writer for ``output``: a :class:`VideoWriter` or a :class:`FrameFolderWriter` (context managers)."""
    return FrameFolderWriter(output) if is_frame_folder(output) else VideoWriter(output, fps)
