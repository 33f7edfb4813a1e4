"""The JAX backend: the array API code, jit-compiled, on JAX arrays; the same numbers as
``jax.value_and_grad`` of the same model written in JAX; and a compiled model inside a JAX
program through ``symgrad.jax.custom_vjp``, whose backward pass is symgrad's."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from test_array_api import MODELS, SCIPY_ONLY
from test_ops import ARRAYS, ELEMENTWISE, weighted_sum

import symgrad

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
pytestmark = pytest.mark.usefixtures("jax_x64")  # float64, as NumPy computes (conftest.py)
symgrad_jax = pytest.importorskip("symgrad.jax")


def _agree(numpy_model, jax_model, inputs: dict, rtol=1e-12, dtype=np.float64) -> None:
    """The JAX model on JAX arrays of ``dtype`` gives the NumPy model's value and gradients
    on NumPy arrays of that dtype, in it."""
    inputs = {k: np.asarray(v, dtype) for k, v in inputs.items()}
    value, grads = jax_model.value_and_grad(**{k: jnp.asarray(v) for k, v in inputs.items()})
    want, want_grads = numpy_model.value_and_grad(**inputs)
    assert isinstance(value, jax.Array) and value.dtype == dtype
    assert list(grads) == list(want_grads)  # in wrt order
    scale = max([1e-30, *(float(np.max(np.abs(g))) for g in want_grads.values())])
    np.testing.assert_allclose(np.asarray(value), want, rtol=rtol, atol=rtol * abs(float(want)))
    for name, g in grads.items():
        assert isinstance(g, jax.Array) and g.shape == np.shape(want_grads[name]), name
        assert g.dtype == dtype, name
        np.testing.assert_allclose(np.asarray(g), want_grads[name], rtol=rtol,
                                   atol=rtol * scale, err_msg=name)


@pytest.mark.parametrize("case", [c for c in ELEMENTWISE if c.record not in SCIPY_ONLY],
                         ids=lambda c: f"{c.record}:{c.id}")
def test_every_elementwise_record_under_jax(case):
    expr = symgrad.sum(case.expr)
    numpy_model = symgrad.compile(expr, wrt=list(case.args), cache=False)
    jax_model = symgrad.compile(expr, wrt=list(case.args), cache=False, backend="jax")
    point = case.points[0]
    inputs = {s.name: np.array([v, v * 0.99, v * 1.01]) for s, v in
              zip(case.args, point, strict=True)}
    _agree(numpy_model, jax_model, inputs)
    _agree(numpy_model, jax_model, inputs, rtol=3e-5, dtype=np.float32)


@pytest.mark.parametrize("case", ARRAYS, ids=lambda c: f"{c.record}:{c.id}")
def test_every_array_record_under_jax(case):
    expr, wrt, inputs = weighted_sum(case)
    numpy_model = symgrad.compile(expr, wrt=wrt, cache=False)
    jax_model = symgrad.compile(expr, wrt=wrt, cache=False, backend="jax")
    _agree(numpy_model, jax_model, inputs)
    _agree(numpy_model, jax_model, inputs, rtol=3e-5, dtype=np.float32)


@pytest.mark.parametrize("make", MODELS.values(), ids=MODELS.keys())
def test_the_golden_models_under_jax(make):
    numpy_model, inputs = make()
    jax_model, _ = make("jax")
    _agree(numpy_model, jax_model, inputs)
    # float32 arrays in, float32 out (JAX's own dtype rules)
    value, grads = jax_model.value_and_grad(
        **{k: jnp.asarray(v, jnp.float32) if np.ndim(v) else v for k, v in inputs.items()})
    assert value.dtype == jnp.float32 and all(g.dtype == jnp.float32 for g in grads.values())


def _two_layer_in_jax(k1, b1, k2, b2, x, y):
    return jnp.mean((k2 * jax.nn.sigmoid(k1 * x + b1) + b2 - y) ** 2)


def test_the_same_numbers_as_jax_value_and_grad_under_jit():
    jax_model, inputs = MODELS["two-layer"]("jax")
    names = ("k1", "b1", "k2", "b2")
    function = jax.jit(jax_model.function("value_and_grad"))
    value, grads = function(**inputs)
    want, want_grads = jax.value_and_grad(_two_layer_in_jax, argnums=(0, 1, 2, 3))(
        *(inputs[n] for n in names), inputs["x"], inputs["y"])
    assert float(value) == pytest.approx(float(want), rel=1e-14)
    for n, g in zip(names, want_grads, strict=True):
        assert float(grads[n]) == pytest.approx(float(g), rel=1e-12), n


def test_custom_vjp_puts_symgrads_gradient_inside_a_jax_program(monkeypatch):
    numpy_model, inputs = MODELS["two-layer"]()
    ran = []  # the generated backward's calls (traced once, under jit)
    original = numpy_model.function

    def spied(name, backend=None):
        function = original(name, backend)
        if name != "value_and_grad":
            return function
        return lambda **values: ran.append(1) or function(**values)

    monkeypatch.setattr(numpy_model, "function", spied)
    f = symgrad_jax.custom_vjp(numpy_model)

    def program(k1, b1, k2, b2):  # a JAX program around the model: 3·f + k1²
        values = {"k1": k1, "b1": b1, "k2": k2, "b2": b2, "x": inputs["x"], "y": inputs["y"]}
        return 3 * f(*(values[n] for n in numpy_model.inputs)) + k1 ** 2

    point = [inputs[n] for n in ("k1", "b1", "k2", "b2")]
    got = jax.jit(jax.grad(program, argnums=(0, 1, 2, 3)))(*point)
    assert ran  # symgrad's generated backward is what JAX ran
    _, grads = numpy_model.value_and_grad(**inputs)
    want = [3 * grads["k1"] + 2 * inputs["k1"], 3 * grads["b1"], 3 * grads["k2"], 3 * grads["b2"]]
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12)

    def in_jax(k1, b1, k2, b2):  # and JAX's own derivative of the same program agrees
        return 3 * _two_layer_in_jax(k1, b1, k2, b2, inputs["x"], inputs["y"]) + k1 ** 2

    np.testing.assert_allclose(np.asarray(got), jax.grad(in_jax, argnums=(0, 1, 2, 3))(*point),
                               rtol=1e-12)


def test_custom_vjp_refuses_a_gradient_the_model_was_not_compiled_for():
    """Differentiating with respect to data the model has no gradient for is an error naming
    it, not a silent zero; compiled with respect to it, the gradient is right."""
    k, x = sp.symbols("k x")
    X = jnp.arange(3.0)
    f = symgrad_jax.custom_vjp(symgrad.compile(symgrad.sum((k * x) ** 2), wrt=[k], cache=False))
    assert float(jax.grad(lambda k: f(k, X))(1.5)) == pytest.approx(2 * 1.5 * 5)
    with pytest.raises(symgrad.SymgradError, match=r"respect to 'x'.*wrt"):
        jax.grad(lambda x: f(1.5, x))(X)
    every = symgrad_jax.custom_vjp(symgrad.compile(symgrad.sum((k * x) ** 2), cache=False))
    np.testing.assert_allclose(jax.grad(lambda x: every(1.5, x))(X), 2 * 1.5**2 * X)


def test_the_jax_backend_needs_jax(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "jax" else real(name, *a))
    with pytest.raises(symgrad.SymgradError, match=r"pip install 'symgrad\[jax\]'"):
        symgrad.compile(sp.Symbol("x"), backend="jax")


X64_OFF = """
import sys, numpy as np, sympy as sp
sys.path.insert(0, sys.argv[1])
import symgrad
k, x = sp.symbols("k x")
model = symgrad.compile(symgrad.sum(k * x), wrt=[k], backend="jax", cache=False)
value, grads = model.value_and_grad(k=1.5, x=np.arange(3.0, dtype=np.float32))
assert value.dtype == np.float32, value.dtype
for call in (lambda: model.value_and_grad(k=1.5, x=np.arange(3.0)),
             lambda: symgrad.compile(k * x, backend="jax", dtype="float64",
                                     cache=False).value_and_grad(k=1.5, x=np.ones(2, np.float32))):
    try:
        call()
    except symgrad.SymgradError as e:
        print(e)
"""


def test_float64_where_jax_computes_in_float32_is_refused_not_cut():
    """Without jax_enable_x64 (JAX's default), a float64 input or model is an error naming
    the setting, not silently computed in float32 (in a fresh process, which has never had x64)."""
    import subprocess
    import sys
    from pathlib import Path

    done = subprocess.run([sys.executable, "-c", X64_OFF, str(Path(__file__).parents[1])],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-1500:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 2 and all("jax_enable_x64" in line for line in lines), done.stdout
    assert "input 'x' is float64" in lines[0] and "the model's dtype is float64" in lines[1]
