"""The fast printing path writes exactly what SymPy's printers write, where it prints at all."""

from __future__ import annotations

import numpy as np
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sympy.printing.numpy import NumPyPrinter

from symgrad.codegen import fastprint
from symgrad.codegen.emit import COMMENT_CALLS, _CommentPrinter
from symgrad.codegen.printer import ELEMENTWISE, FAST_CALLS, HELPERS, Printer
from symgrad.construct import new, real_symbol

x, y, z = sp.symbols("x y z", real=True)
u, v = real_symbol("u"), real_symbol("v")  # node symbols: the fast path prints them in place
FUNCTIONS = st.sampled_from(ELEMENTWISE)
NUMBERS = st.sampled_from([sp.Integer(n) for n in (-3, -2, -1, 2, 3, 100)]
                          + [sp.Float(0.5), sp.Float(-2.25), sp.Rational(1, 2)])


def expressions(raw: bool):
    """Random expressions, built by SymPy (``raw=False``) or as written (construct.new)."""
    make = new if raw else (lambda cls, *args: cls(*args))
    leaves = st.one_of(st.sampled_from([x, y, z, u, v]), NUMBERS)

    def extend(inner):
        return st.one_of(
            st.tuples(inner, inner).map(lambda ab: make(sp.Add, *ab)),
            st.tuples(inner, inner).map(lambda ab: make(sp.Mul, *ab)),
            st.tuples(NUMBERS, inner).map(lambda ab: make(sp.Mul, *ab)),
            st.tuples(inner, st.integers(-2, 4)).map(lambda ae: make(sp.Pow, ae[0],
                                                                     sp.Integer(ae[1]))),
            st.tuples(FUNCTIONS, inner).map(lambda fa: make(fa[0], fa[1])),
        )

    return st.recursive(leaves, extend, max_leaves=8)


def slow_code(expr) -> str:
    return NumPyPrinter.doprint(Printer(), expr)


NAMESPACE: dict = {"np": np}
for _helper in HELPERS.values():
    exec(_helper, NAMESPACE)
POINTS = [{"x": 0.3, "y": -1.7, "z": 2.5, "u": 1.1, "v": -0.6},
          {"x": -0.8, "y": 0.45, "z": -3.0, "u": -2.2, "v": 0.9}]


def value(code: str, point: dict) -> float:
    with np.errstate(all="ignore"):
        return complex(eval(code, {**NAMESPACE, **point}))  # our own code


def check(expr, handled: list, exact: bool) -> None:
    """``exact``: the fast path must write SymPy's very text. Otherwise (products and powers
    nested as written, which SymPy's printer re-arranges) the same values at a few points."""
    try:
        fast = fastprint.text(expr, FAST_CALLS)
    except fastprint.Unsupported:
        pass
    else:
        handled.append(1)
        slow = slow_code(expr)
        if exact or fast == slow:
            assert fast == slow, sp.srepr(expr)
        else:
            for point in POINTS:
                a, b = value(fast, point), value(slow, point)
                assert a == b or np.isclose(a, b, rtol=1e-12, atol=0) or (
                    np.isnan(a) and np.isnan(b)), (fast, slow, point)
    try:
        fast = fastprint.text(expr, COMMENT_CALLS, floats=False)
    except fastprint.Unsupported:
        pass
    else:
        slow = _CommentPrinter({"order": "none"}).doprint(expr)
        assert fast == slow or not exact, sp.srepr(expr)


HANDLED: list = []


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expressions(raw=False))
def test_sympy_built_expressions_print_the_same(expr):
    check(expr, HANDLED, exact=True)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expressions(raw=True))
def test_expressions_built_as_written_compute_the_same(expr):
    check(expr, HANDLED, exact=False)


def test_the_fast_path_is_taken_for_most_of_them():
    # the two tests above ran first (file order); a fast path that never ran would pass them
    assert len(HANDLED) > 300


def test_the_common_lines():
    t1, t2, dt3 = sp.symbols("t1 t2 dt3", real=True)
    cases = {
        2 * dt3 * t1: "2*dt3*t1",
        -t1: "-t1",
        new(sp.Mul, sp.Integer(-1), t1 + t2): "-(t1 + t2)",
        t1 - t2**2: "t1 - t2**2",
        -t1**2: "-t1**2",
        new(sp.Pow, new(sp.Pow, t1, sp.Integer(2)), sp.Integer(3)): "(t1**2)**3",
        new(sp.Pow, new(sp.Mul, sp.Integer(-1), t1), sp.Integer(2)): "(-t1)**2",
        sp.Float(0.5) * t1: "0.5*t1",
        sp.exp(-t1) + 1: "1 + np.exp(-t1)",
    }
    for expr, code in cases.items():
        assert Printer().doprint(expr) == code
        assert slow_code(expr) == code


def test_a_power_of_a_power_keeps_its_parentheses():
    """(x**2)**y is not x**(2**y): the full printer parenthesises the base too."""
    expr = new(sp.Pow, x**2, y)
    assert Printer().doprint(expr) == "(x**2)**y"
    assert value("(x**2)**y", {"x": 3.0, "y": 3.0}) == 729
