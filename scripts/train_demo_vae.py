#!/usr/bin/env python
"""Train the demo's tiny VAE on synthetic-dancer frames (``magicanimate-train-demo-vae``).

    python scripts/train_demo_vae.py --config configs/demo/vae.yaml output_dir=outputs/demo/vae steps=4000
"""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from magicanimate.cli.train_demo_vae import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
