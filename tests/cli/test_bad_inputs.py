"""The newcomer's bad inputs, table-driven: each either runs or ends with exit status 2, one ``error:`` line, no
traceback and no file left behind; and no model is loaded before an input problem is found."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from magicanimate.cli import animate as animate_cli
from magicanimate.media import read_video, write_image


def _make(case: str, base: Path, tmp: Path) -> list:
    """Extra command-line arguments for one case, creating the files it needs in ``tmp``."""
    if case == "missing reference":
        return ["--reference", str(tmp / "nope.png")]
    if case in ("corrupt reference", "text as reference"):
        (tmp / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage" if case.startswith("corrupt") else b"hello\n")
        return ["--reference", str(tmp / "bad.png")]
    if case == "empty reference":
        (tmp / "empty.png").write_bytes(b"")
        return ["--reference", str(tmp / "empty.png")]
    if case in ("1x1 reference", "extreme aspect reference", "RGBA reference", "grayscale reference"):
        image = {"1x1 reference": Image.new("RGB", (1, 1)), "extreme aspect reference": Image.new("RGB", (2000, 50)),
                 "RGBA reference": Image.new("RGBA", (40, 60), (200, 10, 10, 100)),
                 "grayscale reference": Image.new("L", (50, 70), 90)}[case]
        image.save(tmp / "r.png")
        return ["--reference", str(tmp / "r.png")]
    if case == "missing motion":
        return ["--motion", str(tmp / "nope.mp4")]
    if case in ("corrupt motion", "text as motion", "empty motion"):
        data = {"corrupt motion": b"\x00\x00\x00\x18ftypmp42 junk" * 20, "text as motion": b"not a video\n",
                "empty motion": b""}[case]
        (tmp / "m.mp4").write_bytes(data)
        return ["--motion", str(tmp / "m.mp4")]
    if case == "truncated motion":
        (tmp / "m.mp4").write_bytes((base / "motion.mp4").read_bytes()[:1500])
        return ["--motion", str(tmp / "m.mp4")]
    if case == "non-DensePose motion":
        return ["--motion", str(base / "raw.mp4")]
    if case == "1-frame motion":
        return ["--motion", str(base / "one.mp4")]
    if case.startswith("pipeline with"):
        pipe = tmp / "pipe"
        shutil.copytree(base / "pipe", pipe)
        weights = pipe / "unet" / "diffusion_pytorch_model.safetensors"
        if case.endswith("missing weights"):
            weights.unlink()
        else:
            weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
        return ["--pipeline", str(pipe)]
    if case == "read-only output folder":
        folder = tmp / "ro"
        folder.mkdir()
        folder.chmod(0o555)
        if os.access(folder, os.W_OK):  # root ignores permission bits: a read-only file system then
            return ["--output", "/sys/magicanimate-test/out.mp4"]
        return ["--output", str(folder / "out.mp4")]
    if case == "output parent is a file":
        (tmp / "afile").write_text("x")
        return ["--output", str(tmp / "afile" / "out.mp4")]
    if case == "missing output folder":
        return ["--output", str(tmp / "new" / "deeper" / "out.mp4")]
    return {"steps 0": ["--steps", "0"], "steps -3": ["--steps", "-3"], "guidance nan": ["--guidance-scale", "nan"],
            "guidance inf": ["--guidance-scale", "inf"], "size 7": ["--size", "7"],
            "context 30": ["--context-frames", "30"], "fps 0": ["--fps", "0"],
            "overlap >= window": ["--context-frames", "4", "--context-overlap", "4"],
            "init-strength 0": ["--init-from-reference", "--init-strength", "0"],
            "gif output": ["--output", str(tmp / "out" / "x.gif")],
            "unknown output format": ["--output", str(tmp / "out" / "x.xyz")]}[case]


RUNS = {"extreme aspect reference", "RGBA reference", "grayscale reference", "1-frame motion",
        "missing output folder", "gif output"}
CASES = ["missing reference", "corrupt reference", "empty reference", "text as reference", "1x1 reference",
         "extreme aspect reference", "RGBA reference", "grayscale reference", "missing motion", "corrupt motion",
         "empty motion", "text as motion", "truncated motion", "non-DensePose motion", "1-frame motion", "steps 0",
         "steps -3", "guidance nan", "guidance inf", "size 7", "context 30", "missing output folder",
         "read-only output folder", "output parent is a file", "pipeline with missing weights",
         "pipeline with truncated weights", "fps 0", "overlap >= window", "init-strength 0", "gif output",
         "unknown output format"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_runs_or_fails_cleanly(case, cli_files, tmp_path, capsys, monkeypatch):
    from magicanimate.pipelines import animate as core

    loaded = []
    real_load = core.load_pipeline
    monkeypatch.setattr(core, "load_pipeline", lambda *a, **k: loaded.append(1) or real_load(*a, **k))
    out_dir = tmp_path / "out"
    args = {"--reference": str(cli_files / "ref.png"), "--motion": str(cli_files / "motion.mp4"),
            "--output": str(out_dir / "x.mp4"), "--pipeline": str(cli_files / "pipe")}
    extra = _make(case, cli_files, tmp_path)
    argv = [x for key, value in args.items() if key not in extra for x in (key, value)]
    argv += ["--steps", "1", "--size", "64", "--context-frames", "8", "--context-overlap", "2", "--quiet",
             "--threads", "1"]
    before = {p for p in tmp_path.rglob("*")}
    rc = animate_cli.main(argv + extra)
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    if case in RUNS:
        assert rc == 0, err
        return
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert not loaded, "a model was loaded before the input problem was found"
    leftovers = sorted(p for p in tmp_path.rglob("*") if p not in before and p.is_file())
    assert not leftovers, leftovers


def test_gif_output_is_a_real_gif(cli_files, tmp_path, capsys):
    out = tmp_path / "anim.gif"
    rc = animate_cli.main(["--reference", str(cli_files / "ref.png"), "--motion", str(cli_files / "motion.mp4"),
                           "--pipeline", str(cli_files / "pipe"), "--output", str(out), "--steps", "1",
                           "--size", "64", "--context-frames", "8", "--quiet", "--threads", "1"])
    assert rc == 0, capsys.readouterr().err
    with Image.open(out) as gif:
        assert gif.format == "GIF" and gif.n_frames == 6 and gif.size == (64, 64)
    assert read_video(out.with_name("anim_grid.gif")).frames.shape[1:3] == (64, 192)


def test_input_warnings_are_one_line_each(cli_files, tmp_path, capsys, caplog):
    rgba = tmp_path / "rgba.png"
    Image.new("RGBA", (40, 60), (200, 10, 10, 100)).save(rgba)
    wide = tmp_path / "wide.png"
    write_image(wide, np.full((50, 2000, 3), 120, np.uint8))
    for path, word in ((rgba, "transparency"), (wide, "aspect 40:1")):
        caplog.clear()
        rc = animate_cli.main(["--reference", str(path), "--motion", str(cli_files / "motion.mp4"), "--pipeline",
                               str(cli_files / "pipe"), "--output", str(tmp_path / f"{path.stem}.mp4"), "--steps",
                               "1", "--size", "64", "--context-frames", "8", "--quiet", "--threads", "1"])
        assert rc == 0
        notes = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and str(path) in r.getMessage()]
        assert len(notes) == 1 and word in notes[0] and "\n" not in notes[0], notes
