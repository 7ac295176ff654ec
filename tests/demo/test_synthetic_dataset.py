"""Synthetic dataset writer: documented layout, exact frames, disjoint splits, safe outputs, CLI."""

import importlib.util
import json
from pathlib import Path

import numpy as np
from PIL import Image
import pytest

from magicanimate.demo.synthetic import Identity, Motion, render_clip
from magicanimate.demo.synthetic.dataset import SPLITS, plan_dataset, read_manifest, write_synthetic_dataset
from magicanimate.errors import ConfigError, InputError

REPO = Path(__file__).resolve().parents[2]


def _load_script(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _read_rgb(path):
    with Image.open(path) as img:
        assert img.mode == "RGB", (path, img.mode)
        return np.asarray(img)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic") / "ds"
    manifest = write_synthetic_dataset(
        root, counts={"train": 2, "val": 1, "test": 1}, num_frames=3, size=(32, 40), seed=5, progress=False
    )
    return root, manifest


def test_layout_is_as_documented(dataset):
    root, manifest = dataset
    assert sorted(p.name for p in root.iterdir()) == ["manifest.json", "test", "train", "val"]
    assert read_manifest(root) == json.loads((root / "manifest.json").read_text()) == manifest
    for split in SPLITS:
        videos = manifest["splits"][split]
        assert sorted(p.name for p in (root / split).iterdir()) == sorted(v["id"] for v in videos)
        for video in videos:
            folder = root / split / video["id"]
            assert sorted(p.name for p in folder.iterdir()) == ["densepose", "images"]
            for sub in ("images", "densepose"):
                assert sorted(p.name for p in (folder / sub).iterdir()) == ["0000.png", "0001.png", "0002.png"]
    assert (manifest["height"], manifest["width"], manifest["frames_per_video"]) == (32, 40, 3)
    assert not list(root.rglob(".*"))  # no temporary leftovers


def test_written_frames_are_the_rendered_clip(dataset):
    root, manifest = dataset
    video = manifest["splits"]["val"][0]
    clip = render_clip(video["identity_seed"], video["motion_seed"], 3, (32, 40), fps=manifest["fps"])
    folder = root / "val" / video["id"]
    for i in range(3):
        np.testing.assert_array_equal(_read_rgb(folder / "images" / f"{i:04d}.png"), clip.rgb[i])
        np.testing.assert_array_equal(_read_rgb(folder / "densepose" / f"{i:04d}.png"), clip.densepose[i])


def test_splits_are_disjoint_in_identities_and_motions():
    plan = plan_dataset({"train": 300, "val": 60, "test": 60}, seed=0)
    for key in ("identity_seed", "motion_seed"):
        seeds = {split: [v[key] for v in plan[split]] for split in SPLITS}
        for split in SPLITS:
            assert len(set(seeds[split])) == len(seeds[split])
        assert not set(seeds["train"]) & set(seeds["val"])
        assert not set(seeds["train"]) & set(seeds["test"])
        assert not set(seeds["val"]) & set(seeds["test"])
    # Disjoint seeds are disjoint identities and motions (what the seeds make differs, too).
    looks = {split: {repr(Identity.from_seed(v["identity_seed"])) for v in plan[split][:20]} for split in SPLITS}
    assert not looks["train"] & looks["test"] and not looks["train"] & looks["val"]
    tempos = {split: {Motion.from_seed(v["motion_seed"]).tempo for v in plan[split][:20]} for split in SPLITS}
    assert not tempos["train"] & tempos["test"]
    # The dataset seed changes the draw; the same seed repeats it.
    assert plan_dataset({"test": 5}, seed=1)["test"] != plan["test"][:5]
    assert plan_dataset({"test": 5}, seed=0)["test"] == plan["test"][:5]


def test_refuses_to_clobber_and_checks_arguments(tmp_path, dataset):
    root, _ = dataset
    with pytest.raises(InputError, match="not empty"):
        write_synthetic_dataset(root, counts={"train": 1}, num_frames=1, size=16, progress=False)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="notes.txt"):
        write_synthetic_dataset(foreign, counts={"train": 1}, num_frames=1, size=16, overwrite=True, progress=False)
    assert (foreign / "notes.txt").read_text() == "keep me"
    with pytest.raises(ConfigError, match="unknown split"):
        write_synthetic_dataset(tmp_path / "x", counts={"training": 1}, num_frames=1, size=16, progress=False)
    with pytest.raises(ConfigError):
        write_synthetic_dataset(tmp_path / "x", counts={"train": 1}, num_frames=0, size=16, progress=False)
    with pytest.raises(ConfigError, match="8x8"):
        write_synthetic_dataset(tmp_path / "x", counts={"train": 1}, num_frames=1, size=(4, 16), progress=False)
    assert not (tmp_path / "x").exists()
    # An interrupted run (split folders, no manifest yet) can be overwritten.
    (tmp_path / "partial" / "train").mkdir(parents=True)
    write_synthetic_dataset(
        tmp_path / "partial", counts={"val": 1}, num_frames=1, size=16, overwrite=True, progress=False
    )
    assert read_manifest(tmp_path / "partial")["splits"]["val"]


def test_cli_writes_and_reports_errors(tmp_path, capsys):
    script = _load_script("make_synthetic_dataset")
    out = tmp_path / "cli"
    args = [str(out), "--size", "24x16", "--train", "1", "--val", "1", "--test", "1", "--frames", "2", "--quiet"]
    assert script.main(args) == 0
    assert _read_rgb(out / "test" / "test_0000" / "densepose" / "0001.png").shape == (24, 16, 3)
    assert script.main(args) == 2
    assert "error:" in capsys.readouterr().err
    assert script.main(args + ["--overwrite", "--seed", "3"]) == 0
    assert read_manifest(out)["seed"] == 3
