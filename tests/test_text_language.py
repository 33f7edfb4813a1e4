"""The text language (the ``symgrad`` command, model files) means what the Python API means.

Each row of ``TABLE`` is one model written twice, as text and in Python. The text goes through
the command (``symgrad compile TEXT -o module.py``, run in this process through
``symgrad.cli.main``, exactly what ``python -m symgrad`` runs); the emitted module's value must
equal the Python model's value and NumPy's own evaluation of the formula, and its gradient must
equal central finite differences of that NumPy formula.
"""

from __future__ import annotations

import importlib.util
import inspect
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import symgrad
from symgrad import parsing
from symgrad.cli import main
from symgrad.errors import SymgradError

x, y, t, w, v, X, Z, A = sp.symbols("x y t w v X Z A")

RNG = np.random.default_rng(14)
DATA = {
    "x": np.array([0.3, -1.2, 2.1, 0.7, -0.4]),
    "y": np.array([1.0, -1.0, 1.0, -1.0]),
    "t": 0.25,
    "w": RNG.normal(size=3),
    "v": RNG.normal(size=4),
    "X": RNG.normal(size=(4, 3)),
    "Z": RNG.normal(size=(4, 3)),
    "A": RNG.normal(size=(3, 3)),
}


def _lse(z, axis=None):
    m = np.max(z, axis=axis, keepdims=True)
    return np.squeeze(m, axis=axis) + np.log(np.sum(np.exp(z - m), axis=axis))


def _softmax(z, axis=-1):
    e = np.exp(z - np.max(z, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def _softplus(z):
    return np.logaddexp(0.0, z)


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


@dataclass(frozen=True)
class Row:
    text: str
    python: Callable[[], sp.Expr]  # the same model through the Python API
    numpy: Callable[..., float]  # the same formula in NumPy, by input name
    shapes: tuple[str, ...] = ()  # --shape options


TABLE = [
    # max, min, sum and mean reduce, as symgrad.max, -symgrad.max(-.), symgrad.sum, .mean do
    Row("max(x)", lambda: symgrad.max(x), lambda x: np.max(x)),
    Row("min(x)", lambda: -symgrad.max(-x), lambda x: np.min(x)),
    Row("sum(x)", lambda: symgrad.sum(x), lambda x: np.sum(x)),
    Row("mean(x)", lambda: symgrad.mean(x), lambda x: np.mean(x)),
    Row("max(x*t) + min(x - t)", lambda: symgrad.max(x * t) - symgrad.max(-(x - t)),
        lambda x, t: np.max(x * t) + np.min(x - t)),
    # Max and Min are elementwise, as sympy.Max and sympy.Min are
    Row("sum(Max(x, t))", lambda: symgrad.sum(sp.Max(x, t)),
        lambda x, t: np.sum(np.maximum(x, t))),
    Row("sum(Min(x, t, 0.5*x))", lambda: symgrad.sum(sp.Min(x, t, 0.5 * x)),
        lambda x, t: np.sum(np.minimum(np.minimum(x, t), 0.5 * x))),
    # axis= and keepdims=
    Row("sum(max(Z, axis=0))", lambda: symgrad.sum(symgrad.max(Z, axis=0)),
        lambda Z: np.sum(np.max(Z, axis=0))),
    Row("sum(min(Z, axis=1, keepdims=True) * Z)",
        lambda: symgrad.sum(-symgrad.max(-Z, axis=1, keepdims=True) * Z),
        lambda Z: np.sum(np.min(Z, axis=1, keepdims=True) * Z)),
    Row("sum(sum(Z, axis=-1)**2)", lambda: symgrad.sum(symgrad.sum(Z, axis=-1) ** 2),
        lambda Z: np.sum(np.sum(Z, axis=-1) ** 2)),
    Row("mean(Z, axis=(0, 1))", lambda: symgrad.mean(Z, axis=(0, 1)), lambda Z: np.mean(Z)),
    Row("sum((Z - mean(Z, axis=0, keepdims=True))**2)",
        lambda: symgrad.sum((Z - symgrad.mean(Z, axis=0, keepdims=True)) ** 2),
        lambda Z: np.sum((Z - np.mean(Z, axis=0, keepdims=True)) ** 2)),
    Row("sum(x, 0)", lambda: symgrad.sum(x, 0), lambda x: np.sum(x, 0)),
    # logsumexp, softmax, log_softmax
    Row("logsumexp(x)", lambda: symgrad.logsumexp(x), lambda x: _lse(x)),
    Row("sum(logsumexp(Z, axis=1))", lambda: symgrad.sum(symgrad.logsumexp(Z, axis=1)),
        lambda Z: np.sum(_lse(Z, axis=1))),
    Row("sum(softmax(Z) * Z)", lambda: symgrad.sum(symgrad.softmax(Z) * Z),
        lambda Z: np.sum(_softmax(Z) * Z)),
    Row("sum(softmax(Z, axis=0) * Z)", lambda: symgrad.sum(symgrad.softmax(Z, axis=0) * Z),
        lambda Z: np.sum(_softmax(Z, axis=0) * Z)),
    Row("mean(log_softmax(Z, axis=1) * X)",
        lambda: symgrad.mean(symgrad.log_softmax(Z, axis=1) * X),
        lambda Z, X: np.mean((Z - _lse(Z, axis=1)[:, None]) * X)),
    # matmul and transpose (axes=)
    Row("sum(matmul(X, w)**2)", lambda: symgrad.sum(symgrad.matmul(X, w) ** 2),
        lambda X, w: np.sum((X @ w) ** 2)),
    Row("sum(v * matmul(X, w))", lambda: symgrad.sum(v * symgrad.matmul(X, w)),
        lambda v, X, w: np.sum(v * (X @ w))),
    Row("sum(matmul(transpose(X), Z) * A)",
        lambda: symgrad.sum(symgrad.matmul(symgrad.transpose(X), Z) * A),
        lambda X, Z, A: np.sum((X.T @ Z) * A)),
    Row("sum(matmul(transpose(Z, axes=(1, 0)), X))",
        lambda: symgrad.sum(symgrad.matmul(symgrad.transpose(Z, axes=(1, 0)), X)),
        lambda Z, X: np.sum(Z.T @ X)),
    Row("mean(softplus(-y*matmul(X, w)))",
        lambda: symgrad.mean(symgrad.softplus(-y * symgrad.matmul(X, w))),
        lambda y, X, w: np.mean(_softplus(-y * (X @ w)))),
    # elementwise functions
    Row("mean(sigmoid(x) + softplus(-x) + relu(x - t))",
        lambda: symgrad.mean(symgrad.sigmoid(x) + symgrad.softplus(-x) + symgrad.relu(x - t)),
        lambda x, t: np.mean(_sigmoid(x) + _softplus(-x) + np.maximum(x - t, 0))),
    Row("sum(x^2 + abs(x) + Abs(t*x) + exp(-x) + log(1 + x**2) + sqrt(1 + x**2) + tanh(x))",
        lambda: symgrad.sum(x**2 + abs(x) + abs(t * x) + sp.exp(-x) + sp.log(1 + x**2)
                            + sp.sqrt(1 + x**2) + sp.tanh(x)),
        lambda x, t: np.sum(x**2 + np.abs(x) + np.abs(t * x) + np.exp(-x) + np.log(1 + x**2)
                            + np.sqrt(1 + x**2) + np.tanh(x))),
    Row("sum(sin(x) + cos(x) + tan(x/4) + sinh(x) + cosh(x) + atan(x) + asin(x/3) + acos(x/3))",
        lambda: symgrad.sum(sp.sin(x) + sp.cos(x) + sp.tan(x / 4) + sp.sinh(x) + sp.cosh(x)
                            + sp.atan(x) + sp.asin(x / 3) + sp.acos(x / 3)),
        lambda x: np.sum(np.sin(x) + np.cos(x) + np.tan(x / 4) + np.sinh(x) + np.cosh(x)
                         + np.arctan(x) + np.arcsin(x / 3) + np.arccos(x / 3))),
    Row("sum(Piecewise((x**2, x > 0), (-t*x, True)) + sign(x)*x + Heaviside(x)*t)",
        lambda: symgrad.sum(sp.Piecewise((x**2, x > 0), (-t * x, True)) + sp.sign(x) * x
                            + sp.Heaviside(x) * t),
        lambda x, t: np.sum(np.where(x > 0, x**2, -t * x) + np.sign(x) * x
                            + np.heaviside(x, 0.5) * t)),
    Row("E*pi*t + log(t, 2)", lambda: sp.E * sp.pi * t + sp.log(t, 2),
        lambda t: np.e * np.pi * t + np.log2(t)),
    # declared shapes (--shape), passed to compile's shapes=
    Row("sum(matmul(X, w))", lambda: symgrad.sum(symgrad.matmul(X, w)),
        lambda X, w: np.sum(X @ w), ("X=n,3", "w=3")),
    Row("sum(max(Z, axis=1) * v)", lambda: symgrad.sum(symgrad.max(Z, axis=1) * v),
        lambda Z, v: np.sum(np.max(Z, axis=1) * v), ("Z=None,3", "v=4")),
]


def load(path: Path):
    spec = importlib.util.spec_from_file_location(f"text_{abs(hash(str(path)))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def emit(text: str, path: Path, *options: str) -> object:
    """``symgrad compile TEXT -o path OPTIONS``, then the emitted module."""
    assert main(["compile", text, "-o", str(path), *options]) == 0
    return load(path)


def finite_differences(f, inputs: dict, name: str, h: float = 1e-6) -> np.ndarray:
    value = np.asarray(inputs[name], dtype=float)
    grad = np.zeros_like(value)
    for i in np.ndindex(value.shape):
        up, down = value.copy(), value.copy()
        up[i] += h
        down[i] -= h
        grad[i] = (f(**{**inputs, name: up}) - f(**{**inputs, name: down})) / (2 * h)
    return grad


@pytest.mark.parametrize("row", TABLE, ids=[r.text for r in TABLE])
def test_the_text_means_what_python_means(row, tmp_path, capsys):
    module = emit(row.text, tmp_path / "model.py",
                  *itertools.chain.from_iterable(("--shape", s) for s in row.shapes))
    names = list(inspect.signature(module.value_and_grad).parameters)
    assert sorted(names) == sorted(inspect.signature(row.numpy).parameters)
    inputs = {n: DATA[n] for n in names}
    expected = row.numpy(**inputs)

    value, grads = module.value_and_grad(**inputs)
    np.testing.assert_allclose(value, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(module.forward(**inputs), expected, rtol=1e-12, atol=1e-12)
    python = symgrad.compile(row.python())
    np.testing.assert_allclose(value, python(**inputs), rtol=1e-12, atol=1e-12)
    assert sorted(grads) == sorted(names)
    for name in names:
        assert np.shape(grads[name]) == np.shape(inputs[name]), name
        np.testing.assert_allclose(
            grads[name], finite_differences(row.numpy, inputs, name), rtol=1e-5, atol=1e-7,
            err_msg=f"d/d{name} of {row.text}",
        )
    # the text is read as the very expression Python builds
    assert parsing.parse_expression(row.text) == row.python()


def test_max_reduces_and_Max_is_elementwise(tmp_path):
    """The issue's example: the text max(x) is 5 for x = [1, 5, 2], as symgrad.max(x) is."""
    data = np.array([1.0, 5.0, 2.0])
    assert emit("max(x)", tmp_path / "a.py").forward(x=data) == 5.0
    assert emit("min(x)", tmp_path / "b.py").forward(x=data) == 1.0
    np.testing.assert_array_equal(emit("Max(x, 2)", tmp_path / "c.py").forward(x=data), [2, 5, 2])
    np.testing.assert_array_equal(emit("Min(x, 2)", tmp_path / "d.py").forward(x=data), [1, 2, 2])


def test_equations_and_model_files_read_keywords(tmp_path):
    model = tmp_path / "model.txt"
    model.write_text(
        "h = sum(X, axis=1, keepdims=True)   # a row's total, kept as a column\n"
        "p = softmax(h * Z, axis=0)\n"
        "Loss = mean(max(p, axis=0) - min(p, axis=0))\n",
        encoding="utf-8",
    )
    module = emit("Loss", tmp_path / "m.py", "--file", str(model))  # EXPRESSION over a file
    Xd, Zd = DATA["X"], DATA["Z"]
    p = _softmax(Xd.sum(axis=1, keepdims=True) * Zd, axis=0)
    expected = np.mean(p.max(axis=0) - p.min(axis=0))
    np.testing.assert_allclose(module.forward(X=Xd, Z=Zd), expected, rtol=1e-12)
    equations = parsing.read_equations(model)
    assert [lhs.name for lhs, _ in equations] == ["h", "p", "Loss"]
    assert equations[0][1] == symgrad.sum(X, axis=1, keepdims=True)


@pytest.mark.parametrize(
    ("text", "python"),
    [
        ("f = sum(x, axis=0)", lambda: symgrad.sum(x, axis=0)),
        ("f=sum(x,axis=0)", lambda: symgrad.sum(x, axis=0)),
        ("f = mean(Z, axis=(0, 1), keepdims=True)",
         lambda: symgrad.mean(Z, axis=(0, 1), keepdims=True)),
        ("f = Piecewise((x, x >= 0), (0, True))", lambda: sp.Piecewise((x, x >= 0), (0, True))),
        ("f = x^2 + y", lambda: x**2 + y),  # ^ binds as ** does
        ("f = -x^2^y*3", lambda: -(x ** (2**y)) * 3),
    ],
)
def test_an_equals_sign_inside_parentheses_is_a_keyword(text, python):
    assert parsing.parse_equation(text) == (sp.Symbol("f"), python())
    assert parsing.is_equation(text)
    assert not parsing.is_equation(text.split("=", 1)[1])


def test_errors_point_at_the_users_text():
    """Columns count the text as written (``^`` and non-ASCII names included)."""
    with pytest.raises(SymgradError) as caught:
        parsing.parse_expression("σ^2 + foo(σ)")
    assert "at column 7 ('foo')" in str(caught.value)
    with pytest.raises(SymgradError) as caught:
        parsing.parse_expression("x^2 + sum(x, axis=y)")
    assert "at column 19 ('y')" in str(caught.value)
    with pytest.raises(SymgradError) as caught:
        parsing.parse_expression("σ^2 + )")
    assert "at column 7 (')')" in str(caught.value)


def test_declared_shapes_are_checked_at_compile_time(capsys):
    assert main(["compile", "sum(matmul(X, w))", "--shape", "X=n,3", "--shape", "w=4"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "(None, 3) and (4,) do not align" in err[0]
    assert main(["compile", "sum(x, axis=1)", "--shape", "x=5"]) == 2
    assert "axis 1" in capsys.readouterr().err


def test_declared_shapes_reach_the_code(tmp_path):
    """``--shape t=`` declares a scalar: the model is the one Python compiles with shapes=."""
    module = emit("sum(x*t)", tmp_path / "m.py", "--shape", "t=", "--shape", "x=n")
    python = symgrad.compile(symgrad.sum(x * t), shapes={"t": (), "x": (None,)})
    value, grads = module.value_and_grad(x=DATA["x"], t=0.5)
    assert np.shape(grads["t"]) == ()
    np.testing.assert_allclose(grads["t"], np.sum(DATA["x"]), rtol=1e-13)
    np.testing.assert_allclose(value, python(x=DATA["x"], t=0.5), rtol=1e-13)


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("foo(x)", ["foo is not a function symgrad knows", "matmul", "softmax"]),
        ("sum(x, axes=0)", ["sum takes the keywords axis=, keepdims=, not axes="]),
        ("sigmoid(x, axis=0)", ["sigmoid takes no keyword arguments, not axis="]),
        ("transpose(A, axis=0)", ["transpose takes the keywords axes=, not axis="]),
        ("softmax(Z, keepdims=True)", ["softmax takes the keywords axis=, not keepdims="]),
        ("max(a, b)", ["'b'", "axis= takes an integer", "use Max(a, b)"]),
        ("min(a, b)", ["use Min(a, b)"]),
        ("sum(x, axis=1.5)", ["'1.5'", "axis= takes an integer"]),
        ("sum(x, axis=k)", ["axis= takes an integer", "not k"]),
        ("sum(x, axis=(0, 0))", ["names an axis twice"]),
        ("sum(x, keepdims=1)", ["keepdims= takes True or False, not 1"]),
        ("softmax(Z, axis=None)", ["softmax's axis= takes an integer, not None"]),
        ("sum(x, 0, axis=0)", ["axis twice"]),
        ("sum(x, 0, True, 1)", ["sum takes 1 argument and the options axis, keepdims"]),
        ("matmul(A)", ["matmul needs 2 arguments"]),
        ("matmul(A, B, C)", ["matmul takes 2 arguments", "'C'"]),
        ("exp()", ["exp needs 1 argument"]),
        ("sum(x, **k)", ["unpacking"]),
        ("Piecewise(x)", ["(value, condition) pair"]),
        ("x @ y", ["use matmul(A, B)"]),
        ("0 < x < 1", ["chained comparison"]),
        ("1j*x", ["complex numbers"]),
        ("None*x", ["None is not a value"]),
        ("sum(x, axis=0", ["never closed"]),
        ("min", ["min is a function: call it"]),
    ],
)
def test_bad_text_is_a_symgrad_error_naming_it(text, fragments):
    with pytest.raises(SymgradError) as caught:
        parsing.parse_expression(text)
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_text_is_never_run(tmp_path, monkeypatch):
    """Python's own machinery is out of reach: no attribute, no dunder, no unknown call."""
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "ran"
    for text in [
        f"__import__('pathlib').Path('{marker}').touch()",
        "sum.__globals__",
        "sigmoid(x).func.__init__",
        f"sum(x, axis=__import__('os').system('touch {marker}'))",
        f"sum(x, keepdims=open('{marker}', 'w'))",
        "Symbol('x')",
        "__builtins__",
        "eval('1')",
    ]:
        with pytest.raises(SymgradError):
            parsing.parse_expression(text)
    assert not marker.exists()


def test_the_text_language_knows_every_function_compile_computes():
    """What the refusal of an unknown function lists as computable can be written as text."""
    import re

    from symgrad.ops import SUPPORTED

    names = [n for n in re.findall(r"[A-Za-z_][A-Za-z_0-9]*", SUPPORTED)
             if n not in ("and", "symgrad", "s")]
    assert "erf" in names and "log_softmax" in names
    missing = [n for n in names if n not in parsing.FUNCTIONS]
    assert missing == []


@pytest.mark.parametrize(
    ("text", "reference"),
    [("sum(erf(x) + erfc(x))", lambda x: np.sum([math.erf(v) + math.erfc(v) for v in x])),
     ("sum(atan2(x, 2) + asinh(x) + atanh(x/2))",
      lambda x: np.sum(np.arctan2(x, 2) + np.arcsinh(x) + np.arctanh(x / 2))),
     ("sum(acosh(x + 2) + floor(x) + ceiling(x))",
      lambda x: np.sum(np.arccosh(x + 2) + np.floor(x) + np.ceil(x))),
     ("sum(sinc(x))", lambda x: np.sum(np.sinc(x / np.pi)))],
)
def test_the_newer_functions_mean_what_they_mean_in_python(text, reference):
    model = symgrad.compile(parsing.parse_expression(text))
    x = np.array([-0.7, 0.3, 1.2])
    assert float(model(x=x)) == pytest.approx(reference(x), rel=1e-13)
