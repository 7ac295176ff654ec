#!/usr/bin/env python
"""DensePose motion video -> the same motion on the reference person's body (``magicanimate-retarget``);
see --help and docs/retargeting.md.

    python scripts/retarget.py --motion dance_densepose.mp4 --reference me.png --output dance_on_me.mp4 [--preview]
"""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from magicanimate.extraction.retarget_cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
