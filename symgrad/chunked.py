"""A value and gradient over Dask arrays as the sum of their chunks' own.

Most losses are a mean (or sum) over rows of something each row gives on its own: a mean
squared error, a cross-entropy, a likelihood of independent samples. For those, the loss over
all the rows is the chunks' losses weighted by their share of the rows, and so is its gradient
with respect to every parameter (a gradient with respect to the rows themselves is the chunks'
gradients side by side). Each chunk then runs the NumPy backend's code, which computes in
place, in one task: one read of each chunk, no task per operation, and partial results a few
numbers in size.

``rows_apart`` decides from the model's IR and the call's shapes whether that holds; where it
does not (a mean over the rows inside the model, a softmax across them, a matmul that mixes
them), the Dask backend runs the array API code on the whole arrays instead.

>>> import sympy as sp, symgrad
>>> x, y, k = sp.symbols("x y k")
>>> model = symgrad.compile(symgrad.mean((k*x - y)**2), wrt=[k], cache=False)
>>> from symgrad.shapes import infer
>>> shapes = {"k": (), "x": (100,), "y": (100,)}
>>> rows_apart(model._forward, infer(model._forward, shapes), {"x", "y"}, 100)
'mean'
>>> centred = symgrad.compile(symgrad.mean((x - symgrad.mean(x))**2), cache=False)._forward
>>> rows_apart(centred, infer(centred, {"x": (100,)}), {"x"}, 100) is None
True
"""

from __future__ import annotations

from typing import Any

from .ir import Graph
from .ops import OPS


def rows_apart(graph: Graph, shapes: list, rows: set[str], n: int) -> str | None:
    """``"sum"`` or ``"mean"`` if ``graph``'s output is that reduction over all the elements
    (times numbers, if any) of an array each row of the inputs named in ``rows`` (of ``n``
    rows, along their first axis) gives on its own, at these node ``shapes`` (by node id; None
    where unknown); else None."""
    info, nodes = graph.info, graph.nodes
    top = _scaled(graph, shapes)
    out = nodes[top]
    if out.op not in ("sum", "mean") or out.attrs[0] is not None or shapes[graph.output] != ():
        return None
    carrying: set[int] = set()  # the nodes whose first axis is the rows
    for i, node in enumerate(nodes[:top]):
        if node.op == "input":
            if info[i].label in rows:
                if not shapes[i] or shapes[i][0] != n:
                    return None
                carrying.add(i)
            continue
        if not any(a in carrying for a in node.args):
            continue
        shape = shapes[i]
        if not shape or shape[0] != n or not _keeps_rows(node, shape, shapes, carrying):
            return None
        carrying.add(i)
    return out.op if out.args[0] in carrying else None


def _scaled(graph: Graph, shapes: list) -> int:
    """The node the output is a multiple of: below its negations, and its products with and
    quotients by numbers or scalar inputs (``-mean(...)``, ``mean(...)/2``, ``c*sum(...)``),
    for which the chunks' outputs add up to the whole's."""
    nodes, at = graph.nodes, graph.output
    while True:
        node = nodes[at]
        if node.op == "neg":
            at = node.args[0]
            continue
        if node.op not in ("mul", "div") or len(node.args) != 2:
            return at
        plain = [nodes[a].op in ("input", "const") and shapes[a] == () for a in node.args]
        if plain == [False, True]:
            at = node.args[0]
        elif plain == [True, False] and node.op == "mul":
            at = node.args[1]
        else:
            return at


def _keeps_rows(node, shape: tuple, shapes: list, carrying: set[int]) -> bool:
    """Whether ``node`` (of result ``shape``), an operation of operands some of which carry
    the rows, keeps them apart: row i of its result reads row i of those operands only."""
    record = OPS[node.op]
    if record.elementwise:  # operands broadcast from the right: a carrying one must have
        return all(  # the result's rank, another a lower one (or rows of one)
            shapes[a] is not None and (len(shapes[a]) == len(shape) if a in carrying
                                       else len(shapes[a]) < len(shape) or shapes[a][0] == 1)
            for a in node.args)
    if record.rows is not None:
        return record.rows([shapes[a] for a in node.args], [a in carrying for a in node.args])
    along = record.along  # (a reduction or softmax, along axes other than the rows)
    return along is not None and 0 not in along(node.attrs, len(shapes[node.args[0]]))


def by_chunks(model: Any, name: str, values: list) -> Any:
    """The Dask backend's ``value_and_grad`` chunk by chunk (``value_and_grad`` below) when the
    call's Dask arrays split along their first axis and the model keeps those rows apart; None
    otherwise (the array API code then runs on the whole arrays)."""
    from .runtime import is_dask

    if name != "value_and_grad":
        return None
    rows = {n: v for n, v in zip(model.inputs, values, strict=True)
            if is_dask(v) and v.ndim and v.numblocks[0] > 1}
    if not rows or len({v.shape[0] for v in rows.values()}) > 1:
        return None
    n = next(iter(rows.values())).shape[0]
    if not n:
        return None
    graph = model._forward
    if any(isinstance(declared, tuple) and declared and isinstance(declared[0], int)
           for declared in (graph.nodes[i].shape for i in graph.inputs
                            if graph.info[i].label in rows)):
        return None  # (a number of rows declared in shapes=: each chunk would be refused)
    shapes = {n: tuple(v.shape) if hasattr(v, "shape") else ()
              for n, v in zip(model.inputs, values, strict=True)}
    key = ("rows apart", tuple(shapes.items()), tuple(rows))
    if key not in model._modules:
        from .shapes import infer

        model._modules[key] = rows_apart(graph, infer(graph, shapes), set(rows), n)
    reduction = model._modules[key]
    return None if reduction is None else value_and_grad(model.to("numpy"), values, rows,
                                                         reduction)


def value_and_grad(model: Any, values: list, rows: dict[str, Any], reduction: str
                   ) -> tuple[Any, dict]:
    """The value and gradient of ``model`` (a NumPy-backend model) over ``values`` (by input
    order), where the Dask arrays ``rows`` (by input name) split along their first axis: the
    chunks' own in one ``dask.compute``, weighted by their share of the rows where the model's
    ``reduction`` over them is a mean."""
    import dask

    first = next(iter(rows.values()))
    chunks = tuple(n for n in first.chunks[0] if n)  # (a chunk of no rows has no mean)
    total = sum(chunks)
    blocks = {name: a.rechunk({0: chunks, **{d: -1 for d in range(1, a.ndim)}})
              for name, a in rows.items()}
    parts = []
    for c in range(len(chunks)):
        inputs = {name: blocks[name].blocks[c] if name in rows else v
                  for name, v in zip(model.inputs, values, strict=True)}
        parts.append(dask.delayed(_part)(model, inputs))
    weights = [n / total for n in chunks] if reduction == "mean" else [1.0] * len(chunks)
    result = dask.delayed(_combine)(parts, weights, [w for w in model.wrt if w in rows])
    return dask.compute(result)[0]


def _part(model: Any, inputs: dict) -> tuple[Any, dict]:
    """One chunk's value and gradient: its inputs converted as a call converts them, its shapes
    not checked again (the whole arrays' were: a chunk's would warn a second time)."""
    return model._functions["value_and_grad"](*model._arguments((), inputs))


def _combine(parts: list, weights: list[float], by_rows: list[str]) -> tuple[Any, dict]:
    """The chunks' values and gradients, weighted and added up in chunk order (or, for inputs
    split by rows, set side by side)."""
    import numpy as np

    value = sum(w * v for w, (v, _) in zip(weights, parts, strict=True))
    grads = {}
    for name in parts[0][1]:
        pieces = [w * g[name] for w, (_, g) in zip(weights, parts, strict=True)]
        grads[name] = np.concatenate(pieces) if name in by_rows else sum(pieces)
    return value, grads
