"""The retargeting command lines, run as subprocesses: scripts/retarget.py, and scripts/extract_densepose.py
with --retarget-to (its pose backend replaced by an oracle that returns the synthetic renderer's exact part
maps, since no real backend runs here)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from magicanimate.data.densepose import PALETTE, render_parts
from magicanimate.demo.synthetic.dataset import plan_dataset
from magicanimate.demo.synthetic.render import render_clip
from magicanimate.extraction.part_cleanup import clean_part_map
from magicanimate.data.densepose import parts_from_rgb
from magicanimate.media import VideoReader, write_image, write_video

REPO = Path(__file__).resolve().parents[2]
SIZE, FRAMES, FPS = 128, 10, 12.0

# Runs extract_densepose's command line with the backend replaced by an oracle: video frames get the
# driver's exact part maps in order, the reference photo (single-image mode) gets the reference's.
ORACLE_RUNNER = '''
import sys
import numpy as np
from magicanimate.extraction import backends, extract
from magicanimate.extraction.landmarks import PoseFrame

data = np.load(sys.argv[1])

class Oracle:
    def __init__(self, maps):
        self.maps = list(maps)

    def __call__(self, frame):
        parts = self.maps.pop(0).astype(np.uint8)
        if not parts.any():
            return PoseFrame()
        return PoseFrame(mask=np.where(parts > 0, 255, 0).astype(np.uint8), parts=parts)

    def close(self):
        pass

def create_backend(name, *, video=True, **kwargs):
    return Oracle(data["driving"] if video else data["reference"][None])

backends.create_backend = extract.create_backend = create_backend
from magicanimate.extraction.cli import main
sys.exit(main(sys.argv[2:]))
'''


def run(*argv, cwd):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, *map(str, argv)], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=300)


@pytest.fixture(scope="module")
def triple(tmp_path_factory):
    """Files of one synthetic triple: B's video (RGB and DensePose), A's photo and DensePose map."""
    root = tmp_path_factory.mktemp("triple")
    videos = plan_dataset({"val": 2}, 11)["val"]
    a, b, m = videos[0]["identity_seed"], videos[1]["identity_seed"], videos[0]["motion_seed"]
    driver, person = render_clip(b, m, FRAMES, SIZE, fps=FPS), render_clip(a, m, FRAMES, SIZE, fps=FPS)
    write_video(root / "dance.mp4", driver.rgb, fps=FPS)
    write_video(root / "dance_densepose.mp4", driver.densepose, fps=FPS)
    write_image(root / "me.png", person.rgb[0])
    write_image(root / "me_densepose.png", person.densepose[0])
    return root, driver, person


def files(folder):
    return sorted(p.name for p in folder.iterdir())


def video_info(path):
    with VideoReader(path) as r:
        return len(r), tuple(r.size), float(r.fps), r[:]


def person_iou(a, b):
    return ((a > 0) & (b > 0)).sum() / ((a > 0) | (b > 0)).sum()


def test_retarget_script_writes_a_control_video_of_the_same_length_and_size(triple, tmp_path):
    root, driver, person = triple
    out = tmp_path / "on_me.mp4"
    proc = run(REPO / "scripts" / "retarget.py", "--motion", root / "dance_densepose.mp4", "--reference-map",
               root / "me_densepose.png", "--output", out, "--preview", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stdout and f"{FRAMES} frames" in proc.stdout
    n, hw, fps, frames = video_info(out)
    assert (n, hw, fps) == (FRAMES, (SIZE, SIZE), FPS)
    assert video_info(tmp_path / "on_me_preview.mp4")[1] == (SIZE, 3 * SIZE)  # driver | retargeted | reference
    # the first frame now has the reference's outline, closer than the driver's was
    first = clean_part_map(parts_from_rgb(frames[0]))
    assert person_iou(first, person.parts[0]) > person_iou(driver.parts[0], person.parts[0])


def _one_error_line(proc):
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def test_retarget_script_rejects_a_reference_map_without_a_person(triple, tmp_path):
    root, _, _ = triple
    empty = tmp_path / "empty.png"
    write_image(empty, np.broadcast_to(PALETTE[0], (SIZE, SIZE, 3)).copy())
    before = files(tmp_path)
    proc = run(REPO / "scripts" / "retarget.py", "--motion", root / "dance_densepose.mp4", "--reference-map", empty,
               "--output", tmp_path / "out.mp4", "--preview", cwd=tmp_path)
    assert "empty.png: no person in the reference" in _one_error_line(proc)
    assert files(tmp_path) == before


def test_retarget_script_rejects_a_reference_map_that_is_not_densepose(triple, tmp_path):
    root, _, _ = triple
    before = files(tmp_path)
    proc = run(REPO / "scripts" / "retarget.py", "--motion", root / "dance_densepose.mp4", "--reference-map",
               root / "me.png", "--output", tmp_path / "out.mp4", cwd=tmp_path)
    assert "me.png (reference DensePose map): does not look like a DensePose rendering" in _one_error_line(proc)
    assert files(tmp_path) == before


def test_retarget_script_rejects_a_motion_video_that_is_not_densepose(triple, tmp_path):
    root, _, _ = triple
    proc = run(REPO / "scripts" / "retarget.py", "--motion", root / "dance.mp4", "--reference-map",
               root / "me_densepose.png", "--output", tmp_path / "out.mp4", cwd=tmp_path)
    assert "dance.mp4: does not look like a DensePose rendering" in _one_error_line(proc)
    assert files(tmp_path) == []


def _oracle(tmp_path, driver, reference):
    np.savez(tmp_path / "oracle.npz", driving=driver.parts, reference=reference)
    (tmp_path / "runner.py").write_text(ORACLE_RUNNER)
    return [tmp_path / "runner.py", tmp_path / "oracle.npz"]


def test_extract_retarget_to_writes_a_control_video_of_the_same_length_and_size(triple, tmp_path):
    root, driver, person = triple
    out = tmp_path / "control.mp4"
    proc = run(*_oracle(tmp_path, driver, person.parts[0]), "--input", root / "dance.mp4", "--output", out,
               "--size", SIZE, "--fit", "pad", "--smooth", 0, "--retarget-to", root / "me.png", "--preview",
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    n, hw, fps, frames = video_info(out)
    assert (n, hw, fps) == (FRAMES, (SIZE, SIZE), FPS)
    # input | driver's control | retargeted | reference
    assert video_info(tmp_path / "control_preview.mp4")[1] == (SIZE, 4 * SIZE)
    first = clean_part_map(parts_from_rgb(frames[0]))
    assert person_iou(first, person.parts[0]) > person_iou(driver.parts[0], person.parts[0])


def test_extract_retarget_to_a_photo_without_a_person_is_an_error(triple, tmp_path):
    root, driver, person = triple
    args = _oracle(tmp_path, driver, np.zeros_like(person.parts[0]))
    before = files(tmp_path)
    proc = run(*args, "--input", root / "dance.mp4", "--output", tmp_path / "control.mp4", "--size", SIZE,
               "--retarget-to", root / "me.png", "--preview", cwd=tmp_path)
    assert "me.png: no person found in the reference image" in _one_error_line(proc)
    assert files(tmp_path) == before


def test_extract_align_to_and_retarget_to_together_is_an_error(triple, tmp_path):
    root, _, _ = triple
    proc = run(REPO / "scripts" / "extract_densepose.py", "--input", root / "dance.mp4", "--output",
               tmp_path / "c.mp4", "--align-to", root / "me.png", "--retarget-to", root / "me.png", cwd=tmp_path)
    assert "use one" in _one_error_line(proc)
    assert files(tmp_path) == []


def test_preview_shows_the_reference_map(triple, tmp_path):
    root, _, person = triple
    out = tmp_path / "o.mp4"
    assert run(REPO / "scripts" / "retarget.py", "--motion", root / "dance_densepose.mp4", "--reference-map",
               root / "me_densepose.png", "--output", out, "--preview", tmp_path / "p.mp4",
               cwd=tmp_path).returncode == 0
    panel = video_info(tmp_path / "p.mp4")[3][0][:, 2 * SIZE:]
    # the third panel is the reference's map (up to H.264): mostly the same colours
    assert np.abs(panel.astype(int) - render_parts(person.parts[0].astype(np.int64)).astype(int)).mean() < 6
