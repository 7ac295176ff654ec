"""The copy test (magicanimate.demo.benchmark.copy_test): target = reference, train vs held-out dancers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from magicanimate.demo.synthetic.render import render_clip
from magicanimate.demo.synthetic.body import Identity
from magicanimate.demo.synthetic.dataset import plan_dataset
from magicanimate.demo import benchmark as bm

MODEL = Path(__file__).resolve().parents[2] / "demo" / "model"


@pytest.mark.parametrize("split", ["train", "test"])
def test_copy_clips_are_the_reference_repeated_from_the_split(split):
    clips = bm.copy_test_clips(3, split, num_frames=5, backgrounds=bm.TEXTURED_BACKGROUNDS)
    planned = {v["id"]: v for v in plan_dataset({split: 400}, 0)[split]}
    assert len(clips) == 3 and len({c.video_id for c in clips}) == 3
    for c in clips:
        video = planned[c.video_id]  # a video of the split the recipe writes (prefix-stable seeds)
        assert Identity.from_seed(video["identity_seed"]).background in bm.TEXTURED_BACKGROUNDS
        frame0 = render_clip(video["identity_seed"], video["motion_seed"], 1, 64)
        np.testing.assert_array_equal(c.reference, frame0.rgb[0])
        assert c.ground_truth.shape == (5, 64, 64, 3) and c.densepose.shape == (5, 64, 64, 3)
        assert (c.ground_truth == c.reference[None]).all()
        assert (c.densepose == frame0.densepose[0][None]).all()


def test_copy_clips_without_filter_take_the_first_videos_and_report_shortage():
    clips = bm.copy_test_clips(4, "val", num_frames=2)
    assert [c.video_id for c in clips] == [f"val_{i:04d}" for i in range(4)]
    with pytest.raises(ValueError, match="backgrounds"):
        bm.copy_test_clips(2, "val", backgrounds=("no such background",))


def test_copy_test_scores_the_vae_ceiling_and_the_model():
    from magicanimate.pipelines.pipeline_magicanimate import MagicAnimatePipeline

    pipe = MagicAnimatePipeline.from_pretrained(str(MODEL))
    pipe.set_progress_bar_config(disable=True)
    res = bm.copy_test(pipe, 1, num_frames=2, steps=2, guidance_scale=2.5, seed=1, context_frames=8,
                       context_overlap=2, init_from_reference=True, init_strength=0.5, progress=False)
    assert set(res) == {"train", "test"}
    for split, r in res.items():
        clip = bm.copy_test_clips(1, split, num_frames=2, backgrounds=bm.TEXTURED_BACKGROUNDS)[0]
        direct = bm.score_video(bm.vae_reconstruction(pipe, clip.ground_truth), clip.ground_truth)
        assert r["vae"]["clips"][clip.video_id] == pytest.approx(direct)
        # stage 2 is the full pipeline on that clip, scored against the reference itself
        frames = bm.animate_clip(pipe, clip, steps=2, guidance_scale=2.5, seed=1, fusion="tapered",
                                 context_frames=8, context_overlap=2, init_from_reference=True, init_strength=0.5)
        assert r["stage2"]["clips"][clip.video_id] == pytest.approx(bm.score_video(frames, clip.ground_truth))
        assert np.isfinite(r["stage2"]["mean"]["psnr"])  # a generated video, not the reference passed through
