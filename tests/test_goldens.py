"""Golden files of what symgrad writes for the models a README reader writes.

Each file under tests/golden/ holds the exact text symgrad produces today: the generated module of
the MLP, the softmax classifier, a Piecewise (Huber) model and a deep chain of sigmoids, the DOT
diagram of the two-layer model and its ``explain()``. (The two-layer model's module is checked in
tests/test_codegen.py.) After an intended change, regenerate them with

    SYMGRAD_UPDATE_GOLDEN=1 python -m pytest tests/test_goldens.py

and review every diff before committing it. Each test first checks what the text means (the
module's gradients against central finite differences of a NumPy reference written here, the
diagram's chains, the explanation's assembled gradients), so a golden is never only a snapshot.
"""

from __future__ import annotations

import html
import os
import re

import numpy as np
import pytest
import sympy as sp
from helpers import GOLDEN, finite_difference, two_layer_equations, two_layer_numpy

import symgrad


def _matches_golden(name: str, text: str) -> None:
    """``text`` is the golden file ``name`` byte for byte (SYMGRAD_UPDATE_GOLDEN=1 rewrites it)."""
    path = GOLDEN / name
    if os.environ.get("SYMGRAD_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        pytest.skip(f"rewrote {path}")
    assert path.exists(), f"run with SYMGRAD_UPDATE_GOLDEN=1 to create {path}"
    assert text == path.read_text(encoding="utf-8"), f"{path} differs: review, then regenerate"


def _module(source: str, name: str) -> dict:
    """The namespace of a generated module, run as the file a user would save."""
    namespace: dict = {"__name__": name}
    exec(compile(source, f"<{name}>", "exec"), namespace)
    return namespace


def _check_gradients(model, source: str, reference, point: dict, params: list[str]) -> None:
    """The model and its generated module (run on its own) give the reference's value, and the
    gradient of every parameter that central finite differences of the reference give."""
    module = _module(source, "golden_module")
    want_value = reference(**point)
    assert float(module["forward"](**point)) == pytest.approx(want_value, rel=1e-12)
    for value, grads in (model.value_and_grad(**point), module["value_and_grad"](**point)):
        assert float(value) == pytest.approx(want_value, rel=1e-12)
        assert sorted(grads) == sorted(params)
        for name in params:
            want = finite_difference(reference, point, name)
            assert np.shape(grads[name]) == np.shape(point[name]), name
            np.testing.assert_allclose(grads[name], want, rtol=1e-6, atol=1e-9, err_msg=name)


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


# -- the MLP, exactly as the README's "Tensor models" writes it --------------------------------


@pytest.fixture(scope="module")
def mlp():
    X, W1, b1, W2, b2, y = sp.symbols("X W1 b1 W2 b2 y")
    L1, H, L2, Loss = sp.symbols("L1 H L2 Loss")
    return symgrad.compile(
        [sp.Eq(L1, symgrad.matmul(X, W1) + b1), sp.Eq(H, symgrad.sigmoid(L1)),
         sp.Eq(L2, symgrad.matmul(H, W2) + b2), sp.Eq(Loss, symgrad.mean((L2 - y)**2))],
        wrt=[W1, b1, W2, b2],
        shapes={X: ("n", 12), W1: (12, 64), b1: (64,), W2: (64, 1), b2: (1,), y: ("n", 1)},
    )


def test_mlp_source_matches_the_golden_file(mlp):
    def reference(*, X, W1, b1, W2, b2, y):
        L2 = _sigmoid(X @ W1 + b1) @ W2 + b2
        return float(np.mean((L2 - y) ** 2))

    rng = np.random.default_rng(0)
    point = {
        "X": rng.normal(size=(5, 12)), "y": rng.normal(size=(5, 1)),
        "W1": rng.normal(size=(12, 64)) / 4, "b1": rng.normal(size=64),
        "W2": rng.normal(size=(64, 1)) / 8, "b2": rng.normal(size=1),
    }
    _check_gradients(mlp, mlp.source, reference, point, ["W1", "b1", "W2", "b2"])
    _matches_golden("mlp_model.py", mlp.source)


# -- a softmax classifier: log_softmax and the mean cross-entropy over one-hot targets -----------


@pytest.fixture(scope="module")
def classifier():
    X, W, b, Y = sp.symbols("X W b Y")
    Z, P, Loss = sp.symbols("Z P Loss")
    return symgrad.compile(
        [sp.Eq(Z, symgrad.matmul(X, W) + b), sp.Eq(P, symgrad.log_softmax(Z, axis=1)),
         sp.Eq(Loss, -symgrad.mean(symgrad.sum(Y * P, axis=1)))],
        wrt=[W, b],
        shapes={X: ("n", 4), W: (4, 3), b: (3,), Y: ("n", 3)},
    )


def test_softmax_classifier_source_matches_the_golden_file(classifier):
    def reference(*, X, W, b, Y):
        Z = X @ W + b
        P = Z - np.log(np.exp(Z).sum(axis=1, keepdims=True))
        return float(-np.mean(np.sum(Y * P, axis=1)))

    rng = np.random.default_rng(1)
    point = {
        "X": rng.normal(size=(6, 4)), "Y": np.eye(3)[rng.integers(0, 3, size=6)],
        "W": rng.normal(size=(4, 3)), "b": rng.normal(size=3),
    }
    _check_gradients(classifier, classifier.source, reference, point, ["W", "b"])
    _matches_golden("softmax_classifier_model.py", classifier.source)


# -- a Piecewise model: the Huber loss of a line ---------------------------------------------


@pytest.fixture(scope="module")
def huber():
    x, y, k, b = sp.symbols("x y k b")
    R, H, Loss = sp.symbols("R H Loss")
    return symgrad.compile(
        [sp.Eq(R, k*x + b - y),
         sp.Eq(H, sp.Piecewise((R**2/2, sp.Abs(R) <= 1), (sp.Abs(R) - sp.Rational(1, 2), True))),
         sp.Eq(Loss, symgrad.mean(H))],
        wrt=[k, b],
    )


def test_piecewise_huber_source_matches_the_golden_file(huber):
    def reference(*, x, y, k, b):
        r = k * x + b - y
        return float(np.mean(np.where(np.abs(r) <= 1, r**2 / 2, np.abs(r) - 0.5)))

    x = np.linspace(-2.0, 2.0, 9)
    y = 2 * x + np.array([0.3, -2.5, 0.1, 3.2, -0.4, 0.6, -1.7, 0.2, 2.4])
    point = {"x": x, "y": y, "k": 2.05, "b": 0.02}
    r = point["k"] * x + point["b"] - y
    # both branches taken, and no residual near the kinks at |r| = 1
    assert (np.abs(r) < 0.9).any() and (np.abs(r) > 1.1).any()
    assert not (np.abs(np.abs(r) - 1) < 0.05).any()
    _check_gradients(huber, huber.source, reference, point, ["k", "b"])
    _matches_golden("piecewise_huber_model.py", huber.source)


# -- a deep chain: six nested sigmoid layers ---------------------------------------------------

DEPTH = 6


@pytest.fixture(scope="module")
def deep_chain():
    x, y, Loss = sp.symbols("x y Loss")
    equations, h = [], x
    for i in range(1, DEPTH + 1):
        hi, wi, ci = sp.symbols(f"h{i} w{i} c{i}")
        equations.append(sp.Eq(hi, symgrad.sigmoid(wi*h + ci)))
        h = hi
    equations.append(sp.Eq(Loss, symgrad.mean((h - y)**2)))
    wrt = [s for i in range(1, DEPTH + 1) for s in sp.symbols(f"w{i} c{i}")]
    return symgrad.compile(equations, wrt=wrt)


def test_deep_chain_source_matches_the_golden_file(deep_chain):
    def reference(*, x, y, **p):
        h = x
        for i in range(1, DEPTH + 1):
            h = _sigmoid(p[f"w{i}"] * h + p[f"c{i}"])
        return float(np.mean((h - y) ** 2))

    rng = np.random.default_rng(2)
    point = {"x": np.linspace(-1.0, 1.0, 7), "y": rng.uniform(size=7)}
    for i in range(1, DEPTH + 1):
        point[f"w{i}"], point[f"c{i}"] = 1.5 + 0.1 * i, -0.3 + 0.05 * i
    params = [f"{v}{i}" for i in range(1, DEPTH + 1) for v in "wc"]
    _check_gradients(deep_chain, deep_chain.source, reference, point, params)
    # the chain rule runs through every layer, in the user's names
    assert deep_chain.chain("w1") == "·".join(
        ["∂Loss/∂h6"] + [f"∂h{i}/∂h{i - 1}" for i in range(DEPTH, 1, -1)] + ["∂h1/∂w1"]
    )
    _matches_golden("deep_chain_model.py", deep_chain.source)


# -- the two-layer model's diagram and explanation ---------------------------------------------


@pytest.fixture(scope="module")
def two_layer():
    k1, b1, k2, b2 = sp.symbols("k1 b1 k2 b2")
    return symgrad.compile(two_layer_equations(), wrt=[k1, b1, k2, b2])


def _nodes_and_edges(dot: str) -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    """node id -> its label's text, and (tail, head, label text) per edge, from DOT text."""
    def text(label: str) -> str:
        return html.unescape(re.sub(r"<[^>]*>", " ", label)).split()

    nodes, edges = {}, []
    for line in dot.splitlines():
        if m := re.fullmatch(r"\s*(\w+) -> (\w+) \[(.*)\]", line):
            label = re.search(r"label=<(.*?)> ", m[3])
            edges.append((m[1], m[2], " ".join(text(label[1])) if label else ""))
        elif m := re.fullmatch(r"\s*(\w+) \[label=<(.*)> color=.*\]", line):
            nodes[m[1]] = " ".join(text(m[2]))
    return nodes, edges


def test_two_layer_dot_diagram_matches_the_golden_file(two_layer):
    dot = two_layer.to_dot(kind="both")
    nodes, edges = _nodes_and_edges(dot)
    assert {a for a, _, _ in edges} | {b for _, b, _ in edges} <= set(nodes)
    forward = {n: label.split()[0] for n, label in nodes.items() if n.startswith("n")}
    assert sorted(forward.values()) == sorted(["x", "y", "k1", "b1", "k2", "b2",
                                               "L1", "σ", "L2", "Loss"])
    # the backward graph: one node per adjoint, and each chain of the model is a path along
    # its edges from ∂Loss/∂Loss, whose labels are the chain's factors in order
    adjoint = {label.split()[0]: n for n, label in nodes.items() if n.startswith("d")}
    factor = {(b, a): label for a, b, label in edges if a.startswith("d")}
    for param in ["k1", "b1", "k2", "b2"]:
        at = adjoint["∂Loss/∂Loss"]
        for step in two_layer.chain(param).split("·"):
            node = adjoint["∂Loss/∂" + step.split("/∂")[1]]
            assert factor[(at, node)].startswith(step + " = "), (param, step)
            at = node
        assert at == adjoint[f"∂Loss/∂{param}"]
    assert "∂σ/∂L1 = σ·(1 − σ)" in factor.values()
    _matches_golden("two_layer_model.dot", dot)


def test_two_layer_explanation_matches_the_golden_file(two_layer):
    text = two_layer.explain()
    # each parameter's assembled gradient, evaluated per element and summed over the data, is
    # the hand-written backward pass's gradient
    X = np.linspace(-2, 2, 11)
    Y = 3 * X + 1
    p = {"k1": 0.5, "b1": -0.2, "k2": 10.0, "b2": 15.0}
    _, want = two_layer_numpy(X, Y, **p)
    L1 = p["k1"] * X + p["b1"]
    values = {"x": X, "y": Y, **p, "L1": L1, "σ": _sigmoid(L1), "N": X.size}
    values["L2"] = p["k2"] * values["σ"] + p["b2"]
    blocks = text.split("\n\n")
    for param in p:
        (block,) = [b for b in blocks if b.startswith(f"∂Loss/∂{param} = ")]
        assert block.splitlines()[0] == f"∂Loss/∂{param} = {two_layer.chain(param)}"
        assembled = block.splitlines()[-1].removeprefix("  = ")
        expr = sp.sympify(assembled.replace("·", "*").replace("−", "-"),
                          locals={n: sp.Symbol(n) for n in values})
        f = sp.lambdify(sorted(expr.free_symbols, key=str), expr, "numpy")
        got = np.sum(f(*(values[s.name] for s in sorted(expr.free_symbols, key=str))))
        assert got == pytest.approx(want[param], rel=1e-12), param
    _matches_golden("two_layer_explain.txt", text)

