"""The PyTorch backend: the array API code on tensors (float64 and float32), and a compiled model
as one layer of a PyTorch program through ``symgrad.torch.function``, whose backward is
symgrad's generated gradient, checked by ``torch.autograd.gradcheck``."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from test_array_api import MODELS, SCIPY_ONLY
from test_ops import ARRAYS, ELEMENTWISE, weighted_sum

import symgrad

torch = pytest.importorskip("torch")
symgrad_torch = pytest.importorskip("symgrad.torch")


def _tensors(inputs: dict, dtype=torch.float64) -> dict:
    return {k: torch.as_tensor(np.asarray(v), dtype=dtype) for k, v in inputs.items()}


def _agree(numpy_model, torch_model, inputs: dict) -> None:
    """On tensors of float64 and of float32, the NumPy model's value and gradients on arrays
    of that dtype: to rounding, and to float32's precision."""
    for dtype, exact, rtol, atol in ((np.float64, 1e-12, 1e-11, 1e-13),
                                     (np.float32, 3e-5, 3e-5, None)):
        arrays = {k: np.asarray(v, dtype) for k, v in inputs.items()}
        value, grads = torch_model.value_and_grad(**_tensors(arrays, getattr(torch,
                                                                              dtype.__name__)))
        want, want_grads = numpy_model.value_and_grad(**arrays)
        assert value.dtype == getattr(torch, dtype.__name__)
        scale = max([1e-30, *(float(np.max(np.abs(g))) for g in want_grads.values())])
        atol = atol if atol is not None else rtol * scale
        assert float(value) == pytest.approx(float(want), rel=exact, abs=atol)
        for n, g in grads.items():
            assert tuple(g.shape) == np.shape(want_grads[n]) and g.dtype == value.dtype, n
            np.testing.assert_allclose(g.numpy(), want_grads[n], rtol=rtol, atol=atol, err_msg=n)


@pytest.mark.parametrize("make", MODELS.values(), ids=MODELS.keys())
def test_the_golden_models_on_tensors(make):
    numpy_model, inputs = make()
    torch_model, _ = make("torch")
    value, grads = torch_model.value_and_grad(**_tensors(inputs))
    want, want_grads = numpy_model.value_and_grad(**inputs)
    assert isinstance(value, torch.Tensor) and value.dtype == torch.float64
    assert float(value) == pytest.approx(float(want), rel=1e-13)
    for n, g in grads.items():
        assert isinstance(g, torch.Tensor) and tuple(g.shape) == np.shape(want_grads[n]), n
        np.testing.assert_allclose(g.numpy(), want_grads[n], rtol=1e-12, atol=1e-14)
    value32, grads32 = torch_model.value_and_grad(**_tensors(inputs, torch.float32))
    assert value32.dtype == torch.float32 and all(g.dtype == torch.float32
                                                  for g in grads32.values())
    assert float(value32) == pytest.approx(float(want), rel=1e-5)


@pytest.mark.parametrize("case", [c for c in ELEMENTWISE if c.record not in SCIPY_ONLY],
                         ids=lambda c: f"{c.record}:{c.id}")
def test_every_elementwise_record_on_tensors(case):
    expr = symgrad.sum(case.expr)
    numpy_model = symgrad.compile(expr, wrt=list(case.args), cache=False)
    torch_model = symgrad.compile(expr, wrt=list(case.args), cache=False, backend="torch")
    inputs = {s.name: np.array([v, v * 0.99, v * 1.01]) for s, v in
              zip(case.args, case.points[0], strict=True)}
    _agree(numpy_model, torch_model, inputs)


@pytest.mark.parametrize("case", ARRAYS, ids=lambda c: f"{c.record}:{c.id}")
def test_every_array_record_on_tensors(case):
    expr, wrt, inputs = weighted_sum(case)
    numpy_model = symgrad.compile(expr, wrt=wrt, cache=False)
    torch_model = symgrad.compile(expr, wrt=wrt, cache=False, backend="torch")
    _agree(numpy_model, torch_model, inputs)


@pytest.mark.parametrize("name", ["two-layer", "mlp", "classifier", "huber"])
def test_gradcheck_of_symgrads_backward_as_a_torch_function(name):
    """torch.autograd.gradcheck compares the Function's backward (symgrad's gradient) with
    PyTorch's finite differences, for every parameter."""
    numpy_model, inputs = MODELS[name]()
    f = symgrad_torch.function(numpy_model)
    tensors = [torch.as_tensor(np.asarray(inputs[n], dtype=float)).requires_grad_(
        n in numpy_model.wrt) for n in numpy_model.inputs]
    assert torch.autograd.gradcheck(f, tuple(tensors), eps=1e-6, atol=1e-7, rtol=1e-6)


def test_a_model_as_one_layer_of_a_pytorch_model_trains():
    """The line model's loss as a layer: torch.optim's steps lower it, and the gradient reaching
    the parameters is symgrad's (against the hand-written one)."""
    k, b, x, y = sp.symbols("k b x y")
    model = symgrad.compile(symgrad.mean((k * x + b - y) ** 2), wrt=[k, b], cache=False)
    f = symgrad_torch.function(model)
    X = torch.linspace(-1, 1, 50, dtype=torch.float64)
    Y = 3 * X + 0.5
    params = {"k": torch.tensor(0.0, dtype=torch.float64, requires_grad=True),
              "b": torch.tensor(0.0, dtype=torch.float64, requires_grad=True)}
    optimiser = torch.optim.SGD(params.values(), lr=0.3)
    losses = []
    for step in range(60):
        optimiser.zero_grad()
        values = {"x": X, "y": Y, **params}
        loss = f(*(values[n] for n in model.inputs))
        loss.backward()
        if step == 0:  # at k = b = 0: d/dk = -2·mean(x·y), d/db = -2·mean(y)
            assert float(params["k"].grad) == pytest.approx(float(-2 * (X * Y).mean()))
            assert float(params["b"].grad) == pytest.approx(float(-2 * Y.mean()))
        optimiser.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 1e-3 * losses[0]
    assert float(params["k"].detach()) == pytest.approx(3.0, abs=0.05)


def test_a_gradient_the_model_was_not_compiled_for_is_refused():
    k, x = sp.symbols("k x")
    f = symgrad_torch.function(symgrad.compile(symgrad.sum(k * x), wrt=[k], cache=False))
    data = torch.arange(3.0, requires_grad=True)
    with pytest.raises(symgrad.SymgradError, match=r"gradient of 'x'.*wrt"):
        f(torch.tensor(1.5, requires_grad=True), data)


def test_numbers_beside_float64_tensors_are_not_rounded_to_float32():
    """PyTorch makes a Python float a float32 tensor; a number passed with float64 tensors must
    stay a float64 number (0.1 is not 0.1f)."""
    k, x = sp.symbols("k x")
    model = symgrad.compile(symgrad.sum(k * x), wrt=[k], cache=False, backend="torch")
    value, grads = model.value_and_grad(k=0.1, x=torch.ones(3, dtype=torch.float64))
    assert value.dtype == torch.float64 and float(value) == 3 * 0.1
    assert grads["k"].dtype == torch.float64 and float(grads["k"]) == 3.0
    value, _ = model.value_and_grad(k=0.1, x=np.ones(3))  # (a NumPy array: a CPU tensor)
    assert isinstance(value, torch.Tensor) and float(value) == 3 * 0.1
