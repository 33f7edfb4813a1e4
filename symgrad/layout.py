"""Which nodes of the IR get a line of their own, and the names they get: one decision that
the generated code and the symbolic views (chains, explanations, diagrams) share, so that a
name means the same node everywhere.

A node gets a line unless it is an inner operation read once, by a line that stays short
(INLINE_LIMIT operations): then it is written into that reader. Inputs and the user's
equations are named as the user named them (made valid identifiers), the other lines
``t1, t2, ...`` in order, without gaps, and the adjoint of a node ``V`` is ``dV``.

>>> import sympy as sp
>>> from symgrad.frontend import build
>>> from symgrad.backward import differentiate
>>> x, k = sp.symbols("x k")
>>> plan = layout(differentiate(build(sp.exp(k*x) + sp.sin(k*x), wrt=[k])))
>>> sorted(plan.names.values())
['dk', 'f', 'k', 't1', 't2', 'x']
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .ir import ADJOINT, NAMED, TEMP, Graph, known
from .names import Namer

INLINE_LIMIT = 8  # operations written into one line, at most


@dataclass
class Layout:
    """The lines of a graph: ``order`` the nodes that get one, in order (inputs and numbers
    not counted), ``inlined`` those written into their reader, ``names`` every node's name
    that has one, ``roots`` what the program returns."""

    graph: Graph
    roots: list[int]
    order: list[int] = field(default_factory=list)
    inlined: set[int] = field(default_factory=set)
    names: dict[int, str] = field(default_factory=dict)
    never_scalar: bool = False
    namer: Namer = field(default_factory=Namer)
    temps: int = 0

    def name(self, i: int) -> str:
        """Node ``i``'s name; one is given now to a node that has none yet (a temporary
        written into its reader whose adjoint has a line: ``dt3``), numbered after the
        lines'."""
        found = self.names.get(i)
        if found is None:
            info = self.graph.info[i]
            if info.role == ADJOINT and info.of is not None:
                found = self.namer.fresh("d" + self.name(info.of))
            else:
                self.temps += 1
                found = self.namer.fresh(f"t{self.temps}")
            self.names[i] = found
        return found


def layout(graph: Graph, keep: frozenset[int] | set[int] = frozenset()) -> Layout:
    """The lines and names of ``graph`` (a differentiated IR); the nodes in ``keep`` get a line
    of their own."""
    nodes, info = graph.nodes, graph.info
    out = nodes[graph.output]
    # an output of a known shape that is not a scalar has no gradient: no backward lines
    never_scalar = known(out.shape) and out.shape != ()
    roots = [graph.output, *(() if never_scalar else (d for _, d in graph.grads))]
    plan = Layout(graph, roots, never_scalar=never_scalar)
    uses: dict[int, int] = dict.fromkeys(roots, 1)
    needed = []
    for i in range(len(nodes) - 1, -1, -1):
        if i in uses:
            needed.append(i)
            for a in nodes[i].args:
                uses[a] = uses.get(a, 0) + 1
    needed.reverse()
    namer, names = plan.namer, plan.names
    for i in graph.inputs:
        names[i] = namer.fresh(info[i].label)
    for i, node_info in enumerate(info):  # the user's names first: t1 never takes them
        if node_info.role == NAMED:
            names[i] = namer.fresh(node_info.label)
    name = plan.name

    root_set = set(roots)
    weight: dict[int, int] = {}  # of the inlined nodes: the operations written in them
    inlined, order = plan.inlined, plan.order
    for i in needed:
        node = nodes[i]
        if node.op == "input" or (node.op == "const" and i not in root_set):
            continue
        w = 1
        for a in node.args:
            w += weight.get(a, 0)
        if (uses[i] == 1 and i not in root_set and i not in keep and w <= INLINE_LIMIT
                and _inlinable(graph, i)):
            inlined.add(i)
            weight[i] = w
            continue
        name(i)
        order.append(i)
    name(graph.output)
    return plan


def _inlinable(graph: Graph, i: int) -> bool:
    info = graph.info[i]
    if info.role == TEMP:
        return True
    return info.role == ADJOINT and info.of is not None and graph.info[info.of].role == TEMP
