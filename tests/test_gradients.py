"""Gradients of a corpus covering every function, and of random expressions (hypothesis).

Each compiled gradient is compared with two independent references: ``sympy.diff`` +
``sympy.lambdify`` and central finite differences of a lambdified value (never symgrad's own).
Points are chosen away from kinks.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from helpers import MODULES, finite_difference, no_delta, realify, sympy_gradient, sympy_value
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import symgrad
from symgrad import mean, relu, sigmoid, softplus

x, y, z = sp.symbols("x y z")
a, b, c = sp.symbols("a b c")

# -- scalar corpus: (id, expression, points) ------------------------------------------------

P = [{"x": 0.7, "y": 1.3, "z": 2.1}, {"x": 1.9, "y": 0.6, "z": -0.4}]
P_POS = [{"x": 0.7, "y": 1.3, "z": 2.1}, {"x": 1.9, "y": 0.6, "z": 0.4}]
P_UNIT = [{"x": 0.3, "y": -0.6, "z": 2.1}, {"x": -0.8, "y": 0.45, "z": -0.4}]

SCALAR_CORPUS = [
    ("add_sub", x + y - z + 3, P),
    ("mul_div", x * y / z, P),
    ("div_chain", (x + 1) / (y * y + 1) / (z**2 + 2), P),
    ("neg", -x * y, P),
    ("int_pow", x**3 + y**-2 + z**4, P),
    ("rational_pow", x ** sp.Rational(2, 3) + y ** sp.Rational(-3, 2), P_POS),
    ("real_pow", x**2.5 * y**0.3, P_POS),
    ("symbolic_pow", x**y + z**2, P_POS),
    ("number_to_symbol_pow", 2**x * sp.Rational(3, 2) ** y, P),
    ("exp", sp.exp(x * y) + sp.exp(-z), P),
    ("log", sp.log(x * y + 2) + sp.log(z**2), P_POS),
    ("sqrt", sp.sqrt(x**2 + y) * sp.sqrt(z**2 + 1), P_POS),
    ("sin", sp.sin(x * y + z), P),
    ("cos", sp.cos(x - y * z), P),
    ("tan", sp.tan(x / 3 + y / 5), P),
    ("tanh", sp.tanh(x * y - z), P),
    ("sinh", sp.sinh(x - y) * z, P),
    ("cosh", sp.cosh(x * y) + z, P),
    ("asin", sp.asin(x) + sp.asin(y / 2) * z, P_UNIT),
    ("acos", sp.acos(x) * z + sp.acos(y), P_UNIT),
    ("atan", sp.atan(x * y) + sp.atan(z), P),
    ("Abs", sp.Abs(x - y) * z + sp.Abs(z), P),
    ("sign", sp.sign(x - y) * z**2 + x, P),
    ("Max", sp.Max(x, y) * z, P),
    ("Max3", sp.Max(x, y, z) + sp.Max(x, 0), P),
    ("Min", sp.Min(x, y) * z, P),
    ("Min3", sp.Min(x * 2, y, z) + sp.Min(x, 1), P),
    ("Piecewise", sp.Piecewise((x**2 * z, x > y), (sp.sin(y), True)), P),
    ("Piecewise3", sp.Piecewise((x * y, x < 1), (sp.log(x) * z, x < 3), (z, True)), P),
    ("Piecewise_and", sp.Piecewise((x * y, (x > 0) & (y > 1)), (z**2, True)), P),
    ("Heaviside", sp.Heaviside(x - 1) * y + sp.Heaviside(z) * x, P),
    ("sigmoid", sigmoid(x * y - z), P),
    ("softplus", softplus(x * y - z), P),
    ("relu", relu(x - y) * z + relu(y - x), P),
    ("log_sigmoid", sp.log(sigmoid(x * y - z)), P),
    ("sum_scalar", symgrad.sum(x * y + z), P),
    ("mean_scalar", mean(x**2 * y) + z, P),
    ("constants", sp.pi * x + sp.E * y + 2.5 * z, P),
    ("shared", sp.exp(x * y) * sp.sin(sp.exp(x * y)) + sp.exp(x * y) ** 2 * z, P),
]


def _check(got, want, rel, scale, what):
    got = np.asarray(got, dtype=float)
    want = np.asarray(want, dtype=float)
    assert got.shape == want.shape, what
    np.testing.assert_allclose(got, want, rtol=rel, atol=rel * scale, err_msg=what)


@pytest.mark.parametrize(
    ("name", "expr", "points"), SCALAR_CORPUS, ids=[c[0] for c in SCALAR_CORPUS]
)
def test_scalar_corpus(name, expr, points):
    model = symgrad.compile(expr)
    names = sorted(s.name for s in expr.free_symbols)
    assert sorted(model.wrt) == names  # wrt defaults to every input
    value_ref = sympy_value(expr)
    grad_ref = sympy_gradient(expr, names)
    for full_point in points:
        point = {n: full_point[n] for n in names}
        value, grads = model.value_and_grad(**point)
        assert list(grads) == list(model.wrt)
        assert float(value) == pytest.approx(float(value_ref(**point)), rel=1e-12, abs=1e-14)
        assert float(model(**point)) == pytest.approx(float(value), rel=1e-15)
        for n in names:
            want = float(grad_ref[n](**point))
            fd = finite_difference(value_ref, point, n)
            assert np.shape(grads[n]) == ()
            _check(grads[n], want, 1e-9, 1 + abs(want), f"{name}: d/d{n} vs sympy at {point}")
            _check(grads[n], fd, 1e-6, 1 + abs(float(value)), f"{name}: d/d{n} vs FD at {point}")


@pytest.mark.parametrize(
    ("name", "expr", "points"), SCALAR_CORPUS, ids=[c[0] for c in SCALAR_CORPUS]
)
def test_symbolic_gradients_are_the_ordinary_derivative(name, expr, points):
    """Without reductions, ``model.gradients`` is d expr / d symbol, keyed by the user's symbol."""
    model = symgrad.compile(expr)
    assert set(model.gradients) == expr.free_symbols
    real, mapping = realify(expr)
    for s, g in model.gradients.items():
        assert g.free_symbols <= expr.free_symbols  # in the inputs only
        want = no_delta(sp.diff(real, mapping[s]))
        g_real = g.xreplace(mapping)
        args = sorted(mapping.values(), key=lambda t: t.name)
        f_got = sp.lambdify(args, g_real, modules=MODULES)
        f_want = sp.lambdify(args, want, modules=MODULES)
        for point in points:
            vals = [point[t.name] for t in args]
            with np.errstate(all="ignore"):
                got, ref = float(f_got(*vals)), float(f_want(*vals))
            assert got == pytest.approx(ref, rel=1e-10, abs=1e-12), (name, s, point)


# -- arrays: data x of shape (50,), scalar parameters k, b ---------------------------------

k, w = sp.symbols("k w")
RNG = np.random.default_rng(7)
XDATA = np.linspace(-1.7, 2.3, 50) + 0.01 * RNG.standard_normal(50)  # no exact ties at 0
YDATA = np.cos(XDATA) + 0.1 * RNG.standard_normal(50)

#: (id, reduction, elementwise expression in k, b, x, y): the output is reduction(expression)
ARRAY_CORPUS = [
    ("mse", mean, (k * x + b - y) ** 2),
    ("sum_sin", symgrad.sum, sp.sin(k * x) * b + y),
    ("sigmoid", mean, sigmoid(k * x + b) * y),
    ("softplus", symgrad.sum, softplus(k * x - b)),
    ("relu", symgrad.sum, relu(k * x - b) * y),
    ("abs", mean, sp.Abs(k * x - b)),
    ("max_min", symgrad.sum, sp.Max(k * x, b) + sp.Min(y, b * x)),
    ("piecewise", symgrad.sum, sp.Piecewise((sp.log(k * x), k * x > 0), (b * x**2, True))),
    ("heaviside_sign", symgrad.sum, sp.Heaviside(x) * k * x + sp.sign(x) * b**2),
    ("exp_log", mean, sp.log(1 + sp.exp(k * x)) * sp.exp(b)),
    ("trig", symgrad.sum, sp.tan(k * x / 4) + sp.atan(b * x) + sp.cosh(k) * sp.tanh(y * b)),
    ("pow", mean, (k**2 + x**2) ** sp.Rational(3, 2) + sp.sqrt(b**2 + 1) * x),
    ("bias_alone", symgrad.sum, k * x + b),  # d/db = number of elements
    ("bias_mean_squared", mean, k * x + b),  # d/db = 1
    ("param_only_term", symgrad.sum, sp.exp(b) + x * y),  # d/db = 50·exp(b)
    ("square_of_mean", "square_of_mean", None),  # mean(k·x + b)**2: a reduction inside
]

K0, B0 = 0.8, 0.35


def _array_model_expr(reduction, e):
    if reduction == "square_of_mean":
        return mean(k * x + b) ** 2
    return reduction(e)


def _array_reference(reduction, e, point):
    """value and d/dk, d/db, d/dx by SymPy (elementwise) + NumPy (the reduction)."""
    if reduction == "square_of_mean":
        inner = point["k"] * point["x"] + point["b"]
        m = np.mean(inner)
        dx = np.full(np.shape(point["x"]), 2 * m * point["k"] / np.size(point["x"]))
        return m**2, {"k": 2 * m * np.mean(point["x"]), "b": 2 * m, "x": dx}
    real, _ = realify(e)
    args = [sp.Symbol(n, real=True) for n in ("b", "k", "x", "y")]
    vals = [point[s.name] for s in args]
    reduce = np.sum if reduction is symgrad.sum else np.mean
    n = np.size(point["x"])
    with np.errstate(all="ignore"):
        elem = np.broadcast_to(sp.lambdify(args, real, modules=MODULES)(*vals), (n,))
        value = reduce(elem)
        grads = {}
        for name in ("k", "b", "x"):
            d = no_delta(sp.diff(real, sp.Symbol(name, real=True)))
            dv = np.broadcast_to(sp.lambdify(args, d, modules=MODULES)(*vals), (n,))
            dv = dv / n if reduction is mean else dv
            grads[name] = dv if name == "x" else np.sum(dv)
    return value, grads


@pytest.mark.parametrize(("name", "reduction", "e"), ARRAY_CORPUS, ids=[c[0] for c in ARRAY_CORPUS])
def test_array_corpus(name, reduction, e):
    expr = _array_model_expr(reduction, e)
    wrt = [s for s in (k, b, x) if s in expr.free_symbols]
    model = symgrad.compile(expr, wrt=wrt)
    point = {"k": K0, "b": B0, "x": XDATA, "y": YDATA}
    inputs = {n: v for n, v in point.items() if n in model.inputs}
    value, grads = model.value_and_grad(**inputs)
    assert list(grads) == [s.name for s in wrt]
    want_value, want = _array_reference(reduction, e, point)
    assert float(value) == pytest.approx(float(want_value), rel=1e-12)
    for n in grads:
        assert np.shape(grads[n]) == np.shape(point[n]), n
    f = model.__call__
    for n in grads:
        _check(grads[n], want[n], 1e-9, 1 + np.max(np.abs(want[n])), f"{name}: d/d{n} vs sympy")
        fd = finite_difference(lambda **p: f(**p), inputs, n)
        _check(grads[n], fd, 1e-6, 1 + abs(float(value)), f"{name}: d/d{n} vs FD")


@pytest.mark.parametrize(("name", "reduction", "e"), ARRAY_CORPUS, ids=[c[0] for c in ARRAY_CORPUS])
def test_symbolic_gradient_of_a_scalar_parameter_is_the_numeric_one(name, reduction, e):
    """For a scalar parameter, ``model.gradients[p]`` evaluated is the gradient."""
    expr = _array_model_expr(reduction, e)
    wrt = [s for s in (k, b) if s in expr.free_symbols]
    model = symgrad.compile(expr, wrt=wrt)
    point = {"k": K0, "b": B0, "x": XDATA, "y": YDATA}
    _, want = _array_reference(reduction, e, point)
    for p in wrt:
        g = model.gradients[p]
        args = sorted(g.free_symbols, key=lambda s: s.name)
        with np.errstate(all="ignore"):
            got = sp.lambdify(args, g, modules=MODULES)(*(point[s.name] for s in args))
        assert np.shape(got) == (), (name, p, g)
        assert float(got) == pytest.approx(float(want[p.name]), rel=1e-9, abs=1e-12), (name, p, g)


def test_sum_of_a_parameter_broadcast_over_data_counts_every_element():
    """sum(x + b) over 50 elements: d/db = 50 (b is broadcast to every element)."""
    model = symgrad.compile(symgrad.sum(x + b), wrt=[b])
    assert float(model.grad(x=np.ones(50), b=1.0)["b"]) == 50.0
    model = symgrad.compile(mean(2 * b + x) ** 2, wrt=[b])
    # mean(2b + x) = 3 at b = 1, x = 1: d/db = 2·3·2 = 12
    assert float(model.grad(x=np.ones(50), b=1.0)["b"]) == pytest.approx(12.0)


# -- shapes ------------------------------------------------------------------------------------


def test_gradient_shapes_follow_input_shapes():
    model = symgrad.compile(symgrad.sum(sp.sin(k * x) + k**2), wrt=[k, x], broadcast="allow")
    X = np.arange(4.0)
    for kval in (0.5, np.full((3, 1), 0.5), np.full((1, 4), 0.5), np.full((2, 3, 1), 0.5)):
        grads = model.grad(k=kval, x=X)
        assert np.shape(grads["k"]) == np.shape(kval)
        assert np.shape(grads["x"]) == X.shape
        fd = finite_difference(lambda **p: model(**p), {"k": kval, "x": X}, "k")
        np.testing.assert_allclose(grads["k"], fd, rtol=1e-7, atol=1e-9)
        fdx = finite_difference(lambda **p: model(**p), {"k": kval, "x": X}, "x")
        np.testing.assert_allclose(grads["x"], fdx, rtol=1e-7, atol=1e-9)


def test_array_parameter_broadcast_against_data():
    """k of shape (3, 1) against x of shape (4,): the gradient of k has shape (3, 1)."""
    model = symgrad.compile(mean(k * x) + symgrad.sum(k**2), wrt=[k, x], broadcast="allow")
    K = np.array([[1.0], [2.0], [-1.0]])
    X = np.arange(4.0)
    grads = model.grad(k=K, x=X)
    # mean over the 3x4 broadcast: d/dk_i = sum_j x_j / 12 + 2 k_i; d/dx_j = sum_i k_i / 12
    np.testing.assert_allclose(grads["k"], X.sum() / 12 + 2 * K, rtol=1e-14)
    np.testing.assert_allclose(grads["x"], np.full(4, K.sum() / 12), rtol=1e-14)
    assert grads["k"].shape == (3, 1)


XS = np.array([-1.0, 0.0, 0.5, 2.0])
PW_XY = sp.Piecewise((x**2, x > y), (y, True))
#: (id, expression in x and y, d/dx at x = XS, y = 0.4, by hand)
REDUCED_INPUTS = [
    ("mean_x", mean(x), np.full(4, 0.25)),
    ("sum_x", symgrad.sum(x), np.ones(4)),
    ("two_sum_x", 2 * symgrad.sum(x), np.full(4, 2.0)),
    ("sum_x_squared", symgrad.sum(x) ** 2, np.full(4, 2 * XS.sum())),
    ("sum_two_x", symgrad.sum(2 * x), np.full(4, 2.0)),
    ("sum_x_plus_one", symgrad.sum(x + 1), np.ones(4)),
    ("mean_x_times_y", mean(x) * y, np.full(4, 0.1)),
    ("piecewise", symgrad.sum(PW_XY), np.where(XS > 0.4, 2 * XS, 0)),
]
REDUCED_IDS = [c[0] for c in REDUCED_INPUTS]


@pytest.mark.parametrize(("name", "expr", "want"), REDUCED_INPUTS, ids=REDUCED_IDS)
def test_gradient_of_a_reduced_input_has_its_shape(name, expr, want):
    """Each gradient has exactly its input's shape (x: (4,), y: ())."""
    model = symgrad.compile(expr)
    grads = model.grad({s: v for s, v in ((x, XS), (y, 0.4)) if s in expr.free_symbols})
    assert np.shape(grads["x"]) == XS.shape, grads["x"]
    assert set(grads) == set(model.inputs)  # y too, where the model has it
    assert all(np.shape(grads[n]) == () for n in grads if n != "x")
    np.testing.assert_allclose(grads["x"], want, rtol=1e-15)


@pytest.mark.parametrize(("name", "expr", "want"), REDUCED_INPUTS, ids=REDUCED_IDS)
def test_gradients_are_float64(name, expr, want):
    """A gradient is float64 even where it is a whole number (1, 2, a count)."""
    model = symgrad.compile(expr)
    for g in model.grad({s: v for s, v in ((x, XS), (y, 0.4)) if s in expr.free_symbols}).values():
        assert np.asarray(g).dtype == np.float64, g


def test_piecewise_count_gradient_is_float():
    model = symgrad.compile(symgrad.sum(sp.Piecewise((x**2, x > y), (y, True))), wrt=[x, y])
    grads = model.grad(x=XS, y=0.4)
    assert float(grads["y"]) == 2.0  # two elements take the y branch
    assert np.asarray(grads["y"]).dtype == np.float64


# -- random expressions (hypothesis) --------------------------------------------------------

LEAVES = st.sampled_from(
    [a, b, c, a, b, c, sp.Integer(2), sp.Integer(3), sp.Rational(1, 2), sp.Rational(-1, 3)]
)

UNARY = [
    sp.sin,
    sp.cos,
    sp.tanh,
    sp.atan,
    sigmoid,
    softplus,
    lambda u: sp.exp(sp.tanh(u)),
    lambda u: sp.log(1 + u**2),
    lambda u: sp.sqrt(1 + u**2),
    lambda u: (1 + u**2) ** sp.Rational(1, 3),
    lambda u: u**2,
    lambda u: u**3,
    lambda u: 1 / (1 + u**2),
    lambda u: sp.asin(sp.tanh(u) / 2),
    lambda u: sp.acos(sp.tanh(u) / 2),
    lambda u: sp.sinh(sp.tanh(u)),
    lambda u: sp.cosh(sp.tanh(u)),
    lambda u: sp.tan(sp.tanh(u)),
    lambda u: sp.log(sigmoid(u)),
    lambda u: -u,
]
BINARY = [
    lambda u, v: u + v,
    lambda u, v: u - v,
    lambda u, v: u * v,
    lambda u, v: u / (1 + v**2),
    lambda u, v: (1 + u**2) ** sp.tanh(v),
    lambda u, v: sp.exp(sp.tanh(u)) * v,
]


def _extend(children):
    return st.one_of(
        st.builds(lambda f, u: f(u), st.sampled_from(UNARY), children),
        st.builds(lambda f, u, v: f(u, v), st.sampled_from(BINARY), children, children),
    )


EXPRESSIONS = st.recursive(LEAVES, _extend, max_leaves=10)
#: Generic coordinates (never 0 or 1, where many derivatives vanish or coincide by accident)
COORD = st.sampled_from([-1.73, -0.81, -0.23, 0.37, 0.94, 1.61])


@settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(expr=EXPRESSIONS, va=COORD, vb=COORD, vc=COORD)
def test_random_expressions(expr, va, vb, vc):
    assume(expr.free_symbols)
    names = sorted(s.name for s in expr.free_symbols)
    point = {n: v for n, v in {"a": va, "b": vb, "c": vc}.items() if n in names}
    model = symgrad.compile(expr)
    value, grads = model.value_and_grad(**point)
    value_ref = sympy_value(expr)
    want_value = float(value_ref(**point))
    assume(np.isfinite(want_value) and abs(want_value) < 1e8)
    assert float(value) == pytest.approx(want_value, rel=1e-9, abs=1e-12)
    ref = sympy_gradient(expr, names)
    assert list(grads) == names
    for n in names:
        want = float(ref[n](**point))
        fd = float(finite_difference(value_ref, point, n))
        scale = 1 + abs(want_value)
        assert float(grads[n]) == pytest.approx(want, rel=1e-9, abs=1e-11 * scale), (n, point)
        assert float(grads[n]) == pytest.approx(fd, rel=1e-6, abs=1e-8 * scale), (n, point)


DATA = np.linspace(-1.5, 1.5, 6)


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(
    expr=st.recursive(
        st.sampled_from([a, b, x, a, b, x, sp.Integer(2), sp.Rational(1, 2)]), _extend, max_leaves=8
    ),
    with_data=st.booleans(),
    reduction=st.sampled_from(["sum", "mean"]),
    va=COORD,
    vb=COORD,
)
def test_random_reductions_over_data(expr, with_data, reduction, va, vb):
    """Scalar parameters a, b broadcast over data x of shape (6,), then sum or mean.

    ``with_data`` adds x at the top, so that every term in a and b alone is broadcast too.
    """
    expr = expr + x / 3 if with_data else expr
    assume(expr.free_symbols)
    reduce = symgrad.sum if reduction == "sum" else mean
    model = symgrad.compile(reduce(expr))
    point = {"a": va, "b": vb, "x": DATA}
    value, grads = model.value_and_grad(**{n: point[n] for n in model.inputs})
    assert {n: np.shape(g) for n, g in grads.items()} == {n: np.shape(point[n]) for n in grads}

    real, _ = realify(expr)
    f = sp.lambdify([sp.Symbol(n, real=True) for n in ("a", "b", "x")], real, modules=MODULES)

    def reference(**p):  # NumPy's own reduction of the lambdified elementwise expression
        elem = np.asarray(f(p["a"], p["b"], p["x"]))  # shape (6,) if it reads x, else ()
        return np.sum(elem) if reduction == "sum" else np.mean(elem)

    want_value = float(reference(**point))
    assume(np.isfinite(want_value) and abs(want_value) < 1e8)
    assert float(value) == pytest.approx(want_value, rel=1e-9, abs=1e-12)
    for n in grads:
        fd = finite_difference(reference, point, n)
        np.testing.assert_allclose(
            grads[n], fd, rtol=1e-6, atol=1e-8 * (1 + abs(want_value)), err_msg=f"d/d{n}"
        )


def test_rosenbrock_over_many_scalar_symbols():
    """150 scalar parameters, each read by two terms: the gradient by hand."""
    n = 150
    xs = sp.symbols(f"x0:{n}")
    expr = sp.Add(*(100 * (xs[i + 1] - xs[i] ** 2) ** 2 + (1 - xs[i]) ** 2 for i in range(n - 1)))
    model = symgrad.compile(expr)
    v = np.linspace(-1.2, 1.3, n)
    value, grads = model.value_and_grad({f"x{i}": v[i] for i in range(n)})
    want = np.zeros(n)
    want[:-1] += -400 * v[:-1] * (v[1:] - v[:-1] ** 2) - 2 * (1 - v[:-1])
    want[1:] += 200 * (v[1:] - v[:-1] ** 2)
    assert float(value) == pytest.approx(
        np.sum(100 * (v[1:] - v[:-1] ** 2) ** 2 + (1 - v[:-1]) ** 2), rel=1e-13
    )
    assert sorted(grads) == sorted(f"x{i}" for i in range(n))
    np.testing.assert_allclose([grads[f"x{i}"] for i in range(n)], want, rtol=1e-12, atol=1e-12)


# -- broadcasting, with one model called at many shapes (its per-shape code is cached) -------

BROADCAST_MODEL = symgrad.compile(
    symgrad.sum(sp.sin(k * x) + k**2 * x + b * sigmoid(x)) + mean(b * k), wrt=[k, x, b],
    broadcast="allow",  # outer products (a (3, 1) parameter against (4,) data) are meant
)
SHAPES = [(), (1,), (4,), (1, 4), (3, 1), (3, 4), (2, 1, 1)]


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    sk=st.sampled_from(SHAPES),
    sx=st.sampled_from(SHAPES),
    sb=st.sampled_from(SHAPES),
    seed=st.integers(0, 9),
)
def test_broadcast_gradients_at_many_shapes(sk, sx, sb, seed):
    try:
        np.broadcast_shapes(sk, sx, sb)
    except ValueError:
        assume(False)
    rng = np.random.default_rng(seed)
    point = {
        "k": rng.uniform(-1.5, 1.5, sk),
        "x": rng.uniform(-1.5, 1.5, sx),
        "b": rng.uniform(-1.5, 1.5, sb),
    }
    value, grads = BROADCAST_MODEL.value_and_grad(**point)

    def reference(k, x, b):
        s = 1 / (1 + np.exp(-x))
        full = np.broadcast_shapes(np.shape(k), np.shape(x), np.shape(b))
        terms = np.broadcast_to(np.sin(k * x) + k**2 * x + b * s, full)
        return np.sum(terms) + np.mean(np.asarray(b) * k)

    assert float(value) == pytest.approx(reference(**point), rel=1e-12)
    for n in ("k", "x", "b"):
        assert np.shape(grads[n]) == np.shape(point[n]), n
        fd = finite_difference(lambda **p: reference(**p), point, n)
        np.testing.assert_allclose(grads[n], fd, rtol=1e-7, atol=1e-8, err_msg=n)
