"""The torchscript backend end to end, with a TorchScript stand-in the tests write (no real weights here).

The stand-in only reports people when it receives the frame in BGR order (see densepose_standin), so every
test that finds a person also checks the colour order the backend feeds the model.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the pose environment has no torch; the main environment runs these")

from magicanimate.data.densepose import parts_from_rgb  # noqa: E402
from magicanimate.errors import ConfigError, InputError  # noqa: E402
from magicanimate.extraction import cli, extract as E  # noqa: E402
from magicanimate.extraction.torchscript import resolve_device  # noqa: E402
from magicanimate.media import read_video  # noqa: E402

from densepose_standin import (  # noqa: E402
    BLUE_RGB, blue_video, expected_quadrants, quadrant_person, save_standin,
)

REPO = Path(__file__).resolve().parents[2]
HW = (96, 128)
LABELS = (2, 15, 9, 23)
OTHER_LABELS = (3, 4, 5, 6)
BOX = (10.7, 20.3, 50.9, 80.6)  # integer box x 10..50 (w 40), y 20..80 (h 60)


def run_script(*args, timeout=240):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(REPO / "scripts" / "extract_densepose.py"), *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=timeout)


def assert_clean_failure(proc, out: Path, *fragments):
    assert proc.returncode == 2, proc.stderr
    # splitlines also splits at the carriage returns with which the progress bar clears its line
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0] and "Traceback" not in proc.stderr, proc.stderr
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]  # no temporary left
    return errors[0]


@pytest.fixture
def clip(tmp_path):
    path = tmp_path / "in.mp4"
    blue_video(path, 8, HW)
    return path


def static_model(tmp_path, n=8, background=None):
    path = tmp_path / "static.torchscript"
    save_standin(path, [[quadrant_person(BOX, LABELS, background=background)]] * n, HW)
    return path


def read_parts(output: Path) -> np.ndarray:
    return parts_from_rgb(read_video(output).frames)


# ------------------------------------------------------------------------------------------- control output

def test_script_pad_png_frames_equal_the_expected_parts(clip, tmp_path):
    out = tmp_path / "control"
    proc = run_script("--input", clip, "--output", out, "--backend", "torchscript",
                      "--weights", static_model(tmp_path, background="bottom"), "--fit", "pad", "--size", 128)
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stdout and "8 frames" in proc.stdout
    expected = np.zeros((128, 128), np.uint8)
    expected[16:112] = expected_quadrants(HW, BOX, LABELS, background="bottom")  # 96 rows centred in 128
    parts = read_parts(out)
    assert parts.shape == (8, 128, 128)
    np.testing.assert_array_equal(parts, np.broadcast_to(expected, parts.shape))


def test_script_crop_png_frames_equal_the_expected_parts(clip, tmp_path):
    out = tmp_path / "control"
    proc = run_script("--input", clip, "--output", out, "--backend", "torchscript",
                      "--weights", static_model(tmp_path), "--fit", "crop", "--margin", 0, "--size", 60)
    assert proc.returncode == 0, proc.stderr
    # crop: a square of the person's longer side (60) centred on the person box x 10..50, y 20..80 and kept
    # inside the frame: x 0..60, y 20..80; --size 60 keeps its scale at 1
    expected = expected_quadrants(HW, BOX, LABELS)[20:80, 0:60]
    parts = read_parts(out)
    np.testing.assert_array_equal(parts, np.broadcast_to(expected, parts.shape))


def test_mp4_control_matches_within_h264_tolerance(clip, tmp_path, capsys):
    out = tmp_path / "control.mp4"
    code = cli.main(["--input", str(clip), "--output", str(out), "--backend", "torchscript",
                     "--weights", str(static_model(tmp_path)), "--fit", "pad", "--size", "128", "--preview"])
    assert code == 0, capsys.readouterr().err
    expected = np.zeros((128, 128), np.uint8)
    expected[16:112] = expected_quadrants(HW, BOX, LABELS)
    parts = read_parts(out)
    assert parts.shape == (8, 128, 128)
    # chroma subsampling blurs part borders; away from them every pixel maps back to its part
    from scipy import ndimage
    interior = np.all([ndimage.binary_erosion(expected == k, iterations=2) | (expected != k)
                       for k in np.unique(expected)], axis=0)
    assert (parts[:, interior] == expected[interior]).mean() > 0.99
    assert (parts == expected).mean() > 0.95
    assert read_video(tmp_path / "control_preview.mp4").frames.shape == (8, 128, 256, 3)


# ------------------------------------------------------------------------------------------- one person

def two_people_model(tmp_path, n):
    """The main person stands still (swaying 1 px); another, narrower and taller, walks from the far left
    across it, scoring higher and (after the first frame) with a larger box than the main person's."""
    frames = []
    for i in range(n):
        x = 2.0 + 4 * i
        grow = 0 if i == 0 else 26  # 30 x 50, then 30 x 76 (2280 > 2400 x 0.9 / 0.99)
        other = quadrant_person((x, 30.0 - grow, x + 30.0, 80.0), OTHER_LABELS, score=0.99)
        main = quadrant_person((40.0 + i % 2, 20.0, 80.0 + i % 2, 80.0), LABELS, score=0.9)
        frames.append([other, main])
    path = tmp_path / "two.torchscript"
    save_standin(path, frames, HW)
    return path, frames


def test_two_people_the_chosen_one_is_kept_in_every_frame(tmp_path):
    n = 22
    model, frames = two_people_model(tmp_path, n)
    video = np.empty((n, *HW, 3), np.uint8)
    video[:] = BLUE_RGB
    maps, plan = E.extract_part_maps(video, 25.0, backend="torchscript", weights=str(model), size=128,
                                     fit="pad", smooth=0.0)
    assert plan.missing == []
    for i in range(n):
        expected = np.zeros((128, 128), np.uint8)
        expected[16:112] = expected_quadrants(HW, frames[i][1].box, LABELS)
        np.testing.assert_array_equal(maps[i], expected, err_msg=f"frame {i}")
    # --person 1 (leftmost in the first frame) follows the walker instead, across the main person
    maps, _ = E.extract_part_maps(video, 25.0, backend="torchscript", weights=str(model), size=128, fit="pad",
                                  smooth=0.0, person=1)
    for i in range(n):
        expected = np.zeros((128, 128), np.uint8)
        expected[16:112] = expected_quadrants(HW, frames[i][0].box, OTHER_LABELS)
        np.testing.assert_array_equal(maps[i], expected, err_msg=f"frame {i}")


def test_person_k_beyond_the_people_seen_is_an_input_error(clip, tmp_path):
    with pytest.raises(InputError, match=r"in\.mp4: --person 2: the first frame with a person \(frame 0\) "
                                         r"shows only 1 person"):
        E.extract_densepose(clip, tmp_path / "c.mp4", backend="torchscript", weights=str(static_model(tmp_path)),
                            person=2, size=64)
    with pytest.raises(ConfigError, match="--person applies to the torchscript and detectron2 backends"):
        E.extract_densepose(clip, tmp_path / "c.mp4", backend="mediapipe", person=1, size=64)
    assert not (tmp_path / "c.mp4").exists()


# ------------------------------------------------------------------------------------------- smoothing

def flickering_model(tmp_path, n, seed=0):
    """One still person whose left/right part border (label 2 | 15, 8x8 logits) sits in the middle but, in
    about a third of the frames, jumps one logit cell (5 px of its 40 px box) left or right for that frame."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        column = 4 + (int(rng.choice([-1, 1])) if rng.random() < 0.3 else 0)
        person = quadrant_person(BOX, LABELS)
        fine = np.zeros((25, 8, 8), np.float32)
        fine[2, :, :column] = 4.0
        fine[15, :, column:] = 4.0
        coarse = np.zeros((2, 8, 8), np.float32)
        coarse[1] = 4.0
        frames.append([person._replace(fine=fine, coarse=coarse)])
    path = tmp_path / "flicker.torchscript"
    save_standin(path, frames, HW)
    return path


def test_smoothing_reduces_border_flips_and_leaves_a_static_map(tmp_path):
    n = 20
    video = np.empty((n, *HW, 3), np.uint8)
    video[:] = BLUE_RGB

    def maps(model, smooth):
        return E.extract_part_maps(video, 25.0, backend="torchscript", weights=str(model), size=128, fit="pad",
                                   smooth=smooth)[0]

    static = static_model(tmp_path, n, background="right")
    np.testing.assert_array_equal(maps(static, 1.0), maps(static, 0.0))
    flicker = flickering_model(tmp_path, n)
    raw, smooth = maps(flicker, 0.0), maps(flicker, 1.0)
    flips = lambda m: int((m[1:] != m[:-1]).sum())  # noqa: E731 (the person stands still: every flip is flicker)
    assert flips(raw) > 0
    assert flips(smooth) < 0.3 * flips(raw), (flips(raw), flips(smooth))
    np.testing.assert_array_equal(smooth > 0, raw > 0)  # the silhouette does not move


# ------------------------------------------------------------------------------------------- failures

def test_missing_weights_file_names_it_and_where_to_get_it(clip, tmp_path):
    out = tmp_path / "c.mp4"
    proc = run_script("--input", clip, "--output", out, "--backend", "torchscript",
                      "--weights", tmp_path / "densepose_r50_fpn_dl.torchscript")
    assert_clean_failure(proc, out, "densepose_r50_fpn_dl.torchscript: no such file",
                         "DensePose-TorchScript", "releases", "CC BY-SA 3.0")
    proc = run_script("--input", clip, "--output", out, "--backend", "torchscript")
    assert_clean_failure(proc, out, "pass --weights", "densepose_r101_fpn_dl.torchscript")


MISSING_OP_MODEL = '''
import sys
from typing import Dict
import torch

# an operator in torchvision's namespace that no torchvision provides: registered here only, for scripting
lib = torch.library.Library("torchvision", "FRAGMENT")
lib.define("magicanimate_test_op(Tensor x) -> Tensor")
lib.impl("magicanimate_test_op", lambda x: x, "CompositeExplicitAutograd")


class NeedsTorchvision(torch.nn.Module):
    def forward(self, image: torch.Tensor, bgr: bool = True) -> Dict[str, torch.Tensor]:
        return {"pred_boxes": torch.ops.torchvision.magicanimate_test_op(image)}


torch.jit.script(NeedsTorchvision()).save(sys.argv[1])
'''


def test_missing_torchvision_operators_say_to_install_torchvision(clip, tmp_path):
    maker, model, out = tmp_path / "make.py", tmp_path / "needs_tv.torchscript", tmp_path / "c.mp4"
    maker.write_text(MISSING_OP_MODEL)
    subprocess.run([sys.executable, str(maker), str(model)], check=True, timeout=120,
                   env=dict(os.environ, OMP_NUM_THREADS="1"))
    proc = run_script("--input", clip, "--output", out, "--backend", "torchscript", "--weights", model)
    line = assert_clean_failure(proc, out, "needs_tv.torchscript", "torchvision::magicanimate_test_op",
                                "Install the torchvision release built for torch", torch.__version__)
    assert "not registered" in line


CLASSIFIER = '''
import sys
from typing import Dict
import torch


class Classifier(torch.nn.Module):
    def forward(self, image: torch.Tensor, bgr: bool = True) -> Dict[str, torch.Tensor]:
        x = image.float().mean()
        return {"logits": x.reshape(1, 1).repeat(1, 1000), "probabilities": x.reshape(1, 1).repeat(1, 1000)}


class PlainClassifier(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float().mean().reshape(1, 1).repeat(1, 1000)


torch.jit.script(Classifier()).save(sys.argv[1])
torch.jit.script(PlainClassifier()).save(sys.argv[2])
'''


def test_another_interface_names_the_keys_it_returned_and_expected(clip, tmp_path, capsys):
    maker, model, plain = tmp_path / "make.py", tmp_path / "classifier.torchscript", tmp_path / "plain.pt"
    maker.write_text(CLASSIFIER)
    subprocess.run([sys.executable, str(maker), str(model), str(plain)], check=True, timeout=120,
                   env=dict(os.environ, OMP_NUM_THREADS="1"))
    out = tmp_path / "c.mp4"
    proc = run_script("--input", clip, "--output", out, "--backend", "torchscript", "--weights", model)
    assert_clean_failure(proc, out, "classifier.torchscript", "returned keys logits, probabilities",
                         "expected pred_boxes, scores, pred_densepose_coarse_segm, pred_densepose_fine_segm")
    # a model that cannot even take the DensePose input, and a file that is not TorchScript: in-process
    for weights, message in ((plain, "running the model on a frame failed"),
                             (clip, "not a loadable TorchScript model")):
        code = cli.main(["--input", str(clip), "--output", str(out), "--backend", "torchscript",
                         "--weights", str(weights)])
        err = capsys.readouterr().err
        # the progress bar clears its line (carriage returns) before the one error line
        errors = [line for line in err.splitlines() if line.strip()][-1:]
        assert code == 2 and errors[0].startswith("error: ") and "Traceback" not in err, err
        assert message in err and str(weights) in err, err
        assert "uint8 (H, W, 3) BGR" in err or "DensePose-TorchScript" in err
        assert not out.exists()


def test_video_without_a_person_is_the_usual_error(clip, tmp_path):
    model, out = tmp_path / "nobody.torchscript", tmp_path / "control"
    save_standin(model, [[]] * 8, HW)
    proc = run_script("--input", clip, "--output", out, "--backend", "torchscript", "--weights", model)
    assert_clean_failure(proc, out, "in.mp4: no person found in any of its 8 frames")


def test_device_is_checked():
    with pytest.raises(ConfigError, match="not a torch device"):
        resolve_device(torch, "gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            resolve_device(torch, "cuda")
    assert resolve_device(torch, "cpu").type == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_runs_on_cuda(tmp_path):
    video = np.empty((4, *HW, 3), np.uint8)
    video[:] = BLUE_RGB
    model = static_model(tmp_path, 4)
    cpu, _ = E.extract_part_maps(video, 25.0, backend="torchscript", weights=str(model), size=128, fit="pad")
    gpu, _ = E.extract_part_maps(video, 25.0, backend="torchscript", weights=str(model), size=128, fit="pad",
                                 device="cuda")
    np.testing.assert_array_equal(gpu, cpu)
