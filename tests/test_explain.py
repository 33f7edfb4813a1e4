"""Explanations (symgrad/chains.py explain and its formats): text, LaTeX, Markdown."""

from __future__ import annotations

import re

import numpy as np
import pytest
import sympy as sp
from models import seed_model

import symgrad
from symgrad import chains
from symgrad.errors import SymgradError


@pytest.fixture(scope="module")
def seed():
    return seed_model()


def balanced(latex: str) -> bool:
    """Braces balance once escaped ones (\\{ and \\}) are set aside; \\left/\\right pair up."""
    depth = 0
    for brace in re.sub(r"\\[{}]", "", latex):
        if brace in "{}":
            depth += 1 if brace == "{" else -1
            if depth < 0:
                return False
    return depth == 0 and latex.count(r"\left") == latex.count(r"\right")


# -- text --------------------------------------------------------------------------------------


def test_chain_is_unchanged(seed):
    assert seed.chain("k1") == "∂Loss/∂L2·∂L2/∂σ·∂σ/∂L1·∂L1/∂k1"
    assert seed.chain("b2") == "∂Loss/∂L2·∂L2/∂b2"


def test_text_lists_chain_factors_and_assembled_gradient(seed):
    text = seed.explain()
    block = text.split("\n\n")[1]  # the first parameter's block, as examples/ reads it
    assert block.splitlines() == [
        "∂Loss/∂k1 = ∂Loss/∂L2·∂L2/∂σ·∂σ/∂L1·∂L1/∂k1",
        "    ∂Loss/∂L2 = 2·(L2 − y)/N",
        "    ∂L2/∂σ = k2",
        "    ∂σ/∂L1 = σ·(1 − σ)",
        "    ∂L1/∂k1 = x",
        "  = 2·k2·x·σ·(L2 − y)·(1 − σ)/N",
    ]
    assert text.splitlines()[:4] == [
        "L1 = k1·x + b1",
        "σ = sigmoid(L1)",
        "L2 = k2·σ + b2",
        "Loss = mean((L2 − y)²)",
    ]
    assert "N: the number of elements a mean averages over" in text
    assert seed.explain("text") == text


def test_every_parameter_is_explained(seed):
    text = seed.explain()
    for name in seed.wrt:
        assert f"∂Loss/∂{name} = {seed.chain(name)}" in text


def test_several_paths_are_summed():
    x, k, a, b, f = sp.symbols("x k a b f")
    model = symgrad.compile([(a, k * x), (b, a**2), (f, symgrad.sum(a + b))], wrt=[k])
    text = model.explain()
    assert "∂f/∂k = ∂f/∂b·∂b/∂a·∂a/∂k + ∂f/∂a·∂a/∂k" in text
    assert "    ∂b/∂a = 2·a" in text
    assert text.count("∂a/∂k = x") == 1  # each factor once per parameter
    assert text.endswith("  = 2·a·x + x")  # 1·2a·x + 1·x


def test_a_parameter_the_output_ignores():
    x, k, q, f, u = sp.symbols("x k q f u")
    model = symgrad.compile([(u, q + 1), (f, k * x)], output=f, wrt=[k, q])
    assert "∂f/∂q = 0" in model.explain()
    assert model.explain("latex")
    assert model.explain("markdown")


def test_unknown_format_is_an_error(seed):
    with pytest.raises(SymgradError, match="unknown explanation format 'html'"):
        seed.explain("html")
    with pytest.raises(ValueError):
        seed.explain("LaTeX")


# -- the assembled gradient is the gradient ----------------------------------------------------


def test_assembled_gradient_matches_the_computed_gradient(seed):
    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=7), rng.normal(size=7)
    p = {"k1": 0.7, "b1": -0.2, "k2": 1.3, "b2": 0.4}
    _, grads = seed.value_and_grad(x=X, y=Y, **p)
    L1 = p["k1"] * X + p["b1"]
    σ = 1 / (1 + np.exp(-L1))
    L2 = p["k2"] * σ + p["b2"]
    values = {"x": X, "y": Y, **p, "L1": L1, "σ": σ, "L2": L2, "N": X.size}
    graph = seed.symbolic
    for term in chains.terms(graph):
        expr = term.assembled
        names = {s: graph[s].label if s in graph else s.name for s in expr.free_symbols}
        f = sp.lambdify(list(names), expr, "numpy")
        per_element = f(*(values[n] for n in names.values()))
        label = graph[term.param].label
        np.testing.assert_allclose(np.sum(per_element), grads[label], rtol=1e-12)


# -- LaTeX -------------------------------------------------------------------------------------


def test_latex_uses_partial_fractions(seed):
    latex = seed.explain("latex")
    assert r"\frac{\partial \mathrm{Loss}}{\partial L_{2}}" in latex
    assert r"\frac{\partial \sigma}{\partial L_{1}} &= \sigma \left(1 - \sigma\right)" in latex
    assert latex.startswith(r"\begin{aligned}") and latex.endswith(r"\end{aligned}")
    assert balanced(latex)
    chain = (
        r"\frac{\partial \mathrm{Loss}}{\partial k_{1}} &= "
        r"\frac{\partial \mathrm{Loss}}{\partial L_{2}} \cdot "
        r"\frac{\partial L_{2}}{\partial \sigma} \cdot "
        r"\frac{\partial \sigma}{\partial L_{1}} \cdot "
        r"\frac{\partial L_{1}}{\partial k_{1}}"
    )
    assert chain in latex


@pytest.mark.parametrize(
    ("name", "latex"),
    [
        ("L2", "L_{2}"),
        ("σ", r"\sigma"),
        ("sigma", r"\sigma"),
        ("Δ", r"\Delta"),
        ("Loss", r"\mathrm{Loss}"),
        ("w_10", "w_{10}"),
        ("x", "x"),
        ("a b", r"\mathrm{a\ b}"),
        ("a}{b", r"\mathrm{a\}\{b}"),
        ("50%", r"\mathrm{50\%}"),
        ("back\\slash", r"\mathrm{back\backslash{}slash}"),
    ],
)
def test_latex_names(name, latex):
    assert chains.latex_name(name) == latex


HOSTILE = ["a}b", "{", "}", "\\", "$x$", "&", "#", "^", "_", "~", "%", "new\nline", "a b"]


@pytest.mark.parametrize("name", HOSTILE)
def test_latex_of_hostile_names_is_balanced(name):
    x, k = sp.symbols("x k")
    model = symgrad.compile([(sp.Symbol(name), symgrad.sigmoid(k * x)),
                             (sp.Symbol("f"), sp.Symbol(name) ** 2)])  # fmt: skip
    for fmt in ("latex", "markdown"):
        text = model.explain(fmt)
        assert balanced(text), text
        unescaped = text.replace(r"\$", "")  # a name's $ is escaped; math is opened by ours
        if fmt == "latex":
            assert "$" not in unescaped.replace("$N$", "")
        else:
            assert unescaped.count("$") % 2 == 0


# -- Markdown ----------------------------------------------------------------------------------


def test_markdown_renders_in_a_notebook(seed):
    md = seed.explain("markdown")
    assert md.count("$$") % 2 == 0
    assert balanced(md)
    for name in ["k_{1}", "b_{1}", "k_{2}", "b_{2}"]:
        assert f"**Gradient with respect to ${name}$**" in md
    assert r"- $\frac{\partial \sigma}{\partial L_{1}} = \sigma \left(1 - \sigma\right)$" in md
    assert "&=" not in md.replace(r"\begin{aligned}", "").split("**Gradient")[1]


def test_matrix_factors_are_products_applied_to_the_adjoint():
    X, W, b, y, L, Loss = sp.symbols("X W b y L Loss")
    model = symgrad.compile(
        [(L, symgrad.matmul(X, W) + b), (Loss, symgrad.mean((L - y) ** 2))], wrt=[W, b]
    )
    text = model.explain()
    w_block, b_block = text.split("\n\n")[1:3]
    assert "    ∂L/∂W = Xᵀ @ Ḡ" in w_block  # the product as it really is, applied to Ḡ
    assert w_block.endswith("  = Xᵀ @ (2·(L − y)/N)")  # Ḡ is what the chain brings
    assert "    ∂L/∂b = 1" in b_block
    assert b_block.endswith("  = 2·(L − y)/N")
    latex = model.explain("latex")
    assert balanced(latex) and r"X^{T} \bar{G}" in latex


def test_a_mean_along_an_axis_divides_by_the_number_it_averages():
    """N is the number of elements averaged, for a mean along an axis too (not size/size = 1)."""
    x, k, y, r, loss = sp.symbols("x k y R Loss")
    for model, factor in (
        (symgrad.compile(symgrad.sum(symgrad.mean(k * x, axis=0)), wrt=[k]), "∂t2/∂t1 = 1/N"),
        (symgrad.compile([sp.Eq(r, symgrad.mean((k * x - y) ** 2, axis=0)),
                          sp.Eq(loss, symgrad.sum(r))], wrt=[k]), "∂R/∂k = 2·x·(k·x − y)/N"),
    ):
        text = model.explain()
        assert factor in text, text
        assert "N: the number of elements a mean averages over" in text


def test_latex_writes_a_reduction_along_an_axis_with_its_axis():
    x, k = sp.symbols("x k")
    latex = symgrad.compile(symgrad.sum(symgrad.mean(k * x, axis=0)), wrt=[k]).explain("latex")
    assert r"\operatorname{mean}\left(t_{1},\ \text{axis}=0\right)" in latex
    assert "False" not in latex


def test_internal_operations_read_as_a_teacher_writes_them():
    """sinc's derivative and x**y's derivative in y are explained as formulas, not as the
    operations or branches the code computes them with."""
    x, y, k = sp.symbols("x y k")
    sinc = symgrad.compile(symgrad.sum(sp.sinc(k * x)), wrt=[k]).explain()
    assert "(cos(t1) − sinc(t1))/t1" in sinc and "sinc_derivative" not in sinc
    power = symgrad.compile(symgrad.sum(x**y), wrt=[y]).explain()
    assert "∂f/∂y = x^y·log(x)" in power and "Piecewise" not in power
