"""Models that are exponential as trees but small as DAGs compile to an IR (and code, and
explanations) whose size is linear in the DAG.

Sizes are measured, not times: ``len(model.ir)`` (nodes of the differentiated IR), the length
of the source and of the explanation. A tree walk anywhere would never finish these models."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from helpers import reachable

import symgrad
from symgrad.expressions import tree_size

x = sp.Symbol("x")


def _nested(depth: int) -> sp.Expr:
    e = x
    for _ in range(depth):
        e = sp.sin(e) + sp.cos(e)
    return e


def _dual(v: float, depth: int) -> tuple[float, float]:
    """Value and derivative of _nested(depth) at v by forward-mode dual numbers, by hand."""
    val, dot = v, 1.0
    for _ in range(depth):
        val, dot = math.sin(val) + math.cos(val), (math.cos(val) - math.sin(val)) * dot
    return val, dot


def test_nested_sin_cos_compiles_fast_and_is_right():
    e = _nested(40)
    assert tree_size(e) > 2**40  # as a tree: beyond any machine
    model = symgrad.compile(e)
    assert len(model.ir) < 10 * 40  # O(depth) nodes, forward and backward
    assert len(model.source) < 50_000
    for v in (0.3, -1.1, 2.0):
        value, grads = model.value_and_grad(x=v)
        want_value, want = _dual(v, 40)
        assert float(value) == pytest.approx(want_value, rel=1e-13)
        assert float(grads["x"]) == pytest.approx(want, rel=1e-9, abs=1e-15)
        # central finite differences (the derivative is tiny: compare absolutely)
        h = 1e-6
        fd = (float(model(x=v + h)) - float(model(x=v - h))) / (2 * h)
        assert float(grads["x"]) == pytest.approx(fd, abs=1e-9)


def test_node_count_grows_linearly_with_depth():
    sizes = [len(symgrad.compile(_nested(d)).ir) for d in (10, 20, 40)]
    # 20 more levels add twice the nodes 10 more levels add: a constant number per level
    assert sizes[2] - sizes[1] == pytest.approx(2 * (sizes[1] - sizes[0]), rel=0.1)


def test_nested_on_arrays():
    model = symgrad.compile(symgrad.sum(_nested(30)))
    X = np.array([-1.0, 0.2, 0.9])
    grads = model.grad(x=X)
    want = [_dual(v, 30)[1] for v in X]
    np.testing.assert_allclose(grads["x"], want, rtol=1e-9, atol=1e-15)


def _compile_or_fail(*args, **kwargs):
    """compile, reporting a RecursionError in one line (its traceback is thousands of lines)."""
    try:
        return symgrad.compile(*args, **kwargs)
    except RecursionError as e:
        pytest.fail(f"RecursionError while compiling: {e}", pytrace=False)


def test_deep_chain_of_sigmoid_layers():
    """h <- sigmoid(w_i·h + c_i), 100 layers, compiles fast and matches a NumPy backprop."""
    depth = 100
    ws = sp.symbols(f"w0:{depth}")
    cs = sp.symbols(f"c0:{depth}")
    h = x
    for w, c in zip(ws, cs, strict=True):
        h = symgrad.sigmoid(w * h + c)
    model = _compile_or_fail(symgrad.mean(h**2), wrt=[*ws, *cs])
    assert len(model.ir) < 20 * depth
    rng = np.random.default_rng(0)
    W = rng.normal(size=depth)
    C = rng.normal(size=depth)
    X = rng.normal(size=20)
    inputs = {"x": X}
    inputs |= {f"w{i}": W[i] for i in range(depth)} | {f"c{i}": C[i] for i in range(depth)}
    value, grads = model.value_and_grad(inputs)
    hs = [X]
    for i in range(depth):
        hs.append(1 / (1 + np.exp(-(W[i] * hs[-1] + C[i]))))
    assert float(value) == pytest.approx(np.mean(hs[-1] ** 2), rel=1e-13)
    g = 2 * hs[-1] / X.size
    for i in reversed(range(depth)):
        pre = g * hs[i + 1] * (1 - hs[i + 1])
        assert float(grads[f"w{i}"]) == pytest.approx(np.sum(pre * hs[i]), rel=1e-9, abs=1e-300)
        assert float(grads[f"c{i}"]) == pytest.approx(np.sum(pre), rel=1e-9, abs=1e-300)
        g = pre * W[i]


def test_deep_equation_chain_has_no_recursion_limit():
    """1200 named equations in a chain: no RecursionError anywhere, the chain has every factor."""
    n = 1200
    hs = sp.symbols(f"h0:{n}")
    k = sp.Symbol("k")
    eqs = [(hs[0], k * x)] + [(hs[i], sp.tanh(hs[i - 1])) for i in range(1, n)]
    model = _compile_or_fail(eqs, wrt=[k])
    value, grads = model.value_and_grad(k=0.5, x=1.0)
    v, d = 0.5, 1.0
    for _ in range(n - 1):
        v, d = math.tanh(v), (1 - math.tanh(v) ** 2) * d
    assert float(value) == pytest.approx(v, rel=1e-12)
    assert float(grads["k"]) == pytest.approx(d, rel=1e-9)
    try:
        chain = model.chain(k)
    except RecursionError as e:
        pytest.fail(f"RecursionError in chain(): {e}", pytrace=False)
    assert chain.count("·") == n - 1


#: The symbolic views of the depth-40 model, run apart: a tree walk there would never end, so
#: the run is stopped after GUARD seconds (it takes well under one) and reported as a failure.
GUARD = 60
VIEWS = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[1])
    import symgrad
    from test_dag_sharing import _dag_size, _evaluate, _nested, x
    model = symgrad.compile(_nested(40))
    gradient = model.gradients[x]
    print(_dag_size(gradient), float(_evaluate(gradient, {x: 0.3})))
    print(model.chain(x).count("·"), len(model.explain()))
    """
)


def test_symbolic_views_of_a_shared_model_stay_small():
    """model.gradients, chain and explain of the depth-40 model: the gradient is a DAG of
    O(depth) nodes that evaluates to the derivative; the explanation stays short."""
    try:
        out = subprocess.run([sys.executable, "-c", VIEWS, str(Path(__file__).parent)],
                             capture_output=True, text=True, timeout=GUARD)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the symbolic views of a depth-40 shared model did not finish in {GUARD} s "
                    "(a walk of the expanded tree)", pytrace=False)
    assert out.returncode == 0, out.stderr
    (size, value), (_, explained) = (line.split() for line in out.stdout.splitlines())
    assert int(size) < 20 * 40
    assert float(value) == pytest.approx(_dual(0.3, 40)[1], rel=1e-9, abs=1e-15)
    assert int(explained) < 100_000


def test_explanation_of_a_shared_model_grows_linearly():
    """explain() must not spell out the expanded tree: doubling the depth of a shared model
    may not multiply the length of its explanation by much more than two (the expanded tree
    grows by a factor of 2**depth). Measured by length, not time, so it cannot hang here."""
    lengths = {d: len(symgrad.compile(_nested(d)).explain()) for d in (3, 6)}
    assert lengths[6] < 3 * lengths[3], lengths


def _dag_size(expr: sp.Expr) -> int:
    """The number of distinct sub-expressions (the DAG's nodes, not the tree's)."""
    seen: set = set()
    stack = [expr]
    while stack:
        e = stack.pop()
        if e not in seen:
            seen.add(e)
            stack.extend(e.args)
    return len(seen)


def _evaluate(expr: sp.Expr, values: dict) -> float:
    """Evaluate a SymPy expression over its DAG with math (no tree expansion)."""
    memo: dict = dict(values)
    stack = [expr]
    funcs = {sp.sin: math.sin, sp.cos: math.cos}
    while stack:
        e = stack[-1]
        if e in memo:
            stack.pop()
            continue
        todo = [a for a in e.args if a not in memo]
        if todo:
            stack.extend(todo)
            continue
        args = [memo[a] for a in e.args]
        if e.is_Number:
            memo[e] = float(e)
        elif isinstance(e, sp.Add):
            memo[e] = math.fsum(args)
        elif isinstance(e, sp.Mul):
            memo[e] = math.prod(args)
        elif isinstance(e, sp.Pow):
            memo[e] = args[0] ** args[1]
        else:
            memo[e] = funcs[type(e)](*args)
        stack.pop()
    return memo[expr]


@pytest.mark.parametrize(
    "model",
    [
        sp.log(symgrad.sigmoid(sp.Symbol("k") * x)),
        symgrad.sum(sp.log(1 + sp.exp(x)) + sp.sin(sp.exp(x))),
        symgrad.mean((symgrad.sigmoid(sp.Symbol("k") * x) - sp.Symbol("y")) ** 2),
        _nested(5),
    ],
    ids=["log-sigmoid", "softplus-rewrite", "two-layer", "nested"],
)
def test_the_ir_holds_no_dead_node(model):
    """Every node of ``model.ir`` is read by the output or a gradient: what a rewrite replaced
    (log(sigmoid(z)) -> -softplus(-z)) and what a rule did not use are removed, so that
    ``print(model.ir)`` and ``len(model.ir)`` show the program that runs."""
    ir = symgrad.compile(model).ir
    dead = [ir.line(i) for i in range(len(ir)) if i not in reachable(ir)]
    assert dead == []
