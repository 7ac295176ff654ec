#!/usr/bin/env python
"""GPU memory per GPU of a training config (``magicanimate-estimate-memory``); see --help.

    python scripts/estimate_memory.py --config configs/training/stage1.yaml --gpus 4 --strategy fsdp
"""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from magicanimate.cli.estimate_memory import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
