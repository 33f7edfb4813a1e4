"""Wrong numbers and crashes on valid models, each case checked against an independent
reference (NumPy evaluating the same formula, central finite differences).

The random sweeps that cover each class live in test_fuzz.py; these are the reported cases.
"""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
import sympy as sp
from helpers import finite_difference

import symgrad

a, t, w, v = sp.symbols("a t w v")
A, B, C, X, y = sp.symbols("A B C X y")


def check_gradients(model, point, rel=1e-7):
    """Every gradient has its input's shape and equals central finite differences."""
    grads = model.grad(**point)
    for name, g in grads.items():
        assert np.shape(g) == np.shape(point[name]), name
        expected = finite_difference(lambda **p: model(**p), point, name)
        np.testing.assert_allclose(g, expected, rtol=rel, atol=1e-8, err_msg=name)


# -- 1. a gradient summed back to its parameter's shape ------------------------------------------


@pytest.mark.parametrize("reduce", [symgrad.max, symgrad.sum, symgrad.mean, symgrad.logsumexp])
@pytest.mark.parametrize("param_shape", [(), (1,)])
def test_a_parameter_reaching_a_reduction_through_a_plain_sum_gets_its_own_shape(
    reduce, param_shape
):
    model = symgrad.compile(reduce(a + t), wrt=[t])
    point = {"a": np.array([1.0, 3.0, 2.0]), "t": np.zeros(param_shape)}
    check_gradients(model, point)
    assert np.shape(model.grad(**point)["t"]) == param_shape


def test_the_reported_max_case_is_one():
    model = symgrad.compile(symgrad.max(a + t), wrt=[t])
    assert float(model.grad(a=np.array([1.0, 3.0, 2.0]), t=0.0)["t"]) == 1.0


def test_fit_trains_a_scalar_offset_under_a_max():
    model = symgrad.compile((symgrad.max(a + t) - 5) ** 2, wrt=[t])
    params = symgrad.fit(
        model, {"t": 0.0}, {"a": np.array([1.0, 3.0, 2.0])}, symgrad.optim.SGD(lr=0.1),
        steps=200, progress=False,
    ).params
    assert np.shape(params["t"]) == ()
    assert abs(float(params["t"]) - 2.0) < 1e-6


# -- 2. operator precedence around matmul ----------------------------------------------------


def run_every_way(model, point, tmp_path):
    """The value through the call, the shape-specialised source and the saved module."""
    values = [model(**point)]
    namespace: dict = {}
    exec(compile(model.source_for(**point), "<source_for>", "exec"), namespace)
    values.append(namespace["forward"](**point))
    path = model.save(tmp_path / "saved.py")
    spec = importlib.util.spec_from_file_location("saved", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    values.append(module.forward(**point))
    return values


def test_a_product_with_a_matmul_keeps_its_parentheses(tmp_path):
    model = symgrad.compile(symgrad.sum(w * symgrad.matmul(A, v)), wrt=[v])
    point = {"A": np.array([[0.0, 1.0], [1.0, 0.0]]), "v": np.array([1.0, 0.0]),
             "w": np.array([1.0, 2.0])}
    expected = np.sum(point["w"] * (point["A"] @ point["v"]))
    assert expected == 2.0
    for value in run_every_way(model, point, tmp_path):
        assert float(value) == expected
    np.testing.assert_allclose(model.grad(**point)["v"], point["A"].T @ point["w"])


@pytest.mark.parametrize(
    "make, reference",
    [
        (lambda: symgrad.matmul(A, w * v), lambda p: p["A"] @ (p["w"] * p["v"])),
        (lambda: -w * symgrad.matmul(A, v), lambda p: -p["w"] * (p["A"] @ p["v"])),
        (lambda: symgrad.matmul(A, v) / w, lambda p: (p["A"] @ p["v"]) / p["w"]),
        (lambda: symgrad.matmul(A, v) ** 2, lambda p: (p["A"] @ p["v"]) ** 2),
        (lambda: w - symgrad.matmul(A, v), lambda p: p["w"] - p["A"] @ p["v"]),
        (lambda: symgrad.matmul(A, v / w), lambda p: p["A"] @ (p["v"] / p["w"])),
        (lambda: symgrad.matmul(w * A, v), lambda p: (p["w"] * p["A"]) @ p["v"]),
    ],
)
def test_matmul_beside_every_binary_operator(make, reference, tmp_path):
    rng = np.random.default_rng(0)
    point = {"A": rng.normal(size=(3, 3)), "v": rng.normal(size=3),
             "w": rng.uniform(1, 2, size=3)}
    model = symgrad.compile(symgrad.sum(make()), wrt=[v])
    expected = np.sum(reference(point))
    point = {name: point[name] for name in model.inputs}
    for value in run_every_way(model, point, tmp_path):
        np.testing.assert_allclose(value, expected, rtol=1e-12)
    check_gradients(model, point)


def test_an_elementwise_factor_between_matmuls_in_a_gradient():
    rng = np.random.default_rng(1)
    point = {n: rng.normal(size=(3, 3)) for n in "ABC"}
    e = symgrad.sum(symgrad.matmul(sp.tanh(symgrad.matmul(symgrad.matmul(B, A), B)), C))
    check_gradients(symgrad.compile(e, wrt=[A]), point)


def test_the_textbook_logistic_loss_with_labels_of_shape_n():
    rng = np.random.default_rng(2)
    point = {"X": rng.normal(size=(20, 3)), "y": rng.choice([-1.0, 1.0], size=20),
             "w": rng.normal(size=3)}
    model = symgrad.compile(symgrad.mean(symgrad.softplus(-y * symgrad.matmul(X, w))), wrt=[w])
    expected = np.mean(np.logaddexp(0, -point["y"] * (point["X"] @ point["w"])))
    np.testing.assert_allclose(model(**point), expected, rtol=1e-12)
    check_gradients(model, point)


# -- 9. an output that is not a scalar evaluates -----------------------------------------------


@pytest.mark.parametrize(
    "make, reference",
    [
        (lambda: symgrad.sum(X * w, axis=1), lambda p: np.sum(p["X"] * p["w"], axis=1)),
        (lambda: symgrad.mean(X * w, axis=-1), lambda p: np.mean(p["X"] * p["w"], axis=-1)),
        (lambda: symgrad.max(X * w, axis=1, keepdims=True),
         lambda p: np.max(p["X"] * p["w"], axis=1, keepdims=True)),
        (lambda: symgrad.log_softmax(X * w, axis=0),
         lambda p: (p["X"] * p["w"]) - np.log(np.sum(np.exp(p["X"] * p["w"]), axis=0))),
        (lambda: symgrad.matmul(X, w), lambda p: p["X"] @ p["w"]),
        (lambda: symgrad.transpose(X * w), lambda p: (p["X"] * p["w"]).T),
    ],
)
def test_an_output_that_is_not_a_scalar_evaluates(make, reference, tmp_path):
    rng = np.random.default_rng(3)
    point = {"X": rng.normal(size=(2, 3)), "w": rng.normal(size=3)}
    model = symgrad.compile(make(), wrt=[w])
    for value in run_every_way(model, point, tmp_path):
        np.testing.assert_allclose(value, reference(point), rtol=1e-12)
    with pytest.raises(symgrad.SymgradError, match="not a scalar"):
        model.value_and_grad(**point)


# -- Piecewise around operations that are not elementwise, and other forms -------------------


def test_a_piecewise_over_reductions_evaluates_and_differentiates():
    g, kk = sp.symbols("g kk")
    rng = np.random.default_rng(4)
    point = {"X": rng.normal(size=(3, 4)), "g": rng.normal(size=(4, 3)), "kk": rng.normal(size=3)}
    e = symgrad.sum(sp.Piecewise((symgrad.mean(X, axis=1), symgrad.sum(g, axis=0) > 0.5),
                                 (kk, True)))
    model = symgrad.compile(e)
    p = point
    expected = np.sum(np.where(p["g"].sum(axis=0) > 0.5, p["X"].mean(axis=1), p["kk"]))
    np.testing.assert_allclose(model(**point), expected, rtol=1e-12)
    check_gradients(model, point)


@pytest.mark.parametrize(
    "inner",
    [lambda: symgrad.logsumexp(X, axis=1), lambda: symgrad.max(X, axis=1),
     lambda: symgrad.sum(symgrad.softmax(X, axis=1) * X, axis=1),
     lambda: symgrad.matmul(X, w)],
)
def test_a_piecewise_branch_may_hold_a_reduction_softmax_or_matmul(inner):
    h = sp.Symbol("h")
    rng = np.random.default_rng(5)
    point = {"X": rng.normal(size=(2, 3)), "h": np.array([0.7, -0.4]), "w": rng.normal(size=3)}
    model = symgrad.compile(symgrad.sum(sp.Piecewise((inner(), h > 0), (h**2, True))))
    point = {n: point[n] for n in model.inputs}
    check_gradients(model, point)


def test_a_full_reduction_inside_a_piecewise_under_max_gets_the_input_shape():
    m = symgrad.compile(symgrad.max(sp.Piecewise((symgrad.sum(a, axis=0), t >= -0.3), (t, True))),
                        wrt=[a])
    point = {"a": np.array([[1.5, 1.3, 0.5], [-1.1, 0.6, 0.9], [-0.4, 1.0, -1.1]]),
             "t": np.array([1.3])}
    np.testing.assert_allclose(m.grad(**point)["a"], [[0, 1, 0]] * 3)


def test_sympy_min_and_max_accept_symgrad_reductions():
    e = sp.Min(a, a - symgrad.max(t, axis=0))
    model = symgrad.compile(symgrad.sum(e))
    point = {"a": np.array([0.5, -1.0]), "t": np.array([[0.3, -2.0], [1.0, 0.1]])}
    expected = np.sum(np.minimum(point["a"], point["a"] - point["t"].max(axis=0)))
    np.testing.assert_allclose(model(**point), expected)


def test_a_quotient_as_the_right_operand_of_matmul():
    rng = np.random.default_rng(6)
    point = {"A": rng.normal(size=(2, 3)), "B": rng.normal(size=(3, 4)) + 3,
             "C": rng.normal(size=(2, 4))}
    model = symgrad.compile(symgrad.sum(C * symgrad.matmul(A, 1 / B)), wrt=[C])
    np.testing.assert_allclose(model.grad(**point)["C"], point["A"] @ (1 / point["B"]))
    check_gradients(model, point)


def test_a_factor_and_its_inverse_keep_the_broadcast_they_carry():
    """(g/t)*t is g only where t does not set the shape: here it spreads a (1,) mean to (3,)."""
    model = symgrad.compile(symgrad.mean(symgrad.mean(sp.log(sp.exp(a)), keepdims=True)),
                            wrt=[a])
    point = {"a": np.array([1.0, 3.0, 2.0])}
    np.testing.assert_allclose(model.grad(**point)["a"], np.full(3, 1 / 3))
    check_gradients(model, point)


@pytest.mark.parametrize(
    ("make", "derivative"),
    [(lambda c: sp.Abs(sp.exp(sp.tanh(c))),
      lambda v: np.exp(np.tanh(v)) * (1 - np.tanh(v) ** 2)),
     (lambda c: sp.Abs(sp.exp(sp.erfc(c))),
      lambda v: -2 / np.sqrt(np.pi) * np.exp(-(v**2)) * np.exp(math.erfc(v)))],
    ids=["exp(tanh)", "exp(erfc)"],
)
def test_abs_of_a_function_of_a_symbol_not_declared_real(make, derivative):
    """SymPy writes |exp(tanh(c))| with re(c) and im(c), and |exp(erfc(c))| with
    erfc(re(c) ± I·im(c)), when c may be complex; inputs are real."""
    c = sp.Symbol("c")
    e = make(c)
    assert e.has(sp.im)
    grad = symgrad.compile(e).grad(c=0.3)["c"]
    assert grad == pytest.approx(derivative(0.3), rel=1e-14)


def test_the_derivative_of_a_power_in_its_exponent_is_zero_where_the_base_is_zero(
    strict_warnings,
):
    """d/dy x**y = x**y·log(x), continued by 0 at x = 0 (PyTorch's convention), no warning."""
    xs = sp.Symbol("xs")
    model = symgrad.compile(symgrad.sum(xs**t), wrt=[xs, t])
    grads = model.grad(xs=np.array([0.0, 1.0, 2.0]), t=2.0)
    assert grads["t"] == pytest.approx(4 * np.log(2.0), rel=1e-15)
    np.testing.assert_allclose(grads["xs"], [0.0, 2.0, 4.0])
    assert float(symgrad.compile(xs**t, wrt=[t]).grad(xs=0.0, t=2.0)["t"]) == 0.0
    point = {"xs": np.array([0.5, 1.5, 2.0]), "t": 1.7}
    check_gradients(model, point)


def test_the_code_for_an_output_that_is_not_a_scalar_refuses_the_gradient_at_once():
    """Specialised to shapes where the output is certainly not a scalar, value_and_grad
    computes the value and refuses, with no backward lines that could never run."""
    model = symgrad.compile(symgrad.sum(X * w, axis=1), wrt=[w])
    point = {"X": np.ones((2, 3)), "w": np.ones(3)}
    source = model.source_for(**point)
    body = source.split("def value_and_grad", 1)[1].split("\ndef ", 1)[0]
    assert "raise ValueError" in body and "dw" not in body and "return" not in body
    with pytest.raises(symgrad.SymgradError, match=r"not a scalar.*\(2,\)"):
        model.value_and_grad(**point)


@pytest.mark.parametrize("cls", [sp.Max, sp.Min])
def test_max_and_min_of_three_with_an_infinite_winner(cls, strict_warnings):
    """The winner is found by equality (the result is one of the arguments), so an infinite
    argument that wins is no inf − inf = NaN in the others' shares."""
    b_, c_ = sp.symbols("b_ c_")
    sign = 1 if cls is sp.Max else -1
    model = symgrad.compile(symgrad.sum(cls(a, b_ + t, c_)), wrt=[t])
    grads = model.grad(a=np.array([sign * np.inf, 0.0]), b_=np.array([0.0, sign * 5.0]),
                       c_=sign * 1.0, t=0.0)
    assert float(grads["t"]) == 1.0


def test_the_derivative_in_the_exponent_of_a_negative_base_warns_as_numpy_does():
    """log of a negative base is NaN: NumPy's own warning says so, it is not silenced."""
    xs = sp.Symbol("xs")
    model = symgrad.compile(symgrad.sum(xs**t), wrt=[t])
    with pytest.warns(RuntimeWarning, match="invalid value"):
        grads = model.grad(xs=np.array([-1.0, 2.0]), t=1.0)
    assert np.isnan(grads["t"])
