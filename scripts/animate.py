#!/usr/bin/env python
"""Animate a reference image with a DensePose motion video (``magicanimate-animate``); see --help.

    python scripts/animate.py                      # the bundled CPU demo
    python scripts/animate.py --reference me.png --motion dance_densepose.mp4 --weights pretrained_models
"""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from magicanimate.cli.animate import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
