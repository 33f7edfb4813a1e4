"""Chains for any model: a single expression, a deep one, and an equation
with structure of its own are explained through named intermediate nodes, every factor
written out.

The explanation is checked as a reader would use it: the printed definitions are evaluated in
order, each printed factor is evaluated from them, the printed chain combines the factors, and
the result summed over the data must be the gradient by central finite differences of the
model's value. A wrong factor, a wrong definition or a missing path fails.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import symgrad
from symgrad import chains, render

x, y, k, b, c = sp.symbols("x y k b c")
h, f = sp.symbols("h f")
ROOT = Path(__file__).resolve().parents[1]

# -- reading an explanation back ---------------------------------------------------------------

_SUPERSCRIPT = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹", "0123456789")
_LINK = re.compile(r"∂([^/·()+ ]+)/∂([^/·()+ ]+)")


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


FUNCTIONS = {
    "sigmoid": _sigmoid,
    "softplus": lambda z: np.logaddexp(0, z),
    "tanh": np.tanh,
    "exp": np.exp,
    "log": np.log,
    "sin": np.sin,
    "cos": np.cos,
    "sqrt": np.sqrt,
    "mean": np.mean,
    "sum": np.sum,
}


def python(text: str) -> str:
    """A printed formula as Python: ``2·(t3 − y)²/N`` is ``2*(t3 - y)**2/N``."""
    text = re.sub(r"[⁰¹²³⁴⁵⁶⁷⁸⁹]+", lambda m: "**" + m.group().translate(_SUPERSCRIPT), text)
    return text.replace("·", "*").replace("−", "-").replace("^", "**")


def read_explanation(text: str, output: str):
    """The printed definitions, and per parameter its chain and its factors, as text."""
    blocks = text.split("\n\n")
    definitions = [line.split(" = ", 1) for line in blocks[0].splitlines()]
    params = {}
    for block in blocks[1:]:
        lines = block.splitlines()
        if not lines[0].startswith(f"∂{output}/∂"):
            continue  # the note on N
        head, chain = lines[0].split(" = ", 1)
        param = head.removeprefix(f"∂{output}/∂")
        factors, assembled = {}, None
        if not _LINK.search(chain):  # one link, written as its factor: ∂f/∂c = t4/N
            chain, factors = head, {(output, param): chain}
        for line in lines[1:]:
            if line.startswith("    ∂"):
                link, formula = line.strip().split(" = ", 1)
                a, b_ = _LINK.fullmatch(link).groups()
                factors[(a, b_)] = formula
            else:
                assembled = line.removeprefix("  = ")
        params[param] = (chain, factors, assembled)
    return definitions, params


def check_explanation(model: symgrad.CompiledModel, inputs: dict, rtol: float = 1e-6) -> str:
    """Evaluate the printed explanation of ``model`` at ``inputs`` and compare every
    parameter's chain with central finite differences of the model's value."""
    inputs = {name: inputs[name] for name in model.inputs}
    text = model.explain()
    assert "terms" not in text, text
    definitions, params = read_explanation(text, model.output)
    n = np.size(inputs["x"])
    values = {**FUNCTIONS, **inputs, "N": n}
    for name, formula in definitions:  # the definitions compute the model
        values[name] = eval(python(formula), {}, values)
    np.testing.assert_allclose(values[model.output], model(**inputs), rtol=1e-12)
    assert set(params) == set(model.wrt)
    for param, (chain, factors, assembled) in params.items():
        links = set(_LINK.findall(chain))
        assert links == set(factors), (chain, factors)  # every link has its factor, written out
        factor_values = {link: eval(python(text), {}, values) for link, text in factors.items()}
        product = eval(
            _LINK.sub(lambda m: f"F[{m.groups()!r}]", chain).replace("·", "*"),
            {},
            {"F": factor_values},
        )
        step = 1e-6
        up = model(**{**inputs, param: inputs[param] + step})
        down = model(**{**inputs, param: inputs[param] - step})
        finite = (up - down) / (2 * step)
        np.testing.assert_allclose(np.sum(product), finite, rtol=rtol, atol=1e-9, err_msg=chain)
        if assembled is not None:  # the gradient the factors assemble into, as printed
            value = eval(python(assembled), {}, values)
            np.testing.assert_allclose(np.sum(value), np.sum(product), rtol=1e-9, atol=1e-12)
    return text


def data(seed: int = 0, n: int = 7) -> dict:
    rng = np.random.default_rng(seed)
    return {"x": rng.uniform(-1, 1, n), "y": rng.uniform(-1, 1, n), "k": 0.7, "b": -0.3,
            "c": 1.1}  # fmt: skip


def nested_sigmoids(layers: int) -> sp.Expr:
    e = x
    for _ in range(layers):
        e = symgrad.sigmoid(k * e + b)
    return symgrad.mean((e - y) ** 2)


def sin_cos(depth: int) -> sp.Expr:
    e = k * x
    for _ in range(depth):
        e = sp.sin(e) + sp.cos(e)
    return symgrad.sum(e)


def quadratic_map(depth: int) -> sp.Expr:
    """Arithmetic only, nested deep: no function to cut at, only its size."""
    e = k * x
    for _ in range(depth):
        e = e**2 / 2 + b * e - c / 4
    return symgrad.mean(e)


SINGLE_EXPRESSIONS = {
    "logistic regression": symgrad.mean((symgrad.sigmoid(k * x + b) - y) ** 2),
    "two functions": symgrad.sum(sp.tanh(k * x) * sp.exp(-b * x)),
    "three deep": symgrad.mean(sp.log(1 + sp.exp(c * symgrad.sigmoid(k * x + b)))),
    "softplus of a product": symgrad.mean(symgrad.softplus(-y * (k * x + b)) * c),
    "two paths": symgrad.mean(symgrad.sigmoid(k * x) + sp.tanh(k * x)),
    "shared parameter, 3 layers": nested_sigmoids(3),
    "shared parameter, 8 layers": nested_sigmoids(8),
    "sin and cos, 4 deep": sin_cos(4),
    "arithmetic, 8 deep": quadratic_map(8),
}


# -- single expressions ------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SINGLE_EXPRESSIONS))
def test_every_printed_factor_multiplies_into_the_gradient(name):
    expr = SINGLE_EXPRESSIONS[name]
    wrt = sorted(expr.free_symbols & {k, b, c}, key=str)
    model = symgrad.compile(expr, wrt=wrt)
    text = check_explanation(model, data())
    # no tautology: k (inside a function in every model) is reached through intermediate nodes
    assert model.chain(k).count("∂") >= 4
    assert text == model.explain()  # (deterministic)


def test_the_issues_model_is_explained_through_its_nodes():
    model = symgrad.compile(symgrad.mean((symgrad.sigmoid(k * x + b) - y) ** 2), wrt=[k, b])
    text = model.explain()
    definitions, params = read_explanation(text, "f")
    rhs = dict(definitions)
    inner = next(name for name, formula in definitions if formula == "k·x + b")
    outer = next(name for name, formula in definitions if formula == f"sigmoid({inner})")
    residual = next(name for name, formula in definitions if formula == f"{outer} − y")
    assert rhs["f"] == f"mean({residual}²)"
    assert model.chain(k) == f"∂f/∂{residual}·∂{residual}/∂{outer}·∂{outer}/∂{inner}·∂{inner}/∂k"
    _, factors, _ = params["k"]
    assert factors[(outer, inner)] == f"{outer}·(1 − {outer})"  # the node's name, not sigmoid(…)
    assert factors[(inner, "k")] == "x"
    labels = {n.label for n in model.symbolic}
    assert {inner, outer} <= labels  # the names are those of the graph (the diagrams')
    check_explanation(model, data(1))


def test_long_factors_are_written_with_node_names():
    model = symgrad.compile(nested_sigmoids(5), wrt=[k, b])
    text = check_explanation(model, data(2))
    factor_lines = [line for line in text.splitlines() if line.startswith("    ∂")]
    assert factor_lines
    assert not any("sigmoid(" in line for line in factor_lines), text


def test_a_parameter_reaching_the_output_by_two_paths_lists_both():
    model = symgrad.compile(symgrad.mean(symgrad.sigmoid(k * x) + sp.tanh(k * x)), wrt=[k])
    products = model.chain(k).split(" + ")
    assert len(products) == 2
    middles = []
    for product in products:
        links = _LINK.findall(product)
        assert links[0][0] == "f" and links[-1][1] == "k"
        assert all(a[1] == b_[0] for a, b_ in itertools.pairwise(links))  # a path
        middles.append(links[0][1])
    assert middles[0] != middles[1]  # through sigmoid on one, tanh on the other
    check_explanation(model, data(3))


def test_many_paths_are_written_factored_and_stay_linear():
    """2**depth paths (sin and cos at every level) are written as a product of sums through
    the nodes every path passes: the explanation grows with the depth, not the paths."""
    lengths = {}
    for depth in (4, 8):
        model = symgrad.compile(sin_cos(depth), wrt=[k])
        assert "paths in all" not in model.chain(k)
        assert model.chain(k).count("(") >= depth  # a sum per level
        lengths[depth] = len(check_explanation(model, data(4)))
    assert lengths[8] < 2.5 * lengths[4], lengths


def test_thirty_nested_sigmoids():
    """A deep model is explained in full, every factor by node names, in reasonable length."""
    ws, cs = sp.symbols("w0:30"), sp.symbols("c0:30")
    e = x
    for w, c_ in zip(ws, cs, strict=True):
        e = symgrad.sigmoid(w * e + c_)
    model = symgrad.compile(symgrad.mean((e - y) ** 2), wrt=[ws[0], cs[29]])
    inputs = {**data(5), **{w.name: 0.9 for w in ws}, **{c_.name: 0.1 for c_ in cs}}
    del inputs["k"], inputs["b"], inputs["c"]
    text = check_explanation(model, inputs)
    assert len(text) < 6000
    assert max(len(line) for line in text.splitlines()) < 1000
    assert model.chain(ws[0]).count("·") == 61  # the residual, then every layer: 62 links


def test_thirty_nested_sigmoids_sharing_one_parameter():
    model = symgrad.compile(nested_sigmoids(30), wrt=[k, b])
    text = check_explanation(model, data(6), rtol=1e-5)
    assert len(text) < 20_000
    longer = symgrad.compile(nested_sigmoids(60), wrt=[k, b]).explain()
    assert "terms" not in longer and len(longer) < 2.5 * len(text)


def test_arithmetic_too_large_for_one_part_is_cut():
    model = symgrad.compile(quadratic_map(12), wrt=[k, b, c])
    text = check_explanation(model, data(7))
    definitions, _ = read_explanation(text, "f")
    assert len(definitions) >= 3
    assert max(len(formula) for _, formula in definitions) < 200


# -- equations with structure of their own ------------------------------------------------------


def test_an_equation_that_nests_functions_is_cut_like_an_expression():
    inner = symgrad.sigmoid(k * symgrad.sigmoid(b * x + k) + c)
    model = symgrad.compile([(h, inner), (f, symgrad.mean((h - y) ** 2))], wrt=[k, b, c])
    text = check_explanation(model, data(8))
    definitions, params = read_explanation(text, "f")
    assert [name for name, _ in definitions][-2:] == ["h", "f"]
    assert len(definitions) > 2  # h's own structure is named
    chain, factors, _ = params["b"]
    assert chain.startswith("∂f/∂h·∂h/∂")
    assert not any("sigmoid(" in formula for formula in factors.values())


def test_an_equation_model_keeps_its_own_granularity():
    """Equations that are one step each are explained through the user's names only."""
    L1, s, L2, Loss = sp.symbols("L1 σ L2 Loss")
    model = symgrad.compile(
        [(L1, k * x + b), (s, symgrad.sigmoid(L1)), (L2, c * s), (Loss, symgrad.mean((L2 - y)**2))],
        wrt=[k, b, c],
    )
    assert model.chain(k) == "∂Loss/∂L2·∂L2/∂σ·∂σ/∂L1·∂L1/∂k"
    definitions, _ = read_explanation(model.explain(), "Loss")
    assert [name for name, _ in definitions] == ["L1", "σ", "L2", "Loss"]
    check_explanation(model, data(9))


# -- the other formats and the command ----------------------------------------------------------


@pytest.mark.parametrize("fmt", ["latex", "markdown"])
def test_latex_and_markdown_show_the_same_chain(fmt):
    model = symgrad.compile(nested_sigmoids(6), wrt=[k, b])
    written = model.explain(fmt)
    for p in ("k", "b"):
        for a, b_ in _LINK.findall(model.chain(p)):
            frac = rf"\frac{{\partial {chains.latex_name(a)}}}{{\partial {chains.latex_name(b_)}}}"
            assert frac in written
    assert written.count(r"\left(") == written.count(r"\right)")
    assert "terms" not in written


def test_the_command_prints_chains_through_intermediate_nodes():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "symgrad", "compile", "mean((sigmoid(k*x + b) - y)**2)",
         "--wrt", "k,b", "--no-code"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    first = done.stdout.splitlines()[0]
    assert first.startswith("∂f/∂k = ∂f/∂t") and first.endswith("/∂k") and first.count("·") == 3


def test_the_collapsed_diagram_goes_through_the_same_nodes():
    """The backward diagram of a model with a cut equation labels its edges with the
    explanation's links and factors, by the same names."""
    inner = symgrad.sigmoid(k * symgrad.sigmoid(b * x + k) + c)
    model = symgrad.compile([(h, inner), (f, symgrad.mean((h - y) ** 2))], wrt=[k, b, c])
    dot = model.to_dot("backward", group="collapse")
    _, params = read_explanation(model.explain(), "f")
    for _, factors, _ in params.values():
        for (a, b_), factor in factors.items():
            assert render.escape(f"∂{a}/∂{b_} = {factor}") in dot
    forward = model.to_dot("forward", group="collapse")
    for name, _ in read_explanation(model.explain(), "f")[0]:
        assert f"<b>{render.escape(name)}</b>" in forward
