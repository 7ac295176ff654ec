"""The extraction pipeline and its CLI with a scripted pose backend (no mediapipe needed)."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from magicanimate.data.densepose import PART_NAMES, parts_from_rgb, validate_densepose_video
from magicanimate.media import VideoReader, read_video, write_video
from magicanimate.errors import ConfigError, InputError, WeightsError
from magicanimate.extraction import backends, cli, extract as E
from magicanimate.extraction.landmarks import PoseFrame

from extraction_helpers import body_mask, pose_frame, skeleton

REPO = Path(__file__).resolve().parents[2]


class Scripted:
    """A pose backend that returns prepared detections in order (and checks it sees every frame)."""

    def __init__(self, poses):
        self.poses = list(poses)
        self.calls = 0
        self.closed = False

    def __call__(self, frame):
        assert frame.ndim == 3 and frame.dtype == np.uint8
        pose = self.poses[self.calls]
        self.calls += 1
        return pose

    def close(self):
        self.closed = True


def walking_poses(n, shape=(64, 64)):
    return [pose_frame(skeleton(scale=0.8, shift=(2.0 + i, 4.0)), shape) for i in range(n)]


@pytest.fixture
def small_video(tmp_path):
    path = tmp_path / "in.mp4"
    frames = np.random.default_rng(0).integers(0, 255, (10, 64, 64, 3), dtype=np.uint8)
    write_video(path, frames, fps=12.0)
    return path


def test_file_extraction_keeps_frame_count_and_fps(small_video, tmp_path):
    out = tmp_path / "out" / "control.mp4"
    est = Scripted(walking_poses(10))
    res = E.extract_densepose(small_video, out, size=64, estimator=est, preview=tmp_path / "prev.mp4")
    assert est.calls == 10
    with VideoReader(out) as r:
        assert len(r) == 10 and r.fps == pytest.approx(12.0) and r.size == (64, 64)
        frames = r[:]
    validate_densepose_video(frames, source=str(out))
    assert res.num_frames == 10 and res.fps == pytest.approx(12.0) and res.missing_frames == []
    parts = parts_from_rgb(frames)
    assert (parts == PART_NAMES.index("torso_front")).sum() > 10 * 50
    prev = read_video(tmp_path / "prev.mp4")
    assert prev.frames.shape == (10, 64, 128, 3)
    assert not [p for p in out.parent.iterdir() if p.name != "control.mp4"]  # no temp files left


def test_png_folder_output_is_exact_and_replaces_only_earlier_frames(small_video, tmp_path):
    pm = np.zeros((64, 64), np.uint8)
    pm[10:50, 20:40] = 2
    pm[10:20, 25:35] = 23
    poses = [PoseFrame(mask=np.where(pm > 0, 255, 0).astype(np.uint8), parts=pm)] * 10
    out = tmp_path / "control"
    E.extract_densepose(small_video, out, size=64, fit="pad", estimator=Scripted(poses))
    assert sorted(p.name for p in out.iterdir()) == [f"{i:05d}.png" for i in range(10)]
    np.testing.assert_array_equal(parts_from_rgb(read_video(out).frames), np.broadcast_to(pm, (10, 64, 64)))
    # a second run replaces an earlier run's frames; a folder holding anything else is refused
    E.extract_densepose(small_video, out, size=64, fit="pad", fps=6.0, estimator=Scripted(poses))
    assert len(list(out.iterdir())) == 5
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"control: the folder exists and holds other files \(notes\.txt\)"):
        E.extract_densepose(small_video, out, size=64, estimator=Scripted(poses))
    assert len(list(out.iterdir())) == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["control", "in.mp4"]  # no temporary folder left


def test_fps_resampling(small_video, tmp_path):
    out = tmp_path / "c.mp4"
    est = Scripted(walking_poses(5))
    E.extract_densepose(small_video, out, size=64, fps=6.0, estimator=est)
    with VideoReader(out) as r:
        assert len(r) == 5 and r.fps == pytest.approx(6.0)
    np.testing.assert_array_equal(E.resample_indices(10, 12.0, 6.0), [0, 2, 4, 6, 8])
    np.testing.assert_array_equal(E.resample_indices(4, 10.0, 20.0), [0, 0, 1, 1, 2, 2, 3, 3])
    np.testing.assert_array_equal(E.resample_indices(4, 10.0, None), [0, 1, 2, 3])


def test_frames_without_person_hold_and_warn(caplog):
    poses = walking_poses(8)
    for i in (0, 3, 4):
        poses[i] = PoseFrame()
    with caplog.at_level(logging.WARNING):
        plan = E.plan_motion(poses, (64, 64), 25.0, size=64, source="clip.mp4")
    msg = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "clip.mp4" in msg and "3 of 8 frames (0, 3-4)" in msg and "hold" in msg
    assert plan.missing == [0, 3, 4]
    np.testing.assert_array_equal(plan.source_index, [1, 1, 2, 2, 2, 5, 6, 7])
    maps = [plan.part_map(i) for i in range(8)]
    np.testing.assert_array_equal(maps[3], maps[2])
    assert all(m.any() for m in maps)

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        plan = E.plan_motion(poses, (64, 64), 25.0, size=64, missing="background", source="clip.mp4")
    assert "rendered as background" in caplog.text
    assert not plan.part_map(3).any() and plan.part_map(2).any()


def test_no_person_at_all_is_an_error_and_writes_nothing(small_video, tmp_path):
    out = tmp_path / "c.mp4"
    with pytest.raises(InputError, match=r"in\.mp4: no person found in any of its 10 frames"):
        E.extract_densepose(small_video, out, size=64, estimator=Scripted([PoseFrame()] * 10))
    assert list(tmp_path.iterdir()) == [small_video]


def test_smoothing_reduces_label_flicker_of_jittery_detections():
    rng = np.random.default_rng(0)
    poses = []
    for i in range(24):
        lm = skeleton(scale=0.8, shift=(4.0 + 0.3 * i, 4.0))
        lm[:, :2] += rng.normal(scale=1.2, size=(33, 2))  # detector jitter
        mask = body_mask(skeleton(scale=0.8, shift=(4.0 + 0.3 * i, 4.0))).astype(np.float32)
        poses.append(PoseFrame(landmarks=lm, mask=mask))

    def flicker(smooth):
        plan = E.plan_motion(poses, (64, 64), 25.0, size=64, fit="pad", smooth=smooth)
        maps = np.stack([plan.part_map(i) for i in range(24)])
        return (maps[1:] != maps[:-1]).mean()

    raw, smoothed = flicker(0.0), flicker(1.0)
    assert smoothed < 0.6 * raw, (raw, smoothed)


def test_single_crop_for_the_whole_video():
    poses = walking_poses(6, shape=(64, 128))
    plan = E.plan_motion(poses, (64, 128), 25.0, size=32, fit="crop", margin=0.0)
    boxes = [E.framing.mask_box(p.mask) for p in poses]
    union = E.framing.union_box(boxes)
    side = max(union[2] - union[0], union[3] - union[1])
    assert plan.placement.scale == pytest.approx(32 / side)
    # a stray blob far from the skeleton in one frame does not widen the crop
    poses[2].mask = poses[2].mask.copy()
    poses[2].mask[0:3, 120:128] = 255
    same = E.plan_motion(poses, (64, 128), 25.0, size=32, fit="crop", margin=0.0)
    assert same.placement == plan.placement
    pad = E.plan_motion(poses, (64, 128), 25.0, size=32, fit="pad").placement
    assert pad.scale == pytest.approx(32 / 128)


def test_alignment_moves_motion_onto_reference():
    poses = walking_poses(3)
    ref_lm = skeleton(scale=0.5, shift=(30.0, 20.0))  # smaller person, lower right, in a 64x64 image
    plan = E.plan_motion(poses, (64, 64), 25.0, size=64, fit="pad", smooth=0.0, reference=(ref_lm, (64, 64)))
    moved = plan.placement.apply(plan.landmarks[0])
    np.testing.assert_allclose(moved[:, :2], ref_lm[:, :2], atol=1e-6)
    parts = plan.part_map(0)
    ys, xs = np.nonzero(parts)
    assert ys.min() >= 20 - 2 and xs.min() >= 30 - 2


def test_detectron2_part_maps_are_placed_and_masked():
    pm = np.zeros((64, 64), np.uint8)
    pm[10:50, 20:40] = 2
    pm[10:20, 25:35] = 23
    mask = (pm > 0).astype(np.float32)
    poses = [PoseFrame(mask=mask, parts=pm) for _ in range(4)]
    plan = E.plan_motion(poses, (64, 64), 25.0, size=64, fit="pad", smooth=1.0)
    out = plan.part_map(2)
    np.testing.assert_array_equal(out, pm)
    # person pixels the part map misses (the mask is larger) take the nearest part's label
    wider = mask.copy()
    wider[5:10, 25:35] = 1.0  # above the head part
    wider[30:40, 40:44] = 1.0  # right of the torso
    poses = [PoseFrame(mask=wider, parts=pm) for _ in range(2)]
    out = E.plan_motion(poses, (64, 64), 25.0, size=64, fit="pad", smooth=0.0).part_map(0)
    assert (out[5:10, 25:35] == 23).all() and (out[30:40, 40:44] == 2).all()
    assert (out[wider == 0] == 0).all()
    with pytest.raises(ConfigError, match="align-to needs body landmarks"):
        E.plan_motion(poses, (64, 64), 25.0, size=64, reference=(skeleton(), (64, 64)))


def test_mediapipe_missing_is_a_clear_error(small_video, tmp_path, monkeypatch):
    # mediapipe made unimportable, also where it is installed (a None entry in sys.modules fails the import)
    import sys

    for name in [n for n in sys.modules if n == "mediapipe" or n.startswith("mediapipe.")] + ["mediapipe"]:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(backends.BackendUnavailable, match="pose extra"):
        E.extract_densepose(small_video, tmp_path / "c.mp4", size=64)


def test_detectron2_missing_is_a_clear_error(small_video, tmp_path, monkeypatch):
    real_import = backends.importlib.import_module

    def no_detectron2(name, *a, **k):
        if name.split(".")[0] in ("detectron2", "densepose"):
            raise ImportError(f"No module named '{name}'")
        return real_import(name, *a, **k)

    monkeypatch.setattr(backends.importlib, "import_module", no_detectron2)
    with pytest.raises(backends.BackendUnavailable, match=r"detectron2 backend needs detectron2.*--backend mediapipe"):
        E.extract_densepose(small_video, tmp_path / "c.mp4", backend="detectron2", weights="w.pkl", config="c.yaml")
    assert not (tmp_path / "c.mp4").exists()


def test_detectron2_weights_are_required(tmp_path, monkeypatch):
    monkeypatch.setattr(backends, "import_detectron2", lambda: (None, None, None))
    with pytest.raises(WeightsError, match="needs DensePose weights"):
        backends.create_backend("detectron2", config="c.yaml")
    with pytest.raises(WeightsError, match=r"nope\.pkl: no such file"):
        backends.create_backend("detectron2", weights=str(tmp_path / "nope.pkl"), config=__file__)
    with pytest.raises(ConfigError, match="unknown extraction backend"):
        backends.create_backend("openpose")


# ------------------------------------------------------------------------------------------------ CLI

def _run_cli(capsys, *argv):
    code = cli.main(list(argv))
    return code, capsys.readouterr()


def test_cli_missing_input(tmp_path, capsys):
    code, cap = _run_cli(capsys, "--input", str(tmp_path / "nope.mp4"), "--output", str(tmp_path / "o.mp4"))
    assert code == 2 and cap.err.startswith("error: ") and "nope.mp4: no such file" in cap.err
    assert not (tmp_path / "o.mp4").exists()


def test_cli_corrupt_input(tmp_path, capsys):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x01 definitely not a video " * 50)
    code, cap = _run_cli(capsys, "--input", str(bad), "--output", str(tmp_path / "o.mp4"))
    assert code == 2 and "bad.mp4: not a readable video" in cap.err
    assert not (tmp_path / "o.mp4").exists()


def test_cli_bad_options(small_video, tmp_path, capsys):
    code, cap = _run_cli(capsys, "--input", str(small_video), "--output", str(tmp_path / "o.txt"))
    assert code == 2 and "must be a video file" in cap.err
    code, cap = _run_cli(capsys, "--input", str(small_video), "--output", str(tmp_path / "o.mp4"),
                         "--align-to", str(tmp_path / "missing.png"))
    assert code == 2 and "missing.png: no such file" in cap.err
    for option, value, message in (("--smooth", "-1", "smooth must be >= 0"), ("--size", "33", "even number"),
                                   ("--fps", "0", "fps must be a positive"), ("--margin", "-0.5", "margin")):
        code, cap = _run_cli(capsys, "--input", str(small_video), "--output", str(tmp_path / "o.mp4"),
                             option, value)
        assert code == 2 and cap.err.startswith("error: ") and message in cap.err, cap.err
    assert not (tmp_path / "o.mp4").exists()
    with pytest.raises(SystemExit) as exc:
        cli.main(["--input", str(small_video), "--output", "o.mp4", "--backend", "openpose"])
    assert exc.value.code == 2


def test_cli_runs_with_a_backend(small_video, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(E, "create_backend", lambda *a, **k: Scripted(walking_poses(10)))
    out = tmp_path / "o.mp4"
    code, cap = _run_cli(capsys, "--input", str(small_video), "--output", str(out), "--size", "64", "--preview")
    assert code == 0, cap.err
    assert "wrote" in cap.out and "10 frames" in cap.out
    assert len(read_video(out).frames) == 10 and (tmp_path / "o_preview.mp4").exists()


def test_script_reports_errors_without_traceback(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "extract_densepose.py"), "--input", str(tmp_path / "x.mp4"),
         "--output", str(tmp_path / "o.mp4")], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr


def test_detectron2_backend_pastes_the_best_detection(tmp_path, monkeypatch):
    # Stand-ins for detectron2's config and predictor: they check how the backend drives them and return two
    # DensePose instances; the main one's labels (part 2 over its whole box) must land in the frame.
    torch = pytest.importorskip("torch", reason="the pose environment has no torch; the main environment runs this")

    class Cfg:
        def __init__(self):
            self.MODEL = type("M", (), {"ROI_HEADS": type("R", (), {})()})()
            self.merged = None

        def merge_from_file(self, path):
            self.merged = path

        def freeze(self):
            pass

    class Instances:
        def __init__(self, boxes, scores):
            self.pred_boxes = type("Boxes", (), {"tensor": torch.tensor(boxes, dtype=torch.float32)})()
            self.scores = torch.tensor(scores)
            fine = torch.zeros(len(scores), 25, 4, 4)
            fine[:, 2] = 5.0  # part 2 everywhere
            coarse = torch.zeros(len(scores), 2, 4, 4)
            coarse[:, 1] = 1.0  # person everywhere
            self.pred_densepose = type("DP", (), {"fine_segm": fine, "coarse_segm": coarse})()

        def __len__(self):
            return len(self.scores)

        def has(self, name):
            return name == "pred_densepose"

    seen = {}

    def predictor(cfg):
        seen["cfg"] = cfg

        def run(bgr):
            seen["bgr"] = bgr
            # a small unsure detection and the main person (xywh 12.7, 30.2, 10.9, 20.4)
            return {"instances": Instances([[0.0, 0.0, 8.0, 8.0], [12.7, 30.2, 23.6, 50.6]], [0.3, 0.95])}
        return run

    modules = (type("C", (), {"get_cfg": staticmethod(Cfg)}),
               type("E", (), {"DefaultPredictor": staticmethod(predictor)}),
               type("D", (), {"add_densepose_config": staticmethod(lambda cfg: None)}))
    monkeypatch.setattr(backends, "import_detectron2", lambda: modules)
    weights, config = tmp_path / "w.pkl", tmp_path / "c.yaml"
    weights.write_bytes(b"x")
    config.write_text("x")
    est = backends.create_backend("detectron2", weights=str(weights), config=str(config), device="cpu")
    assert seen["cfg"].MODEL.WEIGHTS == str(weights) and seen["cfg"].merged == str(config)
    frame = np.zeros((64, 48, 3), np.uint8)
    frame[..., 0] = 200
    pose = est(frame)
    assert seen["bgr"][0, 0, 2] == 200  # the predictor gets BGR
    assert pose.parts.shape == (64, 48) and pose.landmarks is None
    ys, xs = np.nonzero(pose.parts)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (30, 49, 12, 21)
    assert (pose.parts[pose.parts > 0] == 2).all() and (pose.mask[pose.parts > 0] == 255).all()
