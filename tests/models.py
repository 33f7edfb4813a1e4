"""Models several test files compile (symgrad itself; the references stay in helpers.py)."""

from __future__ import annotations

import sympy as sp

import symgrad


def seed_model() -> symgrad.CompiledModel:
    """The tutorial's two-layer model, compiled with respect to k1, b1, k2, b2."""
    x, y, k1, b1, k2, b2 = sp.symbols("x y k1 b1 k2 b2")
    L1, σ, L2, Loss = sp.symbols("L1 σ L2 Loss")
    return symgrad.compile(
        [
            sp.Eq(L1, k1 * x + b1),
            sp.Eq(σ, symgrad.sigmoid(L1)),
            sp.Eq(L2, k2 * σ + b2),
            sp.Eq(Loss, symgrad.mean((L2 - y) ** 2)),
        ],
        wrt=[k1, b1, k2, b2],
    )
