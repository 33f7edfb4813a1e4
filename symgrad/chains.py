"""The chain rule as a teacher writes it: paths through named nodes, local factors.

A chain is a product of local partial derivatives along one path from the output down to a
parameter, through the user's named nodes (the temporaries inside an equation are that
equation's business): ``∂Loss/∂L2·∂L2/∂σ·∂σ/∂L1·∂L1/∂k1``. Several paths are joined by
`` + ``; many are written factored. A model of one expression, or an equation with functions
nested inside, goes through the temporaries of its graph instead (see :func:`stops`):
``∂f/∂t2·∂t2/∂t1·∂t1/∂k`` with ``t1 = b + k·x``, ``t2 = sigmoid(t1)``.

The functions here read the symbolic view of a differentiated model (``views.view``; a
compiled model's ``symbolic``):

>>> import sympy as sp
>>> from symgrad.backward import differentiate
>>> from symgrad.frontend import build
>>> from symgrad.functions import sigmoid
>>> from symgrad.views import view
>>> x, k, h, f = sp.symbols("x k h f")
>>> g = view(differentiate(build([(h, sigmoid(k*x)), (f, h**2 + h)])))
>>> chain(g, g.wrt[0])
'∂f/∂h·∂h/∂k'
>>> print(display(local_factor(g, g.output, g.equations[0][0])))
2·h + 1
>>> print(display(local_factor(g, g.equations[0][0], g.wrt[0])))
h·x·(1 − h)
"""

from __future__ import annotations

import itertools
import unicodedata
import weakref
from dataclasses import dataclass
from functools import cached_property

import sympy as sp
from sympy.printing.conventions import split_super_sub
from sympy.printing.latex import greek_letters_set as _GREEK
from sympy.printing.latex import translate as _translate

from .errors import SymgradError
from .expressions import (
    N,
    WrittenOrderPrinter,
    as_taught,
    free_symbols,
    substitute_unevaluated,
    tree_size,
)
from .functions import mean, sum
from .graph import ADJOINT, NAMED, TEMP, Graph
from .ops import broadcast_like, expand_dims, sum_to
from .ops import size as size_of
from .views import is_elementwise, local_partials, vjp

MAX_PATHS = 64  # a chain string lists at most this many paths
MAX_DISPLAY_SIZE = 300  # larger equations (as trees) are not spelled out

#: The symbol that stands for "the number of elements" in a factor of ``mean``.


def dependencies(
    graph: Graph, stops: frozenset[sp.Symbol] | None = None
) -> dict[sp.Symbol, list[sp.Symbol]]:
    """For each named node, the named nodes and inputs its equation reads, latest first.

    With ``stops`` (see :func:`stops`), for each of those nodes the stops and inputs its part
    of the graph reads.
    """
    if stops is not None:
        return _links(graph, stops)[0]
    memo: dict = {}
    deps = {}
    for lhs, rhs in graph.equations:
        used = [s for s in _free(rhs, memo) if s in graph]
        deps[lhs] = sorted(used, key=graph.position, reverse=True)
    return deps


def _free(expr, memo):
    if expr not in memo:
        memo[expr] = free_symbols(expr)
    return memo[expr]


#: An equation is cut into parts no larger than this (as trees, temporaries written in).
PART_SIZE = 24


def stops(graph: Graph) -> frozenset[sp.Symbol]:
    """The nodes a chain goes through: every named node, and the temporaries worth a name.

    A model of several equations is explained through them: each equation keeps its
    temporaries to itself (``L1 = k1·x + b1``, ``L = X @ W + b``, ``Loss = −mean(sum(Y·P,
    axis=1))``) unless it applies an elementwise function inside (``h = sigmoid(k·sigmoid(x))``)
    or is too large to be one part (larger than ``PART_SIZE`` as a tree). A model of one
    expression, and such an equation, is cut where a temporary is a function's value
    (``t2 = sigmoid(t1)``), a function's operand (``t1 = b + k·x``; the operand of a ``sum`` or
    ``mean`` of everything stays inside), a sum raised to a power (the residual ``t3 = t2 − y``
    of ``t3²``), is read by several nodes, or where the part above it would be too large.

    >>> from symgrad.backward import differentiate
    >>> from symgrad.frontend import build
    >>> from symgrad.functions import mean, sigmoid
    >>> from symgrad.views import view
    >>> x, y, k, b, f = sp.symbols("x y k b f")
    >>> g = view(differentiate(build([(f, mean((sigmoid(k*x + b) - y)**2))], wrt=[k, b])))
    >>> sorted(g[s].label for s in stops(g))
    ['f', 't1', 't2', 't3']
    """
    readers: dict[sp.Symbol, int] = {}
    for n in graph:
        if n.role != ADJOINT:
            for a in n.args:
                readers[a] = readers.get(a, 0) + 1
    result = {n.symbol for n in graph if n.role == NAMED}
    single = len(result) == 1
    for lhs in sorted(result, key=graph.position):
        region = _equation_nodes(graph, lhs)
        if single or _nested_function(region) or _size_cuts(graph, region, frozenset()):
            marked = _marked(graph, region, lhs, readers)
            result |= marked
            result |= _size_cuts(graph, region, frozenset(marked))
    return frozenset(result)


def _nested_function(region: list) -> bool:
    """Whether an elementwise function is applied inside the equation (not at its top): its
    factor would write that function out again and again, where a node's name would do."""
    return any(
        not isinstance(n.expr, _ARITHMETIC) and is_elementwise(n.expr) for n in region[:-1]
    )


def _marked(graph: Graph, region: list, lhs: sp.Symbol, readers: dict) -> set[sp.Symbol]:
    """The temporaries of an equation that are worth a name (see :func:`stops`)."""
    temps = {n.symbol for n in region if n.symbol != lhs}
    marked = set()
    for n in region:
        if isinstance(n.expr, _ARITHMETIC):
            continue
        if n.symbol != lhs:
            marked.add(n.symbol)
        if not _full_reduction(n.expr):
            marked.update(a for a in n.args if a in temps)
    for n in region:  # the base of a power, if a sum: (b + k·x − y)² through its residual
        e = n.expr
        if isinstance(e, sp.Pow) and e.base in temps and isinstance(graph[e.base].expr, sp.Add):
            marked.add(e.base)
    marked.update(t for t in temps if readers.get(t, 0) > 1)
    return marked


_ARITHMETIC = (sp.Add, sp.Mul, sp.Pow)


def _size_cuts(graph: Graph, region: list, stops: frozenset) -> set[sp.Symbol]:
    """The temporaries to cut at so that no part of the equation exceeds PART_SIZE."""
    inside = {n.symbol for n in region[:-1]} - stops  # (the region's last node is its top)
    size: dict[sp.Symbol, int] = {}
    cuts: set[sp.Symbol] = set()
    for n in region:
        own = tree_size(n.expr)
        written_in = {a: size[a] - 1 for a in n.occurrences if a in inside and a not in cuts}
        total = own
        for a in written_in:  # (``sum`` here is symgrad's)
            total += written_in[a] * n.occurrences[a]
        for a in sorted(written_in, key=lambda a: -written_in[a] * n.occurrences[a]):
            if total <= PART_SIZE:
                break
            cuts.add(a)
            total -= written_in[a] * n.occurrences[a]
        size[n.symbol] = total
    return cuts


def _links(graph: Graph, stops: frozenset) -> tuple[dict, list]:
    """For each stop that is computed: the stops and inputs it reads, latest first; and those
    stops in topological order."""
    deps = {}
    order = [n.symbol for n in graph if n.symbol in stops and n.expr is not None]
    for s in order:
        region = _equation_nodes(graph, s, stops)
        inside = {n.symbol for n in region}
        leaves = {a for n in region for a in n.args if a not in inside}
        deps[s] = sorted(leaves, key=graph.position, reverse=True)
    return deps, order


_KNOWN: dict[int, tuple] = {}  # id(graph) -> (a weak reference to it, its stops, deps, order)


def _chain_graph(graph: Graph) -> tuple[frozenset, dict, list]:
    """:func:`stops` and :func:`_links` of ``graph``, worked out once per graph (a model's
    chains are asked for one parameter at a time, and each needs them all)."""
    key = id(graph)
    known = _KNOWN.get(key)
    if known is not None and known[0]() is graph:
        return known[1:]
    names = stops(graph)
    deps, order = _links(graph, names)
    ref = weakref.ref(graph, lambda _, key=key: _KNOWN.pop(key, None))
    _KNOWN[key] = (ref, names, deps, order)
    return names, deps, order


def paths(graph: Graph, param: sp.Symbol, limit: int = MAX_PATHS) -> tuple[list[list], int]:
    """Up to ``limit`` paths from the output down to ``param``, and how many there are."""
    _, deps, order = _chain_graph(graph)
    return _paths(graph, deps, order, param, limit)


def _paths(graph, deps, order, param, limit) -> tuple[list[list], int]:
    count = _counts(deps, order, param)
    found: list[list] = []
    todo = [[graph.output]] if count.get(graph.output, 0) else []
    while todo and len(found) < limit:  # depth first, without recursion: chains can be long
        path = todo.pop()
        if path[-1] == param:
            found.append(path)
            continue
        nexts = [d for d in deps.get(path[-1], ()) if count.get(d, 0)]
        todo.extend([*path, d] for d in reversed(nexts))
    return found, count.get(graph.output, 0)


def _counts(deps: dict, order: list, bottom: sp.Symbol) -> dict[sp.Symbol, int]:
    """How many paths lead from each node down to ``bottom`` (topological order: bottom-up)."""
    count: dict[sp.Symbol, int] = {bottom: 1}
    for s in order:
        if s != bottom:
            count[s] = _count(deps[s], count)
    return count


def _count(deps, count) -> int:
    total = 0
    for d in deps:
        total += count.get(d, 0)
    return total


#: A chain lists its paths one by one while there are at most this many; with more, it is
#: written factored: a product, through the nodes every path passes, of sums over the paths
#: between them (as long as the graph, where the list would grow with the number of paths).
FLAT_PATHS = 4
MAX_EDGES = 2000  # a factored chain longer than this, or nested deeper than MAX_NESTING, is
MAX_NESTING = 400  # listed path by path, up to MAX_PATHS


class _Sum(tuple):
    """Alternatives, each a product: a list of edges ``(a, b)`` (∂a/∂b) and nested sums."""


def _structure(graph: Graph, deps, order, param) -> tuple[_Sum, int, bool]:
    """The chain of ``param``: its structure, how many paths it sums, whether all are in it."""
    found, total = _paths(graph, deps, order, param, MAX_PATHS)
    if total <= FLAT_PATHS:
        return _Sum(list(itertools.pairwise(p)) for p in found), total, True
    try:
        budget = [MAX_EDGES]
        position = {s: i for i, s in enumerate(order)}
        product = _series(graph.output, param, deps, position, budget, 0)
        return _Sum([product]), total, True
    except (_TooLong, RecursionError):
        return _Sum(list(itertools.pairwise(p)) for p in found), total, total <= len(found)


class _TooLong(Exception):
    pass


def _series(top, bottom, deps, position, budget, depth) -> list:
    """The paths from ``top`` down to ``bottom`` as a product: the nodes every path passes, in
    turn, with the sum of the paths between each two of them."""
    if depth > MAX_NESTING:
        raise _TooLong
    low = position.get(bottom, -1)
    region, todo = {top}, [top]
    while todo:  # the nodes below top and above bottom
        for d in deps.get(todo.pop(), ()):
            if d not in region and (d == bottom or position.get(d, -1) > low):
                region.add(d)
                todo.append(d)
    ordered = sorted(region - {bottom}, key=position.__getitem__)
    below = {bottom: 1}
    for s in ordered:
        below[s] = _count(deps[s], below)
    above = {top: 1}
    for s in reversed(ordered):
        if not below[s] or s not in above:
            continue
        for d in deps[s]:
            if below.get(d, 0):
                above[d] = above.get(d, 0) + above[s]
    total = below[top]
    cuts = [s for s in reversed(ordered) if above.get(s, 0) * below[s] == total]
    cuts.append(bottom)
    product: list = []
    for c, c2 in itertools.pairwise(cuts):
        branches = []
        for d in deps[c]:
            if not below.get(d, 0):
                continue
            if d == c2:
                branches.append([(c, d)])
            else:
                branches.append([(c, d), *_series(d, c2, deps, position, budget, depth + 1)])
            budget[0] -= 1
            if budget[0] < 0:
                raise _TooLong
        product += branches[0] if len(branches) == 1 else [_Sum(branches)]
    return product


def _fold(chain: _Sum, edge, product, alternatives):
    """``chain`` folded bottom-up without recursion (a chain can nest hundreds deep):
    ``edge(a, b)`` for a link, ``product(values, nested)`` for a product (``nested[i]`` tells
    whether its i-th item is a sum), ``alternatives(values)`` for a sum."""
    done: dict[int, object] = {}
    stack = [chain]
    while stack:
        s = stack[-1]
        todo = [i for p in s for i in p if isinstance(i, _Sum) and id(i) not in done]
        if todo:
            stack.extend(todo)
            continue
        stack.pop()
        done[id(s)] = alternatives([
            product(
                [done[id(i)] if isinstance(i, _Sum) else edge(*i) for i in p],
                [isinstance(i, _Sum) for i in p],
            )
            for p in s
        ])
    return done[id(chain)]


def _write(chain: _Sum, frac, dot: str, left: str, right: str) -> str:
    """A chain in words: ``frac(a, b)`` writes ∂a/∂b; a nested sum is put in brackets."""
    return _fold(
        chain,
        frac,
        lambda texts, nested: dot.join(
            left + t + right if n else t for t, n in zip(texts, nested, strict=True)
        ),
        " + ".join,
    )


def _edges(chain: _Sum) -> list[tuple[sp.Symbol, sp.Symbol]]:
    """The links of a chain, each once, first seen (reading left to right) first."""
    seen: dict = {}
    stack = [iter(chain)]
    while stack:
        item = next(stack[-1], None)
        if item is None:
            stack.pop()
        elif isinstance(item, (_Sum, list)):  # alternatives, or one product's items
            stack.append(iter(item))
        else:
            seen.setdefault(item, None)
    return list(seen)


def chain(graph: Graph, param: sp.Symbol) -> str:
    """The chain-rule products for ``param``, one per path, joined by `` + ``; "0" if none.

    With more than ``FLAT_PATHS`` paths, the products are written factored, through the nodes
    every path passes:

    >>> from symgrad.backward import differentiate
    >>> from symgrad.frontend import build
    >>> from symgrad.views import view
    >>> x, f = sp.symbols("x f")
    >>> e = x
    >>> for _ in range(3): e = sp.sin(e) + sp.cos(e)
    >>> g = view(differentiate(build([(f, e)], wrt=[x])))
    >>> print(chain(g, g.wrt[0]).replace(")·(", ")·\\n("))
    (∂f/∂t8·∂t8/∂t6 + ∂f/∂t7·∂t7/∂t6)·
    (∂t6/∂t5·∂t5/∂t3 + ∂t6/∂t4·∂t4/∂t3)·
    (∂t3/∂t2·∂t2/∂x + ∂t3/∂t1·∂t1/∂x)
    """
    _, deps, order = _chain_graph(graph)
    structure, total, complete = _structure(graph, deps, order, param)
    return _chain_text(graph, structure, total, complete)


def _chain_text(graph: Graph, structure: _Sum, total: int, complete: bool) -> str:
    if not structure:
        return "0"
    text = _write(structure, lambda a, b: f"∂{graph[a].label}/∂{graph[b].label}", "·", "(", ")")
    if not complete:
        text += f" + … ({total} paths in all)"
    return text


class _AdjointSymbol(sp.Symbol):
    """Ḡ in text, \\bar{G} in LaTeX."""

    def _latex(self, printer):
        return r"\bar{G}"


#: Stands for the adjoint arriving at a node, in factors that are not elementwise.
G_BAR = _AdjointSymbol("Ḡ")


def local_factor(
    graph: Graph, node: sp.Symbol, of: sp.Symbol, stops: frozenset[sp.Symbol] | None = None
) -> sp.Expr:
    """∂node/∂of, the derivative of ``node``'s equation by one of its operands.

    Computed over the equation's own operations, so each rule can use its node's value
    (∂σ/∂L1 = σ·(1 − σ)); the result is then written back in the equation's terms. It is the
    factor per element: ``N`` stands for the number of elements a ``mean`` averages over.
    Where the equation is not elementwise (a matmul, a reduction over an axis, a softmax) the
    factor is the product as it really is, applied to the adjoint ``Ḡ`` that arrives at the
    node: ∂L1/∂W1 = Xᵀ @ Ḡ. ``node``'s part of the graph reaches down to the named nodes, or
    to ``stops`` if given.
    """
    region = _equation_nodes(graph, node, stops)
    expressions = {n.symbol: n.expr for n in region if n.symbol != node}
    if not all(is_elementwise(n.expr) or _full_reduction(n.expr) for n in region):
        product = _strip(_vector_jacobian(region, node, of))
        if node == graph.output:  # the adjoint arriving at the output is 1
            product = product.xreplace({G_BAR: sp.S.One})
        factor = product.xreplace({G_BAR: sp.S.One})
        if product == G_BAR * factor and _elementwise_in(product, G_BAR):
            product = factor  # elementwise after all (a bias beside a matmul): the partial
        return _inline(product, expressions)
    d: dict[sp.Symbol, sp.Expr] = {of: sp.S.One}
    for n in region:
        if _full_reduction(n.expr):
            arg = n.expr.args[0]
            d[n.symbol] = d.get(arg, sp.S.Zero) * (1 / N if isinstance(n.expr, mean) else 1)
            continue
        partials = local_partials(n.expr, out=n.symbol)
        d[n.symbol] = sp.Add(*(p * d[a] for a, p in partials.items() if a in d))
    return _inline(_uncontinued(d[node]), expressions)


def _uncontinued(expr: sp.Expr) -> sp.Expr:
    """``expr`` with x**y's derivative in y written as a teacher does, ``x^y·log(x)``: the code
    takes the log of 1 where x = 0 (0·log(0) would be NaN), a detail of the arithmetic."""
    return expr.replace(
        lambda e: isinstance(e, sp.log) and isinstance(e.args[0], sp.Piecewise)
        and len(e.args[0].args) == 2 and e.args[0].args[0].expr == 1
        and isinstance(e.args[0].args[0].cond, sp.Eq) and e.args[0].args[1].cond == sp.true,
        lambda e: sp.log(e.args[0].args[1].expr),
    )


def _elementwise_in(expr: sp.Basic, symbol: sp.Symbol) -> bool:
    if expr == symbol or symbol not in expr.free_symbols:
        return True
    return is_elementwise(expr) and all(_elementwise_in(a, symbol) for a in expr.args)


def _full_reduction(expr: sp.Basic) -> bool:
    return isinstance(expr, (mean, sum)) and len(expr.args) == 1


def _vector_jacobian(region: list, node: sp.Symbol, of: sp.Symbol) -> sp.Expr:
    """What the equation's operations send to ``of`` from the adjoint Ḡ of ``node``."""
    adjoint: dict[sp.Symbol, sp.Expr] = {node: G_BAR}
    for n in reversed(region):
        g = adjoint.get(n.symbol)
        if g is None:
            continue
        for a, c in vjp(n.expr, g, n.symbol).items():
            adjoint[a] = adjoint.get(a, sp.S.Zero) + c
    return adjoint.get(of, sp.S.Zero)


def _strip(expr: sp.Expr) -> sp.Expr:
    """Drop the broadcasts a formula need not show (``broadcast_like(g, x)`` is just g, per
    element), and write the number of elements a mean divides by as N."""
    expr = expr.replace(
        lambda e: isinstance(e, (broadcast_like, sum_to, expand_dims)), lambda e: e.args[0]
    )
    expr = _uncontinued(expr)
    sizes = sorted(expr.atoms(size_of), key=sp.default_sort_key)
    if len(sizes) == 2:  # a mean along axes: size(out)/size(in), and N is their ratio
        a, b = sizes
        m = sp.Dummy(positive=True)
        a_divides = expr.xreplace({a: m, b: sp.S.One}).as_numer_denom()[1].has(m)
        return expr.xreplace({a: N, b: sp.S.One} if a_divides else {a: sp.S.One, b: N})
    return expr.replace(lambda e: isinstance(e, size_of), lambda e: N)


def _equation_nodes(graph: Graph, node: sp.Symbol, stops: frozenset | None = None) -> list:
    """The node and the temporaries below it, up to named nodes (or ``stops``) and inputs; in
    topological order."""
    stops = stops or frozenset()
    keep, todo = {node}, [node]
    while todo:
        for a in graph[todo.pop()].args:
            if a not in keep and graph[a].role == TEMP and a not in stops:
                keep.add(a)
                todo.append(a)
    return [graph[s] for s in sorted(keep, key=graph.position)]


def _inline(expr: sp.Expr, expressions: dict[sp.Symbol, sp.Expr]) -> sp.Expr:
    """Replace temporaries by what they stand for, without SymPy re-arranging anything."""
    while expressions.keys() & expr.free_symbols:
        expr = substitute_unevaluated(expr, expressions)
    return expr


def display(expr: sp.Expr, labels: dict[sp.Symbol, str] | None = None) -> str:
    """An expression as a teacher writes it: ``σ·(1 − σ)``, ``2·(L2 − y)/N``, ``x²``.

    >>> x, s = sp.symbols("x s")
    >>> display(s*(1 - s)*x**2, {s: "σ"})
    'σ·x²·(1 − σ)'
    """
    size = tree_size(expr)
    if size > MAX_DISPLAY_SIZE:  # a shared sub-expression spelled out would be exponential
        return f"<an expression of {size} terms>"
    labels = labels or {}
    symbols = sorted(expr.free_symbols, key=sp.default_sort_key)
    marks = {s: sp.Symbol(f"⟨{i}⟩") for i, s in enumerate(symbols)}
    text = as_taught(WrittenOrderPrinter({"order": "none"}).doprint(expr.xreplace(marks)))
    for s, mark in marks.items():
        text = text.replace(mark.name, labels.get(s, s.name))
    return text


FORMATS = ("text", "latex", "markdown")


@dataclass
class Term:
    """One parameter's part of an explanation: its chain and the local factor on each link.

    ``chain`` holds the products the chain rule sums (see :func:`chain`); ``factors`` maps
    each link ``(a, b)`` to ∂a/∂b as a SymPy expression over the nodes of :func:`definitions`.
    """

    param: sp.Symbol
    chain: _Sum
    total: int  # paths in all
    complete: bool  # whether ``chain`` holds them all (else the first MAX_PATHS)
    factors: dict[tuple[sp.Symbol, sp.Symbol], sp.Expr]  # (a, b) -> ∂a/∂b, first seen first

    @cached_property
    def assembled(self) -> sp.Expr | None:
        """The gradient the factors assemble into, summed over paths; None if not all listed.

        Along a path from the output, a factor that is a number per element multiplies; a
        factor written with Ḡ (a matmul, softmax or a reduction along an axis) is applied to
        what has been assembled so far: ∂Loss/∂W1 = Xᵀ @ ((2·(L2 − y)/N @ W2ᵀ)·H·(1 − H)).
        """
        if not self.complete:
            return None
        return _assemble(self.chain, self.factors)


def _assemble(chain: _Sum, factors: dict) -> sp.Expr | None:
    """The product of the factors along each path, summed; None if too deep to build."""
    if not any(G_BAR in factors[e].free_symbols for e in _edges(chain)):  # numbers: multiply
        return _fold(chain, lambda a, b: factors[(a, b)], lambda v, _: sp.Mul(*v),
                     lambda v: sp.Add(*v))  # fmt: skip
    try:
        return _apply(chain, sp.S.One, factors)
    except RecursionError:
        return None


def _apply(chain: _Sum, so_far: sp.Expr, factors: dict) -> sp.Expr:
    """What the chain makes of ``so_far`` arriving at its top: a factor with Ḡ is applied to
    it, any other multiplies it."""
    total = sp.S.Zero
    for product in chain:
        value = so_far
        for item in product:
            if isinstance(item, _Sum):
                value = _apply(item, value, factors)
                continue
            factor = factors[item]
            if G_BAR in factor.free_symbols:
                value = factor.xreplace({G_BAR: value})
            else:
                value = value * factor
        total += value
    return total


def terms(graph: Graph) -> list[Term]:
    """Every parameter's chain and local factors, in ``wrt`` order.

    >>> from symgrad.backward import differentiate
    >>> from symgrad.frontend import build
    >>> from symgrad.functions import sigmoid
    >>> from symgrad.views import view
    >>> x, k, f = sp.symbols("x k f")
    >>> g = view(differentiate(build([(f, sigmoid(k*x))], wrt=[k])))
    >>> [(g[a].label, g[b].label, factor) for (a, b), factor in terms(g)[0].factors.items()]
    [('f', 't1', f*(1 - f)), ('t1', 'k', x)]
    """
    names, deps, order = _chain_graph(graph)
    result = []
    for p in graph.wrt:
        structure, total, complete = _structure(graph, deps, order, p)
        factors: dict = {}
        for edge in _edges(structure):
            if edge not in factors:
                factors[edge] = local_factor(graph, *edge, names)
        result.append(Term(p, structure, total, complete, factors))
    return result


def definitions(graph: Graph) -> list[tuple[sp.Symbol, sp.Expr]]:
    """Each node a chain goes through (see :func:`stops`), with what it computes from the
    others and the inputs; in topological order. An equation left whole is as the user wrote it.

    >>> from symgrad.backward import differentiate
    >>> from symgrad.frontend import build
    >>> from symgrad.functions import sigmoid
    >>> from symgrad.views import view
    >>> x, k, b, f = sp.symbols("x k b f")
    >>> g = view(differentiate(build([(f, sigmoid(k*x + b)**2)], wrt=[k])))
    >>> [(g[s].label, rhs) for s, rhs in definitions(g)]
    [('t1', b + k*x), ('t2', sigmoid(t1)), ('f', t2**2)]
    """
    names, _, order = _chain_graph(graph)
    whole = {}
    for i, lhs in enumerate(_lhs(graph)):
        region = _equation_nodes(graph, lhs)
        if not any(n.symbol in names for n in region if n.symbol != lhs):
            whole[lhs] = i
    result = []
    for s in order:
        if s in whole:
            result.append(graph.equations[whole[s]])
            continue
        region = _equation_nodes(graph, s, names)
        expressions = {n.symbol: n.expr for n in region if n.symbol != s}
        result.append((s, _inline(graph[s].expr, expressions)))
    return result


def _lhs(graph: Graph) -> list[sp.Symbol]:
    """The left side of each equation, without building the right sides."""
    symbols = getattr(graph.equations, "symbols", None)
    return list(symbols) if symbols is not None else [lhs for lhs, _ in graph.equations]


def explain(graph: Graph, format: str = "text") -> str:
    r"""Every parameter's chain, each local factor on it, then the gradient they assemble into.

    ``format`` is ``"text"`` (Unicode, for a terminal), ``"latex"`` (one ``aligned``
    environment, for ``IPython.display.Math`` or a paper) or ``"markdown"`` (headings and
    ``$$…$$`` blocks, for a notebook cell or a README).

    >>> from symgrad.backward import differentiate
    >>> from symgrad.frontend import build
    >>> from symgrad.functions import sigmoid
    >>> from symgrad.views import view
    >>> x, k, h, f = sp.symbols("x k h f")
    >>> g = view(differentiate(build([(h, sigmoid(k*x)), (f, 3*h)], wrt=[k])))
    >>> print(explain(g))
    h = sigmoid(k·x)
    f = 3·h
    <BLANKLINE>
    ∂f/∂k = ∂f/∂h·∂h/∂k
        ∂f/∂h = 3
        ∂h/∂k = h·x·(1 − h)
      = 3·h·x·(1 − h)
    >>> print(explain(g, "latex").splitlines()[3])
    \frac{\partial f}{\partial k} &= \frac{\partial f}{\partial h}
        \cdot \frac{\partial h}{\partial k} \\
    """
    writers = {"text": _text, "latex": _latex, "markdown": _markdown}
    if format not in writers:
        raise SymgradError(
            f"unknown explanation format {format!r}; choose one of {', '.join(FORMATS)}"
        )
    return writers[format](graph, terms(graph))


def _equations(graph: Graph):
    """(lhs, rhs or None when it is too large to spell out, its size as a tree)."""
    sizes: dict = {}
    for lhs, rhs in definitions(graph):
        size = tree_size(rhs, sizes)
        yield lhs, (None if size > MAX_DISPLAY_SIZE else rhs), size


def _uses_n(terms: list[Term]) -> bool:
    return any(N in f.free_symbols for t in terms for f in t.factors.values())


_N_NOTE = (
    "N: the number of elements a mean averages over. Factors are per element; a parameter "
    "broadcast over the data gets the sum of its product over the elements."
)


def _text(graph: Graph, terms: list[Term]) -> str:
    labels = {n.symbol: n.label for n in graph}
    out = labels[graph.output]
    lines = []
    for lhs, rhs, size in _equations(graph):
        text = f"<an expression of {size} terms>" if rhs is None else display(rhs, labels)
        lines.append(f"{labels[lhs]} = {text}")
    for t in terms:
        if _one_link(t, graph.output):  # ∂f/∂k is its own factor: no chain to spell out
            lines += ["", f"∂{out}/∂{labels[t.param]} = {display(t.assembled, labels)}"]
            continue
        chain_text = _chain_text(graph, t.chain, t.total, t.complete)
        lines += ["", f"∂{out}/∂{labels[t.param]} = {chain_text}"]
        for (a, b), factor in t.factors.items():
            lines.append(f"    ∂{labels[a]}/∂{labels[b]} = {display(factor, labels)}")
        if _worth_assembling(t):
            lines.append(f"  = {display(t.assembled, labels)}")
    if _uses_n(terms):
        lines += ["", _N_NOTE]
    return "\n".join(lines)


def _one_link(t: Term, output: sp.Symbol) -> bool:
    """Whether the chain is ∂output/∂param alone, along one path."""
    return t.complete and t.total == 1 and list(t.factors) == [(output, t.param)]


def _worth_assembling(t: Term) -> bool:
    """Whether there is an assembled gradient that says more than the chain's only factor."""
    if not (len(t.factors) > 1 or t.total > 1):
        return False
    assembled = t.assembled
    return assembled is not None and tree_size(assembled) <= MAX_DISPLAY_SIZE


# -- LaTeX -----------------------------------------------------------------------------------

_LATEX_SPECIAL = {
    "\\": r"\backslash{}",
    "{": r"\{",
    "}": r"\}",
    "_": r"\_",
    "^": r"\hat{}",
    "#": r"\#",
    "$": r"\$",
    "%": r"\%",
    "&": r"\&",
    "~": r"\sim{}",
    " ": r"\ ",
}


def latex_name(name: str) -> str:
    r"""A user's name in LaTeX: ``L2`` is ``L_{2}``, ``σ`` ``\sigma``, ``Loss`` ``\mathrm{Loss}``.

    Any other character is escaped, so a name can never unbalance braces or start a command.

    >>> print(latex_name("L2"), latex_name("σ"), latex_name("Loss"), latex_name("w_10"))
    L_{2} \sigma \mathrm{Loss} w_{10}
    >>> print(latex_name("a}{b"))
    \mathrm{a\}\{b}
    """
    base, sups, subs = split_super_sub(name) if name.isidentifier() else (name, [], [])
    text = _latex_base(base)
    if sups:
        text += "^{" + " ".join(latex_name(s) for s in sups) + "}"
    if subs:
        text += "_{" + " ".join(latex_name(s) for s in subs) + "}"
    return text


def _latex_base(base: str) -> str:
    if len(base) == 1 and unicodedata.name(base, "").startswith("GREEK"):
        *kind, word = unicodedata.name(base).split()
        word = word.capitalize() if "CAPITAL" in kind else word.lower()
        if word.lower() in _GREEK:
            return _translate(word)
    if base.lower() in _GREEK:
        return _translate(base)
    if ((len(base) == 1 and base.isalpha()) or base.isdigit()) and base.isascii():
        return base
    if not base:
        return r"\mathrm{}"
    escaped = "".join(_LATEX_SPECIAL.get(c, c) if c.isprintable() else _visible(c) for c in base)
    return r"\mathrm{" + escaped + "}"


def _visible(c: str) -> str:
    return r"\backslash{}" + c.encode("unicode_escape").decode("ascii").lstrip("\\")


_QUAD = "\\quad "  # indents a local factor under its chain


def _latex_frac(top: str, bottom: str) -> str:
    return rf"\frac{{\partial {top}}}{{\partial {bottom}}}"


def _latex_writer(graph: Graph):
    names = {n.symbol: latex_name(n.label) for n in graph}

    def latex(expr: sp.Expr) -> str:
        size = tree_size(expr)
        if size > MAX_DISPLAY_SIZE:
            return rf"\langle\text{{an expression of {size} terms}}\rangle"
        return sp.latex(expr, symbol_names={s: names[s] for s in expr.free_symbols if s in names})

    return names, latex


def _latex_blocks(graph: Graph, terms: list[Term]):
    r"""The equations, then per parameter: its chain, its factors, the assembled gradient.

    Each is a list of ``(lhs, rhs)`` pairs of LaTeX; a factor's ``lhs`` starts with ``\quad``.
    """
    names, latex = _latex_writer(graph)
    out = names[graph.output]
    equations = [
        (names[lhs], rf"\text{{an expression of {size} terms}}" if rhs is None else latex(rhs))
        for lhs, rhs, size in _equations(graph)
    ]
    blocks = []
    for t in terms:
        frac = _latex_frac(out, names[t.param])
        product = _write(
            t.chain, lambda a, b: _latex_frac(names[a], names[b]), r" \cdot ", r"\left(",
            r"\right)",
        )
        if not t.complete:
            product += rf" + \dots\ \text{{({t.total} paths in all)}}"
        if _one_link(t, graph.output):
            blocks.append([(frac, latex(t.assembled))])
            continue
        block = [(frac, product or "0")]
        for (a, b), factor in t.factors.items():
            block.append((_QUAD + _latex_frac(names[a], names[b]), latex(factor)))
        if _worth_assembling(t):
            block.append((frac, latex(t.assembled)))
        blocks.append(block)
    return equations, blocks


def _latex(graph: Graph, terms: list[Term]) -> str:
    equations, blocks = _latex_blocks(graph, terms)
    rows = []
    for group in [equations, *blocks]:
        if rows:
            rows[-1] += r"[1ex]"  # a little air between parameters
        rows += [f"{lhs} &= {rhs} \\\\" for lhs, rhs in group]
    if _uses_n(terms):
        rows.append(r"& \text{" + _N_NOTE.replace("N:", "$N$:", 1) + "}")
    else:
        rows[-1] = rows[-1].removesuffix("[1ex]").removesuffix(r" \\")
    return "\n".join([r"\begin{aligned}", *rows, r"\end{aligned}"])


def _markdown(graph: Graph, terms: list[Term]) -> str:
    equations, blocks = _latex_blocks(graph, terms)
    names, _ = _latex_writer(graph)
    parts = ["**Equations**", _display_math(equations)]
    for t, (chain_row, *rows) in zip(terms, blocks, strict=True):
        assembled = rows.pop() if _worth_assembling(t) else None
        parts += [f"**Gradient with respect to ${names[t.param]}$**", _display_math([chain_row])]
        if rows:
            parts.append("\n".join(f"- ${lhs.removeprefix(_QUAD)} = {rhs}$" for lhs, rhs in rows))
        if assembled:
            parts.append(_display_math([assembled]))
    if _uses_n(terms):
        parts.append(_N_NOTE.replace("N:", "$N$:", 1))
    return "\n\n".join(parts)


def _display_math(rows: list[tuple[str, str]]) -> str:
    if len(rows) == 1:
        return f"$${rows[0][0]} = {rows[0][1]}$$"
    body = " \\\\\n".join(f"{lhs} &= {rhs}" for lhs, rhs in rows)
    return f"$$\\begin{{aligned}}\n{body}\n\\end{{aligned}}$$"
