"""Fixtures for the motion-extraction tests."""

import pytest

from extraction_helpers import body_mask, skeleton


@pytest.fixture
def person():
    """``(landmarks, mask)`` of the hand-made test person facing the camera in a 64x64 frame."""
    lm = skeleton()
    return lm, body_mask(lm)
