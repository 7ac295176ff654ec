"""DensePose palette, inverse map, flips and the "is this a DensePose video?" validator."""

import cv2
import numpy as np
import pytest
from scipy import ndimage

from magicanimate.data import densepose as dp
from magicanimate.media import read_video, write_video
from magicanimate.errors import InputError

# docs/architecture.md, "Control images", written out: floor(I * 255 / 24) for I = 0..24.
DESIGN_LEVELS = [0, 10, 21, 31, 42, 53, 63, 74, 85, 95, 106, 116, 127, 138, 148, 159, 170, 180,
                 191, 201, 212, 223, 233, 244, 255]


def blob_maps(n=6, h=64, w=64, seed=0):
    """Part maps of a few moving ellipses on background, every label 1..24 drawn at least once."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(12, 52, size=(24, 2))
    maps = []
    for t in range(n):
        m = np.zeros((h, w), np.int32)
        for label in range(1, 25):
            cx, cy = centres[label - 1] + t
            cv2.ellipse(m, (int(cx), int(cy)), (5, 8), 15 * label + 5 * t, 0, 360, label, -1)
        maps.append(m)
    return np.stack(maps)


def natural_video(n=6, size=64):
    skdata = pytest.importorskip("skimage.data")
    from skimage.transform import resize

    frames = []
    for name in ("astronaut", "coffee", "chelsea"):
        img = (resize(getattr(skdata, name)(), (size, size), anti_aliasing=True) * 255).astype(np.uint8)
        frames += [np.roll(img, 3 * t, axis=1) for t in range(n // 3 or 1)]
    return np.stack(frames)


# ------------------------------------------------------------------------------------ palette

def test_levels_and_background():
    assert dp.LEVELS == DESIGN_LEVELS
    assert dp.NUM_PARTS == 24 and dp.PALETTE.shape == (25, 3) and dp.PALETTE.dtype == np.uint8
    assert tuple(dp.PALETTE[0]) == (68, 1, 84) == dp.BACKGROUND_RGB  # viridis(0): dark purple, not black
    assert tuple(dp.PALETTE[24]) == (253, 231, 37)                    # viridis(255): yellow


def test_palette_matches_opencv_viridis_in_rgb():
    # Render a gray ramp through OpenCV's colormap as an image, then sample the levels (BGR -> RGB).
    ramp = np.arange(256, dtype=np.uint8)[None, :]
    bgr = cv2.applyColorMap(ramp, cv2.COLORMAP_VIRIDIS)[0]
    np.testing.assert_array_equal(dp.PALETTE, bgr[DESIGN_LEVELS][:, ::-1])


def test_palette_close_to_published_viridis():
    # matplotlib's viridis table (_cm_listed.py) at entries 0, 63, 127, 191, 255, scaled to 0..255:
    # an independent source for the colours OpenCV's colormap approximates.
    anchors = {0: (0.267004, 0.004874, 0.329415), 6: (0.229739, 0.322361, 0.545706),
               12: (0.128729, 0.563265, 0.551229), 18: (0.360741, 0.785964, 0.387814),
               24: (0.993248, 0.906157, 0.143936)}
    for index, rgb in anchors.items():
        assert np.abs(np.asarray(rgb) * 255 - dp.PALETTE[index]).max() <= 2, index


def test_palette_colours_distinct_and_getting_lighter():
    assert len({tuple(c) for c in dp.PALETTE}) == 25
    luma = dp.PALETTE.astype(float) @ [0.299, 0.587, 0.114]
    assert np.all(np.diff(luma) > 0)


def test_palette_read_only():
    with pytest.raises(ValueError):
        dp.PALETTE[0, 0] = 0


# ------------------------------------------------------------------------------------ render / inverse

def test_render_inverse_round_trip_exact():
    maps = np.random.default_rng(1).integers(0, 25, size=(3, 17, 23))
    rgb = dp.render_parts(maps)
    assert rgb.shape == (3, 17, 23, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[maps == 0], np.tile([68, 1, 84], ((maps == 0).sum(), 1)))
    inv = dp.parts_from_rgb(rgb)
    assert inv.dtype == np.int64
    np.testing.assert_array_equal(inv, maps)


def test_render_inverse_through_png(tmp_path):
    from magicanimate.media import read_image, write_image

    m = blob_maps(n=1)[0]
    write_image(tmp_path / "dp.png", dp.render_parts(m))
    np.testing.assert_array_equal(dp.parts_from_rgb(read_image(tmp_path / "dp.png")), m)


def test_inverse_picks_nearest_colour():
    shifted = dp.PALETTE.astype(int) + np.array([-3, -1, -3])  # H.264-like shift of every colour
    np.testing.assert_array_equal(dp.parts_from_rgb(np.clip(shifted, 0, 255).astype(np.uint8)[None]),
                                  np.arange(25)[None])


def test_inverse_and_fraction_match_brute_force_on_arbitrary_colours():
    pixels = np.random.default_rng(3).integers(0, 256, size=(40, 50, 3), dtype=np.uint8)
    d2 = ((pixels[..., None, :].astype(int) - dp.PALETTE.astype(int)) ** 2).sum(-1)  # (40, 50, 25)
    np.testing.assert_array_equal(dp.parts_from_rgb(pixels), d2.argmin(-1))
    assert dp.densepose_fraction(pixels, tolerance=40) == pytest.approx((d2.min(-1) <= 1600).mean())


@pytest.mark.parametrize("bad", [np.array([[25]]), np.array([[-1]]), np.array([[1.0]])])
def test_render_rejects_bad_maps(bad):
    with pytest.raises(ValueError):
        dp.render_parts(bad)


def test_inverse_after_h264(tmp_path):
    maps = blob_maps()
    write_video(tmp_path / "dp.mp4", dp.render_parts(maps), 25)
    frames = read_video(tmp_path / "dp.mp4").frames
    bg = frames[maps == 0].astype(int)
    assert np.abs(bg - [68, 1, 84]).mean() < 6  # shifted slightly, not destroyed
    inv = dp.parts_from_rgb(frames)
    # Away from part borders (chroma subsampling blurs them) nearly every pixel maps back to its part; the
    # rest is x264 noise on these tiny, busy 64 px frames (neighbouring palette colours are only ~10 apart).
    interior = np.stack([
        np.all([ndimage.binary_erosion(m == k, iterations=2) | (m != k) for k in range(25)], axis=0)
        for m in maps])
    assert interior.mean() > 0.5
    assert (inv[interior] == maps[interior]).mean() > 0.95
    assert (inv == maps).mean() > 0.8


# ------------------------------------------------------------------------------------ flips

def test_flip_permutation_is_left_right_swap():
    perm = dp.FLIP_PERMUTATION
    assert sorted(perm) == list(range(25))
    assert all(perm[perm[i]] == i for i in range(25))
    names = dp.PART_NAMES
    assert len(names) == 25 and names[0] == "background"

    def mirror(name):
        return name.replace("left", "@").replace("right", "left").replace("@", "right")

    for i, j in enumerate(perm):
        assert names[j] == mirror(names[i]), (i, names[i], names[j])


def test_flip_parts():
    m = np.array([[0, 3, 5, 23], [1, 16, 9, 24]])
    flipped = dp.flip_parts(m)
    np.testing.assert_array_equal(flipped, [[24, 6, 4, 0], [23, 10, 15, 1]])
    np.testing.assert_array_equal(dp.flip_parts(flipped), m)


# ------------------------------------------------------------------------------------ validator

def test_fraction_closed_form():
    img = np.full((4, 10, 3), 255, np.uint8)  # white is far from every palette colour
    img[:, :5] = dp.render_parts(np.random.default_rng(0).integers(0, 25, (4, 5)))
    assert dp.densepose_fraction(img) == pytest.approx(0.5)
    assert dp.densepose_fraction(dp.render_parts(blob_maps())) == 1.0
    per_frame = dp.nearest_palette_fraction_per_frame(np.stack([img, img]))
    np.testing.assert_allclose(per_frame, [0.5, 0.5])


def test_validator_accepts_renders_png_and_h264(tmp_path):
    frames = dp.render_parts(blob_maps())
    dp.validate_densepose_video(frames, source="png.mp4")
    write_video(tmp_path / "dp.mp4", frames, 25)
    encoded = read_video(tmp_path / "dp.mp4").frames
    assert not np.array_equal(encoded, frames)  # colours really shifted
    dp.validate_densepose_video(encoded, source=str(tmp_path / "dp.mp4"))


def test_validator_rejects_natural_video(tmp_path):
    frames = natural_video()
    assert dp.densepose_fraction(frames) < 0.1
    with pytest.raises(InputError) as e:
        dp.validate_densepose_video(frames, source="dance.mp4")
    msg = str(e.value)
    assert "dance.mp4" in msg and "DensePose" in msg and "scripts/extract_densepose.py" in msg
    write_video(tmp_path / "nat.mp4", frames, 25)
    with pytest.raises(InputError, match="nat.mp4"):
        dp.validate_densepose_video(read_video(tmp_path / "nat.mp4").frames, source=str(tmp_path / "nat.mp4"))


def test_validator_rejects_black_and_empty():
    with pytest.raises(InputError, match="black.mp4"):
        dp.validate_densepose_video(np.zeros((3, 16, 16, 3), np.uint8), source="black.mp4")
    with pytest.raises(InputError, match="zero frames"):
        dp.validate_densepose_video(np.zeros((0, 16, 16, 3), np.uint8), source="empty.mp4")


def test_validator_checks_sampled_frames_of_long_videos():
    frames = dp.render_parts(blob_maps(n=40))
    keep = np.arange(len(frames)) % 4 == 0
    frames[~keep] = natural_video(n=3)[0]  # three frames in four are a raw photo
    with pytest.raises(InputError):
        dp.validate_densepose_video(frames, source="mixed.mp4", max_frames=8)
