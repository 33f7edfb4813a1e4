"""The call API of a compiled model: how inputs are passed, what comes back, in which order."""

from __future__ import annotations

import tomllib

import numpy as np
import pytest
import sympy as sp
from helpers import REPO

import symgrad

x, y, k, b = sp.symbols("x y k b")
X = np.array([1.0, 2.0, 3.0])
Y = np.array([2.5, 4.0, 7.0])


@pytest.fixture(scope="module")
def linear():
    return symgrad.compile(symgrad.mean((k * x + b - y) ** 2), wrt=[k, b])


def _expected(kv, bv):
    r = kv * X + bv - Y
    return np.mean(r**2), {"k": np.mean(2 * r * X), "b": np.mean(2 * r)}


def test_attributes(linear):
    assert linear.inputs == ("b", "k", "x", "y")
    assert linear.wrt == ("k", "b")
    assert linear.output == "f"
    assert "f(b, k, x, y)" in repr(linear)
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert symgrad.__version__ == pyproject["project"]["version"]
    assert isinstance(linear.source, str) and "def value_and_grad" in linear.source


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m(x=X, y=Y, k=1.5, b=0.5),
        lambda m: m({x: X, y: Y, k: 1.5, b: 0.5}),
        lambda m: m({"x": X, "y": Y, "k": 1.5, "b": 0.5}),
        lambda m: m({x: X, "y": Y}, k=1.5, b=0.5),
        lambda m: m({sp.Symbol("x", real=True): X, y: Y, k: 1.5, b: 0.5}),  # by name
    ],
    ids=["keywords", "symbols", "names", "mixed", "same-name-symbol"],
)
def test_every_way_to_pass_inputs(linear, call):
    assert float(call(linear)) == pytest.approx(_expected(1.5, 0.5)[0], rel=1e-15)


def test_value_and_grad_and_grad(linear):
    value, grads = linear.value_and_grad(x=X, y=Y, k=1.5, b=0.5)
    want_value, want = _expected(1.5, 0.5)
    assert float(value) == pytest.approx(want_value, rel=1e-15)
    assert list(grads) == ["k", "b"]  # in wrt order
    for n in want:
        assert float(grads[n]) == pytest.approx(want[n], rel=1e-14)
    again = linear.grad({k: 1.5, b: 0.5, x: X, y: Y})
    assert list(again) == ["k", "b"]
    assert {n: float(g) for n, g in again.items()} == {n: float(g) for n, g in grads.items()}
    assert float(linear(x=X, y=Y, k=1.5, b=0.5)) == pytest.approx(float(value), rel=1e-15)


def test_an_input_in_the_mapping_and_as_a_keyword_is_an_error(linear):
    with pytest.raises(symgrad.SymgradError, match="'k' is given twice"):
        linear({"x": X, "y": Y, "k": 100.0, "b": 0.5}, k=1.5)
    with pytest.raises(symgrad.SymgradError, match="'k' is given twice"):
        linear({"x": X, "y": Y, k: 100.0, "k": 1.5, "b": 0.5})


def test_wrt_order_is_kept():
    model = symgrad.compile(symgrad.mean((k * x + b - y) ** 2), wrt=[b, "x", k])
    grads = model.grad(x=X, y=Y, k=1.0, b=0.0)
    assert list(grads) == ["b", "x", "k"]
    assert model.wrt == ("b", "x", "k")
    assert list(model.gradients) == [b, x, k]


def test_wrt_defaults_to_every_input():
    model = symgrad.compile(k * x + b * y**2)
    assert model.wrt == model.inputs == ("b", "k", "x", "y")
    grads = model.grad(x=2.0, y=3.0, k=5.0, b=7.0)
    assert {n: float(g) for n, g in grads.items()} == {"b": 9.0, "k": 2.0, "x": 5.0, "y": 42.0}


def test_wrt_as_a_single_symbol_or_name():
    for wrt in (k, "k", [k], ["k"]):
        model = symgrad.compile(k * x, wrt=wrt)
        assert model.wrt == ("k",)
        assert list(model.grad(k=2.0, x=3.0)) == ["k"]


@pytest.mark.parametrize(
    "value", [0.5, np.float64(0.5), np.array(0.5), np.ones(4), np.ones((2, 3)), np.ones((3, 1, 2))]
)
def test_unused_parameter_gets_zeros_shaped_like_its_input(value):
    u = sp.Symbol("u")  # b is in the model, in an equation the output does not read
    model = symgrad.compile({u: b + 1, sp.Symbol("f"): symgrad.sum(k * x)}, wrt=[k, b])
    assert set(model.inputs) == {"k", "x", "b"}
    grads = model.grad(k=2.0, x=X, b=value)
    assert np.shape(grads["b"]) == np.shape(value)
    assert not np.any(grads["b"])
    assert float(grads["k"]) == pytest.approx(X.sum())
    assert model.gradients[b] == 0


@pytest.mark.parametrize("wrt", [[x, "zeta"], [x, sp.Symbol("zeta")], "zeta"])
def test_a_wrt_symbol_that_is_not_in_the_model_is_an_error(wrt):
    with pytest.raises(symgrad.SymgradError, match="zeta is not a symbol of the model"):
        symgrad.compile(x**2, wrt=wrt)


def test_numbers_lists_and_integer_arrays_are_accepted(linear):
    want = _expected(2.0, 1.0)[0]
    assert float(linear(x=[1, 2, 3], y=[2.5, 4, 7], k=2, b=1)) == pytest.approx(want)
    assert float(linear(x=np.array([1, 2, 3]), y=Y, k=np.int64(2), b=True)) == pytest.approx(want)
    assert float(linear(x=X.astype(np.float32), y=Y, k=2.0, b=1.0)) == pytest.approx(want)


def test_integer_inputs_are_computed_in_floating_point():
    model = symgrad.compile(x / y)
    assert float(model(x=1, y=2)) == 0.5
    grads = model.grad(x=1, y=2)
    assert float(grads["x"]) == 0.5 and float(grads["y"]) == -0.25


def test_inputs_are_not_modified(linear):
    Xc, Yc = X.copy(), Y.copy()
    linear.value_and_grad(x=Xc, y=Yc, k=1.5, b=0.5)
    np.testing.assert_array_equal(Xc, X)
    np.testing.assert_array_equal(Yc, Y)


def test_results_do_not_alias_inputs():
    """A gradient that equals an input's adjoint must not be the caller's array itself."""
    model = symgrad.compile(symgrad.sum(k * x), wrt=[k, x])
    K = np.ones(3)
    grads = model.grad(k=K, x=X)
    np.testing.assert_array_equal(grads["k"], X)
    grads["k"][0] = 99.0
    assert X[0] == 1.0


def test_elementwise_output_without_gradient():
    model = symgrad.compile(sp.exp(k * x))
    np.testing.assert_allclose(model(k=0.5, x=X), np.exp(0.5 * X), rtol=1e-15)


def test_scalar_model_of_scalars():
    model = symgrad.compile(sp.sin(x) * sp.exp(y))
    value, grads = model.value_and_grad(x=0.3, y=-0.2)
    assert np.shape(value) == ()
    assert float(value) == pytest.approx(np.sin(0.3) * np.exp(-0.2), rel=1e-15)
    assert float(grads["x"]) == pytest.approx(np.cos(0.3) * np.exp(-0.2), rel=1e-15)
    assert float(grads["y"]) == pytest.approx(float(value), rel=1e-15)


def test_output_and_name():
    h, f = sp.symbols("h f")
    model = symgrad.compile([(h, k * x), (f, h**2)], output=h)
    assert model.output == "h"
    assert float(model(k=2.0, x=3.0)) == 6.0
    assert model.inputs == ("k", "x")  # f is not needed for h
    model = symgrad.compile([(h, k * x), (f, h**2)], output="f")
    assert float(model(k=2.0, x=3.0)) == 36.0
    assert symgrad.compile(k * x, name="loss").output == "loss"


def test_gradients_are_keyed_by_the_users_symbols():
    kr = sp.Symbol("k", positive=True)
    model = symgrad.compile(kr**2 * x)
    assert kr in model.gradients and x in model.gradients
    assert sp.simplify(model.gradients[kr] - 2 * kr * x) == 0
    assert sp.simplify(model.gradients[x] - kr**2) == 0


def test_equations_with_string_left_sides():
    model = symgrad.compile({"h": k * x, "f": sp.Symbol("h") ** 2}, wrt=[k])
    assert float(model.grad(k=2.0, x=3.0)["k"]) == 2 * 6 * 3


def test_equation_that_renames_another():
    """An equation whose right side is a bare symbol (an alias)."""
    h, f = sp.symbols("h f")
    model = symgrad.compile([(h, x**2), (f, h)])
    value, grads = model.value_and_grad(x=3.0)
    assert float(value) == 9.0 and float(grads["x"]) == 6.0


def test_output_that_is_an_input():
    model = symgrad.compile(x)
    value, grads = model.value_and_grad(x=3.0)
    assert float(value) == 3.0 and float(grads["x"]) == 1.0


def test_constant_model():
    model = symgrad.compile(sp.Integer(3) + sp.pi)
    assert model.inputs == () and model.wrt == ()
    value, grads = model.value_and_grad()
    assert float(value) == pytest.approx(3 + np.pi) and grads == {}


def test_a_constant_output_and_gradient_are_numpy_floats_like_any_other():
    x = sp.Symbol("x")
    model = symgrad.compile({sp.Symbol("u"): x, sp.Symbol("f"): sp.Integer(3)}, wrt=[x])
    value, grads = model.value_and_grad(x=2.0)
    assert type(model(x=1.0)) is np.float64 and type(value) is np.float64 and value == 3.0
    assert type(grads["x"]) is np.float64 and grads["x"] == 0.0
    _, grads = model.value_and_grad(x=np.ones(4))  # an array gets zeros of its shape
    np.testing.assert_array_equal(grads["x"], np.zeros(4))


def test_source_is_the_declared_shapes_module_whatever_was_asked_before():
    """source (declared shapes, None for any size) is the same whether or not source_for was
    asked first for sizes that share its cache key."""
    X, W, y = sp.symbols("X W y")

    def make():
        return symgrad.compile(
            symgrad.mean((symgrad.matmul(X, W) - y) ** 2),
            wrt=[W], shapes={X: (None, 3), W: (3, 1), y: (None, 1)},
        )

    fresh = make().source
    model = make()
    specialised = model.source_for(X=np.ones((5, 3)), W=np.ones((3, 1)), y=np.ones((5, 1)))
    assert model.source == fresh
    assert specialised != fresh  # (the sizes known at a call make other code)


def test_symbolic_views_see_the_model_as_it_was_compiled():
    """The user's own symbols (with their assumptions) are looked up only when a symbolic view
    asks; equations changed after compile change nothing."""
    k, x, y = sp.Symbol("k", positive=True), sp.Symbol("x"), sp.Symbol("y")
    equations = {y: symgrad.sum(k * x)}
    wrt = [k]
    model = symgrad.compile(equations, wrt=wrt)
    equations[y] = symgrad.sum(sp.Symbol("k") * x)  # a k without assumptions, afterwards
    wrt.append(sp.Symbol("k"))
    (symbol,) = model.gradients
    assert symbol == k and symbol.is_positive
    assert {s for s in model.gradients[k].free_symbols if s.name == "k"} == {k}
    assert all(s.is_positive for s in model.gradients[k].free_symbols if s.name == "k")


def test_a_freshly_compiled_model_pickles():
    """A compiled model holds data, not closures: it pickles and the copy computes the same."""
    import pickle

    k, x = sp.symbols("k x")
    model = symgrad.compile(symgrad.mean((k * x - 1) ** 2), wrt=[k])
    copy = pickle.loads(pickle.dumps(model))
    X = np.linspace(0.0, 1.0, 5)
    assert copy.value_and_grad(k=0.5, x=X)[1]["k"] == model.value_and_grad(k=0.5, x=X)[1]["k"]
    assert copy.gradients.keys() == model.gradients.keys()


def test_a_model_that_has_run_pickles_without_its_compiled_functions():
    """After calls (compiled functions held for each shape pattern) a model still pickles:
    the functions are left out and built again at the copy's first call."""
    import pickle

    k, x = sp.symbols("k x")
    model = symgrad.compile(symgrad.mean((k * x - 1) ** 2), wrt=[k])
    X = np.linspace(0.0, 1.0, 5)
    value, grads = model.value_and_grad(k=0.5, x=X)
    model(k=0.5, x=2.0)
    copy = pickle.loads(pickle.dumps(model))
    assert copy.value_and_grad(k=0.5, x=X) == (value, grads)
    assert copy.source_for(k=0.5, x=X) == model.source_for(k=0.5, x=X)
    assert model.value_and_grad(k=0.5, x=X) == (value, grads)  # the original keeps its own
