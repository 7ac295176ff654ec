#!/usr/bin/env python
"""Train MagicAnimate, stage 1 or 2 (``magicanimate-train``); see --help.

    python scripts/train.py --config configs/training/stage1.yaml [key=value ...]
"""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from magicanimate.cli.train import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
