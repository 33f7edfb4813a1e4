"""The IR turned back into SymPy over the user's names: for display and symbolic answers only.

``view(ir)`` gives the symbolic view graph (``graph.Graph``: one SymPy expression per node,
over node symbols named as in the generated code) that the chains, explanations and diagrams
read; ``vjp`` and ``local_partials`` apply the records' rules to one such expression. Numbers
are written into their users, and the inner operations of a derivative rule into the adjoint
that reads them.

>>> import sympy as sp
>>> from symgrad.frontend import build
>>> from symgrad.backward import differentiate
>>> x, k = sp.symbols("x k")
>>> print(view(differentiate(build(sp.exp(2*k*x), wrt=[k])).pruned()))
k: parameter
x: input
t1 = 2*k
t2 = t1*x
f = exp(t2)
dt1 = f*x
dk = 2*dt1
"""

from __future__ import annotations

import sympy as sp

from .expressions import free_symbols, substitute_unevaluated
from .graph import ADJOINT, INPUT, NAMED, PARAMETER, TEMP, Graph, Node
from .ir import Graph as IR
from .layout import layout
from .ops import OPS, record_of

S = sp.S


def view(ir: IR, shapes: list | None = None) -> Graph:
    """The symbolic view of a (differentiated) IR graph (``shapes``: every node's, for a call,
    as ``shapes.infer`` gives them; else the compile-time ones). A node that has a line in the
    generated code has that line's name; the others are named after them (``t5`` after the
    code's ``t1`` to ``t4``)."""
    plan = layout(ir)
    names = plan.names
    exprs: dict[int, sp.Basic] = {}  # what a node's users read: its symbol, or its expression
    nodes: list[Node] = []
    roots = {ir.output, *(d for _, d in ir.grads)}
    for i, (node, info) in enumerate(zip(ir.nodes, ir.info, strict=True)):
        shape = _shape(node.shape if shapes is None else shapes[i])
        if node.op == "const":
            exprs[i] = node.attrs[0]
            continue
        role = info.role
        backward_inner = i >= ir.forward and role == TEMP and i not in roots
        if node.op == "input":
            symbol = sp.Symbol(names[i], real=True)
            nodes.append(Node(symbol, None, role, info.label, None, shape))
            exprs[i] = symbol
            continue
        expr = OPS[node.op].sympy_of(tuple(exprs[a] for a in node.args), node.attrs)
        if backward_inner:  # a rule's inner operation: written into what reads it
            exprs[i] = expr
            continue
        name = plan.name(i)
        if role == ADJOINT and info.of is not None:
            label = "d" + (ir.info[info.of].label or name[1:])
        elif role == NAMED:
            label = info.label
        else:
            label = name
            role = TEMP
        names.setdefault(i, name)
        symbol = sp.Symbol(name, real=True)
        of = exprs.get(info.of) if role == ADJOINT else None
        nodes.append(Node(symbol, expr, role, label, info.equation, shape, of))
        exprs[i] = symbol
    by_name = {n.label: n.symbol for n in nodes if n.role in (INPUT, PARAMETER, NAMED)}
    equations = []
    for label, rhs in ir.equations:  # (walks of the DAG: SymPy's own walk the tree)
        if label not in by_name:  # an equation a stability rewrite made unnecessary
            continue
        renamed = {s: by_name[s.name] for s in free_symbols(rhs) if s.name in by_name}
        equations.append((by_name[label], substitute_unevaluated(rhs, renamed)))
    return Graph(
        tuple(nodes),
        output=exprs[ir.output],
        wrt=tuple(exprs[p] for p in ir.wrt),
        grads=tuple((exprs[p], exprs[d]) for p, d in ir.grads),
        equations=tuple(equations),
    )


def _shape(shape):
    return shape if isinstance(shape, tuple) else None  # (an opaque one is not shown)


def is_elementwise(expr: sp.Basic) -> bool:
    """Whether ``expr`` maps elements to elements (reductions and the like do not)."""
    if isinstance(expr, sp.Add | sp.Mul | sp.Pow | sp.Piecewise):
        return True
    record = record_of(expr)
    return record is None or record.elementwise


def vjp(expr: sp.Basic, g: sp.Expr, out: sp.Expr) -> dict[sp.Symbol, sp.Expr]:
    """The cotangent of every symbol ``expr`` reads, given the adjoint ``g`` of ``expr``.

    >>> x, y = sp.symbols("x y", real=True)
    >>> vjp(x*y, sp.Symbol("g"), x*y)
    {x: g*y, y: g*x}
    """
    from .ops import derivative

    if not expr.args or expr.is_number:  # an equation that names another node, a constant
        return {expr: g} if isinstance(expr, sp.Symbol) else {}
    record = None if isinstance(expr, sp.Add | sp.Mul | sp.Pow | sp.Piecewise) else (
        record_of(expr))
    if record is not None and not record.elementwise:
        operands, attrs = record.operands(expr)
        cotangents = record.vjp(attrs, g, out, *operands)
        result: dict[sp.Symbol, sp.Expr] = {}
        for a, c in zip(operands, cotangents, strict=True):
            if isinstance(a, sp.Symbol) and c != 0:
                result[a] = result[a] + c if a in result else c
        return result
    result = {}
    for s in sorted(expr.free_symbols, key=sp.default_sort_key):
        d = derivative(expr, s)
        if d != 0:
            result[s] = g * d if g != 1 else d
    if out is not expr and out != expr:
        result = {s: c.xreplace({expr: out}) for s, c in result.items()}
    return result


def local_partials(expr: sp.Basic, out: sp.Expr | None = None) -> dict[sp.Symbol, sp.Expr]:
    """The local partial derivative of an elementwise operation with respect to each operand."""
    return vjp(expr, S.One, expr if out is None else out)
