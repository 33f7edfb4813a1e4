"""Front end: a SymPy expression or a few named equations -> the IR.

Every free symbol no equation defines becomes an input; each equation's right side is written
as nodes (``builder.Builder.sympy``: one node per distinct sub-expression, so a sub-expression
that occurs many times is one node), its left side names the node it computes. Equations are
ordered first (Kahn's algorithm, ``order.py``), so nodes are added in topological order.

>>> import sympy as sp
>>> from symgrad.functions import sigmoid, mean
>>> x, y, k1, b1, L1, s, Loss = sp.symbols("x y k1 b1 L1 σ Loss")
>>> g = build([(Loss, mean((s - y)**2)), (s, sigmoid(L1)), (L1, k1*x + b1)], output=Loss)
>>> print(g)
%0 = input  # b1 (parameter)
%1 = input  # k1 (parameter)
%2 = input  # x (parameter)
%3 = input  # y (parameter)
%4 = mul %1, %2
%5 = add %4, %0  # L1
%6 = sigmoid %5  # σ
%7 = sub %6, %3
%8 = const [2]  # shape ()
%9 = pow %7, %8
%10 = mean %9 [None, False]  # Loss; shape ()
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from operator import attrgetter
from typing import Any

import numpy as np
import sympy as sp

from .builder import REAL_PARTS, Builder, _NotReal
from .errors import ModelError, ShapeError
from .expressions import free_symbols, is_symbol, larger_than
from .ir import INPUT, PARAMETER, TEMP, Graph, Info, Opaque, Shape, any_size
from .order import toposort

Equations = list[tuple[sp.Symbol, sp.Expr]]


def equations_of(model: Any, name: str = "f") -> Equations:
    """Normalise what the user passed into a list of ``(symbol, expression)`` pairs.

    Accepts one expression (its output is called ``name``), a dict ``{symbol: expr}``, a list
    of ``(symbol, expr)`` pairs or of ``sympy.Eq(symbol, expr)``.

    >>> x = sp.Symbol("x")
    >>> equations_of(x**2)
    [(f, x**2)]
    >>> equations_of({"y": x + 1})
    [(y, x + 1)]
    """
    if isinstance(model, Mapping):
        pairs: Iterable = model.items()
    elif isinstance(model, sp.Eq):
        pairs = [model]
    elif isinstance(model, (list, tuple)) and not isinstance(model, sp.Basic):
        pairs = model
    else:
        expr = _sympify(model, name)
        if name in {s.name for s in free_symbols(expr)}:
            raise ModelError(
                f"the output is called {name}, like one of the expression's symbols; "
                f"pass another name=, e.g. compile(..., name='{name}_out')"
            )
        return [(sp.Symbol(name), expr)]
    equations = []
    for item in pairs:
        if isinstance(item, sp.Eq):
            lhs, rhs = item.lhs, item.rhs
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            lhs, rhs = item
        elif item is sp.true or item is sp.false:
            raise ModelError(f"an equation evaluated to {item}: write it as (symbol, expression)")
        else:
            raise ModelError(
                f"cannot read {item!r} as an equation: give (symbol, expression) pairs, "
                "sympy.Eq(symbol, expression) or a dict {symbol: expression}"
            )
        if isinstance(lhs, str):
            lhs = sp.Symbol(lhs)
        if not is_symbol(lhs):
            raise ModelError(f"the left side of an equation must be a symbol, not {lhs}")
        equations.append((lhs, _sympify(rhs, lhs.name)))
    if not equations:
        raise ModelError("the model has no equations")
    return equations


def _sympify(expr: Any, name: str) -> sp.Expr:
    try:
        expr = sp.sympify(expr, strict=True)
    except (sp.SympifyError, TypeError) as e:
        raise ModelError(f"{name}: {expr!r} is not a SymPy expression") from e
    if not isinstance(expr, sp.Expr):
        raise ModelError(f"{name}: {expr} is not an arithmetic expression")
    return expr

def build(
    model: Any,
    *,
    name: str = "f",
    output: sp.Symbol | str | None = None,
    wrt: Sequence[sp.Symbol | str] | None = None,
    shapes: Mapping[sp.Symbol | str, Shape] | None = None,
) -> Graph:
    """Turn a model into the IR (see the module docstring)."""
    equations = equations_of(model, name)
    defined: dict[str, sp.Symbol] = {}
    for lhs, _ in equations:
        if lhs.name in defined:
            raise ModelError(f"{lhs.name} is defined twice; give each equation its own symbol")
        defined[lhs.name] = lhs
    rhs_of = {lhs: rhs for lhs, rhs in equations}
    free = {lhs: free_symbols(rhs) for lhs, rhs in equations}
    out = _output_symbol(output, equations, defined, free)
    order = toposort(
        {lhs: sorted_symbols(s for s in free[lhs] if s in rhs_of) for lhs, _ in equations},
        label=lambda s: s.name,
    )
    needed = _reachable(out, free, rhs_of)
    order = [lhs for lhs in order if lhs in needed]
    symbols = _user_symbols(order, free)
    inputs = sorted_symbols(s for s in symbols if s not in rhs_of)
    in_model = {s.name for rhs in free.values() for s in rhs}  # (reached by the output or not)
    params = _resolve_wrt(wrt, inputs, symbols, rhs_of, in_model)
    known_inputs, param_set = set(inputs), set(params)
    for p in params:
        if p not in known_inputs:  # asked for, but the output does not depend on it: zero gradient
            inputs.append(p)
    declared = _declared_shapes(shapes or {}, inputs, rhs_of)
    graph = Graph()
    env: dict[sp.Basic, int] = {}
    for s in inputs:
        role = PARAMETER if s in param_set else INPUT
        shape = declared.get(s.name)
        if shape is None:
            shape = Opaque(s.name)
        else:  # any size (None): a size of its own, so that the arrays made from it share it
            shape = tuple(any_size(s.name, k) if n is None else n for k, n in enumerate(shape))
        env[s] = graph.input(s.name, role, shape)
    for lhs in order:
        env[lhs] = _equation(graph, lhs, rhs_of[lhs], env)
    graph.output = env[out]
    graph.wrt = [env[p] for p in params]
    graph.equations = [(lhs.name, rhs_of[lhs]) for lhs in order]
    graph.forward = len(graph)
    return graph


def _equation(graph: Graph, lhs: sp.Symbol, rhs: sp.Expr, env: dict) -> int:
    """Write one equation's right side as nodes and name its node after the left side."""
    label = lhs.name
    inner = Info(TEMP, equation=label)  # every inner node of the equation's: one object
    builder = Builder(graph, info=lambda: inner,
                      describe=lambda: describe(label, rhs))
    try:
        try:
            i = builder.sympy(rhs, env)
        except _NotReal:  # SymPy may have written a real value's parts (re, im): take them out
            i = builder.sympy(_real_parts(rhs), env)
    except ShapeError:
        raise
    except ModelError as e:
        raise type(e)(f"{label}: {e}") from None
    return graph.name(i, label)


def _real_parts(expr: sp.Expr) -> sp.Expr:
    """``expr`` with re, im and conjugate of its (real) values replaced and SymPy's evaluation
    let run: |exp(erfc(a))| is written with erfc(re(a) ± I·im(a)), which is erfc(a)."""
    return expr.replace(lambda e: type(e) in REAL_PARTS,
                        lambda e: REAL_PARTS[type(e)](e.args[0]))


def describe(label: str, rhs: sp.Expr) -> str:
    """``L1 = matmul(X, W1)``: an equation, for messages (its left side alone, if it is long).

    >>> describe("L1", sp.Symbol("x") + 1)
    'L1 = x + 1'
    """
    if larger_than(rhs, 60):
        return label
    return f"{label} = {sp.sstr(rhs)}"


def _declared_shapes(shapes, inputs, rhs_of) -> dict[str, Shape]:
    """Declared shapes by name: ``shapes=`` first, else a MatrixSymbol's own (n, m)."""
    declared: dict[str, Shape] = {}
    for s in [*inputs, *rhs_of]:
        if isinstance(s, sp.MatrixSymbol):
            declared[s.name] = tuple(int(n) if n.is_Integer else None for n in s.shape)
    names = {s.name for s in [*inputs, *rhs_of]}
    for key, shape in shapes.items():
        name = key.name if isinstance(key, (sp.Symbol, sp.MatrixSymbol)) else str(key)
        if name not in names:
            raise ModelError(f"shapes: {name} is not a symbol of the model")
        declared[name] = _shape(name, shape)
    return declared


def _shape(name: str, shape: Any) -> Shape:
    """A declared shape as a tuple of sizes, or a ModelError naming it: a size is a whole
    number >= 0, a name (an identifier, the same size wherever it is used, bound at the call)
    or None for any size; never read from a number in a string or rounded from a fraction."""
    sizes = shape if isinstance(shape, tuple | list) else None
    if sizes is not None and all(
        n is None
        or (isinstance(n, str) and n.isidentifier())
        or (isinstance(n, int | np.integer | sp.Integer) and not isinstance(n, bool)
            and int(n) >= 0)
        for n in sizes
    ):
        return tuple(n if n is None or isinstance(n, str) else int(n) for n in sizes)
    raise ModelError(
        f"shapes: {name}: {shape!r} is not a shape; give a tuple of sizes: whole numbers, a "
        f"name for a size bound at the call, or None for any size, e.g. "
        f"shapes={{{name}: ('n', 13)}}"
    )


def _output_symbol(output, equations: Equations, defined: dict[str, sp.Symbol], free) -> sp.Symbol:
    """``output``, or else the equation no other one reads; where several are read by none,
    the last equation, if it is one of them (equations may come in any order)."""
    if output is None:
        read = set().union(*free.values())
        ends = [lhs for lhs, _ in equations if lhs not in read]
        last = equations[-1][0]
        if len(ends) == 1:
            return ends[0]
        if not ends or last in ends:  # (none: the equations form a cycle, reported later)
            return last
        raise ModelError(
            f"which equation is the output? {', '.join(s.name for s in ends)} are read by no "
            f"other equation; pass output=, e.g. output={ends[0].name!r}"
        )
    key = output.name if isinstance(output, sp.Symbol) else str(output)
    if key not in defined:
        raise ModelError(
            f"output {key} is not defined by any equation; defined: {', '.join(defined)}"
        )
    return defined[key]


def _reachable(out: sp.Symbol, free, rhs_of) -> set[sp.Symbol]:
    seen, todo = {out}, [out]
    while todo:
        for s in free[todo.pop()]:
            if s in rhs_of and s not in seen:
                seen.add(s)
                todo.append(s)
    return seen


def sorted_symbols(symbols: Iterable[sp.Basic]) -> list[sp.Basic]:
    """``sorted(symbols, key=sp.default_sort_key)``: for plain symbols, by name (the same
    order, without building SymPy's sort key of each).

    >>> sorted_symbols(sp.symbols("x10 x2 b"))
    [b, x10, x2]
    """
    symbols = list(symbols)
    if all(type(s) is sp.Symbol for s in symbols):
        return sorted(symbols, key=attrgetter("name"))
    return sorted(symbols, key=sp.default_sort_key)


def _user_symbols(order, free) -> list[sp.Symbol]:
    symbols: dict[sp.Symbol, None] = dict.fromkeys(order)
    for lhs in order:
        symbols.update(dict.fromkeys(sorted_symbols(free[lhs])))
    by_name: dict[str, sp.Symbol] = {}
    for s in symbols:
        other = by_name.setdefault(s.name, s)
        if other != s:
            raise ModelError(
                f"two different symbols are both named {s.name} (assumptions "
                f"{other.assumptions0} and {s.assumptions0}); give them different names"
            )
    return list(symbols)


def _resolve_wrt(wrt, inputs, symbols, rhs_of, in_model: set[str]) -> list[sp.Symbol]:
    """The parameters ``wrt`` names. One that no equation mentions is a mistake (a typo would
    otherwise become a new input with a zero gradient); one that the output does not depend
    on gets a zero gradient."""
    if wrt is None:
        return list(inputs)
    if isinstance(wrt, (sp.Symbol, str)):
        wrt = [wrt]
    elif not isinstance(wrt, Iterable) or isinstance(wrt, sp.Basic | Mapping):
        raise ModelError(
            f"wrt: {wrt!r} is not a list of symbols; pass wrt=[k, b] (symbols or their names)"
        )
    by_name = {s.name: s for s in symbols}
    params: list[sp.Symbol] = []
    seen: set[sp.Symbol] = set()
    for item in wrt:
        if not isinstance(item, sp.Symbol | str):
            raise ModelError(
                f"wrt: {item!r} is not a symbol; list the inputs to differentiate with respect "
                f"to, by symbol or name ({', '.join(i.name for i in inputs)})"
            )
        key = item.name if isinstance(item, sp.Symbol) else item
        if key not in in_model:
            raise ModelError(
                f"wrt: {key} is not a symbol of the model; its inputs are "
                f"{', '.join(i.name for i in inputs) or 'none'} (a typo?)"
            )
        s = by_name.get(key, item if isinstance(item, sp.Symbol) else sp.Symbol(key))
        if s in rhs_of:
            raise ModelError(
                f"wrt: {key} is defined by an equation; gradients are taken with respect to "
                f"inputs ({', '.join(i.name for i in inputs)})"
            )
        if s in seen:
            raise ModelError(f"wrt: {key} is listed twice")
        seen.add(s)
        params.append(s)
    return params
