"""scripts/evaluate.py end to end on small videos, with seeded random metric networks (test-only flag)."""

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

from magicanimate.media import write_image, write_video
from magicanimate.evaluation.harness import RANDOM_WARNING

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "evaluate.py"


@pytest.fixture(scope="module")
def cli():
    spec = importlib.util.spec_from_file_location("evaluate_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _video(seed: int, frames: int = 2, size=(32, 40)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (1, *size, 3)).astype(np.float64)
    t = np.arange(frames)[:, None, None, None]
    return np.clip(base * 0.6 + 50 + 40 * np.sin(t / 2 + seed), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    rng = np.random.default_rng(7)
    gt, same, perturbed = root / "gt", root / "same", root / "perturbed"
    for name, seed in (("dance_a", 1), ("dance_b", 2)):
        frames = _video(seed)
        noisy = np.clip(frames + rng.normal(0, 25, frames.shape), 0, 255).astype(np.uint8)
        # ground truth as frame folders (lossless), generated as the same frames: one folder per video
        for folder, data in ((gt, frames), (same, frames), (perturbed, noisy)):
            for i, frame in enumerate(data):
                write_image(folder / name / f"{i:04d}.png", frame)
    return root


def _run(cli, capsys, *args):
    code = cli.main([*map(str, args), "--no-progress"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def results(cli, folders, tmp_path_factory):
    out = {}
    # the perturbed run overrides the FVD clip builder; with 2-frame videos both builders make the same
    # single padded clip per video, so the two runs stay comparable
    for kind, extra in (("same", []), ("perturbed", ["--fvd-clips", "chunks"])):
        path = folders / f"{kind}.json"
        code = cli.main(["--generated", str(folders / kind), "--ground-truth", str(folders / "gt"),
                         "--random-networks-for-tests", "--output", str(path), "--no-progress", *extra])
        assert code == 0
        out[kind] = json.loads(path.read_text())
    return out


def test_identical_inputs(results):
    r = results["same"]
    m, v = r["metrics"], r["variants"]
    assert r["protocol"] == "disco" and r["videos"] == 2 and r["frames"] == 4 and r["identical_frames"] == 4
    assert r["resolution"] == [[32, 40]] and r["clips"] == 2 and r["fvd_clip_builder"] == "stride1"
    assert m["l1"] == 0.0 and v["mae"] == 0.0
    assert m["psnr"] == 100.0 and v["psnr"] == 100.0  # documented cap for infinite PSNR
    assert m["ssim"] == pytest.approx(1.0) and v["ssim_standard"] == pytest.approx(1.0)
    assert m["lpips"] == 0.0
    for metric in ("fid", "fid_vid", "fvd"):
        assert m[metric] == pytest.approx(0.0, abs=1e-6), metric


def test_perturbed_copy_is_worse_on_every_metric(results):
    same, worse = results["same"], results["perturbed"]
    assert set(worse["metrics"]) == {"l1", "psnr", "ssim", "lpips", "fid", "fid_vid", "fvd"}
    for metric, value in worse["metrics"].items():
        if metric in ("psnr", "ssim"):
            assert value < same["metrics"][metric] - 1e-3, metric
        else:
            assert value > same["metrics"][metric] + 1e-6, metric
    assert worse["fvd_clip_builder"] == "chunks" and "fvd_chunks" in worse["variants"]
    v = worse["variants"]
    assert v["psnr"] < 100 and v["ssim_standard"] < 1 and v["mae"] > 0
    # L1 as DisCo defines it is the MAE divided by H*W
    assert v["l1_disco"] == pytest.approx(v["mae"] / (32 * 40))
    assert worse["per_video"]["dance_a"]["frames"] == 2


def test_random_flag_is_loud(results, cli, folders, capsys):
    for r in results.values():
        assert r["random_networks"] is True and r["WARNING"] == RANDOM_WARNING
        assert set(r["weights"].values()) == {"RANDOM"}
    code, out, err = _run(cli, capsys, "--generated", folders / "same", "--ground-truth", folders / "gt",
                          "--random-networks-for-tests", "--metrics", "l1", "psnr", "fid")
    assert code == 0
    assert RANDOM_WARNING in out and RANDOM_WARNING in err
    assert "| fid |" in out and "protocol: **disco**" in out and "videos: 2" in out and "frames: 4" in out


def test_standard_protocol_and_mp4_inputs(cli, folders, tmp_path, capsys):
    gt_dir, gen_dir = tmp_path / "gt", tmp_path / "gen"
    for name, seed in (("a", 3), ("b", 4)):
        frames = _video(seed, frames=4, size=(32, 32))
        write_video(gt_dir / f"{name}.mp4", frames, fps=8)
        # generated at twice the size: resized (bilinear) to the ground truth before comparing
        write_video(gen_dir / f"{name}.mp4", np.repeat(np.repeat(frames, 2, axis=1), 2, axis=2), fps=8)
    out_json = tmp_path / "r.json"
    code, out, _ = _run(cli, capsys, "--generated", gen_dir, "--ground-truth", gt_dir, "--protocol", "standard",
                        "--metrics", "l1", "psnr", "ssim", "--output", out_json)
    assert code == 0
    r = json.loads(out_json.read_text())
    assert r["protocol"] == "standard" and r["resolution"] == [[32, 32]] and r["frames"] == 8
    assert r["random_networks"] is False and "WARNING" not in r
    assert r["metrics"]["l1"] == r["variants"]["mae"] and r["metrics"]["psnr"] == r["variants"]["psnr"]
    assert r["metrics"]["ssim"] == r["variants"]["ssim_standard"]
    assert 0 < r["metrics"]["l1"] < 20 and math.isfinite(r["metrics"]["psnr"])
    assert "protocol: **standard**" in out


def test_errors_are_one_line_and_leave_no_output(cli, folders, tmp_path, capsys):
    out_json = tmp_path / "never.json"
    # FID-VID / FVD need two videos
    code, _, err = _run(cli, capsys, "--generated", folders / "same" / "dance_a", "--ground-truth",
                        folders / "gt" / "dance_a", "--random-networks-for-tests", "--output", out_json)
    assert code == 2 and "at least 2 videos" in err and not out_json.exists()
    one = tmp_path / "one_frame"
    write_image(one / "0000.png", _video(1)[0])
    code, _, err = _run(cli, capsys, "--generated", one, "--ground-truth", one, "--metrics", "fid",
                        "--random-networks-for-tests")
    assert code == 2 and "FID needs at least 2 frames" in err
    tiny = tmp_path / "tiny"
    write_image(tiny / "0000.png", _video(1)[0][:8, :8])
    code, _, err = _run(cli, capsys, "--generated", tiny, "--ground-truth", tiny, "--metrics", "ssim")
    assert code == 2 and "too small for ssim" in err
    # names must match
    other = tmp_path / "other"
    write_image(other / "dance_a" / "0000.png", _video(1)[0])
    write_image(other / "dance_c" / "0000.png", _video(1)[0])
    code, _, err = _run(cli, capsys, "--generated", other, "--ground-truth", folders / "gt", "--metrics", "l1")
    assert code == 2 and "dance_b" in err and "dance_c" in err and err.startswith("error:")
    # frame counts must match unless allowed
    short = tmp_path / "short"
    for name in ("dance_a", "dance_b"):
        write_image(short / name / "0000.png", _video(1)[0])
    code, _, err = _run(cli, capsys, "--generated", short, "--ground-truth", folders / "gt", "--metrics", "l1")
    assert code == 2 and "1 frames but the ground truth" in err and "--allow-length-mismatch" in err
    code, _, _ = _run(cli, capsys, "--generated", short, "--ground-truth", folders / "gt", "--metrics", "l1",
                      "--allow-length-mismatch")
    assert code == 0
    # missing weights: the file is named
    code, _, err = _run(cli, capsys, "--generated", folders / "same", "--ground-truth", folders / "gt",
                        "--metrics", "fid", "--weights-dir", tmp_path / "no_weights", "--output", out_json)
    assert code == 2 and "pt_inception-2015-12-05-6726825d.pth" in err and not out_json.exists()
    # missing input folder
    code, _, err = _run(cli, capsys, "--generated", tmp_path / "nope", "--ground-truth", folders / "gt")
    assert code == 2 and "nope" in err
