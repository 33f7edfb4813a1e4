"""Tensor operations: values against NumPy, gradients against central finite differences.

Each model is checked twice: through the model (code specialised to the call's shapes) and
through the shape-generic module in ``model.source`` (what ``save`` writes).
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symgrad
from symgrad.codegen.load import load
from symgrad.functions import log_softmax, logsumexp, matmul, softmax, transpose

A, B, C = sp.symbols("A B C")
RNG = np.random.default_rng(7)


def numeric_grad(f, values, name, eps=1e-6):
    """Central finite differences of the scalar f with respect to values[name]."""
    x = np.array(values[name], dtype=float)
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        for sign in (1, -1):
            shifted = x.copy()
            shifted[i] += sign * eps
            grad[i] += sign * f({**values, name: shifted}) / (2 * eps)
    return grad


def check(expr, values, reference=None, rtol=1e-6):
    model = symgrad.compile(expr)
    generic = load(model.source)
    value, grads = model.value_and_grad(**values)
    g_value, g_grads = generic["value_and_grad"](**values)
    if reference is not None:
        np.testing.assert_allclose(value, reference(**values), rtol=1e-12)
    np.testing.assert_allclose(g_value, value, rtol=1e-12)
    for name in model.inputs:
        assert np.shape(grads[name]) == np.shape(values[name]), name
        np.testing.assert_allclose(g_grads[name], grads[name], rtol=1e-12, atol=1e-14)
        expected = numeric_grad(lambda v: float(model(**v)), values, name)
        np.testing.assert_allclose(grads[name], expected, rtol=rtol, atol=1e-8)
    return model


@pytest.mark.parametrize(
    ("sa", "sb"),
    [((3, 4), (4, 2)), ((4,), (4, 2)), ((3, 4), (4,)), ((4,), (4,)), ((2, 3, 4), (4, 5)),
     ((4,), (2, 4, 3)), ((2, 3, 4), (2, 4, 2))],
)
def test_matmul_follows_numpy_rules(sa, sb):
    values = {"A": RNG.normal(size=sa), "B": RNG.normal(size=sb)}
    check(symgrad.sum(sp.sin(matmul(A, B))), values, lambda A, B: np.sum(np.sin(A @ B)))


@pytest.mark.parametrize("axis", [None, 0, 1, -1, (0, 2)])
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("reduce", [symgrad.sum, symgrad.mean, symgrad.max, logsumexp])
def test_reductions_over_axes(reduce, axis, keepdims):
    numpy_reduce = {symgrad.sum: np.sum, symgrad.mean: np.mean, symgrad.max: np.max}.get(reduce)
    values = {"A": RNG.normal(size=(2, 3, 4)), "C": RNG.normal(size=(2, 3, 4))}
    expr = symgrad.sum(sp.sin(reduce(A * C, axis=axis, keepdims=keepdims)))

    def reference(A, C):
        if numpy_reduce is None:
            m = np.log(np.sum(np.exp(A * C), axis=axis, keepdims=keepdims))
        else:
            m = numpy_reduce(A * C, axis=axis, keepdims=keepdims)
        return np.sum(np.sin(m))

    check(expr, values, reference)


def test_max_ties_share_the_gradient():
    model = symgrad.compile(symgrad.sum(symgrad.max(A, axis=1)))
    grads = model.grad(A=np.array([[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]]))
    np.testing.assert_array_equal(grads["A"], [[0, 0.5, 0.5], [1, 0, 0]])


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_softmax_and_log_softmax(axis):
    values = {"A": RNG.normal(size=(3, 4)), "C": RNG.normal(size=(3, 4))}

    def np_softmax(z):
        e = np.exp(z - z.max(axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True)

    check(symgrad.sum(C * softmax(A, axis=axis)), values,
          lambda A, C: np.sum(C * np_softmax(A)))
    check(symgrad.sum(C * log_softmax(A, axis=axis)), values,
          lambda A, C: np.sum(C * np.log(np_softmax(A))))


def test_transpose_with_and_without_axes():
    values = {"A": RNG.normal(size=(2, 3, 4)), "C": RNG.normal(size=(4, 3, 2))}
    check(symgrad.sum(transpose(A) * C), values, lambda A, C: np.sum(A.T * C))
    values = {"A": RNG.normal(size=(2, 3, 4)), "C": RNG.normal(size=(3, 4, 2))}
    check(symgrad.sum(transpose(A, axes=(1, 2, 0)) * C), values,
          lambda A, C: np.sum(np.transpose(A, (1, 2, 0)) * C))


def test_bias_gradient_keeps_its_shape():
    X, W, b = sp.symbols("X W b")
    model = symgrad.compile(symgrad.mean(sp.tanh(matmul(X, W) + b) ** 2), wrt=[W, b])
    values = {"X": RNG.normal(size=(10, 3)), "W": RNG.normal(size=(3, 5)),
              "b": RNG.normal(size=(5,))}
    grads = model.grad(**values)
    assert grads["W"].shape == (3, 5)
    assert grads["b"].shape == (5,)
    np.testing.assert_allclose(
        grads["b"], numeric_grad(lambda v: float(model(**v)), values, "b"), rtol=1e-6
    )


@pytest.mark.parametrize("big", [1000.0, -1000.0])
def test_stable_softmax_and_logsumexp_at_extremes(big, recwarn):
    z = np.array([[big, 0.0, -big], [big, big, big]])
    model = symgrad.compile(symgrad.sum(logsumexp(A, axis=1)) + symgrad.sum(C * softmax(A, axis=1)))
    value, grads = model.value_and_grad(A=z, C=np.ones((2, 3)))
    assert np.isfinite(value)
    assert all(np.all(np.isfinite(g)) for g in grads.values())
    expected = abs(big) + big + np.log(3) + 2.0  # each softmax row sums to 1
    np.testing.assert_allclose(value, expected, rtol=1e-12)
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_cross_entropy_never_overflows():
    Z, Y = sp.symbols("Z Y")
    loss = -symgrad.mean(symgrad.sum(Y * log_softmax(Z, axis=1), axis=1))
    model = symgrad.compile(loss, wrt=[Z])
    z = np.array([[1000.0, -1000.0, 0.0], [0.0, 0.0, 0.0]])
    y = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    value, grads = model.value_and_grad(Z=z, Y=y)
    np.testing.assert_allclose(value, (2000.0 + np.log(3)) / 2, rtol=1e-12)
    assert np.all(np.isfinite(grads["Z"]))


def test_matrix_symbols_translate_to_the_same_model():
    n = sp.Symbol("n")
    Xm, Wm = sp.MatrixSymbol("X", n, 3), sp.MatrixSymbol("W", 3, 2)
    Bm = sp.MatrixSymbol("B", n, 2)
    matrix_model = symgrad.compile(
        symgrad.mean(sp.HadamardProduct((Xm * Wm).applyfunc(symgrad.sigmoid), Bm) + 2 * Xm * Wm)
    )
    X, W, Bs = sp.symbols("X W B")
    plain_model = symgrad.compile(
        symgrad.mean(symgrad.sigmoid(matmul(X, W)) * Bs + 2 * matmul(X, W))
    )
    values = {"X": RNG.normal(size=(6, 3)), "W": RNG.normal(size=(3, 2)),
              "B": RNG.normal(size=(6, 2))}
    v1, g1 = matrix_model.value_and_grad(**values)
    v2, g2 = plain_model.value_and_grad(**values)
    assert v1 == v2
    for name in values:
        np.testing.assert_array_equal(g1[name], g2[name])


def test_declared_shapes_are_checked_at_compile_time():
    X, W1, L1 = sp.symbols("X W1 L1")
    with pytest.raises(symgrad.SymgradError, match=r"L1 = matmul\(X, W1\): shapes "
                       r"\(506, 13\) and \(12, 64\) do not align"):
        symgrad.compile([(L1, matmul(X, W1))], shapes={X: (506, 13), W1: (12, 64)})


def test_shape_mismatch_at_call_time_names_the_equation():
    X, W1, L1, f = sp.symbols("X W1 L1 f")
    model = symgrad.compile([(L1, matmul(X, W1)), (f, symgrad.sum(L1))])
    with pytest.raises(symgrad.SymgradError, match=r"L1 = matmul\(X, W1\): shapes "
                       r"\(506, 13\) and \(12, 64\) do not align"):
        model(X=np.ones((506, 13)), W1=np.ones((12, 64)))


def test_declared_shape_disagrees_with_call():
    X, W = sp.symbols("X W")
    model = symgrad.compile(symgrad.sum(matmul(X, W)), shapes={X: (None, 3), W: (3, 2)})
    with pytest.raises(symgrad.SymgradError, match="X has shape"):
        model(X=np.ones((4, 5)), W=np.ones((3, 2)))
