#!/usr/bin/env python
"""The web demo (``magicanimate-app``): a local page to animate a photo; see --help.

    python scripts/app.py                                  # the bundled CPU demo model, http://127.0.0.1:7860
    python scripts/app.py --weights pretrained_models      # + a weights folder (original layout or saved pipeline)
"""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from magicanimate.cli.app import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
