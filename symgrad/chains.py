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
import unicodedata
from dataclasses import dataclass

import sympy as sp
from sympy.printing.conventions import split_super_sub
from sympy.printing.latex import greek_letters_set as _GREEK
from sympy.printing.latex import translate as _translate

from .errors import SymgradError
from .frontend import free_symbols, substitute_unevaluated, tree_size
from .functions import mean, sum
from .graph import TEMP, Graph
from .ops import broadcast_like, expand_dims, sum_to
from .ops import size as size_of
from .rules import is_elementwise, local_partials, vjp

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
    todo = [[graph.output]] if count.get(graph.output, 0) else []
    while todo and len(found) < limit:  # depth first, without recursion: chains can be long
        path = todo.pop()
        if path[-1] == param:
            found.append(path)
            continue
        nexts = [d for d in deps.get(path[-1], ()) if count.get(d, 0)]
        todo.extend([*path, d] for d in reversed(nexts))
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


class _AdjointSymbol(sp.Symbol):
    """Ḡ in text, \\bar{G} in LaTeX."""

    def _latex(self, printer):
        return r"\bar{G}"


#: Stands for the adjoint arriving at a node, in factors that are not elementwise.
G_BAR = _AdjointSymbol("Ḡ")


def local_factor(graph: Graph, node: sp.Symbol, of: sp.Symbol) -> sp.Expr:
    """∂node/∂of, the derivative of ``node``'s equation by one of its operands.

    Computed over the equation's own operations, so each rule can use its node's value
    (∂σ/∂L1 = σ·(1 − σ)); the result is then written back in the equation's terms. It is the
    factor per element: ``N`` stands for the number of elements a ``mean`` averages over.
    Where the equation is not elementwise (a matmul, a reduction over an axis, a softmax) the
    factor is the product as it really is, applied to the adjoint ``Ḡ`` that arrives at the
    node: ∂L1/∂W1 = Xᵀ @ Ḡ.
    """
    region = _equation_nodes(graph, node)
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
    return _inline(d[node], expressions)


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
    return expr.replace(lambda e: isinstance(e, size_of), lambda e: N)


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
    text = sp.sstr(expr.xreplace(marks), order="none")
    text = re.sub(r"\*\*(\d+)", lambda m: m.group(1).translate(_SUPERSCRIPTS), text)
    text = text.replace("**", "^").replace("*", "·").replace(" - ", " − ")
    text = re.sub(r"(^|[(\s])-", r"\1−", text)
    for s, mark in marks.items():
        text = text.replace(mark.name, labels.get(s, s.name))
    return text


_SUPERSCRIPTS = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


FORMATS = ("text", "latex", "markdown")


@dataclass
class _Term:
    """One parameter's part of an explanation."""

    param: sp.Symbol
    paths: list[list[sp.Symbol]]
    total: int  # paths in all (``paths`` holds at most MAX_PATHS of them)
    factors: dict[tuple[sp.Symbol, sp.Symbol], sp.Expr]  # (a, b) -> ∂a/∂b, first seen first

    @property
    def assembled(self) -> sp.Expr | None:
        """The gradient the factors assemble into, summed over paths; None if not all listed.

        Along a path from the output, a factor that is a number per element multiplies; a
        factor written with Ḡ (a matmul, softmax or a reduction along an axis) is applied to
        what has been assembled so far: ∂Loss/∂W1 = Xᵀ @ ((2·(L2 − y)/N @ W2ᵀ)·H·(1 − H)).
        """
        if self.total > len(self.paths):
            return None
        total = sp.S.Zero
        for path in self.paths:
            so_far = sp.S.One
            for edge in itertools.pairwise(path):
                factor = self.factors[edge]
                if G_BAR in factor.free_symbols:
                    so_far = factor.xreplace({G_BAR: so_far})
                else:
                    so_far = so_far * factor
            total += so_far
        return total


def _terms(graph: Graph) -> list[_Term]:
    terms = []
    for p in graph.wrt:
        found, total = paths(graph, p)
        factors: dict = {}
        for path in found:
            for edge in itertools.pairwise(path):
                if edge not in factors:
                    factors[edge] = local_factor(graph, *edge)
        terms.append(_Term(p, found, total, factors))
    return terms


def explain(graph: Graph, format: str = "text") -> str:
    r"""Every parameter's chain, each local factor on it, then the gradient they assemble into.

    ``format`` is ``"text"`` (Unicode, for a terminal), ``"latex"`` (one ``aligned``
    environment, for ``IPython.display.Math`` or a paper) or ``"markdown"`` (headings and
    ``$$…$$`` blocks, for a notebook cell or a README).

    >>> from symgrad.frontend import build
    >>> from symgrad.functions import sigmoid
    >>> x, k, h, f = sp.symbols("x k h f")
    >>> g = build([(h, sigmoid(k*x)), (f, 3*h)], wrt=[k])
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
    return writers[format](graph, _terms(graph))


def _equations(graph: Graph):
    """(lhs, rhs or None when it is too large to spell out, its size as a tree)."""
    sizes: dict = {}
    for lhs, rhs in graph.equations:
        size = tree_size(rhs, sizes)
        yield lhs, (None if size > MAX_DISPLAY_SIZE else rhs), size


def _uses_n(terms: list[_Term]) -> bool:
    return any(N in f.free_symbols for t in terms for f in t.factors.values())


_N_NOTE = (
    "N: the number of elements a mean averages over. Factors are per element; a parameter "
    "broadcast over the data gets the sum of its product over the elements."
)


def _text(graph: Graph, terms: list[_Term]) -> str:
    labels = {n.symbol: n.label for n in graph}
    out = labels[graph.output]
    lines = []
    for lhs, rhs, size in _equations(graph):
        text = f"<an expression of {size} terms>" if rhs is None else display(rhs, labels)
        lines.append(f"{labels[lhs]} = {text}")
    for t in terms:
        lines += ["", f"∂{out}/∂{labels[t.param]} = {chain(graph, t.param)}"]
        for (a, b), factor in t.factors.items():
            lines.append(f"    ∂{labels[a]}/∂{labels[b]} = {display(factor, labels)}")
        if _worth_assembling(t):
            lines.append(f"  = {display(t.assembled, labels)}")
    if _uses_n(terms):
        lines += ["", _N_NOTE]
    return "\n".join(lines)


def _worth_assembling(t: _Term) -> bool:
    """Whether there is an assembled gradient that says more than the chain's only factor."""
    return (len(t.factors) > 1 or t.total > 1) and t.assembled is not None


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


def _latex_blocks(graph: Graph, terms: list[_Term]):
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
        products = [
            r" \cdot ".join(_latex_frac(names[a], names[b]) for a, b in itertools.pairwise(p))
            for p in t.paths
        ]
        if t.total > len(t.paths):
            products.append(rf"\dots\ \text{{({t.total} paths in all)}}")
        block = [(frac, " + ".join(products) or "0")]
        for (a, b), factor in t.factors.items():
            block.append((_QUAD + _latex_frac(names[a], names[b]), latex(factor)))
        if _worth_assembling(t):
            block.append((frac, latex(t.assembled)))
        blocks.append(block)
    return equations, blocks


def _latex(graph: Graph, terms: list[_Term]) -> str:
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


def _markdown(graph: Graph, terms: list[_Term]) -> str:
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
