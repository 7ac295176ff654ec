#!/usr/bin/env python
"""Render a synthetic-dancer dataset (``magicanimate-make-synthetic-dataset``); see --help.

    python scripts/make_synthetic_dataset.py data/synthetic --size 64 --train 64 --val 8 --test 8 --frames 32
"""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from magicanimate.cli.make_synthetic_dataset import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
