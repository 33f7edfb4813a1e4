"""Shape inference over the IR for the shapes of a call: every node's shape, or a ShapeError
that names the equation where the shapes do not fit.

The compiled code is the same for every call; a call with new input shapes is checked once
here (a mismatch named by its equation, not by NumPy deep inside the code), and looked at for
elementwise operations that broadcast into something larger than each operand.

>>> import sympy as sp
>>> from symgrad.frontend import build
>>> from symgrad.functions import matmul
>>> X, W = sp.symbols("X W")
>>> g = build(matmul(X, W))
>>> infer(g, {"X": (5, 13), "W": (13, 2)})[g.output]
(5, 2)
>>> infer(g, {"X": (5, 13), "W": (12, 2)})
Traceback (most recent call last):
...
symgrad.errors.ShapeError: f = matmul(X, W): shapes (5, 13) and (12, 2) do not align (the array...)
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from .errors import ShapeError
from .frontend import describe
from .ir import ADJOINT, Graph
from .ops import OPS, broadcast

Shape = tuple[int, ...]


def infer(graph: Graph, shapes: Mapping[str, Shape], upto: int | None = None
          ) -> list[Shape | None]:
    """Every node's shape (by id) for inputs of the given shapes (by label); only the first
    ``upto`` nodes', if given."""
    try:
        return _infer(graph, shapes, upto)
    except ShapeError as e:
        reads = ", ".join(f"{graph.info[i].label} {tuple(shapes[graph.info[i].label])}"
                          for i in graph.inputs
                          if tuple(shapes.get(graph.info[i].label, ())) != ())
        raise ShapeError(f"{e} (the array inputs: {reads})" if reads else str(e)) from None


def _infer(graph: Graph, shapes: Mapping[str, Shape], upto: int | None) -> list[Shape | None]:
    known: list[Shape | None] = []
    nodes, info = graph.nodes, graph.info
    bound: dict[str, int] = {}  # named sizes ("n") -> the size this call gives them
    for i, node in enumerate(nodes[:upto]):
        if node.op == "input":
            shape = shapes.get(info[i].label)
            if shape is not None:
                _check_declared(info[i].label, shape, node.shape, bound)
            known.append(None if shape is None else tuple(shape))
            continue
        if node.op == "const":
            known.append(())
            continue
        args = [known[a] for a in node.args]
        if any(s is None for s in args):
            known.append(None)
            continue
        record = OPS[node.op]
        try:
            if record.elementwise:
                known.append(broadcast(*args) if len(args) != 1 else args[0])
            else:
                known.append(tuple(record.shape(node.attrs, *args)))
        except ShapeError as e:
            raise ShapeError(f"{_where(graph, i)}: {e}") from None
    return known


def one_shape_suffices(graph: Graph) -> bool:
    """Whether a call whose array inputs all have one shape (the others scalars) needs no
    inference: no input's shape declared, and every operation elementwise (the result has that
    shape, and nothing broadcasts into an outer product) or a full reduction (a scalar).

    >>> import sympy as sp
    >>> from symgrad.frontend import build
    >>> from symgrad.functions import mean, matmul
    >>> x, y, X, W = sp.symbols("x y X W")
    >>> one_shape_suffices(build(mean((x - y)**2))), one_shape_suffices(build(matmul(X, W)))
    (True, False)
    """
    for node in graph.nodes[:graph.forward or None]:
        if node.op == "input":
            if isinstance(node.shape, tuple):
                return False
        elif not (OPS[node.op].elementwise or OPS[node.op].scalar_result(node.attrs)):
            return False
    return True


def _check_declared(label: str, shape: Shape, declared, bound: dict[str, int]) -> None:
    """A call's shape against the declared one: sizes equal, a named size the same wherever
    it is used."""
    if not isinstance(declared, tuple):
        return
    fits = len(shape) == len(declared)
    for n, d in zip(shape, declared, strict=False):
        if isinstance(d, int) and n != d:
            fits = False
        elif isinstance(d, str) and bound.setdefault(d, n) != n:
            raise ShapeError(
                f"input {label} has shape {tuple(shape)}, where size {d} is {n}; an input "
                f"before it has {d} = {bound[d]}"
            )
    if not fits:
        raise ShapeError(f"input {label} has shape {tuple(shape)}, not the declared {declared}")


def _where(graph: Graph, i: int) -> str:
    """The equation node ``i`` belongs to, written out when it is short."""
    label = graph.info[i].equation
    for lhs, rhs in graph.equations:
        if lhs == label:
            return describe(lhs, rhs)
    return label or "the gradient"


def outer_broadcasts(graph: Graph, known: list[Shape | None]) -> list[str]:
    """The model's elementwise operations whose operands broadcast against each other along
    different axes, so that the result is larger than every operand (a prediction of shape
    (n, 1) minus a target of shape (n,) is (n, n)): one message each, naming the equation and
    the shapes.

    >>> import sympy as sp
    >>> from symgrad.frontend import build
    >>> p, y = sp.symbols("p y")
    >>> g = build((p - y)**2)
    >>> outer_broadcasts(g, infer(g, {"p": (5, 1), "y": (5,)}))
    ['f = (p - y)**2: shapes (5, 1) and (5,) broadcast to (5, 5), larger than each of them']
    """
    found = []
    for i in range(graph.forward):
        node, shape = graph.nodes[i], known[i]
        if shape is None or graph.info[i].role == ADJOINT or not OPS[node.op].elementwise:
            continue
        shapes = [known[a] for a in node.args if known[a] is not None and known[a] != ()]
        if len(shapes) > 1 and all(math.prod(shape) > math.prod(s) for s in shapes):
            distinct = list(dict.fromkeys(shapes))
            found.append(
                f"{_where(graph, i)}: shapes {', '.join(map(str, distinct[:-1]))} and "
                f"{distinct[-1]} broadcast to {shape}, larger than each of them"
            )
    return list(dict.fromkeys(found))
