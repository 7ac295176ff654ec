#!/usr/bin/env python
"""Reproduce the bundled demo model, dataset to demo/ (``magicanimate-make-demo``); see --help.

    python scripts/make_demo.py [--scale 0.1 run_dir=outputs/demo/quick --no-ship]
"""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from magicanimate.cli.make_demo import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
