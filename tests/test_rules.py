"""The derivative table, tested as a table: every entry against sympy.diff and finite differences.

A rule is called as the backward pass calls it: ``rule(g, out, *args)`` with ``out`` a symbol
standing for the node's own value (then replaced by the expression it stands for).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import sympy as sp
from helpers import MODULES, no_delta

import symgrad
from symgrad.codegen.printer import HELPERS, Printer
from symgrad.errors import NoRuleError, SymgradError
from symgrad.functions import FUNCTIONS, mean, relu, sigmoid, softplus
from symgrad.functions import sum as sg_sum
from symgrad.ops import sigmoid_complement, sinc_derivative
from symgrad.rules import RULES, derivative, local_partials, rule_for, vjp

x, y, z = sp.symbols("x y z", real=True)
OUT = sp.Symbol("out", real=True)  # the node's own value, as the backward pass passes it
G = sp.Symbol("g", real=True)

#: class -> (expression of x, points where it is smooth)
ELEMENTWISE = {
    sp.exp: (sp.exp(x), [-2.0, -0.3, 0.4, 1.7]),
    sp.log: (sp.log(x), [0.2, 1.0, 3.5]),
    sp.sin: (sp.sin(x), [-2.0, -0.3, 0.4, 1.7]),
    sp.cos: (sp.cos(x), [-2.0, -0.3, 0.4, 1.7]),
    sp.tan: (sp.tan(x), [-1.2, -0.3, 0.4, 1.1]),
    sp.sinh: (sp.sinh(x), [-2.0, -0.3, 0.4, 1.7]),
    sp.cosh: (sp.cosh(x), [-2.0, -0.3, 0.4, 1.7]),
    sp.tanh: (sp.tanh(x), [-2.0, -0.3, 0.4, 1.7]),
    sp.asin: (sp.asin(x), [-0.9, -0.3, 0.4, 0.8]),
    sp.acos: (sp.acos(x), [-0.9, -0.3, 0.4, 0.8]),
    sp.atan: (sp.atan(x), [-2.0, -0.3, 0.4, 1.7]),
    sp.Abs: (sp.Abs(x), [-2.0, -0.3, 0.4, 1.7]),
    sp.sign: (sp.sign(x), [-2.0, -0.3, 0.4, 1.7]),
    sp.Heaviside: (sp.Heaviside(x), [-2.0, -0.3, 0.4, 1.7]),
    sigmoid: (sigmoid(x), [-3.0, -0.3, 0.4, 2.5]),
    softplus: (softplus(x), [-3.0, -0.3, 0.4, 2.5]),
    relu: (relu(x), [-2.0, -0.3, 0.4, 1.7]),
    sp.sinc: (sp.sinc(x), [-2.0, -0.3, 0.4, 1.7]),
}

#: class -> [(expression, {symbol: value} points)] for the multi-argument rules
MULTI = {
    sp.Add: [x + y + z, x + y + 1],
    sp.Mul: [x * y * z, x * y],
    sp.Pow: [
        x**3,
        x**-2,
        x ** sp.Rational(2, 3),
        sp.sqrt(x),
        1 / x,
        1 / sp.sqrt(x),
        x**2.5,
        x**y,
        2**y,
    ],
    sp.Max: [sp.Max(x, y), sp.Max(x, y, z), sp.Max(x, 0)],
    sp.Min: [sp.Min(x, y), sp.Min(x, y, z), sp.Min(x, 0)],
    sp.Piecewise: [
        sp.Piecewise((x**2 * y, x > y), (sp.sin(y), True)),
        sp.Piecewise((sp.log(x), x > 1), (x - 1, True)),
    ],
}
POINTS = [
    {x: 0.7, y: 1.3, z: 2.1},
    {x: 1.9, y: 0.6, z: -0.4},
    {x: 2.6, y: -0.5, z: 3.3},
]


def _rule_partials(expr: sp.Expr, out: sp.Expr | None = None) -> dict[sp.Symbol, sp.Expr]:
    """The local partials of ``expr`` from its rule with g = 1.

    ``out`` is what the rule receives as the node's value: the expression itself by default,
    or a symbol standing for it (as the backward pass passes it), replaced afterwards.
    """
    rule = RULES[type(expr)]
    result = rule(sp.S.One, expr if out is None else out, *expr.args)
    if isinstance(result, dict):
        partials = dict(result)
    else:
        partials = {}
        for arg, c in zip(expr.args, result, strict=True):
            if isinstance(arg, sp.Symbol):
                partials[arg] = partials.get(arg, 0) + c
    if out is None:
        return {s: sp.sympify(p) for s, p in partials.items()}
    return {s: sp.sympify(p).xreplace({out: expr}) for s, p in partials.items()}


@functools.cache
def _lambdified(expr: sp.Expr, syms: tuple):
    return sp.lambdify(syms, expr, modules=MODULES)


def _numeric(expr: sp.Expr, point: dict) -> float:
    # the operation the rule of sinc inserts, as its formula (lambdify does not know it)
    expr = sp.sympify(expr).replace(sinc_derivative, lambda a: (sp.cos(a) - sp.sin(a) / a) / a)
    syms = tuple(sorted(point, key=lambda s: s.name))
    return float(_lambdified(sp.sympify(expr), syms)(*(point[s] for s in syms)))


def _fd(expr: sp.Expr, point: dict, s: sp.Symbol, h: float = 1e-5) -> float:
    syms = tuple(sorted(point, key=lambda s: s.name))
    f = _lambdified(expr, syms)

    def at(v):
        p = dict(point)
        p[s] = v
        return float(f(*(p[t] for t in syms)))

    v = point[s]
    step = h * max(1.0, abs(v))
    return (at(v - 2 * step) - 8 * at(v - step) + 8 * at(v + step) - at(v + 2 * step)) / (
        12 * step
    )


# -- the table is complete ------------------------------------------------------------------


def test_every_symgrad_function_has_a_rule():
    missing = [f.__name__ for f in FUNCTIONS if f not in RULES]
    assert not missing


def test_every_required_function_has_a_rule():
    required = [
        sp.Add, sp.Mul, sp.Pow, sp.exp, sp.log, sp.sin, sp.cos, sp.tan, sp.tanh, sp.sinh,
        sp.cosh, sp.asin, sp.acos, sp.atan, sp.Abs, sp.sign, sp.Max, sp.Min, sp.Piecewise,
        sp.Heaviside, sigmoid, softplus, relu, sg_sum, mean,
    ]  # fmt: skip
    assert [c.__name__ for c in required if c not in RULES] == []


#: Piecewise-constant functions (SymPy leaves their derivative unevaluated): tested below
STEPS = {sp.floor: sp.floor(x), sp.ceiling: sp.ceiling(x)}


def _known(cls) -> bool:
    return cls in ELEMENTWISE or cls in MULTI or cls in STEPS or cls in (sg_sum, mean)


@pytest.mark.parametrize("cls", list(RULES), ids=lambda c: c.__name__)
def test_every_table_entry(cls):
    """Every entry of RULES, including ones added after this test was written.

    The core entries are checked in detail below; a new one-argument elementwise entry is
    checked here against sympy.diff and finite differences at a few points of (0, 1).
    Entries that are not elementwise (axis reductions, matmul, ...) need shapes: their own
    tests cover them.
    """
    if _known(cls):
        return
    if not getattr(cls, "elementwise", True):
        pytest.skip(f"{cls.__name__} is not elementwise: tested with shapes elsewhere")
    expr = cls(x)
    partials = local_partials(expr)
    got = partials.get(x, sp.S.Zero)
    for v in (0.3, 0.55, 0.8):
        want = _numeric(no_delta(sp.diff(expr, x)), {x: v})
        assert _numeric(got, {x: v}) == pytest.approx(want, rel=1e-12, abs=1e-14)
        assert _numeric(got, {x: v}) == pytest.approx(_fd(expr, {x: v}, x), rel=1e-7, abs=1e-9)


# -- elementwise rules: local partial == sympy.diff == finite differences --------------------


@pytest.mark.parametrize("cls", list(ELEMENTWISE), ids=lambda c: c.__name__)
def test_elementwise_rule_matches_sympy_diff(cls):
    expr, points = ELEMENTWISE[cls]
    partials = _rule_partials(expr)
    expected = no_delta(sp.diff(expr, x))
    got = partials.get(x, sp.S.Zero)
    for v in points:
        assert _numeric(got, {x: v}) == pytest.approx(
            _numeric(expected, {x: v}), rel=1e-12, abs=1e-14
        ), (cls.__name__, v, got, expected)


@pytest.mark.parametrize("cls", list(ELEMENTWISE), ids=lambda c: c.__name__)
def test_elementwise_rule_matches_finite_differences(cls):
    expr, points = ELEMENTWISE[cls]
    got = _rule_partials(expr).get(x, sp.S.Zero)
    for v in points:
        assert _numeric(got, {x: v}) == pytest.approx(_fd(expr, {x: v}, x), rel=1e-7, abs=1e-9)


@pytest.mark.parametrize("cls", list(ELEMENTWISE), ids=lambda c: c.__name__)
def test_elementwise_rule_scales_by_the_adjoint(cls):
    """rule(g, ...) = g · rule(1, ...): a vector-Jacobian product, linear in g."""
    expr, _ = ELEMENTWISE[cls]
    rule = RULES[cls]
    with_g = rule(G, OUT, *expr.args)
    with_1 = rule(sp.S.One, OUT, *expr.args)
    for a, b in zip(with_g, with_1, strict=True):
        assert sp.simplify(sp.sympify(a) - G * sp.sympify(b)) == 0


@pytest.mark.parametrize(
    ("cls", "expected"),
    [
        (sp.exp, OUT),  # exp' = exp
        (sp.tanh, 1 - OUT**2),  # tanh' = 1 - tanh²
        # σ' = σ·(1 - σ), with 1 - σ computed as σ(-x) (exact where σ rounds near 1)
        (sigmoid, OUT * sigmoid_complement(OUT, x)),
        (sp.tan, 1 + OUT**2),
    ],
    ids=lambda v: getattr(v, "__name__", ""),
)
def test_rules_reuse_the_node_value(cls, expected):
    (got,) = RULES[cls](sp.S.One, OUT, x)
    assert sp.expand(got - expected) == 0


# -- multi-argument rules --------------------------------------------------------------------


def _reference_partial(expr: sp.Expr, s: sp.Symbol, point: dict) -> float:
    """sympy.diff, except for Max/Min of three operands where SymPy takes seconds: there the
    derivative is 1 for the operand that is strictly the extreme one, else 0."""
    if isinstance(expr, (sp.Max, sp.Min)) and len(expr.args) > 2:
        values = {a: _numeric(a, point) for a in expr.args}
        best = (max if isinstance(expr, sp.Max) else min)(values.values())
        winners = [a for a, v in values.items() if v == best]
        return float(winners == [s])
    return _numeric(no_delta(sp.diff(expr, s)), point)


MULTI_CASES = [(cls, e) for cls, exprs in MULTI.items() for e in exprs]


@pytest.mark.parametrize(("cls", "expr"), MULTI_CASES, ids=[sp.sstr(e) for _, e in MULTI_CASES])
def test_multi_argument_rule_matches_sympy_and_finite_differences(cls, expr):
    assert type(expr) is cls
    partials = _rule_partials(expr)
    for point in POINTS:
        if isinstance(expr, sp.Pow) and not expr.exp.is_integer and point[x] <= 0:
            continue
        p = {s: point[s] for s in (x, y, z)}
        for s in (x, y, z):
            got = _numeric(partials.get(s, sp.S.Zero), p)
            want = _reference_partial(expr, s, p)
            fd = _fd(expr, p, s)
            assert got == pytest.approx(want, rel=1e-12, abs=1e-14), (s, p)
            assert got == pytest.approx(fd, rel=1e-7, abs=1e-9), (s, p)


CONTRACT_CASES = [(cls, e, [{x: v} for v in vs]) for cls, (e, vs) in ELEMENTWISE.items()] + [
    (cls, e, POINTS[:2]) for cls, e in MULTI_CASES
]


@pytest.mark.parametrize(
    ("cls", "expr", "points"), CONTRACT_CASES, ids=[sp.sstr(e) for _, e, _ in CONTRACT_CASES]
)
def test_rule_accepts_the_node_value_as_a_symbol(cls, expr, points):
    """The backward pass hands a rule the node's value as the node's own symbol (its code
    variable), not as the expression: the rule must give the same partials either way."""
    with_symbol = _rule_partials(expr, out=OUT)
    with_expr = _rule_partials(expr)
    assert with_symbol.keys() == with_expr.keys()
    for point in points:
        if isinstance(expr, sp.Pow) and not expr.exp.is_integer and point[x] <= 0:
            continue
        for s in with_expr:
            assert _numeric(with_symbol[s], point) == pytest.approx(
                _numeric(with_expr[s], point), rel=1e-13, abs=1e-15
            )


@pytest.mark.parametrize("cls", [sp.Max, sp.Min], ids=["Max", "Min"])
def test_max_min_split_a_tie_equally(cls):
    partials = _rule_partials(cls(x, y))
    tie = {x: 1.5, y: 1.5, z: 0.0}
    assert _numeric(partials[x], tie) == 0.5
    assert _numeric(partials[y], tie) == 0.5


@pytest.mark.parametrize("cls", [sp.Max, sp.Min], ids=["Max", "Min"])
def test_max_min_split_a_tie_of_three_in_thirds(cls):
    """k tied arguments get 1/k each (not 1/2 each: the shares must add up to 1)."""
    partials = _rule_partials(cls(x, y, z))
    for point, want in [
        ({x: 1.5, y: 1.5, z: 1.5}, {x: 1 / 3, y: 1 / 3, z: 1 / 3}),
        ({x: 1.5, y: 1.5, z: 1.5 - 2 * (cls is sp.Max) + 1}, None),
    ]:
        got = {s: _numeric(partials[s], point) for s in (x, y, z)}
        if want is not None:
            assert got == pytest.approx(want, rel=1e-15)
        assert sum(got.values()) == pytest.approx(1.0, rel=1e-15)
    two_tied = {x: 2.0, y: 2.0, z: 0.0 if cls is sp.Max else 4.0}
    got = {s: _numeric(partials[s], two_tied) for s in (x, y, z)}
    assert got == {x: 0.5, y: 0.5, z: 0.0}


def _evaluate_printed(expr: sp.Expr, values: dict):
    printer = Printer()
    code = printer.doprint(expr)
    namespace = {"np": np}
    for name in printer.helpers:
        exec(HELPERS[name], namespace)
    return eval(code, namespace, dict(values))


@pytest.mark.parametrize(("cls", "factor"), [(sg_sum, 1.0), (mean, 0.2)], ids=["sum", "mean"])
def test_reduction_rules(cls, factor):
    """Over every element: the adjoint of sum(x) reaches each element of x unchanged, that of
    mean(x) divided by the number of elements; the cotangent covers x's whole shape."""
    X = sp.Symbol("X", real=True)
    (d,) = RULES[cls](G, cls(X), X)
    got = _evaluate_printed(d, {"g": np.float64(2.0), "X": np.arange(5.0)})
    got = np.broadcast_to(got, (5,))
    np.testing.assert_allclose(got, np.full(5, 2.0 * factor), rtol=1e-15)


@pytest.mark.parametrize("cls", list(STEPS), ids=lambda c: c.__name__)
def test_step_functions_have_zero_derivative(cls):
    """floor and ceiling: 0 between the steps (finite differences), as PyTorch has it."""
    expr = STEPS[cls]
    got = _rule_partials(expr).get(x, sp.S.Zero)
    for v in (-1.5, -0.3, 0.4, 2.7):
        assert _numeric(got, {x: v}) == 0.0
        assert _fd(expr, {x: v}, x) == 0.0
    model = symgrad.compile(symgrad.sum(cls(x) * x))  # through the compiled code
    grads = model.grad(x=np.array([-1.5, 0.4, 2.7]))
    np.testing.assert_array_equal(grads["x"], np.floor([-1.5, 0.4, 2.7]) + (cls is sp.ceiling))


def test_rule_for_walks_the_class_hierarchy_and_falls_back_to_fdiff():
    """A function the printer knows but RULES does not (asinh) gets its fdiff as its rule."""
    assert sp.asinh not in RULES
    (d,) = rule_for(sp.asinh(x))(G, OUT, x)
    assert sp.simplify(d - G / sp.sqrt(1 + x**2)) == 0


def test_a_function_no_code_computes_gets_no_rule_from_its_fdiff():
    """An fdiff would give a rule, but nothing could compute the function itself."""

    class cube(sp.Function):
        nargs = 1

        def fdiff(self, argindex=1):
            return 3 * self.args[0] ** 2

    k = sp.Symbol("k")
    for model in (cube(x), cube(x) * k):  # differentiated, or only computed
        with pytest.raises(SymgradError, match=r"cannot compute cube.*sigmoid"):
            symgrad.compile(model)


def test_a_function_without_a_rule_is_named():
    with pytest.raises(NoRuleError, match="mystery"):
        rule_for(sp.Function("mystery")(x))


def test_vjp_accumulates_a_repeated_operand():
    e = sp.Pow(x, x, evaluate=False)
    got = vjp(e, sp.S.One, OUT)[x].xreplace({OUT: e})
    assert _numeric(got, {x: 1.3}) == pytest.approx(_numeric(sp.diff(x**x, x), {x: 1.3}))


def test_local_partials_and_forward_derivative():
    assert local_partials(sp.exp(x)) == {x: sp.exp(x)}
    e = sigmoid(x**2) * sp.sin(x * y)
    for s in (x, y):
        diff = derivative(e, s) - sp.diff(e, s)
        assert sp.simplify(diff.rewrite(sp.exp)) == 0


# -- the printer can print every function ----------------------------------------------------


def _printable_cases():
    cases = [(cls, expr) for cls, (expr, _) in ELEMENTWISE.items()]
    cases += MULTI_CASES
    return cases


@pytest.mark.parametrize(
    ("cls", "expr"), _printable_cases(), ids=[sp.sstr(e) for _, e in _printable_cases()]
)
def test_printer_prints_every_function_to_working_numpy(cls, expr):
    printer = Printer()
    code = printer.doprint(expr)
    namespace = {"np": np}
    for name in printer.helpers:
        exec(HELPERS[name], namespace)
    p = {"x": 0.7, "y": 1.3, "z": 2.1}
    with np.errstate(all="ignore"):
        got = eval(code, namespace, dict(p))
    want = _numeric(expr, {x: 0.7, y: 1.3, z: 2.1})
    assert float(got) == pytest.approx(want, rel=1e-14), code


def _instance(cls):
    """cls applied to array symbols, with as many operands as it needs."""
    A, B = sp.symbols("A B", real=True)
    try:
        return cls(A)
    except (TypeError, symgrad.SymgradError):  # it needs two operands
        return cls(A, B)


@pytest.mark.parametrize("cls", FUNCTIONS, ids=lambda c: c.__name__)
def test_printer_prints_every_symgrad_function(cls):
    printer = Printer()
    code = printer.doprint(_instance(cls))
    assert "A" in code
    compile(code, "<printed>", "eval")  # valid Python
    for name in printer.helpers:
        assert name in HELPERS


def test_reductions_print_to_numpy():
    assert Printer().doprint(sg_sum(x**2)) == "(x**2).sum()"
    assert Printer().doprint(mean(x)) == "x.mean()"


def test_compile_accepts_a_function_given_only_through_fdiff():
    class cube(sp.Function):
        nargs = 1

        def fdiff(self, argindex=1):
            return 3 * self.args[0] ** 2

    # compiling needs code for cube: the printer refuses it with a SymgradError naming it
    with pytest.raises(symgrad.SymgradError, match="cube"):
        symgrad.compile(cube(sp.Symbol("x")))
