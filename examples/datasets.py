"""Load the example data sets that ship in examples/data (see examples/data/README.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / "data"

#: The Boston columns the examples use as features (all but the target and `black`).
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


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 8x8 digits: images (1797, 64) with values 0-16, and labels (1797,) in 0-9."""
    table = np.loadtxt(DATA / "digits.csv", delimiter=",", skiprows=1)
    return table[:, :64], table[:, 64].astype(int)
