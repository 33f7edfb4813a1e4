"""Shared test helpers: independent references (SymPy + lambdify, finite differences, NumPy).

Nothing here calls symgrad: every expected value in the tests is computed by SymPy, NumPy or
mpmath, never by the code under test.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import sympy as sp

REPO = Path(__file__).resolve().parents[1]
BOSTON = REPO / "examples" / "data" / "boston.csv"
GOLDEN = Path(__file__).resolve().parent / "golden"


# -- references for symgrad's own functions, written independently of symgrad -----------------


def ref_sigmoid(v):
    v = np.asarray(v, dtype=float)
    with np.errstate(over="ignore"):
        e = np.exp(-np.abs(v))
    return np.where(v >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def ref_softplus(v):
    return np.logaddexp(0.0, np.asarray(v, dtype=float))


def ref_relu(v):
    return np.maximum(np.asarray(v, dtype=float), 0.0)


#: lambdify modules: symgrad's functions by name, then NumPy.
MODULES = [
    {
        "sigmoid": ref_sigmoid,
        "softplus": ref_softplus,
        "relu": ref_relu,
        "sum": np.sum,
        "mean": np.mean,
    },
    "numpy",
]


def realify(expr: sp.Expr) -> tuple[sp.Expr, dict[sp.Symbol, sp.Symbol]]:
    """``expr`` with every symbol replaced by a real symbol of the same name."""
    mapping = {s: sp.Symbol(s.name, real=True) for s in expr.free_symbols}
    return expr.xreplace(mapping), mapping


def no_delta(expr: sp.Expr) -> sp.Expr:
    """Drop DiracDelta terms (zero away from the kinks the tests avoid)."""
    return expr.replace(lambda e: isinstance(e, sp.DiracDelta), lambda e: sp.S.Zero)


def sympy_gradient(expr: sp.Expr, names: Sequence[str]) -> dict[str, Callable]:
    """name -> a NumPy function of every symbol (keyword arguments) for d expr / d name."""
    real, mapping = realify(expr)
    by_name = {s.name: s for s in mapping.values()}
    args = sorted(by_name.values(), key=lambda s: s.name)
    result = {}
    for name in names:
        s = by_name.get(name, sp.Symbol(name, real=True))
        d = no_delta(sp.diff(real, s))
        f = sp.lambdify(args, d, modules=MODULES)
        result[name] = _keywords(f, [a.name for a in args])
    return result


def sympy_value(expr: sp.Expr) -> Callable:
    """A NumPy function (keyword arguments by name) of ``expr``, via lambdify."""
    real, mapping = realify(expr)
    args = sorted(mapping.values(), key=lambda s: s.name)
    return _keywords(sp.lambdify(args, real, modules=MODULES), [a.name for a in args])


def _keywords(f, names):
    def call(**values):
        with np.errstate(all="ignore"):
            return f(*(values[n] for n in names))

    return call


def finite_difference(
    f: Callable[..., float], point: Mapping[str, object], name: str, h: float = 1e-5
) -> np.ndarray:
    """d f / d point[name], elementwise, by the 4-point central stencil (error O(h⁴))."""
    base = {k: np.array(v, dtype=float) for k, v in point.items()}
    x0 = base[name]
    grad = np.zeros_like(x0)
    for idx in np.ndindex(x0.shape):
        step = h * max(1.0, abs(float(x0[idx])))
        values = []
        for m in (-2, -1, 1, 2):
            shifted = dict(base)
            x = x0.copy()
            x[idx] += m * step
            shifted[name] = x
            values.append(float(f(**shifted)))
        grad[idx] = (values[0] - 8 * values[1] + 8 * values[2] - values[3]) / (12 * step)
    return grad


# -- data -----------------------------------------------------------------------------------


def load_boston() -> dict[str, np.ndarray]:
    """The Boston housing data, read here with NumPy alone (column name -> float array)."""
    with open(BOSTON, encoding="utf-8") as f:
        header = [h.strip().strip('"') for h in f.readline().split(",")]
    table = np.genfromtxt(BOSTON, delimiter=",", skip_header=1, usecols=range(1, len(header)))
    return {name: table[:, i - 1] for i, name in enumerate(header) if i > 0}


def two_layer_symbols():
    x, y, k1, b1, k2, b2 = sp.symbols("x y k1 b1 k2 b2")
    L1, σ, L2, Loss = sp.symbols("L1 σ L2 Loss")
    return x, y, k1, b1, k2, b2, L1, σ, L2, Loss


def two_layer_equations():
    """The tutorial's two-layer model as a list of (symbol, expression) pairs, in order."""
    import symgrad

    x, y, k1, b1, k2, b2, L1, σ, L2, Loss = two_layer_symbols()
    return [
        (L1, k1 * x + b1),
        (σ, symgrad.sigmoid(L1)),
        (L2, k2 * σ + b2),
        (Loss, symgrad.mean((L2 - y) ** 2)),
    ]


def two_layer_numpy(x, y, k1, b1, k2, b2):
    """Hand-written forward and backward pass of the two-layer model."""
    L1 = k1 * x + b1
    s = 1.0 / (1.0 + np.exp(-L1))
    L2 = k2 * s + b2
    loss = np.mean((L2 - y) ** 2)
    dL2 = 2.0 * (L2 - y) / x.size
    dk2 = np.sum(dL2 * s)
    db2 = np.sum(dL2)
    ds = dL2 * k2
    dL1 = ds * s * (1.0 - s)
    dk1 = np.sum(dL1 * x)
    db1 = np.sum(dL1)
    return loss, {"k1": dk1, "b1": db1, "k2": dk2, "b2": db2}


def isclose_scalar(a, b, rel=1e-12) -> bool:
    return math.isclose(float(a), float(b), rel_tol=rel, abs_tol=rel)


def reachable(graph) -> set[int]:
    """The IR nodes the output and the gradients (if any) read, directly or not."""
    todo = [graph.output, *(d for _, d in graph.grads)]
    seen: set[int] = set()
    while todo:
        i = todo.pop()
        if i not in seen:
            seen.add(i)
            todo.extend(graph[i].args)
    return seen
