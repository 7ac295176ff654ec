"""Session fixtures for the web-demo tests: one tiny model folder and one set of inputs, built once."""

from __future__ import annotations

import pytest
import torch

from tests.app.fixtures import make_inputs, make_model


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    return make_model(tmp_path_factory.mktemp("app_model") / "model")


@pytest.fixture(scope="session")
def inputs(tmp_path_factory):
    return make_inputs(tmp_path_factory.mktemp("app_inputs"))


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # like the pipeline tests: steadier on a shared 2-core machine, and results independent of it
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
