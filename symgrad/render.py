"""Diagrams of a compiled model: its ``Graph`` as a ``graphviz.Digraph``, forward or backward.

The forward diagram draws inputs, parameters, the user's named nodes, temporaries and the
output in distinct styles, each node labelled ``{ name | operation }`` (micrograd's record
style) and edges running from operands to their users. The backward diagram draws one adjoint
node ``∂Loss/∂v`` per node on a path from the output down to a parameter, each edge labelled
with its local factor ``∂σ/∂L1 = σ·(1 − σ)``; it is the forward picture with its arrows turned
round (backward edges are written operand-first with ``dir=back``, so both pictures have the
same ranks). ``highlight`` marks the chain(s) of one parameter in either kind.

``group`` sets the level of detail: ``"collapse"`` draws one node per equation (the
tutorial's picture; an equation the explanation cuts into parts, see ``chains.stops``, one per
part), ``"cluster"`` every node with the temporaries of each equation boxed
together, ``"none"`` every node; ``"auto"`` (the default) collapses a model of several
equations and shows a single expression in full.

Every piece of user text reaches the DOT source only inside an HTML-like label, escaped, so no
name can break the DOT or add attributes; node identifiers are symgrad's own (``n7``, ``d7``).

>>> import sympy as sp
>>> from symgrad.backward import differentiate
>>> from symgrad.frontend import build
>>> from symgrad.functions import sigmoid
>>> from symgrad.views import view
>>> x, k, h = sp.symbols("x k h")
>>> g = view(differentiate(build([(h, sigmoid(k*x))], wrt=[k])))
>>> dot = digraph(g)  # k, x -> t1 = k·x -> h = sigmoid(t1)
>>> [line.split(" [")[0].strip() for line in dot.source.splitlines() if "->" in line]
['n0 -> n2', 'n1 -> n2', 'n2 -> n3']
"""

from __future__ import annotations

import html
import os
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import graphviz
import sympy as sp

from . import chains
from .errors import SymgradError
from .expressions import tree_size
from .graph import ADJOINT, INPUT, NAMED, PARAMETER, TEMP, Graph
from .views import local_partials

if TYPE_CHECKING:
    from .model import CompiledModel

KINDS = ("forward", "backward", "both")
GROUPS = ("auto", "collapse", "cluster", "none")
FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf"}  # by file suffix; .dot/.gv: DOT text

OUTPUT = "output"  # roles of the diagram, beyond the graph's own
SEED = "seed"  # ∂out/∂out = 1, where the backward pass starts

#: Role -> (fill, border). Inputs grey, parameters blue, named nodes yellow, temporaries white,
#: the output green, adjoints red: the same in every kind.
COLORS = {
    INPUT: ("#eeeeee", "#757575"),
    PARAMETER: ("#d6e6f7", "#2f6eaa"),
    NAMED: ("#fff3c4", "#a68a00"),
    TEMP: ("#ffffff", "#9e9e9e"),
    OUTPUT: ("#d5ecd0", "#2e7d32"),
    ADJOINT: ("#fbe0dc", "#b03a2e"),
    SEED: ("#d5ecd0", "#b03a2e"),
}
FORWARD_EDGE = "#424242"
BACKWARD_EDGE = "#b03a2e"
HIGHLIGHT = "#e67e00"  # the chain(s) of the highlighted parameter
DIMMED = "#bdbdbd"  # every other edge, when something is highlighted
FONT = "Helvetica,Arial,DejaVu Sans,sans-serif"
DEEP = 12  # a longer chain of nodes is drawn top down (rankdir="auto")
MAX_LABEL = 48  # characters of an operation or factor shown before "…"

INSTALL_HINT = (
    "Graphviz's dot program is not installed (or not on the PATH); install it with "
    "'apt-get install graphviz' (Debian/Ubuntu), 'brew install graphviz' (macOS) or "
    "'conda install -c conda-forge graphviz', or see https://graphviz.org/download/; "
    "model.to_dot() works without it"
)


class GraphvizNotFound(SymgradError):
    """Graphviz's ``dot`` program is needed (to render a picture) and is not installed."""


# -- the picture, before it is DOT ---------------------------------------------------------------


@dataclass
class _Vertex:
    key: Hashable  # ("f", symbol) forward, ("b", symbol) backward
    ident: str  # the DOT identifier: n<position> or d<position>
    role: str
    title: str
    detail: str
    cluster: str | None = None  # the equation whose box it goes in
    on_chain: bool = False


@dataclass
class _Edge:
    tail: Hashable  # the operand side, in both kinds
    head: Hashable
    label: str = ""
    backward: bool = False
    on_chain: bool = False
    spine: bool = False  # between two computed nodes (not from an input)


@dataclass
class _Level:
    """The graph at one level of detail: vertices (forward, topological) and operand edges."""

    symbols: list[sp.Symbol]
    edges: list[tuple[sp.Symbol, sp.Symbol]]  # (operand, user)
    collapsed: bool
    stops: frozenset | None = None  # where a collapsed node's part of the graph ends
    users: dict[sp.Symbol, list[sp.Symbol]] = field(default_factory=dict)
    operands: dict[sp.Symbol, list[sp.Symbol]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for s in self.symbols:
            self.users.setdefault(s, [])
            self.operands.setdefault(s, [])
        for a, b in self.edges:
            self.users[a].append(b)
            self.operands[b].append(a)

    def depth(self) -> int:
        """How many nodes the longest chain has."""
        longest: dict[sp.Symbol, int] = {}
        for s in self.symbols:  # topological order
            longest[s] = 1 + max((longest[a] for a in self.operands[s]), default=0)
        return max(longest.values(), default=0)

    def below(self, starts: Iterable[sp.Symbol]) -> set[sp.Symbol]:
        """The symbols that depend on any of ``starts`` (the starts included)."""
        return _closure(starts, self.users)

    def above(self, output: sp.Symbol) -> set[sp.Symbol]:
        """The symbols ``output`` depends on (itself included)."""
        return _closure([output], self.operands)


def _closure(starts: Iterable[sp.Symbol], step: dict) -> set[sp.Symbol]:
    seen = {s for s in starts if s in step}
    todo = list(seen)
    while todo:
        for t in step[todo.pop()]:
            if t not in seen:
                seen.add(t)
                todo.append(t)
    return seen


def _level(graph: Graph, group: str) -> _Level:
    if group == "collapse":  # the nodes the explanation's chains go through (chains.stops)
        stops = chains.stops(graph)
        computed = [s for s, _ in chains.definitions(graph)]
        deps = chains.dependencies(graph, stops)
        edges = [(d, s) for s in computed for d in sorted(deps[s], key=graph.position)]
        symbols = [n.symbol for n in graph.inputs] + computed
        return _Level(symbols, edges, collapsed=True, stops=stops)
    symbols = [n.symbol for n in graph if n.role != ADJOINT]
    edges = [(a, n.symbol) for n in graph if n.role != ADJOINT for a in n.args]
    return _Level(symbols, edges, collapsed=False)


# -- the public functions --------------------------------------------------------------------


def digraph(
    graph: Graph,
    kind: str = "forward",
    highlight: sp.Symbol | None = None,
    *,
    group: str = "auto",
    rankdir: str = "auto",
    max_label: int = MAX_LABEL,
) -> graphviz.Digraph:
    """``graph`` as a ``graphviz.Digraph``: ``kind`` is ``forward``, ``backward`` or ``both``.

    ``highlight`` (a node symbol, usually a parameter) marks the edges and nodes of its
    chain(s) and dims the rest; ``group`` is ``auto``, ``collapse``, ``cluster`` or ``none``
    (see the module docstring); ``rankdir`` is Graphviz's (``LR`` left to right, ``TB`` top
    down) or ``auto``: left to right unless the longest chain of nodes is longer than
    ``DEEP``, then top down, which reads better for deep models; ``max_label`` shortens longer
    operations and factors with "…". Needs no Graphviz program: call ``.source`` for the DOT
    text, or :func:`render` to draw it.

    >>> import sympy as sp
    >>> from symgrad.backward import differentiate
    >>> from symgrad.frontend import build
    >>> from symgrad.views import view
    >>> x, k, f = sp.symbols("x k f")
    >>> g = view(differentiate(build([(f, k*x)], wrt=[k])))
    >>> dot = digraph(g, "backward", highlight=g.wrt[0])
    >>> print(*(line.strip() for line in dot.source.splitlines() if "->" in line))
    d0 -> d2 [label=<∂f/∂k = x> class=chain color="#e67e00" dir=back fontcolor="#e67e00"
              penwidth=2.5]
    """
    if kind not in KINDS:
        raise SymgradError(f"unknown diagram kind {kind!r}; choose one of {', '.join(KINDS)}")
    if group not in GROUPS:
        raise SymgradError(f"unknown group {group!r}; choose one of {', '.join(GROUPS)}")
    if highlight is not None and highlight not in graph:
        raise SymgradError(f"cannot highlight {highlight}: it is not a node of this model")
    if group == "auto":
        group = "collapse" if len(graph.equations) > 1 else "none"
    level = _level(graph, group)
    chain = set()
    if highlight is not None:
        chain = level.below([highlight]) & level.above(graph.output)
    labels = {n.symbol: n.label for n in graph}
    vertices: list[_Vertex] = []
    edges: list[_Edge] = []
    if kind in ("forward", "both"):
        _forward(graph, level, labels, max_label, vertices, edges)
    if kind in ("backward", "both"):
        _backward(graph, level, labels, max_label, vertices, edges)
    for v in vertices:
        v.on_chain = v.key[1] in chain
        if group != "cluster" or v.role not in (TEMP, NAMED, OUTPUT, ADJOINT):
            v.cluster = None
    for e in edges:
        e.on_chain = e.tail[1] in chain and e.head[1] in chain
    if rankdir == "auto":
        rankdir = "TB" if level.depth() > DEEP else "LR"
    return _dot(kind, vertices, edges, rankdir, highlight is not None)


def render(dot: graphviz.Digraph, path: str | os.PathLike) -> Path:
    """Draw ``dot`` to ``path``: SVG, PNG or PDF by its suffix (``.dot``/``.gv``: the DOT text).

    Raises ``GraphvizNotFound`` (a ``SymgradError``) saying how to install Graphviz when its
    ``dot`` program is missing.

    >>> import tempfile, graphviz
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     render(graphviz.Digraph(), Path(tmp, "empty.dot")).read_text()
    'digraph {\\n}\\n'
    """
    if not isinstance(path, str | os.PathLike):
        raise SymgradError(f"{path!r} is not a path; pass a file name such as 'model.svg'")
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".dot", ".gv"):
        _write(path, dot.source.encode("utf-8"))
        return path
    if suffix not in FORMATS:
        raise SymgradError(
            f"cannot tell the picture format of {str(path)!r} from its suffix; use one of "
            f"{', '.join([*FORMATS, '.dot', '.gv'])}"
        )
    data = pipe(dot, FORMATS[suffix])
    _write(path, data)
    return path


def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as e:
        raise SymgradError(f"cannot write {str(path)!r}: {e.strerror}") from None


def pipe(dot: graphviz.Digraph, format: str) -> bytes:
    """``dot`` laid out and drawn by Graphviz's ``dot`` program, in ``format`` (svg, png, pdf).

    >>> import shutil, graphviz
    >>> shutil.which("dot") is None or pipe(graphviz.Digraph(), "svg").startswith(b"<?xml")
    True
    """
    if format == "png" and "dpi" not in dot.graph_attr:
        dot = dot.copy()
        dot.graph_attr["dpi"] = "144"  # crisp on today's screens; SVG and PDF need no dpi
    try:
        return dot.pipe(format=format)
    except graphviz.ExecutableNotFound:
        raise GraphvizNotFound(INSTALL_HINT) from None
    except graphviz.CalledProcessError as e:
        stderr = (e.stderr or b"").decode("utf-8", "replace").strip().splitlines()
        raise SymgradError(
            f"Graphviz's dot failed: {stderr[0] if stderr else e}"
        ) from e


def mimebundle(model: CompiledModel) -> dict[str, Any]:
    """What a notebook shows for a compiled model: its forward diagram and its chains.

    ``text/html`` holds both (the SVG inline, when Graphviz's ``dot`` is installed),
    ``image/svg+xml`` the diagram alone, ``text/markdown`` the full explanation with LaTeX
    and ``text/plain`` the repr; a notebook shows the richest it can.

    >>> import sympy as sp, symgrad
    >>> k, x = sp.symbols("k x")
    >>> bundle = mimebundle(symgrad.compile(symgrad.sum((k*x)**2), wrt=[k]))
    >>> bundle["text/plain"]
    '<CompiledModel f(k, x), gradient with respect to k>'
    """
    chain_lines = [f"∂{model.output}/∂{name} = {model.chain(name)}" for name in model.wrt]
    bundle: dict[str, Any] = {
        "text/plain": repr(model),
        "text/markdown": model.explain("markdown"),
    }
    parts = []
    try:
        svg = pipe(model.graph("forward"), "svg").decode("utf-8")
    except SymgradError as e:
        parts.append(f"<p><i>{html.escape(str(e))}</i></p>")
    else:
        bundle["image/svg+xml"] = svg
        parts.append(f"<div>{svg[svg.index('<svg'):]}</div>")
    parts.append(
        "<pre>" + "\n".join(html.escape(line) for line in chain_lines) + "</pre>"
    )
    bundle["text/html"] = "\n".join(parts)
    return bundle


def escape(text: str) -> str:
    """``text`` for an HTML-like Graphviz label: markup escaped, control characters visible.

    >>> escape('a<b> & "c"\\n{|}')
    'a&lt;b&gt; &amp; &quot;c&quot;\\\\n{|}'
    """
    visible = "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text
    )
    return html.escape(visible, quote=True)


# -- building the views ----------------------------------------------------------------------


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 1)] + "…"


def _show(expr: sp.Basic, labels: dict, limit: int) -> str:
    size = tree_size(expr)
    if size > chains.MAX_DISPLAY_SIZE:
        return f"({size} terms)"
    return _short(chains.display(expr, labels), limit)


def _forward(graph, level: _Level, labels, limit, vertices, edges) -> None:
    rhs = dict(chains.definitions(graph)) if level.collapsed else {}
    for s in level.symbols:
        node = graph[s]
        if node.expr is None:
            role, detail = node.role, node.role
        else:
            role = OUTPUT if s == graph.output else node.role
            detail = _show(rhs[s] if level.collapsed else node.expr, labels, limit)
        if node.shape:  # known (declared, or from the last call): shown as (506, 64)
            detail += "  " + str(tuple("?" if n is None else n for n in node.shape)).replace(
                "'", "")
        vertices.append(
            _Vertex(("f", s), f"n{graph.position(s)}", role, node.label, detail, node.equation)
        )
    for a, b in level.edges:
        edges.append(_Edge(("f", a), ("f", b), spine=graph[a].expr is not None))


def _backward(graph, level: _Level, labels, limit, vertices, edges) -> None:
    out = labels[graph.output]
    params = set(graph.wrt)
    on_paths = level.below(params) & level.above(graph.output)
    code = {n.of: n for n in graph if n.role == ADJOINT}
    for s in level.symbols:
        if s not in on_paths and not (s in params or s == graph.output):
            continue
        node = graph[s]
        if s == graph.output:
            role, detail = SEED, "1"
        else:
            role = PARAMETER if s in params else ADJOINT
            adjoint = code.get(s)
            detail = "" if adjoint is None else adjoint.name
            if s not in on_paths:
                detail = "0"  # the output does not depend on this parameter
        vertices.append(
            _Vertex(("b", s), f"d{graph.position(s)}", role, f"∂{out}/∂{node.label}", detail,
                    node.equation)
        )
    for a, b in level.edges:
        if a in on_paths and b in on_paths:
            factor = _factor(graph, level, b, a, labels, limit)
            label = f"∂{labels[b]}/∂{labels[a]}" + (f" = {factor}" if factor else "")
            spine = graph[a].expr is not None
            edges.append(_Edge(("b", a), ("b", b), label, backward=True, spine=spine))


def _factor(graph: Graph, level: _Level, user, operand, labels, limit) -> str:
    """The local factor ∂user/∂operand as text, or "" if it cannot be written out."""
    try:
        if level.collapsed:
            factor = chains.local_factor(graph, user, operand, level.stops)
        else:
            node = graph[user]
            factor = local_partials(node.expr, out=node.symbol)[operand]
    except Exception:  # a label is no place to fail: an operation without a rule, a new op
        return ""
    return _show(factor, labels, limit)


# -- DOT -------------------------------------------------------------------------------------


def _dot(kind: str, vertices, edges, rankdir: str, highlighting: bool) -> graphviz.Digraph:
    dot = graphviz.Digraph(
        kind,
        graph_attr={
            "rankdir": rankdir,
            "bgcolor": "white",
            "fontname": FONT,
            "nodesep": "0.25",
            "ranksep": "0.45",
            "newrank": "true",
        },
        node_attr={"fontname": FONT, "fontsize": "12", "shape": "plain"},
        edge_attr={"fontname": FONT, "fontsize": "10", "arrowsize": "0.7"},
    )
    ident = {v.key: v.ident for v in vertices}
    if kind == "both":
        for side, title in (("b", "backward"), ("f", "forward")):  # this order draws forward on top
            with dot.subgraph(name=f"cluster_{title}") as box:
                box.attr(label=f"<<b>{title}</b>>", style="rounded", color="#dddddd",
                         fontname=FONT, fontsize="12", labeljust="l")
                _vertices(box, [v for v in vertices if v.key[0] == side], side)
    else:
        _vertices(dot, vertices, "")
    for e in edges:
        attrs = {}
        color = BACKWARD_EDGE if e.backward else FORWARD_EDGE
        if highlighting:
            color = HIGHLIGHT if e.on_chain else DIMMED
        attrs["color"] = color
        if e.spine:
            attrs["weight"] = "8"  # keep the chain of computed nodes straight
        if e.label:
            attrs["label"] = f"<{escape(e.label)}>"
            attrs["fontcolor"] = color if color != DIMMED else "#757575"
        if e.on_chain:
            attrs["penwidth"] = "2.5"
            attrs["class"] = "chain"
        if e.backward:
            attrs["dir"] = "back"
        dot.edge(ident[e.tail], ident[e.head], **attrs)
    return dot


def _vertices(dot: graphviz.Digraph, vertices: list[_Vertex], prefix: str) -> None:
    boxes: dict[str, list[_Vertex]] = {}
    for v in vertices:
        if v.cluster is None:
            dot.node(v.ident, **_node_attrs(v))
        else:
            boxes.setdefault(v.cluster, []).append(v)
    for i, (equation, members) in enumerate(boxes.items()):
        with dot.subgraph(name=f"cluster_{prefix}{i}") as box:
            box.attr(label=f"<{escape(equation)}>", style="rounded,dashed", color="#9e9e9e",
                     fontcolor="#616161", fontname=FONT, fontsize="10")
            for v in members:
                box.node(v.ident, **_node_attrs(v))


def _node_attrs(v: _Vertex) -> dict[str, str]:
    fill, border = COLORS[v.role]
    width = "3" if v.on_chain else "2" if v.role in (OUTPUT, SEED, PARAMETER) else "1"
    if v.on_chain:
        border = HIGHLIGHT
    title = f"<b>{escape(v.title)}</b>"
    attrs = {"fillcolor": fill, "color": border, "penwidth": width}
    if v.role in (INPUT, PARAMETER) and v.key[0] == "f":
        detail = f'<font point-size="9" color="#555555">{escape(v.detail)}</font>'
        return {
            "label": f"<{title}<br/>{detail}>",
            "shape": "ellipse",
            "style": "filled",
            "margin": "0.05,0.02",
            **attrs,
        }
    rows = f"<tr><td>{title}</td></tr>"
    if v.detail:  # micrograd's record, { name | operation }, as an HTML-like table
        rows += f'<hr/><tr><td><font point-size="10">{escape(v.detail)}</font></td></tr>'
    table = f'<table border="0" cellborder="0" cellspacing="0" cellpadding="3">{rows}</table>'
    style = "rounded,filled,dashed" if v.role == TEMP else "rounded,filled"
    return {"label": f"<{table}>", "shape": "box", "style": style, "margin": "0.04,0.02", **attrs}
