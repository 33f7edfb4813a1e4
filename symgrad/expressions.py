"""SymPy expressions as the user writes them: walks that stay linear in the size of the DAG.

SymPy's own walks (``free_symbols``, ``xreplace``, ``count_ops``) visit the expanded tree: a
sub-expression shared many times is visited as often. The front end and the symbolic views
use these instead.

>>> import sympy as sp
>>> x = sp.Symbol("x")
>>> e = x
>>> for _ in range(40): e = sp.sin(e) + sp.cos(e)
>>> tree_size(e) > 2**40, sorted(free_symbols(e), key=str)
(True, [x])
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from functools import lru_cache

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.printing.str import StrPrinter


@lru_cache(maxsize=8)  # a compile asks for the same large expression's several times
def free_symbols(expr: sp.Basic) -> frozenset[sp.Symbol]:
    """``expr.free_symbols``, in time linear in the size of the expression's DAG.

    (SymPy's own walks the expanded tree: exponential for a shared sub-expression.)

    >>> x, y = sp.symbols("x y")
    >>> sorted(free_symbols(sp.sin(x) + y), key=str)
    [x, y]
    """
    found: set[sp.Symbol] = set()
    seen: set[sp.Basic] = set()
    stack = [expr]
    while stack:
        e = stack.pop()
        args = e.args
        if not args:  # an atom: a symbol, a number
            if type(e) is sp.Symbol or is_symbol(e):
                found.add(e)
            continue
        if e in seen:
            continue
        seen.add(e)
        if type(e) in _ALL_OPERANDS:
            stack.extend(args)
        elif is_symbol(e):  # a MatrixSymbol
            found.add(e)
        else:
            stack.extend(operands(e))
    return frozenset(found)


def is_symbol(e: sp.Basic) -> bool:
    return isinstance(e, (sp.Symbol, sp.MatrixSymbol))


def operands(e: sp.Basic) -> tuple:
    """The sub-expressions of ``e`` that are computed (a MatrixSymbol's sizes and a Lambda's
    body are not)."""
    if type(e) in _ALL_OPERANDS:
        return e.args
    if isinstance(e, (sp.MatrixSymbol, sp.Lambda)):
        return ()
    if isinstance(e, ElementwiseApplyFunction):
        return (e.expr,)
    return tuple(a for a in e.args if not is_option(a))


def is_option(a: sp.Basic) -> bool:
    """An argument that configures an operation (an axis, keepdims), not one it computes on."""
    return type(a) is sp.Tuple or isinstance(a, sp.logic.boolalg.BooleanAtom)


def substitute_unevaluated(expr: sp.Basic, mapping: Mapping) -> sp.Basic:
    """``expr`` with symbols replaced, exactly as written: SymPy re-arranges nothing.

    (``sp.evaluate(False)`` would do the same but clears SymPy's cache each time.)

    >>> x, t = sp.symbols("x t")
    >>> substitute_unevaluated(2*t, {t: x - 1})
    2*(x - 1)
    """
    if not mapping:
        return expr

    def combine(e, args):
        if e in mapping:
            return mapping[e]
        if not args or all(a is b for a, b in zip(args, operands(e), strict=True)):
            return e
        it = iter(args)
        new = [a if is_option(a) else next(it) for a in e.args]
        try:
            return e.func(*new, evaluate=False)
        except TypeError:  # (a class without the option: ExprCondPair, a relational's parts)
            return e.func(*new)

    return _postorder(expr, combine)


def tree_size(expr: sp.Basic, memo: dict | None = None) -> int:
    """How many nodes ``expr`` has as a tree (its DAG may be far smaller).

    >>> x = sp.Symbol("x")
    >>> e = x
    >>> for _ in range(40): e = sp.sin(e) + sp.cos(e)
    >>> tree_size(e) > 2**40
    True
    """
    return _postorder(expr, lambda e, args: 1 + sum(args), memo)


def larger_than(expr: sp.Basic, limit: int) -> bool:
    """Whether ``expr`` has more than ``limit`` nodes as a tree; looks at no more than that.

    >>> x = sp.Symbol("x")
    >>> larger_than(x + 1, 2), larger_than(x + 1, 3)
    (True, False)
    """
    stack, count = [expr], 0
    while stack:
        count += 1
        if count > limit:
            return True
        stack.extend(operands(stack.pop()))
    return False


def _postorder(expr: sp.Basic, combine, memo: dict | None = None):
    """Fold ``combine(e, [results of e's args])`` over the DAG of ``expr``, each node once."""
    memo = {} if memo is None else memo
    stack = [expr]
    while stack:
        e = stack[-1]
        if e in memo:
            stack.pop()
            continue
        todo = [a for a in operands(e) if a not in memo]
        if todo:
            stack.extend(todo)
            continue
        memo[e] = combine(e, [memo[a] for a in operands(e)])
        stack.pop()
    return memo[expr]


#: Classes every argument of which is an operand (the common case, answered first).
_ALL_OPERANDS = frozenset({sp.Add, sp.Mul, sp.Pow, sp.Symbol, sp.Integer, sp.Float, sp.Rational,
                           sp.exp, sp.log, sp.sin, sp.cos, sp.tan, sp.tanh})


def as_taught(text: str) -> str:
    """SymPy's text of an expression in the notation of a teacher: ``·`` for ``*``, ``−`` for
    minus, small exponents raised (for identifiers; marks in place of other names).

    >>> as_taught("2*(x - y)**2/N - x**(1/2) if x <= 1 else 0")
    '2·(x − y)²/N − x^(1/2) if x ≤ 1 else 0'
    """
    text = re.sub(r"\*\*(\d+)", lambda m: m.group(1).translate(_SUPERSCRIPTS), text)
    text = text.replace("**", "^").replace("*", "·").replace(" - ", " − ")
    text = text.replace(" <= ", " ≤ ").replace(" >= ", " ≥ ").replace(" != ", " ≠ ")
    return re.sub(r"(^|[(\s])-", r"\1−", text)


_SUPERSCRIPTS = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


#: The number of elements a mean averages over, as explanations and comments call it.
N = sp.Symbol("N", positive=True, integer=True)


def written_order(term: sp.Basic) -> tuple[bool, int]:
    """Where a term goes in a sum as a person writes it: added before subtracted; products and
    functions, then symbols, then numbers (``k*x + b + 1 - y``); SymPy's order within each.
    """
    return term.could_extract_minus_sign(), term_kind(term)


def term_kind(term: sp.Basic) -> int:
    """0 for a product or a function, 1 for a symbol (or its negation), 2 for a number."""
    if term.is_Number:
        return 2
    if term.is_Symbol or (term.is_Mul and len(term.args) == 2 and term.args[0] is sp.S.NegativeOne
                          and term.args[1].is_Symbol):
        return 1
    return 0


class WrittenOrderPrinter(StrPrinter):
    """SymPy's text, with the terms of a sum in the order a person writes them.

    >>> k, x, b, y = sp.symbols("k x b y")
    >>> WrittenOrderPrinter().doprint(k*x + b - y)
    'k*x + b - y'
    >>> WrittenOrderPrinter().doprint(sp.Piecewise((x, sp.Abs(x) <= 1), (sp.sign(x), True)))
    '(x if |x| <= 1 else sign(x))'
    """

    def _print_Piecewise(self, expr):
        *pairs, last = expr.args
        tail = self._print(last.expr) if last.cond == sp.true else "nan"
        if last.cond != sp.true:
            pairs.append(last)
        heads = "".join(f"{self._print(p.expr)} if {self._print(p.cond)} else " for p in pairs)
        return f"({heads}{tail})"

    def _print_Abs(self, expr):
        return f"|{self._print(expr.args[0])}|"

    def _as_ordered_terms(self, expr, order=None):
        if expr.is_Add:
            return sorted(expr.args, key=written_order)
        return super()._as_ordered_terms(expr, order=order)


def structural_hash(expr: sp.Basic) -> str:
    """A digest of what ``expr`` is, the same in every process (independent of
    ``PYTHONHASHSEED``): each class by its module and name, each atom by its ``srepr`` (a
    symbol with its assumptions, a number exactly); a walk of the DAG, not of the tree.

    >>> x, y = sp.symbols("x y")
    >>> structural_hash(x + y) == structural_hash(y + x), structural_hash(x) == structural_hash(y)
    (True, False)
    >>> structural_hash(x) == structural_hash(sp.Symbol("x", positive=True))
    False
    """
    memo: dict[sp.Basic, str] = {}
    stack = [expr]
    while stack:  # iterative post-order: deep models must not hit the recursion limit
        e = stack[-1]
        if e in memo:
            stack.pop()
            continue
        args = e.args
        todo = [a for a in args if a not in memo]
        if todo:
            stack.extend(todo)
            continue
        kind = type(e)
        if args:
            text = f"{kind.__module__}.{kind.__qualname__}({','.join(memo[a] for a in args)})"
        else:
            text = f"{kind.__module__}.{sp.srepr(e)}"
        memo[e] = hashlib.sha256(text.encode()).hexdigest()[:32]
        stack.pop()
    return memo[expr]
