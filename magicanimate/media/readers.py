"""Reading videos: a lazy random-access reader over a video file or a folder of frames, and ``read_video``.

Readers return ``uint8`` RGB arrays shaped ``(H, W, 3)`` per frame. Video files are decoded with decord
when it is installed and works on the file, otherwise with PyAV (decord has no arm64 wheel, and fails on
some files PyAV reads). A folder of png/jpg frames reads like a video (files in natural order:
``2.png`` before ``10.png``). Every problem with an input file raises
:class:`magicanimate.errors.InputError` naming the file.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Union

import numpy as np

from magicanimate.errors import InputError
from magicanimate.media import probing
from magicanimate.media.images import IMAGE_EXTENSIONS, read_image, require_file
from magicanimate.media.probing import ZERO_FRAMES, list_frame_files, probe_video

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]

DEFAULT_FOLDER_FPS = 25.0
BACKENDS = ("decord", "pyav")
# decord's bundled FFmpeg mis-sizes VP9 frames and reads one frame of a GIF: these go to PyAV
PYAV_ONLY = (".webm", ".gif")


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


def _open_video_file(path: Path, backend: Optional[str], fps: Optional[float]):
    require_file(path, "a video")
    errors = []
    order = [backend] if backend else (["decord", "pyav"] if probing.decord_available() else ["pyav"])
    rotation, problem = probe_video(path)
    if problem == ZERO_FRAMES:
        raise InputError(f"{path}: {ZERO_FRAMES}")
    if problem is not None and backend != "decord":
        raise InputError(f"{path}: not a readable video (corrupt or truncated file, or an unsupported format: "
                         f"{problem})")
    if rotation and "decord" in order:
        # decord ignores the display rotation (or returns garbage for it): only PyAV applies it.
        logger.info("%s: rotated %d degrees in its metadata; reading with PyAV", path, rotation)
        order = ["pyav"]
    if backend is None and path.suffix.lower() in PYAV_ONLY:
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
    reason = errors[-1].split(": ", 1)[-1] if errors else "no decoder"
    raise InputError(f"{path}: not a readable video (corrupt or truncated file, or an unsupported format: {reason})")


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
        _decord = probing.decord_module()
        if _decord is None:
            raise RuntimeError("decord is not installed")
        self.path = path
        self._vr = _decord.VideoReader(str(path), ctx=_decord.cpu(0))
        self.num_frames = len(self._vr)
        self.fps = float(self._vr.get_avg_fps())
        if self.num_frames:
            # the batch path is the one get() uses; decord's bundled FFmpeg fails it on some frame sizes
            # (e.g. 48 px wide) that PyAV reads, so fail here where the caller falls back to PyAV
            h, w = self._vr.get_batch([0]).asnumpy().shape[1:3]
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
