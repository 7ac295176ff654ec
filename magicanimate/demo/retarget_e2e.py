"""Retargeting end to end: the demo model animates reference A with B's motion, with and without
retargeting, scored against the rendered truth (A doing M) with the demo benchmark's metrics.

Each triple (A, B, M) of :mod:`magicanimate.demo.retarget_benchmark` gives one clip: the reference image is
A's frame 0, the frames to animate are 1..N. The control videos differ only in their part maps, all made at
the part-map benchmark's size and brought to the model's size with nearest-neighbour sampling (as
:mod:`magicanimate.pipelines.inputs` resizes DensePose frames):

* ``none``: B's part maps (what a user gets today);
* ``ours``: B's part maps retargeted to A's frame-0 part map;
* ``truth``: A's own part maps doing M (the ceiling retargeting could reach).
"""

from __future__ import annotations

from typing import Dict, Sequence

import cv2
import numpy as np
from tqdm.auto import tqdm

from magicanimate.data.densepose import render_parts
from magicanimate.demo.benchmark import METRICS, TestClip, animate_clip, score_video
from magicanimate.demo.retarget_benchmark import Triple
from magicanimate.demo.synthetic.render import render_clip
from magicanimate.extraction.retarget import retarget_parts

CONTROLS = ("none", "ours", "truth")


def _resize_maps(maps: np.ndarray, size: int) -> np.ndarray:
    return np.stack([cv2.resize(m.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST) for m in maps])


def triple_clips(triple: Triple, num_frames: int, *, size: int = 64, map_size: int = 128) -> Dict[str, TestClip]:
    """One :class:`TestClip` per control of :data:`CONTROLS` (same reference and ground truth)."""
    person = render_clip(triple.identity_a, triple.motion, num_frames + 1, size)
    truth_maps = render_clip(triple.identity_a, triple.motion, num_frames + 1, map_size).parts.astype(np.int64)
    driving = render_clip(triple.identity_b, triple.motion, num_frames + 1, map_size).parts.astype(np.int64)
    maps = {"none": driving, "ours": retarget_parts(driving, truth_maps[0]), "truth": truth_maps}
    return {name: TestClip(triple.name(), person.rgb[0], render_parts(_resize_maps(maps[name][1:], size).astype(np.int64)),
                           person.rgb[1:])
            for name in CONTROLS}


def run_end_to_end(pipe, cases: Sequence[Triple], *, num_frames: int, steps: int, guidance_scale: float,
                   seed: int, context_frames: int, context_overlap: int, init_from_reference: bool = False,
                   init_strength: float = 1.0, size: int = 64, progress: bool = True) -> Dict[str, dict]:
    """``{control: {"mean": {metric: ..}, "clips": {triple: {metric: ..}}}}`` for every control."""
    results: Dict[str, dict] = {name: {"clips": {}} for name in CONTROLS}
    for triple in tqdm(cases, desc="end to end", unit="triple", disable=not progress):
        for name, clip in triple_clips(triple, num_frames, size=size).items():
            frames = animate_clip(pipe, clip, steps=steps, guidance_scale=guidance_scale, seed=seed,
                                  fusion="tapered", context_frames=context_frames, context_overlap=context_overlap,
                                  init_from_reference=init_from_reference, init_strength=init_strength)
            results[name]["clips"][clip.video_id] = score_video(frames, clip.ground_truth)
    for r in results.values():
        r["mean"] = {k: float(np.mean([s[k] for s in r["clips"].values()])) for k in METRICS}
    return results
