#!/usr/bin/env python
"""Raw video -> DensePose control video for MagicAnimate. See docs/motion_extraction.md.

    python scripts/extract_densepose.py --input dance.mp4 --output dance_densepose.mp4 [--preview]
"""

import sys

from magicanimate.extraction.cli import main

if __name__ == "__main__":
    sys.exit(main())
