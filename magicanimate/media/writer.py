"""Writing videos: stream RGB uint8 frames into a video file, atomically.

The file's extension chooses the format (:data:`FORMATS`): H.264 (yuv420p) in ``.mp4``/``.mkv``/``.mov``/
``.avi``, VP9 in ``.webm``, or an animated ``.gif``; any other extension is refused rather than written under a
misleading name. Encoded with PyAV (or imageio-ffmpeg's ffmpeg binary where PyAV's FFmpeg lacks libx264),
streaming: frames are encoded as they arrive, so a long video is never held in memory (a GIF keeps its
palette-indexed frames until it is written: GIFs are for short clips). yuv420p needs even sizes; an odd height
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
# extension -> (container, codec); the codec None means Pillow's GIF writer
FORMATS = {".mp4": ("mp4", "libx264"), ".mkv": ("matroska", "libx264"), ".mov": ("mov", "libx264"),
           ".avi": ("avi", "libx264"), ".webm": ("webm", "libvpx-vp9"), ".gif": ("gif", None)}


def video_format(path: PathLike) -> tuple:
    """(container, codec) for ``path``'s extension; InputError for one we do not write."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise InputError(f"{path}: cannot write {suffix + ' videos' if suffix else 'a video without an extension'}; use one of "
                         f"{', '.join(FORMATS)} (H.264 in .mp4/.mkv/.mov/.avi, VP9 in .webm, animated .gif)")
    return FORMATS[suffix]


def _pyav_has_libx264() -> bool:
    try:
        import av

        av.codec.Codec("libx264", "w")
        return True
    except Exception:
        return False


def check_video_output(path: PathLike) -> Path:
    """Before any work: ``path`` has a format we write and its folder is writable (InputError if not)."""
    from magicanimate.utils.files import check_writable

    check_writable(path)
    video_format(path)
    return Path(path)


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
        self.container, self.codec = video_format(self.path)
        self.fps = float(fps)
        self.crf = int(crf)
        self.preset = preset
        self.odd_size = odd_size
        # VP9 goes through imageio-ffmpeg's own process: in a process that has loaded decord, whose wheel bundles
        # its own FFmpeg libraries, PyAV's libvpx refuses to open
        self.backend = backend or ("pyav" if self.codec == "libx264" and _pyav_has_libx264() else "imageio-ffmpeg")
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
        if self.codec is None or (h % 2 == 0 and w % 2 == 0):  # GIF has no chroma subsampling
            return frame
        if self.odd_size == "crop":
            return frame[: h - h % 2, : w - w % 2]
        return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")

    def _start(self, h: int, w: int) -> None:
        rate = Fraction(self.fps).limit_denominator(1001)
        if self.codec is None:
            self._encoder = _GifEncoder(self._tmp, rate)
            return
        if h % 2 or w % 2:
            if self.odd_size == "error":
                raise InputError(f"{self.path}: H.264 yuv420p needs even sizes, frames are {w}x{h}")
            if self.odd_size == "crop" and (h < 2 or w < 2):
                raise InputError(f"{self.path}: frames of {w}x{h} are too small to crop to even sizes")
            logger.info("%s: odd frame size %dx%d %s to even", self.path, w, h,
                        "padded" if self.odd_size == "pad" else "cropped")
        he = h + h % 2 if self.odd_size == "pad" else h - h % 2
        we = w + w % 2 if self.odd_size == "pad" else w - w % 2
        encoder = _PyAVEncoder if self.backend == "pyav" else _FFmpegEncoder
        self._encoder = encoder(self._tmp, self.path, we, he, rate, self.crf, self.preset)


class _PyAVEncoder:
    def __init__(self, tmp: Path, final: Path, width: int, height: int, rate: Fraction, crf: int, preset: str):
        import av

        self._av = av
        container, codec = video_format(final)
        self._container = av.open(str(tmp), mode="w", format=container)
        self._stream = self._container.add_stream(codec, rate=rate)
        self._stream.width = width
        self._stream.height = height
        self._stream.pix_fmt = "yuv420p"
        self._stream.time_base = Fraction(1, 1) / rate
        self._stream.options = _codec_options(codec, crf, preset)
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

        container, codec = video_format(final)
        options = [x for key, value in _codec_options(codec, crf, preset).items() for x in (f"-{key}", value)]
        self._gen = imageio_ffmpeg.write_frames(
            str(tmp), (width, height), fps=rate, codec=codec, pix_fmt_in="rgb24", pix_fmt_out="yuv420p",
            quality=None, macro_block_size=1, ffmpeg_log_level="error", output_params=[*options, "-f", container])
        self._gen.send(None)

    def write(self, frame: np.ndarray) -> None:
        self._gen.send(frame.tobytes())

    def finish(self) -> None:
        self._gen.close()

    def abort(self) -> None:
        self._gen.close()


def _codec_options(codec: str, crf: int, preset: str) -> dict:
    if codec == "libvpx-vp9":  # constant quality; VP9's scale runs higher than x264's for the same look
        return {"crf": str(min(63, crf + 12)), "b": "0", "deadline": "good", "cpu-used": "4", "row-mt": "1"}
    return {"crf": str(crf), "preset": preset}


class _GifEncoder:
    """An animated GIF through Pillow: each frame gets its own adaptive 256-colour palette."""

    def __init__(self, tmp: Path, rate: Fraction):
        self._tmp, self._frames = tmp, []
        self._duration = max(20, round(1000 / float(rate)))  # ms; viewers ignore shorter frame times

    def write(self, frame: np.ndarray) -> None:
        from PIL import Image

        self._frames.append(Image.fromarray(frame).quantize(colors=256, method=Image.Quantize.MEDIANCUT))

    def finish(self) -> None:
        first, rest = self._frames[0], self._frames[1:]
        first.save(self._tmp, format="GIF", save_all=True, append_images=rest, duration=self._duration, loop=0)

    def abort(self) -> None:
        self._frames = []


def write_video(path: PathLike, frames, fps: float, **kwargs) -> None:
    """Write frames (an ``(N, H, W, 3)`` uint8 array or any iterable of ``(H, W, 3)`` frames) as a video in the
    format of ``path``'s extension (H.264 for .mp4).

    Keyword arguments go to :class:`VideoWriter` (``crf``, ``preset``, ``odd_size``, ``backend``).
    """
    with VideoWriter(path, fps, **kwargs) as writer:
        if isinstance(frames, np.ndarray):
            writer.write(frames)
        else:
            for frame in frames:
                writer.write(np.asarray(frame))
