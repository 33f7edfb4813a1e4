"""The generated NumPy source: stable bytes, readable names, comments, shared sub-expressions.

The golden file tests/golden/two_layer_model.py holds the expected source of the two-layer
model. After an intended change to code generation, regenerate it with

    SYMGRAD_UPDATE_GOLDEN=1 python -m pytest tests/test_codegen.py

and review the diff before committing it.
"""

from __future__ import annotations

import ast
import builtins
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import sympy as sp
from helpers import GOLDEN, REPO, two_layer_equations

import symgrad
from symgrad.codegen.load import load

k, x, y, b = sp.symbols("k x y b")


@pytest.fixture(scope="module")
def two_layer():
    k1, b1, k2, b2 = sp.symbols("k1 b1 k2 b2")
    return symgrad.compile(two_layer_equations(), wrt=[k1, b1, k2, b2])


def _function(source: str, name: str) -> ast.FunctionDef:
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
    raise AssertionError(f"no function {name}")


def _function_source(source: str, name: str) -> str:
    return ast.get_source_segment(source, _function(source, name))


def _assigned(fn: ast.FunctionDef) -> list[str]:
    names = []
    for node in ast.walk(fn):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                for t in ast.walk(target):
                    if isinstance(t, ast.Name):
                        names.append(t.id)
    return names


# -- stable, self-contained output ---------------------------------------------------------------


def test_source_is_byte_stable_within_a_process(two_layer):
    again = symgrad.compile(two_layer_equations(), wrt=sp.symbols("k1 b1 k2 b2"))
    assert again.source == two_layer.source
    e = sp.exp(k * x)
    expr = symgrad.sum(sp.sin(e) + e * y + sp.Piecewise((sp.log(x), x > 0), (0, True)))
    assert symgrad.compile(expr).source == symgrad.compile(expr).source


SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    import sympy as sp, symgrad
    from helpers import two_layer_equations
    e = sp.exp(sp.Symbol("k") * sp.Symbol("x"))
    models = [
        symgrad.compile(two_layer_equations(), wrt=sp.symbols("k1 b1 k2 b2")),
        symgrad.compile(symgrad.sum(sp.sin(e) + e * sp.Symbol("y") + sp.Abs(e - 1))),
    ]
    sys.stdout.write("\\n=====\\n".join(m.source for m in models))
    """
)


def test_source_is_byte_stable_across_processes_and_hash_seeds(two_layer):
    """No timestamp, no dependence on set or dict order under string hash randomization."""
    outputs = set()
    for seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run(
            [sys.executable, "-c", SCRIPT.format(tests=str(REPO / "tests"))],
            capture_output=True,
            text=True,
            encoding="utf-8",
            env=env,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        outputs.add(result.stdout)
    assert len(outputs) == 1
    assert outputs.pop().split("\n=====\n")[0] == two_layer.source


def test_no_timestamp_or_machine_details(two_layer):
    assert not re.search(r"\b(19|20)\d\d-\d\d-\d\d\b", two_layer.source)
    assert not re.search(r"\d\d:\d\d:\d\d", two_layer.source)
    assert os.path.expanduser("~") not in two_layer.source
    assert str(REPO) not in two_layer.source


def test_imports_numpy_only(two_layer):
    tree = ast.parse(two_layer.source)
    imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert [(a.name, a.asname) for n in imports for a in n.names] == [("numpy", "np")]
    assert all(isinstance(n, ast.Import) for n in imports)


def test_generated_code_reads_only_its_own_names(two_layer):
    """Every global a generated function reads is np, a helper it defines, or a builtin."""
    tree = ast.parse(two_layer.source)
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    allowed = defined | {"np"} | set(dir(builtins))
    for fn in (n for n in tree.body if isinstance(n, ast.FunctionDef)):
        arguments = [*fn.args.args, *fn.args.kwonlyargs, fn.args.vararg, fn.args.kwarg]
        local = {a.arg for a in arguments if a is not None} | set(_assigned(fn))
        for node in ast.walk(fn):
            if isinstance(node, ast.comprehension):
                local |= {t.id for t in ast.walk(node.target) if isinstance(t, ast.Name)}
        for node in ast.walk(fn):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                assert node.id in local or node.id in allowed, (fn.name, node.id)


def test_module_defines_forward_and_value_and_grad(two_layer):
    namespace = load(two_layer.source)
    assert callable(namespace["forward"]) and callable(namespace["value_and_grad"])
    forward, value_and_grad = (_function(two_layer.source, f).args
                               for f in ("forward", "value_and_grad"))
    # keyword-only: a call in another order than the sorted one cannot mix the inputs up
    assert forward.args == [] and value_and_grad.args == []
    params = [a.arg for a in forward.kwonlyargs]
    assert params == [a.arg for a in value_and_grad.kwonlyargs]
    assert sorted(params) == ["b1", "b2", "k1", "k2", "x", "y"]


# -- readable --------------------------------------------------------------------------------------


@pytest.mark.parametrize("function", ["forward", "value_and_grad"])
def test_one_assignment_per_named_node(two_layer, function):
    assigned = _assigned(_function(two_layer.source, function))
    for name in ("L1", "σ", "L2", "Loss"):
        assert assigned.count(name) == 1, (name, assigned)


def test_adjoints_are_named_after_their_nodes(two_layer):
    assigned = _assigned(_function(two_layer.source, "value_and_grad"))
    for name in ("dL2", "dσ", "dL1", "dk1", "db1", "dk2", "db2"):
        assert name in assigned, (name, assigned)
    assert two_layer.source.count("dσ =") == 1


def test_backward_lines_are_commented_with_their_local_factor(two_layer):
    body = _function_source(two_layer.source, "value_and_grad").splitlines()
    start = next(i for i, line in enumerate(body) if line.strip().startswith("# backward"))
    assignments = [line for line in body[start + 1 :] if re.match(r"\s+\w+ = ", line)]
    assert assignments
    for line in assignments:
        assert "  # ∂" in line, line
    text = "\n".join(body)
    assert "# ∂σ/∂L1 = σ·(1 − σ)" in text
    assert "# ∂Loss/∂L2 = 2·(L2 − y)/N" in text  # (a temporary spelled out, N for the size)
    assert "# N: the number of elements a mean averages over" in text
    factors = [m.group(1) for m in re.finditer(r"(?m)^    (∂\S+/∂\S+ = .+)$", two_layer.explain())]
    assert len(factors) >= 4
    for factor in factors:  # as explain writes each one
        assert f"# {factor}" in text or f"; {factor}" in text, factor


def test_forward_lines_follow_the_equations(two_layer):
    body = _function_source(two_layer.source, "forward")
    order = [body.index(f"    {n} = ") for n in ("L1", "σ", "L2", "Loss")]
    assert order == sorted(order)


def test_header_lists_the_equations(two_layer):
    head = two_layer.source.split("import numpy", 1)[0]
    for line in ("L1 = b1 + k1*x", "σ = sigmoid(L1)", "L2 = b2 + k2*σ", "Loss = mean((L2 - y)**2)"):
        assert line in head


# -- efficient ---------------------------------------------------------------------------------


def test_common_subexpressions_are_computed_once():
    e = sp.exp(k * x)
    model = symgrad.compile(symgrad.sum(sp.sin(e) + e * y + sp.log(2 + e) + sp.sqrt(e)))
    vg = _function_source(model.source, "value_and_grad")
    fw = _function_source(model.source, "forward")
    assert vg.count("np.exp(") == 1, vg
    assert vg.count("np.exp(k*x)") == 1, vg
    assert fw.count("np.exp(k*x)") == 1, fw
    X = np.linspace(-1, 1, 7)
    value, grads = model.value_and_grad(k=0.3, x=X, y=2.0)
    ev = np.exp(0.3 * X)
    assert float(value) == pytest.approx(np.sum(np.sin(ev) + 2 * ev + np.log(2 + ev) + np.sqrt(ev)))
    d = np.cos(ev) + 2 + 1 / (2 + ev) + 0.5 / np.sqrt(ev)
    assert float(grads["k"]) == pytest.approx(np.sum(d * ev * X), rel=1e-13)


def test_shared_subexpression_across_equations_is_computed_once():
    h, f = sp.symbols("h f")
    e = sp.exp(k * x)
    model = symgrad.compile([(h, sp.sin(e) + 1), (f, symgrad.sum(h * e + sp.cos(e)))], wrt=[k])
    vg = _function_source(model.source, "value_and_grad")
    assert vg.count("np.exp(") == 1, vg


def test_an_adjoint_read_twice_is_computed_once():
    """An adjoint that several others read gets its own line, even when it is only a copy of
    another expression (inlining it would compute that expression again in every reader)."""
    xs = sp.symbols("x0:4")
    f = sp.Add(*[100 * (xs[i + 1] - xs[i] ** 2) ** 2 + (1 - xs[i]) ** 2 for i in range(3)])
    model = symgrad.compile(f)
    vg = _function_source(model.source, "value_and_grad")
    right = [line.split("=", 1)[1].split("#")[0].strip()
             for line in vg.splitlines() if re.match(r"\s+d\w+ = ", line)]
    computed = [r for r in right if re.search(r"[*+/-]", r)]
    for r in computed:
        assert sum(r in other for other in right) == 1, (r, vg)
    point = {s: 0.5 + 0.1 * i for i, s in enumerate(xs)}
    _, grads = model.value_and_grad(point)
    for s in xs:
        assert float(grads[s.name]) == pytest.approx(float(f.diff(s).subs(point)), rel=1e-12)


def test_a_temporarys_adjoint_read_once_is_written_into_its_reader():
    """The adjoint of a temporary that one cotangent alone reads is no node of its own: it is
    written into that reader (``dx0 = ... - 2*t1``), as emit writes a temporary used once; an
    adjoint read twice keeps its node and line."""
    xs = sp.symbols("x0:4")
    f = sp.Add(*[100 * (xs[i + 1] - xs[i] ** 2) ** 2 + (1 - xs[i]) ** 2 for i in range(3)])
    model = symgrad.compile(f)
    vg = _function_source(model.source, "value_and_grad")
    once = re.findall(r"^ +(t\d+) = 1 - x\d$", vg, re.M)  # 1 - x_i: read by f alone
    twice = re.findall(r"^ +(t\d+) = x\d - x\d\*\*2$", vg, re.M)  # its adjoint read twice
    assert len(once) == 3 and len(twice) == 3, vg
    for t in once:
        assert not re.search(rf"\bd{t}\b", vg), vg
        assert re.search(rf"\n +dx\d = .* - 2\*{t}  #", vg), vg
    for t in twice:
        assert re.search(rf"\n +d{t} = ", vg), vg
    point = {s.name: 0.5 for s in xs}
    grads = model.grad(**point)
    for s in xs:
        want = float(sp.diff(f, s).subs({v: 0.5 for v in xs}))
        assert float(grads[s.name]) == pytest.approx(want, rel=1e-12)


def test_an_adjoint_written_into_its_reader_leaves_broadcasts_to_be_dropped():
    """The adjoint of a mean is a broadcast that specialize drops where its readers broadcast
    anyway; writing the temporaries' adjoints into their readers must leave it droppable (no
    np.broadcast_to, no extra array), found in review."""
    for f in (sp.sin(symgrad.mean(sp.exp(k * x) * y)), symgrad.mean(sp.tanh(k * x + y)) ** 3):
        model = symgrad.compile(f, wrt=[k])
        inputs = dict(k=0.3, x=np.linspace(0.0, 1.0, 4), y=np.linspace(1.0, 2.0, 4))
        assert "broadcast_to" not in model.source_for(**inputs)
        h = 1e-6
        fd = (float(model(**{**inputs, "k": 0.3 + h})) - float(model(**{**inputs, "k": 0.3 - h})))
        assert float(model.grad(**inputs)["k"]) == pytest.approx(fd / (2 * h), rel=1e-6)


def test_a_long_chain_of_temporaries_keeps_its_lines_short():
    """Adjoints written into their readers stop at INLINE_LIMIT operations: a chain of 20
    functions keeps an adjoint node (and a line) every few links, and the right derivative."""
    from symgrad.codegen.emit import INLINE_LIMIT

    e = k * x
    for i in range(20):  # (SymPy folds sin(atan(u)) into u/sqrt(u**2 + 1): longer still)
        e = (sp.sin, symgrad.sigmoid, sp.atan)[i % 3](e)
    model = symgrad.compile(e, wrt=[k])
    vg = _function_source(model.source, "value_and_grad")
    temps = re.findall(r"\n +t\d+ = ", vg)
    adjoints = re.findall(r"\n +dt\d+ = ", vg)
    assert len(temps) > 2 * INLINE_LIMIT
    assert len(temps) / INLINE_LIMIT <= len(adjoints) < len(temps)
    assert max(len(line) for line in vg.split("  #")[0].splitlines()) < 200
    point = {k: 0.7, x: 0.4}
    want = float(sp.diff(e, k).subs(point))
    assert float(model.grad(point)["k"]) == pytest.approx(want, rel=1e-12)


def test_inlining_keeps_within_its_limit_across_passes():
    """What the backward pass wrote into an adjoint counts against INLINE_LIMIT when emit
    inlines that adjoint in turn: lines stay short and shallow (a chain of 60 with every link
    in the output once gave lines nested 160 deep, near Python's limit of 200; review)."""
    e, terms = k * x, []
    for _ in range(60):
        e = sp.sin(e)
        terms.append(e)
    model = symgrad.compile(sp.Add(*terms), wrt=[k])
    source = model.source_for(k=0.7, x=0.4)
    depth = 0
    for line in source.splitlines():
        level = 0
        for char in line.split("  #")[0]:
            level += (char == "(") - (char == ")")
            depth = max(depth, level)
    assert depth <= 12, depth


def test_forward_computes_the_value_exactly_as_value_and_grad_does(two_layer):
    """forward is value_and_grad's forward part: the same value, to the last bit."""
    rng = np.random.default_rng(3)
    inputs = {"x": rng.normal(size=50), "y": rng.normal(size=50), "k1": 0.7, "b1": -0.2,
              "k2": 1.3, "b2": 0.1}
    assert two_layer(**inputs) == two_layer.value_and_grad(**inputs)[0]
    expr = sp.log(1 + sp.exp(k * x)) * y + sp.Piecewise((sp.sqrt(x), x > 0), (x**2, True))
    model = symgrad.compile(symgrad.mean(expr), wrt=[k])
    X = rng.normal(size=40)
    assert model(k=0.3, x=X, y=2.0) == model.value_and_grad(k=0.3, x=X, y=2.0)[0]


def test_value_is_not_recomputed_for_the_gradient(two_layer):
    vg = _function_source(two_layer.source, "value_and_grad")
    assert vg.count("_sigmoid(") == 1
    assert vg.count(".mean(") == 1


# -- the golden file -------------------------------------------------------------------------------


def test_two_layer_source_matches_the_golden_file(two_layer):
    path = GOLDEN / "two_layer_model.py"
    if os.environ.get("SYMGRAD_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(two_layer.source, encoding="utf-8")
        pytest.skip(f"rewrote {path}")
    assert path.exists(), "run with SYMGRAD_UPDATE_GOLDEN=1 to create the golden file"
    assert two_layer.source == path.read_text(encoding="utf-8")


def test_golden_file_is_a_working_module(two_layer):
    """The golden source itself computes the two-layer model (so an update cannot go unread)."""
    from helpers import two_layer_numpy

    namespace = load((GOLDEN / "two_layer_model.py").read_text(encoding="utf-8"))
    X = np.linspace(-2, 2, 11)
    Y = 3 * X + 1
    params = {"k1": 0.5, "b1": -0.2, "k2": 10.0, "b2": 15.0}
    value, grads = namespace["value_and_grad"](x=X, y=Y, **params)
    want_value, want = two_layer_numpy(X, Y, **params)
    assert float(value) == pytest.approx(want_value, rel=1e-14)
    for name in want:
        assert float(grads[name]) == pytest.approx(want[name], rel=1e-12)


def test_reductions_of_constants_are_numpy_scalars():
    """x.sum() is a method: a constant node or a number symbol must be a NumPy scalar."""
    c, f = sp.symbols("c f")
    model = symgrad.compile([(c, sp.Integer(2)), (f, symgrad.sum(c) + symgrad.sum(c * x))],
                            wrt=[x])
    value, grads = model.value_and_grad(x=np.array([1.0, 2.0]))
    assert float(value) == 8.0
    np.testing.assert_array_equal(grads["x"], [2.0, 2.0])
    model = symgrad.compile(symgrad.sum(sp.pi) + symgrad.mean(sp.Float(1.5)) + symgrad.sum(x),
                            wrt=[x])
    assert float(model(x=np.ones(2))) == pytest.approx(np.pi + 1.5 + 2)


def test_the_scalar_check_comes_after_the_output_even_when_a_gradient_is_due_first(tmp_path):
    """A gradient that reads no adjoint is scheduled early; the saved (shape-generic) module
    must still compute the output before it checks that it is a scalar."""
    c, f = sp.symbols("c f")
    model = symgrad.compile([(c, symgrad.sum(x)), (f, k * c + symgrad.sum(k * x))], wrt=[k])
    module = load(model.source)
    value, grads = module["value_and_grad"](k=2.0, x=np.ones(3))
    assert float(value) == 12.0 and float(grads["k"]) == 6.0
    assert model.value_and_grad(k=2.0, x=np.ones(3))[0] == value


def test_a_function_compiled_at_first_use_reports_the_module_lines_in_tracebacks():
    """load() compiles forward and value_and_grad only when first asked for; a traceback
    through either still points at the right line of the whole module."""
    import linecache
    import traceback

    model = symgrad.compile(symgrad.sum(symgrad.sigmoid(k * x) - y), wrt=[k])
    module = load(model.source)
    assert "value_and_grad" not in module.compiled and "forward" not in module.compiled
    for name in ("value_and_grad", "forward"):
        with pytest.raises(ValueError, match="broadcast") as info:
            module[name](k=1.0, x=np.ones(3), y=np.ones(4))
        frame = traceback.extract_tb(info.value.__traceback__)[-1]
        assert frame.filename.startswith("<symgrad-") and frame.name == name
        line = linecache.getline(frame.filename, frame.lineno)
        assert re.fullmatch(r"\s+t\d+ = t\d+ - y\n", line), line  # where y meets k*x
    assert {"forward", "value_and_grad"} <= set(module.compiled)


def test_the_code_that_runs_is_the_source_without_its_comments(two_layer):
    """Calls run the module without the backward lines' comments (they take time to write and
    none to run), with positional parameters (the model passes them in order) and without
    converting the inputs (the model has converted them); it is
    source_for's module line for line, at the same line numbers."""
    import linecache

    X = np.linspace(-2.0, 2.0, 7)
    inputs = dict(x=X, y=np.sin(X), k1=0.5, b1=0.1, k2=-0.3, b2=0.2)
    value, grads = two_layer.value_and_grad(**inputs)
    shown = two_layer.source.splitlines()
    functions = two_layer._functions  # what the call ran
    ran = linecache.getlines(functions["value_and_grad"].__code__.co_filename)
    ran = [line.rstrip("\n") for line in ran]
    if len(ran) == len(shown) + 1:  # loaded from the compile cache: its checksum line, last
        assert re.fullmatch(r"# symgrad \S+ compile cache entry; sha256 .*", ran.pop()), ran[-1]
    assert len(ran) == len(shown)
    commented = 0
    signatures = 0
    converted = 0
    for a, b in zip(ran, shown, strict=True):
        if a.startswith("def ") and "(*, " in b:
            assert b == a.replace("(", "(*, ", 1), (a, b)
            signatures += 1
        elif a == "" and " = _floats(" in b:
            converted += 1  # (the model converts the inputs before it calls)
        elif a != b:
            assert b.startswith(a + "  # ∂"), (a, b)
            commented += 1
    assert signatures == 2
    assert converted == 2
    assert commented == sum("  # ∂" in line for line in shown) > 3
    namespace = load("\n".join(shown) + "\n")
    again, grads_again = namespace["value_and_grad"](**inputs)
    assert again == value and all(np.array_equal(grads[k], grads_again[k]) for k in grads)


def test_a_module_loads_whole_whatever_its_public_functions_call():
    """load() defers public functions, but a function that calls another one works, top-level
    code between functions runs at once, and asking whether a name is there compiles nothing."""
    module = load(
        "def value_and_grad(x):\n    return x, {'x': 1.0}\n\n\n"
        "def grad(x):\n    return value_and_grad(x)[1]\n\n\n"
        "SCALE = 3.0\n\n\ndef forward(x):\n    return SCALE * x\n"
    )
    assert "grad" in module and "value_and_grad" in module and "missing" not in module
    assert module["grad"](2.0) == {"x": 1.0}
    assert module["forward"](2.0) == 6.0  # SCALE was defined when the module was loaded
    lazy = load(
        "def value_and_grad(x):\n    return x, {'x': 1.0}\n\n\n"
        "def grad(x):\n    return value_and_grad(x)[1]\n"
    )
    assert "grad" in lazy and lazy.compiled == []  # asking compiles nothing
    assert lazy["grad"](2.0) == {"x": 1.0}  # what grad calls is defined first
    assert lazy.compiled == ["grad", "value_and_grad"]


def test_training_compiles_value_and_grad_alone():
    """value_and_grad's "# forward, in topological order" names forward only in a comment: a
    training loop's call compiles value_and_grad and not forward (half the compile time)."""
    model = symgrad.compile(symgrad.mean((symgrad.sigmoid(k * x) - y) ** 2), wrt=[k])
    inputs = dict(x=np.linspace(-2.0, 2.0, 7), y=np.ones(7), k=0.5)
    assert "# forward, in topological order" in model.source_for(**inputs)
    model.value_and_grad(**inputs)
    module = model._functions
    assert "value_and_grad" in module.compiled and "forward" not in module.compiled
    module = load(
        "def forward(x):\n    return x\n\n\n"
        "def twice(x):\n    y = 'forward#'  # forward\n    return forward(x) + forward(x)\n"
    )
    assert module["twice"](2.0) == 4.0  # named after a '#' in a string: still defined first


def test_a_sum_to_of_a_declared_shape_needs_no_helper_in_the_shape_generic_module():
    """With some shapes declared, an adjoint summed to a declared input has that input's shape:
    the saved module computes it directly, and agrees with the model for any other shapes."""
    t, u, v, f = sp.symbols("t u v f")
    model = symgrad.compile(
        [(t, k * b), (u, sp.exp(t) * x), (v, symgrad.sum(u, axis=0)), (f, symgrad.sum(v * t))],
        wrt=[k, b, x], shapes={k: (), b: (1,)},
    )
    assert "    dk = (dt*b).sum()  #" in model.source  # a scalar: summed whole
    assert "    db = dt*k  #" in model.source  # already b's shape, (1,): no _sum_to
    module = load(model.source)
    for shape in [(3,), (4, 1), (2, 3)]:
        x_values = np.linspace(-1.0, 1.0, int(np.prod(shape))).reshape(shape)
        inputs = dict(k=0.7, b=np.array([0.2]), x=x_values)
        value, grads = module["value_and_grad"](**inputs)
        expected, expected_grads = model.value_and_grad(**inputs)
        assert np.allclose(value, expected)
        for name in ("k", "b", "x"):
            assert np.shape(grads[name]) == np.shape(inputs[name])
            assert np.allclose(grads[name], expected_grads[name], rtol=1e-12, atol=0)


@pytest.mark.parametrize("n", [3, 6])
def test_signs_are_written_outside_products_and_sums(n):
    """A minus sign a rule makes (the cotangent of ``a - b``'s b) is taken out of the product
    and written as a subtraction: ``a - 2*g*x``, never ``2*-g*x`` or ``a + -b``."""
    xs = sp.symbols(f"x0:{n}")
    f = sp.Add(*[100 * (xs[i + 1] - xs[i] ** 2) ** 2 + (1 - xs[i]) ** 2 for i in range(n - 1)])
    model = symgrad.compile(f, cache=False)
    code = [line.split("  #")[0] for line in model.source.splitlines()
            if not line.lstrip().startswith("#")]
    assert not [line for line in code if re.search(r"[*/] ?-|\+ -", line)], code
    point = {s.name: 0.3 * (i + 1) for i, s in enumerate(xs)}
    grads = model.grad(**point)
    for s in xs:
        want = float(sp.diff(f, s).subs({v: point[v.name] for v in xs}))
        assert float(grads[s.name]) == pytest.approx(want, rel=1e-12)


# -- models elementwise in their inputs --------------------------------------------------------


def _rosenbrock(n):
    xs = sp.symbols(f"x0:{n}")
    return xs, sum(100 * (xs[i + 1] - xs[i] ** 2) ** 2 + (1 - xs[i]) ** 2 for i in range(n - 1))


ELEMENTWISE_MODELS = {
    "rosenbrock": lambda: _rosenbrock(5),
    "exp": lambda: ((k, x), sp.exp(2 * k * x) + sp.sin(k)),
    "shared": lambda: ((k, b), (k - b) ** 2 + k * b - b),
}


@pytest.mark.parametrize("name", sorted(ELEMENTWISE_MODELS))
def test_an_elementwise_model_sums_no_gradient_back(name):
    """An output elementwise in its inputs is a scalar only where every input is one, and only
    a scalar output has a gradient: so no gradient is summed over broadcast axes; the code
    still refuses arrays (the check comes before any gradient line), and the gradients are
    sympy.diff's."""
    symbols, expr = ELEMENTWISE_MODELS[name]()
    model = symgrad.compile(expr, wrt=list(symbols))
    assert "_sum_to" not in model.source
    rng = np.random.default_rng(1)
    point = {s: float(v) for s, v in zip(symbols, rng.uniform(0.2, 0.9, len(symbols)), strict=True)}
    _, grads = model.value_and_grad(**{s.name: v for s, v in point.items()})
    for s in symbols:
        want = float(sp.diff(expr, s).subs(point))
        assert grads[s.name] == pytest.approx(want, rel=1e-12, abs=1e-12)
    arrays = {s.name: np.full(3, v) for s, v in point.items()}
    with pytest.raises(symgrad.SymgradError, match="not a scalar"):
        model.value_and_grad(**arrays)
    assert np.shape(model(**arrays)) == (3,)  # (the value alone takes arrays)


@pytest.mark.parametrize("name", sorted(ELEMENTWISE_MODELS))
def test_no_comment_differentiates_an_input(name):
    """A comment's factor ∂U/∂V names as U a node that reads V; an input reads nothing, so no
    factor is ever ∂x/∂(...) for an input x (an adjoint shared by a temporary's operands keeps
    the temporary's name: dt6, not dx3, for t6 = x3 - x2**2)."""
    symbols, expr = ELEMENTWISE_MODELS[name]()
    model = symgrad.compile(expr, wrt=list(symbols))
    inputs = {s.name for s in symbols}
    factors = re.findall(r"∂(\w+)/∂\w+", "\n".join(
        line.split("#", 1)[1] for line in model.source.splitlines() if "  # ∂" in line))
    assert factors
    assert not inputs & set(factors), factors


@pytest.mark.parametrize("n", [8, 40])
def test_long_lists_of_inputs_and_gradients_are_wrapped(n):
    """The inputs' conversion and the returned gradients of a model of many inputs are wrapped
    as a careful person wraps them (within 99 columns, comments aside), and still run."""
    symbols, expr = _rosenbrock(n)
    model = symgrad.compile(expr, wrt=list(symbols))
    body = [line.split("  # ")[0] for line in model.source.splitlines()
            if not line.startswith("def ") and not line.lstrip().startswith(('"""', "#"))]
    assert max(map(len, body)) <= 99, max(body, key=len)
    namespace = load(model.source)
    point = {s.name: 0.1 * i for i, s in enumerate(symbols)}
    value, grads = namespace["value_and_grad"](**point)
    want_value, want_grads = model.value_and_grad(**point)
    assert value == want_value and grads == want_grads


def test_a_negated_factor_that_is_a_sum_is_negated_whole():
    """A comment's factor spelled out with a temporary that is a sum keeps its sign on the
    whole sum: ∂f/∂x0 of (1 - x0)**2 is 2·x0 − 2, never −2 − 2·x0; checked against
    sympy.diff for every such factor."""
    symbols, expr = _rosenbrock(4)
    source = symgrad.compile(expr, wrt=list(symbols)).source
    factors = re.findall(r"∂f/∂(x\d) = ([^;\n]+)", source)
    assert factors
    by_name = {s.name: s for s in symbols}
    for name, text in factors:
        s = by_name[name]
        formula = sp.sympify(text.replace("·", "*").replace("−", "-").replace("²", "**2"),
                             locals=by_name)
        assert sp.simplify(formula - sp.diff((1 - s)**2, s)) == 0, (name, text)
