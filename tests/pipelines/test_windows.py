"""Window schedules: parity with the original's lists, and the properties of the tapered default."""

import json

import pytest
import torch

from magicanimate.errors import ConfigError
from magicanimate.pipelines.windows import (make_schedule, padded_length, parity_windows, shard,
                                            tapered_windows)


@pytest.fixture(scope="module")
def golden_windows(golden_dir):
    return json.loads((golden_dir / "context_windows.json").read_text())


def test_parity_windows_equal_original_for_every_n(golden_windows):
    for n, expected in golden_windows["windows"].items():
        assert parity_windows(int(n), 16, 4) == expected, n


def test_parity_controlnet_chunks_equal_original(golden_windows):
    for n, expected in golden_windows["controlnet_chunks_overlap0"].items():
        assert parity_windows(int(n), 16, 0) == expected, n


def test_cli_padded_length(golden_windows):
    for n, expected in golden_windows["cli_padded_length"].items():
        assert padded_length(int(n), 16) == expected, n


def test_parity_step_shift(golden_windows):
    assert parity_windows(32, 16, 4, step=1) == golden_windows["step_dependence_example_N32_step1"]


def test_parity_schedule_is_uniform_averaging():
    sched = make_schedule(32, "parity", 16, 4)
    assert [list(w) for w in sched.windows] == parity_windows(32, 16, 4)
    assert all(set(w) == {1.0} for w in sched.weights)
    # frames 0-7 are in windows 0 and 2 (wrap-around), 12-15 in 0 and 1: plain mean over 2 windows
    cov = sched.coverage()
    assert cov[0] == 2 and cov[8] == 1 and cov[12] == 2 and cov[31] == 1


@pytest.mark.parametrize("n", [1, 2, 5, 15, 16, 17, 20, 28, 29, 40, 41, 100, 1000])
@pytest.mark.parametrize("size,overlap", [(16, 4), (16, 0), (8, 3), (24, 12), (4, 3)])
def test_tapered_covers_every_frame_once_in_total(n, size, overlap):
    sched = make_schedule(n, "tapered", size, overlap)
    covered = sorted({f for w in sched.windows for f in w})
    assert covered == list(range(n))
    for w in sched.windows:
        assert list(w) == list(range(w[0], w[0] + len(w)))  # contiguous: no wrap-around
        assert len(w) == min(size, n)
    assert sched.windows[-1][-1] == n - 1  # last window aligned to the end
    assert sched.windows[0][0] == 0
    norm = torch.zeros(n, dtype=torch.float64)
    for w, wt in zip(sched.windows, sched.normalized_weights()):
        assert (wt > 0).all()
        norm[list(w)] += wt
    torch.testing.assert_close(norm, torch.ones(n, dtype=torch.float64), rtol=0, atol=1e-12)


def test_tapered_weights_are_linear_crossfades():
    sched = make_schedule(28, "tapered", 16, 4)
    # windows [0..15], [12..27]: overlap of 4 frames with ramps 1/5..4/5 that sum to 1 without normalising
    assert [w[0] for w in sched.windows] == [0, 12]
    assert sched.weights[0][:12] == (1.0,) * 12
    assert sched.weights[0][12:] == pytest.approx((0.8, 0.6, 0.4, 0.2))
    assert sched.weights[1][:4] == pytest.approx((0.2, 0.4, 0.6, 0.8))
    assert sched.weights[1][4:] == (1.0,) * 12
    torch.testing.assert_close(sched.coverage(), torch.ones(28, dtype=torch.float64))


def test_short_video_single_window():
    for mode in ("parity", "tapered"):
        assert make_schedule(1, mode).windows == ((0,),)
        assert make_schedule(7, mode).windows == (tuple(range(7)),)
    assert tapered_windows(16, 16, 4) == [list(range(16))]


def test_bad_window_settings():
    with pytest.raises(ConfigError, match="context_overlap"):
        make_schedule(40, "tapered", 16, 16)
    with pytest.raises(ConfigError, match="context_frames"):
        make_schedule(40, "tapered", 0, 0)
    with pytest.raises(ConfigError, match="fusion mode"):
        make_schedule(40, "mean", 16, 4)
    with pytest.raises(ConfigError, match="at least one frame"):
        make_schedule(0, "tapered", 16, 4)


@pytest.mark.parametrize("k,world", [(1, 2), (3, 2), (7, 3), (2, 4), (9, 1)])
def test_shards_partition_windows_in_order(k, world):
    parts = [shard(k, r, world) for r in range(world)]
    assert sum(parts, []) == list(range(k))
