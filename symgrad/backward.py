"""Reverse-mode chain rule: the adjoint nodes of the IR, appended in reverse topological order.

The adjoint of a node v is d output / d v, summed over every path from the output down to v.
Each node's rule (its record's partials or vector-Jacobian product, ``ops.py``) turns its
adjoint into one cotangent per operand; a node's adjoint is the sum of the cotangents its users
send it. Every node and every edge is visited once, so the cost grows with the size of the
DAG, never with the size of the expanded tree.

A rule is a SymPy expression; it is evaluated once per operation, attributes and constant
operands over placeholder symbols, written as a short list of operations, and then replayed
for every node of that kind (``_Rules``): no SymPy in the loop over the nodes.

Broadcasting is handled on the edge, once: a cotangent may be larger than its node (a scalar
parameter broadcast over the data) and is summed back with ``sum_to`` where the shapes are not
known to agree: at parameters, before operations that are not elementwise, and where
cotangents from several users meet (``sum_to`` is lowered to a plain sum, or dropped, where
the shapes are known).

>>> import sympy as sp
>>> from symgrad.frontend import build
>>> from symgrad.functions import mean
>>> k, x = sp.symbols("k x")
>>> g = differentiate(build(mean((k*x)**2), wrt=[k]))
>>> print("\\n".join(g.line(i) for i in range(g.forward, len(g))))
%7 = const [1]  # shape ()
%8 = size %5  # shape ()
%9 = div %7, %8  # shape ()
%10 = broadcast_like %9, %5
%11 = mul %10, %4
%12 = mul %2, %11
%13 = mul %12, %0
%14 = sum_to %13, %0
"""

from __future__ import annotations

import sympy as sp

from .builder import Builder
from .errors import NoRuleError
from .ir import ADJOINT, NAMED, PARAMETER, TEMP, Graph, Info, same_shape
from .ops import OPS

S = sp.S


def differentiate(graph: Graph) -> Graph:
    """``graph`` with the adjoint nodes of the reverse sweep appended and ``grads`` set."""
    nodes, info = graph.nodes, graph.info
    forward = graph.forward = len(nodes)
    needed, elementwise = _on_paths(graph)
    # An output elementwise in the inputs is a scalar only where every input it reads is one
    # (broadcasting never takes a dimension away), and only a scalar output has a gradient
    # (the code checks): then every node is a scalar, and no cotangent is ever summed back.
    scalars = elementwise
    inner = Info(TEMP)  # every inner node of a rule's: one object (a node's own is a new one)
    builder = Builder(graph, info=lambda: inner)
    rules = _Rules()
    adjoint: dict[int, int] = {}
    cotangents: dict[int, list[Signed]] = {}
    out = graph.output
    for i in range(forward - 1, -1, -1):
        if i not in needed:
            continue
        if i == out:
            g, negated = _seed(graph, builder, i), False
        else:
            parts = cotangents.get(i)
            if not parts:
                continue
            # a temporary's adjoint may stay negated; another's is a line of its own (dk = -...)
            g, negated = _accumulate(graph, builder, i, parts, info[i].role == TEMP, scalars)
        if not negated:
            _own(graph, g, i, forward, needed)
            adjoint[i] = g
        node = nodes[i]
        if node.op == "input":
            continue
        wanted = tuple(a in needed for a in node.args)
        for arg, c in zip(node.args, rules.cotangents(builder, i, g, wanted), strict=True):
            if c is not None:
                cotangents.setdefault(arg, []).append(_signed(graph, c[0], c[1] != negated))
    grads = []
    for p in graph.wrt:
        d = adjoint.get(p)
        if d is None:  # the output does not depend on p
            d = builder.op("full_like", (p,), (S.Zero,))
            _own(graph, d, p, forward, needed)
        elif graph.info[d].of != p:  # (a parameter's gradient is a line of its own: dk = ...)
            d = graph.add("copy", (d,), (len(graph),), nodes[d].shape, Info(ADJOINT, of=p))
        grads.append((p, d))
    graph.grads = grads
    return graph


#: A cotangent as a node and whether it is to be negated: a sign is carried along the sweep
#: (every rule is linear in the adjoint) and written where cotangents are summed, as a
#: subtraction, rather than made a node at every step (``x - y**2`` sends ``-g`` to ``y**2``,
#: whose rule sends ``-(2*g*y)`` on to y: one ``sub`` at y instead of three ``neg`` nodes).
Signed = tuple[int, bool]


def _signed(graph: Graph, c: int, negated: bool) -> Signed:
    """``c``, negated if ``negated``, with a minus sign the node itself has taken out."""
    node = graph.nodes[c]
    if node.op == "neg" and graph.info[c].role != NAMED:
        return node.args[0], not negated
    return c, negated


def _own(graph: Graph, g: int, i: int, forward: int, needed: set[int]) -> None:
    """Make ``g`` the adjoint node of ``i`` if it is a new node that is nobody's yet, or the
    adjoint of a temporary that passes it to ``i`` alone (``dL2``, not ``dt1``, for
    t1 = L2 - y; but for t = x - k, where ``dx = dt`` and ``dk = -dt``, dt stays dt)."""
    info = graph.info[g]
    if g < forward or graph.nodes[g].op == "const":
        return
    owner = info.of
    if owner is None or (
        graph.info[owner].role == TEMP and graph.info[i].role != TEMP
        and sum(a in needed for a in graph.nodes[owner].args) == 1
    ):
        graph.info[g] = Info(ADJOINT, info.label, info.equation, i)  # (infos may be shared)


def _seed(graph: Graph, builder: Builder, out: int) -> int:
    """The output's own adjoint: 1, spread to the output's shape where it may not be a scalar
    (``sum(X, axis=1)``). The gradient of such an output is never computed (value_and_grad
    refuses it), but every node must have a shape."""
    node = graph.nodes[out]
    record = OPS[node.op]
    if (
        node.shape == ()
        or record.elementwise
        or record.scalar_result(node.attrs)
    ):
        return builder.const(1)
    return builder.op("broadcast_like", (builder.const(1), out))


def _on_paths(graph: Graph) -> tuple[set[int], bool]:
    """The nodes on some path from a parameter up to the output, and whether every operation
    the output depends on is elementwise."""
    below = set(graph.wrt)  # depends on a parameter
    for i, node in enumerate(graph.nodes):
        if not below.isdisjoint(node.args):
            below.add(i)
    above = {graph.output}  # the output depends on it
    elementwise = True
    for i in range(len(graph.nodes) - 1, -1, -1):
        if i in above:
            node = graph.nodes[i]
            above.update(node.args)
            elementwise = elementwise and OPS[node.op].elementwise
    return below & above, elementwise


def _accumulate(graph: Graph, builder: Builder, v: int, parts: list[Signed],
                may_negate: bool, scalars: bool) -> Signed:
    """The sum of the cotangents sent to ``v``, each brought to its shape where needed, the
    negated ones subtracted (if every one is: negated as a whole where ``may_negate``, else
    ``-a - b``)."""
    nodes = graph.nodes
    node = nodes[v]
    parameter = graph.info[v].role == PARAMETER
    if parameter and all(nodes[c].op == "const" for c, _ in parts):  # d(2*k)/dk: shaped like k
        total = sum(-builder.number(c) if negated else builder.number(c) for c, negated in parts)
        return builder.op("full_like", (v,), (total,)), False
    # (through an elementwise operation, a cotangent larger than v may pass, summed further down)
    exact = parameter or len(parts) > 1 or not OPS[node.op].elementwise
    if exact and not scalars:
        parts = [(c if same_shape(nodes[c].shape, node.shape)
                  else builder.op("sum_to", (c, v)), negated) for c, negated in parts]
    added = [c for c, negated in parts if not negated]
    subtracted = [c for c, negated in parts if negated]
    if not added and may_negate:
        total = subtracted[0]
        for c in subtracted[1:]:
            total = builder.op("add", (total, c))
        return total, True
    if added:
        total = added[0]
        for c in added[1:]:
            total = builder.op("add", (total, c))
    else:
        total, subtracted = builder.op("neg", (subtracted[0],)), subtracted[1:]
    for c in subtracted:
        total = builder.op("sub", (total, c))
    return total, False


class _Rules:
    """The cotangents of each node, from its record's rule, evaluated once per pattern.

    A pattern is an operation, its attributes and which of its operands are numbers (and
    which): ``pow(u, 2)`` and ``pow(u, 3)`` are two patterns, ``mul(u, v)`` for any u, v one.
    Its rule is evaluated over placeholder symbols and written as operations over them (a
    ``Program``), which each node of the pattern replays over its own operands.
    """

    def __init__(self) -> None:
        self.programs: dict[tuple, list[Program | None]] = {}

    def cotangents(self, builder: Builder, i: int, g: int, wanted: tuple[bool, ...]
                   ) -> list[Signed | None]:
        """The cotangent of each operand of node ``i`` whose ``wanted`` is true (else None),
        given its adjoint ``g``: a node and whether it is to be negated."""
        cotangents = self._cotangents(builder, i, g, wanted)
        return [c if w else None for c, w in zip(cotangents, wanted, strict=True)]

    def _cotangents(self, builder: Builder, i: int, g: int, wanted) -> list[Signed | None]:
        graph = builder.graph
        node = graph.nodes[i]
        op = node.op
        args = node.args
        if op == "add" or op == "copy":
            return [(g, False)] * len(args)
        if op == "sub":
            return [(g, False), (g, True)]
        if op == "neg":
            return [(g, True)]
        if op == "mul":
            a, b = args
            return [(builder.op("mul", (g, b)), False) if wanted[0] else None,
                    (builder.op("mul", (g, a)), False) if wanted[1] else None]
        numbers = tuple(builder.number(a) for a in args)
        key = (op, node.attrs, numbers)
        programs = self.programs.get(key)
        if programs is None:
            programs = self.programs[key] = _programs(OPS[op], node.attrs, numbers)
        slots = (g, i, *args)
        return [None if p is None or not w else (p.run(builder, slots), False)
                for p, w in zip(programs, wanted, strict=True)]


class Program:
    """A rule's result for one operand, as operations over the slots (adjoint, value,
    operands): replayed with a node's own slots, it adds that node's cotangent."""

    def __init__(self, expr: sp.Expr, slots: list[sp.Symbol]):
        scratch = Graph()
        env: dict[sp.Basic, int] = {s: scratch.input(s.name) for s in slots}
        Builder(scratch).sympy(expr, env)
        self.steps = [(n.op, n.args, n.attrs) for n in scratch.nodes[len(slots):]]
        self.result = len(scratch.nodes) - 1 if self.steps else env[expr]
        self.slots = len(slots)

    def run(self, builder: Builder, slots: tuple[int, ...]) -> int:
        ids = list(slots)
        for op, args, attrs in self.steps:
            if op == "const":
                ids.append(builder.const(attrs[0]))
            else:
                ids.append(builder.op(op, tuple(ids[a] for a in args), attrs))
        return ids[self.result]


_G, _OUT = sp.Symbol("_g", real=True), sp.Symbol("_out", real=True)


def _programs(record, attrs: tuple, numbers: tuple) -> list[Program | None]:
    """A ``Program`` per operand (None where its cotangent is 0, or it is a number)."""
    xs = [sp.Symbol(f"_x{k}", real=True) if v is None else v for k, v in enumerate(numbers)]
    slots = [_G, _OUT] + [sp.Symbol(f"_x{k}", real=True) for k in range(len(numbers))]
    if record.elementwise and record.partials is not None:
        cotangents = [_G * p for p in record.partials(attrs, _OUT, *xs)]
    elif record.vjp is not None:
        cotangents = list(record.vjp(attrs, _G, _OUT, *xs))
    else:
        raise NoRuleError(f"no derivative rule for {record.name}")
    return [
        None if v is not None or c == 0 else Program(sp.sympify(c), slots)
        for c, v in zip(cotangents, numbers, strict=True)
    ]
