"""The front end: what a user may pass, and the IR it becomes (``symgrad.frontend.build``)."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import sympy as sp
from helpers import reachable

import symgrad
from symgrad.expressions import free_symbols, tree_size
from symgrad.frontend import build, equations_of
from symgrad.ir import INPUT, NAMED, PARAMETER, TEMP, Graph

x, y, k, b = sp.symbols("x y k b")
h, g, f = sp.symbols("h g f")


def _ops(graph: Graph, op: str) -> list[int]:
    return [i for i, n in enumerate(graph.nodes) if n.op == op]


def _labels(graph: Graph) -> set[str]:
    return {info.label for info in graph.info if info.label is not None}


# -- what a user may pass ---------------------------------------------------------------------


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
    assert "g" not in _labels(m.ir)
    assert _ops(m.ir, "exp") == []


def test_inputs_are_every_other_free_symbol():
    m = symgrad.compile([(h, k * x + b), (f, h * y)])
    assert m.inputs == ("b", "k", "x", "y")


# -- the IR: roles, labels, order -------------------------------------------------------------


def test_nodes_carry_roles_labels_and_equations():
    graph = build([(h, sp.exp(k * x) + 1), (f, symgrad.mean(h**2))], wrt=[k])
    role = {info.label: info.role for info in graph.info if info.label}
    assert role == {"h": NAMED, "f": NAMED, "k": PARAMETER, "x": INPUT}
    assert [info.label for info in graph.info if info.role == NAMED] == ["h", "f"]
    assert graph.info[graph.output].label == "f"
    assert [graph.info[i].label for i in graph.wrt] == ["k"]
    assert [graph.info[i].label for i in graph.inputs] == ["k", "x"]
    # each inner operation belongs to the equation it was written for
    for i, info in enumerate(graph.info):
        if info.role == TEMP and graph[i].op != "const":
            assert info.equation in ("h", "f"), (i, graph.line(i))
    exp = _ops(graph, "exp")
    assert [graph.info[i].equation for i in exp] == ["h"]
    pow_ = _ops(graph, "pow")
    assert [graph.info[i].equation for i in pow_] == ["f"]
    assert graph.equations == [("h", sp.exp(k * x) + 1), ("f", symgrad.mean(h**2))]


def test_nodes_are_in_topological_order():
    graph = build([(f, h * g + sp.sin(h)), (g, sp.exp(h) * x), (h, k * x + 1)], output=f)
    for i, node in enumerate(graph.nodes):
        assert all(a < i for a in node.args), graph.line(i)
    assert graph.info[graph.output].label == "f"


def test_equations_in_any_order_give_the_same_graph():
    eqs = [(h, k * x + b), (g, sp.tanh(h) * y), (f, symgrad.sum((g - y) ** 2 + h))]
    listings = set()
    hashes = set()
    for seed in range(4):
        shuffled = list(eqs)
        random.Random(seed).shuffle(shuffled)
        graph = build(shuffled, output=f)
        listings.add(str(graph))
        hashes.add(graph.content_hash())
    assert len(listings) == 1 and len(hashes) == 1


def test_the_listing_names_labels_and_roles():
    graph = build([(h, k * x), (f, sp.exp(h))], wrt=[k])
    assert str(graph).splitlines() == [
        "%0 = input  # k (parameter)",
        "%1 = input  # x (input)",
        "%2 = mul %0, %1  # h",
        "%3 = exp %2  # f",
    ]


def test_the_content_hash_is_the_same_in_every_process():
    """Independent of PYTHONHASHSEED (a compile cache keys on it)."""
    script = textwrap.dedent(
        """
        import sympy as sp, symgrad
        from symgrad.frontend import build
        x, k, h, f = sp.symbols("x k h f")
        eqs = [(h, symgrad.sigmoid(k*x) + sp.Max(x, k, 0)), (f, symgrad.sum(h**2, axis=0))]
        print(build(eqs, shapes={x: ("n", 3)}).content_hash())
        """
    )
    hashes = set()
    for seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                             text=True, check=True, timeout=120)
        hashes.add(out.stdout.strip())
    assert len(hashes) == 1 and re.fullmatch(r"[0-9a-f]{64}", hashes.pop())


def test_different_models_hash_differently():
    assert build(sp.exp(k * x)).content_hash() != build(sp.exp(k * x + 1)).content_hash()
    assert build(sp.exp(k * x)).content_hash() != build(sp.exp(k * x), name="g").content_hash()
    assert build(x * k, wrt=[k]).content_hash() != build(x * k, wrt=[x]).content_hash()


# -- one node per distinct sub-expression -----------------------------------------------------


def test_no_two_nodes_compute_the_same_thing():
    e = sp.exp(k * x)
    graph = build([(h, sp.sin(e) + e * y), (g, sp.cos(e) * e + sp.sin(e)), (f, h * g + e)])
    keys = [(n.op, n.args, n.attrs) for n in graph.nodes if n.op not in ("input", "copy")]
    assert len(keys) == len(set(keys))


def test_shared_subexpressions_become_one_node():
    e = sp.exp(k * x)
    graph = build(symgrad.sum(sp.sin(e) + e * y + sp.cos(1 + e) + sp.tanh(e)))
    (exp,) = _ops(graph, "exp")
    (kx,) = _ops(graph, "mul")[:1]
    assert graph[kx].args == tuple(sorted(graph.inputs[:2]))  # k*x reads k and x
    assert graph[exp].args == (kx,)  # exp reads the node of k*x
    assert len(graph.users()[exp]) >= 4  # sin, *y, 1 + ., tanh all read the one node


def test_a_subexpression_shared_between_equations_is_one_node():
    e = sp.exp(k * x)
    graph = build([(h, sp.sin(e)), (g, sp.cos(e)), (f, h * g)])
    assert len(_ops(graph, "exp")) == 1
    assert len(_ops(graph, "mul")) == 2  # k*x and h*g


def test_a_named_subexpression_is_reused_by_later_equations():
    """An equation's right side written out again later is the named node, not a copy."""
    graph = build([(h, sp.exp(k * x)), (f, sp.exp(k * x) + h)])
    (exp,) = _ops(graph, "exp")
    assert graph.info[exp].label == "h"
    (add,) = _ops(graph, "add")
    assert graph[add].args == (exp, exp)


def test_an_equation_that_renames_another_is_a_copy():
    """b = a: the two labels stay apart (two nodes), the value is the same."""
    graph = build([(h, k * x), (f, h)])
    assert _labels(graph) >= {"h", "f"}
    assert graph[graph.output].op == "copy"
    m = symgrad.compile([(h, k * x), (f, h)])
    assert float(m(k=2.0, x=3.0)) == 6.0


def test_graph_size_is_linear_in_the_dag():
    e = x
    for _ in range(60):
        e = sp.tanh(e) * sp.sin(e)
    assert tree_size(e) > 2**60
    graph = build(e)
    assert len(graph) < 4 * 60


# -- rewrites while building ------------------------------------------------------------------


def test_log_of_sigmoid_is_computed_as_softplus():
    graph = build(sp.log(symgrad.sigmoid(k * x)))
    ops = {graph[i].op for i in reachable(graph)}
    assert "softplus" in ops
    assert "log" not in ops and "sigmoid" not in ops


def test_log_of_sigmoid_across_equations_is_also_stable():
    s = sp.Symbol("s")
    m = symgrad.compile([(s, symgrad.sigmoid(k * x)), (f, symgrad.sum(sp.log(s)))], wrt=[k])
    # exp(-800) underflowing to 0 is the exact float result (and NumPy's default ignores it)
    with np.errstate(all="raise", under="ignore"):
        value, grads = m.value_and_grad(k=1.0, x=np.array([-800.0, 0.0]))
    assert float(value) == pytest.approx(-800.0 - np.log(2), rel=1e-15)
    assert float(grads["k"]) == pytest.approx(-800.0 * 1.0 + 0.0, rel=1e-12)


# -- helpers of the front end ----------------------------------------------------------------


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


# -- user symbols --------------------------------------------------------------------------------


def test_a_real_user_symbol_named_like_another_inputs_code_name_stays_apart():
    """``a b`` is written ``a_b`` in code; the user's own real symbol ``a_b`` is another input."""
    a, b_ = sp.Symbol("a b", real=True), sp.Symbol("a_b", real=True)
    model = symgrad.compile(a**2 + 3 * b_)
    value, grads = model.value_and_grad(**{"a b": 1.0, "a_b": 10.0})
    assert (value, grads) == (31.0, {"a b": 2.0, "a_b": 3.0})


def test_unevaluated_input_is_compiled_as_its_value():
    """SymPy's evaluate(False) leaves ``x*1`` and ``1*x`` in place: they are x, not a node of
    their own (an alias node once lost its adjoint's owner and failed at the first call)."""
    u, v = sp.symbols("u v")
    with sp.evaluate(False):
        e = v**2 * 1 + 1 * (u * (v**2 * 1 + 1 * u) ** 2)
    model = symgrad.compile(e, wrt=[v])
    plain, at = v**2 + u * (v**2 + u) ** 2, {u: 0.5, v: 1.5}
    value, grads = model.value_and_grad(u=0.5, v=1.5)
    assert value == pytest.approx(float(plain.subs(at)), rel=1e-14)
    assert grads["v"] == pytest.approx(float(sp.diff(plain, v).subs(at)), rel=1e-14)
    code = "\n".join(line.split("#")[0] for line in model.source.splitlines())
    assert not re.search(r"(?<![\w.])1\*", code)  # (the header quotes the model as written)


# -- errors: a SymgradError that names the culprit ----------------------------------------------


@pytest.mark.parametrize(
    ("model", "kwargs", "match"),
    [
        ([(h, x), (h, y)], {}, r"h is defined twice"),
        ([(h, g + 1), (g, h + 1)], {}, r"cycle.*h.*g"),
        ([(h, x)], {"output": "zz"}, r"output zz.*defined: h"),
        ([(2 * h, x)], {}, r"left side.*2\*h"),
        ([(g, y), (f, h), (h, x)], {}, r"which equation is the output\? g, f"),
        ([], {}, r"no equations"),
        ([(h, "x + ")], {}, r"h:"),
        (x**2, {"name": "x"}, r"called x.*name="),
        ([(h, k * x), (f, h)], {"wrt": ["kk"]}, r"wrt: kk.*typo"),
        ([(h, k * x), (f, h)], {"wrt": ["h"]}, r"wrt: h is defined by an equation"),
        ([(h, k * x), (f, h)], {"wrt": ["k", "k"]}, r"wrt: k is listed twice"),
        (k * x, {"shapes": {"z": (3,)}}, r"shapes: z is not a symbol"),
        (k * x, {"shapes": {"x": (3.5,)}}, r"shapes: x: .*not a shape"),
        (symgrad.matmul(k, x), {"shapes": {"k": (2, 3), "x": (4,)}}, r"do not align"),
        ([(h, sp.Symbol("x", positive=True) + x)], {}, r"two different symbols.*named x"),
    ],
    ids=["twice", "cycle", "output", "lhs", "ambiguous", "empty", "not-sympy", "name",
         "wrt-typo", "wrt-defined", "wrt-twice", "shapes-unknown", "shapes-bad",
         "shapes-mismatch", "same-name"],
)
def test_errors_name_the_culprit(model, kwargs, match):
    with pytest.raises(symgrad.SymgradError, match=match):
        build(model, **kwargs)
