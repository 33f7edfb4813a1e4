"""Every operation record, tested as a record, through the public API.

For each operation a user can write (``symgrad.ops.OPS``: differentiable, read from SymPy or
written with an operator), a model that applies it to its inputs is compiled and checked:

* (a) its value against SymPy's own evaluation of the expression (``evalf``), or, for the
  array operations, against the same operation spelled out element by element in SymPy;
* (b) every gradient against ``sympy.diff`` evaluated at the point (where SymPy can
  differentiate it) and against central finite differences of the compiled model, at points
  inside the function's domain and away from its non-smooth points;
* (c) the generated source against the record's NumPy template;
* (d) the record's shape rule: compiled with ``shapes=`` (known and named sizes), the output
  has the shape the rule gives, at compile time (``model.ir``) and at the call;
* (e) its spelling in the text language (``symgrad.parsing``).

A record added to ``OPS`` without a case here fails ``test_every_record_has_a_case``.
"""

from __future__ import annotations

import functools
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field

import numpy as np
import pytest
import sympy as sp
from helpers import finite_difference, no_delta
from sympy.codegen.cfunctions import exp2, expm1, log1p, log2, log10

import symgrad
from symgrad import ops
from symgrad.functions import hypot, logaddexp
from symgrad.ops import ATOM, OPS, SUPPORTED
from symgrad.parsing import parse_expression

x, y, z = sp.symbols("x y z", real=True)
X, A, B = sp.symbols("X A B", real=True)

#: Records a user never writes: the graph's structure, the conditions inside a Piecewise
#: template (tested through Piecewise), and what the reverse sweep inserts.
INTERNAL = {
    "input", "const", "copy", "where", "true", "lt", "le", "gt", "ge", "eq", "ne", "and",
    "or", "not", "ones_like", "sinc_derivative", "sigmoid_complement", "size", "sum_to",
    "broadcast_like", "full_like", "expand_dims", "matmul_vjp", "max_vjp",
}  # fmt: skip


@dataclass
class Case:
    """One model applying a record's operation to inputs (scalar symbols x, y, z)."""

    record: str
    expr: sp.Expr
    points: list[tuple[float, ...]]  # values of the expression's arguments, in order
    text: str  # the same expression in the text language
    args: tuple[sp.Symbol, ...] = (x,)
    code: str | None = None  # the expected line's right side, where the record's template is
    # not applied to the inputs themselves (arithmetic as SymPy stores it)
    sympy_diff: bool = True  # False where SymPy leaves the derivative unevaluated

    @property
    def id(self) -> str:
        return sp.sstr(self.expr)


def _c(record, expr, points, text, args=(x,), **kw) -> Case:
    return Case(record, expr, [p if isinstance(p, tuple) else (p,) for p in points], text,
                args, **kw)


ANY = [-2.1, -0.35, 0.45, 1.7]
POSITIVE = [0.3, 1.1, 3.7]
UNIT = [-0.8, -0.2, 0.35, 0.9]
TWO = [(0.7, 1.3), (1.9, -0.6), (-2.4, 0.8)]
THREE = [(0.7, 1.3, -0.2), (1.9, 0.6, -0.4), (-2.6, -0.5, -3.3)]

ELEMENTWISE = [
    _c("add", x + y, TWO, "x + y", (x, y), code="x + y"),
    _c("sub", x - y, TWO, "x - y", (x, y), code="x - y"),
    _c("mul", x * y, TWO, "x*y", (x, y), code="x*y"),
    _c("div", x / y, TWO, "x/y", (x, y), code="x/y"),
    _c("neg", -x, ANY, "-x", code="-x"),
    _c("pow", x**y, [(0.7, 1.3), (1.9, -0.6), (2.4, 0.8)], "x**y", (x, y), code="x**y"),
    _c("sqrt", sp.sqrt(x), POSITIVE, "sqrt(x)"),
    _c("exp", sp.exp(x), ANY, "exp(x)"),
    _c("log", sp.log(x), POSITIVE, "log(x)"),
    _c("sin", sp.sin(x), ANY, "sin(x)"),
    _c("cos", sp.cos(x), ANY, "cos(x)"),
    _c("tan", sp.tan(x), [-1.2, -0.3, 0.4, 1.1], "tan(x)"),
    _c("sinh", sp.sinh(x), ANY, "sinh(x)"),
    _c("cosh", sp.cosh(x), ANY, "cosh(x)"),
    _c("tanh", sp.tanh(x), ANY, "tanh(x)"),
    _c("asin", sp.asin(x), UNIT, "asin(x)"),
    _c("acos", sp.acos(x), UNIT, "acos(x)"),
    _c("atan", sp.atan(x), ANY, "atan(x)"),
    _c("asinh", sp.asinh(x), ANY, "asinh(x)"),
    _c("acosh", sp.acosh(x), [1.2, 2.5, 7.0], "acosh(x)"),
    _c("atanh", sp.atanh(x), UNIT, "atanh(x)"),
    _c("log1p", log1p(x), [-0.7, -1e-3, 1e-12, 0.4, 3.0], "log1p(x)"),  # exact near 0
    _c("expm1", expm1(x), [-2.0, -1e-3, 1e-12, 0.4, 1.5], "expm1(x)"),
    _c("log2", log2(x), POSITIVE, "log2(x)"),
    _c("log10", log10(x), POSITIVE, "log10(x)"),
    _c("exp2", exp2(x), ANY, "exp2(x)"),
    _c("erf", sp.erf(x), ANY, "erf(x)"),
    _c("erfc", sp.erfc(x), [*ANY, 5.5], "erfc(x)"),  # 1 - erf(x) would be 0 at 5.5
    _c("gammaln", sp.loggamma(x), [0.3, 1.1, 3.7, 12.5], "gammaln(x)"),
    _c("polygamma", sp.polygamma(0, x), POSITIVE, "polygamma(0, x)"),
    _c("polygamma", sp.polygamma(1, x), POSITIVE, "polygamma(1, x)"),
    _c("polygamma", sp.polygamma(2, x), POSITIVE, "polygamma(2, x)"),
    _c("sinc", sp.sinc(x), [-2.0, -0.3, 0.1, 1.7], "sinc(x)"),
    _c("sigmoid", symgrad.sigmoid(x), [-3.0, -0.3, 0.4, 2.5], "sigmoid(x)"),
    _c("softplus", symgrad.softplus(x), [-3.0, -0.3, 0.4, 2.5], "softplus(x)"),
    _c("relu", symgrad.relu(x), ANY, "relu(x)"),
    _c("abs", sp.Abs(x), ANY, "Abs(x)"),
    _c("sign", sp.sign(x), ANY, "sign(x)"),
    _c("floor", sp.floor(x), ANY, "floor(x)", sympy_diff=False),
    _c("ceiling", sp.ceiling(x), ANY, "ceiling(x)", sympy_diff=False),
    _c("heaviside", sp.Heaviside(x), ANY, "Heaviside(x)"),
    _c("heaviside", sp.Heaviside(x, 1), ANY, "Heaviside(x, 1)"),
    _c("atan2", sp.atan2(y, x), [(0.7, 1.3), (1.9, -0.6), (-2.4, 0.8), (-0.5, -1.5)],
       "atan2(y, x)", (y, x)),
    _c("logaddexp", logaddexp(x, y), TWO, "logaddexp(x, y)", (x, y)),
    _c("hypot", hypot(x, y), TWO, "hypot(x, y)", (x, y)),
    _c("maximum", sp.Max(x, y), TWO, "Max(x, y)", (x, y)),
    _c("maximum", sp.Max(x, y, z), THREE, "Max(x, y, z)", (x, y, z)),
    _c("minimum", sp.Min(x, y), TWO, "Min(x, y)", (x, y)),
    _c("minimum", sp.Min(x, y, z), THREE, "Min(x, y, z)", (x, y, z)),
    _c("piecewise", sp.Piecewise((x**2 * y, x > y), (sp.sin(y), True)), TWO,
       "Piecewise((x**2*y, x > y), (sin(y), True))", (x, y)),
]


@dataclass
class ArrayCase:
    """An operation that is not elementwise, on arrays of the given shapes.

    ``reference`` computes it on NumPy arrays of SymPy expressions (object arrays), element by
    element, so that its value and its derivatives come from SymPy.
    """

    record: str
    expr: sp.Expr
    shapes: dict[sp.Symbol, tuple[int, ...]]
    reference: object  # (*object arrays) -> object array or SymPy expression
    text: str
    named: dict[sp.Symbol, tuple] = field(default_factory=dict)  # shapes with a named size

    @property
    def id(self) -> str:
        return sp.sstr(self.expr)


def _rows(a: np.ndarray, axis: int | None, keepdims: bool, f) -> object:
    """``f`` (of a list of elements) applied over ``axis`` of the object array ``a``."""
    if axis is None:
        out = f(list(a.ravel()))
        return np.full((1,) * a.ndim, out, dtype=object) if keepdims else out
    moved = np.moveaxis(a, axis, -1)
    out = np.empty(moved.shape[:-1], dtype=object)
    for idx in np.ndindex(out.shape):
        out[idx] = f(list(moved[idx]))
    return np.expand_dims(out, axis) if keepdims else out


def _along(a: np.ndarray, axis: int, f) -> np.ndarray:
    """``f`` (a list of elements -> a list) applied along ``axis`` of the object array ``a``."""
    moved = np.moveaxis(a, axis, -1)
    out = np.empty(moved.shape, dtype=object)
    for idx in np.ndindex(moved.shape[:-1]):
        out[idx] = f(list(moved[idx]))
    return np.moveaxis(out, -1, axis)


def _sum(r):
    return sp.Add(*r)


def _mean(r):
    return sp.Add(*r) / len(r)


def _max(r):
    return sp.Max(*r)


def _logsumexp(r):
    return sp.log(sp.Add(*(sp.exp(e) for e in r)))


def _softmax(r):
    total = sp.Add(*(sp.exp(e) for e in r))
    return [sp.exp(e) / total for e in r]


def _log_softmax(r):
    lse = _logsumexp(r)
    return [e - lse for e in r]


def _reductions():
    cases = []
    for record, cls, f in [("sum", symgrad.sum, _sum), ("mean", symgrad.mean, _mean),
                           ("max", symgrad.max, _max),
                           ("logsumexp", symgrad.logsumexp, _logsumexp)]:
        for axis, keepdims in [(None, False), (0, False), (1, True), (-1, False)]:
            options = (f", axis={axis}" if axis is not None else "") + (
                ", keepdims=True" if keepdims else "")
            cases.append(ArrayCase(
                record, cls(X, axis=axis, keepdims=keepdims), {X: (2, 3)},
                functools.partial(_rows, axis=axis, keepdims=keepdims, f=f),
                f"{record}(X{options})", {X: ("n", 3)}))
    return cases


ARRAYS = [
    *_reductions(),
    ArrayCase("softmax", symgrad.softmax(X), {X: (2, 3)},
              lambda a: _along(a, -1, _softmax), "softmax(X)", {X: ("n", 3)}),
    ArrayCase("softmax", symgrad.softmax(X, axis=0), {X: (2, 3)},
              lambda a: _along(a, 0, _softmax), "softmax(X, axis=0)", {X: ("n", 3)}),
    ArrayCase("log_softmax", symgrad.log_softmax(X), {X: (2, 3)},
              lambda a: _along(a, -1, _log_softmax), "log_softmax(X)", {X: ("n", 3)}),
    ArrayCase("log_softmax", symgrad.log_softmax(X, axis=0), {X: (2, 3)},
              lambda a: _along(a, 0, _log_softmax), "log_softmax(X, axis=0)", {X: ("n", 3)}),
    ArrayCase("matmul", symgrad.matmul(A, B), {A: (2, 3), B: (3, 2)}, np.matmul,
              "matmul(A, B)", {A: ("n", 3), B: (3, 2)}),
    ArrayCase("matmul", symgrad.matmul(A, B), {A: (2, 3), B: (3,)}, np.matmul,
              "matmul(A, B)", {A: ("n", 3), B: (3,)}),
    ArrayCase("matmul", symgrad.matmul(A, B), {A: (3,), B: (3, 2)}, np.matmul,
              "matmul(A, B)", {A: (3,), B: (3, "m")}),
    ArrayCase("matmul", symgrad.matmul(A, B), {A: (3,), B: (3,)}, np.matmul,
              "matmul(A, B)", {A: ("n",), B: ("n",)}),
    ArrayCase("transpose", symgrad.transpose(X), {X: (2, 3)}, np.transpose,
              "transpose(X)", {X: ("n", 3)}),
    ArrayCase("transpose", symgrad.transpose(X, axes=(1, 0, 2)), {X: (2, 3, 2)},
              lambda a: np.transpose(a, (1, 0, 2)), "transpose(X, axes=(1, 0, 2))",
              {X: ("n", 3, 2)}),
]


def _real(expr: sp.Expr) -> sp.Expr:
    """The parser's plain symbols as the real symbols of the cases."""
    return expr.xreplace({s: sp.Symbol(s.name, real=True) for s in expr.free_symbols})


def _inputs(case: Case, point: tuple[float, ...]) -> dict[str, float]:
    return {s.name: v for s, v in zip(case.args, point, strict=True)}


def _evalf(expr: sp.Expr, subs: dict) -> float:
    """``expr`` at the point, evaluated by SymPy with 30 digits (the point's floats exactly)."""
    exact = {s: sp.Float(v, 30) for s, v in subs.items()}
    return float(sp.sympify(expr).xreplace(exact).evalf(30))


# -- the cases cover the records ----------------------------------------------------------------


def test_every_record_has_a_case():
    """A record a user can write, added without a case here, fails (the point of the file)."""
    covered = {c.record for c in ELEMENTWISE} | {c.record for c in ARRAYS}
    writable = {name for name, op in OPS.items() if op.differentiable and name not in INTERNAL}
    assert writable - covered == set()
    assert covered <= set(OPS)


@pytest.mark.parametrize("case", ELEMENTWISE + ARRAYS, ids=lambda c: f"{c.record}:{c.id}")
def test_the_case_compiles_to_its_record(case):
    """The model of each case is compiled as the record it tests (not as some lowering)."""
    model = symgrad.compile(case.expr)
    forward = {model.ir[i].op for i in range(model.ir.forward)}
    assert case.record in forward, (case.record, str(model.ir))


# -- (a) values, (b) gradients: elementwise operations -----------------------------------------


@pytest.mark.parametrize("case", ELEMENTWISE, ids=lambda c: f"{c.record}:{c.id}")
def test_value_against_sympy(case):
    model = symgrad.compile(case.expr)
    for point in case.points:
        want = _evalf(case.expr, dict(zip(case.args, point, strict=True)))
        got = float(model(**_inputs(case, point)))
        assert got == pytest.approx(want, rel=1e-13, abs=1e-15), point


@pytest.mark.parametrize("case", ELEMENTWISE, ids=lambda c: f"{c.record}:{c.id}")
def test_gradient_against_sympy_diff_and_finite_differences(case):
    model = symgrad.compile(case.expr)
    assert model.wrt == tuple(sorted(s.name for s in case.args))
    for point in case.points:
        inputs = _inputs(case, point)
        subs = dict(zip(case.args, point, strict=True))
        value, grads = model.value_and_grad(**inputs)
        assert float(value) == pytest.approx(float(model(**inputs)), rel=1e-15, abs=1e-300)
        for s in case.args:
            got = float(grads[s.name])
            if case.sympy_diff:
                want = _evalf(no_delta(sp.diff(case.expr, s)), subs)
                assert got == pytest.approx(want, rel=1e-12, abs=1e-14), (s, point)
            fd = float(finite_difference(model, inputs, s.name))
            assert got == pytest.approx(fd, rel=1e-6, abs=1e-8), (s, point)


# -- (c) printing, (d) shapes, (e) parsing: elementwise operations -----------------------------


def _template_code(record: str, expr: sp.Expr) -> str:
    """The record's NumPy template applied to the operands of ``expr`` (each a symbol)."""
    op = OPS[record]
    operands, attrs = op.operands(expr)
    codes = [(str(a), ATOM) for a in operands]
    if isinstance(op.numpy, str):
        return op.numpy.format(*(c for c, _ in codes))
    return op.numpy(codes, attrs)[0]


@pytest.mark.parametrize("case", ELEMENTWISE, ids=lambda c: f"{c.record}:{c.id}")
def test_source_uses_the_records_numpy_code(case):
    model = symgrad.compile(case.expr)
    if case.record == "piecewise":  # computed as a whole, branch by branch
        assert "np.where(" in model.source
        return
    code = case.code or _template_code(case.record, case.expr)
    assert re.search(rf"^    f = {re.escape(code)}$", model.source, re.MULTILINE), (
        code, model.source)
    extra = OPS[case.record].extra
    assert ("import scipy.special" in model.source) == (extra == "scipy")


@pytest.mark.parametrize("case", ELEMENTWISE, ids=lambda c: f"{c.record}:{c.id}")
def test_shape_rule_broadcasts(case):
    """Elementwise: the arguments broadcast, (2, 3) with (3,) giving (2, 3), with sizes known
    or named and bound at the call; every element is the function of its operands."""
    first, *rest = case.args
    for declared, n in [({first: (2, 3)}, 2), ({first: ("n", 3)}, 4)]:
        shapes = {**declared, **{s: (3,) for s in rest}}
        model = symgrad.compile(case.expr, shapes=shapes)
        assert model.ir[model.ir.output].shape == (shapes[first][0], 3)
        columns = [case.points[j % len(case.points)] for j in range(3)]
        values = {first.name: np.array([[p[0] for p in columns]] * n)}
        for i, s in enumerate(rest, 1):
            values[s.name] = np.array([p[i] for p in columns])
        out = model(**values)
        assert np.shape(out) == (n, 3)
        for j, p in enumerate(columns):
            want = _evalf(case.expr, dict(zip(case.args, p, strict=True)))
            np.testing.assert_allclose(out[:, j], want, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("case", ELEMENTWISE + ARRAYS, ids=lambda c: f"{c.record}:{c.id}")
def test_text_language_reads_it(case):
    op = OPS[case.record]
    if op.text:
        assert re.match(rf"{re.escape(op.text)}\(", case.text) or op.text == "sqrt"
    assert _real(parse_expression(case.text)) == case.expr


# -- array operations --------------------------------------------------------------------------


def _elements(name: str, shape: tuple[int, ...]) -> np.ndarray:
    out = np.empty(shape, dtype=object)
    for idx in np.ndindex(shape):
        out[idx] = sp.Symbol(f"{name}_{'_'.join(map(str, idx))}", real=True)
    return out


def _point(case: ArrayCase, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    # distinct values (max has no ties), spaced well beyond a finite difference's step
    return {s.name: rng.permutation(np.arange(np.prod(shape)) * 0.37 - 1.1).reshape(shape)
            for s, shape in case.shapes.items()}


def weighted_sum(case: ArrayCase) -> tuple[sp.Expr, list, dict]:
    """An array record as a scalar loss for the backend tests: sum(C * the case's expression),
    its parameters, and inputs (the case's point and a fixed cotangent C)."""
    C = sp.Symbol("C", real=True)
    values = _point(case, 0)
    out = np.asarray(symgrad.compile(case.expr, cache=False)(**values))
    cotangent = np.random.default_rng(3).normal(size=out.shape)
    return symgrad.sum(C * case.expr), list(case.shapes), {**values, "C": cotangent}


def _reference(case: ArrayCase):
    """The case's output as SymPy expressions of the elements, and those elements."""
    elements = {s.name: _elements(s.name, shape) for s, shape in case.shapes.items()}
    args = [elements[s.name] for s in case.shapes]
    return np.asarray(case.reference(*args), dtype=object), elements


def _substitute(elements: dict, values: dict) -> dict:
    return {e: float(values[name][idx]) for name, arr in elements.items()
            for idx, e in np.ndenumerate(arr)}


@pytest.mark.parametrize("case", ARRAYS, ids=lambda c: f"{c.record}:{c.id}")
def test_array_value_against_sympy(case):
    model = symgrad.compile(case.expr)
    ref, elements = _reference(case)
    for seed in (0, 1):
        values = _point(case, seed)
        got = np.asarray(model(**values))
        subs = _substitute(elements, values)
        want = np.vectorize(functools.partial(_evalf, subs=subs), otypes=[float])(ref)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("case", ARRAYS, ids=lambda c: f"{c.record}:{c.id}")
def test_array_gradient_against_sympy_diff_and_finite_differences(case):
    """The vector-Jacobian product with a cotangent C: the gradient of sum(C*op(...))."""
    C = sp.Symbol("C", real=True)
    wrt = list(case.shapes)
    model = symgrad.compile(symgrad.sum(C * case.expr), wrt=wrt)
    ref, elements = _reference(case)
    rng = np.random.default_rng(7)
    cotangent = rng.normal(size=ref.shape)
    loss = sp.Add(*(float(c) * e for c, e in zip(np.ravel(cotangent), ref.ravel(),
                                                 strict=True)))
    values = _point(case, 0)
    subs = _substitute(elements, values)
    inputs = {**values, "C": cotangent}
    _, grads = model.value_and_grad(**inputs)
    for s in wrt:
        got = np.asarray(grads[s.name])
        want = np.vectorize(lambda e: _evalf(no_delta(sp.diff(loss, e)), subs),
                            otypes=[float])(elements[s.name])
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
        fd = finite_difference(model, inputs, s.name)
        np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("case", ARRAYS, ids=lambda c: f"{c.record}:{c.id}")
def test_array_source_uses_the_records_numpy_code(case):
    model = symgrad.compile(case.expr)
    code = _template_code(case.record, case.expr)
    assert re.search(rf"^    f = {re.escape(code)}$", model.source, re.MULTILINE), (
        code, model.source)
    helper = OPS[case.record].helper
    if helper:
        assert f"def {helper}(" in model.source


@pytest.mark.parametrize("case", ARRAYS, ids=lambda c: f"{c.record}:{c.id}")
def test_array_shape_rule(case):
    """The shape rule, at compile time and at the call: known sizes, then named ones."""
    ref, _ = _reference(case)
    model = symgrad.compile(case.expr, shapes=case.shapes)
    assert model.ir[model.ir.output].shape == ref.shape
    assert np.shape(model(**_point(case, 0))) == ref.shape
    named = symgrad.compile(case.expr, shapes=case.named)
    sizes = {"n": 4, "m": 5}
    bind = {s.name: tuple(sizes.get(n, n) for n in shape) for s, shape in case.named.items()}
    values = {name: np.linspace(-1, 1, int(np.prod(shape))).reshape(shape)
              for name, shape in bind.items()}
    expected = np.shape(case.reference(*(np.asarray(values[s.name], dtype=object)
                                         for s in case.shapes)))
    assert np.shape(named(**values)) == expected
    rule = OPS[case.record].shape
    operands, attrs = OPS[case.record].operands(case.expr)
    at_compile = named.ir[named.ir.output].shape
    assert at_compile == rule(attrs, *(case.named[a] for a in operands))
    assert tuple(sizes.get(n, n) for n in at_compile) == expected


@pytest.mark.parametrize(
    ("expr", "shapes"),
    [(symgrad.sum(X, axis=2), {X: (2, 3)}), (symgrad.matmul(A, B), {A: (2, 3), B: (2, 3)}),
     (symgrad.transpose(X, axes=(1, 0)), {X: (2, 3, 4)}), (symgrad.softmax(X, axis=3), {X: (2, 3)}),
     (sp.atan2(y, x), {x: (2, 3), y: (4,)})],
    ids=["axis", "matmul", "axes", "softmax-axis", "broadcast"],
)
def test_a_shape_rule_refuses_what_does_not_fit(expr, shapes):
    with pytest.raises(symgrad.SymgradError, match=r"axis|axes|align|broadcast"):
        symgrad.compile(expr, shapes=shapes)


# -- non-smooth points: each record's stated convention -----------------------------------------

#: record -> [(expression, point, expected gradient)] at its non-smooth points
CONVENTIONS = {
    "relu": [(symgrad.relu(x), {x: 0.0}, {x: 0.0})],
    "abs": [(sp.Abs(x), {x: 0.0}, {x: 0.0})],
    "sign": [(sp.sign(x), {x: 0.0}, {x: 0.0})],
    "floor": [(sp.floor(x), {x: 2.0}, {x: 0.0})],
    "ceiling": [(sp.ceiling(x), {x: -1.0}, {x: 0.0})],
    "heaviside": [(sp.Heaviside(x), {x: 0.0}, {x: 0.0})],
    "pow": [(x**y, {x: 0.0, y: 2.5}, {x: 0.0, y: 0.0})],
    "maximum": [(sp.Max(x, y), {x: 1.5, y: 1.5}, {x: 0.5, y: 0.5}),
                (sp.Max(x, y, z), {x: 1.5, y: 1.5, z: 1.5}, {x: 1 / 3, y: 1 / 3, z: 1 / 3}),
                (sp.Max(x, y, z), {x: 2.0, y: 2.0, z: 0.0}, {x: 0.5, y: 0.5, z: 0.0})],
    "minimum": [(sp.Min(x, y), {x: 1.5, y: 1.5}, {x: 0.5, y: 0.5}),
                (sp.Min(x, y, z), {x: 1.5, y: 1.5, z: 1.5}, {x: 1 / 3, y: 1 / 3, z: 1 / 3}),
                (sp.Min(x, y, z), {x: 2.0, y: 2.0, z: 4.0}, {x: 0.5, y: 0.5, z: 0.0})],
    "hypot": [(hypot(x, y), {x: 0.0, y: 0.0}, {x: np.nan, y: np.nan})],
    "max": [(symgrad.max(X), {X: np.array([1.0, 3.0, 3.0])}, {X: np.array([0.0, 0.5, 0.5])})],
}


def test_every_stated_convention_is_tested():
    stated = {name for name, op in OPS.items() if op.nonsmooth and name not in INTERNAL}
    assert stated - set(CONVENTIONS) == set()


@pytest.mark.parametrize(
    ("expr", "point", "want"), [c for cases in CONVENTIONS.values() for c in cases],
    ids=[f"{k}-{i}" for k, cases in CONVENTIONS.items() for i in range(len(cases))],
)
def test_non_smooth_convention(expr, point, want):
    model = symgrad.compile(expr)
    with np.errstate(all="ignore"):
        _, grads = model.value_and_grad(**{s.name: v for s, v in point.items()})
    for s, w in want.items():
        np.testing.assert_allclose(grads[s.name], w, rtol=1e-15, atol=0)


# -- the rules themselves, against sympy.diff ---------------------------------------------------

OUT = sp.Symbol("out", real=True)  # the node's own value, as the reverse sweep passes it


def _partials(case: Case, out: sp.Expr) -> tuple:
    op = OPS[case.record]
    if case.record == "sqrt":  # SymPy's x**(1/2), read as the one-operand record
        return op.partials((), out, *case.args)
    operands, attrs = op.operands(case.expr)
    return op.partials(attrs, out, *operands)


RULE_CASES = [c for c in ELEMENTWISE if c.code is None and c.record != "piecewise"]


@pytest.mark.parametrize("case", RULE_CASES, ids=lambda c: f"{c.record}:{c.id}")
def test_rule_against_sympy_diff(case):
    """``partials`` with the node's value as a symbol (as the sweep calls it), then that
    symbol replaced by the value: sympy.diff's derivative, and ``ops.derivative``'s."""
    partials = [sp.sympify(p).xreplace({OUT: case.expr})
                for p in _partials(case, OUT)]
    for point in case.points:
        subs = dict(zip(case.args, point, strict=True))
        for s, p in zip(case.args, partials, strict=True):
            got = _evalf(p, subs)
            forward = _evalf(ops.derivative(case.expr, s), subs)
            assert forward == pytest.approx(got, rel=1e-13, abs=1e-15)
            if case.sympy_diff:
                want = _evalf(no_delta(sp.diff(case.expr, s)), subs)
                assert got == pytest.approx(want, rel=1e-13, abs=1e-15), (s, point)


@pytest.mark.parametrize(
    ("record", "expected"),
    [("exp", OUT), ("tanh", 1 - OUT**2), ("tan", 1 + OUT**2),
     ("sigmoid", OUT * ops.sigmoid_complement(OUT, x))],
)
def test_rules_reuse_the_node_value(record, expected):
    """exp' = exp, tanh' = 1 − tanh², σ' = σ·(1 − σ) with 1 − σ computed exactly."""
    (got,) = OPS[record].partials((), OUT, x)
    assert sp.expand(got - expected) == 0


def test_forward_derivative_of_a_composite():
    e = symgrad.sigmoid(x**2) * sp.sin(x * y) + logaddexp(x, sp.erf(y))
    for s in (x, y):
        got = ops.derivative(e, s)
        for point in ({x: 0.3, y: -1.2}, {x: -1.7, y: 0.4}):
            assert _evalf(got, point) == pytest.approx(_evalf(sp.diff(e, s), point), rel=1e-13)


def test_forward_derivative_names_what_has_no_rule():
    with pytest.raises(symgrad.SymgradError, match="mystery"):
        ops.derivative(sp.Function("mystery")(x), x)


# -- the list of supported functions, the optional extra ----------------------------------------


def test_supported_lists_every_text_name():
    texts = {op.text for op in OPS.values() if op.text and op.differentiable}
    listed = set(re.split(r",\s*|\s+and\s+", SUPPORTED))
    assert texts - listed == set()


def test_an_unknown_function_is_refused_with_the_supported_list():
    class cube(sp.Function):
        nargs = 1

        def fdiff(self, argindex=1):
            return 3 * self.args[0] ** 2

    for model in (cube(x), cube(x) * y):  # differentiated, or only computed
        with pytest.raises(symgrad.SymgradError, match=r"cube") as info:
            symgrad.compile(model)
        message = str(info.value)
        for op in OPS.values():
            if op.text and op.differentiable:
                assert op.text in message, op.text


def test_a_model_needing_scipy_compiles_and_runs():
    """erf is scipy.special's: the generated module imports it, and only then."""
    model = symgrad.compile(symgrad.sum(sp.erf(X) * y), wrt=[X, y])
    assert "import scipy.special" in model.source
    values = np.array([-1.3, 0.2, 2.0])
    value, grads = model.value_and_grad(X=values, y=2.0)
    want = [float(sp.erf(v)) for v in values]
    assert float(value) == pytest.approx(2 * sum(want), rel=1e-14)
    np.testing.assert_allclose(grads["X"], 4 / np.sqrt(np.pi) * np.exp(-values**2), rtol=1e-14)
    assert float(grads["y"]) == pytest.approx(sum(want), rel=1e-14)
    assert "scipy" not in symgrad.compile(sp.exp(x)).source


def test_a_model_needing_scipy_says_so_without_it():
    """Without SciPy, compiling a model that needs it is a SymgradError naming the extra."""
    script = textwrap.dedent(
        """
        import sys
        sys.modules["scipy"] = None  # as if SciPy were not installed
        import sympy as sp, symgrad
        try:
            symgrad.compile(sp.erf(sp.Symbol("x")))
        except symgrad.SymgradError as e:
            print("refused:", e)
        else:
            print("compiled")
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("refused:"), out.stdout
    assert "scipy" in out.stdout


# -- arithmetic as SymPy writes it, and compositions --------------------------------------------

FORMS = [x + y + z, x * y * z, x**3, x**-2, x ** sp.Rational(2, 3), 1 / x, 1 / sp.sqrt(x),
         x**2.5, 2**y, x**x, sp.Max(x, 0), sp.Min(x, 0), x * sp.floor(y), sp.ceiling(x) * y,
         sp.Piecewise((sp.log(x), x > 1), (x - 1, True)), -3 * x / 4 + y / 2]
FORM_POINTS = [{x: 0.7, y: 1.3, z: 2.1}, {x: 1.9, y: 0.6, z: -0.4}, {x: 2.6, y: -0.5, z: 3.3}]


def _steps_flat(expr: sp.Expr) -> sp.Expr:
    """SymPy leaves d floor(y)/dy unevaluated: it is 0 between the steps."""
    return expr.replace(
        lambda e: isinstance(e, sp.Derivative) and isinstance(e.expr, (sp.floor, sp.ceiling)),
        lambda e: sp.S.Zero)


@pytest.mark.parametrize("expr", FORMS, ids=sp.sstr)
def test_arithmetic_forms_against_sympy_diff_and_finite_differences(expr):
    """Sums and products of many terms, every kind of power (including a variable exponent
    and base, x**x, whose two partials add up), and the non-smooth functions away from their
    kinks: compiled gradient == sympy.diff == finite differences."""
    symbols = sorted(expr.free_symbols, key=lambda s: s.name)
    model = symgrad.compile(expr)
    for point in FORM_POINTS:
        inputs = {s.name: point[s] for s in symbols}
        value, grads = model.value_and_grad(**inputs)
        assert float(value) == pytest.approx(_evalf(expr, point), rel=1e-13, abs=1e-15)
        for s in symbols:
            want = _evalf(_steps_flat(no_delta(sp.diff(expr, s))), point)
            assert float(grads[s.name]) == pytest.approx(want, rel=1e-12, abs=1e-14), (s, point)
            fd = float(finite_difference(model, inputs, s.name))
            assert float(grads[s.name]) == pytest.approx(fd, rel=1e-6, abs=1e-8), (s, point)


def test_every_symgrad_function_has_a_record():
    from symgrad.functions import FUNCTIONS

    missing = [f.__name__ for f in FUNCTIONS if not any(c in ops.BY_CLASS for c in f.__mro__)]
    assert missing == []


def test_a_function_without_a_record_is_named_at_compile_time():
    """Not at the first call: compile refuses it, naming it and what can be computed."""
    with pytest.raises(symgrad.SymgradError, match=r"mystery.*sigmoid"):
        symgrad.compile(sp.Function("mystery")(x))


def test_every_function_through_the_command_line(tmp_path):
    """One model file calling every function of the cases, compiled by ``python -m symgrad
    compile --emit``: the written module computes each term and its gradient as SymPy does."""
    lines, terms, inputs, expected, grads = [], [], {}, 0.0, {}
    for i, case in enumerate(ELEMENTWISE):
        text = re.sub(r"\b([xyz])\b", rf"\1_{i}", case.text)
        lines.append(f"e{i} = {text}")
        terms.append(f"e{i}")
        renamed = {s: sp.Symbol(f"{s.name}_{i}", real=True) for s in case.args}
        point = dict(zip(case.args, case.points[0], strict=True))
        inputs |= {renamed[s].name: v for s, v in point.items()}
        expected += _evalf(case.expr, point)
        for s in case.args:
            grads[renamed[s].name] = (_evalf(_steps_flat(no_delta(sp.diff(case.expr, s))), point)
                                      if case.sympy_diff else 0.0)
    model_file = tmp_path / "model.txt"
    model_file.write_text("\n".join([*lines, "f = " + " + ".join(terms)]) + "\n",
                          encoding="utf-8")
    out = tmp_path / "every_function.py"
    done = subprocess.run([sys.executable, "-m", "symgrad", "compile", "--file", str(model_file),
                           "--emit", str(out), "--no-code"], capture_output=True, text=True,
                          encoding="utf-8", timeout=300)
    assert done.returncode == 0, done.stderr
    namespace: dict = {}
    exec(compile(out.read_text(encoding="utf-8"), str(out), "exec"), namespace)
    value, got = namespace["value_and_grad"](**inputs)
    assert float(value) == pytest.approx(expected, rel=1e-12)
    assert set(got) == set(grads)
    for name, want in grads.items():
        assert float(got[name]) == pytest.approx(want, rel=1e-11, abs=1e-13), name


@pytest.mark.parametrize("name", [n for n in OPS if n not in ("input", "piecewise")])
def test_every_record_is_complete(name):
    """What the compiler reads from a record is there: code for NumPy, the helper and the
    import that code needs, a derivative rule where it is differentiable (partials when
    elementwise, else a vector-Jacobian product), a shape rule where it is not elementwise."""
    from symgrad.codegen.numpy_backend import HELPERS, IMPORTS

    op = OPS[name]
    assert op.numpy, name
    if op.helper is not None:
        assert op.helper in HELPERS
        assert f"def {op.helper}(" in HELPERS[op.helper]
    if op.extra is not None:
        assert op.extra in IMPORTS
    if not op.elementwise:
        assert op.shape is not None
    if op.differentiable and name not in ("const", "true"):
        if op.elementwise:
            assert op.partials is not None
        elif name not in ("matmul_vjp", "max_vjp"):  # (never differentiated again)
            assert op.vjp is not None
    for cls in op.sympy:
        assert ops.BY_CLASS[cls] is op
