"""The synthetic-dancer world: procedural people (:mod:`.body`) moving along procedural dances
(:mod:`.motion`), rendered as RGB frames and their exact DensePose conditioning (:mod:`.render`), and
written as datasets with disjoint splits (:mod:`.dataset`). Deterministic by seed; numpy and OpenCV only."""

from magicanimate.demo.synthetic.body import Identity, Pose
from magicanimate.demo.synthetic.motion import Motion
from magicanimate.demo.synthetic.render import SyntheticClip, SyntheticFrame, render_background, render_clip, render_frame

__all__ = ["Identity", "Motion", "Pose", "SyntheticClip", "SyntheticFrame", "render_background", "render_clip",
           "render_frame"]
