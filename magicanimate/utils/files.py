"""File helpers: atomic writes.

Outputs (videos, checkpoints, configs, metric tables) are written to a temporary name in the destination
folder and renamed onto the final name only when writing finished without an exception, so an interrupted
run never leaves a half-written file behind under the name a user (or a resumed run) would trust.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Union

PathLike = Union[str, "os.PathLike[str]"]


@contextlib.contextmanager
def atomic_path(path: PathLike, *, make_parents: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it onto ``path`` on success, delete it on error.

    The temporary name keeps ``path``'s suffix (writers such as PyAV or OpenCV choose the format from the
    extension) and lives in the same folder, so the final :func:`os.replace` is atomic (same filesystem).
    The temporary path does not exist when yielded; the caller creates it (a file or a folder).
    If the caller never created it, nothing is renamed and ``path`` is left untouched.

    Args:
        path: final destination.
        make_parents: create ``path``'s parent folders if missing.
    """
    final = Path(path)
    parent = final.parent
    if make_parents:
        parent.mkdir(parents=True, exist_ok=True)
    # mkstemp reserves a unique name; we remove the empty file so the caller may create a file or a dir.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=f".tmp{final.suffix}", dir=parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    if not tmp.exists():
        return
    if tmp.is_dir() and final.is_dir():
        # os.replace cannot replace a non-empty folder: move the old one aside first.
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
        os.replace(tmp, final)
        _remove(old)
    else:
        os.replace(tmp, final)


def check_writable(path: PathLike) -> Path:
    """Raise :class:`~magicanimate.errors.InputError` now if ``path`` cannot be written later: it is a folder,
    a parent is a file, or the nearest existing parent folder does not take new files (permissions, a
    read-only file system). Nothing is left behind; missing parent folders are fine (writing makes them)."""
    from magicanimate.errors import InputError

    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give a file name for the output")
    parent = path.parent
    while not parent.exists() and parent.parent != parent:
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"{path}: cannot write here: {parent} is a file, not a folder")
    try:  # a real probe: permission bits do not stop root, a read-only mount stops everyone
        fd, probe = tempfile.mkstemp(prefix=".write-check-", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(f"{path}: cannot write into the folder {parent} ({exc.strerror or exc})") from None
    return path


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
