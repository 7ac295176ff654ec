"""Where computations run: the torch device a name means, and how many CPU threads to use.

Torch's default of one thread per core oversubscribes a shared CPU: with another busy process on the
machine, runs were measured 4-15x slower than with one thread. :func:`default_threads` leaves room for a
neighbour (half the cores this process may use, at most 8); ``--threads`` / ``threads:`` set it exactly.
Thread counts change the order of floating-point sums, not the computation: results agree within the
tolerances the tests use.
"""

from __future__ import annotations

import os
from typing import Optional

from magicanimate.errors import ConfigError

MAX_DEFAULT_THREADS = 8


def available_cpus() -> int:
    """CPUs this process may run on (affinity and cgroup-limited sets count, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    return max(1, min(MAX_DEFAULT_THREADS, available_cpus() // 2))


def set_threads(threads: Optional[int]) -> int:
    """Use ``threads`` intra-op threads in torch (None: :func:`default_threads`); returns the count used.

    Also exported as OMP_NUM_THREADS / MKL_NUM_THREADS so that subprocesses (data workers, decoders)
    follow the same budget.
    """
    import torch

    count = default_threads() if threads is None else int(threads)
    if count < 1:
        raise ConfigError(f"threads: must be >= 1, got {count}")
    torch.set_num_threads(count)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(count)
    return count


def resolve_device(name: str):
    """``auto`` (CUDA, then MPS, then CPU), or an explicit torch device name that exists here."""
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device: unknown device {name!r} (use auto, cpu, cuda, cuda:N or mps)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device: {name!r} requested but CUDA is not available")
    return device
