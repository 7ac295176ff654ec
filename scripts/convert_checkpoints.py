#!/usr/bin/env python
"""Convert MagicAnimate's official pickles to safetensors (``magicanimate-convert-checkpoints``).

    python scripts/convert_checkpoints.py pretrained_models/MagicAnimate
"""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from magicanimate.cli.convert_checkpoints import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
