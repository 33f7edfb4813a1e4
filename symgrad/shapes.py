"""Shape inference: what shape every node has, given the inputs' shapes; one rule per operation.

A shape is a tuple of ints, where ``None`` stands for a size not known until the call (a
declared ``(None, 13)`` is any number of rows of 13). A node whose shape cannot be known (an
input without a declared shape) has shape ``None``. A mismatch raises ``ShapeError`` naming the
shapes; ``infer_graph`` adds the equation it happened in.

>>> import sympy as sp
>>> from symgrad.functions import matmul, sum
>>> X, W = sp.symbols("X W")
>>> infer(matmul(X, W), {X: (None, 13), W: (13, 64)}.get)
(None, 64)
>>> infer(sum(X, axis=0), {X: (506, 13)}.get)
(13,)
>>> infer(matmul(X, W), {X: (506, 13), W: (12, 64)}.get)
Traceback (most recent call last):
...
symgrad.errors.ShapeError: shapes (506, 13) and (12, 64) do not align
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import sympy as sp

from .errors import ShapeError
from .functions import _AlongAxis, _Reduction, matmul, transpose
from .graph import NodeSymbol
from .ops import broadcast_like, expand_dims, full_like, matmul_vjp, max_vjp, size, sum_to

Shape = tuple[int | None, ...]
ShapeOf = Callable[[sp.Basic], Shape | None]


def broadcast(*shapes: Shape) -> Shape:
    """NumPy's broadcasting, where a ``None`` size matches any size.

    >>> broadcast((None, 1), (64,)), broadcast((3, 1), (1, 4))
    ((None, 64), (3, 4))
    """
    ndim = max((len(s) for s in shapes), default=0)
    result = []
    for i in range(-ndim, 0):
        sizes = {s[i] for s in shapes if len(s) >= -i} - {1}
        known = {n for n in sizes if n is not None}
        if len(known) > 1:
            raise ShapeError(f"shapes {_join(shapes)} do not broadcast together")
        result.append(known.pop() if known else None if None in sizes else 1)
    return tuple(result)


def _join(shapes) -> str:
    shapes = [tuple(s) for s in shapes]
    return ", ".join(map(str, shapes[:-1])) + " and " + str(shapes[-1])


def _normal_axes(axes, ndim: int) -> tuple[int, ...]:
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise ShapeError(f"axis {a} is out of range for an array of {ndim} dimensions")
        out.append(a % ndim)
    if len(set(out)) < len(out):
        raise ShapeError(
            f"axes {tuple(axes)} name the same axis twice for an array of {ndim} dimensions"
        )
    return tuple(out)


def _reduction(expr: _Reduction, x: Shape, *options) -> Shape:
    axes = _normal_axes(expr.axis, len(x)) if expr.axis is not None else tuple(range(len(x)))
    if expr.keepdims:
        return tuple(1 if i in axes else n for i, n in enumerate(x))
    return tuple(n for i, n in enumerate(x) if i not in axes)


def _along_axis(expr: _AlongAxis, x: Shape, *options) -> Shape:
    _normal_axes((expr.axis,), len(x))
    return x


def _matmul(expr, a: Shape, b: Shape) -> Shape:
    if not a or not b:
        raise ShapeError(f"matmul needs arrays of one dimension or more, not {_join((a, b))}")
    a2 = (1, *a) if len(a) == 1 else a
    b2 = (*b, 1) if len(b) == 1 else b
    if None not in (a2[-1], b2[-2]) and a2[-1] != b2[-2]:
        raise ShapeError(f"shapes {_join((a, b))} do not align")
    try:
        batch = broadcast(a2[:-2], b2[:-2])
    except ShapeError:
        raise ShapeError(f"shapes {_join((a, b))} do not align: their stacks differ") from None
    return (*batch, *a2[-2:-1] * (len(a) > 1), *b2[-1:] * (len(b) > 1))


def _transpose(expr: transpose, x: Shape, *options) -> Shape:
    if expr.axes is None:
        return tuple(reversed(x))
    axes = _normal_axes(expr.axes, len(x))
    if sorted(axes) != list(range(len(x))):
        raise ShapeError(f"axes {expr.axes} are not a permutation of the {len(x)} axes")
    return tuple(x[a] for a in axes)


def _expand_dims(expr: expand_dims, g: Shape, *options) -> Shape:
    ndim = len(g) + len(expr.args[1])
    axes = _normal_axes([int(a) for a in expr.args[1]], ndim)
    it = iter(g)
    return tuple(1 if i in axes else next(it) for i in range(ndim))


#: Operation class -> ``rule(expr, *shapes of its arguments) -> shape`` (an option argument,
#: such as an axis, comes as ``()``). Classes not listed are elementwise: their operands
#: broadcast together.
SHAPES: dict[type, Callable[..., Shape]] = {
    _Reduction: _reduction,
    _AlongAxis: _along_axis,
    matmul: _matmul,
    transpose: _transpose,
    expand_dims: _expand_dims,
    size: lambda expr, x: (),
    matmul_vjp: lambda expr, g, a, b, *options: (a, b)[expr.which],
}

#: Operation class -> which argument's shape the result has, whatever the others' are (their
#: shapes need not be known, nor worked out).
SHAPE_OF_ARGUMENT: dict[type, int] = {sum_to: 1, broadcast_like: 1, full_like: 0, max_vjp: 1}


def infer(expr: sp.Basic, shape_of: ShapeOf) -> Shape | None:
    """The shape of an expression over node symbols, or None where an operand's is unknown."""
    cls = type(expr)
    if cls is NodeSymbol:
        return shape_of(expr)
    if cls in _BROADCASTING:  # the common case first
        shapes = []
        for a in expr._args:  # (as SymPy keeps them: .args is a property around _args)
            if type(a) is NodeSymbol:
                shape = shape_of(a)
            elif a.is_Number:
                continue
            else:
                shape = infer(a, shape_of)
            if shape is None:
                return None
            if shape:
                shapes.append(shape)
        if len(shapes) <= 1:
            return shapes[0] if shapes else ()
        return broadcast(*shapes)
    if cls in SHAPE_OF_ARGUMENT:
        return infer(expr.args[SHAPE_OF_ARGUMENT[cls]], shape_of)
    if isinstance(expr, sp.Symbol):
        return shape_of(expr)
    if not expr.args or isinstance(expr, (sp.Tuple, sp.logic.boolalg.Boolean)):
        return ()  # a number, or an option argument such as an axis
    if isinstance(expr, sp.Piecewise):  # conditions broadcast with the branches
        shapes = [shape_of(s) for s in expr.free_symbols]
        return None if any(s is None for s in shapes) else broadcast(*shapes)
    shapes = [infer(a, shape_of) for a in expr.args]
    if any(s is None for s in shapes):
        return None
    rule = next((SHAPES[c] for c in type(expr).__mro__ if c in SHAPES), None)
    if rule is None:  # elementwise
        return broadcast(*shapes)
    return tuple(rule(expr, *shapes))


#: Elementwise operations whose arguments are all operands: their shapes broadcast.
_BROADCASTING = frozenset({sp.Add, sp.Mul, sp.Pow, sp.exp, sp.log, sp.sin, sp.cos, sp.tan,
                           sp.sinh, sp.cosh, sp.tanh, sp.asin, sp.acos, sp.atan, sp.Abs, sp.sign})


def infer_graph(graph, shapes: Mapping[sp.Symbol, Shape | None], describe) -> dict:
    """Every node's shape, given the inputs' (a mapping node symbol -> shape).

    ``describe(node)`` names the equation a node belongs to, for error messages.
    """
    known: dict[sp.Symbol, Shape | None] = dict(shapes)
    for node in graph.nodes:
        if node.expr is None:
            known.setdefault(node.symbol, node.shape)
            continue
        try:
            known[node.symbol] = infer(node.expr, known.get)
        except ShapeError as e:
            raise ShapeError(f"{describe(node)}: {e}") from None
    return known
