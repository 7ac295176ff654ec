#!/usr/bin/env python
"""DensePose motion video -> the same motion on the reference person's body. See docs/retargeting.md.

    python scripts/retarget.py --motion dance_densepose.mp4 --reference-map me_densepose.png \
        --output dance_on_me.mp4 [--preview]
    python scripts/retarget.py --motion dance_densepose.mp4 --reference me.png --output dance_on_me.mp4
"""

import sys

from magicanimate.extraction.retarget_cli import main

if __name__ == "__main__":
    sys.exit(main())
