import logging

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from magicanimate.data.datasets import (CLIP, FRAME, SELF, SampleBatchSampler, VideoPoseDataset, discover_videos,
                                        read_split_file, validate_videos)
from magicanimate.data.densepose import PALETTE, render_parts
from magicanimate.media import write_video
from magicanimate.errors import InputError
from magicanimate.training.config import DataConfig

from .data_utils import frames_for, make_folder_dataset, make_mp4_dataset, part_maps


def data_cfg(root, **kw):
    base = dict(root=str(root), height=32, width=32, crop="center", num_frames=4)
    base.update(kw)
    return OmegaConf.structured(DataConfig(**base))


def to_uint8(x):
    return ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()


def test_generic_folder_sample_shapes_and_pairing(tmp_path):
    make_folder_dataset(tmp_path, num_videos=2, num_frames=6, height=32, width=32)
    ds = VideoPoseDataset.from_config(data_cfg(tmp_path))
    assert len(ds) == 2
    s = ds[(1, FRAME, 123)]
    assert s["pixel_values"].shape == (3, 1, 32, 32) and s["densepose"].shape == (3, 1, 32, 32)
    assert s["reference"].shape == (3, 32, 32)
    assert s["pixel_values"].min() >= -1 and s["pixel_values"].max() <= 1
    assert s["frame_indices"].item() != s["reference_index"].item()
    # No resize at 32x32: target and DensePose equal the files on disk for that frame.
    f = s["frame_indices"].item()
    maps = part_maps(6, 32, 32, seed=1)
    assert np.array_equal(to_uint8(s["pixel_values"][:, 0]), frames_for(maps, seed=1)[f])
    dp = (s["densepose"][:, 0] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    assert np.array_equal(dp, render_parts(maps[f]))
    # Reconstruct-itself samples: the target is the reference frame.
    s = ds[(0, SELF, 5)]
    assert s["frame_indices"].tolist() == [s["reference_index"].item()]
    assert torch.equal(s["pixel_values"][:, 0], s["reference"])


def test_max_videos_keeps_the_first_videos_in_id_order(tmp_path):
    make_folder_dataset(tmp_path, num_videos=3, num_frames=4, height=32, width=32)
    ids = [e.video_id for e in discover_videos(data_cfg(tmp_path))]
    assert len(ids) == 3 and ids == sorted(ids)
    ds = VideoPoseDataset.from_config(data_cfg(tmp_path, max_videos=2))
    assert [e.video_id for e in ds.entries] == ids[:2]
    # the same samples as the full dataset's for those videos (a subset, not a different dataset)
    full = VideoPoseDataset.from_config(data_cfg(tmp_path))
    assert torch.equal(ds[(1, FRAME, 7)]["pixel_values"], full[(1, FRAME, 7)]["pixel_values"])
    assert len(VideoPoseDataset.from_config(data_cfg(tmp_path, max_videos=10)).entries) == 3


def test_clip_samples_have_stride(tmp_path):
    make_folder_dataset(tmp_path, num_videos=1, num_frames=12, height=32, width=32)
    ds = VideoPoseDataset.from_config(data_cfg(tmp_path, sample="video", num_frames=4, frame_stride=3))
    s = ds[(0, CLIP, 7)]
    idx = s["frame_indices"].tolist()
    assert len(idx) == 4 and np.all(np.diff(idx) == 3)
    assert s["pixel_values"].shape == (3, 4, 32, 32)
    # A stride too long for the video shrinks to fit instead of reading past the end.
    ds = VideoPoseDataset.from_config(data_cfg(tmp_path, sample="video", num_frames=4, frame_stride=10))
    idx = ds[(0, CLIP, 7)]["frame_indices"].tolist()
    assert idx[-1] < 12 and len(set(np.diff(idx))) == 1


def test_aspect_preserving_resize_and_crop(tmp_path):
    # A 40x80 (HxW) video with a square torso: squashing to 32x32 would make it twice as tall as wide.
    root = tmp_path / "ds"
    vid = root / "a"
    (vid / "images").mkdir(parents=True)
    (vid / "densepose").mkdir(parents=True)
    m = np.zeros((40, 80), np.int64)
    m[10:30, 30:50] = 1
    Image.fromarray(frames_for(m[None], 0)[0]).save(vid / "images" / "0.png")
    Image.fromarray(render_parts(m)).save(vid / "densepose" / "0.png")
    Image.fromarray(frames_for(m[None], 0)[0]).save(vid / "images" / "1.png")
    Image.fromarray(render_parts(m)).save(vid / "densepose" / "1.png")
    ds = VideoPoseDataset.from_config(data_cfg(root))
    dp = (ds[(0, FRAME, 0)]["densepose"][:, 0] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    torso = np.all(dp == PALETTE[1], axis=-1)
    rows, cols = np.nonzero(torso.any(1))[0], np.nonzero(torso.any(0))[0]
    assert abs(len(rows) - len(cols)) <= 1 and len(rows) == 16  # 20 px * 0.8, still square
    # centre crop keeps the centred square centred
    assert abs((cols[0] + cols[-1]) / 2 - 15.5) <= 1


def test_horizontal_flip_swaps_left_and_right_parts(tmp_path):
    make_folder_dataset(tmp_path, num_videos=1, num_frames=3, height=32, width=32)
    ds = VideoPoseDataset.from_config(data_cfg(tmp_path, hflip_prob=1.0))
    s = ds[(0, FRAME, 1)]
    f = s["frame_indices"].item()
    maps = part_maps(3, 32, 32, seed=0)
    assert np.array_equal(to_uint8(s["pixel_values"][:, 0]), frames_for(maps, 0)[f][:, ::-1])
    # Independent expectation: mirror the map, then exchange right hand (3) and left hand (4).
    mirrored = maps[f][:, ::-1].copy()
    expected = mirrored.copy()
    expected[mirrored == 3] = 4
    expected[mirrored == 4] = 3
    dp = (s["densepose"][:, 0] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    assert np.array_equal(dp, render_parts(expected))
    assert (maps[f] == 3).any() and (maps[f] == 4).any()


def test_tiktok_layout_iuv_and_split_file(tmp_path):
    root = make_folder_dataset(tmp_path / "TikTok_dataset", num_videos=3, num_frames=4, height=32, width=32,
                               iuv=True)
    split = tmp_path / "train.txt"
    split.write_text("# training videos\n00001-00002\n")
    assert read_split_file(split) == ["00001", "00002"]
    cfg = data_cfg(root, layout="tiktok", densepose_format="iuv", split=str(split))
    ds = VideoPoseDataset.from_config(cfg)
    assert [e.video_id for e in ds.entries] == ["00001", "00002"]
    s = ds[(1, FRAME, 3)]
    f = s["frame_indices"].item()
    dp = (s["densepose"][:, 0] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    assert np.array_equal(dp, render_parts(part_maps(4, 32, 32, seed=1)[f]))
    # The wrong channel is caught at start-up with the file named.
    with pytest.raises(InputError, match="iuv_part_channel"):
        VideoPoseDataset.from_config(data_cfg(root, layout="tiktok", densepose_format="iuv", iuv_part_channel=0))


def test_mp4_layouts_generic_and_ted(tmp_path):
    make_mp4_dataset(tmp_path / "g", num_videos=2, num_frames=5)
    ds = VideoPoseDataset.from_config(data_cfg(tmp_path / "g"))
    assert sorted(e.video_id for e in ds.entries) == ["clip0", "clip1"]
    s = ds[(0, FRAME, 0)]
    assert s["densepose"].shape == (3, 1, 32, 32)
    # H.264 shifts colours; every DensePose pixel still comes out an exact palette colour.
    dp = (s["densepose"][:, 0] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy().reshape(-1, 3)
    assert (dp[:, None, :] == PALETTE[None]).all(-1).any(-1).all()

    make_mp4_dataset(tmp_path / "TED384-v2", num_videos=2, num_frames=5, videos_dir="train", densepose_dir="x")
    make_mp4_dataset(tmp_path / "ted_dp", num_videos=2, num_frames=5, videos_dir="y", densepose_dir="train")
    cfg = data_cfg(tmp_path / "TED384-v2", layout="ted", densepose_root=str(tmp_path / "ted_dp"), split="train")
    ds = VideoPoseDataset.from_config(cfg)
    assert [e.video_id for e in ds.entries] == ["train/clip0", "train/clip1"]


def test_missing_densepose_frame_names_video_and_frame(tmp_path):
    make_folder_dataset(tmp_path, num_videos=2, num_frames=4)
    (tmp_path / "00002" / "densepose" / "0003.png").unlink()
    with pytest.raises(InputError, match=r"'00002'.*0003\.png"):
        VideoPoseDataset.from_config(data_cfg(tmp_path))


def test_mismatched_counts_and_unreadable_file(tmp_path):
    make_folder_dataset(tmp_path, num_videos=1, num_frames=4)
    Image.fromarray(render_parts(np.zeros((40, 48), np.int64))).save(tmp_path / "00001" / "densepose" / "0009.png")
    with pytest.raises(InputError, match=r"'00001'.*4 frames but 5 DensePose"):
        VideoPoseDataset.from_config(data_cfg(tmp_path))
    (tmp_path / "00001" / "densepose" / "0009.png").unlink()
    (tmp_path / "00001" / "images" / "0002.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match=r"0002\.png.*unreadable"):
        VideoPoseDataset.from_config(data_cfg(tmp_path))

    make_mp4_dataset(tmp_path / "m", num_videos=1, num_frames=5)
    write_video(tmp_path / "m" / "densepose" / "clip0.mp4", render_parts(part_maps(3, 48, 64, 0)), fps=25)
    with pytest.raises(InputError, match=r"'clip0'.*5 frames.*3 DensePose"):
        VideoPoseDataset.from_config(data_cfg(tmp_path / "m"))


def test_skip_bad_samples_warns_and_drops_the_video(tmp_path, caplog):
    make_folder_dataset(tmp_path, num_videos=3, num_frames=4)
    (tmp_path / "00002" / "densepose" / "0001.png").unlink()
    with caplog.at_level(logging.WARNING):
        ds = VideoPoseDataset.from_config(data_cfg(tmp_path, skip_bad_samples=True))
    assert [e.video_id for e in ds.entries] == ["00001", "00003"]
    assert "00002" in caplog.text


def test_batch_sampler_is_deterministic_sharded_and_resumable():
    cfg = OmegaConf.structured(DataConfig(root="x", sample="video", tau1=0.3, tau2=0.6))
    full = SampleBatchSampler(20, 2, cfg, seed=3).epoch_batches(1)
    r0 = SampleBatchSampler(20, 2, cfg, seed=3, num_replicas=2, rank=0).epoch_batches(1)
    r1 = SampleBatchSampler(20, 2, cfg, seed=3, num_replicas=2, rank=1).epoch_batches(1)
    # The two ranks split the same global sequence of batches.
    assert [b for pair in zip(r0, r1) for b in pair] == full
    indices = [k[0] for b in full for k in b]
    assert sorted(indices) == list(range(20))
    # A batch never mixes images and clips; all three kinds occur.
    assert all(len({k[1] for k in b}) == 1 for b in full)
    kinds = {b[0][1] for e in range(4) for b in SampleBatchSampler(20, 2, cfg, seed=3).epoch_batches(e)}
    assert kinds == {SELF, FRAME, CLIP}
    assert SampleBatchSampler(20, 2, cfg, seed=4).epoch_batches(1) != full
    s = SampleBatchSampler(20, 2, cfg, seed=3)
    s.set_position(1, skip=4)
    assert list(s) == full[4:]
    assert list(s) == full  # the skip applies to one iteration only
