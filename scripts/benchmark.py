#!/usr/bin/env python
"""Seconds per frame and peak memory versus video length (``magicanimate-benchmark``); see --help.

    python scripts/benchmark.py --frames 32 128 --size 256 --steps 2 --out bench_256
"""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from magicanimate.cli.benchmark import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
