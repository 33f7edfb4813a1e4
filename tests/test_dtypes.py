"""Floating dtypes: a model computes in its inputs' own floating dtype (float32 in, float32 out),
or in the one compiled with ``dtype=``; never a silent upcast or downcast.

Every operation record is run in float32 (a template or helper that upcasts fails here), the
stability guarantees are checked in float32 at ±100 and ±1000, and the rule that picks a call's
dtype is checked against NumPy's own arithmetic, for the compiled model and the saved module.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from models import seed_model
from test_ops import ARRAYS, ELEMENTWISE, _point

import symgrad
from symgrad.codegen.load import load

F32 = np.dtype(np.float32)
# float32 rounding: a few units in the last place (2**-23 ≈ 1.2e-7) per operation
VALUE_RTOL, GRAD_RTOL = 3e-6, 3e-5


def _in_float32(values: dict) -> dict:
    return {k: np.float32(v) if np.ndim(v) == 0 else np.asarray(v, np.float32)
            for k, v in values.items()}


def _widened(values: dict) -> dict:
    """The float32 inputs as float64, exactly: the float64 model then sees the same numbers."""
    return {k: np.asarray(v, np.float64)[()] for k, v in values.items()}


def _close(got, want, rtol: float, scale=None) -> None:
    """``got`` (float32) within ``rtol`` of ``want`` (float64), relative to the values' size."""
    want = np.asarray(want, np.float64)
    scale = np.max(np.abs(want)) if scale is None else scale
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=rtol,
                               atol=rtol * max(float(scale), 1e-30))


def _check_float32(model, inputs: dict) -> None:
    """Value and gradient in float32, equal to the float64 model's to float32 precision."""
    inputs32 = _in_float32(inputs)
    value, grads = model.value_and_grad(**inputs32)
    value64, grads64 = model.value_and_grad(**_widened(inputs32))
    assert np.asarray(value).dtype == F32
    _close(value, value64, VALUE_RTOL)
    scale = max(float(np.max(np.abs(g))) for g in grads64.values())
    for name, g in grads.items():
        assert np.asarray(g).dtype == F32, name
        _close(g, grads64[name], GRAD_RTOL, scale)


@pytest.mark.parametrize("case", ELEMENTWISE, ids=lambda c: f"{c.record}:{c.id}")
def test_every_elementwise_record_computes_in_float32(case):
    if case.record in ("erf", "erfc", "gammaln", "polygamma"):
        pytest.importorskip("scipy")
    model = symgrad.compile(symgrad.sum(case.expr), wrt=list(case.args))
    for point in case.points:
        # each input an array of the point's value and two neighbours
        inputs = {s.name: np.array([v, v * 0.99, v * 1.01]) for s, v in
                  zip(case.args, point, strict=True)}
        _check_float32(model, inputs)


@pytest.mark.parametrize("case", ARRAYS, ids=lambda c: f"{c.record}:{c.id}")
def test_every_array_record_computes_in_float32(case):
    C = sp.Symbol("C", real=True)
    model = symgrad.compile(symgrad.sum(C * case.expr), wrt=list(case.shapes))
    values = _point(case, 0)
    out = np.asarray(symgrad.compile(case.expr)(**values))
    cotangent = np.random.default_rng(3).normal(size=out.shape)
    _check_float32(model, {**values, "C": cotangent})


# -- stability in float32 ----------------------------------------------------------------------

x = sp.Symbol("x", real=True)
EXTREMES = np.array([-1000.0, -100.0, -20.0, 0.0, 20.0, 100.0, 1000.0])


def _log_sigmoid(v):
    return -np.logaddexp(0.0, -v)


@pytest.mark.parametrize(("expr", "reference", "derivative"), [
    (symgrad.sigmoid(x), lambda v: np.exp(_log_sigmoid(v)), lambda v: np.exp(
        _log_sigmoid(v) + _log_sigmoid(-v))),
    (symgrad.softplus(x), lambda v: np.logaddexp(0.0, v), lambda v: np.exp(_log_sigmoid(v))),
    (sp.log(symgrad.sigmoid(x)), _log_sigmoid, lambda v: np.exp(_log_sigmoid(-v))),
    (sp.log(1 - symgrad.sigmoid(x)), lambda v: _log_sigmoid(-v),
     lambda v: -np.exp(_log_sigmoid(v))),
], ids=["sigmoid", "softplus", "log-sigmoid", "log-1-minus-sigmoid"])
def test_float32_keeps_the_stability_guarantees(expr, reference, derivative):
    """Finite and accurate to float32 precision at ±100 and ±1000, value and derivative."""
    model = symgrad.compile(symgrad.sum(expr))
    for v in EXTREMES:
        value, grads = model.value_and_grad(x=np.array([v], np.float32))
        assert np.asarray(value).dtype == F32 and grads["x"].dtype == F32
        assert np.isfinite(value) and np.all(np.isfinite(grads["x"])), v
        want, slope = reference(v), derivative(v)
        assert float(value) == pytest.approx(want, rel=2e-7, abs=1e-37), v
        assert float(grads["x"][0]) == pytest.approx(slope, rel=2e-6, abs=1e-37), v


def test_float32_logsumexp_is_stable_at_large_arguments():
    X = sp.Symbol("X", real=True)
    model = symgrad.compile(symgrad.logsumexp(X))
    for shift in (-1000.0, -100.0, 0.0, 100.0, 1000.0):
        values = np.array([0.0, 1.0, 2.0]) + shift
        value, grads = model.value_and_grad(X=values.astype(np.float32))
        want = shift + np.log(np.sum(np.exp(values - shift)))
        assert np.asarray(value).dtype == F32 and grads["X"].dtype == F32
        assert float(value) == pytest.approx(want, rel=2e-7, abs=2e-7)
        softmax = np.exp(values - want)
        np.testing.assert_allclose(grads["X"], softmax, rtol=2e-6, atol=1e-7)


def test_the_two_layer_model_in_float32():
    model = seed_model()
    rng = np.random.default_rng(0)
    X = rng.normal(size=1000)
    inputs = {"x": X, "y": np.sin(X), "k1": 0.7, "b1": -0.2, "k2": 1.3, "b2": 0.1}
    _check_float32(model, inputs)


# -- which dtype a call computes in -------------------------------------------------------------

k, b, y = sp.symbols("k b y")
F64 = np.dtype(np.float64)

#: Inputs of the model k*y + b, each a mix of Python numbers and arrays of several dtypes.
MIXES = [
    {"k": 0.5, "y": np.ones(3, np.float32), "b": 1},  # Python numbers take float32
    {"k": np.float64(0.5), "y": np.ones(3, np.float32), "b": 1.0},  # a float64 scalar: float64
    {"k": 0.5, "y": np.arange(3), "b": 1.0},  # integers alone: float64
    {"k": np.float32(0.5), "y": np.arange(3, dtype=np.int8), "b": 2},  # int8 and float32
    {"k": 0.5, "y": np.ones(3, np.float32), "b": np.arange(3)},  # int64 and float32: float64
    {"k": 0.5, "y": np.array([True, False, True]), "b": 1},  # booleans: float64
    {"k": 0.5, "y": [1.0, 2.0, 3.0], "b": 1},  # a list of floats: float64
    {"k": np.float32(2), "y": 3, "b": 1},  # a float32 scalar with Python numbers
]


def _numpy_dtype(inputs: dict) -> np.dtype:
    """The dtype NumPy's own arithmetic gives k*y + b with a float: what the model must give."""
    arrays = {n: np.asarray(v) if isinstance(v, list) else v for n, v in inputs.items()}
    return np.asarray(np.sum(arrays["k"] * arrays["y"] + arrays["b"] + 0.0)).dtype


@pytest.mark.parametrize("inputs", MIXES, ids=lambda m: ",".join(
    type(v).__name__ if np.ndim(v) == 0 else str(np.asarray(v).dtype) for v in m.values()))
def test_a_call_computes_in_the_dtype_numpy_gives_its_inputs(inputs):
    model = symgrad.compile(symgrad.sum(k * y + b), wrt=[k, b], cache=False)
    want = _numpy_dtype(inputs)
    value, grads = model.value_and_grad(**inputs)
    assert np.asarray(value).dtype == want
    assert all(np.asarray(g).dtype == want for g in grads.values())
    saved = load(model.source)  # the saved module follows the same rule
    value_saved, grads_saved = saved["value_and_grad"](**inputs)
    assert np.asarray(value_saved).dtype == want
    np.testing.assert_array_equal(value_saved, value)
    assert all(np.asarray(grads_saved[n]).dtype == want for n in grads)


@pytest.mark.parametrize("dtype", [np.float32, "float32", np.dtype("float64"), "float64"])
def test_compiled_with_a_dtype_every_input_is_put_in_it(dtype):
    want = np.dtype(dtype)
    model = symgrad.compile(symgrad.sum(k * y + b), wrt=[k, b], dtype=dtype, cache=False)
    for inputs in MIXES:
        value, grads = model.value_and_grad(**inputs)
        assert np.asarray(value).dtype == want
        assert all(np.asarray(g).dtype == want for g in grads.values())
        saved = load(model.source)
        assert np.asarray(saved["forward"](**inputs)).dtype == want
    assert f"dtype=np.{want.name})" in model.source


@pytest.mark.parametrize("dtype", ["int32", np.float16, "complex128", "float", object, 3])
def test_a_dtype_other_than_float32_or_float64_is_refused(dtype):
    if dtype == "float":  # (NumPy reads "float" as float64: accepted)
        assert symgrad.compile(k * y, dtype=dtype, cache=False).dtype == F64
        return
    with pytest.raises(symgrad.SymgradError, match=r"dtype=.*float32 or float64"):
        symgrad.compile(k * y, dtype=dtype, cache=False)


@pytest.mark.parametrize("backend", ["numpy", "array_api"])
@pytest.mark.parametrize("number", [sp.log(2), sp.Integer(3), sp.Rational(1, 3)])
def test_a_named_number_keeps_float32(backend, number):
    """An equation whose right side is a number (c = log 2) is a line of its own; it must not
    widen the float32 arrays it meets."""
    c, f = sp.symbols("c f")
    model = symgrad.compile({c: number, f: symgrad.sum(c * k * y)}, output=f, wrt=[k],
                            cache=False, backend=backend)
    value, grads = model.value_and_grad(k=np.float32(1.5), y=np.ones(3, np.float32))
    assert np.asarray(value).dtype == F32 and np.asarray(grads["k"]).dtype == F32
    assert float(grads["k"]) == pytest.approx(3 * float(number), rel=1e-6)


@pytest.mark.parametrize("backend", ["numpy", "array_api"])
def test_a_gradient_that_is_a_named_number_is_an_array_scalar(backend):
    c, f = sp.symbols("c f")
    model = symgrad.compile({c: 3, f: c * k}, output=f, wrt=[k], cache=False, backend=backend)
    inputs = {"k": 2.0} if backend == "numpy" else {"k": np.asarray(2.0)}
    _, grads = model.value_and_grad(**inputs)
    assert float(grads["k"]) == 3.0 and hasattr(grads["k"], "dtype")
