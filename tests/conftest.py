"""Fixtures shared by the tests (helpers live in helpers.py)."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
from helpers import load_boston


def pytest_configure(config):
    """Compiled models are cached on disk (symgrad.cache): the tests' cache is a fresh
    directory of their own, never the user's."""
    import tempfile

    os.environ["SYMGRAD_CACHE_DIR"] = tempfile.mkdtemp(prefix="symgrad-test-cache-")


def pytest_addoption(parser):
    parser.addoption(
        "--fuzz-models", type=int, default=None, metavar="N",
        help="how many random models the gradient fuzz runs (tests/test_fuzz.py; default "
             "$SYMGRAD_FUZZ_MODELS or 2000)",
    )


@pytest.fixture(scope="session")
def fuzz_models(request) -> int:
    """The number of random models of the gradient fuzz: --fuzz-models, $SYMGRAD_FUZZ_MODELS or
    2000."""
    n = request.config.getoption("--fuzz-models")
    return n if n is not None else int(os.environ.get("SYMGRAD_FUZZ_MODELS", "2000"))


@pytest.fixture(scope="session")
def fuzz_seed() -> int:
    """The fuzz's seed: fixed, unless $SYMGRAD_FUZZ_SEED gives another."""
    return int(os.environ.get("SYMGRAD_FUZZ_SEED", "0"))


@pytest.fixture(scope="session")
def boston() -> dict[str, np.ndarray]:
    return load_boston()


@pytest.fixture
def strict_warnings():
    """Every warning is an error inside the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


@pytest.fixture
def jax_x64():
    """JAX computing in float64, as NumPy does (its default is float32), for one test: the
    setting is restored after, so no other test runs under it unawares."""
    jax = pytest.importorskip("jax")
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield jax
    jax.config.update("jax_enable_x64", before)
