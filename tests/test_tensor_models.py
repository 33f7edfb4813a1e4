"""Real networks: the Boston MLP and digits classifiers against hand-written NumPy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import symgrad
from symgrad import log_softmax, matmul, mean, sigmoid, softmax
from symgrad import sum as ssum

DATA = Path(__file__).resolve().parents[1] / "examples" / "data"
# All features but `black`, which encodes a racially motivated variable (see examples/data).
FEATURES = ["crim", "zn", "indus", "chas", "nox", "rm", "age", "dis", "rad", "tax", "ptratio",
            "lstat"]


def boston():
    table = np.genfromtxt(DATA / "boston.csv", delimiter=",", names=True, dtype=float)
    X = np.column_stack([table[f] for f in FEATURES])
    return (X - X.mean(0)) / X.std(0), table["medv"][:, None]


def digits():
    table = np.loadtxt(DATA / "digits.csv", delimiter=",", skiprows=1)
    X, labels = table[:, :64] / 16.0, table[:, 64].astype(int)
    return X, np.eye(10)[labels], labels


X, W1, b1, W2, b2, Y = sp.symbols("X W1 b1 W2 b2 y")
L1, H, L2, Loss = sp.symbols("L1 H L2 Loss")


def mlp_model(**kwargs):
    return symgrad.compile(
        [sp.Eq(L1, matmul(X, W1) + b1), sp.Eq(H, sigmoid(L1)), sp.Eq(L2, matmul(H, W2) + b2),
         sp.Eq(Loss, mean((L2 - Y) ** 2))],
        wrt=[W1, b1, W2, b2], **kwargs,
    )


def mlp_by_hand(X, y, W1, b1, W2, b2):
    L1 = X @ W1 + b1
    H = 1 / (1 + np.exp(-L1))
    L2 = H @ W2 + b2
    r = L2 - y
    dL2 = 2 * r / r.size
    dH = dL2 @ W2.T
    dL1 = dH * H * (1 - H)
    grads = {"W1": X.T @ dL1, "b1": dL1.sum(0), "W2": H.T @ dL2, "b2": dL2.sum(0)}
    return np.mean(r**2), grads


def mlp_start(hidden=64, seed=0):
    rng = np.random.default_rng(seed)
    return {"W1": rng.normal(0, 1 / np.sqrt(12), (12, hidden)), "b1": np.zeros(hidden),
            "W2": rng.normal(0, 1 / np.sqrt(hidden), (hidden, 1)), "b2": np.zeros(1)}


def test_boston_mlp_chains_and_gradients():
    Xv, y = boston()
    model = mlp_model()
    assert model.chain(W1) == "∂Loss/∂L2·∂L2/∂H·∂H/∂L1·∂L1/∂W1"
    assert model.chain("b2") == "∂Loss/∂L2·∂L2/∂b2"
    params = mlp_start()
    value, grads = model.value_and_grad(X=Xv, y=y, **params)
    ref_value, ref_grads = mlp_by_hand(Xv, y, **params)
    np.testing.assert_allclose(value, ref_value, rtol=1e-13)
    for name, g in ref_grads.items():
        assert grads[name].shape == params[name].shape
        np.testing.assert_allclose(grads[name], g, rtol=1e-11, atol=1e-14)
    # and one entry of each against central finite differences
    for name in params:
        index = (0,) * params[name].ndim
        eps = 1e-6
        up = {k: v.copy() for k, v in params.items()}
        down = {k: v.copy() for k, v in params.items()}
        up[name][index] += eps
        down[name][index] -= eps
        fd = (model(X=Xv, y=y, **up) - model(X=Xv, y=y, **down)) / (2 * eps)
        np.testing.assert_allclose(grads[name][index], fd, rtol=1e-5, atol=1e-9)


def test_boston_mlp_training_follows_numpy_for_2000_steps():
    Xv, y = boston()
    model = mlp_model(shapes={X: (None, 12), W1: (12, 64), b1: (64,), W2: (64, 1), b2: (1,)})
    ours, theirs = mlp_start(), mlp_start()
    lr = 0.05
    for _ in range(2000):
        _, g = model.value_and_grad(X=Xv, y=y, **ours)
        _, h = mlp_by_hand(Xv, y, **theirs)
        for name in ours:
            ours[name] -= lr * g[name]
            theirs[name] -= lr * h[name]
    final, _ = model.value_and_grad(X=Xv, y=y, **ours)
    assert final < 10.0  # it learned: the mean house price's variance is about 84
    for name in ours:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-9, atol=1e-12)


def test_matrix_symbol_mlp_gives_identical_results():
    Xv, y = boston()
    n = sp.Symbol("n")
    Xm, W1m, W2m = sp.MatrixSymbol("X", n, 12), sp.MatrixSymbol("W1", 12, 64), \
        sp.MatrixSymbol("W2", 64, 1)
    b1m, b2m, ym = sp.MatrixSymbol("b1", 1, 64), sp.MatrixSymbol("b2", 1, 1), \
        sp.MatrixSymbol("y", n, 1)
    Hm = sp.MatrixSymbol("H", n, 64)
    ones = sp.Symbol("ones")  # a column of ones, to broadcast the bias the SymPy way
    matrix_model = symgrad.compile(
        [(Hm, (Xm * W1m + ones * b1m).applyfunc(sigmoid)),
         (Loss, mean(sp.HadamardProduct(Hm * W2m + ones * b2m - ym,
                                        Hm * W2m + ones * b2m - ym)))],
        wrt=["W1", "b1", "W2", "b2"],
        broadcast="allow",  # ones (n, 1) times b1 (1, 64) is an outer product, as meant
    )
    p = mlp_start()
    plain = mlp_model()
    v1, g1 = plain.value_and_grad(X=Xv, y=y, **p)
    v2, g2 = matrix_model.value_and_grad(
        X=Xv, y=y, ones=np.ones((len(Xv), 1)), W1=p["W1"], b1=p["b1"][None, :], W2=p["W2"],
        b2=p["b2"][None, :],
    )
    np.testing.assert_allclose(v2, v1, rtol=1e-13)
    np.testing.assert_allclose(g2["W1"], g1["W1"], rtol=1e-11, atol=1e-15)
    np.testing.assert_allclose(g2["b1"][0], g1["b1"], rtol=1e-11, atol=1e-15)


Z, Yh, W, b = sp.symbols("Z Y W b")


@pytest.mark.parametrize("form", ["log_softmax", "softmax"])
def test_digits_softmax_regression(form):
    Xv, Yv, labels = digits()
    scores = matmul(X, W) + b
    if form == "log_softmax":
        loss = -mean(ssum(Yh * log_softmax(scores, axis=1), axis=1))
    else:
        loss = -mean(ssum(Yh * sp.log(softmax(scores, axis=1)), axis=1))
    model = symgrad.compile(loss, wrt=[W, b])
    rng = np.random.default_rng(1)
    params = {"W": rng.normal(0, 0.01, (64, 10)), "b": np.zeros(10)}

    def by_hand(W, b):
        Zs = Xv @ W + b
        Zs = Zs - Zs.max(1, keepdims=True)
        P = np.exp(Zs) / np.exp(Zs).sum(1, keepdims=True)
        loss = -np.mean(np.sum(Yv * np.log(P), axis=1))
        dZ = (P - Yv) / len(Xv)
        return loss, {"W": Xv.T @ dZ, "b": dZ.sum(0)}

    value, grads = model.value_and_grad(X=Xv, Y=Yv, **params)
    ref, ref_grads = by_hand(**params)
    np.testing.assert_allclose(value, ref, rtol=1e-12)
    for name in params:
        np.testing.assert_allclose(grads[name], ref_grads[name], rtol=1e-9, atol=1e-13)
    for _ in range(200):
        _, g = model.value_and_grad(X=Xv, Y=Yv, **params)
        for name in params:
            params[name] -= 0.5 * g[name]
    accuracy = np.mean(np.argmax(Xv @ params["W"] + params["b"], axis=1) == labels)
    assert accuracy > 0.9


def test_digits_one_hidden_layer_classifier():
    Xv, Yv, _ = digits()
    Hd, Zd = sp.symbols("H Z")
    model = symgrad.compile(
        [(Hd, sp.tanh(matmul(X, W1) + b1)), (Zd, matmul(Hd, W2) + b2),
         (Loss, -mean(ssum(Yh * log_softmax(Zd, axis=1), axis=1)))],
        wrt=[W1, b1, W2, b2],
    )
    assert model.chain(W1) == "∂Loss/∂Z·∂Z/∂H·∂H/∂W1"
    rng = np.random.default_rng(2)
    p = {"W1": rng.normal(0, 0.125, (64, 32)), "b1": np.zeros(32),
         "W2": rng.normal(0, 0.18, (32, 10)), "b2": np.zeros(10)}

    def by_hand(W1, b1, W2, b2):
        Hh = np.tanh(Xv @ W1 + b1)
        Zs = Hh @ W2 + b2
        Zs = Zs - Zs.max(1, keepdims=True)
        logP = Zs - np.log(np.exp(Zs).sum(1, keepdims=True))
        dZ = (np.exp(logP) - Yv) / len(Xv)
        dH = dZ @ W2.T * (1 - Hh**2)
        grads = {"W1": Xv.T @ dH, "b1": dH.sum(0), "W2": Hh.T @ dZ, "b2": dZ.sum(0)}
        return -np.mean(np.sum(Yv * logP, axis=1)), grads

    value, grads = model.value_and_grad(X=Xv, Y=Yv, **p)
    ref, ref_grads = by_hand(**p)
    np.testing.assert_allclose(value, ref, rtol=1e-12)
    for name in p:
        assert grads[name].shape == p[name].shape
        np.testing.assert_allclose(grads[name], ref_grads[name], rtol=1e-9, atol=1e-13)
