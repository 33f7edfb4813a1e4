"""The common case of printing, fast: sums, products and powers of symbols and numbers, and
elementwise calls of them.

SymPy's printers spend 30–100 µs on ``2*t1*t3`` (dispatch through the class hierarchy, a
precedence query per operand that builds ``-expr`` to ask whether a minus sign comes out).
A generated module has a line per node, so the printers in printer.py and emit.py try this
first: it writes exactly what SymPy's printer writes for the expressions it knows (the tests
compare the two on random expressions) and raises ``Unsupported`` for anything else, which
then goes to SymPy's printer whole.

>>> import sympy as sp
>>> x, y = sp.symbols("x y", real=True)
>>> text(-2*x*(1 - y)**2 + sp.exp(x), {sp.exp: "np.exp({0})"})
'-2*x*(1 - y)**2 + np.exp(x)'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import sympy as sp
from sympy.printing.precedence import PRECEDENCE

from ..graph import NodeSymbol

ATOM, FUNC, POW, MUL, ADD = (PRECEDENCE[k] for k in ("Atom", "Func", "Pow", "Mul", "Add"))
UNARY = (POW + MUL) / 2  # where SymPy puts a unary minus


class Unsupported(Exception):
    """An expression outside the fast path's cases."""


def text(
    expr: sp.Basic,
    calls: Mapping[type, str],
    *,
    floats: bool = True,
    on_call: Callable[[type], None] | None = None,
) -> str:
    """``expr`` as SymPy's code printer (``floats=True``) or string printer would write it.

    ``calls`` maps a function class to its template (``"np.exp({0})"``); ``on_call`` is told
    of every class used. Raises ``Unsupported`` for an expression it does not know.

    >>> t = sp.Symbol("t", real=True)
    >>> text(-(1 - t)**2, {})
    '-(1 - t)**2'
    >>> text(t/2, {})  # a division: left to SymPy's printer
    Traceback (most recent call last):
    ...
    symgrad.codegen.fastprint.Unsupported
    """

    return _visit(expr, calls, floats, on_call)[0]


def _visit(e: sp.Basic, calls, floats: bool, on_call) -> tuple[str, float]:
    """``(text, precedence)`` of ``e``. (A function of its own, not a closure in ``text``: a
    closure that calls itself is a reference cycle, left for the cycle collector, at every
    line printed.) Node symbols, the most common operands, are printed where they are met,
    without a call."""
    cls = type(e)
    if cls is NodeSymbol or cls is sp.Symbol:
        return e.name, ATOM
    if cls is sp.Add:
        return _sum(e._args, calls, floats, on_call), ADD  # (.args: a property around _args)
    if cls is sp.Mul:
        return _product(e._args, calls, floats, on_call)
    if cls is sp.Pow:
        base, exp = e._args
        if not exp.is_Integer or exp.p < 2 or base.is_Number:
            raise Unsupported
        if type(base) is NodeSymbol:
            return f"{base.name}**{exp.p}", POW
        b, prec = _visit(base, calls, floats, on_call)
        return f"({b})**{exp.p}" if prec <= POW else f"{b}**{exp.p}", POW
    if e.is_Integer:
        return str(e.p), (ATOM if e.p >= 0 else ADD)
    if floats and cls is sp.Float:
        value = float(e)
        return repr(value), (ATOM if value >= 0 else ADD)
    template = calls.get(cls)
    if template is None:
        raise Unsupported
    if on_call is not None:
        on_call(cls)
    return template.format(*(_visit(a, calls, floats, on_call)[0] for a in e.args)), FUNC


def _sum(terms: tuple, calls, floats: bool, on_call) -> str:
    """``a + b - c``: each term's sign written as the operator before it."""
    parts = []  # " + ", term, " - ", term, ...
    for term in terms:
        cls = type(term)
        if cls is NodeSymbol:
            parts += (" + ", term.name)
            continue
        t, prec = _visit(term, calls, floats, on_call)
        if cls is sp.Add:
            parts += (" + ", f"({t})")
        elif t[0] == "-":
            parts += (" - ", f"({t[1:]})" if prec < ADD else t[1:])
        else:
            parts += (" + ", f"({t})" if prec < ADD else t)
    return ("-" if parts[0] == " - " else "") + "".join(parts[1:])


def _product(args: tuple, calls, floats: bool, on_call) -> tuple[str, float]:
    """``2*x*y``, ``-x*y``, ``-2*x*(1 - y)``: an integer (or, in code, float) coefficient
    first, then the factors."""
    first = args[0]
    if first.is_Number:
        if first is _ONE or not (first.is_Integer or (floats and first.is_Float)):
            raise Unsupported  # a rational coefficient is printed as a division
        factors = args[1:]
        if not factors:  # a product of one number: not one the compiler builds
            raise Unsupported
        value = first.p if first.is_Integer else float(first)
        negative = value < 0
        if negative:
            head = "" if first is _MINUS_ONE else (
                str(-value) if first.is_Integer else repr(-value)) + "*"
            prec = ADD
        else:
            head = _visit(first, calls, floats, on_call)[0] + "*"
            prec = MUL
    else:
        factors, negative, head, prec = args, False, "", MUL
    printed = []
    for a in factors:
        if type(a) is NodeSymbol:
            printed.append(a.name)
            continue
        if a.is_Number:
            raise Unsupported  # unevaluated products are spelled out differently
        t, p = _visit(a, calls, floats, on_call)
        if negative and not head and len(factors) == 1:
            return "-" + (f"({t})" if p <= UNARY else t), ADD
        printed.append(f"({t})" if p <= prec else t)
    return ("-" if negative else "") + head + "*".join(printed), prec


_ONE, _MINUS_ONE = sp.S.One, sp.S.NegativeOne


__all__ = ["Unsupported", "text"]
