"""Preprocessing of the video metrics: clip builders, padding, LPIPS input conventions, video discovery."""

import numpy as np
import pytest
import torch

from magicanimate.errors import InputError
from magicanimate.evaluation import features as feats
from magicanimate.evaluation.networks import LPIPSVGG
from magicanimate.evaluation.videos import discover_videos, resize_frames
from magicanimate.evaluation.weights import randomize


def _frames(n):
    return np.arange(n, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)


def test_stride1_windows():
    clips = feats.build_clips(_frames(20), "stride1", 16)
    assert len(clips) == 5 and all(len(c) == 16 for c in clips)
    assert [int(c[0, 0, 0, 0]) for c in clips] == [0, 1, 2, 3, 4]
    short = feats.build_clips(_frames(5), "stride1", 16)
    assert len(short) == 1 and [int(v) for v in short[0][:, 0, 0, 0]] == list(range(5)) + [4] * 11


def test_chunks_pad_the_last_one():
    clips = feats.build_clips(_frames(37), "chunks", 16)
    assert len(clips) == 3
    assert int(clips[1][0, 0, 0, 0]) == 16
    assert [int(v) for v in clips[2][:, 0, 0, 0]] == [32, 33, 34, 35, 36] + [36] * 11
    assert len(feats.build_clips(_frames(32), "chunks", 16)) == 2
    with pytest.raises(ValueError, match="unknown clip builder"):
        feats.build_clips(_frames(3), "random", 16)


def test_lpips_input_conventions():
    model = randomize(LPIPSVGG(), seed=0).eval()
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (2, 32, 32, 3)).astype(np.uint8)
    b = rng.integers(0, 256, (2, 32, 32, 3)).astype(np.uint8)
    x, y = torch.from_numpy(a).permute(0, 3, 1, 2).float() / 255, torch.from_numpy(b).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        disco = feats.lpips_distances(model, a, b, input_range="0..1", batch_size=1, device="cpu")
        standard = feats.lpips_distances(model, a, b, input_range="-1..1", batch_size=4, device="cpu")
        np.testing.assert_allclose(disco, model(x, y).numpy(), rtol=1e-5)
        np.testing.assert_allclose(standard, model(2 * x - 1, 2 * y - 1).numpy(), rtol=1e-5)
    assert not np.allclose(disco, standard)


def test_resize_frames_bilinear_to_ground_truth_size():
    frames = np.full((2, 8, 6, 3), 77, np.uint8)
    out = resize_frames(frames, (4, 3))
    assert out.shape == (2, 4, 3, 3) and (out == 77).all()
    assert resize_frames(frames, (8, 6)) is frames


def test_discover_videos(tmp_path):
    from magicanimate.media import write_image

    (tmp_path / "a.mp4").write_bytes(b"")
    write_image(tmp_path / "b" / "0001.png", np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / "empty_dir").mkdir()
    assert sorted(discover_videos(tmp_path, role="generated")) == ["a", "b"]
    write_image(tmp_path / "a" / "0001.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(InputError, match="two generated videos are named 'a'"):
        discover_videos(tmp_path, role="generated")
    with pytest.raises(InputError, match="no ground-truth videos found"):
        discover_videos(tmp_path / "empty_dir", role="ground-truth")
