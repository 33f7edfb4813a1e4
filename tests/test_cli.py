"""The ``symgrad`` command (symgrad/cli.py) and model text (symgrad/parsing.py).

The command runs as a user runs it: ``python -m symgrad`` in a subprocess.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import symgrad
from symgrad import parsing
from symgrad.errors import SymgradError

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is missing")

SEED_CHAINS = [
    "∂Loss/∂k1 = ∂Loss/∂L2·∂L2/∂σ·∂σ/∂L1·∂L1/∂k1",
    "∂Loss/∂b1 = ∂Loss/∂L2·∂L2/∂σ·∂σ/∂L1·∂L1/∂b1",
    "∂Loss/∂k2 = ∂Loss/∂L2·∂L2/∂k2",
    "∂Loss/∂b2 = ∂Loss/∂L2·∂L2/∂b2",
]
SEED_EQS = ["L1 = k1*x + b1", "σ = sigmoid(L1)", "L2 = k2*σ + b2", "Loss = mean((L2 - y)**2)"]


def run(*args: str, cwd: Path | None = None, env: dict | None = None):
    """``python -m symgrad ARGS``: the completed process, text decoded as UTF-8."""
    return subprocess.run(
        [sys.executable, "-m", "symgrad", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=cwd,
        env={**os.environ, "PYTHONIOENCODING": "utf-8", **(env or {})},
        timeout=120,
    )


def fails(done, *fragments: str) -> None:
    """Exit status 2 and one line on stderr holding every fragment, no traceback."""
    assert done.returncode == 2, done
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("symgrad: error: ")
    assert "Traceback" not in done.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def load_module(path: Path):
    spec = importlib.util.spec_from_file_location(f"emitted_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- compile -----------------------------------------------------------------------------------


def test_compile_prints_chains_and_code():
    done = run("compile", "mean((k*x + b - y)**2)", "--wrt", "k,b")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("∂f/∂k = ") and "x" in lines[0]
    assert lines[1].startswith("∂f/∂b = ")
    assert "def value_and_grad(" in done.stdout and "import numpy as np" in done.stdout
    assert done.stderr == ""


def test_compile_equations_prints_the_tutorials_chains():
    args = [a for eq in SEED_EQS for a in ("--eq", eq)]
    done = run("compile", *args, "--wrt", "k1,b1,k2,b2", "--no-code")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == SEED_CHAINS


def test_emit_writes_a_module_that_matches_the_library(tmp_path):
    model_file = tmp_path / "model.txt"
    model_file.write_text(
        "# the tutorial's two layers\n" + "\n".join(SEED_EQS) + "  # the loss\n\n",
        encoding="utf-8",
    )
    out = tmp_path / "model.py"
    done = run("compile", "--file", str(model_file), "--wrt", "k1,b1,k2,b2", "--emit", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == SEED_CHAINS  # the code went to the file
    assert f"wrote {out}" in done.stderr
    emitted = load_module(out)

    x, y, k1, b1, k2, b2 = sp.symbols("x y k1 b1 k2 b2")
    L1, σ, L2, Loss = sp.symbols("L1 σ L2 Loss")
    library = symgrad.compile(
        {L1: k1 * x + b1, σ: symgrad.sigmoid(L1), L2: k2 * σ + b2,
         Loss: symgrad.mean((L2 - y) ** 2)},
        wrt=[k1, b1, k2, b2],
    )  # fmt: skip
    rng = np.random.default_rng(0)
    inputs = dict(x=rng.normal(size=50), y=rng.normal(size=50), k1=0.3, b1=-0.1, k2=1.2, b2=0.5)
    value, grads = emitted.value_and_grad(**inputs)
    expected_value, expected_grads = library.value_and_grad(**inputs)
    np.testing.assert_allclose(value, expected_value, rtol=1e-13)
    assert list(grads) == list(expected_grads) == ["k1", "b1", "k2", "b2"]
    for name in grads:
        np.testing.assert_allclose(grads[name], expected_grads[name], rtol=1e-13)


def test_an_equation_as_the_expression_and_result(tmp_path):
    model = tmp_path / "model.txt"
    model.write_text("h = k*x\ng = h**2\n", encoding="utf-8")
    done = run("compile", "--file", str(model), "f = 3*h", "--result", "f", "--no-code")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["∂f/∂k = ∂f/∂h·∂h/∂k", "∂f/∂x = ∂f/∂h·∂h/∂x"]


def test_expression_over_a_files_equations_is_named_by_name(tmp_path):
    model = tmp_path / "model.txt"
    model.write_text("h = k*x\n", encoding="utf-8")
    done = run("compile", "mean(h**2)", "--file", str(model), "--name", "Loss", "--wrt", "k",
               "--no-code")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["∂Loss/∂k = ∂Loss/∂h·∂h/∂k"]


@pytest.mark.parametrize(
    ("fmt", "marker"), [("text", "  = "), ("latex", r"\frac{\partial"), ("markdown", "$$")]
)
def test_explain_formats(fmt, marker):
    args = [a for eq in SEED_EQS for a in ("--eq", eq)]
    done = run("compile", *args, "--explain", "--format", fmt, "--no-code")
    assert done.returncode == 0, done.stderr
    assert marker in done.stdout
    if fmt == "text":
        assert "    ∂σ/∂L1 = σ·(1 − σ)" in done.stdout


def test_format_implies_explain():
    done = run("compile", "--eq", "f = sigmoid(k*x)", "--format", "latex", "--no-code")
    assert done.returncode == 0, done.stderr
    assert r"\begin{aligned}" in done.stdout


@needs_dot
@pytest.mark.parametrize("suffix", ["svg", "png", "pdf"])
def test_graph_renders_a_diagram(tmp_path, suffix):
    args = [a for eq in SEED_EQS for a in ("--eq", eq)]
    picture = tmp_path / f"model.{suffix}"
    done = run("compile", *args, "--graph", str(picture), "--kind", "backward",
               "--highlight", "k1", "--no-code")  # fmt: skip
    assert done.returncode == 0, done.stderr
    data = picture.read_bytes()
    if suffix == "svg":
        ET.fromstring(data)
    elif suffix == "png":
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
    else:
        assert data.startswith(b"%PDF")


def test_graph_as_dot_text_needs_no_graphviz(tmp_path):
    args = [a for eq in SEED_EQS for a in ("--eq", eq)]
    picture = tmp_path / "model.dot"
    done = run("compile", *args, "--graph", str(picture), "--group", "cluster", "--no-code",
               env={"PATH": str(tmp_path)})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert picture.read_text(encoding="utf-8").startswith("digraph forward {")


def test_graph_without_graphviz_says_how_to_install_it(tmp_path):
    done = run("compile", "k*x", "--graph", str(tmp_path / "m.svg"), env={"PATH": str(tmp_path)})
    fails(done, "apt-get install graphviz", "brew install graphviz")
    assert done.stdout == ""  # nothing half-printed


# -- errors ------------------------------------------------------------------------------------


def test_syntax_error_points_at_the_text():
    fails(run("compile", "--eq", "L1 = k1*x + (b1"), "--eq 1:", "'k1*x + (b1'", "never closed")
    fails(run("compile", "mean((k*x + b - y)**2))"), "column 23", "')'")


def test_unknown_function_and_python_tricks_are_refused(tmp_path):
    fails(run("compile", "foo(x)"), "foo is not a function symgrad knows")
    marker = tmp_path / "pwned"
    done = run("compile", f"__import__('os').system('touch {marker}')", cwd=tmp_path)
    fails(done)
    done = run("compile", "x.__class__.__mro__[1].__subclasses__()", cwd=tmp_path)
    fails(done, "is not a function symgrad knows")
    fails(run("compile", "x.__class__", cwd=tmp_path), "attribute access")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        ((), ["give a command: compile or demo"]),
        (("compile",), ["give the model"]),
        (("compile", "x", "--bogus"), ["unrecognized arguments: --bogus"]),
        (("compile", "x", "--kind", "sideways"), ["invalid choice: 'sideways'"]),
        (("compile", "k*x", "--wrt", "q"), ["--wrt: q is not in the model", "k, x"]),
        (("compile", "k*x", "--wrt", "k,,x"), ["--wrt"]),
        (("compile", "k*x", "--highlight", "k"), ["--highlight applies to a diagram"]),
        (("compile", "--eq", "a = b", "--eq", "b = a"), ["cycle: a -> b -> a"]),
        (("compile", "--eq", "a = x", "--eq", "a = y"), ["a is defined twice"]),
        (("compile", "--eq", "2a = x"), ["left side"]),
        (("compile", "--eq", "f = x", "--result", "g"), ["output g is not defined"]),
        (("compile", "--file", "no-such-model.txt"), ["no-such-model.txt"]),
        (("compile", "k*x", "--graph", "x.bmp"), [".bmp"]),
        (("compile", "k*x", "--emit", "no/such/dir/m.py"), ["No such file or directory"]),
        (("demo", "--highlight", "nope"), ["nope"]),
    ],
)
def test_bad_usage_exits_2_with_one_line(args, fragments, tmp_path):
    done = run(*args, cwd=tmp_path)
    fails(done, *fragments)


def test_debug_shows_the_traceback():
    done = run("compile", "k*x +", "--debug")
    assert done.returncode != 0
    assert "Traceback" in done.stderr and "ParseError" in done.stderr


def test_file_errors_name_the_line(tmp_path):
    model = tmp_path / "model.txt"
    model.write_text("# fine\nh = k*x\n\nf = mean(h**2\n", encoding="utf-8")
    fails(run("compile", "--file", str(model)), f"{model}:4:", "never closed")
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing here\n", encoding="utf-8")
    fails(run("compile", "--file", str(empty)), "no equations")


def test_help_and_version():
    done = run("--help")
    assert done.returncode == 0 and "compile" in done.stdout and "demo" in done.stdout
    done = run("compile", "--help")
    assert done.returncode == 0 and "--emit" in done.stdout and "--highlight" in done.stdout
    done = run("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"symgrad {symgrad.__version__}"


# -- demo --------------------------------------------------------------------------------------


@needs_dot
def test_demo_draws_the_seed_model_and_prints_its_chains(tmp_path):
    done = run("demo", "--out", str(tmp_path / "pictures"))
    assert done.returncode == 0, done.stderr
    for chain in SEED_CHAINS:
        assert chain in done.stdout
    for kind in ("forward", "backward"):
        picture = tmp_path / "pictures" / f"two_layer_{kind}.svg"
        assert f"wrote {picture}" in done.stdout
        ET.parse(picture)


@needs_dot
def test_demo_png_in_the_current_directory(tmp_path):
    done = run("demo", "--format", "png", "--highlight", "k1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "two_layer_backward.png").read_bytes().startswith(b"\x89PNG")


def test_seed_model_in_python():
    from symgrad.cli import chain_lines, seed_model

    assert chain_lines(seed_model()) == SEED_CHAINS


# -- parsing -----------------------------------------------------------------------------------


def test_parse_uses_symgrads_functions_and_sympys():
    x, y, w = sp.symbols("x y w")
    assert parsing.parse_expression("mean((sigmoid(w*x) - y)^2)") == symgrad.mean(
        (symgrad.sigmoid(w * x) - y) ** 2
    )
    assert parsing.parse_expression("relu(x) + softplus(x) + sum(x)") == (
        symgrad.relu(x) + symgrad.softplus(x) + symgrad.sum(x)
    )
    assert parsing.parse_expression("Piecewise((log(x), x > 0), (0, True))") == sp.Piecewise(
        (sp.log(x), x > 0), (0, True)
    )
    assert parsing.parse_expression("exp(x)*pi") == sp.exp(x) * sp.pi


def test_every_other_name_is_a_symbol():
    expr = parsing.parse_expression("S + I + N + Q + beta + lambda_ + σ")
    assert all(isinstance(a, sp.Symbol) for a in expr.args)
    assert parsing.parse_equations(["E = m*c^2", "f = E + 1"])[1][1] == sp.Symbol("E") + 1


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("x.real", "attribute access"),
        ("x[0]", "indexing"),
        ("'x'", "str literals"),
        ("lambda: 0", "a lambda"),
        ("sigmoid(x, axis=0)", "sigmoid takes no keyword arguments, not axis="),
        ("x if y else z", "Piecewise"),
        ("sum + 1", "sum is a function: call it"),
        ("9**9**9", "write the number out"),
        ("open('f')", "open is not a function"),
        ("x == 1", "'=='"),
        ("", "empty"),
        ("x > 0", "not an arithmetic expression"),
    ],
)
def test_parse_refuses(text, fragment):
    with pytest.raises(SymgradError) as caught:
        parsing.parse_expression(text)
    assert fragment in str(caught.value)


def test_explain_replaces_chains_and_code():
    done = run("compile", "mean((k*x + b - y)**2)", "--wrt", "k,b", "--explain")
    assert done.returncode == 0, done.stderr
    assert "    ∂f/∂k = 2·x·(b − y + k·x)/N" in done.stdout
    assert "def value_and_grad" not in done.stdout
