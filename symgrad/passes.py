"""Graph -> Graph passes that use what is known of the shapes.

``specialize`` gives every node its shape (from the inputs' shapes) and lowers the generic
operations the backward pass inserts where shapes were unknown: ``sum_to(g, b)`` becomes
``np.sum(g, axis=0)`` (or nothing, when the shapes agree) and the matmul gradient helper
becomes ``g @ B.T`` / ``A.T @ g`` for matrices. Adjoints that end up as plain copies of another
are propagated away.

>>> import sympy as sp
>>> from symgrad.frontend import build
>>> from symgrad.backward import differentiate
>>> from symgrad.functions import mean
>>> k, x, y = sp.symbols("k x y")
>>> g = differentiate(build(mean((k*x - y)**2), wrt=[k]))
>>> print(specialize(g, {"k": (), "x": (506,), "y": (506,)}).nodes[-1].expr)
sum(dt2*x)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace

import sympy as sp

from .construct import rebuild, substitute
from .errors import ShapeError
from .frontend import describe
from .functions import matmul, sum, transpose
from .graph import ADJOINT, TEMP, Graph, Node, Shape
from .ops import broadcast_like, full_like, matmul_vjp, sum_to
from .rules import is_elementwise
from .shapes import infer, infer_graph


def check_shapes(graph: Graph, shapes: Mapping[str, Shape]) -> dict[sp.Symbol, Shape | None]:
    """Every node's shape for inputs of the given shapes (by label), or a ShapeError naming
    the equation where they do not fit (or the input that contradicts its declared shape)."""
    given = {}
    for n in graph.inputs:
        if n.label in shapes:
            given[n.symbol] = shape = tuple(shapes[n.label])
            if n.shape is not None and not _matches(shape, n.shape):
                raise ShapeError(f"input {n.label} has shape {shape}, not the declared {n.shape}")
    try:
        return infer_graph(graph, given, describe=lambda node: describe(graph, node))
    except ShapeError as e:
        reads = ", ".join(f"{n.label} {given[n.symbol]}" for n in graph.inputs
                          if n.symbol in given and given[n.symbol] != ())
        raise ShapeError(f"{e} (the array inputs: {reads})" if reads else str(e)) from None


def outer_broadcasts(graph: Graph, known: Mapping[sp.Symbol, Shape | None]) -> list[str]:
    """The model's elementwise operations whose operands broadcast against each other along
    different axes, so that the result is larger than every operand (a prediction of shape
    (n, 1) minus a target of shape (n,) is (n, n)): one message each, naming the equation and
    the shapes. ``known`` is what ``check_shapes`` gave.

    >>> from symgrad.frontend import build
    >>> p, y = sp.symbols("p y")
    >>> g = build((p - y)**2)
    >>> outer_broadcasts(g, check_shapes(g, {"p": (5, 1), "y": (5,)}))
    ['f = (p - y)**2: shapes (5, 1) and (5,) broadcast to (5, 5), larger than each of them']
    """
    found = []
    for node in graph.nodes:
        e, shape = node.expr, known.get(node.symbol)
        if e is None or node.role == ADJOINT or not _certain(shape) or not is_elementwise(e):
            continue
        shapes = [s for s in map(known.get, node.args) if s is not None and _certain(s)]
        if len(shapes) > 1 and all(math.prod(shape) > math.prod(s) for s in shapes):
            distinct = list(dict.fromkeys(shapes))
            found.append(
                f"{describe(graph, node)}: shapes {', '.join(map(str, distinct[:-1]))} and "
                f"{distinct[-1]} broadcast to {shape}, larger than each of them"
            )
    return list(dict.fromkeys(found))  # (one equation's nodes may say the same twice)


def specialize(
    graph: Graph, shapes: Mapping[str, Shape], known: dict[sp.Symbol, Shape | None] | None = None
) -> Graph:
    """``graph`` for inputs of the given shapes (by label); raises ShapeError on a mismatch.

    ``known`` is what ``check_shapes(graph, shapes)`` gave, if the caller has it already.
    """
    known = dict(check_shapes(graph, shapes) if known is None else known)
    alias: dict[sp.Symbol, sp.Symbol] = {}
    nodes: list[Node] = []
    broadcasts = False
    for node in graph.nodes:
        expr = node.expr
        if expr is not None:
            if alias:
                expr = substitute(expr, alias)
            if node.role == ADJOINT:  # only the backward pass inserts what is lowered
                expr = _lower(expr, known)
                broadcasts = broadcasts or type(expr) is broadcast_like
            if isinstance(expr, sp.Symbol) and _propagable(graph, node):
                alias[node.symbol] = expr
                continue
        nodes.append(node.with_expr(expr, known[node.symbol]))
    grads = tuple((p, alias.get(d, d)) for p, d in graph.grads)
    if broadcasts:
        nodes = _drop_broadcasts(nodes, known, {d for _, d in grads})
    return graph.with_nodes(tuple(nodes), grads=grads)


def _drop_broadcasts(nodes: list[Node], known: dict, returned: set) -> list[Node]:
    """``d = broadcast_like(g, x)`` -> ``d = g`` where every user broadcasts ``g`` anyway (a
    gradient handed back to the caller has no user: it keeps its shape)."""
    users: dict[sp.Symbol, list[Node]] = {}
    for node in nodes:
        for a in node.args:
            users.setdefault(a, []).append(node)
    result = []
    for node in nodes:
        if isinstance(node.expr, broadcast_like) and node.symbol not in returned:
            g = node.expr.args[0]
            small = {**known, node.symbol: infer(g, known.get)}
            target = node.expr.args[1]
            if all(
                _beside(u.expr, node.symbol, target)
                or (
                    _certain(small[node.symbol])
                    and _only_elementwise(u.expr, node.symbol)
                    and _certain(known[u.symbol])
                    and infer(u.expr, small.get) == known[u.symbol]
                )
                for u in users.get(node.symbol, ())
            ):
                known[node.symbol] = small[node.symbol]
                node = replace(node, expr=g, shape=small[node.symbol])
        result.append(node)
    return result


def _matches(shape: Shape, declared: Shape) -> bool:
    return len(shape) == len(declared) and all(
        d is None or s is None or s == d for s, d in zip(shape, declared, strict=True)
    )


def _beside(expr: sp.Basic, symbol: sp.Symbol, target: sp.Symbol) -> bool:
    """``symbol * target * ...``: the product has target's shape whatever symbol's is."""
    return expr.is_Mul and symbol in expr.args and target in expr.args


def _only_elementwise(expr: sp.Basic, symbol: sp.Symbol) -> bool:
    """Whether ``symbol`` reaches ``expr``'s value through elementwise operations only."""
    if expr == symbol or symbol not in expr.free_symbols:
        return True
    if not is_elementwise(expr) or isinstance(expr, sp.Piecewise):
        return False
    return all(_only_elementwise(a, symbol) for a in expr.args)


def _propagable(graph: Graph, node: Node) -> bool:
    """A temporary, or a temporary's adjoint, that is only a copy need not be kept."""
    if node.role == TEMP:
        return True
    return node.role == ADJOINT and graph[node.of].role == TEMP


def _lower(e: sp.Basic, known: Mapping[sp.Symbol, Shape | None]) -> sp.Basic:
    """``e`` with what LOWER lists lowered, bottom-up, rebuilt as written (SymPy's replace
    would re-sort); ``e`` itself where nothing changes. (One walk, recursive over operations
    only: an adjoint nests a few levels deep.)"""
    args = e._args  # (as SymPy keeps them: .args is a property around _args)
    new = None
    for i, a in enumerate(args):
        if a._args:  # an operation: it may hold something to lower
            lowered = _lower(a, known)
            if lowered is not a:
                if new is None:
                    new = list(args)
                new[i] = lowered
    if new is not None:
        e = rebuild(e, new)
    rule = LOWER.get(type(e))
    return e if rule is None else rule(e, known)


def _broadcast_like(e: broadcast_like, known) -> sp.Basic:
    g, x = e.args
    shape = infer(g, known.get)
    return g if _certain(shape) and shape == known.get(x) else e


def _full_like(e: full_like, known) -> sp.Basic:
    return sp.Float(e.args[1]) if known.get(e.args[0]) == () else e  # a scalar's: the number


def _certain(shape: Shape | None) -> bool:
    return shape is not None and None not in shape


def _sum_to(e: sum_to, known) -> sp.Basic:
    g, like = e.args
    source, target = infer(g, known.get), known.get(like)
    if source == target and _certain(source):  # the common case: nothing to sum
        return g
    if not (_certain(source) and _certain(target)) or len(source) < len(target):
        return e
    lead = len(source) - len(target)
    if any(t != 1 and s != t for s, t in zip(source[lead:], target, strict=True)):
        return e  # g must be spread up to the target, not summed: keep the general helper
    ones = tuple(
        i for i, (s, t) in enumerate(zip(source[lead:], target, strict=True)) if t == 1 and s != 1
    )
    if lead:
        g = sum(g, axis=tuple(range(lead))) if target or ones else sum(g)
    if ones:
        g = sum(g, axis=ones, keepdims=True)
    return g


def _matmul_vjp(e: matmul_vjp, known) -> sp.Basic:
    g, a, b, _ = e.args
    sa, sb = known.get(a), known.get(b)
    if sa is None or sb is None or len(sa) != 2 or len(sb) != 2:
        return e
    return matmul(g, transpose(b)) if e.which == 0 else matmul(transpose(a), g)


#: What the backward pass inserts where shapes were unknown -> ``rule(expr, known shapes)``, its
#: lowered form now that they are known (or ``expr`` itself where they still leave it open).
LOWER = {
    sum_to: _sum_to,
    matmul_vjp: _matmul_vjp,
    broadcast_like: _broadcast_like,
    full_like: _full_like,
}
