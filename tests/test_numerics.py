"""Numerically stable forms: warning-free and accurate to full precision over the whole range.

The references are computed with mpmath at 200 bits, then rounded once to float64.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
import sympy as sp

import symgrad
from symgrad import relu, sigmoid, softplus

x, y = sp.symbols("x y")
POINTS = [-1000.0, -30.0, 0.0, 30.0, 1000.0]
EXTRA = [-745.0, -100.0, -36.5, -17.0, -1e-10, 1e-10, 0.5, 17.0, 36.5, 100.0, 745.0, 1e300]
ULPS = 4  # "full relative precision": a few units in the last place


def _mp(f):
    def g(v):
        with mpmath.workprec(200):
            return float(f(mpmath.mpf(v)))

    return g


REF_SIGMOID = _mp(lambda v: 1 / (1 + mpmath.exp(-v)))
REF_SOFTPLUS = _mp(lambda v: mpmath.log1p(mpmath.exp(v)))
REF_LOG_SIGMOID = _mp(lambda v: -mpmath.log1p(mpmath.exp(-v)))
REF_DSIGMOID = _mp(lambda v: mpmath.exp(-v) / (1 + mpmath.exp(-v)) ** 2)

#: name -> (expression, value reference, derivative reference)
CASES = {
    "sigmoid": (sigmoid(x), REF_SIGMOID, REF_DSIGMOID),
    "softplus": (softplus(x), REF_SOFTPLUS, REF_SIGMOID),
    "log_sigmoid": (sp.log(sigmoid(x)), REF_LOG_SIGMOID, lambda v: REF_SIGMOID(-v)),
}


def _assert_ulps(got, want, what):
    got, want = float(got), float(want)
    if want == 0.0:
        assert got == 0.0, (what, got)  # the true value underflows: exactly 0
        return
    assert np.isfinite(got), (what, got)
    ulps = abs(got - want) / np.spacing(abs(want))
    assert ulps <= ULPS, (what, got, want, f"{ulps:.1f} ulps")


@pytest.mark.parametrize("name", list(CASES))
def test_values_are_exact_and_warning_free(name, strict_warnings):
    expr, ref, _ = CASES[name]
    model = symgrad.compile(expr)
    values = model(x=np.array(POINTS + EXTRA))
    for v, got in zip(POINTS + EXTRA, values, strict=True):
        _assert_ulps(got, ref(v), f"{name}({v})")
        _assert_ulps(model(x=v), ref(v), f"{name}({v}) as a scalar")


@pytest.mark.parametrize("name", list(CASES))
def test_gradients_are_warning_free(name, strict_warnings):
    expr, _, dref = CASES[name]
    model = symgrad.compile(symgrad.sum(expr))
    grads = model.grad(x=np.array(POINTS))["x"]
    assert np.all(np.isfinite(grads))
    for v in POINTS:
        value, g = model.value_and_grad(x=v)
        assert np.isfinite(value) and np.isfinite(g["x"])
        # right to a few digits here (to the last digit: the next test)
        assert float(g["x"]) == pytest.approx(dref(v), rel=1e-2, abs=1e-300)


@pytest.mark.parametrize("name", list(CASES))
def test_gradients_are_accurate_to_full_precision(name, strict_warnings):
    """The derivatives, too, are exact to a few ulps over the whole range.

    σ'(x) = σ·(1 − σ) computed literally loses all but three digits at x = 30, where σ rounds
    to 1 - 9.4e-14 and 1 − σ cancels, and gives 0 for x ≥ 37; σ(x)·σ(−x) = σ(x)/(1 + exp(x))
    does not.
    """
    expr, _, dref = CASES[name]
    model = symgrad.compile(symgrad.sum(expr))
    grads = model.grad(x=np.array(POINTS + EXTRA[:-1]))["x"]
    for v, g in zip(POINTS + EXTRA[:-1], grads, strict=True):
        _assert_ulps(g, dref(v), f"d{name}({v})")


def test_sigmoid_derivative_is_exact_where_sigmoid_rounds_near_one(strict_warnings):
    """A dense sweep over the region where σ rounds to 1 − tiny (and σ·(1 − σ) would lose
    digits, then give 0 from x ≈ 37 on), and its mirror image, through the chain rule too."""
    points = np.concatenate([np.linspace(10.0, 60.0, 101), -np.linspace(10.0, 60.0, 101)])
    model = symgrad.compile(symgrad.sum(sigmoid(x)))
    for v, g in zip(points, model.grad(x=points)["x"], strict=True):
        _assert_ulps(g, REF_DSIGMOID(v), f"dsigmoid({v})")
    chained = symgrad.compile(symgrad.sum(sigmoid(2 * x)), wrt=[x])
    for v, g in zip(points, chained.grad(x=points / 2)["x"], strict=True):
        _assert_ulps(g, 2 * REF_DSIGMOID(v), f"d/dx sigmoid(2x) at x = {v / 2}")


def test_log_sigmoid_never_takes_log_of_zero(strict_warnings):
    model = symgrad.compile(symgrad.sum(sp.log(sigmoid(x * y))))
    value, grads = model.value_and_grad(x=np.array([-1000.0, 1000.0]), y=2.0)
    assert float(value) == pytest.approx(-2000.0, rel=1e-15)
    np.testing.assert_array_equal(grads["x"], [2.0, 0.0])
    assert float(grads["y"]) == pytest.approx(-1000.0, rel=1e-15)


def test_logistic_loss_is_stable(strict_warnings):
    """Binary cross-entropy written with log(sigmoid): finite for confident wrong predictions."""
    z, t = sp.symbols("z t")
    loss = symgrad.mean(-t * sp.log(sigmoid(z)) - (1 - t) * sp.log(sigmoid(-z)))
    model = symgrad.compile(loss, wrt=[z])
    Z = np.array([-800.0, 800.0, 0.0, 3.0])
    T = np.array([1.0, 1.0, 0.0, 1.0])
    value, grads = model.value_and_grad(z=Z, t=T)
    assert np.isfinite(value)
    # d/dz of the mean loss: (σ(z) - t) / n
    want = (np.array([REF_SIGMOID(v) for v in Z]) - T) / 4
    np.testing.assert_allclose(grads["z"], want, rtol=1e-12)


# -- Piecewise is branch-safe ---------------------------------------------------------------

PW = sp.Piecewise((sp.log(x), x > 0), (0, True))


@pytest.mark.parametrize("v", [-1.0, 0.0, -1e300, -np.inf])
def test_piecewise_branch_not_taken_leaks_nothing(v, strict_warnings):
    model = symgrad.compile(PW)
    assert float(model(x=v)) == 0.0
    summed = symgrad.compile(symgrad.sum(PW))
    value, grads = summed.value_and_grad(x=v)
    assert float(value) == 0.0
    assert float(grads["x"]) == 0.0


def test_piecewise_value_and_gradient_at_minus_one(strict_warnings):
    model = symgrad.compile(PW)  # a scalar output: value_and_grad works on a scalar input
    value, grads = model.value_and_grad(x=-1.0)
    assert float(value) == 0.0 and float(grads["x"]) == 0.0


def test_piecewise_on_arrays_mixing_both_branches(strict_warnings):
    X = np.array([-2.0, -1.0, 0.0, 0.5, 1.0, 4.0])
    model = symgrad.compile(PW)
    np.testing.assert_array_equal(model(x=X), [0, 0, 0, np.log(0.5), 0.0, np.log(4.0)])
    summed = symgrad.compile(symgrad.sum(PW * y))
    value, grads = summed.value_and_grad(x=X, y=3.0)
    assert float(value) == pytest.approx(3 * (np.log(0.5) + np.log(4.0)), rel=1e-15)
    np.testing.assert_allclose(grads["x"], [0, 0, 0, 6.0, 3.0, 0.75], rtol=1e-15)
    assert float(grads["y"]) == pytest.approx(np.log(0.5) + np.log(4.0), rel=1e-15)


def test_piecewise_inside_other_operations_is_branch_safe(strict_warnings):
    X = np.array([-1.0, 0.0, 4.0])
    expr = symgrad.sum(sp.exp(sp.Piecewise((sp.sqrt(x) + 1 / x, x > 0), (x**2, True))))
    value, grads = symgrad.compile(expr).value_and_grad(x=X)
    inner = np.array([1.0, 0.0, 2.25])
    d_inner = np.array([-2.0, 0.0, 1 / (2 * 2.0) - 1 / 16])
    assert float(value) == pytest.approx(np.sum(np.exp(inner)), rel=1e-15)
    np.testing.assert_allclose(grads["x"], np.exp(inner) * d_inner, rtol=1e-14)


def test_piecewise_in_a_named_equation(strict_warnings):
    s, f = sp.symbols("s f")
    model = symgrad.compile([(s, PW), (f, symgrad.sum(s**2))])
    X = np.array([-1.0, 0.0, 0.5, 2.0])
    value, grads = model.value_and_grad(x=X)
    logs = np.array([0.0, 0.0, np.log(0.5), np.log(2.0)])
    assert float(value) == pytest.approx(np.sum(logs**2), rel=1e-15)
    np.testing.assert_allclose(grads["x"], 2 * logs * np.array([0, 0, 2.0, 0.5]), rtol=1e-15)


def test_piecewise_with_a_parameter_in_the_condition(strict_warnings):
    expr = symgrad.sum(sp.Piecewise((sp.log(x - y), x > y), (y**2, True)))
    X = np.array([-1.0, 0.5, 3.0])
    grads = symgrad.compile(expr).grad(x=X, y=1.0)
    np.testing.assert_allclose(grads["x"], [0.0, 0.0, 0.5], rtol=1e-15)
    assert float(grads["y"]) == pytest.approx(2 * 1.0 * 2 - 0.5, rel=1e-15)



@pytest.mark.parametrize(
    ("condition", "y_value", "value", "dy"),
    [
        ((x > 0) | (y > 1), 0.5, 1.0, 2.0),  # x > 0 only where x = 2
        ((x > 0) | (y > 1), 1.5, 1.5, 1.0),  # the scalar y > 1 takes both
        ((x > 0) & (y > 1), 1.5, 3.0, 2.0),
        ((x > 0) & (y < 1) & (x < 5), 0.5, 1.0, 2.0),
    ],
)
def test_piecewise_conditions_joining_an_array_and_a_scalar(
    condition, y_value, value, dy, strict_warnings
):
    """And/Or of an array condition and a scalar one broadcast like the arithmetic does."""
    model = symgrad.compile(symgrad.sum(sp.Piecewise((x * y, condition), (0, True))), wrt=[y])
    v, grads = model.value_and_grad(x=np.array([-1.0, 2.0]), y=y_value)
    assert float(v) == pytest.approx(value, rel=1e-15)
    assert float(grads["y"]) == pytest.approx(dy, rel=1e-15)


# -- conventions at non-smooth points (PyTorch's) ---------------------------------------------


def test_relu_derivative_at_zero_is_zero(strict_warnings):
    grads = symgrad.compile(symgrad.sum(relu(x))).grad(x=np.array([-1.0, 0.0, 2.0]))
    np.testing.assert_array_equal(grads["x"], [0.0, 0.0, 1.0])


def test_abs_derivative_at_zero_is_zero(strict_warnings):
    grads = symgrad.compile(symgrad.sum(sp.Abs(x))).grad(x=np.array([-1.0, 0.0, 2.0]))
    np.testing.assert_array_equal(grads["x"], [-1.0, 0.0, 1.0])


def test_sign_and_heaviside_have_zero_derivative(strict_warnings):
    expr = symgrad.sum(sp.sign(x) + sp.Heaviside(x))
    grads = symgrad.compile(expr).grad(x=np.array([-1.0, 0.0, 2.0]))
    np.testing.assert_array_equal(grads["x"], [0.0, 0.0, 0.0])


def test_max_tie_splits_the_gradient_equally(strict_warnings):
    value, grads = symgrad.compile(sp.Max(x, y)).value_and_grad(x=1.5, y=1.5)
    assert float(value) == 1.5
    assert float(grads["x"]) == 0.5 and float(grads["y"]) == 0.5


def test_min_tie_splits_the_gradient_equally(strict_warnings):
    grads = symgrad.compile(sp.Min(x, y)).grad(x=-2.0, y=-2.0)
    assert float(grads["x"]) == 0.5 and float(grads["y"]) == 0.5


def test_max_on_arrays_with_and_without_ties(strict_warnings):
    model = symgrad.compile(symgrad.sum(sp.Max(x, y)))
    grads = model.grad(x=np.array([1.0, 2.0, 3.0]), y=np.array([2.0, 2.0, 2.0]))
    np.testing.assert_array_equal(grads["x"], [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(grads["y"], [1.0, 0.5, 0.0])


def test_max_with_zero_is_relu_with_a_split_tie(strict_warnings):
    grads = symgrad.compile(symgrad.sum(sp.Max(x, 0))).grad(x=np.array([-1.0, 0.0, 2.0]))
    np.testing.assert_array_equal(grads["x"], [0.0, 0.5, 1.0])
