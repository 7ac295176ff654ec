"""Images: read any common image file as ``(H, W, 3)`` uint8 RGB, write one atomically.

Every problem with an input file raises :class:`magicanimate.errors.InputError` naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from magicanimate.errors import InputError
from magicanimate.utils.files import atomic_path

PathLike = Union[str, "os.PathLike[str]"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def read_image(path: PathLike) -> np.ndarray:
    """Read an image as ``(H, W, 3)`` uint8 RGB.

    EXIF orientation is applied; transparency (RGBA, LA, palette with a transparent index) is composited
    on white; grayscale, palette, CMYK and 16-bit images are converted to 8-bit RGB.
    """
    path = Path(path)
    require_file(path, "image")
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
    image = check_frame(np.asarray(image), Path(path))
    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format=Image.registered_extensions().get(path.suffix.lower()))


def require_file(path: Path, what: str) -> None:
    if not path.exists():
        raise InputError(f"{path}: no such file (expected {what})")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, expected {what} file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file (0 bytes), expected {what}")


def check_frame(frame: np.ndarray, path: Path) -> np.ndarray:
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise InputError(f"{path}: a frame must be (H, W, 3) RGB, got shape {frame.shape}")
    if frame.dtype != np.uint8:
        raise InputError(f"{path}: frames must be uint8, got {frame.dtype}")
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise InputError(f"{path}: empty frame of shape {frame.shape}")
    return frame


def image_warnings(path: PathLike, image: np.ndarray) -> list[str]:
    """What about a reference image is likely to give a poor result (one line each; empty when nothing)."""
    notes = []
    try:
        with Image.open(path) as img:
            transparent = img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in img.info
    except (OSError, ValueError):
        transparent = False
    if transparent:
        notes.append(f"{path}: has transparency; it was composited on white (the model never saw see-through "
                     "pixels): give an opaque photo for a background of your choice")
    h, w = image.shape[:2]
    if max(h, w) >= 4 * min(h, w):
        notes.append(f"{path}: is {w}x{h} (aspect {max(h, w) / min(h, w):.0f}:1); fitted to the output the person "
                     "will be tiny or cut: crop it around the person first")
    return notes
