"""Video and image I/O: RGB uint8 frames in, H.264 mp4 out.

Readers return ``uint8`` RGB arrays shaped ``(H, W, 3)`` per frame. Video files are decoded with decord
when it is installed and works on the file, otherwise with PyAV (decord has no arm64 wheel, and fails on
some files PyAV reads). A folder of png/jpg frames reads like a video (files in natural order:
``2.png`` before ``10.png``).

The writer encodes H.264 (libx264, yuv420p) with PyAV (or imageio-ffmpeg's ffmpeg binary where PyAV's
FFmpeg lacks libx264), streaming: frames are encoded as they arrive, so a long video is never held in memory. yuv420p needs even sizes; an odd height or width is padded by
repeating the last row/column (``odd_size="pad"``, the default), or cropped by one (``"crop"``), or refused
(``"error"``). Output goes to a temporary file renamed onto the target on success, so an interrupted
write leaves nothing behind.

Every problem with an input file raises :class:`magicanimate.errors.InputError` naming the file.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from magicanimate.errors import InputError
from magicanimate.utils.files import atomic_path

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
DEFAULT_FOLDER_FPS = 25.0
BACKENDS = ("decord", "pyav")

# OpenCV before decord: decord's wheel bundles its own libpng/zlib, and when it loads first OpenCV's PNG
# codec fails in the same process ("libpng error: bad parameters to zlib", cv2.imread returns None).
import cv2  # noqa: E402,F401

try:  # optional: no arm64 wheel
    import decord as _decord
except Exception:  # pragma: no cover - depends on the platform
    _decord = None


def decord_available() -> bool:
    return _decord is not None


@dataclass
class Video:
    """Decoded frames ``(F, H, W, 3)`` uint8 RGB and their frame rate."""

    frames: np.ndarray
    fps: float

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    @property
    def size(self) -> tuple:
        """``(H, W)``."""
        return int(self.frames.shape[1]), int(self.frames.shape[2])


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


# --------------------------------------------------------------------------------------------- images

def read_image(path: PathLike) -> np.ndarray:
    """Read an image as ``(H, W, 3)`` uint8 RGB.

    EXIF orientation is applied; transparency (RGBA, LA, palette with a transparent index) is composited
    on white; grayscale, palette, CMYK and 16-bit images are converted to 8-bit RGB.
    """
    path = Path(path)
    _require_file(path, "image")
    try:
        with Image.open(path) as img:
            img.load()
            img = ImageOps.exif_transpose(img)
            return _pil_to_rgb(img)
    except UnidentifiedImageError:
        raise InputError(f"{path}: not an image (no image format recognised)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path}: corrupt or unreadable image ({exc})") from None


def _pil_to_rgb(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # PIL's convert("RGB") clips 16-bit values to 255; scale to 8 bits instead.
        arr = np.asarray(img).astype(np.int64)
        top = 65535 if arr.max() > 255 else 255
        gray = (arr.clip(0, top) * 255 // top).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8))


def write_image(path: PathLike, image: np.ndarray) -> None:
    """Write an ``(H, W, 3)`` uint8 RGB image atomically (format from the extension)."""
    image = _check_frame(np.asarray(image), Path(path))
    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format=Image.registered_extensions().get(path.suffix.lower()))


# ------------------------------------------------------------------------------------------- reading

class VideoReader:
    """Lazy random-access reader over a video file or a folder of frames.

    ``len(reader)``, ``reader.fps``, ``reader.size`` (H, W); ``reader[i]`` -> ``(H, W, 3)``;
    ``reader[a:b]`` or ``reader[[i, j]]`` -> ``(N, H, W, 3)``; iteration yields frames in order.

    Args:
        path: video file or folder of image frames.
        fps: frame rate of a frame folder (default 25); for a file, used only when the file reports none.
        backend: ``"decord"``, ``"pyav"`` or ``None`` (decord if available and able, else PyAV).
    """

    def __init__(self, path: PathLike, *, fps: Optional[float] = None, backend: Optional[str] = None):
        self.path = Path(path)
        if backend is not None and backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS} or None, got {backend!r}")
        if not self.path.exists():
            raise InputError(f"{self.path}: no such file or folder (expected a video or a folder of frames)")
        if self.path.is_dir():
            self._impl = _FolderBackend(self.path, fps if fps is not None else DEFAULT_FOLDER_FPS)
        else:
            if self.path.suffix.lower() in IMAGE_EXTENSIONS:
                raise InputError(
                    f"{self.path}: is an image, not a video (pass a video file or a folder of frames)")
            self._impl = _open_video_file(self.path, backend, fps)
        self.backend = self._impl.name

    def __len__(self) -> int:
        return self._impl.num_frames

    @property
    def fps(self) -> float:
        return self._impl.fps

    @property
    def size(self) -> tuple:
        """``(H, W)``."""
        return self._impl.size

    def __getitem__(self, index):
        n = len(self)
        if isinstance(index, slice):
            indices = list(range(*index.indices(n)))
            return self._impl.get(indices) if indices else np.zeros((0, *self.size, 3), np.uint8)
        if isinstance(index, (list, tuple, np.ndarray)):
            indices = [self._norm_index(int(i), n) for i in index]
            return self._impl.get(indices) if indices else np.zeros((0, *self.size, 3), np.uint8)
        return self._impl.get([self._norm_index(int(index), n)])[0]

    def _norm_index(self, i: int, n: int) -> int:
        j = i + n if i < 0 else i
        if not 0 <= j < n:
            raise IndexError(f"frame index {i} out of range for {n} frames of {self.path}")
        return j

    def __iter__(self) -> Iterator[np.ndarray]:
        return self._impl.iterate()

    def close(self) -> None:
        self._impl.close()

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_video(
    path: PathLike,
    *,
    fps: Optional[float] = None,
    max_frames: Optional[int] = None,
    backend: Optional[str] = None,
) -> Video:
    """Read a whole video file or frame folder into memory as a :class:`Video`.

    Args:
        path: video file (mp4, avi, mov, webm, gif, ...) or folder of png/jpg frames.
        fps: frame rate of a frame folder (default 25); for a file, used only when the file reports none.
        max_frames: keep at most this many leading frames.
        backend: force ``"decord"`` or ``"pyav"`` for video files (default: decord, PyAV fallback).
    """
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    with VideoReader(path, fps=fps, backend=backend) as reader:
        limit = max_frames if max_frames is not None else float("inf")
        # One preallocated array (no second copy of a long video); sequential decoding in one pass, which
        # also copes with container headers that miscount frames.
        out = np.empty((int(min(len(reader), limit)), *reader.size, 3), np.uint8)
        extra: List[np.ndarray] = []
        n = 0
        for frame in reader:
            if n >= limit:
                break
            if frame.shape != out.shape[1:]:
                raise InputError(f"{reader.path}: frame {n} is {frame.shape[1]}x{frame.shape[0]}, the video "
                                 f"started at {out.shape[2]}x{out.shape[1]} (size changes mid-video)")
            if n < len(out):
                out[n] = frame
            else:
                extra.append(frame)
            n += 1
        if n == 0:
            raise InputError(f"{reader.path}: the video has zero frames")
        frames = np.concatenate([out[:n], np.stack(extra)]) if extra else out[:n]
        return Video(frames=frames, fps=float(reader.fps))


def _require_file(path: Path, what: str) -> None:
    if not path.exists():
        raise InputError(f"{path}: no such file (expected {what})")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, expected {what} file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file (0 bytes), expected {what}")


def _probe_rotation(path: Path) -> int:
    """Display rotation (degrees counter-clockwise, multiple of 90) that phones store in the container."""
    try:
        import av

        with av.open(str(path)) as container:
            frame = next(container.decode(video=0), None)
            rotation = int(round(getattr(frame, "rotation", 0) or 0))
    except Exception:
        return 0
    return (rotation // 90 * 90) % 360 if rotation % 90 == 0 else 0


def _open_video_file(path: Path, backend: Optional[str], fps: Optional[float]):
    _require_file(path, "a video")
    errors = []
    order = [backend] if backend else (["decord", "pyav"] if _decord is not None else ["pyav"])
    rotation = _probe_rotation(path)
    if rotation and "decord" in order:
        # decord ignores the display rotation (or returns garbage for it): only PyAV applies it.
        logger.info("%s: rotated %d degrees in its metadata; reading with PyAV", path, rotation)
        order = ["pyav"]
    for name in order:
        try:
            impl = _DecordBackend(path) if name == "decord" else _PyAVBackend(path, rotation=rotation)
        except InputError:
            raise
        except Exception as exc:  # decoder-specific failures: try the next backend
            text = str(exc).strip()
            errors.append(f"{name}: {text.splitlines()[0] if text else type(exc).__name__}")
            logger.debug("%s could not open %s: %s", name, path, exc)
            continue
        if impl.num_frames == 0:
            impl.close()
            raise InputError(f"{path}: the video has zero frames")
        if not impl.fps or not np.isfinite(impl.fps) or impl.fps <= 0:
            impl.fps = float(fps) if fps else DEFAULT_FOLDER_FPS
        return impl
    raise InputError(f"{path}: not a readable video (corrupt file or unsupported format; {'; '.join(errors)})")


class _FolderBackend:
    name = "folder"

    def __init__(self, folder: Path, fps: float):
        self.files = list_frame_files(folder)
        if not self.files:
            raise InputError(f"{folder}: folder holds no image frames ({', '.join(IMAGE_EXTENSIONS)})")
        self.fps = float(fps)
        first = read_image(self.files[0])
        self.size = first.shape[:2]
        self.num_frames = len(self.files)

    def _read(self, i: int) -> np.ndarray:
        frame = read_image(self.files[i])
        if frame.shape[:2] != tuple(self.size):
            raise InputError(
                f"{self.files[i]}: frame size {frame.shape[1]}x{frame.shape[0]} differs from the first frame "
                f"{self.files[0].name} ({self.size[1]}x{self.size[0]})")
        return frame

    def get(self, indices: Sequence[int]) -> np.ndarray:
        return np.stack([self._read(i) for i in indices])

    def iterate(self) -> Iterator[np.ndarray]:
        for i in range(self.num_frames):
            yield self._read(i)

    def close(self) -> None:
        pass


class _DecordBackend:
    name = "decord"

    def __init__(self, path: Path):
        if _decord is None:
            raise RuntimeError("decord is not installed")
        self.path = path
        self._vr = _decord.VideoReader(str(path), ctx=_decord.cpu(0))
        self.num_frames = len(self._vr)
        self.fps = float(self._vr.get_avg_fps())
        if self.num_frames:
            h, w = self._vr[0].shape[:2]
            self._vr.seek(0)
            self.size = (int(h), int(w))
        else:
            self.size = (0, 0)

    def get(self, indices: Sequence[int]) -> np.ndarray:
        try:
            return self._vr.get_batch(list(indices)).asnumpy()
        except Exception as exc:
            raise InputError(f"{self.path}: corrupt video, decoding failed ({exc})") from None

    def iterate(self) -> Iterator[np.ndarray]:
        chunk = 16
        for start in range(0, self.num_frames, chunk):
            yield from self.get(range(start, min(start + chunk, self.num_frames)))

    def close(self) -> None:
        self._vr = None


class _PyAVBackend:
    """Sequential PyAV decoding with a cursor: in-order access decodes each frame once."""

    name = "pyav"

    def __init__(self, path: Path, rotation: int = 0):
        import av

        self.path = path
        self._av = av
        self._rot90 = (rotation // 90) % 4  # np.rot90 turns counter-clockwise, like the display matrix
        container = av.open(str(path))
        try:
            if not container.streams.video:
                raise InputError(
                    f"{path}: no video stream found (not a video, an empty recording, or a corrupt file)")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            self.fps = float(rate) if rate else 0.0
            # Decode the first frame to fail early on undecodable files; count frames from the container
            # header when it has one, else by demuxing packets (cheap: no decoding).
            first = next(container.decode(stream), None)
            if first is None:
                raise InputError(f"{path}: the video has zero frames")
            self.size = (int(first.height), int(first.width))
            if self._rot90 % 2:
                self.size = self.size[::-1]
            container.seek(0)
            self.num_frames = int(stream.frames) if stream.frames and stream.frames > 0 else 0
            if self.num_frames == 0:
                container.close()
                container = av.open(str(path))
                stream = container.streams.video[0]
                self.num_frames = sum(1 for p in container.demux(stream) if p.size)
        finally:
            container.close()
        self._container = None
        self._frames = None
        self._pos = 0  # index of the next frame the open decoder yields

    def _restart(self) -> None:
        self.close()
        self._container = self._av.open(str(self.path))
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        self._frames = self._container.decode(stream)
        self._pos = 0

    def _next(self, *, end_ok: bool = False) -> Optional[np.ndarray]:
        try:
            frame = next(self._frames)
        except StopIteration:
            if end_ok:
                return None
            raise InputError(f"{self.path}: video ended early at frame {self._pos} "
                             f"(its header promised {self.num_frames})") from None
        except self._av.error.FFmpegError as exc:
            raise InputError(f"{self.path}: corrupt video, decoding failed at frame {self._pos} ({exc})") from None
        self._pos += 1
        rgb = frame.to_ndarray(format="rgb24")
        return np.ascontiguousarray(np.rot90(rgb, k=self._rot90)) if self._rot90 else rgb

    def get(self, indices: Sequence[int]) -> np.ndarray:
        out = [None] * len(indices)
        order = sorted(range(len(indices)), key=lambda k: indices[k])
        current = None
        for k in order:
            target = indices[k]
            if self._frames is None or target < self._pos - (1 if current is not None else 0):
                self._restart()
                current = None
            while self._pos <= target:
                current = self._next()
            out[k] = current
        return np.stack(out)

    def iterate(self) -> Iterator[np.ndarray]:
        # Decode to the real end: container headers can miscount (edit lists, variable frame rate).
        self._restart()
        while (frame := self._next(end_ok=True)) is not None:
            yield frame
        if self._pos and self._pos != self.num_frames:
            logger.debug("%s: header says %d frames, decoded %d", self.path, self.num_frames, self._pos)
            self.num_frames = self._pos

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container = None
        self._frames = None
        self._pos = 0


# ------------------------------------------------------------------------------------------- writing

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
            self._write_one(_check_frame(frame, self.path))

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


def _check_frame(frame: np.ndarray, path: Path) -> np.ndarray:
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise InputError(f"{path}: a frame must be (H, W, 3) RGB, got shape {frame.shape}")
    if frame.dtype != np.uint8:
        raise InputError(f"{path}: frames must be uint8, got {frame.dtype}")
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise InputError(f"{path}: empty frame of shape {frame.shape}")
    return frame


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
