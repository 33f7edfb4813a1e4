"""The ``symgrad`` command (symgrad/cli.py) and model text (symgrad/parsing.py).

The command runs as a user runs it: ``python -m symgrad`` in a subprocess.
"""

from __future__ import annotations

import importlib.util
import io
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
    assert lines[0] == "∂f/∂k = ∂f/∂t1·∂t1/∂k"  # through the residual t1 = k·x + b − y
    assert "    t1 = k*x + b - y\n" in done.stdout  # named as in the code
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
        (("compile", "k*x", "--eq", "g = x"), ["'k*x'", "--eq", "given twice"]),
        (("compile", "f = k*x", "--eq", "g = f"), ["'f = k*x'", "--eq"]),
        (("compile", "k*x", "-o", "-", "--graph", "-"), ["--emit - and --graph -"]),
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
    assert (tmp_path / "pictures" / "two_layer_model.py").is_file()
    assert done.stderr == ""


def test_demo_without_graphviz_still_teaches_and_says_how_to_install_it(tmp_path):
    """No dot on the PATH: the chains are printed, the text and the code written, status 0."""
    done = run("demo", "--out", str(tmp_path / "d"), env={"PATH": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    for chain in SEED_CHAINS:
        assert chain in done.stdout
    text, code = tmp_path / "d" / "two_layer.txt", tmp_path / "d" / "two_layer_model.py"
    assert f"wrote {text}" in done.stdout and f"wrote {code}" in done.stdout
    assert not list((tmp_path / "d").glob("*.svg"))
    assert "apt-get install graphviz" in done.stderr and "brew install graphviz" in done.stderr
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr
    # the files are the seed model: its text compiles to the same numbers as the written code
    from symgrad.cli import seed_model

    module = load_module(code)
    inputs = dict(x=np.linspace(-1, 1, 7), y=np.linspace(0, 2, 7), k1=0.3, b1=-0.1, k2=1.2,
                  b2=0.5)  # fmt: skip
    value, grads = module.value_and_grad(**inputs)
    expected_value, expected_grads = seed_model().value_and_grad(**inputs)
    np.testing.assert_allclose(value, expected_value, rtol=1e-13)
    for name, grad in expected_grads.items():
        np.testing.assert_allclose(grads[name], grad, rtol=1e-13)
    again = run("compile", "--file", str(text), "--wrt", "k1,b1,k2,b2", "--no-code")
    assert again.stdout.splitlines() == SEED_CHAINS


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
    assert "t1 = k·x + b − y\n" in done.stdout and "    ∂t1/∂k = x\n" in done.stdout
    assert "    ∂f/∂t1 = 2·t1/N\n" in done.stdout
    assert "def value_and_grad" not in done.stdout


# -- conventions: - for standard input and output, closed pipes, renamed options -----------------


def test_file_dash_reads_standard_input():
    done = subprocess.run(
        [sys.executable, "-m", "symgrad", "compile", "--file", "-", "--wrt", "k1,b1,k2,b2",
         "--no-code"],
        input="# the seed model, piped\n" + "\n".join(SEED_EQS) + "\n",
        capture_output=True, text=True, encoding="utf-8",
        env={**os.environ, "PYTHONIOENCODING": "utf-8"}, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == SEED_CHAINS


def test_a_byte_order_mark_is_not_part_of_a_model_file(tmp_path):
    model = tmp_path / "model.txt"
    model.write_text("\ufeffh = k*x\r\nf = sum(h, axis=0)\r\n", encoding="utf-8")
    assert parsing.read_equations(model)[0] == (sp.Symbol("h"), sp.Symbol("k") * sp.Symbol("x"))


def test_file_dash_names_standard_input_in_errors():
    done = subprocess.run(
        [sys.executable, "-m", "symgrad", "compile", "--file", "-"],
        input="h = k*x\nf = sum(h, axis=0\n", capture_output=True, text=True,
        encoding="utf-8", env={**os.environ, "PYTHONIOENCODING": "utf-8"}, timeout=120,
    )  # fmt: skip
    fails(done, "<stdin>:2:", "never closed")


def test_emit_dash_writes_only_the_module_to_standard_output(tmp_path):
    done = run("compile", "mean((k*x + b - y)**2)", "--wrt", "k,b", "-o", "-")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("# Generated by symgrad") and "∂f/∂k =" not in done.stdout
    module_path = tmp_path / "piped.py"
    module_path.write_text(done.stdout, encoding="utf-8")
    module = load_module(module_path)
    xs = np.array([1.0, 2.0, 3.0])
    value, grads = module.value_and_grad(x=xs, y=2 * xs + 1, k=1.0, b=0.0)
    residual = xs + 0.0 - (2 * xs + 1)
    np.testing.assert_allclose(value, np.mean(residual**2), rtol=1e-14)
    np.testing.assert_allclose(grads["k"], np.mean(2 * residual * xs), rtol=1e-14)
    np.testing.assert_allclose(grads["b"], np.mean(2 * residual), rtol=1e-14)


def test_short_o_writes_the_module_file(tmp_path):
    out = tmp_path / "m.py"
    done = run("compile", "sum(x, axis=0)", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert load_module(out).forward(x=np.array([1.0, 5.0, 2.0])) == 8.0
    assert f"wrote {out}" in done.stderr


def test_graph_dash_writes_dot_text_to_standard_output():
    args = [a for eq in SEED_EQS for a in ("--eq", eq)]
    done = run("compile", *args, "--graph", "-", "--kind", "backward", "--highlight", "k1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("digraph backward {") and done.stdout.rstrip().endswith("}")
    assert "∂Loss" in done.stdout and "def value_and_grad" not in done.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("compile", "mean(sigmoid(matmul(X, w)) - y)", "-o", "-"),
        ("compile", "mean(sigmoid(matmul(X, w)) - y)"),
        ("compile", "k*x", "--graph", "-"),
        ("compile", "--help"),
    ],
)
def test_a_closed_pipe_ends_quietly(args):
    """``symgrad ... | head -1``: the reader goes away; status 0 and nothing on stderr."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "symgrad", *args], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )  # fmt: skip
    proc.stdout.close()  # before the command has printed anything
    stderr = proc.stderr.read().decode("utf-8")
    assert proc.wait(timeout=120) == 0, stderr
    assert stderr == ""


def test_head_in_a_shell_pipeline_sees_status_0():
    command = (f"'{sys.executable}' -m symgrad compile 'mean(sigmoid(matmul(X, w)) - y)' "
               "-o - | head -1")  # fmt: skip
    done = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True,
                          text=True, encoding="utf-8", timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("# Generated by symgrad") and done.stderr == ""


def test_result_names_the_output_equation():
    done = run("compile", "--eq", "h = k*x", "--eq", "g = h**2", "--eq", "f = 3*h",
               "--result", "g", "--no-code")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("∂g/∂k = ")


def test_output_still_works_for_one_release_and_says_so():
    done = run("compile", "--eq", "h = k*x", "--eq", "g = h**2", "--eq", "f = 3*h",
               "--output", "g", "--no-code")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("∂g/∂k = ")
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "--output is renamed --result" in lines[0]


# -- the input sweep: every kind of bad value, one line naming it, status 2 ----------------------


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        # None
        (("compile", "x + None"), ["'None'", "None is not a value"]),
        (("compile", "sum(x, keepdims=None)"), ["keepdims= takes True or False, not None"]),
        (("compile", "k*x", "--wrt", "None"), ["--wrt: None is not in the model", "k, x"]),
        (("compile", "k*x", "--result", "None"), ["output None is not defined"]),
        # a string
        (("compile", "x + 'a'"), ["\"'a'\"", "str literals"]),
        (("compile", "sum(x, axis='0')"), ["axis= takes an integer", "'0'"]),
        (("compile", "k*x", "--shape", "x=1.5"), ["--shape 'x=1.5'", "'1.5' is not a size"]),
        (("compile", "k*x", "--name", "a b"), ["--name 'a b' is not a name"]),
        (("compile", "k*x", "--name", "sum"), ["--name 'sum' names a function"]),
        (("compile", "k*x", "--name", ""), ["--name '' is not a name"]),
        # a list of symbols
        (("compile", "sum([x, y])"), ["'[x, y]'", "a list"]),
        (("compile", "Max([x, y])"), ["a list"]),
        (("compile", "k*x", "--wrt", "[k, x]"), ["--wrt: [k, x] are not in the model"]),
        (("compile", "sum(x, axis=[0])"), ["axis= takes an integer", "[0]"]),
        # complex values
        (("compile", "1j*x"), ["'1j'", "complex numbers"]),
        (("compile", "sqrt(-1)*x"), ["real numbers, not I"]),
        (("compile", "k*x", "--shape", "x=2j"), ["'2j' is not a size"]),
        # a wrong shape
        (("compile", "sum(matmul(X, w))", "--shape", "X=n,3", "--shape", "w=4"),
         ["matmul(X, w)", "(None, 3) and (4,) do not align"]),
        (("compile", "sum(x, axis=2)", "--shape", "x=3"), ["axis 2 is out of range"]),
        (("compile", "softmax(x, axis=5)", "--shape", "x=3,3"), ["axis 5 is out of range"]),
        (("compile", "transpose(x, axes=(0,))", "--shape", "x=3,3"), ["(0,)", "permutation"]),
        (("compile", "x + y", "--shape", "x=2", "--shape", "y=3"), ["(2,) and (3,)"]),
        (("compile", "k*x", "--shape", "x=-1"), ["'-1' is not a size"]),
        # a missing name or value
        (("compile",), ["give the model"]),
        (("compile", "k*x", "--shape", "=3"), ["--shape '=3'", "NAME=SIZES"]),
        (("compile", "k*x", "--shape", "x"), ["--shape 'x'", "NAME=SIZES"]),
        (("compile", "k*x", "--wrt", ""), ["--wrt ''"]),
        (("compile", "k*x", "--result"), ["--result: expected one argument"]),
        (("compile", "--eq", "= x"), ["--eq 1:", "left side", "must be a name"]),
        (("compile", "--eq", "f ="), ["--eq 1:", "empty expression"]),
        (("compile", "matmul(A)"), ["matmul needs 2 arguments"]),
        # an unknown name
        (("compile", "foo(x)"), ["foo is not a function symgrad knows"]),
        (("compile", "sum(x, axes=0)"), ["sum takes the keywords axis=, keepdims=, not axes="]),
        (("compile", "k*x", "--shape", "q=3"), ["--shape 'q=3': q is not an input", "k, x"]),
        (("compile", "k*x", "--wrt", "q"), ["--wrt: q is not in the model"]),
        (("compile", "k*x", "--result", "q"), ["output q is not defined"]),
        (("compile", "k*x", "--graph", "m.dot", "--highlight", "q"), ["'q'"]),
        (("compile", "k*x", "--graph", "m.bmp"), ["'m.bmp'"]),
        (("compile", "k*x", "--format", "html"), ["'html'"]),
        (("demo", "--format", "gif"), ["'gif'"]),
        # a duplicate
        (("compile", "k*x", "--shape", "x=3", "--shape", "x=4"), ["--shape: x is given twice"]),
        (("compile", "k*x", "--wrt", "k,k"), ["--wrt 'k,k': k given twice"]),
        (("compile", "--eq", "a = x", "--eq", "a = y"), ["a is defined twice"]),
        (("compile", "k*x", "--eq", "a = x"), ["'k*x'", "given twice"]),
        (("compile", "sum(x, 0, axis=0)"), ["sum got axis twice"]),
        (("compile", "sum(x, axis=(1, 1))"), ["names an axis twice"]),
        (("compile", "k*x", "-o", "-", "--graph", "-"), ["--emit - and --graph -"]),
        (("compile", "k*x", "-o", "-", "--explain"), ["--emit -", "--explain"]),
        (("compile", "k*x", "--name", "k"), ["called k"]),
        # files that are not model files
        (("compile", "--file", "."), ["cannot read '.'"]),
        (("compile", "--file", sys.executable), ["not UTF-8 text"]),
        (("compile", "k*x", "-o", "."), ["Is a directory"]),
        (("compile", "--file", "-"), ["standard input is not UTF-8"]),
        (("demo", "--out", sys.executable), [sys.executable, "is a file"]),
    ],
)
def test_every_bad_value_exits_2_with_one_line_naming_it(args, fragments, tmp_path, capsys,
                                                        monkeypatch):  # fmt: skip
    """In this process (what ``python -m symgrad`` runs), for speed: status 2, one line on
    stderr that names the culprit, nothing on stdout, never an internal error."""
    from symgrad.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"f = \xff\xfe x\n")))
    status = main(list(args))
    out, err = capsys.readouterr()
    assert status == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("symgrad: error: "), err
    for fragment in fragments:
        assert fragment in lines[0]
    assert out == ""
