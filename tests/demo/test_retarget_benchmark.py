"""The retargeting benchmark's pieces, and ours against the global scale + shift on fixed triples.

The four triples come from the validation split with dataset seed 1: neither the benchmark's (test split,
seed 0) nor the ones the method was developed on (seed 0). When recorded, ours beat the global fit on each
by 0.02 to 0.26 mean part IoU (0.14 on average): the test asserts every triple and a mean margin of 0.10.
"""

import numpy as np
import pytest

from magicanimate.demo import retarget_benchmark as rb

MEAN_MARGIN = 0.10


def test_ours_beats_the_global_fit_on_four_fixed_triples():
    results = rb.evaluate(rb.triples(4, split="val", seed=1), progress=False)
    margins = [r["ours"]["part_iou"] - r["global"]["part_iou"] for r in results.values()]
    assert all(m > 0 for m in margins), margins
    assert np.mean(margins) >= MEAN_MARGIN, margins
    # the person's outline too, on average (on the fourth triple it was 0.750 against 0.762 for global)
    fg = {m: np.mean([r[m]["foreground_iou"] for r in results.values()]) for m in rb.METHODS}
    assert fg["ours"] > fg["global"] > fg["none"], fg


def test_triples_pair_different_people_from_one_split():
    cases = rb.triples(5, split="test", seed=0)
    assert len({c.name() for c in cases}) == 5
    assert all(c.identity_a != c.identity_b for c in cases)
    assert all(c.identity_a % 3 == c.identity_b % 3 == c.motion % 3 == 2 for c in cases)  # the test split


def test_iou_metrics():
    a = np.zeros((8, 8), np.int64)
    a[2:6, 2:4], a[2:6, 4:6] = 2, 23
    assert rb.part_iou(a, a) == rb.foreground_iou(a, a) == 1.0
    b = a.copy()
    b[b == 23] = 24  # same outline, other label: one part each side missed entirely
    assert rb.foreground_iou(a, b) == 1.0
    assert rb.part_iou(a, b) == pytest.approx((1.0 + 0.0 + 0.0) / 3)
    assert rb.part_iou(np.zeros_like(a), np.zeros_like(a)) == 1.0
    scores = rb.score_maps(np.stack([b, a]), np.stack([a, a]))  # frame 0 is not scored
    assert scores == {"part_iou": 1.0, "foreground_iou": 1.0}


def test_global_fit_of_a_dancer_onto_itself_is_the_identity():
    case = rb.triples(1, split="val", seed=1)[0]
    same = rb.Triple(case.identity_a, case.identity_a, case.motion)
    driving, _, truth = rb.render_triple(same, 3, 64)
    np.testing.assert_array_equal(rb.global_alignment(driving, same, 64), driving)
    assert rb.score_maps(driving, truth)["part_iou"] == 1.0


def test_summary_counts_triples_where_ours_is_below_global():
    results = {"t1": {m: {"part_iou": v, "foreground_iou": v} for m, v in zip(rb.METHODS, (0.5, 0.6, 0.7))},
               "t2": {m: {"part_iou": v, "foreground_iou": v} for m, v in zip(rb.METHODS, (0.5, 0.6, 0.55))}}
    summary = rb.summarise(results)
    assert summary["ours_below_global"] == ["t2"] and summary["triples"] == 2
    assert summary["mean"]["ours"]["part_iou"] == pytest.approx(0.625)
