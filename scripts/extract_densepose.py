#!/usr/bin/env python
"""Raw video -> DensePose control video (``magicanimate-extract-densepose``); see --help and
docs/motion_extraction.md.

    python scripts/extract_densepose.py --input dance.mp4 --output dance_densepose.mp4 [--preview]
"""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from magicanimate.extraction.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
