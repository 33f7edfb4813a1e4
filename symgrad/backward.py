"""Reverse-mode chain rule: append adjoint nodes to the graph, in reverse topological order.

The adjoint ``dv`` of a node ``v`` is d output / d v, summed over every path from the output
down to ``v``. Each node's rule turns its adjoint into one cotangent per operand; a node's
adjoint is the sum of the cotangents its users send it. Every node and every edge is visited
once, so the cost grows with the size of the DAG, never with the size of the expanded tree.

Broadcasting is handled here, once, on the edge: a cotangent may be larger than its node (a
scalar parameter broadcast over the data) and is summed back with ``sum_to`` where the shapes
are not known to agree: at parameters, before operations that are not elementwise, and where
cotangents from several users meet.

A temporary's adjoint that only one cotangent reads is written into it instead of becoming a
node (``dt2`` below stays one: it reads a broadcast, which specialize may drop once shapes are
known, if what reads it is elementwise).

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
dt2 = 2*dt3*t2
dk = sum_to(dt2*x, k)
"""

from __future__ import annotations

import sympy as sp

from .construct import (
    assembled,
    contains,
    new,
    real_symbol,
    rebuild,
    substitute,
    term_base,
    with_base,
)
from .frontend import _is_option
from .functions import _Reduction
from .graph import ADJOINT, INLINE_LIMIT, PARAMETER, TEMP, Graph, Node, NodeSymbol, Shape
from .names import Namer
from .ops import broadcast_like, full_like, matmul_vjp, size, sum_to
from .rules import is_elementwise, vjp
from .shapes import SHAPE_OF_ARGUMENT, infer


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
    output = graph[graph.output].symbol  # (the node's own symbol: compared with "is")
    adjoint: dict[sp.Symbol, sp.Expr] = {output: _seed(graph[output], shape_of)}
    cotangents: dict[sp.Symbol, list[sp.Expr]] = {s: [] for s in needed}
    carried: dict[sp.Symbol, int] = {}  # operations of adjoints put into a node's cotangents
    new_nodes: list[Node] = []
    broadcasts: set[sp.Symbol] = set()  # adjoint nodes that are a broadcast_like

    def add(of: Node, expr: sp.Expr) -> sp.Symbol:
        symbol = real_symbol(namer.fresh("d" + of.name))
        shape = _shape(expr, shape_of)
        label, inlined = "d" + of.label, carried.get(of.symbol, 0)
        new_nodes.append(Node(symbol, expr, ADJOINT, label, of.equation, shape, of.symbol, inlined))
        shape_of[symbol] = shape
        if type(expr) is broadcast_like:
            broadcasts.add(symbol)
        return symbol

    vjp = _Rules()
    for node in reversed(graph.nodes):
        v = node.symbol
        if v not in needed:
            continue
        if v is not output:
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
                # (a broadcast, and what reads one, are left as nodes to specialize's rewrite)
                and not isinstance(total, broadcast_like)
                and not (broadcasts and _reads_any(total, broadcasts))
                and (readers := vjp.readers(node.expr, v, needed)) is not None
                and len(readers) == 1
            ):
                adjoint[v] = total  # read once: written into that cotangent
                carried[readers[0]] = carried.get(readers[0], 0) + 1 + carried.get(v, 0)
            else:
                adjoint[v] = add(node, total)
        if node.expr is None:
            continue
        reduction = not is_elementwise(node.expr)  # only a reduction's rule brings in size()
        for arg, c in vjp(node.expr, adjoint[v], v).items():
            if arg in needed:
                cotangents[arg].append(_simplify_sizes(c, graph) if reduction else c)
    grads = []
    for p in graph.wrt:
        if p not in adjoint:  # the output does not depend on p
            adjoint[p] = add(graph[p], full_like(p, 0))
        grads.append((p, adjoint[p]))
    return graph.with_nodes(graph.nodes + tuple(new_nodes), grads=tuple(grads))


def _seed(out: Node, shape_of) -> sp.Expr:
    """The output's own adjoint: 1, spread to the output's shape where an operation that is not
    elementwise computes an output that may not be a scalar (``sum(X, axis=1)``). The gradient
    of such an output is never computed (value_and_grad refuses it), but every node must have
    a shape."""
    e = out.expr
    if (
        e is None
        or is_elementwise(e)
        or (isinstance(e, _Reduction) and e.axis is None and not e.keepdims)
        or _shape(e, shape_of) == ()
    ):
        return sp.S.One
    return broadcast_like(sp.S.One, out.symbol)


def _reads_any(expr: sp.Basic, symbols: set[sp.Symbol]) -> bool:
    """Whether any of ``symbols`` occurs in ``expr``."""
    stack = [expr]
    while stack:
        e = stack.pop()
        if e in symbols:
            return True
        stack.extend(e.args)
    return False


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
        if not below.isdisjoint(node.occurrences):
            below.add(node.symbol)
    above = {graph.output}  # the output depends on it
    for node in reversed(graph.nodes):
        if node.symbol in above:
            above.update(node.occurrences)
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
        self.reads: dict[tuple, dict[sp.Symbol, int]] = {}  # key -> slot -> uses of g there
        self._last: tuple | None = None  # (expr, g, out, plan): readers() then __call__()

    def __call__(self, expr: sp.Basic, g: sp.Expr, out: sp.Symbol) -> dict[sp.Symbol, sp.Expr]:
        """``{operand: cotangent}``: what the node ``out = expr`` sends back of its adjoint g."""
        plan = self._plan(expr, g, out)
        if plan[0] == "sum":
            return _sum_cotangents(expr.args, plan[1], g)
        if plan[0] == "as is":
            return vjp(expr, g, out)
        _, key, template, slot_of = plan
        back = {s: a for a, s in slot_of.items()}
        if not g.is_Number:
            back[key[2]] = g  # (the plan may have been made for another adjoint)
        memo: dict = {}
        return {back[s]: substitute(c, back, memo) for s, c in template.items()}

    def readers(self, expr: sp.Basic, out: sp.Symbol, needed) -> list[sp.Symbol] | None:
        """The operands in ``needed`` whose cotangent reads the adjoint, once per time it is
        read; None when the rule is not known before it runs."""
        plan = self._plan(expr, _ADJOINT, out)
        if plan[0] == "sum":
            return [s for s in plan[1] if s in needed]
        if plan[0] == "as is":
            return None
        _, key, template, slot_of = plan
        reads = self.reads.get(key)
        if reads is None:
            reads = self.reads[key] = {s: _count(c, key[2]) for s, c in template.items()}
        back = {s: a for a, s in slot_of.items()}
        return [back[s] for s, n in reads.items() if back[s] in needed for _ in range(n)]

    def _plan(self, expr: sp.Basic, g: sp.Expr, out: sp.Symbol) -> tuple:
        """``("sum", bases)``, ``("as is",)`` or ``("template", key, template, slot_of)``: the
        same for every adjoint g that is not a number (the last one is kept for the next call)."""
        last = self._last
        if (
            last is not None
            and last[0] is expr
            and last[2] is out
            and (last[1] is g or not (g.is_Number or last[1].is_Number))
        ):
            return last[3]
        plan = self._make_plan(expr, g, out)
        self._last = (expr, g, out, plan)
        return plan

    def _make_plan(self, expr: sp.Basic, g: sp.Expr, out: sp.Symbol) -> tuple:
        args = expr.args
        terms = type(expr) is sp.Add
        if terms:  # the sum's rule, most common of all: g to every term
            bases = _sum_bases(args)
            if bases is not None:
                return ("sum", bases)
        if not args or not all(
            a.is_Symbol or a.is_Number or _is_option(a) or (terms and _base_symbol(a))
            for a in args
        ):
            return ("as is",)  # an alias, a constant, a Piecewise: the rule runs on it
        slot_of: dict[sp.Basic, sp.Symbol] = {}
        if not g.is_Number:  # g first: products print with the adjoint in front, dL1*x
            slot_of[g] = _slot(0)
        bases = {a: _base_symbol(a) for a in args if terms and not a.is_Atom}
        for a in (*args, out):
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
        return ("template", key, template, slot_of)


def _base_symbol(a: sp.Basic) -> sp.Symbol | None:
    """The node symbol u of a sum's term c*u**n (construct.term_base), else None."""
    u = term_base(a)
    return u if isinstance(u, sp.Symbol) else None


def _sum_bases(terms: tuple) -> list[sp.Symbol] | None:
    """The node of each term of a sum that is not a number (u for u, -u, c*u**2: the terms
    the front end keeps in a sum, construct.term_base). None if a term is none of those, or
    a node occurs in two terms, for the general rule to handle."""
    bases = []
    for a in terms:
        if a.is_Number:
            continue
        s = a if a.is_Symbol else _base_symbol(a)
        if s is None:
            return None
        bases.append(s)
    return bases if len(set(bases)) == len(bases) else None


def _sum_cotangents(terms: tuple, bases: list, g: sp.Expr) -> dict[sp.Symbol, sp.Expr]:
    """A sum sends g times the term's derivative to each term's node: g to u, -g to -u,
    g*2*c*u to c*u**2."""
    sent: dict[sp.Symbol, sp.Expr] = {}
    plain = g is sp.S.One or type(g) is NodeSymbol  # (the product is then built at once)
    i = 0
    for a in terms:
        if a.is_Number:
            continue
        s = bases[i]
        i += 1
        if a is s:
            sent[s] = g
            continue
        factors = _monomial_derivative(a, s)
        c = factors[0]
        if plain and type(c) is sp.Integer:  # (not 0, 1 or -1: SymPy's singletons)
            args = factors if g is sp.S.One else (c, g, *factors[1:])
            sent[s] = c if len(args) == 1 else assembled(sp.Mul, *args)
        else:
            sent[s] = new(sp.Mul, *factors) if g is sp.S.One else new(sp.Mul, g, *factors)
    return sent


def _monomial_derivative(a: sp.Basic, u: sp.Symbol) -> tuple[sp.Expr, ...]:
    """The factors of d/du of c*u, u**n or c*u**n (numbers c, n), as written: (c,) or
    (n*c, u**(n - 1))."""
    c, power = a._args if type(a) is sp.Mul else (sp.S.One, a)
    if type(power) is not sp.Pow:
        return (c,)
    n = power._args[1].p  # an integer >= 2
    factor = sp.Integer(c.p * n) if c.is_Integer else c * n
    return factor, u if n == 2 else new(sp.Pow, u, sp.Integer(n - 1))


_SLOTS: list[sp.Symbol] = []

#: Stands for a temporary's adjoint while its rule is planned (in its place, any symbol will do).
_ADJOINT = sp.Symbol("_adjoint", real=True)


def _slot(i: int) -> sp.Symbol:
    """The i-th symbol of a pattern (real, like every node symbol)."""
    while len(_SLOTS) <= i:
        _SLOTS.append(sp.Symbol(f"_{len(_SLOTS)}", real=True))
    return _SLOTS[i]


def _accumulate(node: Node, parts: list[sp.Expr], shape_of, exact: bool) -> sp.Expr:
    """The sum of the cotangents sent to ``node``, each brought to its shape where needed."""
    v = node.symbol
    if node.role == PARAMETER:
        if all(c.is_Number for c in parts):  # d(2*k)/dk: like k
            return full_like(v, sp.Add(*parts))
    elif len(parts) == 1 and not exact:  # the common case: one cotangent, of v's shape
        return parts[0]
    exact = exact or len(parts) > 1 or node.role == PARAMETER
    known = node.shape is not None  # else no part can be known to fit
    fitted = [
        c if not exact or _shaped_like(c, v) or (known and _fits(_shape(c, shape_of), node.shape))
        else new(sum_to, c, v)
        for c in parts
    ]
    if len(fitted) == 1:
        return fitted[0]
    terms = [t for c in fitted for t in (c.args if c.is_Add else (c,))]
    return sp.Add._from_args(tuple(terms), is_commutative=True)  # as they come, not re-sorted


def _shaped_like(c: sp.Expr, v: sp.Symbol) -> bool:
    """Whether the cotangent ``c`` has ``v``'s shape whatever the shapes are: a broadcast to
    ``v``, or a gradient helper made for ``v`` itself (it has the shape of the operand it was made
    for, and a sum passes it on unchanged to terms of other shapes: ``max(a + t)``)."""
    cls = type(c)
    if cls is matmul_vjp:
        return c.args[1 + c.which] is v
    argument = SHAPE_OF_ARGUMENT.get(cls)
    return argument is not None and c.args[argument] is v


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
