"""The chain rule as a teacher writes it: paths through the named equations, local factors.

A chain is a product of local partial derivatives along one path from the output down to a
parameter, through the user's named nodes (the temporaries inside an equation are that
equation's business): ``∂Loss/∂L2·∂L2/∂σ·∂σ/∂L1·∂L1/∂k1``. Several paths are joined by
`` + ``.

>>> import sympy as sp
>>> from symgrad.frontend import build
>>> from symgrad.functions import sigmoid
>>> x, k, h, f = sp.symbols("x k h f")
>>> g = build([(h, sigmoid(k*x)), (f, h**2 + h)])
>>> chain(g, g.wrt[0])
'∂f/∂h·∂h/∂k'
>>> print(display(local_factor(g, g.output, g.equations[0][0])))
1 + 2·h
>>> print(display(local_factor(g, g.equations[0][0], g.wrt[0])))
h·x·(1 − h)
"""

from __future__ import annotations

import itertools
import re

import sympy as sp

from .frontend import free_symbols, tree_size
from .functions import mean, sum
from .graph import TEMP, Graph
from .rules import local_partials

MAX_PATHS = 64  # a chain string lists at most this many paths
MAX_DISPLAY_SIZE = 300  # larger equations (as trees) are not spelled out

#: The symbol that stands for "the number of elements" in a factor of ``mean``.
N = sp.Symbol("N", positive=True, integer=True)


def dependencies(graph: Graph) -> dict[sp.Symbol, list[sp.Symbol]]:
    """For each named node, the named nodes and inputs its equation reads, latest first."""
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


def paths(graph: Graph, param: sp.Symbol, limit: int = MAX_PATHS) -> tuple[list[list], int]:
    """Up to ``limit`` paths from the output down to ``param``, and how many there are."""
    deps = dependencies(graph)
    count: dict[sp.Symbol, int] = {param: 1}
    for lhs, _ in graph.equations:  # topological order: count paths bottom-up
        count[lhs] = _count(deps[lhs], count)
    found: list[list] = []

    def walk(node, path):
        if len(found) >= limit:
            return
        if node == param:
            found.append(path)
            return
        for d in deps.get(node, ()):
            if count.get(d, 0):
                walk(d, [*path, d])

    if count.get(graph.output, 0):
        walk(graph.output, [graph.output])
    return found, count.get(graph.output, 0)


def _count(deps, count) -> int:
    total = 0
    for d in deps:
        total += count.get(d, 0)
    return total


def chain(graph: Graph, param: sp.Symbol) -> str:
    """The chain-rule products for ``param``, one per path, joined by `` + ``; "0" if none."""
    found, total = paths(graph, param)
    if not found:
        return "0"
    texts = [
        "·".join(f"∂{graph[a].label}/∂{graph[b].label}" for a, b in itertools.pairwise(p))
        for p in found
    ]
    if total > len(found):
        texts.append(f"… ({total} paths in all)")
    return " + ".join(texts)


def local_factor(graph: Graph, node: sp.Symbol, of: sp.Symbol) -> sp.Expr:
    """∂node/∂of, the derivative of ``node``'s equation by one of its operands.

    Computed over the equation's own operations, so each rule can use its node's value
    (∂σ/∂L1 = σ·(1 − σ)); the result is then written back in the equation's terms. It is the
    factor per element: ``N`` stands for the number of elements a ``mean`` averages over.
    """
    region = _equation_nodes(graph, node)
    d: dict[sp.Symbol, sp.Expr] = {of: sp.S.One}
    for n in region:
        if isinstance(n.expr, (mean, sum)):
            (arg,) = n.expr.args
            d[n.symbol] = d.get(arg, sp.S.Zero) * (1 / N if isinstance(n.expr, mean) else 1)
            continue
        partials = local_partials(n.expr, out=n.symbol)
        d[n.symbol] = sp.Add(*(p * d[a] for a, p in partials.items() if a in d))
    expressions = {n.symbol: n.expr for n in region if n.symbol != node}
    return _inline(d[node], expressions)


def _equation_nodes(graph: Graph, node: sp.Symbol) -> list:
    """The node and the temporaries below it, up to named nodes and inputs; in order."""
    keep, todo = {node}, [node]
    while todo:
        for a in graph[todo.pop()].args:
            if a not in keep and graph[a].role == TEMP:
                keep.add(a)
                todo.append(a)
    return [n for n in graph.nodes if n.symbol in keep]


def _inline(expr: sp.Expr, expressions: dict[sp.Symbol, sp.Expr]) -> sp.Expr:
    """Replace temporaries by what they stand for, without SymPy re-arranging anything."""
    with sp.evaluate(False):
        while expressions.keys() & expr.free_symbols:
            expr = expr.xreplace(expressions)
    return expr


def display(expr: sp.Expr, labels: dict[sp.Symbol, str] | None = None) -> str:
    """An expression as a teacher writes it: ``σ·(1 − σ)``, ``2·(L2 − y)/N``, ``x²``.

    >>> x, s = sp.symbols("x s")
    >>> display(s*(1 - s)*x**2, {s: "σ"})
    'σ·x²·(1 − σ)'
    """
    labels = labels or {}
    symbols = sorted(expr.free_symbols, key=sp.default_sort_key)
    marks = {s: sp.Symbol(f"⟨{i}⟩") for i, s in enumerate(symbols)}
    text = sp.sstr(expr.xreplace(marks), order="none")
    text = re.sub(r"\*\*(\d+)", lambda m: m.group(1).translate(_SUPERSCRIPTS), text)
    text = text.replace("**", "^").replace("*", "·").replace(" - ", " − ")
    text = re.sub(r"(^|[(\s])-", r"\1−", text)
    for s, mark in marks.items():
        text = text.replace(mark.name, labels.get(s, s.name))
    return text


_SUPERSCRIPTS = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


def explain(graph: Graph, format: str = "text") -> str:
    """Every parameter's chain, then each local factor on it written out."""
    labels = {n.symbol: n.label for n in graph}
    out = graph[graph.output].label
    lines = []
    sizes: dict = {}
    for lhs, rhs in graph.equations:
        big = tree_size(rhs, sizes) > MAX_DISPLAY_SIZE
        text = f"<an expression of {tree_size(rhs, sizes)} terms>" if big else display(rhs, labels)
        lines.append(f"{labels[lhs]} = {text}")
    uses_n = False
    for p in graph.wrt:
        lines.append("")
        lines.append(f"∂{out}/∂{labels[p]} = {chain(graph, p)}")
        found, _ = paths(graph, p)
        seen = set()
        for path in found:
            for a, b in itertools.pairwise(path):
                if (a, b) in seen:
                    continue
                seen.add((a, b))
                factor = local_factor(graph, a, b)
                uses_n |= N in factor.free_symbols
                lines.append(f"    ∂{labels[a]}/∂{labels[b]} = {display(factor, labels)}")
    if uses_n:
        lines += ["", "N: the number of elements a mean averages over"]
    return "\n".join(lines)
