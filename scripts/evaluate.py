#!/usr/bin/env python
"""Evaluate generated videos against ground truth (``magicanimate-evaluate``); see --help.

    python scripts/evaluate.py --generated G --ground-truth T --weights-dir W [--protocol disco|standard]
"""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from magicanimate.cli.evaluate import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
