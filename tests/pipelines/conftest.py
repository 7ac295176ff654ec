"""Pipeline tests run single-threaded: on a shared 2-core machine one thread per process is steadier and
faster for these tiny models, and results do not depend on the machine's thread count."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
