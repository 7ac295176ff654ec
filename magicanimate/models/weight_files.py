"""Weight files read lazily: names, shapes and dtypes first, each tensor's data only when it is placed.

:func:`read_state_dict` returns ``{name: LazyTensor}``. A :class:`LazyTensor` knows its shape and dtype (so
keys and shapes are checked before any data is read) and reads its data on :meth:`LazyTensor.materialize`,
cast straight to the target dtype, so a model built without memory (on the ``meta`` device) is filled tensor by
tensor and the process never holds a second copy of the weights:

* ``.safetensors``: the header (JSON: name -> dtype, shape, byte range) is parsed once; each tensor is one
  ``pread`` of its bytes into fresh memory (the file's pages stay in the page cache, not in this process);
* zip torch pickles (what ``torch.save`` has written since torch 1.6, e.g. ``temporal_attention.ckpt``):
  ``torch.load(mmap=True, weights_only=True)`` maps the file; each tensor is copied out and its pages are then
  released (``madvise(MADV_DONTNEED)``, Linux), so the mapped file does not pile up in the resident set;
* older pickles are read whole (``weights_only=True``).
"""

from __future__ import annotations

import ctypes
import json
import mmap
import struct
import sys
import zipfile
from pathlib import Path
from typing import Callable, Dict, Iterable, Mapping, Optional

import torch

from ..errors import WeightsError

WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
_SAFETENSORS_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
                       "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
                       "U8": torch.uint8, "BOOL": torch.bool}


def _list(names: Iterable[str], limit: int = 40) -> str:
    names = sorted(names)
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


class LazyTensor:
    """A tensor of a weight file: ``shape`` and ``dtype`` known, data read by :meth:`materialize`."""

    __slots__ = ("shape", "dtype", "_read")

    def __init__(self, shape, dtype: torch.dtype, read: Callable[[Optional[torch.dtype]], torch.Tensor]):
        self.shape, self.dtype, self._read = torch.Size(shape), dtype, read

    def materialize(self, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
        """The data, in ``dtype`` when given and the tensor is floating point (a fresh tensor each call)."""
        cast = dtype if dtype is not None and self.dtype.is_floating_point else None
        return self._read(cast)

    def float(self) -> torch.Tensor:
        return self.materialize(torch.float32)

    def numel(self) -> int:
        return self.shape.numel()

    def __repr__(self) -> str:
        return f"LazyTensor(shape={tuple(self.shape)}, dtype={self.dtype})"


def materialize(value, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """A real tensor from a state-dict value (lazy or not), floating point cast to ``dtype``."""
    if isinstance(value, LazyTensor):
        return value.materialize(dtype)
    if dtype is not None and value.is_floating_point() and value.dtype != dtype:
        return value.to(dtype)
    return value


def read_state_dict(path: str | Path) -> Dict[str, LazyTensor]:
    """The tensors of a ``.safetensors`` file or a torch pickle, lazily (see the module docstring).

    Pickles wrapped as ``{"state_dict": ...}`` are unwrapped. Raises :class:`WeightsError` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weight file not found")
    try:
        if path.suffix == ".safetensors":
            return _read_safetensors(path)
        return _read_pickle(path)
    except WeightsError:
        raise
    except Exception as exc:  # corrupt/truncated/foreign file: one clear message
        raise WeightsError(f"{path}: cannot read weights ({type(exc).__name__}: {exc})") from exc


def _read_safetensors(path: Path) -> Dict[str, LazyTensor]:
    header_len, header = _safetensors_header(path)
    base = 8 + header_len
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _SAFETENSORS_DTYPES.get(info["dtype"])
        if dtype is None:
            raise WeightsError(f"{path}: tensor {name} has dtype {info['dtype']}, which torch cannot hold")
        start, end = info["data_offsets"]
        out[name] = LazyTensor(info["shape"], dtype, _pread_reader(path, base + start, end - start, dtype,
                                                                   info["shape"]))
    return out


def _safetensors_header(path: Path) -> tuple[int, dict]:
    with open(path, "rb") as fh:
        (header_len,) = struct.unpack("<Q", fh.read(8))
        if header_len > path.stat().st_size - 8:
            raise ValueError(f"header of {header_len} bytes in a {path.stat().st_size}-byte file")
        return header_len, json.loads(fh.read(header_len))


def _pread_reader(path: Path, offset: int, nbytes: int, dtype: torch.dtype, shape):
    def read(cast: Optional[torch.dtype]) -> torch.Tensor:
        buffer = bytearray(nbytes)
        with open(path, "rb") as fh:
            fh.seek(offset)
            got = fh.readinto(memoryview(buffer))
        if got != nbytes:
            raise WeightsError(f"{path}: truncated weight file (a tensor's bytes end past the file)")
        tensor = torch.frombuffer(buffer, dtype=dtype).reshape(shape) if nbytes else torch.empty(shape, dtype=dtype)
        return tensor.to(cast) if cast is not None and cast != dtype else tensor

    return read


def _read_pickle(path: Path) -> Dict[str, LazyTensor]:
    mapped = zipfile.is_zipfile(path)
    state = torch.load(str(path), map_location="cpu", weights_only=True, mmap=mapped)
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise WeightsError(f"{path}: expected a dict of tensors, found {type(state).__name__}")
    non_tensors = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if non_tensors:
        raise WeightsError(f"{path}: entries that are not tensors: {_list(non_tensors)}")
    return {k: LazyTensor(v.shape, v.dtype, _copy_reader(v, release=mapped)) for k, v in state.items()}


def _copy_reader(tensor: torch.Tensor, *, release: bool):
    def read(cast: Optional[torch.dtype]) -> torch.Tensor:
        out = tensor.to(dtype=cast or tensor.dtype, copy=True)
        if release:
            release_pages(tensor)
        return out

    return read


_LIBC = None
MADV_DONTNEED = 4


def release_pages(tensor: torch.Tensor) -> None:
    """Drop the resident pages of a tensor that maps an unmodified file (they are read again if touched)."""
    global _LIBC
    if not sys.platform.startswith("linux"):
        return
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None, use_errno=True)
    storage = tensor.untyped_storage()
    page = mmap.PAGESIZE
    start = storage.data_ptr() // page * page
    end = storage.data_ptr() + storage.nbytes()
    if end > start:
        _LIBC.madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), MADV_DONTNEED)


def check_weight_file(path: str | Path) -> Path:
    """Cheap integrity check before anything loads: a safetensors file's header and data fit its size; a
    zip-format torch pickle (what ``torch.save`` writes) has its central directory. Reads no tensor."""
    path = Path(path)
    size = path.stat().st_size
    try:
        if path.suffix == ".safetensors":
            header_len, header = _safetensors_header(path)
            end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
            if 8 + header_len + end != size:
                raise ValueError(f"{size} bytes, its header describes {8 + header_len + end}")
        elif zipfile.is_zipfile(path):
            zipfile.ZipFile(path).close()
        elif size < 64:
            raise ValueError(f"only {size} bytes")
    except (ValueError, struct.error, zipfile.BadZipFile, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise WeightsError(f"{path}: truncated or corrupt weight file ({exc})") from None
    return path


def find_weight_file(folder: str | Path) -> Path:
    """The diffusers weight file in ``folder`` (.safetensors preferred over .bin)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise WeightsError(f"{folder}: folder not found")
    for name in WEIGHT_NAMES:
        if (folder / name).is_file():
            return folder / name
    raise WeightsError(f"{folder}: no weight file (expected one of {', '.join(WEIGHT_NAMES)})")


def read_config(folder: str | Path) -> dict:
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise WeightsError(f"{path}: config.json not found")
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise WeightsError(f"{path}: not valid JSON ({exc})") from exc


def clean_config(config: Mapping) -> dict:
    """Config dict without diffusers' private bookkeeping keys (``_class_name``, ``_use_default_values``...)."""
    return {k: v for k, v in config.items() if not k.startswith("_")}


__all__ = ["LazyTensor", "WEIGHT_NAMES", "check_weight_file", "clean_config", "find_weight_file", "materialize",
           "read_config", "read_state_dict", "release_pages"]
