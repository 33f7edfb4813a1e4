"""The symbolic view of a compiled model: its IR as SymPy, one expression per node.

A node is ``name = expr`` where ``expr`` is one SymPy operation over the symbols of earlier
nodes (or numbers). Inputs have no expression. The chains, explanations and diagrams read this
view (``views.py`` makes it from the IR); the compiler itself never does.

>>> import sympy as sp
>>> x, t = sp.symbols("x t", real=True)
>>> g = Graph((Node(x, None, INPUT, "x"), Node(t, sp.exp(x), NAMED, "t")), output=t, wrt=(x,))
>>> print(g)
x: input
t = exp(x)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property

import sympy as sp

INPUT = "input"  # data the user passes in, not differentiated
PARAMETER = "parameter"  # an input in ``wrt``
NAMED = "named"  # the left-hand side of one of the user's equations
TEMP = "temp"  # an auto-named sub-expression
ADJOINT = "adjoint"  # d(output)/d(node), built by the backward pass

Shape = tuple[int | None, ...]

@dataclass(frozen=True, init=False)
class Node:
    """One vertex: its symbol (named like the code variable), expression, role and label.

    ``label`` is the name a person sees (the user's own, such as ``σ`` or ``a b``); the symbol's
    name is the sanitised identifier used in generated code. ``equation`` is the label of the
    equation the node was built for; ``of`` is, for an adjoint, the node it belongs to.
    """

    symbol: sp.Symbol
    expr: sp.Basic | None
    role: str
    label: str
    equation: str | None = None
    shape: Shape | None = None
    of: sp.Symbol | None = None

    def __init__(
        self,
        symbol: sp.Symbol,
        expr: sp.Basic | None,
        role: str,
        label: str,
        equation: str | None = None,
        shape: Shape | None = None,
        of: sp.Symbol | None = None,
    ) -> None:
        # what the frozen dataclass's __init__ does field by field, at half the cost (a model
        # has thousands of nodes)
        self.__dict__.update(
            symbol=symbol, expr=expr, role=role, label=label, equation=equation, shape=shape,
            of=of,
        )

    @property
    def name(self) -> str:
        """The identifier of this node in generated code."""
        return self.symbol.name

    def with_expr(self, expr: sp.Basic | None, shape: Shape | None) -> Node:
        """This node with another expression and shape (what it reads is kept if its
        expression is).

        >>> x, t = sp.symbols("x t", real=True)
        >>> Node(t, sp.exp(x), NAMED, "t").with_expr(sp.sin(x), (3,))
        Node(symbol=t, expr=sin(x), role='named', label='t', equation=None, shape=(3,), of=None)
        """
        node = object.__new__(Node)  # a copy of the fields (set as the frozen __init__ does)
        fields = node.__dict__
        fields.update(self.__dict__)
        fields["shape"] = shape
        if expr is not self.expr:
            fields["expr"] = expr
            fields.pop("args", None)  # what it reads is worked out again
            fields.pop("occurrences", None)
        return node

    @cached_property
    def args(self) -> tuple[sp.Symbol, ...]:
        """The nodes this one reads, in a deterministic order."""
        found = self.occurrences
        return tuple(sorted(found, key=_name)) if len(found) > 1 else tuple(found)

    @cached_property
    def occurrences(self) -> dict[sp.Symbol, int]:
        """How often each node this one reads occurs in its expression (``t*t``: twice).

        >>> x, t = sp.symbols("x t", real=True)
        >>> Node(t, x*(1 - x), NAMED, "t").occurrences
        {x: 2}
        """
        expr = self.expr
        found: dict[sp.Symbol, int] = {}  # expr.free_symbols, counted, without SymPy's walk
        if expr is None:
            return found
        stack = [expr]
        while stack:
            e = stack.pop()
            cls = type(e)
            if cls is sp.Symbol:
                found[e] = found.get(e, 0) + 1
            elif cls in _OPERATIONS:  # (their arguments as SymPy keeps them: .args is a
                stack.extend(e._args)  # property around _args, a call per sub-expression)
            elif e.is_Number:
                continue
            elif e.args:
                if _PLAIN_FREE_SYMBOLS.get(cls) or _free_symbols_of_args(cls):
                    stack.extend(e.args)
                else:  # binds symbols of its own (a Lambda, ...): let SymPy say which are free
                    for s in e.free_symbols:
                        found[s] = found.get(s, 0) + 2  # (at least once: say more than once)
            elif isinstance(e, sp.Symbol):  # a Dummy, ...
                found[e] = found.get(e, 0) + 1
        return found


def _free_symbols_of_args(cls: type) -> bool:
    """Whether ``cls``'s free symbols are those of its arguments (Basic's own rule)."""
    plain = _PLAIN_FREE_SYMBOLS.get(cls)
    if plain is None:
        owner = next(k for k in cls.__mro__ if "free_symbols" in k.__dict__)
        plain = _PLAIN_FREE_SYMBOLS[cls] = owner is sp.Basic
    return plain


_PLAIN_FREE_SYMBOLS: dict[type, bool] = {}
_OPERATIONS = frozenset({sp.Add, sp.Mul, sp.Pow})


def _index(nodes: tuple[Node, ...], before: tuple[Node, ...] = (), index: dict | None = None):
    """Node symbol -> position; ``index`` is that of the nodes ``before``, whose order the new
    nodes keep as far as they go (a pass copies nodes, the backward pass appends to them)."""
    kept = 0
    if index is not None:
        for a, b in zip(nodes, before, strict=False):  # (the new nodes may be fewer, or more)
            if a.symbol is not b.symbol:
                break
            kept += 1
    if kept == len(before) and kept:
        result = index.copy()
    else:
        kept = 0
        result = {}
    for i in range(kept, len(nodes)):
        result[nodes[i].symbol] = i
    assert len(result) == len(nodes), "a node is defined twice"
    return result


def _name(symbol: sp.Symbol) -> str:
    return symbol.name


@dataclass(frozen=True)
class Graph:
    """Nodes in topological order, with the output and the inputs to differentiate."""

    nodes: tuple[Node, ...]
    output: sp.Symbol
    wrt: tuple[sp.Symbol, ...]
    grads: tuple[tuple[sp.Symbol, sp.Symbol], ...] = ()  # (parameter, its adjoint node)
    equations: tuple[tuple[sp.Symbol, sp.Basic], ...] = ()  # the user's, over node symbols
    _index: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._index.update(_index(self.nodes))

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._index

    def __getitem__(self, symbol: sp.Symbol) -> Node:
        return self.nodes[self._index[symbol]]

    def position(self, symbol: sp.Symbol) -> int:
        """Where the node of ``symbol`` stands in the topological order."""
        return self._index[symbol]

    @cached_property
    def inputs(self) -> tuple[Node, ...]:
        """The input nodes (data and parameters), in the order of the generated signature."""
        return tuple(n for n in self.nodes if n.role in (INPUT, PARAMETER))

    def with_nodes(self, nodes: tuple[Node, ...], **changes) -> Graph:
        """A copy of this graph with other nodes (and any other field changed)."""
        settable = self.__dataclass_fields__.keys() - {"nodes", "_index"}
        unknown = changes.keys() - settable
        if unknown:
            raise TypeError(f"Graph has no field {', '.join(sorted(unknown))} to change")
        graph = object.__new__(Graph)  # as replace() would make it, with the index at hand
        fields = graph.__dict__
        fields.update(self.__dict__)
        fields.pop("inputs", None)  # (cached: worked out again)
        fields.update(nodes=nodes, **changes)
        fields["_index"] = _index(nodes, self.nodes, self._index)
        return graph

    def users(self) -> dict[sp.Symbol, list[sp.Symbol]]:
        """For every node, the nodes that read it, in topological order."""
        users: dict[sp.Symbol, list[sp.Symbol]] = {n.symbol: [] for n in self.nodes}
        for node in self.nodes:
            for arg in node.args:
                users[arg].append(node.symbol)
        return users

    def __str__(self) -> str:
        lines = []
        for node in self.nodes:
            if node.expr is None:
                lines.append(f"{node.name}: {node.role}")
            else:
                lines.append(f"{node.name} = {sp.sstr(node.expr)}")
        return "\n".join(lines)
