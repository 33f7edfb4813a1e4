"""Reverse-mode chain rule: append adjoint nodes to the graph, in reverse topological order.

The adjoint ``dv`` of a node ``v`` is d output / d v, summed over every path from the output
down to ``v``. Each node's rule turns its adjoint into one cotangent per operand; a node's
adjoint is the sum of the cotangents its users send it. Every node and every edge is visited
once, so the cost grows with the size of the DAG, never with the size of the expanded tree.

Broadcasting is handled here, once, on the edge: a cotangent may be larger than its node (a
scalar parameter broadcast over the data) and is summed back with ``sum_to`` where the shapes
are not known to agree: at parameters, before operations that are not elementwise, and where
cotangents from several users meet.

A temporary's adjoint that only one cotangent reads (``dt2`` below) is written into it instead
of becoming a node.

>>> import sympy as sp
>>> from symgrad.frontend import build
>>> from symgrad.functions import mean
>>> k, x, y = sp.symbols("k x y")
>>> print(differentiate(build(mean((k*x - y)**2), wrt=[k])))
k: parameter
x: input
y: input
t1 = k*x
t2 = t1 - y
t3 = t2**2
f = mean(t3)
dt3 = broadcast_like(1/size(t2), t2)
dk = sum_to(2*dt3*t2*x, k)
"""

from __future__ import annotations

import sympy as sp

from .construct import (
    contains,
    new,
    real_symbol,
    rebuild,
    substitute,
    term_base,
    with_base,
)
from .frontend import _is_option
from .graph import ADJOINT, INLINE_LIMIT, PARAMETER, TEMP, Graph, Node, Shape
from .names import Namer
from .ops import broadcast_like, full_like, matmul_vjp, max_vjp, size, sum_to
from .rules import is_elementwise, vjp
from .shapes import infer


def differentiate(graph: Graph) -> Graph:
    """``graph`` with the adjoint nodes of the reverse sweep appended, and ``grads`` set.

    A temporary's adjoint that one cotangent alone reads is put into that cotangent, not made
    a node: the generated code would write it into its one reader anyway (as emit does with
    temporaries used once, within the same INLINE_LIMIT), and a model of thousands of such
    temporaries saves as many nodes in every stage after this one.
    """
    needed = _on_paths(graph)
    namer = Namer({n.name for n in graph})
    shape_of: dict[sp.Symbol, Shape | None] = {n.symbol: n.shape for n in graph}
    adjoint: dict[sp.Symbol, sp.Expr] = {graph.output: sp.S.One}
    cotangents: dict[sp.Symbol, list[sp.Expr]] = {s: [] for s in needed}
    carried: dict[sp.Symbol, int] = {}  # operations of adjoints put into a node's cotangents
    new_nodes: list[Node] = []

    def add(of: Node, expr: sp.Expr, symbol: sp.Symbol | None = None) -> sp.Symbol:
        symbol = symbol or real_symbol(namer.fresh("d" + of.name))
        shape = _shape(expr, shape_of)
        new_nodes.append(Node(symbol, expr, ADJOINT, "d" + of.label, of.equation, shape, of.symbol))
        shape_of[symbol] = shape
        return symbol

    vjp = _Rules()
    for node in reversed(graph.nodes):
        v = node.symbol
        if v not in needed:
            continue
        pending = None  # an adjoint that may go into its one reader instead of a node
        if v != graph.output:
            parts = cotangents[v]
            if not parts:
                continue
            exact = not is_elementwise(node.expr) if node.expr is not None else True
            total = _accumulate(node, parts, shape_of, exact)
            if node.role == TEMP and (isinstance(total, sp.Symbol) or total.is_Number):
                adjoint[v] = total  # passed on as it is: another adjoint, a number
            elif (
                node.role == TEMP
                and 1 + carried.get(v, 0) <= INLINE_LIMIT
                and not isinstance(total, broadcast_like)  # (left to specialize's rewrite)
            ):
                pending = total
                adjoint[v] = real_symbol(namer.fresh("d" + node.name))  # its name, if a node
            else:
                adjoint[v] = add(node, total)
        if node.expr is None:
            continue
        g = adjoint[v]
        reduction = not is_elementwise(node.expr)  # only a reduction's rule brings in size()
        sent = [
            (arg, _simplify_sizes(c, graph) if reduction else c)
            for arg, c in vjp(node.expr, g, v).items()
            if arg in needed
        ]
        if pending is not None:
            readers = [(i, n) for i, (_, c) in enumerate(sent) if (n := _count(c, g))]
            if len(readers) == 1 and readers[0][1] == 1:
                i = readers[0][0]
                arg, c = sent[i]
                sent[i] = arg, substitute(c, {g: pending})
                carried[arg] = carried.get(arg, 0) + 1 + carried.get(v, 0)
            else:
                add(node, pending, g)
        for arg, c in sent:
            cotangents[arg].append(c)
    grads = []
    for p in graph.wrt:
        if p not in adjoint:  # the output does not depend on p
            adjoint[p] = add(graph[p], full_like(p, 0))
        grads.append((p, adjoint[p]))
    return graph.with_nodes(graph.nodes + tuple(new_nodes), grads=tuple(grads))


def _count(expr: sp.Basic, symbol: sp.Symbol) -> int:
    """How often ``symbol`` occurs in ``expr`` (as printed: a repeated sub-expression counts
    each time), up to 2."""
    if expr == symbol:
        return 1
    found, stack = 0, list(expr.args)
    while stack:
        e = stack.pop()
        if e is symbol or (e.is_Symbol and e == symbol):
            found += 1
            if found > 1:
                return found
        elif e.args:
            stack.extend(e.args)
    return found


def _on_paths(graph: Graph) -> set[sp.Symbol]:
    """The nodes on some path from a parameter up to the output."""
    below = set(graph.wrt)  # depends on a parameter
    for node in graph.nodes:
        if any(a in below for a in node.args):
            below.add(node.symbol)
    above = {graph.output}  # the output depends on it
    for node in reversed(graph.nodes):
        if node.symbol in above:
            above.update(node.args)
    return below & above


class _Rules:
    """``vjp(expr, g, out)``, derived once per pattern and then only renamed.

    Nodes of the same pattern (``t**2``, ``100*t``, ``a + b`` over other symbols) get the
    same cotangents over other symbols: the rule runs on the pattern, with SymPy's full
    evaluation, and every node of that pattern gets a copy with its own symbols put in, which
    costs a few µs instead of the rule's tens (models with thousands of nodes repeat a handful
    of patterns).
    """

    def __init__(self) -> None:
        self.templates: dict[tuple, dict[sp.Symbol, sp.Expr]] = {}

    def __call__(self, expr: sp.Basic, g: sp.Expr, out: sp.Symbol) -> dict[sp.Symbol, sp.Expr]:
        args = expr.args
        if type(expr) is sp.Add:  # the sum's rule, most common of all: g to every term
            sent = _sum_cotangents(args, g)
            if sent is not None:
                return sent
        terms = type(expr) is sp.Add
        if not args or not all(
            a.is_Symbol or a.is_Number or _is_option(a) or (terms and _base_symbol(a))
            for a in args
        ):
            return vjp(expr, g, out)  # an alias, a constant, a Piecewise: as it is
        slot_of: dict[sp.Symbol, sp.Symbol] = {}
        bases = {a: _base_symbol(a) for a in args if terms and not a.is_Atom}
        for a in (g, *args, out):  # g first: products print with the adjoint in front, dL1*x
            a = bases.get(a) or a
            if a.is_Symbol and a not in slot_of:
                slot_of[a] = _slot(len(slot_of))
        pattern = tuple(
            with_base(a, slot_of[bases[a]]) if bases.get(a) else slot_of.get(a, a) for a in args
        )
        key = (type(expr), pattern, slot_of.get(g, g), slot_of[out])
        template = self.templates.get(key)
        if template is None:
            template = self.templates[key] = vjp(rebuild(expr, pattern), key[2], key[3])
        back = {s: a for a, s in slot_of.items()}
        memo: dict = {}
        return {back[s]: substitute(c, back, memo) for s, c in template.items()}


def _base_symbol(a: sp.Basic) -> sp.Symbol | None:
    """The node symbol u of a sum's term c*u**n (construct.term_base), else None."""
    u = term_base(a)
    return u if isinstance(u, sp.Symbol) else None


def _sum_cotangents(terms: tuple, g: sp.Expr) -> dict[sp.Symbol, sp.Expr] | None:
    """A sum sends g times the term's derivative to each term's node: g to u, -g to -u,
    g*2*c*u to c*u**2 (the terms the front end keeps in a sum, construct.term_base). None if
    a node occurs in two terms, for the general rule to handle."""
    sent: dict[sp.Symbol, sp.Expr] = {}
    for a in terms:
        if a.is_Number:
            continue
        if a.is_Symbol:
            s, c = a, g
        else:
            s = _base_symbol(a)
            if s is None:
                return None
            c = _monomial_derivative(a, s)
            c = c if g is sp.S.One else new(sp.Mul, g, c)
        if s in sent:
            return None
        sent[s] = c
    return sent


def _monomial_derivative(a: sp.Basic, u: sp.Symbol) -> sp.Expr:
    """d/du of c*u, u**n or c*u**n (numbers c, n), built as written: c, n*u**(n - 1), ..."""
    c, power = (a.args[0], a.args[1]) if type(a) is sp.Mul else (sp.S.One, a)
    if type(power) is not sp.Pow:
        return c
    n = power.args[1].p  # an integer >= 2
    factor = sp.Integer(c.p * n) if c.is_Integer else c * n
    return new(sp.Mul, factor, u if n == 2 else new(sp.Pow, u, sp.Integer(n - 1)))


_SLOTS: list[sp.Symbol] = []


def _slot(i: int) -> sp.Symbol:
    """The i-th symbol of a pattern (real, like every node symbol)."""
    while len(_SLOTS) <= i:
        _SLOTS.append(sp.Symbol(f"_{len(_SLOTS)}", real=True))
    return _SLOTS[i]


def _accumulate(node: Node, parts: list[sp.Expr], shape_of, exact: bool) -> sp.Expr:
    """The sum of the cotangents sent to ``node``, each brought to its shape where needed."""
    v = node.symbol
    if node.role == PARAMETER and all(c.is_Number for c in parts):  # d(2*k)/dk: like k
        return full_like(v, sp.Add(*parts))
    exact = exact or len(parts) > 1 or node.role == PARAMETER
    known = node.shape is not None  # else no part can be known to fit
    fitted = [
        c if not exact or isinstance(c, EXACT) or (known and _fits(_shape(c, shape_of), node.shape))
        else new(sum_to, c, v)
        for c in parts
    ]
    if len(fitted) == 1:
        return fitted[0]
    terms = [t for c in fitted for t in (c.args if c.is_Add else (c,))]
    return sp.Add._from_args(tuple(terms), is_commutative=True)  # as they come, not re-sorted


#: Cotangents that always have their operand's exact shape.
EXACT = (matmul_vjp, max_vjp, full_like, broadcast_like)


def _fits(shape: Shape | None, target: Shape | None) -> bool:
    return shape is not None and target is not None and shape == target and None not in shape


def _shape(expr: sp.Expr, shape_of) -> Shape | None:
    """The static shape of ``expr`` if every symbol in it has one, else None."""
    return infer(expr, shape_of.get)


def _simplify_sizes(expr: sp.Expr, graph: Graph) -> sp.Expr:
    """size(t) -> size(u) (and a broadcast to t's shape -> to u's) when t is elementwise in u
    alone: the same shape, and t need not be kept for it."""
    if not contains(expr, (size, broadcast_like)):
        return expr

    def same_shape(x: sp.Symbol) -> sp.Symbol:
        while x in graph and graph[x].expr is not None and is_elementwise(graph[x].expr):
            (u, *more) = graph[x].args or (None,)
            if more or u is None:
                break
            x = u
        return x

    def smaller(e):
        return e.func(*e.args[:-1], same_shape(e.args[-1]))

    return expr.replace(lambda e: isinstance(e, (size, broadcast_like)), smaller)
