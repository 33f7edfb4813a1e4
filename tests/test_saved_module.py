"""model.save(): a standalone module that runs in a fresh process with SymPy blocked."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import sympy as sp
from helpers import two_layer_equations

import symgrad

RUNNER = textwrap.dedent(
    """
    import importlib.util, json, sys
    sys.modules["sympy"] = None      # importing sympy now raises ImportError
    sys.modules["symgrad"] = None    # and so does importing symgrad
    import numpy as np

    path, inputs_path = sys.argv[1], sys.argv[2]
    spec = importlib.util.spec_from_file_location("saved_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with open(inputs_path, encoding="utf-8") as f:
        inputs = {k: np.asarray(v) for k, v in json.load(f).items()}
    value = module.forward(**inputs)
    value2, grads = module.value_and_grad(**inputs)
    print(json.dumps({
        "forward": np.asarray(value).tolist(),
        "value": np.asarray(value2).tolist(),
        "grads": {k: np.asarray(g).tolist() for k, g in grads.items()},
        "grad_order": list(grads),
        "modules": sorted(m for m in sys.modules if m.split(".")[0] in ("sympy", "symgrad")
                          and sys.modules[m] is not None),
    }))
    """
)


def _run_saved(model, tmp_path, inputs):
    path = model.save(tmp_path / "m.py")
    assert path == tmp_path / "m.py"
    assert path.read_text(encoding="utf-8") == model.source
    inputs_path = tmp_path / "inputs.json"
    inputs_path.write_text(
        json.dumps({k: np.asarray(v).tolist() for k, v in inputs.items()}), encoding="utf-8"
    )
    result = subprocess.run(
        [sys.executable, "-c", RUNNER, str(path), str(inputs_path)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_saved_two_layer_module_runs_without_sympy(tmp_path):
    k1, b1, k2, b2 = sp.symbols("k1 b1 k2 b2")
    model = symgrad.compile(two_layer_equations(), wrt=[k1, b1, k2, b2])
    X = np.linspace(-2, 2, 25)
    inputs = {"x": X, "y": 3 * X + 1, "k1": 0.5, "b1": -0.2, "k2": 10.0, "b2": 15.0}
    out = _run_saved(model, tmp_path, inputs)
    value, grads = model.value_and_grad(**inputs)
    assert out["modules"] == []
    assert out["forward"] == float(model(**inputs))
    assert out["value"] == float(value)
    assert out["grad_order"] == ["k1", "b1", "k2", "b2"]
    for name, g in grads.items():
        assert out["grads"][name] == float(g)  # the same code: bit for bit


def test_saved_module_with_helpers_arrays_and_branches(tmp_path):
    x, w, c = sp.symbols("x w c")
    expr = symgrad.sum(
        symgrad.softplus(w * x - c)
        + sp.log(symgrad.sigmoid(w * x))
        + sp.Piecewise((sp.log(x), x > 0), (0, True)) * w
        + symgrad.relu(x - c) ** 2
        + sp.Abs(x) * c
    )
    model = symgrad.compile(expr, wrt=[w, c, x], broadcast="allow")  # w (2, 1) by x (5,)
    X = np.array([-2.0, -0.5, 0.0, 0.5, 3.0])
    inputs = {"x": X, "w": np.array([[0.5], [-1.0]]), "c": 0.25}
    out = _run_saved(model, tmp_path, inputs)
    value, grads = model.value_and_grad(**inputs)
    assert out["value"] == float(value)
    for name, g in grads.items():
        np.testing.assert_array_equal(np.asarray(out["grads"][name]), g)
        assert np.shape(out["grads"][name]) == np.shape(inputs[name])


def test_saved_module_source_imports_only_numpy(tmp_path):
    x, k = sp.symbols("x k")
    path = symgrad.compile(symgrad.mean(symgrad.sigmoid(k * x))).save(str(tmp_path / "n.py"))
    text = path.read_text(encoding="utf-8")
    imports = [line for line in text.splitlines() if line.startswith(("import ", "from "))]
    assert imports == ["import numpy as np"]


@pytest.mark.parametrize("name", ["σ", "a b", 'q"uote'])
def test_saved_module_with_unusual_names_runs(tmp_path, name):
    """Arguments of the saved functions are sanitised identifiers; results keep the names."""
    s, x = sp.Symbol(name), sp.Symbol("x")
    model = symgrad.compile(symgrad.sum(s * x**2))
    params = next(line for line in model.source.splitlines() if line.startswith("def forward("))
    idents = [p.strip() for p in params[len("def forward(") : -2].split(",") if p.strip() != "*"]
    assert "x" in idents and len(idents) == 2
    ident = next(i for i in idents if i != "x")
    assert ident.isidentifier()
    out = _run_saved(model, tmp_path, {ident: 2.0, "x": np.array([1.0, 3.0])})
    assert out["value"] == 20.0
    assert out["grads"][name] == 10.0
    assert out["grads"]["x"] == [4.0, 12.0]
