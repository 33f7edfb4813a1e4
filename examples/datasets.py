"""Load the example data sets that ship in examples/data (see examples/data/README.md).

>>> data = load_boston()
>>> len(data["medv"]), len(BOSTON_FEATURES)
(506, 12)
>>> X, y = boston_matrix()
>>> X.shape, y.shape
((506, 12), (506,))
>>> train, test = train_test_split(506, test_fraction=0.2, seed=0)
>>> len(train), len(test), len(set(train) | set(test))
(405, 101, 506)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / "data"

#: The Boston columns the examples use as features: all but the target `medv` and `black`,
#: which encodes a racially motivated variable (see data/README.md). So "all 13 features" of
#: the tutorial are 12 here.
BOSTON_FEATURES = (
    "crim", "zn", "indus", "chas", "nox", "rm", "age", "dis", "rad", "tax", "ptratio", "lstat",
)


def load_boston() -> dict[str, np.ndarray]:
    """The Boston housing data as a dict column name -> float array (506 rows)."""
    with open(DATA / "boston.csv", encoding="utf-8") as f:
        header = [h.strip('"') for h in f.readline().strip().split(",")]
    table = np.loadtxt(DATA / "boston.csv", delimiter=",", skiprows=1,
                       converters={0: lambda s: float(s.strip('"'))})
    return {name: table[:, i] for i, name in enumerate(header) if name}


def boston_matrix(
    features: tuple[str, ...] = BOSTON_FEATURES,
) -> tuple[np.ndarray, np.ndarray]:
    """The Boston features as a (506, len(features)) matrix, and the target medv (506,)."""
    data = load_boston()
    return np.column_stack([data[name] for name in features]), data["medv"]


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 8x8 digits: images (1797, 64) with values 0-16, and labels (1797,) in 0-9."""
    table = np.loadtxt(DATA / "digits.csv", delimiter=",", skiprows=1)
    return table[:, :64], table[:, 64].astype(int)


def train_test_split(
    n: int, test_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of a seeded random split of ``n`` rows: (train, test), each sorted.

    The test set has ``round(test_fraction * n)`` rows; the same seed gives the same split.
    """
    order = np.random.default_rng(seed).permutation(n)
    n_test = round(test_fraction * n)
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def standardize(
    train: np.ndarray, *others: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Scale columns to mean 0 and standard deviation 1 using the statistics of ``train``.

    Returns ``train`` and each of ``others`` scaled with the training mean and deviation (so
    no information from a test set leaks into training).

    >>> a, b = standardize(np.array([[0.0], [2.0]]), np.array([[4.0]]))
    >>> a.ravel().tolist(), b.ravel().tolist()
    ([-1.0, 1.0], [3.0])
    """
    mean, std = train.mean(axis=0), train.std(axis=0)
    return tuple((a - mean) / std for a in (train, *others))
