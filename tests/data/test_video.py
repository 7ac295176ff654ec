"""Video/image I/O: round trips, backends, frame folders, odd sizes, atomic writes and input errors."""

import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from magicanimate import media as video_mod
from magicanimate.media import (
    VideoReader,
    VideoWriter,
    list_frame_files,
    natural_key,
    read_image,
    read_video,
    write_video,
)
from magicanimate.errors import InputError

BACKENDS = ["pyav"] + (["decord"] if video_mod.decord_available() else [])


def smooth_frames(n=10, h=48, w=64, seed=0):
    """Moving soft gradients: content H.264 encodes well, so a tight error bound is meaningful."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, size=3)
    frames = []
    for t in range(n):
        chans = [
            128 + 90 * np.sin(2 * np.pi * (x + 2 * t) / w + phase[0]),
            128 + 90 * np.cos(2 * np.pi * (y - t) / h + phase[1]),
            128 + 90 * np.sin(2 * np.pi * (x + y + 3 * t) / (w + h) + phase[2]),
        ]
        frames.append(np.stack(chans, -1))
    return np.clip(np.stack(frames), 0, 255).astype(np.uint8)


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0 ** 2 / mse)


def probe(path):
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return s.codec_context.name, s.codec_context.pix_fmt, s.average_rate, (s.height, s.width)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    frames = smooth_frames()
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    write_video(path, frames, 12.5)
    return path, frames


# ------------------------------------------------------------------------------------ write / read

@pytest.mark.parametrize("backend", BACKENDS)
def test_round_trip_count_fps_and_error_bound(clip, backend):
    path, frames = clip
    video = read_video(path, backend=backend)
    assert video.frames.shape == frames.shape and video.frames.dtype == np.uint8
    assert video.fps == pytest.approx(12.5, abs=1e-6)
    assert psnr(video.frames, frames) > 35
    # x264 at crf 18 plus swscale's fast yuv420p<->rgb paths (about -1 bias): a few levels on average
    assert np.abs(video.frames.astype(int) - frames).mean() < 4.0


@pytest.mark.parametrize("backend", video_mod.WRITER_BACKENDS)
def test_writer_backends_round_trip(tmp_path, backend):
    frames = smooth_frames(n=5)
    path = tmp_path / "w.mp4"
    with VideoWriter(path, 12.5, backend=backend) as w:
        assert w.backend == backend
        w.write(frames)
    codec, pix_fmt, rate, size = probe(path)
    assert (codec, pix_fmt, rate, size) == ("h264", "yuv420p", Fraction(25, 2), (48, 64))
    video = read_video(path)
    assert video.frames.shape == frames.shape and psnr(video.frames, frames) > 35
    with pytest.raises(KeyError):
        with VideoWriter(tmp_path / "x.mp4", 25, backend=backend) as w:
            w.write(frames)
            raise KeyError("crash")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.mp4"]


def test_writer_falls_back_to_imageio_ffmpeg(monkeypatch, tmp_path):
    """Where PyAV's FFmpeg lacks libx264, the writer pipes to imageio-ffmpeg's binary: same file format, the
    frames read back."""
    monkeypatch.setattr(video_mod.writer, "_pyav_has_libx264", lambda: False)
    frames = smooth_frames(n=6)
    with VideoWriter(tmp_path / "a.mp4", 25) as writer:
        assert writer.backend == "imageio-ffmpeg"
        writer.write(frames)
    assert probe(tmp_path / "a.mp4") == ("h264", "yuv420p", Fraction(25), (48, 64))
    video = read_video(tmp_path / "a.mp4")
    assert video.frames.shape == frames.shape and psnr(video.frames, frames) > 35


def test_written_file_is_h264_yuv420p(clip):
    codec, pix_fmt, rate, size = probe(clip[0])
    assert codec == "h264" and pix_fmt == "yuv420p"
    assert rate == Fraction(25, 2) and size == (48, 64)


def test_fractional_fps_kept(tmp_path):
    path = tmp_path / "ntsc.mp4"
    write_video(path, smooth_frames(n=4), 30000 / 1001)
    assert probe(path)[2] == Fraction(30000, 1001)
    assert read_video(path).fps == pytest.approx(29.97, abs=1e-3)


@pytest.mark.skipif(not video_mod.decord_available(), reason="decord not installed (arm64)")
def test_decord_and_pyav_agree(clip):
    a = read_video(clip[0], backend="decord").frames
    b = read_video(clip[0], backend="pyav").frames
    assert a.shape == b.shape
    assert np.abs(a.astype(int) - b).max() <= 1


def test_pyav_fallback_without_decord(clip, monkeypatch):
    """An arm64-style environment (no decord) reads through PyAV."""
    monkeypatch.setattr(video_mod.probing, "_decord", None)
    assert not video_mod.decord_available()
    reader = VideoReader(clip[0])
    assert reader.backend == "pyav"
    assert psnr(reader[:], clip[1]) > 35
    with pytest.raises(ValueError, match="backend"):
        VideoReader(clip[0], backend="opencv")


def test_module_works_where_decord_cannot_be_imported(clip):
    """A fresh interpreter in which `import decord` fails (as on arm64) imports the module and reads via PyAV."""
    code = textwrap.dedent(f"""
        import sys
        sys.modules["decord"] = None  # makes `import decord` raise ImportError
        from magicanimate import media as video
        assert not video.decord_available()
        v = video.read_video({str(clip[0])!r})
        assert v.frames.shape == (10, 48, 64, 3), v.frames.shape
        assert video.VideoReader({str(clip[0])!r}).backend == "pyav"
        print("ok")
    """)
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


@pytest.mark.skipif(not video_mod.decord_available(), reason="decord not installed (arm64)")
def test_pyav_fallback_when_decord_fails(clip, monkeypatch):
    class Broken:
        def __init__(self, path):
            raise RuntimeError("decord cannot open this")

    monkeypatch.setattr(video_mod.readers, "_DecordBackend", Broken)
    with VideoReader(clip[0]) as reader:
        assert reader.backend == "pyav" and len(reader) == 10


@pytest.mark.parametrize("rotation", [90, 180, -90])
def test_display_rotation_applied_like_ffmpeg(clip, tmp_path, rotation):
    """Phone videos store a display rotation; frames must come out upright, as ffmpeg's autorotate shows them."""
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    rotated = tmp_path / "rotated.mp4"
    subprocess.run([ffmpeg, "-y", "-loglevel", "error", "-display_rotation", str(rotation), "-i", str(clip[0]),
                    "-c", "copy", str(rotated)], check=True, timeout=60)
    gen = imageio_ffmpeg.read_frames(str(rotated))  # ffmpeg applies the rotation itself
    meta = next(gen)
    w, h = meta["size"]
    expected = np.stack([np.frombuffer(b, np.uint8).reshape(h, w, 3) for b in gen])
    video = read_video(rotated)  # default backend choice must not hand this to decord
    assert video.frames.shape == expected.shape
    assert np.abs(video.frames.astype(int) - expected).max() <= 2
    with VideoReader(rotated) as r:
        assert r.size == expected.shape[1:3]
        assert np.abs(r[4].astype(int) - expected[4]).max() <= 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_reader_random_access(clip, backend):
    path, _ = clip
    full = read_video(path, backend=backend).frames
    with VideoReader(path, backend=backend) as r:
        assert len(r) == 10 and r.size == (48, 64) and r.fps == pytest.approx(12.5)
        np.testing.assert_array_equal(r[3], full[3])
        np.testing.assert_array_equal(r[-1], full[9])
        np.testing.assert_array_equal(r[2:8:3], full[[2, 5]])
        np.testing.assert_array_equal(r[[7, 1, 7, 4]], full[[7, 1, 7, 4]])  # unsorted, repeated
        np.testing.assert_array_equal(r[0], full[0])  # backwards after a forward read
        np.testing.assert_array_equal(np.stack(list(r)), full)
        assert r[5:5].shape == (0, 48, 64, 3)
        with pytest.raises(IndexError):
            r[10]
    assert read_video(path, backend=backend, max_frames=4).frames.shape[0] == 4
    np.testing.assert_array_equal(read_video(path, backend=backend, max_frames=4).frames, full[:4])


def test_streaming_writer_from_generator(tmp_path):
    frames = smooth_frames(n=6)
    path = tmp_path / "gen.mp4"
    write_video(path, (f for f in frames), 25)
    with VideoWriter(tmp_path / "chunks.mp4", 25) as w:
        w.write(frames[:2])
        w.write(frames[2])
        w.write(frames[3:])
        assert w.frames_written == 6
    for p in (path, tmp_path / "chunks.mp4"):
        assert psnr(read_video(p).frames, frames) > 35


def test_odd_sizes_padded_with_edge_pixels(tmp_path):
    frames = smooth_frames(n=3, h=33, w=31)
    path = tmp_path / "odd.mp4"
    write_video(path, frames, 25)
    out = read_video(path).frames
    assert out.shape == (3, 34, 32, 3)
    assert psnr(out[:, :33, :31], frames) > 30  # padding went to the bottom/right, content stays in place
    # the added row/column repeat the last ones
    assert np.abs(out[:, 33].astype(int) - out[:, 32]).mean() < 3
    assert np.abs(out[:, :, 31].astype(int) - out[:, :, 30]).mean() < 3


def test_odd_sizes_crop_or_error(tmp_path):
    frames = smooth_frames(n=2, h=33, w=31)
    write_video(tmp_path / "crop.mp4", frames, 25, odd_size="crop")
    assert read_video(tmp_path / "crop.mp4").frames.shape == (2, 32, 30, 3)
    with pytest.raises(InputError, match="even"):
        write_video(tmp_path / "err.mp4", frames, 25, odd_size="error")
    assert list(tmp_path.iterdir()) == [tmp_path / "crop.mp4"]


# ------------------------------------------------------------------------------------ atomic writer

def test_writer_error_leaves_nothing(tmp_path):
    path = tmp_path / "out.mp4"
    with pytest.raises(KeyError):
        with VideoWriter(path, 25) as w:
            w.write(smooth_frames(n=3))
            raise KeyError("crash mid-video")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("how", ["bare", "exception", "exc_info"])
def test_writer_explicit_open_and_abort(tmp_path, how):
    writer = VideoWriter(tmp_path / "manual.mp4", 25).open()
    writer.write(smooth_frames(n=2))
    err = RuntimeError("stop")
    args = {"bare": (), "exception": (err,), "exc_info": (RuntimeError, err, None)}[how]
    writer.abort(*args)
    writer.close()  # no-op once aborted
    assert list(tmp_path.iterdir()) == []
    writer = VideoWriter(tmp_path / "manual.mp4", 25).open()
    writer.write(smooth_frames(n=2))
    writer.close()
    assert read_video(tmp_path / "manual.mp4").frames.shape[0] == 2


def test_writer_error_keeps_previous_file(tmp_path):
    path = tmp_path / "out.mp4"
    write_video(path, smooth_frames(n=3), 25)
    before = path.read_bytes()
    with pytest.raises(InputError, match="frame 2"):
        with VideoWriter(path, 25) as w:
            w.write(smooth_frames(n=2))
            w.write(smooth_frames(n=1, h=32, w=32))  # size change mid-stream
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]


@pytest.mark.parametrize("bad", [np.zeros((8, 8, 3), np.float32), np.zeros((8, 8), np.uint8),
                                 np.zeros((8, 8, 4), np.uint8)])
def test_writer_rejects_bad_frames(tmp_path, bad):
    with pytest.raises(InputError, match="out.mp4"):
        write_video(tmp_path / "out.mp4", [bad], 25)
    assert list(tmp_path.iterdir()) == []


def test_writer_zero_frames(tmp_path):
    with pytest.raises(InputError, match="no frames"):
        write_video(tmp_path / "out.mp4", [], 25)
    assert list(tmp_path.iterdir()) == []


def test_writer_bad_fps(tmp_path):
    with pytest.raises(ValueError, match="fps"):
        VideoWriter(tmp_path / "x.mp4", 0)


# ------------------------------------------------------------------------------------ frame folders

def test_natural_key_orders_numbers_by_value():
    names = ["f10.png", "f2.png", "f1.png", "F3.png"]
    assert sorted(names, key=natural_key) == ["f1.png", "f2.png", "F3.png", "f10.png"]


def test_frame_folder_natural_order_and_fps(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(12):  # 1..12: lexicographic order would put 10, 11, 12 before 2
        Image.fromarray(np.full((6, 8, 3), i * 20, np.uint8)).save(folder / f"{i + 1}.png")
    (folder / "notes.txt").write_text("not a frame")
    (folder / ".hidden.png").write_bytes(b"junk")
    video = read_video(folder)
    assert video.fps == 25.0
    assert video.frames.shape == (12, 6, 8, 3)
    np.testing.assert_array_equal(video.frames[:, 0, 0, 0], np.arange(12) * 20)
    assert read_video(folder, fps=8).fps == 8.0
    assert [p.name for p in list_frame_files(folder)][:3] == ["1.png", "2.png", "3.png"]
    with VideoReader(folder) as r:
        assert len(r) == 12 and r.size == (6, 8)
        np.testing.assert_array_equal(r[[11, 0]][:, 0, 0, 0], [220, 0])


def test_frame_folder_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no image frames") as e:
        read_video(empty)
    assert str(empty) in str(e.value)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(mixed / "0.png")
    Image.fromarray(np.zeros((6, 9, 3), np.uint8)).save(mixed / "1.png")
    with pytest.raises(InputError, match="1.png"):
        read_video(mixed)


# ------------------------------------------------------------------------------------ bad inputs

def test_missing_empty_and_non_video_files(tmp_path):
    with pytest.raises(InputError, match="no such file") as e:
        read_video(tmp_path / "nope.mp4")
    assert "nope.mp4" in str(e.value)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        read_video(empty)
    text = tmp_path / "text.mp4"
    text.write_text("this is not a video\n" * 20)
    with pytest.raises(InputError, match="text.mp4"):
        read_video(text)
    image = tmp_path / "still.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(image)
    with pytest.raises(InputError, match="is an image"):
        read_video(image)


@pytest.mark.parametrize("keep", [0.3, 0.7])
def test_truncated_video(clip, tmp_path, keep):
    data = clip[0].read_bytes()
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(InputError, match="broken.mp4"):
        read_video(broken)


def test_zero_frame_video(tmp_path):
    path = tmp_path / "zero.avi"
    with av.open(str(path), "w", format="avi") as c:
        s = c.add_stream("mpeg4", rate=25)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        c.start_encoding()
    with pytest.raises(InputError, match="zero frames") as e:
        read_video(path, backend="pyav")
    assert "zero.avi" in str(e.value)
    with pytest.raises(InputError, match="zero.avi"):
        read_video(path)


# ------------------------------------------------------------------------------------ images

def test_read_image_rgb_gray_palette(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(read_image(tmp_path / "rgb.png"), rgb)

    gray = np.arange(35, dtype=np.uint8).reshape(5, 7) * 7
    Image.fromarray(gray, mode="L").save(tmp_path / "gray.png")
    out = read_image(tmp_path / "gray.png")
    assert out.shape == (5, 7, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, np.repeat(gray[..., None], 3, axis=2))

    pal = Image.new("P", (3, 1))
    pal.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    pal.putdata([0, 1, 1])
    pal.save(tmp_path / "pal.png")
    np.testing.assert_array_equal(read_image(tmp_path / "pal.png")[0], [[10, 20, 30], [200, 100, 50], [200, 100, 50]])

    g16 = (np.arange(6, dtype=np.uint16).reshape(2, 3) * 13000)
    Image.fromarray(g16).save(tmp_path / "g16.png")
    out = read_image(tmp_path / "g16.png")
    np.testing.assert_array_equal(out[..., 0], (g16.astype(int) * 255 // 65535).astype(np.uint8))


def test_read_image_alpha_composited_on_white(tmp_path):
    rgba = np.zeros((1, 3, 4), np.uint8)
    rgba[0, 0] = [200, 10, 10, 255]  # opaque: unchanged
    rgba[0, 1] = [0, 0, 0, 0]        # transparent: white
    rgba[0, 2] = [0, 0, 0, 128]      # half: mid gray
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    out = read_image(tmp_path / "a.png").astype(int)
    np.testing.assert_array_equal(out[0, 0], [200, 10, 10])
    np.testing.assert_array_equal(out[0, 1], [255, 255, 255])
    assert np.all(np.abs(out[0, 2] - 127) <= 1)

    la = np.array([[[50, 0], [50, 255]]], np.uint8)
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(read_image(tmp_path / "la.png")[0], [[255] * 3, [50] * 3])

    pal = Image.new("P", (2, 1))
    pal.putpalette([10, 20, 30, 90, 80, 70] + [0] * 762)
    pal.putdata([0, 1])
    pal.info["transparency"] = 0
    pal.save(tmp_path / "pal_t.png", transparency=0)
    np.testing.assert_array_equal(read_image(tmp_path / "pal_t.png")[0], [[255, 255, 255], [90, 80, 70]])


@pytest.mark.parametrize("orientation,expect", [(6, lambda a: np.rot90(a, k=-1)), (3, lambda a: a[::-1, ::-1]),
                                                (8, lambda a: np.rot90(a, k=1)), (2, lambda a: a[:, ::-1])])
def test_read_image_applies_exif_orientation(tmp_path, orientation, expect):
    arr = np.zeros((2, 4, 3), np.uint8)
    arr[0, 0] = [255, 0, 0]
    arr[1, 3] = [0, 0, 255]
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = orientation
    img.save(tmp_path / "o.png", exif=exif.tobytes())
    np.testing.assert_array_equal(read_image(tmp_path / "o.png"), expect(arr))


def test_read_image_errors(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_image(tmp_path / "missing.png")
    (tmp_path / "text.png").write_text("hello")
    with pytest.raises(InputError, match="not an image") as e:
        read_image(tmp_path / "text.png")
    assert "text.png" in str(e.value)
    Image.fromarray(np.zeros((64, 64, 3), np.uint8) + 90).save(tmp_path / "ok.png")
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cut.png"):
        read_image(tmp_path / "cut.png")
    with pytest.raises(InputError, match="folder"):
        read_image(tmp_path)
