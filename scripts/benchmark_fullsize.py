#!/usr/bin/env python
"""The full-size benchmark (``magicanimate-benchmark-fullsize``): SD1.5-size random weights, loaded and run.

    python scripts/benchmark_fullsize.py --weights-dir /data/sd15-random --dtype bf16 --savings
"""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from magicanimate.cli.benchmark_fullsize import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
