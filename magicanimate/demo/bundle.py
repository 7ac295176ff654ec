"""The bundled CPU demo: a saved pipeline in ``demo/model`` (with its own ``settings.yaml``), a reference
image and a DensePose video, found in the checkout's ``demo/`` folder.

``python scripts/animate.py`` with no inputs and no weights runs it; every other flag modifies that run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

from magicanimate.errors import WeightsError

DEMO_DIR = Path(__file__).resolve().parents[2] / "demo"
DEMO_OUTPUT = "samples/demo.mp4"
# settings whose presence means "not the demo": the user brought inputs or weights of their own
OWN_RUN_KEYS = ("reference", "motion", "weights")


def demo_inputs() -> Dict[str, Any]:
    """The bundled demo's inputs and model as inference settings; WeightsError naming what is missing."""
    needed = [DEMO_DIR / "model" / "model_index.json", DEMO_DIR / "reference.png", DEMO_DIR / "motion.mp4"]
    missing = [str(p) for p in needed if not p.exists()]
    if missing:
        raise WeightsError(
            f"the bundled demo is not available: missing {', '.join(missing)} (a checkout of the repository has "
            "them; scripts/make_demo.py rebuilds them); or animate your own inputs: scripts/animate.py --reference "
            "IMG --motion DENSEPOSE.mp4 --weights PRETRAINED_ROOT")
    return {"reference": str(needed[1]), "motion": str(needed[2]), "output": DEMO_OUTPUT,
            "weights.pipeline": str(DEMO_DIR / "model"), "device": "cpu"}


def is_demo_request(explicit_keys) -> bool:
    """True when the user named no inputs and no weights (so the bundled demo is what they want to run)."""
    return not any(key == own or key.startswith(own + ".") for key in explicit_keys for own in OWN_RUN_KEYS)
