"""Fixtures shared by the tests (helpers live in helpers.py)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from helpers import load_boston


@pytest.fixture(scope="session")
def boston() -> dict[str, np.ndarray]:
    return load_boston()


@pytest.fixture
def strict_warnings():
    """Every warning is an error inside the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield
