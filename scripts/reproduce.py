#!/usr/bin/env python
"""Reproduce a table of the paper: animate a test split, then evaluate it (``magicanimate-reproduce``).

    python scripts/reproduce.py --config configs/eval/tiktok.yaml animation.weights.root=pretrained_models
"""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from magicanimate.cli.reproduce import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
