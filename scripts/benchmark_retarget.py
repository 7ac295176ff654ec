#!/usr/bin/env python
"""Retargeting benchmark on synthetic ground truth (docs/retargeting.md).

    python scripts/benchmark_retarget.py [--triples 24 --frames 24 --size 128] [--e2e-triples 8]

Writes benchmarks/retarget.md and benchmarks/retarget.json: mean part IoU and foreground IoU of no
retargeting, a global scale + shift and ours on held-out triples (A, B, M), and the demo model's PSNR/SSIM
when it animates A with B's motion, with and without retargeting.
"""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from magicanimate.demo.retarget_report import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
