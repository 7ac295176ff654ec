"""Writing videos: stream RGB uint8 frames into an H.264 (yuv420p) mp4, atomically.

Encoded with PyAV (or imageio-ffmpeg's ffmpeg binary where PyAV's FFmpeg lacks libx264), streaming: frames
are encoded as they arrive, so a long video is never held in memory. yuv420p needs even sizes; an odd height
or width is padded by repeating the last row/column (``odd_size="pad"``, the default), or cropped by one
(``"crop"``), or refused (``"error"``). Output goes to a temporary file renamed onto the target on success,
so an interrupted write leaves nothing behind.
"""

from __future__ import annotations

import logging
import os
from fractions import Fraction
from pathlib import Path
from typing import Optional, Union

import numpy as np

from magicanimate.errors import InputError
from magicanimate.media.images import check_frame
from magicanimate.utils.files import atomic_path

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]

WRITER_BACKENDS = ("pyav", "imageio-ffmpeg")


def _pyav_has_libx264() -> bool:
    try:
        import av

        av.codec.Codec("libx264", "w")
        return True
    except Exception:
        return False


class VideoWriter:
    """Stream frames into an H.264 (yuv420p) mp4, atomically.

    Use as a context manager; ``write`` accepts one frame ``(H, W, 3)`` or a batch ``(N, H, W, 3)`` of uint8
    RGB. The file appears under ``path`` only when the ``with`` block exits cleanly with at least one frame
    written; on an exception the temporary file is removed and nothing is left at ``path``.

    Args:
        path: output file (``.mp4``; other containers that accept H.264, e.g. ``.mkv``, work too).
        fps: frame rate (float, e.g. 29.97, is kept as an exact fraction).
        crf: x264 constant rate factor (lower = better quality; 0 is lossless in YUV).
        preset: x264 speed/size preset.
        odd_size: ``"pad"`` (repeat the last row/column), ``"crop"`` (drop it) or ``"error"``.
        backend: ``"pyav"``, ``"imageio-ffmpeg"`` (pipes frames to the ffmpeg binary that package ships) or
            ``None``: PyAV when its FFmpeg has libx264 (the PyPI wheels do), else imageio-ffmpeg.
    """

    def __init__(self, path: PathLike, fps: float, *, crf: int = 18, preset: str = "medium",
                 odd_size: str = "pad", backend: Optional[str] = None):
        if odd_size not in ("pad", "crop", "error"):
            raise ValueError(f"odd_size must be 'pad', 'crop' or 'error', got {odd_size!r}")
        if not fps or fps <= 0 or not np.isfinite(fps):
            raise ValueError(f"fps must be a positive number, got {fps!r}")
        if backend is not None and backend not in WRITER_BACKENDS:
            raise ValueError(f"backend must be one of {WRITER_BACKENDS} or None, got {backend!r}")
        self.path = Path(path)
        self.fps = float(fps)
        self.crf = int(crf)
        self.preset = preset
        self.odd_size = odd_size
        self.backend = backend or ("pyav" if _pyav_has_libx264() else "imageio-ffmpeg")
        self.frames_written = 0
        self._atomic = None
        self._tmp: Optional[Path] = None
        self._encoder = None
        self._size = None  # (H, W) of incoming frames
        self._closed = False

    # -- lifecycle
    def open(self) -> "VideoWriter":
        self._atomic = atomic_path(self.path)
        self._tmp = self._atomic.__enter__()
        return self

    def __enter__(self) -> "VideoWriter":
        return self.open()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort(exc)

    def close(self) -> None:
        """Flush the encoder and move the file into place."""
        if self._closed:
            return
        if self._atomic is None:
            raise RuntimeError("VideoWriter.close() before open()")
        try:
            if self.frames_written == 0:
                raise InputError(f"{self.path}: no frames were written; refusing to create an empty video")
            self._encoder.finish()
            self._encoder = None
        except BaseException as err:
            self.abort(err)
            raise
        self._closed = True
        self._atomic.__exit__(None, None, None)

    def abort(self, *exc_info) -> None:
        """Discard the partial output.

        Optionally pass the exception that caused it, either alone or as the ``(type, value, traceback)``
        triple that ``__exit__`` receives.
        """
        exc = next((e for e in reversed(exc_info) if isinstance(e, BaseException)), None)
        if self._closed:
            return
        self._closed = True
        if self._encoder is not None:
            try:
                self._encoder.abort()
            except Exception:
                pass
            self._encoder = None
        if self._atomic is not None:
            err = exc if exc is not None else RuntimeError("aborted")
            # Passing the exception into atomic_path's context makes it delete the temporary file.
            self._atomic.__exit__(type(err), err, err.__traceback__)

    # -- writing
    def write(self, frames: np.ndarray) -> None:
        if self._atomic is None or self._closed:
            raise RuntimeError("VideoWriter.write() outside an open writer (use `with VideoWriter(...)`)")
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        if frames.ndim != 4:
            raise InputError(f"{self.path}: frames must be (H, W, 3) or (N, H, W, 3), got shape {frames.shape}")
        for frame in frames:
            self._write_one(check_frame(frame, self.path))

    def _write_one(self, frame: np.ndarray) -> None:
        if self._size is None:
            self._size = frame.shape[:2]
            self._start(*self._size)
        elif frame.shape[:2] != self._size:
            raise InputError(
                f"{self.path}: frame {self.frames_written} is {frame.shape[1]}x{frame.shape[0]}, but the video "
                f"started at {self._size[1]}x{self._size[0]}")
        self._encoder.write(np.ascontiguousarray(self._even(frame)))
        self.frames_written += 1

    def _even(self, frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        if h % 2 == 0 and w % 2 == 0:
            return frame
        if self.odd_size == "crop":
            return frame[: h - h % 2, : w - w % 2]
        return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")

    def _start(self, h: int, w: int) -> None:
        if h % 2 or w % 2:
            if self.odd_size == "error":
                raise InputError(f"{self.path}: H.264 yuv420p needs even sizes, frames are {w}x{h}")
            if self.odd_size == "crop" and (h < 2 or w < 2):
                raise InputError(f"{self.path}: frames of {w}x{h} are too small to crop to even sizes")
            logger.info("%s: odd frame size %dx%d %s to even", self.path, w, h,
                        "padded" if self.odd_size == "pad" else "cropped")
        he = h + h % 2 if self.odd_size == "pad" else h - h % 2
        we = w + w % 2 if self.odd_size == "pad" else w - w % 2
        rate = Fraction(self.fps).limit_denominator(1001)
        encoder = _PyAVEncoder if self.backend == "pyav" else _FFmpegEncoder
        self._encoder = encoder(self._tmp, self.path, we, he, rate, self.crf, self.preset)


class _PyAVEncoder:
    def __init__(self, tmp: Path, final: Path, width: int, height: int, rate: Fraction, crf: int, preset: str):
        import av

        self._av = av
        self._container = av.open(str(tmp), mode="w", format=_container_format(final))
        self._stream = self._container.add_stream("libx264", rate=rate)
        self._stream.width = width
        self._stream.height = height
        self._stream.pix_fmt = "yuv420p"
        self._stream.time_base = Fraction(1, 1) / rate
        self._stream.options = {"crf": str(crf), "preset": preset}
        self._pts = 0

    def write(self, frame: np.ndarray) -> None:
        vf = self._av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="yuv420p")
        vf.pts = self._pts
        self._pts += 1
        for packet in self._stream.encode(vf):
            self._container.mux(packet)

    def finish(self) -> None:
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()

    def abort(self) -> None:
        self._container.close()


class _FFmpegEncoder:
    """Pipes raw RGB frames to the ffmpeg binary bundled with imageio-ffmpeg."""

    def __init__(self, tmp: Path, final: Path, width: int, height: int, rate: Fraction, crf: int, preset: str):
        import imageio_ffmpeg

        self._gen = imageio_ffmpeg.write_frames(
            str(tmp), (width, height), fps=rate, codec="libx264", pix_fmt_in="rgb24", pix_fmt_out="yuv420p",
            quality=None, macro_block_size=1, ffmpeg_log_level="error",
            output_params=["-crf", str(crf), "-preset", preset, "-f", _container_format(final)])
        self._gen.send(None)

    def write(self, frame: np.ndarray) -> None:
        self._gen.send(frame.tobytes())

    def finish(self) -> None:
        self._gen.close()

    def abort(self) -> None:
        self._gen.close()


def _container_format(path: Path) -> str:
    return {".mkv": "matroska", ".mov": "mov", ".avi": "avi"}.get(path.suffix.lower(), "mp4")


def write_video(path: PathLike, frames, fps: float, **kwargs) -> None:
    """Write frames (an ``(N, H, W, 3)`` uint8 array or any iterable of ``(H, W, 3)`` frames) as H.264 mp4.

    Keyword arguments go to :class:`VideoWriter` (``crf``, ``preset``, ``odd_size``, ``backend``).
    """
    with VideoWriter(path, fps, **kwargs) as writer:
        if isinstance(frames, np.ndarray):
            writer.write(frames)
        else:
            for frame in frames:
                writer.write(np.asarray(frame))
