"""Symbol names are user data: hostile ones compile, run correctly and execute nothing."""

from __future__ import annotations

import ast
import io
import keyword
import tokenize

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import symgrad
from symgrad.names import RESERVED, Namer, sanitize

PAYLOAD = "__import__('os').system('touch PWNED')"
HOSTILE = [
    "np",
    "lambda",
    "value_and_grad",
    "forward",
    "a b",
    'q"uote',
    "it's",
    "new\nline",
    "σ",
    PAYLOAD,
    "'''",
    '"""',
    "\\",
    "# comment",
    "{x}",
    "x\r\ny",
    "None",
    "1x",
    "_sum_to",
    "_sigmoid",
    "",
]
#: The names whose raw text must never appear in code (outside string literals): those with
#: characters that could end a string, a comment or a line, or make a call.
UNSAFE = [n for n in HOSTILE if set(n) & set("'\"\n\r\\#{}() ")]


def _build(names):
    """A model over symbols with the given names, and the same model over plain names."""
    syms = [sp.Symbol(n) for n in names]
    plain = [sp.Symbol(f"p{i}") for i in range(len(names))]

    def expr(ss):
        terms = [(i + 1) * s**2 + sp.sin(s * ss[(i + 1) % len(ss)]) for i, s in enumerate(ss)]
        return symgrad.mean(sp.Add(*terms) + symgrad.sigmoid(ss[0] - ss[-1]))

    return expr(syms), expr(plain)


def _values(names):
    return {n: 0.1 * (i + 1) - 0.7 for i, n in enumerate(names)}


def _outside_strings(source: str) -> list[str]:
    """The text of every token that is not a string literal (comments included)."""
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    kinds = {tokenize.STRING}
    for name in ("FSTRING_START", "FSTRING_MIDDLE", "FSTRING_END"):
        if hasattr(tokenize, name):
            kinds.add(getattr(tokenize, name))
    return [t.string for t in tokens if t.type not in kinds]


def _assert_safe_source(source: str) -> None:
    tree = ast.parse(source)  # parses
    outside = "\n".join(_outside_strings(source))
    for name in UNSAFE:
        assert name not in outside, f"{name!r} appears outside string literals"
    # nothing the generated code relies on is rebound by a user variable
    bound = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
    assert not bound & {"np", "forward", "value_and_grad", "_sum_to", "_sigmoid"}
    # only numpy is imported, and no call can reach __import__, eval, exec, os, ...
    imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert [a.name for n in imports for a in n.names] == ["numpy"]
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert not names & {"__import__", "eval", "exec", "os", "system", "open", "compile"}


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_hostile_input_names(in_tmp):
    expr, plain = _build(HOSTILE)
    model = symgrad.compile(expr)
    reference = symgrad.compile(plain)
    values = _values(HOSTILE)
    value, grads = model.value_and_grad(values)
    want_value, want = reference.value_and_grad(
        {f"p{i}": values[n] for i, n in enumerate(HOSTILE)}
    )
    assert float(value) == pytest.approx(float(want_value), rel=1e-14)
    assert sorted(grads) == sorted(HOSTILE)  # keyed by the original names
    for i, n in enumerate(HOSTILE):
        assert float(grads[n]) == pytest.approx(float(want[f"p{i}"]), rel=1e-13, abs=1e-15)
    assert float(model(**values)) == pytest.approx(float(want_value), rel=1e-14)
    assert set(model.inputs) == set(HOSTILE)
    _assert_safe_source(model.source)
    assert list(in_tmp.iterdir()) == []  # nothing executed


def test_hostile_names_by_symbol_mapping(in_tmp):
    expr, _ = _build(HOSTILE)
    model = symgrad.compile(expr)
    by_symbol = {sp.Symbol(n): v for n, v in _values(HOSTILE).items()}
    by_name = _values(HOSTILE)
    assert float(model(by_symbol)) == float(model(by_name))
    assert model.grad(by_symbol).keys() == model.grad(by_name).keys()
    assert list(in_tmp.iterdir()) == []


@pytest.mark.parametrize("name", HOSTILE, ids=repr)
def test_hostile_equation_names(name, in_tmp):
    """A hostile name as the left side of an intermediate equation and of the output."""
    k, x = sp.symbols("kk xx")
    h, out = sp.Symbol(name), sp.Symbol(name + "_out" if name else "out")
    model = symgrad.compile([(h, sp.exp(k * x)), (out, symgrad.sum(h * 2 + h**2))], wrt=[k])
    X = np.array([0.5, -1.0, 2.0])
    value, grads = model.value_and_grad(kk=0.3, xx=X)
    e = np.exp(0.3 * X)
    assert float(value) == pytest.approx(np.sum(2 * e + e**2), rel=1e-14)
    assert float(grads["kk"]) == pytest.approx(np.sum((2 + 2 * e) * e * X), rel=1e-13)
    assert model.output == out.name
    assert model.chain(k) == f"∂{out.name}/∂{name}·∂{name}/∂kk"
    _assert_safe_source(model.source)
    assert list(in_tmp.iterdir()) == []


@pytest.mark.parametrize("name", HOSTILE, ids=repr)
def test_hostile_output_name(name, in_tmp):
    k, x = sp.symbols("kk xx")
    model = symgrad.compile(symgrad.sum(sp.exp(k * x)), name=name, wrt=[k])
    X = np.array([0.5, -1.0, 2.0])
    value, grads = model.value_and_grad(kk=0.3, xx=X)
    assert float(value) == pytest.approx(np.sum(np.exp(0.3 * X)), rel=1e-14)
    assert float(grads["kk"]) == pytest.approx(np.sum(X * np.exp(0.3 * X)), rel=1e-14)
    assert model.output == name
    _assert_safe_source(model.source)
    assert list(in_tmp.iterdir()) == []


def test_names_that_collide_with_generated_names():
    """User names equal to the compiler's own temporaries and adjoints (t1, dk, dt1, ...)."""
    names = ["t1", "t2", "dk", "k", "dt1", "d", "f", "f_", "dx", "x", "x_2", "v", "size", "sum"]
    syms = [sp.Symbol(n) for n in names]
    expr = symgrad.sum(
        sp.Add(*(s * syms[(i + 3) % len(syms)] for i, s in enumerate(syms)))
        + sp.exp(syms[0] * syms[1] / 10)
    )
    plain = expr.xreplace({s: sp.Symbol(f"p{i}") for i, s in enumerate(syms)})
    model = symgrad.compile(expr, name="out")
    reference = symgrad.compile(plain, name="out")
    values = {n: 0.1 * (i + 1) for i, n in enumerate(names)}
    value, grads = model.value_and_grad(values)
    want_value, want = reference.value_and_grad({f"p{i}": values[n] for i, n in enumerate(names)})
    assert float(value) == pytest.approx(float(want_value), rel=1e-14)
    for i, n in enumerate(names):
        assert float(grads[n]) == pytest.approx(float(want[f"p{i}"]), rel=1e-13)


def test_names_differing_only_by_what_sanitising_removes():
    """'a b', 'a_b', 'a-b' and 'a__b' are four different inputs."""
    names = ["a b", "a_b", "a-b", "a__b", "ﬁ", "fi"]
    syms = [sp.Symbol(n) for n in names]
    expr = sp.Add(*((i + 1) * s**2 for i, s in enumerate(syms)))
    model = symgrad.compile(expr)
    grads = model.grad({n: 1.0 for n in names})
    assert {n: float(g) for n, g in grads.items()} == {
        n: 2.0 * (i + 1) for i, n in enumerate(names)
    }


# -- the name module itself ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", [*HOSTILE, "x[0]", "2x", "ﬁ", "ℌ", "α β", "__init__", "_"], ids=repr
)
def test_fresh_names_are_safe_identifiers(name):
    namer = Namer()
    ident = namer.fresh(name)
    assert ident.isidentifier()
    assert not keyword.iskeyword(ident) and not keyword.issoftkeyword(ident)
    assert ident not in RESERVED
    assert not ident.startswith("_")


def test_fresh_names_are_unique():
    namer = Namer()
    names = ["a b", "a_b", "a-b", "a b", "x", "x", "np", "np_", "np"]
    idents = [namer.fresh(n) for n in names]
    assert len(set(idents)) == len(idents)


def test_sanitize_keeps_readable_names():
    assert sanitize("σ") == "σ"
    assert sanitize("L1") == "L1"
    assert sanitize("a b") == "a_b"


@settings(max_examples=500, deadline=None)
@given(st.text(min_size=1, max_size=12))
def test_the_fast_path_for_plain_names_changes_nothing(name):
    from symgrad.names import _sanitize

    assert sanitize(name) == _sanitize(name)
