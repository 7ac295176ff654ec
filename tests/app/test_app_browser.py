"""The web page in a real headless Chromium (Debian's package, driven by Playwright).

Starts ``scripts/app.py`` on a free localhost port with a tiny random model, loads an example, generates,
and checks the served result video plays; bad uploads show a message; a second visitor waits in the queue
with its position shown and can cancel. A second app with no arguments offers the bundled demo model, which
animates its dancer on the page exactly as ``scripts/animate.py`` does. Needs the [demo] and [browser]
extras and /usr/bin/chromium; CI sets MAGICANIMATE_REQUIRE_DEMO=1 so that a missing piece fails instead of
skipping.
Set MAGICANIMATE_APP_SCREENSHOT=PATH to keep the screenshot (docs/web_demo.png comes from this test).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

REQUIRED = os.environ.get("MAGICANIMATE_REQUIRE_DEMO") == "1"
REPO = Path(__file__).resolve().parents[2]


def _missing(reason: str):
    if REQUIRED:
        pytest.fail(f"{reason}, but MAGICANIMATE_REQUIRE_DEMO=1", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


if importlib.util.find_spec("gradio") is None:
    _missing("gradio not installed (the [demo] extra; CI installs it)")
if importlib.util.find_spec("playwright") is None:
    _missing("playwright not installed (the [browser] extra; CI installs it)")
CHROMIUM = os.environ.get("MAGICANIMATE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).is_file():
    _missing("chromium not found (apt-get install chromium; CI installs it)")

from playwright.sync_api import sync_playwright  # noqa: E402

from magicanimate.media import read_video  # noqa: E402

JOB_TIMEOUT = 240.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _app(args: list, root: Path):
    """scripts/app.py on a free localhost port, started with ``args``; yields (url, log path)."""
    log_path = root / "app.log"
    port = _free_port()
    cmd = [sys.executable, str(REPO / "scripts" / "app.py"), "--port", str(port), "--device", "cpu", *args]
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=str(root), env=env)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 180
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the app exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                pytest.fail(f"the app did not answer within 180 s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url, log_path
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def server(tiny_model, inputs, tmp_path_factory):
    root = tmp_path_factory.mktemp("app_server")
    out = root / "jobs"
    args = ["--weights", f"tiny={tiny_model}",
            "--example", str(inputs["reference"]), str(inputs["motion"]),
            "--example", str(inputs["reference"]), str(inputs["long_motion"]),
            "--steps", "2", "--size", "64", "--seed", "5", "--output-dir", str(out)]
    with _app(args, root) as (url, log_path):
        yield dict(url=url, out=out, log=log_path)


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def _open(browser, server):
    page = browser.new_context(viewport={"width": 1280, "height": 1500}).new_page()
    page.goto(server["url"])
    page.wait_for_selector("#generate", timeout=60_000)
    return page


def _status(page) -> str:
    return page.locator("#status .ma-status").inner_text()


def _wait_status(page, predicate, timeout=JOB_TIMEOUT) -> list:
    seen = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        text = _status(page)
        if not seen or seen[-1] != text:
            seen.append(text)
        if predicate(text):
            return seen
        time.sleep(0.05)
    raise AssertionError(f"status never matched; seen: {seen}")


def _load_example(page, row: int):
    """Load the test's own example ``row`` (0: short motion, 1: long); the bundled demo's example, when
    demo/ has one, is listed first (scripts/app.py bundled_examples)."""
    bundled = int(all((REPO / "demo" / name).is_file() for name in ("reference.png", "motion.mp4")))
    page.locator(f"[data-testid='dataset-cell-{bundled + row}-0']").click()
    page.wait_for_selector("#reference-preview img", timeout=30_000)
    page.wait_for_selector("#motion video", timeout=30_000)


def _job_folders(server) -> list:
    return sorted(p for p in server["out"].glob("*") if p.is_dir()) if server["out"].exists() else []


def _fetch(url: str, dest: Path) -> Path:
    with urllib.request.urlopen(url, timeout=30) as response:
        dest.write_bytes(response.read())
    return dest


def test_example_generates_a_playable_video(browser, server, tmp_path):
    page = _open(browser, server)
    _load_example(page, 0)
    page.click("#generate")
    seen = _wait_status(page, lambda t: t.startswith(("Done", "Error")))
    assert seen[-1].startswith("Done: 6 frames, 64x64, 8 fps, seed 5"), seen

    # the served files: what a visitor plays and downloads
    src = page.locator("#result video").get_attribute("src")
    grid_src = page.locator("#grid video").get_attribute("src")
    assert src and src.startswith(server["url"]) and grid_src
    video = read_video(_fetch(src, tmp_path / "served.mp4"))
    assert video.frames.shape == (6, 64, 64, 3) and video.fps == pytest.approx(8.0)
    grid = read_video(_fetch(grid_src, tmp_path / "served_grid.mp4"))
    assert grid.frames.shape == (6, 64, 3 * 64, 3)
    # the page shows the DensePose motion it used, and the resolved settings
    assert page.locator("#used-motion video").get_attribute("src")
    resolved = page.locator("#resolved").inner_text()
    assert "seed: 5" in resolved and "steps: 2" in resolved and "fusion: tapered" in resolved

    # the browser plays it: metadata says 6 frames at 8 fps, and playback advances
    meta = page.evaluate("""async () => {
        const v = document.querySelector('#result video');
        if (v.readyState < 1) await new Promise(r => v.addEventListener('loadedmetadata', r, {once: true}));
        v.muted = true; v.loop = false; v.currentTime = 0;
        await v.play();
        await new Promise(r => setTimeout(r, 300));
        return {duration: v.duration, width: v.videoWidth, height: v.videoHeight, time: v.currentTime,
                error: v.error ? v.error.code : null};
    }""")
    assert meta["error"] is None and (meta["width"], meta["height"]) == (64, 64)
    assert meta["duration"] == pytest.approx(6 / 8.0, abs=1 / 8.0 + 1e-3)
    assert meta["time"] > 0

    folders = _job_folders(server)
    assert len(folders) == 1
    assert sorted(p.name for p in folders[0].iterdir()) == ["animation.mp4", "animation_config.yaml",
                                                            "animation_grid.mp4"]
    page.context.close()


def test_bad_uploads_show_a_message(browser, server, inputs):
    before = _job_folders(server)
    page = _open(browser, server)
    page.locator("#reference input[type=file]").set_input_files(str(inputs["fake_image"]))
    seen = _wait_status(page, lambda t: t.startswith("Error"), timeout=30)
    assert "fake.png" in seen[-1] and "/tmp/gradio" not in seen[-1], seen
    assert page.locator("#reference-preview img").count() == 0
    page.context.close()

    for upload, expected in ((inputs["fake_video"], "fake.mp4"), (inputs["raw"], "raw.mp4 is a raw video")):
        page = _open(browser, server)
        page.locator("#reference input[type=file]").set_input_files(str(inputs["reference"]))
        _wait_status(page, lambda t: t.startswith("Reference image loaded"), timeout=30)
        page.locator("#motion input[type=file]").set_input_files(str(upload))
        page.wait_for_selector("#motion video", timeout=30_000)
        page.click("#generate")
        text = _wait_status(page, lambda t: t.startswith("Error"), timeout=60)[-1]
        assert expected in text, text
        body = page.locator("body").inner_text()
        assert "Traceback" not in body and "Exception" not in body, body
        page.context.close()
    assert _job_folders(server) == before


def test_queue_position_progress_and_cancel(browser, server):
    """A long job shows its steps and windows; a second visitor waits with its position shown; both cancel."""
    before = _job_folders(server)
    first, second = _open(browser, server), _open(browser, server)
    _load_example(first, 1)  # 20 frames: two windows per step
    steps = first.locator("#steps input[type=number]")
    steps.fill("100")  # the most the page allows: long enough for the second visitor to queue behind it on a fast machine
    steps.press("Enter")
    _load_example(second, 0)
    first.click("#generate")
    # the page polls its status: any step after the first will do (a fast machine skips some)
    past_first = re.compile(r"Denoising: step ([2-9]|\d{2,})/100, ")
    seen = _wait_status(first, lambda t: bool(past_first.match(t)), timeout=120)
    denoising = [t for t in seen if t.startswith("Denoising")]
    assert all(re.match(r"Denoising: step \d+/100, [01]/2 windows done$", t) for t in denoising), seen
    second.click("#generate")
    _wait_status(second, lambda t: t == "Queued: 1 job ahead of you", timeout=60)
    second.click("#cancel")
    _wait_status(second, lambda t: t == "Cancelled.", timeout=60)
    assert _status(first).startswith(("Denoising", "Decoding")), _status(first)  # the first job is unaffected
    first.click("#cancel")
    seen = _wait_status(first, lambda t: t == "Cancelled.", timeout=60)
    assert all(not s.startswith("Done") for s in seen), seen
    for page in (first, second):
        assert page.locator("#result video").count() == 0
        page.context.close()
    assert _job_folders(server) == before  # cancelled jobs leave nothing behind


@pytest.mark.skipif(not (REPO / "demo" / "model" / "model_index.json").is_file(), reason="no bundled demo model")
def test_bundled_demo_model_animates_its_dancer(browser, tmp_path):
    """The page a visitor first sees (the README's screenshot): no arguments, the demo model and its example."""
    out = tmp_path / "jobs"
    with _app(["--output-dir", str(out)], tmp_path) as (url, _log):
        page = _open(browser, dict(url=url))
        page.locator("[data-testid='dataset-cell-0-0']").click()  # the bundled example comes first
        page.wait_for_selector("#reference-preview img", timeout=30_000)
        page.wait_for_selector("#motion video", timeout=30_000)
        page.click("#generate")
        seen = _wait_status(page, lambda t: t.startswith(("Done", "Error")))
        assert seen[-1].startswith("Done: 16 frames, 64x64"), seen
        served = read_video(_fetch(page.locator("#result video").get_attribute("src"), tmp_path / "served.mp4"))
        shot = tmp_path / "web_demo.png"
        page.evaluate("() => { const v = document.querySelector('#result video'); v.pause(); v.currentTime = 1.0; }")
        page.wait_for_timeout(500)
        page.screenshot(path=str(shot), full_page=True)
        page.context.close()
    assert shot.stat().st_size > 10_000
    if os.environ.get("MAGICANIMATE_APP_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["MAGICANIMATE_APP_SCREENSHOT"])

    # the same run from the command line (the demo with a changed output) gives the same video
    cli_out = tmp_path / "cli" / "demo.mp4"
    subprocess.run([sys.executable, str(REPO / "scripts" / "animate.py"), "--output", str(cli_out), "--threads", "1",
                    "--quiet"], check=True, cwd=str(tmp_path), env=dict(os.environ, PYTHONPATH=str(REPO)))
    cli = read_video(cli_out)
    assert served.frames.shape == cli.frames.shape == (16, 64, 64, 3)
    assert served.fps == pytest.approx(cli.fps)
    diff = np.abs(served.frames.astype(int) - cli.frames.astype(int))
    assert diff.max() <= 1, diff.max()
