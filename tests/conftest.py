"""Shared test fixtures.

The golden tensors of the original implementation live in ``../shared/reference`` beside the checkout
(or wherever ``MAGICANIMATE_REFERENCE`` points). CI sets ``MAGICANIMATE_REQUIRE_REFERENCE=1`` so a missing
folder fails the run instead of skipping the parity tests.
"""

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def _reference_dir() -> Path:
    env = os.environ.get("MAGICANIMATE_REFERENCE")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "reference"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    path = _reference_dir()
    if not path.is_dir():
        if os.environ.get("MAGICANIMATE_REQUIRE_REFERENCE") == "1":
            pytest.fail(f"reference data not found at {path} (set MAGICANIMATE_REFERENCE)")
        pytest.skip(f"reference data (golden tensors) not present at {path}")
    return path


@pytest.fixture(scope="session")
def golden_dir(reference_dir: Path) -> Path:
    return reference_dir / "golden"
