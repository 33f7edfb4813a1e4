"""Stability rewrites: what a user writes by hand is computed in its stable form.

Each pattern below is written the way a user writes it, in plain SymPy (``sp.log``, ``sp.exp``,
``log1p``) around symgrad's functions, and must compile to code whose values and gradients are
finite and accurate at any argument:

- log(1 − σ(x)) and log1p(−σ(x)) are −softplus(x); log(σ(x)) is −softplus(−x);
- log(1 + exp(x)) and log1p(exp(x)) are softplus(x);
- exp(x)/(1 + exp(x)) and 1/(1 + exp(−x)) are σ(x);
- log(sum(exp(x))) is logsumexp(x); log(exp(x) + exp(y)) is logaddexp(x, y);
- log(softmax(x)) is log_softmax(x);

also with a scaled argument, with the inner part as an equation of its own (``s = sigmoid(L)``,
``Loss = log(1 - s)``) and inside larger models. Expressions that only look like a pattern keep
their meaning. The cases follow PyTensor's tests of its stability rewrites
(tests/tensor/rewriting/test_math.py and test_special.py).

Every reference, value and derivative alike, is the formula as the user wrote it, evaluated by
mpmath with 50 significant digits to spare (derivatives by ``mpmath.diff``), never by symgrad.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Sequence

import mpmath
import numpy as np
import pytest
import sympy as sp
from sympy.codegen.cfunctions import log1p

import symgrad
from symgrad import sigmoid, softmax

x, y, L, w, b, t = sp.symbols("x y L w b t")
X, W, B, Y = sp.symbols("X W B Y")
s, e, d, S, P, Z, Loss, F = sp.symbols("s e d S P Z Loss F")

# -- references and tolerances ----------------------------------------------------------------

#: Working precision of the references: the formula as written cancels up to e^−1700 against 1
#: (1 − σ(2x) at x = 800; about 739 digits), and 50 significant digits must survive that.
WORK_DPS = 50 + math.ceil(1700 / math.log(10))

#: A stable formula (softplus as max(x, 0) + log1p(exp(−|x|)), σ through exp(−|x|), logaddexp
#: through log1p) is accurate to a few ulps relative to its result at every argument, so each
#: value and gradient must be within 1e-12 relative (about 4500 ulps: room for the handful of
#: roundings a chain rule adds, and for sums of a few same-signed terms, but not for one lost
#: digit). The absolute floor only forgives results below the normal range of float64 (the true
#: e^−800 is 0 in float64, e^−720 is subnormal).
RTOL = 1e-12
TINY = 1e-300

#: A reduction along an axis (logsumexp, log_softmax, softmax − one-hot) is computed after
#: shifting by the maximum: m + log(Σ exp(x − m)) and p − y are accurate to a few ulps of the
#: shifted terms, whose size is 1, not of a result that cancels to nearly 0 (log_softmax of the
#: largest element, −Σ exp(xᵢ − m), is computed as 0 or as a few ulps of 1). So those results
#: also get an absolute floor of a few dozen ulps of 1.
SHIFTED = 1e-14

#: Arguments from where every naive formula is fine (0, ±1) to where it overflows (±800).
POINTS = (-800.0, -100.0, -37.0, -30.0, -1.0, 0.0, 1.0, 30.0, 37.0, 100.0, 800.0)
#: The same points, and one more, as one 2-D array.
GRID = np.array([*POINTS, 0.5]).reshape(3, 4)


def mp_sigmoid(u):
    return 1 / (1 + mpmath.exp(-u))


def mp_softmax(us: Sequence) -> list:
    total = mpmath.fsum(mpmath.exp(u) for u in us)
    return [mpmath.exp(u) / total for u in us]


def reference(f: Callable, point: Sequence[float]) -> float:
    """``f`` (an mpmath formula of the coordinates of ``point``) at ``point``, rounded once."""
    with mpmath.workdps(WORK_DPS):
        return float(f(*map(mpmath.mpf, point)))


def reference_gradient(f: Callable, point: Sequence[float]) -> np.ndarray:
    """Every partial derivative of the scalar formula ``f`` at ``point``, by ``mpmath.diff``."""
    n = len(point)
    with mpmath.workdps(WORK_DPS):
        at = tuple(map(mpmath.mpf, point))
        return np.array(
            [float(mpmath.diff(f, at, tuple(int(i == j) for j in range(n)))) for i in range(n)]
        )


def elementwise(f: Callable, values: np.ndarray) -> np.ndarray:
    """The one-argument formula ``f`` at each element of ``values``."""
    return np.array([reference(f, [v]) for v in np.ravel(values)]).reshape(np.shape(values))


def elementwise_derivative(f: Callable, values: np.ndarray) -> np.ndarray:
    flat = [reference_gradient(f, [v])[0] for v in np.ravel(values)]
    return np.array(flat).reshape(np.shape(values))


def assert_close(got, want, what: str, atol: float = TINY) -> None:
    """``got`` is finite (every reference here is) and within RTOL of ``want``."""
    got = np.asarray(got, dtype=float)
    want = np.asarray(want, dtype=float)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, want {want.shape}"
    bad = ~np.isfinite(got) | (np.abs(got - want) > RTOL * np.abs(want) + atol)
    if bad.any():
        shown = [f"{tuple(map(int, i))}: got {got[tuple(i)]!r}, want {want[tuple(i)]!r}"
                 for i in np.argwhere(bad)]
        raise AssertionError(f"{what}: " + "; ".join(shown[:6]))


def quietly(call: Callable, **inputs):
    """``call(**inputs)`` and the messages of the warnings it gave (a stable formula gives none:
    no overflow in exp, no log of 0, no 0·inf)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = call(**inputs)
    return result, [f"{w.category.__name__}: {w.message}" for w in caught]


# -- elementwise patterns in one variable ------------------------------------------------------

#: name -> (the expression in x as a user writes it, the same formula in mpmath)
ELEMENTWISE = {
    "log(1-sigmoid(x))": (sp.log(1 - sigmoid(x)), lambda u: mpmath.log(1 - mp_sigmoid(u))),
    "log1p(-sigmoid(x))": (log1p(-sigmoid(x)), lambda u: mpmath.log1p(-mp_sigmoid(u))),
    "log(sigmoid(x))": (sp.log(sigmoid(x)), lambda u: mpmath.log(mp_sigmoid(u))),
    "log(1+exp(x))": (sp.log(1 + sp.exp(x)), lambda u: mpmath.log(1 + mpmath.exp(u))),
    "log1p(exp(x))": (log1p(sp.exp(x)), lambda u: mpmath.log1p(mpmath.exp(u))),
    "exp(x)/(1+exp(x))": (
        sp.exp(x) / (1 + sp.exp(x)), lambda u: mpmath.exp(u) / (1 + mpmath.exp(u))
    ),
    "1/(1+exp(-x))": (1 / (1 + sp.exp(-x)), lambda u: 1 / (1 + mpmath.exp(-u))),
    # a scaled or negated argument: the pattern is about the shape, not the symbol
    "log(1-sigmoid(2*x))": (
        sp.log(1 - sigmoid(2 * x)), lambda u: mpmath.log(1 - mp_sigmoid(2 * u))
    ),
    "log1p(-sigmoid(-x))": (log1p(-sigmoid(-x)), lambda u: mpmath.log1p(-mp_sigmoid(-u))),
    "log(1+exp(-x))": (sp.log(1 + sp.exp(-x)), lambda u: mpmath.log(1 + mpmath.exp(-u))),
    "exp(2*x)/(1+exp(2*x))": (
        sp.exp(2 * x) / (1 + sp.exp(2 * x)),
        lambda u: mpmath.exp(2 * u) / (1 + mpmath.exp(2 * u)),
    ),
    "1/(1+exp(-2*x))": (1 / (1 + sp.exp(-2 * x)), lambda u: 1 / (1 + mpmath.exp(-2 * u))),
}


@functools.cache
def elementwise_model(name: str, summed: bool) -> symgrad.CompiledModel:
    expr = ELEMENTWISE[name][0]
    return symgrad.compile(symgrad.sum(expr) if summed else expr)


@pytest.mark.parametrize("v", POINTS)
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_value(name, v):
    f = ELEMENTWISE[name][1]
    got, caught = quietly(elementwise_model(name, summed=False), x=v)
    assert_close(got, reference(f, [v]), f"{name} at x = {v}")
    assert not caught, f"{name} at x = {v}: {caught}"


@pytest.mark.parametrize("v", POINTS)
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_gradient(name, v):
    f = ELEMENTWISE[name][1]
    (value, grads), caught = quietly(elementwise_model(name, summed=True).value_and_grad, x=v)
    assert_close(value, reference(f, [v]), f"sum({name}) at x = {v}")
    assert_close(grads["x"], reference_gradient(f, [v])[0], f"d/dx {name} at x = {v}")
    assert not caught, f"{name} at x = {v}: {caught}"


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_arrays_mixing_small_and_large_arguments(name):
    """All the points at once, as one 2-D array: each element is right on its own."""
    f = ELEMENTWISE[name][1]
    values, caught = quietly(elementwise_model(name, summed=False), x=GRID)
    assert_close(values, elementwise(f, GRID), f"{name} on an array")
    (total, grads), caught_grad = quietly(
        elementwise_model(name, summed=True).value_and_grad, x=GRID
    )
    with mpmath.workdps(WORK_DPS):
        want_total = float(mpmath.fsum(f(mpmath.mpf(v)) for v in GRID.ravel()))
    assert_close(total, want_total, f"sum({name}) on an array")
    assert_close(grads["x"], elementwise_derivative(f, GRID), f"d/dx {name} on an array")
    assert not caught + caught_grad, f"{name}: {caught + caught_grad}"


#: Patterns inside patterns: once the inner part is σ, the outer log is log(σ) or log(1 − σ),
#: so the rewrites must apply again to what an earlier one produced.
COMPOSED = {
    "log(1/(1+exp(-x)))": (
        sp.log(1 / (1 + sp.exp(-x))), lambda u: mpmath.log(1 / (1 + mpmath.exp(-u)))
    ),
    "log(exp(x)/(1+exp(x)))": (
        sp.log(sp.exp(x) / (1 + sp.exp(x))),
        lambda u: mpmath.log(mpmath.exp(u) / (1 + mpmath.exp(u))),
    ),
    "log(1-1/(1+exp(-x)))": (
        sp.log(1 - 1 / (1 + sp.exp(-x))), lambda u: mpmath.log(1 - 1 / (1 + mpmath.exp(-u)))
    ),
}


@pytest.mark.parametrize("name", COMPOSED)
def test_composed_patterns(name):
    expr, f = COMPOSED[name]
    values, caught = quietly(symgrad.compile(expr), x=GRID)
    assert_close(values, elementwise(f, GRID), f"{name} on an array")
    (_, grads), caught_grad = quietly(symgrad.compile(symgrad.sum(expr)).value_and_grad, x=GRID)
    assert_close(grads["x"], elementwise_derivative(f, GRID), f"d/dx {name} on an array")
    assert not caught + caught_grad, f"{name}: {caught + caught_grad}"


# -- the inner part as an equation of its own ---------------------------------------------------

#: name -> (equations in the input L, ending with Loss; the whole formula in mpmath)
NAMED = {
    "s=sigmoid(L); log(1-s)": (
        [sp.Eq(s, sigmoid(L)), sp.Eq(Loss, sp.log(1 - s))],
        lambda u: mpmath.log(1 - mp_sigmoid(u)),
    ),
    "s=sigmoid(L); log1p(-s)": (
        [sp.Eq(s, sigmoid(L)), sp.Eq(Loss, log1p(-s))],
        lambda u: mpmath.log1p(-mp_sigmoid(u)),
    ),
    "s=sigmoid(L); log(s)": (
        [sp.Eq(s, sigmoid(L)), sp.Eq(Loss, sp.log(s))],
        lambda u: mpmath.log(mp_sigmoid(u)),
    ),
    "s=sigmoid(2*L); log(1-s)": (
        [sp.Eq(s, sigmoid(2 * L)), sp.Eq(Loss, sp.log(1 - s))],
        lambda u: mpmath.log(1 - mp_sigmoid(2 * u)),
    ),
    "e=exp(L); log(1+e)": (
        [sp.Eq(e, sp.exp(L)), sp.Eq(Loss, sp.log(1 + e))],
        lambda u: mpmath.log(1 + mpmath.exp(u)),
    ),
    "e=exp(L); log1p(e)": (
        [sp.Eq(e, sp.exp(L)), sp.Eq(Loss, log1p(e))],
        lambda u: mpmath.log1p(mpmath.exp(u)),
    ),
    "e=exp(L); e/(1+e)": (
        [sp.Eq(e, sp.exp(L)), sp.Eq(Loss, e / (1 + e))],
        lambda u: mpmath.exp(u) / (1 + mpmath.exp(u)),
    ),
    "d=1+exp(-L); 1/d": (
        [sp.Eq(d, 1 + sp.exp(-L)), sp.Eq(Loss, 1 / d)],
        lambda u: 1 / (1 + mpmath.exp(-u)),
    ),
}


@pytest.mark.parametrize("name", NAMED)
def test_named_inner_equation(name):
    """The pattern spans two equations; the values of Loss and the gradient of sum(Loss)."""
    equations, f = NAMED[name]
    model = symgrad.compile(equations)
    values, caught = quietly(model, L=GRID)
    assert_close(values, elementwise(f, GRID), f"{name}: Loss on an array")
    summed = symgrad.compile([*equations, sp.Eq(F, symgrad.sum(Loss))], wrt=[L])
    (_, grads), caught_grad = quietly(summed.value_and_grad, L=GRID)
    assert_close(grads["L"], elementwise_derivative(f, GRID), f"{name}: d sum(Loss)/dL")
    assert not caught + caught_grad, f"{name}: {caught + caught_grad}"


# -- log(sum(exp(x))) -> logsumexp ---------------------------------------------------------------


def mp_logsumexp(*us):
    return mpmath.log(mpmath.fsum(mpmath.exp(u) for u in us))


#: Vectors: what overflows (800), what underflows (−800, −805: PyTensor's case), and what the
#: naive formula already gets right.
LSE_VECTORS = {
    "overflow": [-800.0, 800.0, 0.0],
    "both-large": [800.0, 800.0],
    "underflow": [-800.0, -805.0],
    "mixed": [-100.0, -30.0, -1.0, 0.0, 1.0, 30.0, 100.0],
    "thousand": [1000.0, 1001.0],
    "moderate": [1.0, 2.0, 3.0],
    "near-one": [1.03, 1.07, 1.01, 1.09],
}


@functools.cache
def logsumexp_vector_model() -> symgrad.CompiledModel:
    return symgrad.compile(sp.log(symgrad.sum(sp.exp(x))))


@pytest.mark.parametrize("case", LSE_VECTORS)
def test_log_sum_exp_of_a_vector(case):
    v = LSE_VECTORS[case]
    (value, grads), caught = quietly(logsumexp_vector_model().value_and_grad, x=np.array(v))
    assert_close(value, reference(mp_logsumexp, v), f"log(sum(exp(x))) at {v}", SHIFTED)
    assert_close(grads["x"], reference_gradient(mp_logsumexp, v), f"its gradient at {v}", SHIFTED)
    assert not caught, f"{v}: {caught}"


LSE_MATRICES = {
    "large": [[1000.0, 1.0, -800.0], [1001.0, 2.0, -805.0]],
    "mixed": [[-800.0, 800.0, 30.0], [800.0, 800.0, -30.0]],
    "moderate": [[1.0, 2.0, -1.0], [3.0, 4.0, 0.5]],
}


@functools.cache
def logsumexp_matrix_model(axis: int | None) -> symgrad.CompiledModel:
    return symgrad.compile(symgrad.sum(sp.log(symgrad.sum(sp.exp(X), axis=axis))))


def mp_logsumexp_matrix(rows: int, axis: int | None) -> Callable:
    """sum over the kept axis of log(sum(exp(X), axis)), X given as its flat elements."""

    def f(*flat):
        m = [list(flat[i * len(flat) // rows:(i + 1) * len(flat) // rows]) for i in range(rows)]
        if axis is None:
            groups = [[u for row in m for u in row]]
        elif axis == 0:
            groups = [list(column) for column in zip(*m, strict=True)]
        else:
            groups = m
        return mpmath.fsum(mp_logsumexp(*g) for g in groups)

    return f


@pytest.mark.parametrize("case", LSE_MATRICES)
@pytest.mark.parametrize("axis", [None, 0, 1])
def test_log_sum_exp_along_an_axis(axis, case):
    """log(sum(exp(X), axis)) of a matrix, then summed: the value and the gradient."""
    matrix = np.array(LSE_MATRICES[case])
    f = mp_logsumexp_matrix(matrix.shape[0], axis)
    flat = list(matrix.ravel())
    (value, grads), caught = quietly(logsumexp_matrix_model(axis).value_and_grad, X=matrix)
    what = f"log(sum(exp(X), axis={axis})) at {case}"
    assert_close(value, reference(f, flat), what, SHIFTED)
    want = reference_gradient(f, flat).reshape(matrix.shape)
    assert_close(grads["X"], want, f"gradient of {what}", SHIFTED)
    assert not caught, f"{what}: {caught}"


def test_log_sum_exp_keeps_each_column():
    """The values per column, not only their sum."""
    matrix = np.array(LSE_MATRICES["large"])
    model = symgrad.compile(sp.log(symgrad.sum(sp.exp(X), axis=0)))
    got, caught = quietly(model, X=matrix)
    want = [reference(mp_logsumexp, list(column)) for column in matrix.T]
    assert_close(got, want, "log(sum(exp(X), axis=0)) per column", SHIFTED)
    assert not caught, caught


# -- log(exp(x) + exp(y)) -> logaddexp -----------------------------------------------------------

PAIRS = [
    (1.0, -1.0), (0.0, 0.0), (30.0, -30.0), (-30.0, -30.0), (100.0, 1.0),
    (10.0, 10.0), (800.0, 800.0), (-800.0, -800.0), (800.0, -800.0), (-800.0, -805.0),
    (10000.0, 10000.0),
]


def mp_logaddexp(u, v):
    return mpmath.log(mpmath.exp(u) + mpmath.exp(v))


@functools.cache
def logaddexp_model(summed: bool) -> symgrad.CompiledModel:
    expr = sp.log(sp.exp(x) + sp.exp(y))
    return symgrad.compile(symgrad.sum(expr) if summed else expr)


@pytest.mark.parametrize("pair", PAIRS, ids=[f"{u:g},{v:g}" for u, v in PAIRS])
def test_log_add_exp(pair):
    u, v = pair
    value, caught = quietly(logaddexp_model(summed=False), x=u, y=v)
    what = f"log(exp(x) + exp(y)) at x = {u}, y = {v}"
    assert_close(value, reference(mp_logaddexp, pair), what, SHIFTED)
    (_, grads), caught_grad = quietly(logaddexp_model(summed=True).value_and_grad, x=u, y=v)
    want = reference_gradient(mp_logaddexp, pair)
    assert_close([grads["x"], grads["y"]], want, f"gradient of {what}", SHIFTED)
    assert not caught + caught_grad, f"{what}: {caught + caught_grad}"


def test_log_add_exp_of_arrays():
    u = np.array([p[0] for p in PAIRS])
    v = np.array([p[1] for p in PAIRS])
    values, caught = quietly(logaddexp_model(summed=False), x=u, y=v)
    assert_close(values, [reference(mp_logaddexp, p) for p in PAIRS], "on arrays", SHIFTED)
    (_, grads), caught_grad = quietly(logaddexp_model(summed=True).value_and_grad, x=u, y=v)
    want = np.array([reference_gradient(mp_logaddexp, p) for p in PAIRS])
    assert_close(grads["x"], want[:, 0], "d/dx on arrays", SHIFTED)
    assert_close(grads["y"], want[:, 1], "d/dy on arrays", SHIFTED)
    assert not caught + caught_grad, caught + caught_grad


def test_log_of_a_sum_of_four_exponentials():
    """PyTensor's case with more than two terms: log(eˣ + eʸ + eˣ⁻ʸ + eˣ⁺ʸ) at x = y = 10000 is
    20000 (e²⁰⁰⁰⁰ dominates), and right at moderate arguments too."""
    expr = sp.log(sp.exp(x) + sp.exp(y) + sp.exp(x - y) + sp.exp(x + y))
    model = symgrad.compile(symgrad.sum(expr))

    def f(u, v):
        return mp_logsumexp(u, v, u - v, u + v)

    for pair in [(10000.0, 10000.0), (800.0, -800.0), (1.0, 2.0)]:
        (value, grads), caught = quietly(model.value_and_grad, x=pair[0], y=pair[1])
        assert_close(value, reference(f, pair), f"value at {pair}", SHIFTED)
        want = reference_gradient(f, pair)
        assert_close([grads["x"], grads["y"]], want, f"gradient at {pair}", SHIFTED)
        assert not caught, f"{pair}: {caught}"


# -- log(softmax(x)) -> log_softmax --------------------------------------------------------------

#: Vectors, and their weights in the scalar the gradient is taken of (sum(c*log(softmax(x))),
#: a cross-entropy when c sums to 1).
LOG_SOFTMAX_VECTORS = {
    "large": ([-800.0, 800.0, 0.0], [0.5, 0.25, 0.25]),
    "pytensor": ([-10.0, -10.0, 999.0], [0.2, 0.7, 0.1]),
    "thousand": ([1000.0, 1001.0], [1.0, 0.0]),
    "underflow": ([-800.0, -805.0, -1600.0], [0.0, 0.0, 1.0]),
    "moderate": ([1.0, 2.0, 3.0], [0.5, 0.25, 0.25]),
    "near-zero": ([0.0, -40.0], [0.3, 0.7]),
}


def mp_log_softmax(us: Sequence) -> list:
    return [mpmath.log(p) for p in mp_softmax(us)]


@pytest.mark.parametrize("case", LOG_SOFTMAX_VECTORS)
def test_log_of_softmax_of_a_vector(case):
    v, c = LOG_SOFTMAX_VECTORS[case]
    values, caught = quietly(symgrad.compile(sp.log(softmax(x))), x=np.array(v))
    with mpmath.workdps(WORK_DPS):
        want = [float(q) for q in mp_log_softmax(list(map(mpmath.mpf, v)))]
    assert_close(values, want, f"log(softmax(x)) at {v}", SHIFTED)
    model = symgrad.compile(symgrad.sum(t * sp.log(softmax(x))), wrt=[x])
    (_, grads), caught_grad = quietly(model.value_and_grad, x=np.array(v), t=np.array(c))

    def f(*us):
        return mpmath.fsum(ci * q for ci, q in zip(c, mp_log_softmax(us), strict=True))

    assert_close(grads["x"], reference_gradient(f, v), f"gradient at {v}", SHIFTED)
    assert not caught + caught_grad, f"{v}: {caught + caught_grad}"


#: PyTensor's matrices (the first underflows to −inf without the rewrite).
LOG_SOFTMAX_MATRICES = {
    "pytensor-large": [[-10.0, -10.0, 999.0], [999.0, 990.0, -10.0]],
    "pytensor-thousand": [[1000.0, 1001.0], [1.0, 2.0]],
    "mixed": [[-800.0, 800.0], [0.0, -800.0]],
    "moderate": [[1.0, 2.0, 0.5], [-1.0, 0.0, 3.0]],
}


@pytest.mark.parametrize("case", LOG_SOFTMAX_MATRICES)
@pytest.mark.parametrize("axis", [0, -1])
def test_log_of_softmax_along_an_axis(axis, case):
    matrix = np.array(LOG_SOFTMAX_MATRICES[case])
    rows, cols = matrix.shape
    weights = np.arange(1.0, matrix.size + 1).reshape(matrix.shape) / matrix.size

    def log_softmax_of(flat) -> list:
        """log_softmax of the matrix given by its flat elements, flat again."""
        m = [list(flat[i * cols:(i + 1) * cols]) for i in range(rows)]
        out = [[None] * cols for _ in range(rows)]
        if axis == 0:
            for j in range(cols):
                for i, q in enumerate(mp_log_softmax([m[i][j] for i in range(rows)])):
                    out[i][j] = q
        else:
            out = [mp_log_softmax(row) for row in m]
        return [q for row in out for q in row]

    def f(*flat):
        return mpmath.fsum(c * q for c, q in zip(weights.ravel(), log_softmax_of(flat),
                                                 strict=True))

    what = f"log(softmax(X, axis={axis})) at {case}"
    values, caught = quietly(symgrad.compile(sp.log(softmax(X, axis=axis))), X=matrix)
    with mpmath.workdps(WORK_DPS):
        want = np.array([float(q) for q in log_softmax_of(list(map(mpmath.mpf, matrix.ravel())))])
    assert_close(values, want.reshape(matrix.shape), what, SHIFTED)
    model = symgrad.compile(symgrad.sum(W * sp.log(softmax(X, axis=axis))), wrt=[X])
    (_, grads), caught_grad = quietly(model.value_and_grad, X=matrix, W=weights)
    want_grad = reference_gradient(f, list(matrix.ravel())).reshape(matrix.shape)
    assert_close(grads["X"], want_grad, f"gradient of {what}", SHIFTED)
    assert not caught + caught_grad, f"{what}: {caught + caught_grad}"


# -- reductions with the inner part as an equation of its own ------------------------------------

CE_WEIGHTS = [0.5, 0.25, 0.25]

#: name -> (equations ending with a scalar Loss, the inputs differentiated (name -> values), the
#: other inputs, the whole formula in mpmath of the differentiated inputs' elements in order)
NAMED_REDUCTIONS = {
    "S=sum(exp(x)); log(S)": (
        [sp.Eq(S, symgrad.sum(sp.exp(x))), sp.Eq(Loss, sp.log(S))],
        {"x": [-800.0, 800.0, 0.0]}, {},
        mp_logsumexp,
    ),
    "e=exp(x); log(sum(e))": (
        [sp.Eq(e, sp.exp(x)), sp.Eq(Loss, sp.log(symgrad.sum(e)))],
        {"x": [-800.0, -805.0]}, {},
        mp_logsumexp,
    ),
    "P=softmax(x); sum(t*log(P))": (
        [sp.Eq(P, softmax(x)), sp.Eq(Loss, symgrad.sum(t * sp.log(P)))],
        {"x": [-800.0, 800.0, 0.0]}, {"t": CE_WEIGHTS},
        lambda *us: mpmath.fsum(c * q for c, q in zip(CE_WEIGHTS, mp_log_softmax(us),
                                                      strict=True)),
    ),
    "d=exp(x); e=exp(y); log(d+e)": (
        [sp.Eq(d, sp.exp(x)), sp.Eq(e, sp.exp(y)), sp.Eq(Loss, sp.log(d + e))],
        {"x": 800.0, "y": -800.0}, {},
        mp_logaddexp,
    ),
}


@pytest.mark.parametrize("name", NAMED_REDUCTIONS)
def test_named_inner_reduction(name):
    equations, wrt, fixed, f = NAMED_REDUCTIONS[name]
    model = symgrad.compile(equations, wrt=list(wrt))
    inputs = {k: np.array(v) for k, v in {**wrt, **fixed}.items()}
    (value, grads), caught = quietly(model.value_and_grad, **inputs)
    flat = [float(u) for values in wrt.values() for u in np.ravel(values)]
    assert_close(value, reference(f, flat), f"{name}: Loss", SHIFTED)
    want = reference_gradient(f, flat)
    got = np.concatenate([np.ravel(grads[k]) for k in wrt])
    assert_close(got, want, f"{name}: the gradient of Loss", SHIFTED)
    assert not caught, f"{name}: {caught}"


# -- inside larger models ------------------------------------------------------------------------

#: Binary cross-entropy written by hand over z = w*x + b, as in a textbook.
LOGISTIC = [
    sp.Eq(Z, w * x + b),
    sp.Eq(Loss, symgrad.mean(-y * sp.log(sigmoid(Z)) - (1 - y) * sp.log(1 - sigmoid(Z)))),
]

#: name -> (w, b, x, y). The data keep the gradient's sum free of cancellation: a stable
#: formula gets each term to a few ulps, and no term is lost against another.
LOGISTIC_CASES = {
    # z = 80x + 0.5 = −799.5, −799.5, 800.5, 800.5, 40.5: three confident, wrong predictions
    "confident-and-wrong": (80.0, 0.5, [-10.0, -10.0, 10.0, 10.0, 0.5], [1.0, 0.0, 0.0, 1.0, 0.0]),
    # z = −39.5, 40.5, both right: the loss is about 5e-18, 1 − σ(−39.5) rounds to 1
    "confident-and-right": (80.0, 0.5, [-0.5, 0.5], [0.0, 1.0]),
    # |z| ≤ 1: the naive formula is fine here
    "moderate": (0.3, -0.2, [-2.0, -1.0, 0.5, 3.0], [0.0, 1.0, 1.0, 0.0]),
}


def mp_logistic_loss(xs, ys) -> Callable:
    def f(wv, bv):
        zs = [wv * xi + bv for xi in xs]
        terms = [-yi * mpmath.log(mp_sigmoid(zi)) - (1 - yi) * mpmath.log(1 - mp_sigmoid(zi))
                 for zi, yi in zip(zs, ys, strict=True)]
        return mpmath.fsum(terms) / len(terms)

    return f


@functools.cache
def logistic_model() -> symgrad.CompiledModel:
    return symgrad.compile(LOGISTIC, wrt=[w, b])


@pytest.mark.parametrize("case", LOGISTIC_CASES)
def test_hand_written_logistic_regression(case):
    wv, bv, xs, ys = LOGISTIC_CASES[case]
    (value, grads), caught = quietly(
        logistic_model().value_and_grad, w=wv, b=bv, x=np.array(xs), y=np.array(ys)
    )
    f = mp_logistic_loss(xs, ys)
    assert_close(value, reference(f, [wv, bv]), f"{case}: the loss")
    assert_close([grads["w"], grads["b"]], reference_gradient(f, [wv, bv]),
                 f"{case}: the gradient (w, b)")
    assert not caught, f"{case}: {caught}"


#: The logistic loss with labels ±1: mean(log(1 + exp(−t·z))), the softplus pattern over a
#: product.
MARGIN = [sp.Eq(Z, w * x + b), sp.Eq(Loss, symgrad.mean(sp.log(1 + sp.exp(-t * Z))))]

MARGIN_CASES = {
    # −t·z = 799.5, −799.5, −800.5
    "large": (80.0, 0.5, [-10.0, -10.0, 10.0], [1.0, -1.0, 1.0]),
    "moderate": (0.3, -0.2, [-2.0, 1.0, 3.0], [1.0, -1.0, 1.0]),
}


@pytest.mark.parametrize("case", MARGIN_CASES)
def test_hand_written_margin_loss(case):
    wv, bv, xs, ts = MARGIN_CASES[case]
    model = symgrad.compile(MARGIN, wrt=[w, b])
    (value, grads), caught = quietly(
        model.value_and_grad, w=wv, b=bv, x=np.array(xs), t=np.array(ts)
    )

    def f(wv, bv):
        terms = [mpmath.log(1 + mpmath.exp(-ti * (wv * xi + bv)))
                 for xi, ti in zip(xs, ts, strict=True)]
        return mpmath.fsum(terms) / len(terms)

    assert_close(value, reference(f, [wv, bv]), f"{case}: the loss")
    assert_close([grads["w"], grads["b"]], reference_gradient(f, [wv, bv]),
                 f"{case}: the gradient (w, b)")
    assert not caught, f"{case}: {caught}"


#: A softmax classifier with its cross-entropy written by hand: log(P) of P = softmax(Z).
CLASSIFIER = [
    sp.Eq(Z, symgrad.matmul(X, W) + B),
    sp.Eq(P, softmax(Z, axis=-1)),
    sp.Eq(Loss, -symgrad.mean(symgrad.sum(Y * sp.log(P), axis=-1))),
]

CLASSIFIER_X = [[1.0, 2.0], [-2.0, 1.0]]
CLASSIFIER_Y = [[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]]
#: name -> (W, B); with the large W the logits are [700, −199, −201] and [100, 401, −101]
CLASSIFIER_CASES = {
    "large": ([[100.0, -200.0, 0.0], [300.0, 0.0, -100.0]], [0.0, 1.0, -1.0]),
    "moderate": ([[0.1, -0.2, 0.3], [0.4, 0.0, -0.1]], [0.0, 0.1, -0.1]),
}


def mp_classifier_loss(*params):
    """The cross-entropy as a function of W's six elements then B's three."""
    wm = [params[0:3], params[3:6]]
    bv = params[6:9]
    total = 0
    for xrow, yrow in zip(CLASSIFIER_X, CLASSIFIER_Y, strict=True):
        logits = [xrow[0] * wm[0][j] + xrow[1] * wm[1][j] + bv[j] for j in range(3)]
        probs = mp_softmax(logits)
        total += mpmath.fsum(yj * mpmath.log(p) for yj, p in zip(yrow, probs, strict=True))
    return -total / len(CLASSIFIER_X)


@pytest.mark.parametrize("case", CLASSIFIER_CASES)
def test_hand_written_softmax_cross_entropy(case):
    wm, bv = CLASSIFIER_CASES[case]
    model = symgrad.compile(CLASSIFIER, wrt=[W, B])
    (value, grads), caught = quietly(
        model.value_and_grad, X=np.array(CLASSIFIER_X), Y=np.array(CLASSIFIER_Y),
        W=np.array(wm), B=np.array(bv),
    )
    point = [*np.ravel(wm), *bv]
    assert_close(value, reference(mp_classifier_loss, point), f"{case}: the loss", SHIFTED)
    want = reference_gradient(mp_classifier_loss, point)
    assert_close(grads["W"], want[:6].reshape(2, 3), f"{case}: dLoss/dW", SHIFTED)
    assert_close(grads["B"], want[6:], f"{case}: dLoss/dB", SHIFTED)
    assert not caught, f"{case}: {caught}"


# -- what only looks like a pattern keeps its meaning --------------------------------------------

#: Moderate arguments, where the formulas below are fine as written.
MODERATE = (-30.0, -1.0, 0.0, 1.0, 30.0)

#: name -> (expression, mpmath formula, points where it is defined). PyTensor's near misses
#: (exp(x)/(2 + exp(x)), exp(x + 1)/(1 + exp(x)), 1.1/(1 + exp(−x)), ...) and a few more: a
#: rewrite that matched them would change the value by a quantity of order 1, so the absolute
#: floor forgives the formula's own rounding near 0 (log(1 − e⁻³⁰) as written is only
#: absolutely accurate) and nothing else.
NEAR_MISSES = {
    "exp(x)/(2+exp(x))": (
        sp.exp(x) / (2 + sp.exp(x)), lambda u: mpmath.exp(u) / (2 + mpmath.exp(u)), MODERATE
    ),
    "exp(x)/(1-exp(x))": (
        sp.exp(x) / (1 - sp.exp(x)), lambda u: mpmath.exp(u) / (1 - mpmath.exp(u)),
        (-30.0, -1.0, 1.0, 30.0),
    ),
    "exp(x+1)/(1+exp(x))": (
        sp.exp(x + 1) / (1 + sp.exp(x)), lambda u: mpmath.exp(u + 1) / (1 + mpmath.exp(u)),
        (-30.0, -1.0, 0.0, 1.0),
    ),
    "exp(x)/(1+exp(-x))": (
        sp.exp(x) / (1 + sp.exp(-x)), lambda u: mpmath.exp(u) / (1 + mpmath.exp(-u)),
        MODERATE,
    ),
    "1.1/(1+exp(-x))": (
        sp.Float(1.1) / (1 + sp.exp(-x)), lambda u: mpmath.mpf(1.1) / (1 + mpmath.exp(-u)),
        MODERATE,
    ),
    "1/(2+exp(-x))": (1 / (2 + sp.exp(-x)), lambda u: 1 / (2 + mpmath.exp(-u)), MODERATE),
    "log(2-sigmoid(x))": (
        sp.log(2 - sigmoid(x)), lambda u: mpmath.log(2 - mp_sigmoid(u)), MODERATE
    ),
    "log1p(sigmoid(x))": (log1p(sigmoid(x)), lambda u: mpmath.log1p(mp_sigmoid(u)), MODERATE),
    "log(1+2*exp(x))": (
        sp.log(1 + 2 * sp.exp(x)), lambda u: mpmath.log(1 + 2 * mpmath.exp(u)),
        MODERATE,
    ),
    "log(2+exp(x))": (
        sp.log(2 + sp.exp(x)), lambda u: mpmath.log(2 + mpmath.exp(u)),
        MODERATE,
    ),
    "log(1-exp(x))": (
        sp.log(1 - sp.exp(x)), lambda u: mpmath.log(1 - mpmath.exp(u)), (-30.0, -1.0, -0.5)
    ),
    "log(1-sigmoid(x)**2)": (
        sp.log(1 - sigmoid(x) ** 2), lambda u: mpmath.log(1 - mp_sigmoid(u) ** 2),
        (-30.0, -1.0, 0.0, 1.0),
    ),
}


@pytest.mark.parametrize("name", NEAR_MISSES)
def test_near_misses_keep_their_value(name):
    expr, f, points = NEAR_MISSES[name]
    v = np.array(points)
    values, _ = quietly(symgrad.compile(expr), x=v)
    assert_close(values, elementwise(f, v), f"{name} at {points}", 1e-14)
    (_, grads), _ = quietly(symgrad.compile(symgrad.sum(expr)).value_and_grad, x=v)
    assert_close(grads["x"], elementwise_derivative(f, v), f"d/dx {name} at {points}", 1e-14)


def test_references_agree_with_closed_forms():
    """The oracle itself: the formulas as written, differentiated by mpmath, are the closed
    forms −σ(x) (of log(1 − σ(x))), σ(x) (of log(1 + eˣ)) and σ(x)σ(−x) (of eˣ/(1 + eˣ))
    where cancellation is worst."""
    for v in (-800.0, -37.0, 37.0, 800.0):
        with mpmath.workdps(WORK_DPS):
            u = mpmath.mpf(v)
            closed = [-mp_sigmoid(u), mp_sigmoid(u), mp_sigmoid(u) * mp_sigmoid(-u)]
            closed = [float(c) for c in closed]
        got = [reference_gradient(ELEMENTWISE[name][1], [v])[0]
               for name in ("log(1-sigmoid(x))", "log(1+exp(x))", "exp(x)/(1+exp(x))")]
        assert got == closed, (v, got, closed)
