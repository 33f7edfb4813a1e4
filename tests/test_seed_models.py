"""The seed models of issue 2 on the Boston data: linear regression and the two-layer model."""

from __future__ import annotations

import random

import numpy as np
import pytest
import sympy as sp
from helpers import two_layer_equations, two_layer_numpy, two_layer_symbols

import symgrad

# -- linear regression of medv on rm ------------------------------------------------------------

x, y, k, b = sp.symbols("x y k b")


@pytest.fixture(scope="module")
def linear():
    return symgrad.compile(symgrad.mean((k * x + b - y) ** 2), wrt=[k, b])


@pytest.fixture(scope="module")
def rm_medv(boston):
    return boston["rm"], boston["medv"]


def test_boston_data_is_the_expected_table(boston):
    assert len(boston["rm"]) == 506
    assert boston["rm"][0] == 6.575 and boston["medv"][0] == 24.0


def test_linear_regression_loss_and_gradient_at_the_published_fit(linear, rm_medv):
    X, Y = rm_medv
    value, grads = linear.value_and_grad(x=X, y=Y, k=9.10211, b=-34.67062)
    assert round(float(value), 4) == 43.6006
    assert float(value) == pytest.approx(np.mean((9.10211 * X - 34.67062 - Y) ** 2), rel=1e-13)
    assert list(grads) == ["k", "b"]
    assert abs(float(grads["k"])) < 1e-3
    assert abs(float(grads["b"])) < 1e-3


def test_linear_regression_gradient_vanishes_at_the_least_squares_optimum(linear, rm_medv):
    X, Y = rm_medv
    k_opt, b_opt = np.polyfit(X, Y, 1)
    value, grads = linear.value_and_grad(x=X, y=Y, k=k_opt, b=b_opt)
    assert abs(float(grads["k"])) < 1e-8
    assert abs(float(grads["b"])) < 1e-8
    assert float(value) == pytest.approx(43.60055, abs=5e-6)


def test_linear_regression_gradient_is_the_hand_written_one(linear, rm_medv):
    X, Y = rm_medv
    for kv, bv in [(0.0, 0.0), (5.0, -10.0), (-3.0, 40.0)]:
        r = kv * X + bv - Y
        grads = linear.grad(x=X, y=Y, k=kv, b=bv)
        np.testing.assert_allclose(grads["k"], np.mean(2 * r * X), rtol=1e-13)
        np.testing.assert_allclose(grads["b"], np.mean(2 * r), rtol=1e-13)


@pytest.mark.parametrize("start", [(0.0, 0.0), (9.0, -30.0), (-5.0, 20.0), (20.0, -100.0)])
def test_gradient_descent_follows_the_hand_written_trajectory(linear, rm_medv, start):
    X, Y = rm_medv
    lr = 0.01
    k_sg, b_sg = start
    k_np, b_np = start
    losses = []
    for _ in range(200):
        value, grads = linear.value_and_grad(x=X, y=Y, k=k_sg, b=b_sg)
        k_sg, b_sg = k_sg - lr * grads["k"], b_sg - lr * grads["b"]
        r = k_np * X + b_np - Y
        dk, db = np.mean(2 * r * X), np.mean(2 * r)
        k_np, b_np = k_np - lr * dk, b_np - lr * db
        np.testing.assert_allclose([k_sg, b_sg], [k_np, b_np], rtol=1e-12, atol=1e-12)
        losses.append(float(value))
    assert losses[-1] < losses[0]


# -- the two-layer model as four named equations ---------------------------------------------


def _forms():
    """The same four equations as a dict, pairs, Eqs, and in shuffled orders."""
    pairs = two_layer_equations()
    forms = {
        "pairs": (pairs, {}),
        "dict": (dict(pairs), {}),
        "eqs": ([sp.Eq(lhs, rhs) for lhs, rhs in pairs], {}),
        "tuple": (tuple(pairs), {}),
    }
    rng = random.Random(3)
    for i in range(3):
        shuffled = pairs[:]
        while shuffled[-1][0].name == "Loss":
            rng.shuffle(shuffled)
        forms[f"shuffled{i}"] = (shuffled, {"output": "Loss"})
        forms[f"shuffled_eqs{i}"] = (
            [sp.Eq(lhs, rhs) for lhs, rhs in shuffled],
            {"output": two_layer_symbols()[-1]},
        )
        forms[f"shuffled_dict{i}"] = (dict(shuffled), {"output": "Loss"})
    return forms


FORMS = _forms()


def _compile(form):
    model, options = FORMS[form]
    k1, b1, k2, b2 = sp.symbols("k1 b1 k2 b2")
    return symgrad.compile(model, wrt=[k1, b1, k2, b2], **options)


@pytest.fixture(scope="module")
def standardized(boston):
    X = boston["rm"]
    return (X - X.mean()) / X.std(), boston["medv"]


@pytest.mark.parametrize("form", list(FORMS))
def test_two_layer_chains(form):
    model = _compile(form)
    k1 = sp.Symbol("k1")
    assert model.output == "Loss"
    assert model.wrt == ("k1", "b1", "k2", "b2")
    assert model.chain(k1) == "∂Loss/∂L2·∂L2/∂σ·∂σ/∂L1·∂L1/∂k1"
    assert model.chain("k1") == "∂Loss/∂L2·∂L2/∂σ·∂σ/∂L1·∂L1/∂k1"
    assert model.chain("b1") == "∂Loss/∂L2·∂L2/∂σ·∂σ/∂L1·∂L1/∂b1"
    assert model.chain("k2") == "∂Loss/∂L2·∂L2/∂k2"
    assert model.chain("b2") == "∂Loss/∂L2·∂L2/∂b2"
    assert model.chain(sp.Symbol("b2")) == "∂Loss/∂L2·∂L2/∂b2"


@pytest.mark.parametrize("form", list(FORMS))
def test_two_layer_gradients_match_hand_written_backprop(form, standardized):
    model = _compile(form)
    X, Y = standardized
    for params in [
        {"k1": 0.5, "b1": -0.2, "k2": 10.0, "b2": 15.0},
        {"k1": -2.0, "b1": 1.0, "k2": 30.0, "b2": 5.0},
    ]:
        value, grads = model.value_and_grad(x=X, y=Y, **params)
        want_value, want = two_layer_numpy(X, Y, **params)
        assert float(value) == pytest.approx(want_value, rel=1e-13)
        assert list(grads) == ["k1", "b1", "k2", "b2"]
        for name in want:
            assert np.shape(grads[name]) == ()
            np.testing.assert_allclose(grads[name], want[name], rtol=1e-11, atol=1e-12)


def test_two_layer_forms_compile_to_the_same_code():
    sources = {form: _compile(form).source for form in FORMS}
    assert len(set(sources.values())) == 1, sorted(sources)


def test_two_layer_training_follows_numpy(standardized):
    model = _compile("eqs")
    X, Y = standardized
    p = {"k1": 0.5, "b1": 0.0, "k2": 1.0, "b2": 0.0}
    q = dict(p)
    first = None
    for _ in range(100):
        value, grads = model.value_and_grad(x=X, y=Y, **p)
        p = {n: p[n] - 0.05 * grads[n] for n in p}
        _, want = two_layer_numpy(X, Y, **q)
        q = {n: q[n] - 0.05 * want[n] for n in q}
        first = float(value) if first is None else first
    np.testing.assert_allclose([p[n] for n in p], [q[n] for n in p], rtol=1e-9)
    assert float(model(x=X, y=Y, **p)) < first


def test_two_layer_explain_writes_out_each_factor():
    text = _compile("eqs").explain()
    assert "∂σ/∂L1 = σ·(1 − σ)" in text
    assert "∂Loss/∂k1 = ∂Loss/∂L2·∂L2/∂σ·∂σ/∂L1·∂L1/∂k1" in text
    assert "∂L2/∂σ = k2" in text
    assert "∂L1/∂k1 = x" in text
    assert "∂L2/∂b2 = 1" in text


def test_two_layer_symbolic_gradients(standardized):
    model = _compile("pairs")
    X, Y = standardized
    params = {"k1": 0.5, "b1": -0.2, "k2": 10.0, "b2": 15.0}
    _, want = two_layer_numpy(X, Y, **params)
    modules = [{"sigmoid": lambda v: 1 / (1 + np.exp(-v)), "mean": np.mean}, "numpy"]
    values = {"x": X, "y": Y, **params}
    assert [s.name for s in model.gradients] == ["k1", "b1", "k2", "b2"]
    for s, g in model.gradients.items():
        assert {t.name for t in g.free_symbols} <= set(values)  # in the inputs only
        args = sorted(g.free_symbols, key=lambda t: t.name)
        got = sp.lambdify(args, g, modules=modules)(*(values[t.name] for t in args))
        np.testing.assert_allclose(got, want[s.name], rtol=1e-11)


# -- several paths -------------------------------------------------------------------------------


def test_two_paths_are_joined_by_plus():
    h, f = sp.symbols("h f")
    model = symgrad.compile([(h, k * x), (f, h**2 + k * h)], wrt=[k])
    chain = model.chain(k)
    assert " + " in chain
    assert sorted(chain.split(" + ")) == ["∂f/∂h·∂h/∂k", "∂f/∂k"]
    # f = k²x² + k²x: df/dk = 2kx² + 2kx
    assert float(model.grad(k=2.0, x=3.0)["k"]) == 2 * 2 * 9 + 2 * 2 * 3


def test_diamond_counts_both_paths():
    u, v, f = sp.symbols("u v f")
    model = symgrad.compile([(u, sp.sin(k)), (v, sp.exp(k)), (f, u * v)], wrt=[k])
    assert sorted(model.chain(k).split(" + ")) == ["∂f/∂u·∂u/∂k", "∂f/∂v·∂v/∂k"]
    kv = 0.7
    want = np.cos(kv) * np.exp(kv) + np.sin(kv) * np.exp(kv)
    assert float(model.grad(k=kv)["k"]) == pytest.approx(want, rel=1e-14)


def test_parameter_not_on_any_path_has_chain_zero():
    h, f = sp.symbols("h f")
    model = symgrad.compile([(sp.Symbol("u"), b + 1), (h, k * x), (f, h**2)], output=f,
                            wrt=[k, b])
    assert model.chain(b) == "0"
    grads = model.grad(k=1.0, x=2.0, b=np.ones((2, 3)))
    assert np.shape(grads["b"]) == (2, 3) and not np.any(grads["b"])
