from pathlib import Path

import pytest

from .data_utils import make_folder_dataset
from magicanimate.testing import make_tiny_base

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tiny_env(tmp_path_factory):
    """A tiny SD-layout base model and a 2-video dataset at 32x32, shared by the training tests."""
    root = tmp_path_factory.mktemp("tiny_env")
    base = make_tiny_base(root / "base")
    data = make_folder_dataset(root / "data", num_videos=2, num_frames=6, height=32, width=32)
    return {"root": root, "base": base, "data": data, "embeds": base / "prompt_embeds.safetensors"}


def tiny_overrides(env, output_dir, *extra):
    return [f"output_dir={output_dir}", f"model.base_model={env['base']}", f"model.prompt_embeds={env['embeds']}",
            f"data.root={env['data']}", *extra]
