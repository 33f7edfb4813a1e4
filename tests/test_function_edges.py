"""The edges of the function table, through the public API: ties in Max/Min, bad arguments to
symgrad's functions, functions the generated code cannot compute, and derivatives at
removable singularities and other points where a formula breaks down.

References are NumPy, SymPy (sympy.diff, evalf) and mpmath, never symgrad itself.
"""

from __future__ import annotations

import functools
import re

import mpmath
import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import symgrad
from symgrad import SymgradError

x, y, t, k = sp.symbols("x y t k")
X = sp.Symbol("X")


def _fd(f, v: float, h: float = 1e-6) -> float:
    """Central finite difference of a scalar function."""
    return (f(v + h) - f(v - h)) / (2 * h)


# -- Max and Min: k tied arguments share the gradient 1/k each --------------------------------


@pytest.mark.parametrize("cls", [sp.Max, sp.Min], ids=["Max", "Min"])
def test_three_tied_arguments_of_a_shifted_max_have_derivative_one(cls, strict_warnings):
    """Max(a + t, b + t, c + t) is exactly (the extreme of a, b, c) + t: d/dt is 1, ties or not."""
    a, b, c = sp.symbols("a b c")
    model = symgrad.compile(cls(a + t, b + t, c + t), wrt=[t])
    for values in [(1.0, 1.0, 1.0), (1.0, 1.0, 0.0), (2.0, -1.0, 2.0), (0.5, 1.5, 2.5)]:
        inputs = dict(zip("abc", values, strict=True))
        assert float(model.grad(t=0.3, **inputs)["t"]) == 1.0, values


@functools.cache
def _extreme(cls, n: int, wrt_t: bool):
    xs = sp.symbols(f"x0:{n}")
    if wrt_t:
        return symgrad.compile(symgrad.sum(cls(*(xi + t for xi in xs))), wrt=[t])
    return symgrad.compile(symgrad.sum(cls(*xs)))


def _shares(values: np.ndarray, cls) -> np.ndarray:
    """The reference: 1/m to each of the m arguments equal to the extreme, 0 to the others."""
    best = values.max(axis=0) if cls is sp.Max else values.min(axis=0)
    winners = (values == best).astype(float)
    return winners / winners.sum(axis=0)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    cls=st.sampled_from([sp.Max, sp.Min]),
    levels=st.lists(
        st.lists(st.integers(0, 2), min_size=4, max_size=4), min_size=2, max_size=5
    ),  # n arguments x 4 elements, from 3 levels: ties of every size are common
    offset=st.floats(-3, 3),
)
def test_tied_arguments_share_the_gradient_equally(cls, levels, offset):
    values = np.array(levels, dtype=float) + offset
    n = len(levels)
    inputs = {f"x{i}": values[i] for i in range(n)}
    grads = _extreme(cls, n, False).grad(**inputs)
    want = _shares(values, cls)
    for i in range(n):
        np.testing.assert_array_equal(grads[f"x{i}"], want[i])
    # the shares add up to the derivative of the tied value, 1 per element (to rounding: 3 x 1/3)
    np.testing.assert_allclose(sum(grads[f"x{i}"] for i in range(n)), np.ones(4), rtol=1e-15)
    # a shift shared by every argument passes through whole, whatever ties
    dt = _extreme(cls, n, True).grad(t=0.25, **inputs)["t"]
    assert float(dt) == pytest.approx(4.0, rel=1e-15)


def test_two_tied_arguments_still_get_half_each(strict_warnings):
    grads = symgrad.compile(sp.Max(x, y)).grad(x=2.0, y=2.0)
    assert float(grads["x"]) == 0.5 and float(grads["y"]) == 0.5


# -- axes: integers, as NumPy takes them -------------------------------------------------------

REDUCTIONS = [symgrad.sum, symgrad.mean, symgrad.max, symgrad.logsumexp]
ALONG_AXIS = [symgrad.softmax, symgrad.log_softmax]
BAD_AXES = [1.5, "0", True, np.True_, np.float64(1.0), sp.Float(1.0), 1 + 0j]


def _name(f) -> str:
    return f.__name__


@pytest.mark.parametrize("axis", BAD_AXES, ids=repr)
@pytest.mark.parametrize("function", REDUCTIONS + ALONG_AXIS, ids=_name)
def test_an_axis_that_is_not_an_integer_is_named(function, axis):
    with pytest.raises(SymgradError, match=re.escape(repr(axis))) as raised:
        function(X, axis=axis)
    assert function.__name__ in str(raised.value)
    with pytest.raises(SymgradError, match=re.escape(repr(axis))):
        function(X, axis=(0, axis))


@pytest.mark.parametrize(
    ("function", "hint"), [(symgrad.max, "sp.Max"), (symgrad.sum, r"a \+ b")], ids=["max", "sum"]
)
def test_an_expression_given_as_the_axis_gets_a_hint(function, hint):
    """symgrad.max(a, b) reduces a along axis b: the error says how to write max of two."""
    with pytest.raises(SymgradError, match=f"axis y is not an integer.*{hint}"):
        function(x, y)


@pytest.mark.parametrize("axis", [True, 1.0])
def test_numpy_rejects_the_same_axes(axis):
    """The convention followed: NumPy refuses a bool or float axis too."""
    with pytest.raises(TypeError):
        np.sum(np.ones((2, 2)), axis=axis)


@pytest.mark.parametrize("function", REDUCTIONS, ids=_name)
def test_repeated_or_empty_axes_are_named(function):
    with pytest.raises(SymgradError, match="names axis 1 twice"):
        function(X, axis=(1, 1))
    with pytest.raises(SymgradError, match=r"axis=\(\)"):
        function(X, axis=())


@pytest.mark.parametrize("function", ALONG_AXIS, ids=_name)
def test_softmax_needs_one_axis(function):
    with pytest.raises(SymgradError, match="axis=None"):
        function(X, axis=None)
    with pytest.raises(SymgradError, match=r"\(0, 1\)"):
        function(X, axis=(0, 1))


@pytest.mark.parametrize("axis", [2, -3])
@pytest.mark.parametrize("function", REDUCTIONS + ALONG_AXIS, ids=_name)
def test_an_axis_out_of_range_is_named_at_compile_time_and_at_the_call(function, axis):
    with pytest.raises(SymgradError, match=f"axis {axis} is out of range"):
        symgrad.compile(symgrad.sum(function(X * k, axis=axis)), shapes={X: (2, 3), k: ()})
    model = symgrad.compile(symgrad.sum(function(X * k, axis=axis)))
    with pytest.raises(SymgradError, match=f"axis {axis} is out of range"):
        model(X=np.ones((2, 3)), k=1.0)
    with pytest.raises(SymgradError, match=f"axis {axis} is out of range"):
        model.value_and_grad(X=np.ones((2, 3)), k=1.0)


@pytest.mark.parametrize(
    ("axes", "message"),
    [
        ((0, 1.5), "1.5"),
        (1.5, "1.5"),
        ((0, 0), "names axis 0 twice"),
        ((0, 2), r"\(0, 2\) are not a permutation"),
        ((), "axes=()"),
    ],
    ids=str,
)
def test_transpose_axes_must_be_a_permutation(axes, message):
    with pytest.raises(SymgradError, match=re.escape(message) if "(" in message[:1] else message):
        symgrad.transpose(X, axes=axes)


def test_transpose_axes_of_another_rank_are_named():
    model = symgrad.compile(symgrad.sum(symgrad.transpose(X, axes=(1, 0, 2))))
    with pytest.raises(SymgradError, match="axis 2 is out of range"):
        model(X=np.ones((2, 3)))


def test_integer_axes_of_every_kind_are_accepted():
    v = np.arange(6.0).reshape(2, 3)
    for axis in (1, np.int64(1), sp.Integer(1), -1):
        got = symgrad.compile(symgrad.sum(symgrad.sum(X, axis=axis) ** 2))(X=v)
        assert float(got) == float(np.sum(v.sum(axis=1) ** 2))


# -- bad arguments to the functions: a SymgradError naming the argument ----------------------

ONE_ARGUMENT = [
    symgrad.sigmoid, symgrad.softplus, symgrad.relu, symgrad.sum, symgrad.mean, symgrad.max,
    symgrad.logsumexp, symgrad.softmax, symgrad.log_softmax, symgrad.transpose,
]  # fmt: skip
BAD_VALUES = [None, "x", [x, y], (x,), np.array([1.0, 2.0]), True, {x: 1}, object()]


def _shown(value) -> str:
    return repr(value)


@pytest.mark.parametrize("value", BAD_VALUES, ids=lambda v: type(v).__name__)
@pytest.mark.parametrize("function", ONE_ARGUMENT, ids=_name)
def test_an_argument_that_is_not_an_expression_is_named(function, value):
    with pytest.raises(SymgradError) as raised:
        function(value)
    message = str(raised.value)
    assert f"symgrad.{function.__name__}" in message
    assert type(value).__name__ in message and "pass" in message
    if isinstance(value, str | list | tuple | type(None)):
        assert (sp.sstr(value) if isinstance(value, list) else repr(value)) in message


@pytest.mark.parametrize("value", BAD_VALUES, ids=lambda v: type(v).__name__)
def test_matmul_names_the_operand(value):
    with pytest.raises(SymgradError, match="matmul: A"):
        symgrad.matmul(value, X)
    with pytest.raises(SymgradError, match="matmul: B"):
        symgrad.matmul(X, value)


def test_the_sum_of_a_list_says_how_to_write_a_sum():
    with pytest.raises(SymgradError, match=r"x \+ y"):
        symgrad.sum([x, y])


@pytest.mark.parametrize("function", ONE_ARGUMENT, ids=_name)
def test_unknown_keywords_and_wrong_counts_are_named(function):
    with pytest.raises(SymgradError, match="'axes_'"):
        function(X, axes_=0)
    with pytest.raises(SymgradError, match="takes"):
        function(X, 0, False, 3)
    with pytest.raises(SymgradError, match="takes"):
        function()
    with pytest.raises(SymgradError, match="takes"):
        symgrad.matmul(X)


@pytest.mark.parametrize("function", REDUCTIONS, ids=_name)
def test_keepdims_must_be_a_bool(function):
    with pytest.raises(SymgradError, match="'yes'"):
        function(X, axis=0, keepdims="yes")


@pytest.mark.parametrize("value", [2, 2.5, np.float64(2.5), np.int64(3), sp.Rational(1, 3)])
def test_numbers_are_expressions(value):
    assert float(symgrad.sigmoid(value).evalf()) == pytest.approx(1 / (1 + np.exp(-float(value))))
    assert symgrad.sum(value) == sp.sympify(value)


# -- functions the generated code cannot compute are refused at compile time -----------------

UNSUPPORTED = {
    "zeta": sp.zeta(x),
    "factorial": sp.factorial(x),
    "gamma": sp.gamma(x),
    "besselj": sp.besselj(1, x),
    "g": sp.Function("g")(x),
    "sec": sp.sec(x),
    "LambertW": sp.LambertW(x),
    "Mod": sp.Mod(x, 2),
    "arg": sp.arg(x),
}


@pytest.mark.parametrize("name", list(UNSUPPORTED))
def test_a_function_without_code_is_refused_by_compile(name):
    """Differentiated (its derivative rule is asked for first) or not (only its value is
    needed: data times a parameter), the function is named and the supported ones listed."""
    f = UNSUPPORTED[name]
    for model, wrt in ((f * k, None), (f * k, [k]), (symgrad.sum(f) + k, [k])):
        with pytest.raises(SymgradError) as raised:
            symgrad.compile(model, wrt=wrt)
        message = str(raised.value)
        assert f"cannot compute {name}" in message, message
        assert "exp" in message and "sigmoid" in message and "Piecewise" in message


def test_re_and_conjugate_of_a_real_value_are_the_value():
    """Every value is real: SymPy writes |exp(a)| as exp(re(a)) for a symbol not declared real."""
    a = sp.Symbol("a")
    assert sp.Abs(sp.exp(a)).has(sp.re)
    grads = symgrad.compile(symgrad.sum(sp.Abs(sp.exp(a)) + sp.conjugate(a) ** 2)).grad(
        a=np.array([0.3, -1.0]))
    np.testing.assert_allclose(grads["a"], np.exp([0.3, -1.0]) + 2 * np.array([0.3, -1.0]))


def test_every_function_the_refusal_lists_compiles_and_differentiates(strict_warnings):
    """What the message promises is true: each listed function computes the value and the
    gradient that SymPy gives (points inside every domain)."""
    from sympy.codegen.cfunctions import exp2, expm1, log1p, log2, log10

    x, y = sp.symbols("x y", real=True)
    cases = [
        sp.exp(x), sp.log(x), sp.sqrt(x), sp.sin(x), sp.cos(x), sp.tan(x), sp.sinh(x),
        sp.cosh(x), sp.tanh(x), sp.asin(x), sp.acos(x), sp.atan(x), sp.asinh(x),
        sp.acosh(x + 1), sp.atanh(x), sp.atan2(x, y), sp.Abs(x), sp.sign(x), sp.floor(3 * x),
        sp.ceiling(3 * x), sp.Max(x, y), sp.Min(x, y), sp.Heaviside(x), sp.sinc(x),
        sp.Piecewise((x, x > y), (y, True)), log1p(x), expm1(x), log2(x), log10(x), exp2(x),
        sp.erf(x), sp.erfc(x),
    ]  # fmt: skip
    point = {x: sp.Float(0.37), y: sp.Float(0.21)}
    for expr in cases:
        model = symgrad.compile(expr)
        names = {s.name: point[s] for s in expr.free_symbols}
        value, grads = model.value_and_grad(**names)
        assert float(value) == pytest.approx(float(expr.subs(point)), rel=1e-13), expr
        for s in expr.free_symbols:
            want = sp.diff(expr, s).replace(sp.DiracDelta, lambda *a: sp.S.Zero)
            # floor' and ceiling' stay unevaluated in SymPy: 0 between the steps
            want = want.replace(sp.Derivative, lambda *a: sp.S.Zero).doit()
            assert float(grads[s.name]) == pytest.approx(float(want.subs(point)), rel=1e-12,
                                                         abs=1e-15), (expr, s)


ERF_POINTS = [-30.0, -6.0, -1.0, -1e-3, 0.0, 1e-300, 1e-8, 0.3, 0.5, 1.0, 2.5, 3.0, 6.0, 10.0,
              26.0, 27.5, 40.0]


@pytest.mark.parametrize(("f", "ref"), [(sp.erf, mpmath.erf), (sp.erfc, mpmath.erfc)],
                         ids=["erf", "erfc"])
def test_erf_and_erfc_are_exact(f, ref, strict_warnings):
    """Values and gradients to a few ulps against mpmath, erfc also deep in its tail (where
    1 - erf would be 0), for scalars (a NumPy scalar back, as np.exp gives) and arrays."""
    model = symgrad.compile(symgrad.sum(f(x)))
    values = symgrad.compile(f(x))(x=np.array(ERF_POINTS))
    grads = model.grad(x=np.array(ERF_POINTS))["x"]
    sign = 1 if f is sp.erf else -1
    for v, got, g in zip(ERF_POINTS, values, grads, strict=True):
        with mpmath.workprec(200):
            want = float(ref(mpmath.mpf(v)))
            dwant = float(sign * 2 / mpmath.sqrt(mpmath.pi) * mpmath.exp(-mpmath.mpf(v) ** 2))
        assert got == pytest.approx(want, rel=4e-16, abs=0.0 if want else 1e-320), v
        assert g == pytest.approx(dwant, rel=1e-15, abs=0.0 if dwant else 1e-320), v
    scalar = symgrad.compile(f(x))(x=0.5)
    assert isinstance(scalar, np.float64)


def test_gelu_written_with_erf(strict_warnings):
    """GELU, x·Φ(x) = x·(1 + erf(x/√2))/2: gradient against sympy.diff and finite differences."""
    xr = sp.Symbol("x", real=True)
    gelu = xr * (1 + sp.erf(xr / sp.sqrt(2))) / 2
    model = symgrad.compile(symgrad.sum(gelu))
    xs = np.array([-3.0, -0.7, 0.0, 0.4, 2.2])
    grads = model.grad(x=xs)["x"]
    d = sp.lambdify(xr, sp.diff(gelu, xr), "mpmath")
    f = sp.lambdify(xr, gelu, "mpmath")
    for v, g in zip(xs, grads, strict=True):
        assert g == pytest.approx(float(d(v)), rel=1e-14, abs=1e-16)
        assert g == pytest.approx(_fd(lambda w: float(f(w)), v), rel=1e-7, abs=1e-9)


@pytest.mark.parametrize("zero", [sp.Float(0.0), sp.S.Zero], ids=["0.0", "0"])
def test_zero_to_a_parameter_has_derivative_zero(zero, strict_warnings):
    """d/dy 0**y = 0 for y > 0 (PyTorch, JAX and autograd agree); SymPy's 0**y·log(0) is zoo."""
    model = symgrad.compile(zero**y, wrt=[y])
    for v in (0.5, 2.0, 7.0):
        value, grads = model.value_and_grad(y=v)
        assert float(value) == 0.0 and float(grads["y"]) == 0.0
        assert _fd(lambda w: 0.0**w, v) == 0.0
    summed = symgrad.compile(symgrad.sum(zero ** (k * x)), wrt=[k])
    assert float(summed.grad(k=1.5, x=np.array([1.0, 2.0]))["k"]) == 0.0


@pytest.mark.parametrize("base", [sp.Rational(1, 2), sp.Float(2.5), sp.pi, sp.E, sp.S(3)])
def test_a_positive_constant_to_a_parameter(base, strict_warnings):
    model = symgrad.compile(base**y, wrt=[y])
    b = float(base)
    assert float(model.grad(y=1.3)["y"]) == pytest.approx(_fd(lambda w: b**w, 1.3), rel=1e-8)


@pytest.mark.parametrize("base", [sp.S(-2), sp.Float(-0.5)])
def test_a_negative_constant_to_a_parameter_is_refused(base):
    with pytest.raises(SymgradError, match=re.escape(sp.sstr(base))):
        symgrad.compile(base**y, wrt=[y])


# -- removable singularities: sinc ------------------------------------------------------------


def _dsinc(v: float) -> float:
    with mpmath.workprec(200):
        v = mpmath.mpf(v)
        if v == 0:
            return 0.0
        return float((mpmath.cos(v) - mpmath.sin(v) / v) / v)


SINC_POINTS = [0.0, 1e-300, 1e-12, 1e-6, 1e-3, 0.1, 0.3, 0.4999, 0.5, 0.5001, 1.0, 3.0, 50.0]


def test_the_gradient_of_sinc_at_zero_is_zero(strict_warnings):
    model = symgrad.compile(sp.sinc(x))
    value, grads = model.value_and_grad(x=0.0)
    assert float(value) == 1.0 and float(grads["x"]) == 0.0
    summed = symgrad.compile(symgrad.sum(sp.sinc(x)))
    grads = summed.grad(x=np.array([-1.0, 0.0, 2.0]))["x"]
    assert grads[1] == 0.0 and np.all(np.isfinite(grads))


def test_the_gradient_of_sinc_is_accurate_everywhere(strict_warnings):
    """To a few ulps, also near 0 where (cos x - sinc x)/x cancels."""
    model = symgrad.compile(symgrad.sum(sp.sinc(x)))
    points = np.array(SINC_POINTS + [-v for v in SINC_POINTS])
    grads = model.grad(x=points)["x"]
    for v, g in zip(points, grads, strict=True):
        want = _dsinc(v)
        assert g == pytest.approx(want, rel=8e-16 * 8, abs=0.0 if want else 1e-300), v


def test_the_gradient_of_sinc_inside_a_model(strict_warnings):
    """sinc(k*x): the chain rule through it, against sympy.diff away from 0, at 0 exactly."""
    model = symgrad.compile(symgrad.sum(sp.sinc(k * x)), wrt=[k])
    xs = np.array([0.0, 0.2, 1.3])
    got = float(model.grad(k=0.7, x=xs)["k"])
    d = sp.diff(sp.sin(k * x) / (k * x), k)
    want = sum(float(d.subs({k: 0.7, x: v})) for v in xs if v != 0)
    assert got == pytest.approx(want, rel=1e-13)


# -- symgrad's functions of numbers evaluate, as SymPy's own do -------------------------------

NUMBERS = [sp.cos(1), -sp.cos(1), sp.pi, sp.sqrt(2) - 2, sp.S.Zero, sp.Rational(-7, 3)]
REFERENCES = {
    "sigmoid": lambda v: 1 / (1 + mpmath.exp(-v)),
    "softplus": lambda v: mpmath.log1p(mpmath.exp(v)),
    "relu": lambda v: mpmath.mpf(v) if v > 0 else mpmath.mpf(0),
}


@pytest.mark.parametrize("c", NUMBERS, ids=str)
@pytest.mark.parametrize("name", list(REFERENCES))
def test_a_function_of_a_number_evaluates(name, c):
    f = getattr(symgrad, name)
    value = f(c).evalf(40)
    assert value.is_Number
    with mpmath.workdps(40):
        want = REFERENCES[name](mpmath.mpf(str(c.evalf(60))))
        assert abs(mpmath.mpf(str(value)) - want) <= mpmath.mpf(10) ** -35
    # comparable, so SymPy's Max and Min take it
    assert sp.Max(f(c), 0).evalf(30) == pytest.approx(max(float(want), 0.0), abs=1e-15)
    assert sp.Min(f(c), -1) == -1
    assert float(f(c)) == pytest.approx(float(want), rel=1e-15, abs=1e-300)


def test_relu_of_a_number_inside_max():
    assert sp.Max(symgrad.relu(sp.cos(1)), 0) == symgrad.relu(sp.cos(1))
    assert (symgrad.softplus(sp.cos(1)) > 0) is sp.true


@pytest.mark.parametrize(
    "make",
    [lambda x, y: sp.Piecewise((sp.gamma(x), x > 0), (0, True)) * y,
     lambda x, y: sp.Piecewise((y, sp.gamma(x) > 0), (0, True)),
     lambda x, y: sp.Piecewise((y, x > 0), (sp.zoo, True))],
    ids=["in a branch", "in a condition", "zoo in a branch"],
)
def test_what_cannot_be_computed_is_refused_inside_a_piecewise_too(make):
    x, y = sp.symbols("x y")
    with pytest.raises(SymgradError, match="cannot compute"):
        symgrad.compile(make(x, y), wrt=[y])
