"""Training samples from videos paired with DensePose renderings.

Layouts (``DataConfig.layout``):

- ``generic``: ``<root>/<video_id>/images/*.png`` + ``<root>/<video_id>/densepose/*.png`` (frames paired by
  file name), or ``<root>/videos/<video_id>.mp4`` + ``<root>/densepose/<video_id>.mp4``.
- ``tiktok``: Jafarian & Park's ``TikTok_dataset/<00001..00340>/images/NNNN.png`` with a per-video DensePose
  folder (``densepose_dir``) holding IUV PNGs (``densepose_format: iuv``, part index I in channel
  ``iuv_part_channel``) or renderings; ``split`` names a text file of video ids.
- ``ted``: MRAA's ``TED384-v2/{train,test}/<clip>.mp4`` with a parallel DensePose tree
  ``<densepose_root>/{train,test}/<clip>.mp4``; ``split`` is the subfolder.

Every DensePose frame is turned into a part-index map (nearest palette colour for renderings, the I
channel for IUV), resized with nearest-neighbour, mirrored with the left/right label swap when flipped, and
rendered again in MagicAnimate's palette, so the ControlNet always sees exact palette colours.

Randomness: each sample is drawn from its own seed (given by :class:`SampleBatchSampler`), never from
global RNG, so data order and content are a pure function of (seed, epoch, position): a resumed run sees
exactly the batches an uninterrupted run would, whatever the number of workers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Sequence, Tuple

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler
from tqdm.auto import tqdm

from magicanimate.data.densepose import NUM_PARTS, flip_parts, parts_from_rgb, render_parts
from magicanimate.media import IMAGE_EXTENSIONS, VideoReader, list_frame_files, read_image
from magicanimate.errors import ConfigError, InputError

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm")

# Sample kinds: the target is the reference frame itself / one other frame / a clip.
SELF, FRAME, CLIP = "self", "frame", "clip"


@dataclass
class VideoEntry:
    """One training video: its frames and its DensePose (each a frame folder or a video file)."""

    video_id: str
    frames: Path
    densepose: Path
    densepose_format: str = "rendered"  # rendered | iuv
    num_frames: int = 0  # filled in by validation


# ------------------------------------------------------------------------------------------ discovery

def _videos_in(folder: Path) -> List[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)


def _discover_generic(root: Path, cfg) -> List[VideoEntry]:
    if (root / "videos").is_dir():
        dp_root = Path(cfg.densepose_root) if cfg.densepose_root else root / "densepose"
        entries = []
        for video in _videos_in(root / "videos"):
            matches = [dp_root / (video.stem + ext) for ext in VIDEO_EXTENSIONS]
            dp = next((m for m in matches if m.exists()), dp_root / video.name)
            entries.append(VideoEntry(video.stem, video, dp, cfg.densepose_format))
        return entries
    entries = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if (sub / "images").is_dir():
            entries.append(VideoEntry(sub.name, sub / "images", sub / cfg.densepose_dir, cfg.densepose_format))
    return entries


def read_split_file(path: Path) -> List[str]:
    """Video ids from a split file: one per line, ``a-b`` ranges (zero-padded like ``a``), ``#`` comments."""
    if not path.is_file():
        raise InputError(f"{path}: split file not found")
    ids: List[str] = []
    for lineno, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if "-" in line:
            lo, hi = (s.strip() for s in line.split("-", 1))
            if not (lo.isdigit() and hi.isdigit()) or int(lo) > int(hi):
                raise InputError(f"{path}:{lineno}: bad id range {raw.strip()!r} (expected e.g. 00001-00335)")
            ids.extend(str(i).zfill(len(lo)) for i in range(int(lo), int(hi) + 1))
        else:
            ids.append(line)
    return ids


def _discover_tiktok(root: Path, cfg) -> List[VideoEntry]:
    if cfg.split:
        ids = read_split_file(Path(cfg.split))
    else:
        ids = sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "images").is_dir())
    entries = []
    for vid in ids:
        folder = root / vid
        dp_base = Path(cfg.densepose_root) / vid if cfg.densepose_root else folder
        entries.append(VideoEntry(vid, folder / "images", dp_base / cfg.densepose_dir, cfg.densepose_format))
    return entries


def _discover_ted(root: Path, cfg) -> List[VideoEntry]:
    if not cfg.densepose_root:
        raise ConfigError("data.layout=ted needs data.densepose_root (the DensePose tree parallel to TED384-v2)")
    splits = [cfg.split] if cfg.split else sorted(p.name for p in root.iterdir() if p.is_dir())
    entries = []
    for split in splits:
        folder = root / split
        if not folder.is_dir():
            raise InputError(f"{folder}: TED split folder not found (data.split={split!r})")
        for video in _videos_in(folder):
            dp = Path(cfg.densepose_root) / split / video.name
            entries.append(VideoEntry(f"{split}/{video.stem}", video, dp, cfg.densepose_format))
    return entries


def discover_videos(cfg) -> List[VideoEntry]:
    """List the videos of the dataset described by a ``DataConfig`` (nothing is opened yet)."""
    root = Path(cfg.root)
    if not root.is_dir():
        raise InputError(f"{root}: dataset root not found")
    finder = {"generic": _discover_generic, "tiktok": _discover_tiktok, "ted": _discover_ted}[cfg.layout]
    entries = finder(root, cfg)
    if cfg.max_videos is not None:
        entries = entries[:cfg.max_videos]
    if not entries:
        raise InputError(f"{root}: no videos found for data.layout={cfg.layout} (see docs/training.md for "
                         "the expected folder layout)")
    return entries


# ----------------------------------------------------------------------------------------- validation

def _header_size(path: Path) -> Tuple[int, int]:
    """(H, W) of an image file from its header; InputError when unreadable."""
    try:
        with Image.open(path) as img:
            w, h = img.size
            return h, w
    except Exception as exc:
        raise InputError(f"{path}: unreadable image ({exc})") from None


def _check_entry(entry: VideoEntry, cfg) -> None:
    name = f"video {entry.video_id!r}"
    if not entry.frames.exists():
        raise InputError(f"{name}: frames not found at {entry.frames}")
    if not entry.densepose.exists():
        raise InputError(f"{name}: DensePose not found at {entry.densepose} (make it with "
                         "scripts/extract_densepose.py)")
    if entry.frames.is_dir() and entry.densepose.is_dir():
        frames = list_frame_files(entry.frames)
        dps = list_frame_files(entry.densepose)
        if not frames:
            raise InputError(f"{name}: no image frames in {entry.frames}")
        dp_stems = {p.stem: p for p in dps}
        missing = [p for p in frames if p.stem not in dp_stems]
        if missing:
            raise InputError(f"{name}: DensePose frame missing for frame {missing[0].name} (no "
                             f"{entry.densepose / missing[0].stem}.* ; {len(missing)} missing in all)")
        if len(dps) != len(frames):
            extra = sorted(set(dp_stems) - {p.stem for p in frames})
            raise InputError(f"{name}: {len(frames)} frames but {len(dps)} DensePose frames in {entry.densepose} "
                             f"(no image frame for {extra[0]})")
        if cfg.check_all_frames:
            for f in frames:
                size_f = _header_size(f)
                size_d = _header_size(dp_stems[f.stem])
                if size_f != size_d:
                    raise InputError(f"{name}: frame {f.name} is {size_f[1]}x{size_f[0]} but its DensePose "
                                     f"{dp_stems[f.stem].name} is {size_d[1]}x{size_d[0]}")
        entry.num_frames = len(frames)
    else:
        with VideoReader(entry.frames) as rf, VideoReader(entry.densepose) as rd:
            nf, nd = len(rf), len(rd)
            if nf != nd:
                raise InputError(f"{name}: {nf} frames in {entry.frames} but {nd} DensePose frames in "
                                 f"{entry.densepose}")
            if rf.size != rd.size:
                raise InputError(f"{name}: frames are {rf.size[1]}x{rf.size[0]} but DensePose frames are "
                                 f"{rd.size[1]}x{rd.size[0]}")
        entry.num_frames = nf
    if entry.densepose_format == "iuv":
        if not entry.densepose.is_dir():
            raise InputError(f"{name}: IUV DensePose must be a folder of PNG frames (lossless), got "
                             f"{entry.densepose}; use data.densepose_format=rendered for rendered videos")
        first = _densepose_file(entry, 0)
        _iuv_parts(read_image(first), cfg.iuv_part_channel, f"{name}, DensePose frame {first.name}")
    if cfg.sample == "video" and entry.num_frames < cfg.num_frames:
        raise InputError(f"{name}: {entry.num_frames} frames, fewer than data.num_frames={cfg.num_frames}")


def _densepose_file(entry: VideoEntry, index: int) -> Path:
    return list_frame_files(entry.densepose)[index]


def validate_videos(entries: Sequence[VideoEntry], cfg) -> List[VideoEntry]:
    """Check every video before training. A problem raises InputError naming the video and frame, or, with
    ``skip_bad_samples``, drops the video with a logged warning."""
    good = []
    for entry in tqdm(entries, desc="checking dataset", unit="video", leave=False):
        try:
            _check_entry(entry, cfg)
        except InputError as exc:
            if not cfg.skip_bad_samples:
                raise
            logger.warning("skipping %s", exc)
            continue
        good.append(entry)
    if not good:
        raise InputError(f"{cfg.root}: no usable video left after skipping bad ones")
    return good


# ------------------------------------------------------------------------------------ frame handling

def _iuv_parts(image: np.ndarray, channel: int, where: str) -> np.ndarray:
    parts = image[..., channel].astype(np.int64)
    if parts.max() > NUM_PARTS:
        raise InputError(f"{where}: channel {channel} holds values up to {parts.max()}, not DensePose part "
                         f"indices 0..{NUM_PARTS}; is data.iuv_part_channel right, or is this a rendering "
                         "(data.densepose_format: rendered)?")
    return parts


@dataclass
class CropParams:
    """Aspect-preserving resize to cover (height, width), then a crop at (top, left); optional mirror."""

    scaled_h: int
    scaled_w: int
    top: int
    left: int
    flip: bool


def crop_params(src_hw: Tuple[int, int], out_hw: Tuple[int, int], rng: np.random.Generator, random_crop: bool,
                hflip_prob: float) -> CropParams:
    h, w = src_hw
    oh, ow = out_hw
    scale = max(oh / h, ow / w)
    sh, sw = max(oh, round(h * scale)), max(ow, round(w * scale))
    if random_crop:
        top, left = int(rng.integers(0, sh - oh + 1)), int(rng.integers(0, sw - ow + 1))
    else:
        top, left = (sh - oh) // 2, (sw - ow) // 2
    flip = bool(rng.random() < hflip_prob) if hflip_prob > 0 else False
    return CropParams(sh, sw, top, left, flip)


def transform_image(frame: np.ndarray, p: CropParams, out_hw: Tuple[int, int]) -> np.ndarray:
    oh, ow = out_hw
    if frame.shape[:2] != (p.scaled_h, p.scaled_w):
        interp = cv2.INTER_AREA if p.scaled_h < frame.shape[0] else cv2.INTER_CUBIC
        frame = cv2.resize(frame, (p.scaled_w, p.scaled_h), interpolation=interp)
    frame = frame[p.top:p.top + oh, p.left:p.left + ow]
    return np.ascontiguousarray(frame[:, ::-1] if p.flip else frame)


def transform_parts(parts: np.ndarray, p: CropParams, out_hw: Tuple[int, int]) -> np.ndarray:
    """Same geometry as :func:`transform_image` on a part-index map (nearest; flip swaps left/right)."""
    oh, ow = out_hw
    if parts.shape[:2] != (p.scaled_h, p.scaled_w):
        parts = cv2.resize(parts.astype(np.uint8), (p.scaled_w, p.scaled_h), interpolation=cv2.INTER_NEAREST)
    parts = parts[p.top:p.top + oh, p.left:p.left + ow].astype(np.int64)
    return np.ascontiguousarray(flip_parts(parts) if p.flip else parts)


class _Source:
    """Random access to the frames and DensePose part maps of one video; opened lazily per worker."""

    def __init__(self, entry: VideoEntry, iuv_channel: int):
        self.entry = entry
        self.iuv_channel = iuv_channel
        self._frames = None
        self._dp = None

    def _open(self):
        if self._frames is None:
            self._frames = VideoReader(self.entry.frames)
            self._dp = VideoReader(self.entry.densepose)

    def frames(self, indices: Sequence[int]) -> np.ndarray:
        self._open()
        return self._frames[list(indices)]

    def parts(self, indices: Sequence[int]) -> np.ndarray:
        self._open()
        raw = self._dp[list(indices)]
        if self.entry.densepose_format == "iuv":
            return np.stack([_iuv_parts(f, self.iuv_channel, f"video {self.entry.video_id!r}, DensePose frame {i}")
                             for f, i in zip(raw, indices)])
        return parts_from_rgb(raw)


# ------------------------------------------------------------------------------------------- samples

class VideoPoseDataset(Dataset):
    """Training samples over validated videos.

    ``dataset[(index, kind, seed)]`` returns a dict:
      ``pixel_values``: (3, F, H, W) float in [-1, 1] — the target frame(s);
      ``densepose``: (3, F, H, W) float in [0, 1] — their DensePose renderings;
      ``reference``: (3, H, W) float in [-1, 1] — a frame of the same video;
      ``video_id``: str; ``frame_indices``: (F,) long; ``reference_index``: long.
    ``kind`` is ``self`` (target = reference, F=1), ``frame`` (one other frame, F=1) or ``clip``
    (``num_frames`` frames ``frame_stride`` apart). A plain int index draws the kind as stage ``sample``
    says from ``seed`` = index (used by tools; training passes explicit keys).
    """

    def __init__(self, entries: Sequence[VideoEntry], cfg):
        self.entries = list(entries)
        self.cfg = cfg
        self.out_hw = (cfg.height, cfg.width)
        self._sources = [_Source(e, cfg.iuv_part_channel) for e in self.entries]

    @classmethod
    def from_config(cls, cfg) -> "VideoPoseDataset":
        return cls(validate_videos(discover_videos(cfg), cfg), cfg)

    def __len__(self) -> int:
        return len(self.entries) * self.cfg.samples_per_video

    def __getitem__(self, key) -> Dict[str, object]:
        if isinstance(key, (int, np.integer)):
            rng = np.random.default_rng(int(key))
            kind = draw_kind(self.cfg, rng)
            key = (int(key), kind, int(key))
        index, kind, seed = key
        video = index % len(self.entries)
        tries = len(self.entries) if self.cfg.skip_bad_samples else 1
        for attempt in range(tries):
            try:
                return self._make(video, kind, np.random.default_rng(seed))
            except InputError as exc:
                if not self.cfg.skip_bad_samples:
                    raise
                logger.warning("skipping a sample of video %r: %s", self.entries[video].video_id, exc)
                video = (video + 1) % len(self.entries)
        raise InputError(f"{self.cfg.root}: could not read any sample (every video failed)")

    def _indices(self, n: int, kind: str, rng: np.random.Generator) -> Tuple[int, List[int]]:
        ref = int(rng.integers(0, n))
        if kind == SELF or n == 1:
            return ref, [ref]
        if kind == FRAME:
            other = int(rng.integers(0, n - 1))
            return ref, [other + (other >= ref)]
        k = self.cfg.num_frames
        stride = max(1, min(self.cfg.frame_stride, (n - 1) // max(1, k - 1)))
        span = (k - 1) * stride + 1
        start = int(rng.integers(0, n - span + 1))
        return ref, list(range(start, start + span, stride))

    def _make(self, video: int, kind: str, rng: np.random.Generator) -> Dict[str, object]:
        entry, src = self.entries[video], self._sources[video]
        ref, targets = self._indices(entry.num_frames, kind, rng)
        try:
            frames = src.frames([ref] + targets)
            parts = src.parts(targets)
        except InputError as exc:
            raise InputError(f"video {entry.video_id!r}, frames {[ref] + targets}: {exc}") from None
        p = crop_params(frames.shape[1:3], self.out_hw, rng, self.cfg.crop == "random", self.cfg.hflip_prob)
        imgs = np.stack([transform_image(f, p, self.out_hw) for f in frames])
        dps = render_parts(np.stack([transform_parts(m, p, self.out_hw) for m in parts]))
        imgs_t = torch.from_numpy(imgs).permute(3, 0, 1, 2).float() / 127.5 - 1.0  # (3, 1+F, H, W)
        dps_t = torch.from_numpy(dps).permute(3, 0, 1, 2).float() / 255.0
        return {
            "reference": imgs_t[:, 0].contiguous(),
            "pixel_values": imgs_t[:, 1:].contiguous(),
            "densepose": dps_t.contiguous(),
            "video_id": entry.video_id,
            "frame_indices": torch.tensor(targets, dtype=torch.long),
            "reference_index": torch.tensor(ref, dtype=torch.long),
        }


def draw_kind(cfg, rng: np.random.Generator) -> str:
    """Stage 1 (``sample: image``): SELF with prob tau0, else FRAME. Stage 2 (``video``): r < tau1 SELF,
    tau1 <= r < tau2 FRAME, else CLIP (the paper's image-video joint training)."""
    r = rng.random()
    if cfg.sample == "image":
        return SELF if r < cfg.tau0 else FRAME
    if r < cfg.tau1:
        return SELF
    return FRAME if r < cfg.tau2 else CLIP


class SampleBatchSampler(Sampler):
    """This rank's batches of sample keys ``(index, kind, seed)``, a pure function of (seed, epoch, position).

    Each epoch is a permutation of the samples; global batch ``b`` goes to rank ``b % num_replicas``. The
    sample kind is drawn per batch so a batch never mixes images and clips. ``set_position(epoch,
    skip)`` makes the next iteration start ``skip`` batches into ``epoch`` (exact resume).
    """

    def __init__(self, num_samples: int, batch_size: int, cfg, seed: int, num_replicas: int = 1, rank: int = 0):
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.cfg = cfg
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.skip = 0
        self.drop_last = True

    def __len__(self) -> int:
        # Short datasets wrap around so every rank gets at least one full batch per epoch.
        return max(1, self.num_samples // (self.batch_size * self.num_replicas))

    def set_position(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def epoch_batches(self, epoch: int) -> List[List[tuple]]:
        rng = np.random.default_rng([self.seed, epoch])
        per_step = self.batch_size * self.num_replicas
        n_batches = len(self)
        order = rng.permutation(self.num_samples)
        if len(order) < n_batches * per_step:
            order = np.resize(order, n_batches * per_step)
        batches = []
        for b in range(n_batches * self.num_replicas):
            if b % self.num_replicas != self.rank:
                continue
            kind = draw_kind(self.cfg, np.random.default_rng([self.seed, epoch, b, 1]))
            batch = []
            for j in range(self.batch_size):
                pos = b * self.batch_size + j
                sample_seed = int(np.random.SeedSequence([self.seed, epoch, pos]).generate_state(1)[0])
                item_kind = kind if self.cfg.sample == "video" else draw_kind(
                    self.cfg, np.random.default_rng([self.seed, epoch, pos, 2]))
                batch.append((int(order[pos]), item_kind, sample_seed))
            batches.append(batch)
        return batches

    def __iter__(self) -> Iterator[List[tuple]]:
        batches = self.epoch_batches(self.epoch)
        skip, self.skip = self.skip, 0
        return iter(batches[skip:])


__all__ = [
    "VideoEntry", "discover_videos", "read_split_file", "validate_videos", "VideoPoseDataset",
    "SampleBatchSampler", "draw_kind", "crop_params", "transform_image", "transform_parts", "CropParams",
    "SELF", "FRAME", "CLIP", "IMAGE_EXTENSIONS",
]
