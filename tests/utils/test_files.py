"""atomic_path: the target appears only after a clean exit; errors leave nothing behind."""

import os

import pytest

from magicanimate.utils.files import atomic_path


def test_success_renames_onto_target(tmp_path):
    target = tmp_path / "sub" / "dir" / "out.txt"  # parents are created
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        assert tmp.suffix == ".txt"  # writers that pick the format from the extension still work
        assert not tmp.exists()
        tmp.write_text("done")
        assert not target.exists()  # nothing under the final name while writing
    assert target.read_text() == "done"
    assert os.listdir(target.parent) == ["out.txt"]


def test_error_removes_temp_and_keeps_old_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_keyboard_interrupt_also_cleans_up(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(tmp_path / "x.bin") as tmp:
            tmp.write_bytes(b"1")
            raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []


def test_replaces_existing_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and os.listdir(tmp_path) == ["out.txt"]


def test_unused_temp_leaves_target_untouched(tmp_path):
    with atomic_path(tmp_path / "never.txt"):
        pass
    assert os.listdir(tmp_path) == []


def test_directories(tmp_path):
    target = tmp_path / "ckpt"
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "a.bin").write_bytes(b"a")
    assert (target / "a.bin").read_bytes() == b"a"
    with atomic_path(target) as tmp:  # replacing an existing, non-empty folder
        tmp.mkdir()
        (tmp / "b.bin").write_bytes(b"b")
    assert sorted(os.listdir(target)) == ["b.bin"] and os.listdir(tmp_path) == ["ckpt"]
    with pytest.raises(ValueError):
        with atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "c.bin").write_bytes(b"c")
            raise ValueError
    assert sorted(os.listdir(target)) == ["b.bin"] and os.listdir(tmp_path) == ["ckpt"]
