"""Every mistake a user can make is a SymgradError (a ValueError) that names the culprit."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symgrad
from symgrad.errors import SymgradError

x, y, k, b = sp.symbols("x y k b")
alpha, beta, gamma, out = sp.symbols("alpha beta gamma out")


def _raises(f, *culprits):
    """f() raises a SymgradError and ValueError whose message names every culprit."""
    with pytest.raises(SymgradError) as info:
        f()
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    for c in culprits:
        assert c in message, (c, message)
    return message


def test_the_error_hierarchy():
    assert issubclass(symgrad.SymgradError, ValueError)
    assert symgrad.SymgradError is SymgradError


def test_cycle_names_every_symbol_on_it():
    message = _raises(
        lambda: symgrad.compile([(alpha, beta + x), (beta, gamma * 2), (gamma, alpha + 1)]),
        "alpha",
        "beta",
        "gamma",
    )
    assert "cycle" in message


def test_cycle_reports_only_the_cycle():
    # out depends on the cycle but is not on it
    message = _raises(
        lambda: symgrad.compile([(alpha, beta + x), (beta, alpha * 2), (out, alpha + y)]),
        "alpha",
        "beta",
    )
    path = message.split(":", 1)[1].split(";")[0]  # " alpha -> beta -> alpha"
    assert {p.strip() for p in path.split("->")} == {"alpha", "beta"}


def test_self_reference_is_a_cycle():
    _raises(lambda: symgrad.compile({alpha: alpha + x}), "alpha")


def test_symbol_defined_twice():
    message = _raises(lambda: symgrad.compile([(alpha, x), (alpha, x + 1)]), "alpha")
    assert "twice" in message


def test_symbol_defined_twice_through_eqs():
    eqs = [sp.Eq(alpha, x), sp.Eq(beta, alpha), sp.Eq(alpha, y)]
    _raises(lambda: symgrad.compile(eqs), "alpha")


def test_function_without_a_derivative_rule_is_named():
    mystery = sp.Function("mystery")
    _raises(lambda: symgrad.compile(mystery(x)), "mystery")
    _raises(lambda: symgrad.compile(symgrad.sum(mystery(x, k) * 2)), "mystery")
    _raises(lambda: symgrad.compile([(alpha, mystery(x) + 1), (out, alpha**2)]), "mystery")


def test_missing_inputs_are_named():
    model = symgrad.compile(symgrad.mean((k * x + b - y) ** 2), wrt=[k, b])
    message = _raises(lambda: model(x=1.0, k=1.0), "b", "y")
    assert "missing" in message
    _raises(lambda: model.value_and_grad(x=1.0, k=1.0, b=2.0), "'y'")
    _raises(lambda: model.grad({x: 1.0, k: 1.0, b: 2.0}), "'y'")


def test_unknown_inputs_are_named():
    model = symgrad.compile(symgrad.mean((k * x + b - y) ** 2), wrt=[k, b])
    message = _raises(
        lambda: model(x=1.0, y=1.0, k=1.0, b=1.0, zeta=2.0, kk=1.0), "zeta", "kk"
    )
    assert "unknown" in message
    _raises(lambda: model.value_and_grad({"x": 1.0, "y": 1.0, "k": 1.0, "b": 1.0, "q": 0}), "q")


def test_non_scalar_output_asked_for_a_gradient_suggests_a_reduction():
    model = symgrad.compile(k * x)
    value = model(k=2.0, x=np.ones(3))  # the value alone is fine
    np.testing.assert_array_equal(value, [2.0, 2.0, 2.0])
    for call in (model.value_and_grad, model.grad):
        message = _raises(lambda call=call: call(k=2.0, x=np.ones(3)), "scalar")
        assert "sum" in message and "mean" in message


def test_output_that_no_equation_defines():
    message = _raises(
        lambda: symgrad.compile([(alpha, x + 1), (beta, alpha**2)], output="omega"), "omega"
    )
    assert "alpha" in message and "beta" in message  # says what is defined
    _raises(
        lambda: symgrad.compile([(alpha, x + 1)], output=sp.Symbol("omega")), "omega"
    )


def test_wrt_an_intermediate_symbol():
    _raises(lambda: symgrad.compile([(alpha, x + 1), (beta, alpha**2)], wrt=[alpha]), "alpha")
    _raises(lambda: symgrad.compile([(alpha, x + 1), (beta, alpha**2)], wrt="alpha"), "alpha")


def test_wrt_listed_twice():
    _raises(lambda: symgrad.compile(x * k, wrt=[k, "k"]), "k")


def test_inputs_that_are_not_numbers():
    model = symgrad.compile(x**2)
    _raises(lambda: model(x="abc"), "x")
    _raises(lambda: model(x=object()), "x")


def test_inputs_passed_positionally():
    model = symgrad.compile(x**2)
    _raises(lambda: model(1.0))
    _raises(lambda: model({x: 1.0}, {x: 2.0}))


def test_shapes_that_do_not_broadcast_at_call_time():
    model = symgrad.compile(symgrad.sum(x * y))
    _raises(lambda: model.value_and_grad(x=np.ones(3), y=np.ones(4)), "(3,)", "(4,)")


def test_malformed_models():
    _raises(lambda: symgrad.compile([]))
    _raises(lambda: symgrad.compile("not a model"))
    _raises(lambda: symgrad.compile([(x + 1, x)]), "x + 1")
    _raises(lambda: symgrad.compile([sp.Eq(x, x)]))  # evaluates to True
    _raises(lambda: symgrad.compile([(alpha, x), 3]))
    _raises(lambda: symgrad.compile(sp.I * x), "I")


def test_two_symbols_with_one_name():
    _raises(lambda: symgrad.compile(x + sp.Symbol("x", positive=True)), "x")


def test_chain_of_a_name_that_is_not_an_input():
    model = symgrad.compile(k * x, wrt=[k])
    _raises(lambda: model.chain("nope"), "nope")


def test_function_the_printer_cannot_print_is_named():
    class strange(sp.Function):
        nargs = 1

        def fdiff(self, argindex=1):
            return sp.cos(self.args[0])

    _raises(lambda: symgrad.compile(strange(x)), "strange")
