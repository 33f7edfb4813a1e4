"""SymPy expressions built as written, without SymPy's evaluation.

Building ``Mul(a, b)`` the usual way costs SymPy some 20–40 µs (it flattens, sorts, collects
powers and asks the operands' assumptions); a model of ten thousand nodes builds several
expressions per node. The compiler's own expressions need none of that: a node's expression
is an operation the user wrote, over symbols that stand for the operands' nodes, and a rule's
result is already in SymPy's normal form, only over other symbols. ``rebuild`` and
``substitute`` put such an expression together from given parts in about a microsecond, with
SymPy's own classes, so everything downstream (printing, rules, ``==``) treats it as usual.
Sums and products are only flattened, and their exact numbers folded (``2*(-1*g)`` is
``-2*g``); their terms are neither sorted nor collected.

Only the operations listed in ``PLAIN`` (and Add, Mul, Pow over commutative operands) are
built this way; anything else is built by its class with ``evaluate=False``.

>>> import sympy as sp
>>> x, y, t = sp.symbols("x y t", real=True)
>>> substitute(2*x*sp.exp(y), {x: t})
2*t*exp(y)
>>> rebuild(sp.exp(x), (t,)) == sp.exp(t)
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import sympy as sp
from sympy.core.expr import Expr

from .functions import relu, sigmoid, softplus
from .graph import NodeSymbol
from .ops import broadcast_like, expand_dims, full_like, sum_to

#: Functions whose SymPy constructor only evaluates (exp(log(x)) -> x, ...) or checks the
#: number of arguments: built from the compiler's own parts, they are used as they are.
PLAIN: frozenset[type] = frozenset(
    {
        sp.exp, sp.log, sp.sin, sp.cos, sp.tan, sp.sinh, sp.cosh, sp.tanh, sp.asin, sp.acos,
        sp.atan, sigmoid, softplus, relu, sum_to, broadcast_like, full_like, expand_dims,
    }
)


def rebuild(e: sp.Basic, args: Sequence[sp.Basic]) -> sp.Basic:
    """``e``'s operation over ``args`` (replacing ``e.args`` in order), not re-evaluated.

    >>> x, y = sp.symbols("x y", real=True)
    >>> rebuild(x*y, (y, x)).args   # kept as given: SymPy would sort them
    (y, x)
    """
    return new(type(e), *args)


def new(cls: type, *args: sp.Basic) -> sp.Basic:
    """``cls(*args)`` without SymPy's evaluation.

    >>> g, k = sp.symbols("g k", real=True)
    >>> new(sum_to, g, k)
    sum_to(g, k)
    """
    if cls is sp.Add or cls is sp.Mul:
        if all(a.is_commutative for a in args):
            return _flat(cls, args)
    elif cls is sp.Pow:
        base, exp = args
        if base.is_commutative and exp.is_commutative:
            return assembled(sp.Pow, base, exp)
    elif cls in PLAIN:
        return Expr.__new__(cls, *args)
    try:
        return cls(*args, evaluate=False)
    except TypeError:  # a class without the option (ExprCondPair, a relational's parts)
        return cls(*args)


def _flat(cls: type, args: Sequence[sp.Basic]) -> sp.Basic:
    """A sum or product of commutative ``args``: nested ones of the same kind flattened, exact
    numbers (integers, fractions) folded into one leading term, nothing else re-arranged."""
    flat: list[sp.Basic] = []
    for a in args:
        if type(a) is cls:
            flat.extend(a._args)  # (as SymPy keeps them: .args is a property around _args)
        else:
            flat.append(a)
    numbers = [a for a in flat if a.is_Rational]
    identity = cls.identity  # S.Zero or S.One: singletons, so compared with "is"
    if numbers and (len(numbers) > 1 or numbers[0] is identity or flat[0] is not numbers[0]):
        c = numbers[0]
        for n in numbers[1:]:  # SymPy's exact arithmetic on numbers
            c = c * n if cls is sp.Mul else c + n
        if cls is sp.Mul and c is sp.S.Zero:
            return c
        flat = ([] if c is identity else [c]) + [a for a in flat if not a.is_Rational]
    if len(flat) <= 1:
        return flat[0] if flat else identity
    return assembled(cls, *flat)


def assembled(cls: type, *args: sp.Basic) -> sp.Basic:
    """The sum, product or power ``cls`` of commutative ``args``, exactly as given: what
    ``new`` builds once nothing is left to flatten or fold (and ``cls._from_args`` does,
    without two calls more). For parts already in that form.

    >>> x, t = sp.symbols("x t", real=True)
    >>> assembled(sp.Mul, sp.Integer(-2), t, x).args
    (-2, t, x)
    """
    result = Expr.__new__(cls, *args)
    result.is_commutative = True
    return result


_REAL = sp.Symbol("real", real=True)


def real_symbol(name: str) -> NodeSymbol:
    """A new node symbol: ``Symbol(name, real=True)`` as a ``graph.NodeSymbol`` (equal to
    itself alone), without deducing the assumptions again.

    >>> t = real_symbol("t1")
    >>> t.is_real, t == t, t == real_symbol("t1"), t == sp.Symbol("t1", real=True)
    (True, True, False, False)
    """
    symbol = Expr.__new__(NodeSymbol)
    symbol.name = name
    # what follows from real=True, shared: facts SymPy adds to it later (is_positive: None)
    # follow from the same assumptions, so they hold for every node symbol alike
    symbol._assumptions = _REAL._assumptions
    symbol._assumptions_orig = _REAL._assumptions_orig
    symbol._assumptions0 = _REAL._assumptions0  # compared by == and hashed
    return symbol


def term_base(a: sp.Basic) -> sp.Basic | None:
    """``u`` if ``a`` is a monomial of it, ``c*u``, ``u**n`` or ``c*u**n`` (a number c, an
    integer n >= 2): the terms of a sum that the front end keeps inside the sum, as a person
    writes ``x - y`` or ``100*t**2 + s**2``, instead of making each a node. Else None.

    >>> x, y = sp.symbols("x y")
    >>> term_base(-y), term_base(100*(x - y)**2), term_base(x*y), term_base(x**-1)
    (y, x - y, None, None)
    """
    cls = type(a)
    if cls is sp.Mul:
        args = a._args
        if len(args) != 2 or not args[0].is_Number:
            return None
        a = args[1]
        cls = type(a)
        if cls is not sp.Pow:
            return None if a.is_Number else a
    if cls is sp.Pow:
        base, exp = a._args
        if exp.is_Integer and exp.p > 1 and not base.is_Number:
            return base
    return None


def with_base(a: sp.Basic, base: sp.Basic) -> sp.Basic:
    """The monomial ``a`` (see ``term_base``) of another base, built as written.

    >>> x, t = sp.symbols("x t")
    >>> with_base(100*(x - 1)**2, t)
    100*t**2
    """
    c, power = (None, a) if type(a) is sp.Pow else a._args
    if not (base.is_Symbol and base.is_commutative):  # (a number, say: c*n folds)
        if c is None:
            return new(sp.Pow, base, power._args[1])
        return new(sp.Mul, c, with_base(power, base) if type(power) is sp.Pow else base)
    # over a symbol, nothing folds: the parts are put together as they are (as new would)
    power = assembled(sp.Pow, base, power._args[1]) if type(power) is sp.Pow else base
    if c is None or c is sp.S.One:  # (1*u: unevaluated input; new drops the 1)
        return power
    return assembled(sp.Mul, c, power)


def contains(expr: sp.Basic, classes: type | tuple[type, ...]) -> bool:
    """Whether ``expr`` is or has an instance of ``classes`` in it: ``expr.has(...)`` for
    classes, without SymPy's general matching.

    >>> x = sp.Symbol("x")
    >>> contains(2*sp.exp(x), sp.exp), contains(2*x, sp.exp)
    (True, False)
    """
    stack = [expr]
    while stack:
        e = stack.pop()
        if isinstance(e, classes):
            return True
        stack.extend(e.args)
    return False


def substitute(expr: sp.Basic, mapping: Mapping[sp.Basic, sp.Basic], memo: dict | None = None):
    """``expr`` with the keys of ``mapping`` replaced by their values, its structure kept.

    Meant for replacing symbols by symbols (or by expressions kept as they are); each distinct
    sub-expression is visited once.

    >>> a, b, c = sp.symbols("a b c", real=True)
    >>> substitute(a*(1 - a), {a: b + c})
    (1 - (b + c))*(b + c)
    """
    args = expr.args
    if all(not a.args for a in args):  # an atom, or one operation of atoms: the common case
        if not args:
            return mapping.get(expr, expr)
        new = [mapping.get(a, a) for a in args]
        return expr if all(n is a for n, a in zip(new, args, strict=True)) else rebuild(expr, new)
    return _substituted(expr, mapping, {} if memo is None else memo)


def _substituted(e: sp.Basic, mapping: Mapping, memo: dict) -> sp.Basic:
    """``substitute``'s walk. (A function of its own, not a closure: a closure that calls
    itself is a reference cycle, left for the cycle collector at every call.)"""
    if e in mapping:
        return mapping[e]
    args = e.args
    if not args:
        return e
    done = memo.get(e)
    if done is None:
        new = [_substituted(a, mapping, memo) for a in args]
        done = e if all(n is a for n, a in zip(new, args, strict=True)) else rebuild(e, new)
        memo[e] = done
    return done


__all__ = [
    "PLAIN", "assembled", "contains", "new", "real_symbol", "rebuild", "substitute",
    "term_base", "with_base",
]
