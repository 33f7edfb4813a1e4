"""Printing: the records' NumPy templates, put together by the emitter with Python's precedence.

Every case goes through ``symgrad.compile``: the line in ``model.source`` is the one expected,
and the model computes what SymPy computes (so a missing pair of parentheses cannot hide
behind a line that merely looks right).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import sympy as sp
from helpers import MODULES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import symgrad

x, y, z, w = sp.symbols("x y z w", real=True)
A, U, v = sp.symbols("A U v", real=True)
POINT = {"x": 0.3, "y": -1.7, "z": 2.5, "w": 1.1}


def _line(model: symgrad.CompiledModel) -> str:
    """The right side of the output's line in the forward function."""
    found = re.search(r"^    f = (.*)$", model.source, re.MULTILINE)
    assert found, model.source
    return found.group(1)


def _reference(expr: sp.Expr, values: dict):
    symbols = sorted(expr.free_symbols, key=lambda s: s.name)
    f = sp.lambdify(symbols, expr, modules=MODULES)
    with np.errstate(all="ignore"):  # (NumPy's floats: x/0 is inf, as in the generated code,
        return f(*(np.float64(values[s.name]) for s in symbols))  # not a ZeroDivisionError)


SCALAR_CASES = [
    (-x**2, "-x**2"),
    (sp.Pow(-x, 2, evaluate=False), "(-x)**2"),
    (x**-1, "1/x"),
    (2**x**3, "2**x**3"),
    (sp.Pow(sp.Pow(x, 2, evaluate=False), y, evaluate=False), "(x**2)**y"),
    (x**(y + 1), ("x**(1 + y)", "x**(y + 1)")),
    (x / 2, "x/2"),
    (-3 * x / 4, "-3*x/4"),
    (x ** sp.Rational(2, 3), "x**(2/3)"),
    (x / (w * y), ("x/(w*y)", "x/(y*w)")),
    (1 / (x * y) ** 2, ("1/(x**2*y**2)", "1/(x*y)**2")),
    (sp.Mul(-1, x + y, evaluate=False), ("-(x + y)", "-x - y")),
    (x - y**2, "x - y**2"),
    ((x + y) * (x - y), ("(x + y)*(x - y)", "(x - y)*(x + y)")),
    (2 * x * y, "2*x*y"),
    (sp.exp(-x) + 1, ("1 + np.exp(-x)", "np.exp(-x) + 1")),
    (sp.pi * x, "np.pi*x"),
    (sp.Float("0.1234567890123456789") * x, "0.12345678901234568*x"),
    (0.1 * x + 1e-300 * y, ("0.1*x + 1e-300*y", "1e-300*y + 0.1*x")),
]


@pytest.mark.parametrize(("expr", "code"), SCALAR_CASES, ids=[sp.sstr(e) for e, _ in SCALAR_CASES])
def test_precedence_and_numbers(expr, code):
    """The exact text where precedence decides it; where only the order of the terms of a sum
    or a product is free, either order (SymPy's, or the one it prints)."""
    model = symgrad.compile(expr, wrt=[])
    assert _line(model) in ((code,) if isinstance(code, str) else code)
    values = {k: v for k, v in POINT.items() if k in model.inputs}
    want = _reference(expr, values)
    got = model(**values)
    assert float(got) == pytest.approx(float(want), rel=1e-15, abs=1e-300)


def test_a_float_keeps_every_digit():
    """A float prints as the shortest text that reads back as the same double."""
    c = 0.1 + 0.2  # 0.30000000000000004
    model = symgrad.compile(c * x, wrt=[])
    assert "0.30000000000000004*x" in model.source
    assert float(model(x=1.0)) == c


MATMUL_CASES = [
    (symgrad.matmul(w * A, v), ("A*w @ v", "w*A @ v", "(A*w) @ v", "(w*A) @ v"),
     lambda A, U, v, w: (w * A) @ v),
    (symgrad.matmul(A, 1 / U), "A @ (1/U)", lambda A, U, v, w: A @ (1 / U)),
    (symgrad.matmul(A + U, v), "(A + U) @ v", lambda A, U, v, w: (A + U) @ v),
    (symgrad.matmul(A, U) ** 2, "(A @ U)**2", lambda A, U, v, w: (A @ U) ** 2),
    (-symgrad.matmul(A, U), "-(A @ U)", lambda A, U, v, w: -(A @ U)),
]


@pytest.mark.parametrize(("expr", "code", "numpy"), MATMUL_CASES,
                         ids=["product-left", "quotient-right", "sum-left", "power", "negation"])
def test_matmul_binds_like_a_product(expr, code, numpy):
    """``@`` has the precedence of ``*`` and groups left to right: (w*A) @ v needs no
    parentheses, A @ (1/U) does; checked on matrices, where the other grouping differs."""
    model = symgrad.compile(expr, wrt=[])
    assert _line(model) in ((code,) if isinstance(code, str) else code)
    rng = np.random.default_rng(0)
    values = {"A": rng.normal(size=(3, 3)), "U": rng.normal(size=(3, 3)) + 3,
              "v": rng.normal(size=(3, 3)), "w": 1.7}
    got = model(**{k: val for k, val in values.items() if k in model.inputs})
    np.testing.assert_allclose(got, numpy(**values), rtol=1e-14)


def test_reductions_print_as_methods():
    m = symgrad.compile(symgrad.mean(x), wrt=[])
    assert _line(m) == "x.mean()"
    m = symgrad.compile(symgrad.sum(x, axis=0, keepdims=True), wrt=[])
    assert _line(m) == "x.sum(axis=0, keepdims=True)"
    X = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(m(x=X), X.sum(axis=0, keepdims=True))


# -- random expressions: the compiled value is SymPy's ------------------------------------------

FUNCTIONS = st.sampled_from([sp.exp, sp.sin, sp.cos, sp.tanh, sp.atan, sp.Abs, symgrad.sigmoid,
                             symgrad.softplus, symgrad.relu])
NUMBERS = st.sampled_from([sp.Integer(n) for n in (-3, -2, -1, 2, 3, 100)]
                          + [sp.Float(0.5), sp.Float(-2.25), sp.Rational(1, 2),
                             sp.Rational(-3, 4)])


def expressions(evaluate: bool):
    """Random expressions, built by SymPy (evaluated) or nested as written (unevaluated)."""

    def make(cls, *args):
        return cls(*args) if evaluate else cls(*args, evaluate=False)

    leaves = st.one_of(st.sampled_from([x, y, z, w]), NUMBERS)

    def extend(inner):
        return st.one_of(
            st.tuples(inner, inner).map(lambda ab: make(sp.Add, *ab)),
            st.tuples(inner, inner).map(lambda ab: make(sp.Mul, *ab)),
            st.tuples(NUMBERS, inner).map(lambda ab: make(sp.Mul, *ab)),
            st.tuples(inner, st.integers(-2, 4)).map(
                lambda ae: make(sp.Pow, ae[0], sp.Integer(ae[1]))),
            st.tuples(FUNCTIONS, inner).map(lambda fa: fa[0](fa[1])),
        )

    return st.recursive(leaves, extend, max_leaves=8)


def _check(expr) -> None:
    if not expr.free_symbols:
        return
    model = symgrad.compile(expr, wrt=[])
    values = {k: v for k, v in POINT.items() if k in model.inputs}
    want = complex(_reference(expr, values))
    with np.errstate(all="ignore"):
        got = complex(model(**values))
    if not (got == want or np.isclose(got, want, rtol=1e-12, atol=0) or (
            np.isnan(got) and np.isnan(want))):
        # symgrad folds a function of numbers exactly (sin(exp(100)) is 0.1422), where NumPy
        # composes floats (np.sin(np.exp(100)) is -0.699): the exact value is right too
        exact = complex(sp.N(expr.xreplace({s: values[s.name] for s in expr.free_symbols}), 30))
        assert np.isclose(got, exact, rtol=1e-12, atol=0), (sp.sstr(expr), model.source)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expressions(evaluate=True))
def test_sympy_built_expressions_compute_what_sympy_computes(expr):
    _check(expr)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expressions(evaluate=False))
def test_expressions_nested_as_written_compute_what_sympy_computes(expr):
    _check(expr)
