"""scripts/app.py's command line: safe defaults, flags, and a readable message without Gradio."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def app_cli():
    from magicanimate.cli import app

    return app


def test_defaults_bind_localhost_without_share(app_cli):
    args = app_cli.build_parser().parse_args([])
    assert (args.host, args.port, args.share) == ("127.0.0.1", 7860, False)
    assert args.weights == [] and args.demo_model and args.pose_python is None


@pytest.mark.parametrize("flags, share", [(["--share", "false"], False), (["--share", "true"], True),
                                          (["--share"], True), (["--share", "0"], False)])
def test_share_flag(app_cli, flags, share):
    assert app_cli.build_parser().parse_args(flags).share is share


def test_bad_share_value_is_rejected(app_cli, capsys):
    with pytest.raises(SystemExit) as info:
        app_cli.build_parser().parse_args(["--share", "maybe"])
    assert info.value.code == 2
    assert "expected true or false" in capsys.readouterr().err


def test_options_reach_the_parser(app_cli):
    args = app_cli.build_parser().parse_args([
        "--host", "0.0.0.0", "--port", "9000", "--weights", "full=/w", "--weights", "/v", "--no-demo-model",
        "--example", "a.png", "b.mp4", "--steps", "4", "--size", "128", "--pose-python", "/p/python"])
    assert (args.host, args.port) == ("0.0.0.0", 9000)
    assert args.weights == ["full=/w", "/v"] and not args.demo_model
    assert args.example == [["a.png", "b.mp4"]]
    assert app_cli.page_defaults(args) == {"steps": 4, "size": 128}


def test_without_gradio_a_readable_message(app_cli, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "gradio", None)  # makes `import gradio` raise ImportError
    assert app_cli.main(["--port", "7999"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the web demo needs Gradio") and '.[demo]' in err


def test_bad_arguments_are_errors_not_tracebacks(app_cli, capsys, tmp_path):
    if importlib.util.find_spec("gradio") is None:
        pytest.skip("gradio not installed (the [demo] extra; CI installs it)")
    assert app_cli.main(["--example", str(tmp_path / "nope.png"), str(tmp_path / "nope.mp4")]) == 2
    assert "nope.png: no such file" in capsys.readouterr().err
    assert app_cli.main(["--weights", "x="]) == 2
    assert "expected PATH or NAME=PATH" in capsys.readouterr().err
    assert app_cli.main(["--pose-python", str(tmp_path / "python")]) == 2
    assert "--pose-python" in capsys.readouterr().err
