"""The input sweep for training: fit, model.objective and objective given each kind of bad
value raise a SymgradError whose message names the culprit, never another exception type,
and never a warning in its place (warnings are errors here)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import sympy as sp

import symgrad
from symgrad.errors import SymgradError
from symgrad.optim import SGD, Adam
from symgrad.training import fit, objective

pytestmark = pytest.mark.usefixtures("strict_warnings")

x, y, k, b = sp.symbols("x y k b")
X = np.linspace(0.0, 1.0, 10)
Y = 2.0 * X + 1.0
PARAMS = {"k": 0.0, "b": 0.0}
DATA = {"x": X, "y": Y}


@pytest.fixture(scope="module")
def model() -> symgrad.CompiledModel:
    return symgrad.compile(symgrad.mean((k * x + b - y) ** 2), wrt=[k, b])


def with_value(mapping: dict, name: str, value) -> dict:
    return {**mapping, name: value}


class OptimizerWithLr:
    """Not symgrad's: a plain object with a step method and an lr attribute."""

    def __init__(self, lr):
        self.lr = lr

    def step(self, params, grads):
        return {n: p - self.lr * grads[n] for n, p in params.items()}


# (params, data, what the message must say) for both fit and objective
BAD_PARAMS_OR_DATA = [
    pytest.param(None, DATA, r"params must be a dict.*\{'k': 0\.0, 'b': 0\.0\}.*None",
                 id="params-is-None"),
    pytest.param("k", DATA, r"params must be a dict.*got str 'k'", id="params-is-string"),
    pytest.param([k, b], DATA, r"params must be a dict.*got list \[k, b\]", id="params-is-symbols"),
    pytest.param(np.zeros(2), DATA, r"params must be a dict.*ndarray", id="params-is-array"),
    pytest.param(PARAMS, None, r"data must be a dict.*\{'x': array, 'y': array\}",
                 id="data-is-None"),
    pytest.param(PARAMS, "x", r"data must be a dict.*got str", id="data-is-string"),
    pytest.param(PARAMS, [x, y], r"data must be a dict.*got list \[x, y\]", id="data-is-symbols"),
    pytest.param(PARAMS, X + 1j, r"data must be a dict.*ndarray", id="data-is-complex-array"),
    # a value that is not real numbers, in params or in data
    *[
        pytest.param(with_value(PARAMS, "k", value), DATA,
                     rf"parameter 'k' is not a number.*{reason}", id=f"param-{name}")
        for name, value, reason in [
            ("None", None, "it is None"),
            ("string", "1.5", "text '1.5'"),
            ("symbol", k, r"it is k \(a Symbol\)"),
            ("symbols", [k, b], r"holds k \(a Symbol\) at index 0"),
            ("complex", 1.0 + 2.0j, "complex"),
            ("complex-array", np.array([1.0 + 2.0j]), "complex"),
            ("object-None", np.array([1.0, None], dtype=object), "holds None at index 1"),
            ("ragged", [[1.0], [1.0, 2.0]], "ValueError"),
        ]
    ],
    *[
        pytest.param(PARAMS, with_value(DATA, "x", value),
                     rf"data 'x' is not a number.*{reason}", id=f"data-{name}")
        for name, value, reason in [
            ("None", None, "it is None"),
            ("string", "1.5", "text '1.5'"),
            ("strings", np.array(["1", "2"]), "holds text"),
            ("symbols", [x, y], r"holds x \(a Symbol\) at index 0"),
            ("complex", 1.0 + 0.0j, "complex"),
            ("complex-array", X + 0j, "complex"),
            ("object-None", np.array([*X[:-1], None], dtype=object), "holds None at index 9"),
            ("datetime", np.array(["2026-12-07"], dtype="datetime64[D]"), "datetime64"),
        ]
    ],
    # missing, unknown and duplicate names
    pytest.param({"k": 0.0}, DATA, r"missing input 'b'", id="missing-param"),
    pytest.param(PARAMS, {"x": X}, r"missing input 'y'", id="missing-data"),
    pytest.param({**PARAMS, "c": 1.0}, DATA, r"unknown parameter 'c'.*'b', 'k', 'x', 'y'",
                 id="unknown-param"),
    pytest.param(PARAMS, {**DATA, "z": 1.0}, r"unknown data input 'z'", id="unknown-data"),
    pytest.param({k: 0.0, "k": 1.0, "b": 0.0}, DATA, r"'k' appears twice in params",
                 id="duplicate-param"),
    pytest.param(PARAMS, {x: X, "x": X, "y": Y}, r"'x' appears twice in data",
                 id="duplicate-data"),
    pytest.param(PARAMS, {**DATA, "b": 1.0}, r"'b' given both in params and in data",
                 id="param-in-both"),
    pytest.param(DATA, PARAMS, r"look swapped.*'x', 'y'.*'k', 'b'", id="swapped"),
    pytest.param({}, {**DATA, **PARAMS}, r"no parameters to train", id="nothing-to-train"),
]


@pytest.mark.parametrize(("params", "data", "culprit"), BAD_PARAMS_OR_DATA)
def test_fit_names_a_bad_params_or_data(model, params, data, culprit):
    with pytest.raises(SymgradError, match=culprit):
        fit(model, params, data, SGD(lr=0.1), steps=2)


@pytest.mark.parametrize(("params", "data", "culprit"), BAD_PARAMS_OR_DATA)
def test_objective_names_a_bad_params_or_data(model, params, data, culprit):
    with pytest.raises(SymgradError, match=culprit):
        model.objective(data, params)
    with pytest.raises(SymgradError, match=culprit):
        objective(model, data, params)


@pytest.mark.parametrize(
    "not_a_model",
    [None, "mean((k*x + b - y)**2)", symgrad.mean((k * x + b - y) ** 2), [k, b], 1.0],
    ids=["None", "string", "expression", "symbols", "number"],
)
def test_the_model_must_be_compiled(not_a_model):
    culprit = r"model must be a compiled model, made by symgrad\.compile"
    with pytest.raises(SymgradError, match=culprit):
        fit(not_a_model, PARAMS, DATA, SGD(lr=0.1), steps=2)
    with pytest.raises(SymgradError, match=culprit):
        objective(not_a_model, DATA, PARAMS)


@pytest.mark.parametrize(
    ("optimizer", "culprit"),
    [
        (SGD, r"optimizer is the class SGD itself: pass an instance, such as SGD\(lr=0\.01\)"),
        (Adam, r"optimizer is the class Adam itself: pass an instance"),
        (None, r"optimizer must have a step\(params, grads\) method.*None"),
        ("adam", r"optimizer must have a step\(params, grads\) method.*'adam'"),
        (0.01, r"optimizer must have a step\(params, grads\) method.*0\.01"),
        (OptimizerWithLr(-0.1), r"optimizer's lr must be a positive number, got -0\.1"),
        (OptimizerWithLr(0), r"optimizer's lr must be a positive number, got 0"),
        (OptimizerWithLr(float("nan")), r"optimizer's lr must be a positive number, got nan"),
    ],
    ids=["SGD-class", "Adam-class", "None", "string", "number", "lr<0", "lr=0", "lr=nan"],
)
def test_fit_names_a_bad_optimizer(model, optimizer, culprit):
    with pytest.raises(SymgradError, match=culprit):
        fit(model, PARAMS, DATA, optimizer, steps=2)


def test_an_optimizer_of_ones_own_with_a_good_lr_trains(model):
    history = fit(model, PARAMS, DATA, OptimizerWithLr(0.1), steps=300)
    assert history.losses[-1] < history.losses[0] / 100


@pytest.mark.parametrize("lr", [0, -0.1, float("nan"), "0.1", None])
def test_a_non_positive_learning_rate_is_refused_where_it_is_set(model, lr):
    with pytest.raises(SymgradError, match="lr"):
        SGD(lr=lr)
    with pytest.raises(SymgradError, match="lr"):
        Adam(lr=lr)
    optimizer = SGD(lr=0.1)
    with pytest.raises(SymgradError, match="lr"):
        optimizer.lr = lr


@pytest.mark.parametrize(
    ("options", "culprit"),
    [
        ({}, r"give exactly one of steps= or epochs="),
        ({"steps": 3, "epochs": 3}, r"give exactly one of steps= or epochs="),
        ({"steps": 0}, r"steps must be a positive int, got 0"),
        ({"steps": -2}, r"steps must be a positive int, got -2"),
        ({"steps": 2.5}, r"steps must be a positive int, got 2\.5"),
        ({"steps": "5"}, r"steps must be a positive int, got '5'"),
        ({"steps": None, "epochs": None}, r"give exactly one of steps= or epochs="),
        ({"epochs": True}, r"epochs must be a positive int, got True"),
        ({"epochs": 0}, r"epochs must be a positive int, got 0"),
        ({"epochs": 1, "batch_size": 2.5}, r"batch_size must be a positive int, got 2\.5"),
        ({"epochs": 1, "batch_size": 2.0}, r"batch_size must be a positive int, got 2\.0"),
        ({"epochs": 1, "batch_size": "2"}, r"batch_size must be a positive int, got '2'"),
        ({"epochs": 1, "batch_size": 0}, r"batch_size must be a positive int, got 0"),
        ({"epochs": 1, "batch_size": True}, r"batch_size must be a positive int, got True"),
        ({"epochs": 1, "batch_size": 2, "seed": "s"}, r"seed must be an int"),
        ({"epochs": 1, "batch_size": 2, "seed": 1.5}, r"seed must be an int"),
        ({"steps": 2, "callback": "print"}, r"callback must be callable"),
    ],
)
def test_fit_names_a_bad_option(model, options, culprit):
    with pytest.raises(SymgradError, match=culprit):
        fit(model, PARAMS, DATA, SGD(lr=0.1), **options)


@pytest.mark.parametrize("batch_size", [10, 11, 1000])
def test_a_batch_as_large_as_the_data_or_larger_is_all_of_it(model, batch_size):
    """As PyTorch's DataLoader and Keras do: one batch of every row, each epoch one step, the
    same steps as without batches."""
    history = fit(model, PARAMS, DATA, SGD(lr=0.1), epochs=3, batch_size=batch_size)
    whole = fit(model, PARAMS, DATA, SGD(lr=0.1), epochs=3)
    assert history.steps == 3  # (the rows shuffled: the sums in another order)
    assert history.losses == pytest.approx(whole.losses, rel=1e-12)


@pytest.mark.parametrize(
    ("data", "params"),
    [
        ({"x": X, "y": Y[:3]}, PARAMS),  # shapes (10,) and (3,) do not broadcast
        (DATA, {"k": np.ones(3), "b": 0.0}),  # a parameter of the wrong shape
        ({"x": np.ones((10, 2)), "y": np.ones((10, 3))}, PARAMS),
    ],
    ids=["data", "param", "2-d"],
)
def test_a_shape_the_model_refuses_comes_through_as_the_models_own_error(model, data, params):
    with pytest.raises(SymgradError) as direct:
        model.value_and_grad(**data, **params)
    same = pytest.raises(type(direct.value), match=re.escape(str(direct.value)))
    with same:
        fit(model, params, data, SGD(lr=0.1), steps=2)
    fun, x0, _ = model.objective(data, params)
    with same:
        fun(x0)


def test_a_model_without_a_scalar_output_is_the_models_own_error():
    per_row = symgrad.compile(k * x + b - y, wrt=[k, b])
    with pytest.raises(SymgradError) as direct:
        per_row.value_and_grad(**DATA, **PARAMS)
    with pytest.raises(type(direct.value), match=re.escape(str(direct.value))):
        fit(per_row, PARAMS, DATA, SGD(lr=0.1), steps=2)


def test_mini_batches_need_first_axes_of_one_length(model):
    with pytest.raises(SymgradError, match=r"first axis.*x: 10, y: 9"):
        fit(model, PARAMS, {"x": X, "y": Y[:9]}, SGD(lr=0.1), epochs=1, batch_size=5)


@pytest.mark.parametrize(
    ("vector", "culprit"),
    [
        (None, r"parameter vector is not a number.*None"),
        ("ab", r"parameter vector is not a number.*text 'ab'"),
        ([k, b], r"parameter vector is not a number.*holds k \(a Symbol\) at index 0"),
        (np.array([1.0 + 1.0j, 0.0]), r"parameter vector is not a number.*complex"),
        (np.ones(3), r"parameter vector must have shape \(2,\) for k, b, got shape \(3,\)"),
        (np.ones((2, 1)), r"parameter vector must have shape \(2,\).*\(2, 1\)"),
        (1.0, r"parameter vector must have shape \(2,\).*\(\)"),
    ],
    ids=["None", "string", "symbols", "complex", "too-long", "2-d", "scalar"],
)
def test_objectives_functions_name_a_bad_vector(model, vector, culprit):
    fun, _, unflatten = model.objective(DATA, PARAMS)
    with pytest.raises(SymgradError, match=culprit):
        fun(vector)
    with pytest.raises(SymgradError, match=culprit):
        unflatten(vector)


def test_a_torch_tensor_that_requires_grad_is_named():
    torch = pytest.importorskip("torch")
    model = symgrad.compile(symgrad.mean((k * x + b - y) ** 2), wrt=[k, b])
    tensor = torch.tensor(X, requires_grad=True)
    with pytest.raises(SymgradError, match=r"data 'x'.*detach"):
        fit(model, PARAMS, {"x": tensor, "y": Y}, SGD(lr=0.1), steps=2)
    with pytest.raises(SymgradError, match=r"parameter 'k'.*detach"):
        fit(model, {"k": torch.zeros(1, requires_grad=True), "b": 0.0}, DATA, SGD(lr=0.1),
            steps=2)
