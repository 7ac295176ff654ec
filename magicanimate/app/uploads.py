"""Quick checks of what a visitor uploaded, and raw video -> DensePose through the extraction backend.

The checks run when Generate is pressed, before a job is queued, so a wrong file is reported at once (as an
:class:`~magicanimate.errors.InputError` the page shows) rather than after waiting for a model.

A motion video that is not a DensePose rendering is converted with the motion-extraction backend
(:mod:`magicanimate.extraction`). mediapipe usually lives in its own environment (it conflicts with the core
install, see docs/motion_extraction.md), so the converter either calls it in this process when it
imports here, or runs ``scripts/extract_densepose.py`` with that environment's Python (``--pose-python``).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from magicanimate.data.densepose import validate_densepose_video
from magicanimate.media import VideoReader, read_image
from magicanimate.errors import Cancelled, ConfigError, InputError

REPO_ROOT = Path(__file__).resolve().parents[2]
EXTRACT_SCRIPT = REPO_ROOT / "scripts" / "extract_densepose.py"
# frames sampled to decide "DensePose rendering or raw video" (the validator spreads them over the video)
SAMPLE_FRAMES = 8

POSE_MISSING = (
    "{name} is a raw video, not a DensePose rendering. Converting it needs the motion-extraction backend "
    "(mediapipe, the [pose] extra), which is not available to this app. Either start the app with "
    "--pose-python PATH_TO_POSE_ENV/bin/python (see docs/motion_extraction.md for that environment), or "
    "convert the video yourself with scripts/extract_densepose.py and upload the DensePose video.")


def display_name(path) -> str:
    """The uploaded file's own name (uploads live in a temporary folder whose path means nothing to a visitor)."""
    return Path(path).name


def visitor_message(message: str, *uploads) -> str:
    """``message`` with each upload's server-side path replaced by the file's own name."""
    for path in uploads:
        if path:
            message = message.replace(str(path), display_name(path))
    return message


@dataclass
class MotionInfo:
    path: Path
    num_frames: int
    fps: float
    size: Tuple[int, int]  # (H, W)
    is_densepose: bool


def check_reference(path) -> None:
    if not path:
        raise InputError("no reference image: upload a photo of the person to animate")
    image = read_image(path)  # InputError for a non-image, naming the file
    if min(image.shape[:2]) < 8:
        raise InputError(f"{display_name(path)}: the image is {image.shape[1]}x{image.shape[0]} pixels; at least "
                         "8x8 is needed")


def check_motion(path, *, max_frames: int) -> MotionInfo:
    """Decode the motion video's header and a few frames; InputError for missing/corrupt/too long videos."""
    if not path:
        raise InputError("no motion video: upload a DensePose video, or a video of a person dancing")
    with VideoReader(path) as reader:
        total = len(reader)
        if total == 0:
            raise InputError(f"{display_name(path)}: the video has no frames")
        if total > max_frames:
            raise InputError(f"{display_name(path)}: the video has {total} frames; this page accepts at most "
                             f"{max_frames} (trim it, or start the app with a larger --max-frames)")
        picks = sorted(set(np.linspace(0, total - 1, min(total, SAMPLE_FRAMES)).round().astype(int).tolist()))
        frames = reader[picks]
        fps = float(reader.fps or 25.0)
        size = tuple(reader.size)
    if min(size) < 8:
        raise InputError(f"{display_name(path)}: frames are {size[1]}x{size[0]} pixels; at least 8x8 is needed")
    try:
        validate_densepose_video(frames, source=display_name(path))
        is_densepose = True
    except InputError:
        is_densepose = False
    return MotionInfo(Path(path), total, fps, size, is_densepose)




class MotionConverter:
    """Raw video -> DensePose video, in this process (mediapipe importable) or through ``pose_python``."""

    def __init__(self, pose_python: Optional[str] = None, *, script: Path = EXTRACT_SCRIPT):
        self.pose_python = pose_python
        self.script = script
        if pose_python is not None and not Path(pose_python).is_file():
            raise ConfigError(f"--pose-python {pose_python}: no such file (expected the Python of the pose "
                              "environment, e.g. ~/venv-pose/bin/python)")

    def available(self) -> bool:
        if self.pose_python is not None:
            return True
        from magicanimate.extraction import mediapipe_available

        return mediapipe_available()

    def describe(self) -> str:
        if self.pose_python is not None:
            return f"mediapipe via {self.pose_python}"
        return "mediapipe (in this environment)" if self.available() else "not available"

    def convert(self, source, output, *, size: int, align_to=None,
                cancelled: Optional[threading.Event] = None) -> Path:
        """Write the DensePose video ``output`` (size x size, atomically); InputError when no person is found."""
        if not self.available():
            raise InputError(POSE_MISSING.format(name=display_name(source)))
        output = Path(output)
        if self.pose_python is None:
            from magicanimate.extraction import extract_densepose

            extract_densepose(source, output, size=size, align_to=align_to)
            return output
        cmd = [self.pose_python, str(self.script), "--input", str(source), "--output", str(output),
               "--size", str(size)]
        if align_to is not None:
            cmd += ["--align-to", str(align_to)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=str(REPO_ROOT))
        while proc.poll() is None:
            if cancelled is not None and cancelled.is_set():
                proc.kill()
                proc.wait()
                raise Cancelled()
            time.sleep(0.1)
        _, err = proc.communicate()
        if proc.returncode == 2:  # the script's user-error exit: its one `error: ...` line is the message
            lines = [ln[len("error: "):] for ln in err.splitlines() if ln.startswith("error: ")]
            message = visitor_message(lines[-1] if lines else err.strip().splitlines()[-1], source)
            if display_name(source) not in message:
                message = f"{display_name(source)}: {message}"
            raise InputError(f"motion extraction failed: {message}")
        if proc.returncode != 0:
            tail = "\n".join(err.strip().splitlines()[-5:])
            print(f"motion extraction crashed (exit {proc.returncode}):\n{err}", file=sys.stderr)
            raise RuntimeError(f"motion extraction crashed (exit {proc.returncode}): {tail}")
        if not output.is_file():
            raise RuntimeError(f"motion extraction wrote no file at {output}")
        return output
