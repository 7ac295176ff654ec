#!/usr/bin/env python
"""Synthetic benchmark of the demo model on held-out test dancers (``magicanimate-benchmark-demo``).

    python scripts/benchmark_demo.py [--pipeline demo/model] [--clips 8 --frames 24 --gates]
"""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from magicanimate.cli.benchmark_demo import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
