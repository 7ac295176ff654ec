"""Process memory as benchmarks report it: current and peak resident set size (RSS), in bytes.

Linux reads ``/proc/self/status`` (VmRSS, VmHWM); the peak can be reset there (``clear_refs``) to measure
one phase (e.g. loading) on its own. Elsewhere the peak is ``getrusage``'s and cannot be reset.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

_STATUS = Path("/proc/self/status")


def _status_kb(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def current_rss() -> int:
    kb = _status_kb("VmRSS")
    return kb * 1024 if kb is not None else peak_rss()


def peak_rss() -> int:
    kb = _status_kb("VmHWM")
    if kb is not None:
        return kb * 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, kB on Linux


def reset_peak_rss() -> bool:
    """Start a new peak at the current RSS (Linux); False where the platform cannot."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False
