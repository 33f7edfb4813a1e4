"""The derivative table: one vector-Jacobian rule per SymPy class.

A rule is ``rule(g, out, *args) -> one cotangent per arg``: ``g`` is the adjoint of the node
(d output / d node), ``out`` the node's own value, ``args`` its operands. Rules reuse ``out``
where that is the natural form (exp' = exp, tanh' = 1 - tanh², sigmoid' = σ·(1 - σ)). With
``g = 1`` an elementwise rule gives the local partial derivatives. Broadcasting is not the
rules' business: the backward pass sums cotangents back to their operand's shape.

Adding a function SymPy and NumPy already know is one entry here (and one in the printer's
table); a function without an entry here falls back to its ``fdiff`` (SymPy's own
derivative). ``compile`` refuses a function outside the printer's table before any rule is
asked for.

Rules for operations that are not elementwise (reductions, matmul, softmax) are true
vector-Jacobian products: matmul sends Ḡ·Bᵀ to A and Aᵀ·Ḡ to B, a reduction spreads its adjoint
back over the reduced axes, softmax sends out·(Ḡ − sum(Ḡ·out, axis)) without a dense Jacobian.

Conventions at non-smooth points follow PyTorch: relu'(0) = 0, |x|'(0) = 0, sign' = 0,
Heaviside' = floor' = ceiling' = 0, d/dy 0**y = 0. Max and Min split the gradient equally
between the k arguments that tie, g/k each (as ``torch.maximum`` does for two and
``torch.amax`` for more): Max(a, b) passes g·H(a - b) to a with H(0) = 1/2.

>>> import sympy as sp
>>> x, g = sp.symbols("x g", real=True)
>>> RULES[sp.tanh](g, sp.tanh(x), x)
(g*(1 - tanh(x)**2),)
>>> local_partials(sp.exp(x))
{x: exp(x)}
"""

from __future__ import annotations

from collections.abc import Callable

import sympy as sp

from .construct import term_base
from .errors import NoRuleError
from .frontend import free_symbols
from .functions import (
    log_softmax,
    logsumexp,
    matmul,
    max,
    mean,
    ones_like,
    relu,
    sigmoid,
    softmax,
    softplus,
    sum,
    transpose,
)
from .ops import (
    broadcast_like,
    expand_dims,
    matmul_vjp,
    max_vjp,
    sigmoid_complement,
    sinc_derivative,
    size,
)

S = sp.S
Rule = Callable[..., tuple]


def _others(xs: tuple, i: int) -> sp.Expr:
    return sp.Mul(*(x for j, x in enumerate(xs) if j != i))


def _mul(g, out, *xs):
    return tuple(g * _others(xs, i) for i in range(len(xs)))


def _pow(g, out, base, exp):
    if exp == S.Half:
        d_base = g / (2 * out)  # sqrt' = 1/(2·sqrt)
    elif exp == -1:
        d_base = -g * out**2  # (1/x)' = -1/x²
    else:
        d_base = g * exp * base ** (exp - 1)
    if exp.is_Number:
        d_exp = S.Zero
    elif base.is_zero:
        d_exp = S.Zero  # 0**y is 0 for every y > 0 (PyTorch, JAX and autograd agree)
    elif base.is_number and not base.is_extended_positive:
        raise NoRuleError(
            f"a power of {sp.sstr(base)} has no real derivative with respect to its exponent "
            f"(log({sp.sstr(base)}) is not real); make the base positive"
        )
    else:
        # out·log(base), and 0 where the base is 0 (there out is 0 and log(base) would be −inf;
        # PyTorch gives 0 too): the log is taken of 1 there, so no log(0) is ever computed,
        # and a negative base still says "invalid value" as NumPy's log does
        safe = sp.Piecewise((S.One, sp.Eq(base, 0)), (base, True))
        d_exp = g * out * sp.log(safe)
    return d_base, d_exp


def _max_or_min(cls: type, sign: int) -> Rule:
    """Max or Min: g goes to the argument that wins; k arguments that tie get g/k each.

    With two arguments that is H(x - y) with H(0) = 1/2; with more, an argument wins when it
    equals the result (exactly: the result is one of them), and the count of winners splits g.
    """

    def rule(g, out, *xs):
        if len(xs) == 2:
            x, y = xs
            return (g * sp.Heaviside(sign * (x - y), S.Half),
                    g * sp.Heaviside(sign * (y - x), S.Half))
        # 1 where x is the result (== is exact: the result is one of them, infinite ones too)
        wins = [sp.Piecewise((S.One, sp.Eq(x, out)), (S.Zero, True)) for x in xs]
        share = g / sp.Add(*wins)
        return tuple(share * w for w in wins)

    return rule


def _sigmoid(g, out, x):
    # σ' = σ·(1 − σ), with 1 − σ computed as 1/(1 + exp(x)) = σ(−x): 1 − σ itself cancels once σ
    # rounds near 1
    return (g * out * sigmoid_complement(out, x),)


def _sinc(g, out, x):
    # (cos x − sinc x)/x is 0/0 at 0 and cancels near it: an operation of its own computes it
    return (g * sinc_derivative(x),)


def _options(options: tuple) -> tuple[tuple[int, ...] | None, bool]:
    """A reduction's stored ``(axes, keepdims)`` arguments as (axis or None, keepdims)."""
    if not options:
        return None, False
    axes, keepdims = options
    return (tuple(int(a) for a in axes) or None), bool(keepdims)


def _spread(g, options: tuple):
    """A reduction's adjoint with the reduced axes put back (as length one) to broadcast."""
    axis, keepdims = _options(options)
    if axis is None or keepdims:
        return g
    return expand_dims(g, sp.Tuple(*axis))


def _sum(g, out, x, *options):
    return (broadcast_like(_spread(g, options), x),)


def _mean(g, out, x, *options):
    if not options:
        return (broadcast_like(g / size(x), x),)
    return (broadcast_like(_spread(g, options) * size(out) / size(x), x),)


def _max(g, out, x, *options):
    axis, keepdims = _options(options)
    axes = sp.Tuple(*axis) if axis is not None else sp.Tuple()
    return (max_vjp(g, x, out, axes, sp.true if keepdims else sp.false),)


def _logsumexp(g, out, x, *options):
    return (_spread(g, options) * sp.exp(x - _spread(out, options)),)


def _softmax(g, out, x, axis):
    return (out * (g - sum(g * out, axis=axis, keepdims=True)),)


def _log_softmax(g, out, x, axis):
    return (g - sp.exp(out) * sum(g, axis=axis, keepdims=True),)


def _transpose(g, out, x, *axes):
    if not axes:
        return (transpose(g),)
    inverse = sorted(range(len(axes[0])), key=lambda i: int(axes[0][i]))
    return (transpose(g, axes=inverse),)


def _constant(g, out, *xs):
    return (S.Zero,) * len(xs)


def _piecewise(g, out, *pairs):
    """Branch-safe: each branch's derivative lives under that branch's condition only."""
    symbols = set().union(*(pair.expr.free_symbols for pair in pairs))
    cotangents = {}
    for v in sorted(symbols, key=sp.default_sort_key):
        pieces = [(derivative(pair.expr, v), pair.cond) for pair in pairs]
        if any(d != 0 for d, _ in pieces):
            cotangents[v] = g * sp.Piecewise(*pieces)
    return cotangents


#: SymPy class -> vector-Jacobian rule.
RULES: dict[type, Rule] = {
    sp.Add: lambda g, out, *xs: (g,) * len(xs),
    sp.Mul: _mul,
    sp.Pow: _pow,
    sp.exp: lambda g, out, x: (g * out,),
    sp.log: lambda g, out, x: (g / x,),
    sp.sin: lambda g, out, x: (g * sp.cos(x),),
    sp.cos: lambda g, out, x: (-g * sp.sin(x),),
    sp.tan: lambda g, out, x: (g * (1 + out**2),),
    sp.sinh: lambda g, out, x: (g * sp.cosh(x),),
    sp.cosh: lambda g, out, x: (g * sp.sinh(x),),
    sp.tanh: lambda g, out, x: (g * (1 - out**2),),
    sp.asin: lambda g, out, x: (g / sp.sqrt(1 - x**2),),
    sp.acos: lambda g, out, x: (-g / sp.sqrt(1 - x**2),),
    sp.atan: lambda g, out, x: (g / (1 + x**2),),
    sp.Abs: lambda g, out, x: (g * sp.sign(x),),
    sp.sign: _constant,
    sp.Heaviside: _constant,
    sp.floor: _constant,
    sp.ceiling: _constant,
    ones_like: _constant,
    sp.Max: _max_or_min(sp.Max, +1),
    sp.Min: _max_or_min(sp.Min, -1),
    sp.Piecewise: _piecewise,
    sp.sinc: _sinc,
    sigmoid: _sigmoid,
    softplus: lambda g, out, x: (g * sigmoid(x),),
    relu: lambda g, out, x: (g * sp.Heaviside(x, 0),),
    sum: _sum,
    mean: _mean,
    max: _max,
    logsumexp: _logsumexp,
    softmax: _softmax,
    log_softmax: _log_softmax,
    matmul: lambda g, out, a, b: (matmul_vjp(g, a, b, 0), matmul_vjp(g, a, b, 1)),
    transpose: _transpose,
}


def rule_for(expr: sp.Basic) -> Rule:
    """The rule of ``expr``'s class (or of a base class), else one built from its ``fdiff``.

    >>> rule_for(sp.Symbol("x") + 1)(2, None, sp.Symbol("x"), 1)
    (2, 2)
    """
    for cls in type(expr).__mro__:
        if cls in RULES:
            return RULES[cls]
    if isinstance(expr, sp.Function):  # (compile refuses first what no code computes)
        return _fdiff_rule(expr)
    raise NoRuleError(f"no derivative rule for {type(expr).__name__} (in {sp.sstr(expr)})")


def _fdiff_rule(expr: sp.Function) -> Rule:
    name = type(expr).__name__
    try:
        partials = [expr.fdiff(i + 1) for i in range(len(expr.args))]
    except (sp.core.function.ArgumentIndexError, NotImplementedError, TypeError):
        partials = None
    if partials is None or any(p.has(sp.Derivative, sp.Subs) for p in partials):
        raise NoRuleError(
            f"no derivative rule for {name} (in {sp.sstr(expr)}); add an entry to "
            f"symgrad/rules.py or give {name} an fdiff method"
        )
    return lambda g, out, *xs: tuple(g * p for p in partials)


def vjp(expr: sp.Basic, g: sp.Expr, out: sp.Expr) -> dict[sp.Symbol, sp.Expr]:
    """The cotangent of every symbol ``expr`` reads, given the adjoint ``g`` of ``expr``.

    >>> x, y = sp.symbols("x y", real=True)
    >>> vjp(x*y, sp.Symbol("g"), x*y)
    {x: g*y, y: g*x}
    """
    if not expr.args:  # an equation that only names another node, or a constant
        return {expr: g} if isinstance(expr, sp.Symbol) else {}
    result = rule_for(expr)(g, out, *expr.args)
    if isinstance(result, dict):
        return result
    cotangents: dict[sp.Symbol, sp.Expr] = {}
    for arg, c in zip(expr.args, result, strict=False):  # option arguments (axes) come last
        if not isinstance(arg, sp.Symbol):
            u = term_base(arg) if type(expr) is sp.Add else None  # a term c*u**n of a sum
            if not isinstance(u, sp.Symbol):
                continue
            arg, c = u, c * arg.diff(u)
        if c != 0:
            cotangents[arg] = cotangents[arg] + c if arg in cotangents else c
    return cotangents


def local_partials(expr: sp.Basic, out: sp.Expr | None = None) -> dict[sp.Symbol, sp.Expr]:
    """The local partial derivative of an elementwise operation with respect to each operand."""
    return vjp(expr, S.One, expr if out is None else out)


def is_elementwise(expr: sp.Basic) -> bool:
    """Whether ``expr`` maps elements to elements (reductions and the like do not)."""
    return getattr(type(expr), "elementwise", True)


def derivative(expr: sp.Basic, v: sp.Symbol, memo: dict | None = None) -> sp.Expr:
    """d expr / d v by forward mode over the expression's DAG, with the rules of this table.

    A reduction is linear: d sum(e)/dv = sum(de/dv), the derivative with respect to a uniform
    shift of ``v`` (the ordinary derivative when ``v`` is a scalar).

    >>> x = sp.Symbol("x", real=True)
    >>> derivative(sigmoid(x**2), x)
    2*x*sigmoid(x**2)*(1 - sigmoid(x**2))
    >>> derivative(relu(x), x)
    Heaviside(x, 0)
    """
    memo = {} if memo is None else memo
    stack = [expr]
    while stack:  # iterative post-order, so deep models do not hit the recursion limit
        e = stack[-1]
        if e in memo:
            stack.pop()
            continue
        if e == v:
            memo[e] = S.One
        elif not e.args:
            memo[e] = S.Zero
        elif isinstance(e, sp.Piecewise):
            pieces = [(derivative(p.expr, v, memo), p.cond) for p in e.args]
            memo[e] = sp.Piecewise(*pieces) if any(d != 0 for d, _ in pieces) else S.Zero
        else:
            todo = [a for a in e.args if a not in memo]
            if todo:
                stack.extend(todo)
                continue
            if all(memo[a] == 0 for a in e.args):
                memo[e] = S.Zero
            elif getattr(type(e), "linear", False):
                arg, d = e.args[0], memo[e.args[0]]
                if not free_symbols(arg) <= free_symbols(d):  # keep the shape of a constant
                    d = d * ones_like(arg)
                memo[e] = e.func(d, *e.args[1:])
            elif isinstance(e, matmul):
                a, b = e.args
                memo[e] = matmul(memo[a], b) + matmul(a, memo[b])
            elif not is_elementwise(e):
                raise NoRuleError(
                    f"no symbolic derivative for {type(e).__name__} (the compiled gradient "
                    "works; only the SymPy expression of the gradient is not available)"
                )
            else:
                partials = rule_for(e)(S.One, e, *e.args)
                memo[e] = sp.Add(*(p * memo[a] for p, a in zip(partials, e.args, strict=True)))
        stack.pop()
    return memo[expr]
