"""The front end: what a user may pass, and the hash-consed graph it becomes."""

from __future__ import annotations

import time

import numpy as np
import pytest
import sympy as sp

import symgrad
from symgrad.frontend import build, equations_of, free_symbols, tree_size
from symgrad.graph import INPUT, NAMED, PARAMETER, TEMP

x, y, k, b = sp.symbols("x y k b")
h, g, f = sp.symbols("h g f")


def test_one_expression_is_named_f_or_name():
    assert equations_of(x**2) == [(sp.Symbol("f"), x**2)]
    assert equations_of(x**2, name="loss") == [(sp.Symbol("loss"), x**2)]


@pytest.mark.parametrize(
    "model",
    [
        {h: k * x, f: h**2},
        [(h, k * x), (f, h**2)],
        ((h, k * x), (f, h**2)),
        [sp.Eq(h, k * x), sp.Eq(f, h**2)],
        [[h, k * x], [f, h**2]],
        {"h": k * x, "f": h**2},
    ],
    ids=["dict", "pairs", "tuple", "eqs", "lists", "string-keys"],
)
def test_equation_forms(model):
    assert equations_of(model) == [(h, k * x), (f, h**2)]
    m = symgrad.compile(model, wrt=[k])
    assert m.output == "f"
    assert float(m.grad(k=2.0, x=3.0)["k"]) == 2 * 6 * 3


def test_a_single_eq():
    assert equations_of(sp.Eq(f, x + 1)) == [(f, x + 1)]


def test_numbers_are_sympified():
    m = symgrad.compile([(h, 2), (f, h * x)])
    assert float(m(x=3.0)) == 6.0


def test_output_defaults_to_the_last_equation():
    m = symgrad.compile([(h, k * x), (g, h + 1), (f, h**2)])
    assert m.output == "f"
    assert float(m(k=2.0, x=3.0)) == 36.0
    assert m.inputs == ("k", "x")


def test_equations_not_needed_by_the_output_are_dropped():
    m = symgrad.compile([(h, k * x), (g, sp.exp(y)), (f, h**2)])
    assert "y" not in m.inputs
    assert "g" not in {n.label for n in m.ir.nodes}


def test_inputs_are_every_other_free_symbol():
    m = symgrad.compile([(h, k * x + b), (f, h * y)])
    assert m.inputs == ("b", "k", "x", "y")


def test_named_nodes_carry_the_users_names():
    graph = build([(h, sp.exp(k * x) + 1), (f, symgrad.mean(h**2))], wrt=[k])
    roles = {n.label: n.role for n in graph.nodes}
    assert roles["h"] == NAMED and roles["f"] == NAMED
    assert roles["k"] == PARAMETER and roles["x"] == INPUT
    assert [n.label for n in graph.nodes if n.role == NAMED] == ["h", "f"]
    assert graph[graph.output].label == "f"


def test_nodes_are_in_topological_order():
    graph = build([(f, h * g + sp.sin(h)), (g, sp.exp(h) * x), (h, k * x + 1)], output=f)
    seen = set()
    for node in graph.nodes:
        assert set(node.args) <= seen, node.name
        seen.add(node.symbol)


def test_shared_subexpressions_become_one_node():
    e = sp.exp(k * x)
    graph = build(symgrad.sum(sp.sin(e) + e * y + sp.log(1 + e) + sp.tanh(e)))
    exps = [n for n in graph.nodes if isinstance(n.expr, sp.exp)]
    assert len(exps) == 1
    node_of = {n.label: n.symbol for n in graph.inputs}
    kx = [n for n in graph.nodes if n.expr == node_of["k"] * node_of["x"]]
    assert len(kx) == 1
    assert exps[0].expr == sp.exp(kx[0].symbol)  # exp reads the node of k*x
    users = graph.users()[exps[0].symbol]
    assert len(users) >= 4  # sin, *y, 1 + ., tanh all read the one node


def test_a_subexpression_shared_between_equations_is_one_node():
    e = sp.exp(k * x)
    graph = build([(h, sp.sin(e)), (g, sp.cos(e)), (f, h * g)])
    assert len([n for n in graph.nodes if isinstance(n.expr, sp.exp)]) == 1


def test_a_named_subexpression_is_reused_by_later_equations():
    """An equation's right side written out again later is the named node, not a copy."""
    graph = build([(h, sp.exp(k * x)), (f, sp.exp(k * x) + h)])
    assert len([n for n in graph.nodes if isinstance(n.expr, sp.exp)]) == 1


def test_graph_size_is_linear_in_the_dag():
    e = x
    for _ in range(60):
        e = sp.tanh(e) * sp.sin(e)
    assert tree_size(e) > 2**60
    start = time.perf_counter()
    graph = build(e)
    assert time.perf_counter() - start < 5.0
    assert len(graph.nodes) < 4 * 60


def test_auto_names_are_deterministic_and_readable():
    expr = symgrad.sum(sp.sin(k * x) + sp.cos(k * x) * y)
    names1 = [n.name for n in build(expr).nodes]
    names2 = [n.name for n in build(expr).nodes]
    assert names1 == names2
    for n in build(expr).nodes:
        if n.role == TEMP:
            assert n.name.isidentifier() and len(n.name) <= 6, n.name


def test_log_of_sigmoid_is_rewritten_to_softplus():
    graph = build(sp.log(symgrad.sigmoid(k * x)))
    kinds = {type(n.expr) for n in graph.nodes if n.expr is not None}
    assert symgrad.softplus in kinds
    assert sp.log not in kinds and symgrad.sigmoid not in kinds


def test_log_of_sigmoid_across_equations_is_also_stable():
    s = sp.Symbol("s")
    m = symgrad.compile([(s, symgrad.sigmoid(k * x)), (f, symgrad.sum(sp.log(s)))], wrt=[k])
    # exp(-800) underflowing to 0 is the exact float result (and NumPy's default ignores it)
    with np.errstate(all="raise", under="ignore"):
        value, grads = m.value_and_grad(k=1.0, x=np.array([-800.0, 0.0]))
    assert float(value) == pytest.approx(-800.0 - np.log(2), rel=1e-15)
    assert float(grads["k"]) == pytest.approx(-800.0 * 1.0 + 0.0, rel=1e-12)


def test_free_symbols_matches_sympy():
    e = sp.sin(x * y) + sp.Piecewise((k, x > b), (0, True))
    assert free_symbols(e) == e.free_symbols


def test_tree_size_counts_the_expanded_tree():
    assert tree_size(x) == 1
    assert tree_size(sp.sin(x)) == 2
    e = x
    for _ in range(10):
        e = sp.sin(e) + sp.cos(e)
    assert tree_size(e) == 4 * 2**10 - 3  # T(n) = 1 + 2·(1 + T(n - 1)), T(0) = 1


@pytest.mark.parametrize(
    "expr",
    [
        sp.Integer(3),
        x,
        k * x + b,
        -2 * x * y + sp.exp(k) - 2 * b**2,
        sp.Piecewise((sp.log(x), x > k), (0, True)),
        symgrad.sum(x * y, axis=0),
        sp.Integral(h * x, (h, 0, k)),  # h is bound: not something the node reads
        sp.Derivative(sp.Function("u")(h, x), h),
    ],
)
def test_what_a_node_reads_is_its_expressions_free_symbols(expr):
    from symgrad.graph import Node

    node = Node(sp.Symbol("n"), expr, TEMP, "n")
    assert node.args == tuple(sorted(expr.free_symbols, key=lambda s: s.name))


def test_a_node_symbol_is_equal_to_itself_alone_and_ordered_as_a_symbol():
    """Node symbols compare and hash by identity (each node has its own), yet SymPy orders
    and prints them exactly as plain real symbols: the same code, the same explanations."""
    import pickle

    from symgrad.construct import real_symbol

    t, s = real_symbol("t18"), real_symbol("t19")
    twin = real_symbol("t18")
    assert t == t and t != twin and len({t, twin}) == 2
    assert t != sp.Symbol("t18", real=True) and sp.Symbol("t18", real=True) != t
    assert t.is_real and t.is_Symbol and t.name == "t18"
    a, b = sp.symbols("t18 t19", real=True)
    assert str(t * s * (1 - t)) == str(a * b * (1 - a)) == "t18*t19*(1 - t18)"
    assert sp.default_sort_key(t) == sp.default_sort_key(a)
    assert sp.diff(t**2 * s, t) == 2 * t * s
    copy = pickle.loads(pickle.dumps(t * s))
    assert str(copy) == "t18*t19" and all(c.is_real for c in copy.free_symbols)


def test_a_real_user_symbol_named_like_another_inputs_code_name_stays_apart():
    """``a b`` is written ``a_b`` in code; the user's own real symbol ``a_b`` is another input
    (a node's symbol is equal to itself alone, never to a user symbol of the same name)."""
    a, b = sp.Symbol("a b", real=True), sp.Symbol("a_b", real=True)
    model = symgrad.compile(a**2 + 3 * b)
    value, grads = model.value_and_grad(**{"a b": 1.0, "a_b": 10.0})
    assert (value, grads) == (31.0, {"a b": 2.0, "a_b": 3.0})


def test_unevaluated_input_is_compiled_as_its_value():
    """SymPy's evaluate(False) leaves ``x*1`` and ``1*x`` in place: they are x, not a node of
    their own (an alias node once lost its adjoint's owner and failed at the first call)."""
    import re

    u, v = sp.symbols("u v")
    with sp.evaluate(False):
        f = v**2 * 1 + 1 * (u * (v**2 * 1 + 1 * u) ** 2)
    model = symgrad.compile(f, wrt=[v])
    plain, at = v**2 + u * (v**2 + u) ** 2, {u: 0.5, v: 1.5}
    value, grads = model.value_and_grad(u=0.5, v=1.5)
    assert value == pytest.approx(float(plain.subs(at)), rel=1e-14)
    assert grads["v"] == pytest.approx(float(sp.diff(plain, v).subs(at)), rel=1e-14)
    assert not re.search(r"(?<![\w.])1\*", model.source)
