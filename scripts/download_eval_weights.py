#!/usr/bin/env python
"""Fetch the published metric-network weights (``magicanimate-download-eval-weights``; needs internet).

    python scripts/download_eval_weights.py --weights-dir weights/eval [--dry-run]
"""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from magicanimate.cli.download_eval_weights import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
