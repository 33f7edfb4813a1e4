"""The IR: a flat, append-only graph in which every node is one line of the program.

A node is ``op(args; attrs)``: ``op`` names a record of ``symgrad.ops``, ``args`` are the ids
of earlier nodes (so the node list is in topological order by construction), ``attrs`` are
hashable parameters (an axis, keepdims, a number). Every node has a shape, whose sizes may be
known (``13``), named and bound at the call (``"n"``) or unknown (``None``); a shape that is
``None`` as a whole is not known at all (an input of undeclared shape). Adding a node that
exists already returns the existing one (hash-consing on op, args and attrs).

What the compiler knows about a node beside its operation is kept beside it: its role, the
label a person sees, the equation it belongs to, and for an adjoint the node it belongs to.

>>> g = Graph()
>>> x = g.input("x", role=PARAMETER)
>>> y = g.add("exp", (x,))
>>> g.add("exp", (x,)) == y, g.add("neg", (y,)) > y
(True, True)
>>> g.output = g.name(g.add("mul", (x, y)), "f")
>>> print(g)
%0 = input  # x (parameter)
%1 = exp %0
%2 = neg %1
%3 = mul %0, %1  # f
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar
from weakref import WeakValueDictionary

INPUT = "input"  # data the user passes in, not differentiated
PARAMETER = "parameter"  # an input in ``wrt``
NAMED = "named"  # the left-hand side of one of the user's equations
TEMP = "temp"  # an inner operation of an equation
ADJOINT = "adjoint"  # d(output)/d(node), built by the reverse sweep

Size = int | str | None


class Opaque:
    """The shape of inputs whose shapes are not declared, broadcast together: not known, but
    the same wherever the same inputs meet (``x``, ``2*x``, ``x**2`` have the shape of x;
    ``k*x - y`` and its square that of k, x and y broadcast), so a gradient passed between such
    nodes needs no summing back.

    Besides input names, a shape may name a node (by id), for the shape of a node made from
    more inputs than are worth following one by one (``builder._MAX_OPAQUE``).

    >>> Opaque("x") == Opaque("x"), Opaque("x") == Opaque("y"), Opaque("x") | Opaque("k")
    (True, False, <shape of k, x broadcast>)
    >>> Opaque(frozenset({7})) | Opaque("y")
    <shape of %7, y broadcast>
    """

    __slots__ = ("__weakref__", "of")
    # one object per set of names while it is in use, so that ``is`` compares
    _made: ClassVar[WeakValueDictionary[frozenset[str], Opaque]] = WeakValueDictionary()

    def __new__(cls, of: str | frozenset[str | int]):
        of = frozenset((of,)) if isinstance(of, str) else of
        found = cls._made.get(of)
        if found is None:
            found = cls._made[of] = super().__new__(cls)
            found.of = of
        return found

    def __or__(self, other: Opaque) -> Opaque:
        return self if other is self else Opaque(self.of | other.of)

    def __eq__(self, other: object) -> bool:
        return other is self or (isinstance(other, Opaque) and other.of == self.of)

    def __reduce__(self):
        return Opaque, (self.of,)

    def __hash__(self) -> int:
        return hash(("Opaque", self.of))

    def __repr__(self) -> str:
        names = sorted(n if isinstance(n, str) else f"%{n}" for n in self.of)
        return f"<shape of {', '.join(names)}{' broadcast' if len(names) > 1 else ''}>"


Shape = tuple[Size, ...] | Opaque | None


class AnySize(str):
    """A size declared as None (any size), named after its input and axis, or a node's own
    where sizes may differ (``"X.shape[0]"``): never an identifier, so never one of the user's
    named sizes; shown as the user declared it.

    >>> AnySize("X.shape[0]") == "X.shape[0]", (AnySize("X.shape[0]"), 12)
    (True, (None, 12))
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "None"


def any_size(of: str, axis: int) -> AnySize:
    """The size of axis ``axis`` of input ``of`` (or node ``%i``), where it may be any."""
    return AnySize(f"{of}.shape[{axis}]")


def same_shape(a: Shape, b: Shape) -> bool:
    """Whether two shapes are known to be equal: the same sizes (known or named), or the same
    opaque shape.

    >>> same_shape((3, "n"), (3, "n")), same_shape((None, 3), (None, 3))
    (True, False)
    """
    return a is not None and a == b and (not isinstance(a, tuple) or None not in a)


def a_number(nodes: list, i: int) -> bool:
    """Whether node ``i`` is a number, or a copy of one (an equation ``c = 2``).

    >>> g = Graph()
    >>> x, two = g.input("x"), g.add("const", attrs=(2,), shape=())
    >>> c = g.add("copy", (two,), shape=())
    >>> a_number(g.nodes, c), a_number(g.nodes, x)
    (True, False)
    """
    while nodes[i].op == "copy":
        i = nodes[i].args[0]
    return nodes[i].op == "const"


def known(shape: Shape) -> bool:
    """Whether ``shape`` is a tuple of sizes, each known or named (not None).

    >>> known((3, "n")), known((None, 3)), known(Opaque("x")), known(None)
    (True, False, False, False)
    """
    return isinstance(shape, tuple) and None not in shape


@dataclass(frozen=True, slots=True)
class Node:
    """One operation: ``op(args; attrs)``, with its shape and dtype."""

    op: str
    args: tuple[int, ...] = ()
    attrs: tuple = ()
    shape: Shape = None
    dtype: str = "float64"


@dataclass(slots=True)
class Info:
    """What the compiler knows of a node beside its operation. One object may describe many
    nodes (the inner operations of one equation): it is replaced, never changed in place."""

    role: str = TEMP
    label: str | None = None  # the user's name for it (an input, an equation's left side)
    equation: str | None = None  # the label of the equation it was built for
    of: int | None = None  # for an adjoint: the node it is the adjoint of


class Graph:
    """Nodes in topological order with their metadata, the output and the parameters.

    ``grads`` pairs each parameter with the node of its gradient, once the reverse sweep has
    run. ``equations`` holds the user's equations (left-side label, right side as SymPy) for
    the symbolic views; the compiler itself never reads them.
    """

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self.info: list[Info] = []
        self._ids: dict[tuple, int] = {}  # (op, args, attrs) -> id: hash-consing
        self.output: int = -1
        self.wrt: list[int] = []
        self.grads: list[tuple[int, int]] = []
        self.equations: list[tuple[str, object]] = []
        self.forward: int = 0  # how many nodes the forward program has (the rest: adjoints)
        self._inputs: list[int] = []

    # -- building --------------------------------------------------------------------------------

    def add(self, op: str, args: tuple[int, ...] = (), attrs: tuple = (), shape: Shape = None,
            info: Info | None = None) -> int:
        """The id of ``op(args; attrs)``, added if it is new (``shape``: see ``shapes.py``)."""
        key = (op, args, attrs)
        found = self._ids.get(key)
        if found is not None:
            return found
        return self.append(key, shape, info or Info(role=TEMP))

    def append(self, key: tuple[str, tuple[int, ...], tuple], shape: Shape, info: Info) -> int:
        """The id of a new node ``op(args; attrs)`` for ``key = (op, args, attrs)``, which the
        graph does not have (``add`` looks first)."""
        i = len(self.nodes)
        self.nodes.append(Node(*key, shape))
        self.info.append(info)
        self._ids[key] = i
        return i

    def find(self, op: str, args: tuple[int, ...] = (), attrs: tuple = ()) -> int | None:
        """The id of ``op(args; attrs)`` if the graph has it."""
        return self._ids.get((op, args, attrs))

    def input(self, label: str, role: str = INPUT, shape: Shape = None) -> int:
        """A new input node (each input is its own node, whatever its label)."""
        i = len(self.nodes)
        self.nodes.append(Node("input", (), (i,), shape))
        self.info.append(Info(role=role, label=label))
        self._inputs.append(i)
        return i

    def name(self, i: int, label: str, equation: str | None = None) -> int:
        """Give node ``i`` the label of an equation's left side, or, if it has a label already
        (an input, another equation: ``b = a``), a copy node of its own."""
        info = self.info[i]
        if info.role != TEMP or self.nodes[i].op == "const":
            copy = len(self.nodes)  # (its own id as attrs: two copies of one node stay two)
            self.nodes.append(Node("copy", (i,), (copy,), self.nodes[i].shape))
            self.info.append(Info())
            i = copy
        self.info[i] = Info(NAMED, label, equation or label)  # (infos may be shared)
        return i

    def set_shape(self, i: int, shape: Shape) -> None:
        """Record the shape of node ``i`` (shape inference)."""
        n = self.nodes[i]
        if n.shape != shape:
            self.nodes[i] = Node(n.op, n.args, n.attrs, shape, n.dtype)

    def pruned(self) -> Graph:
        """This graph without the nodes nothing returned depends on (a rewrite or a rule may
        leave some), its inputs all kept; ids renumbered in order.

        >>> g = Graph(); x = g.input("x")
        >>> dead = g.add("exp", (x,)); g.output = g.name(g.add("sin", (x,)), "f")
        >>> print(g.pruned())
        %0 = input  # x (input)
        %1 = sin %0  # f
        """
        live = set(self.inputs) | {self.output} | {d for _, d in self.grads}
        for i in range(len(self.nodes) - 1, -1, -1):
            if i in live:
                live.update(self.nodes[i].args)
        new = Graph()
        old_to_new: dict[int, int] = {}
        for i, (node, info) in enumerate(zip(self.nodes, self.info, strict=True)):
            if i not in live:
                continue
            j = old_to_new[i] = len(new.nodes)
            args = tuple(old_to_new[a] for a in node.args)
            attrs = (j,) if node.op in ("input", "copy") else node.attrs
            new.nodes.append(Node(node.op, args, attrs, node.shape, node.dtype))
            if node.op == "input":
                new._inputs.append(j)
            new.info.append(Info(info.role, info.label, info.equation,
                                 old_to_new.get(info.of) if info.of is not None else None))
            if node.op not in ("input", "copy"):
                new._ids[(node.op, args, attrs)] = j
        new.output = old_to_new[self.output]
        new.wrt = [old_to_new[p] for p in self.wrt]
        new.grads = [(old_to_new[p], old_to_new[d]) for p, d in self.grads]
        new.equations = self.equations
        new.forward = sum(1 for i in old_to_new if i < self.forward)
        return new

    # -- reading ---------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.nodes)

    def __getitem__(self, i: int) -> Node:
        return self.nodes[i]

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    @property
    def inputs(self) -> list[int]:
        """The input nodes, in the order of the generated signature."""
        return self._inputs

    def label(self, i: int) -> str | None:
        return self.info[i].label

    def role(self, i: int) -> str:
        return self.info[i].role

    def users(self) -> list[list[int]]:
        """For every node, the nodes that read it (once per read), in order."""
        users: list[list[int]] = [[] for _ in self.nodes]
        for i, n in enumerate(self.nodes):
            for a in n.args:
                users[a].append(i)
        return users

    # -- views -----------------------------------------------------------------------------------

    def line(self, i: int) -> str:
        """One node as text: ``%3 = mul %0, %1  # f``."""
        n, info = self.nodes[i], self.info[i]
        text = f"%{i} = {n.op}"
        if n.args:
            text += " " + ", ".join(f"%{a}" for a in n.args)
        if n.attrs and n.op not in ("input", "copy"):
            text += " [" + ", ".join(map(str, n.attrs)) + "]"
        notes = []
        if info.label is not None:
            notes.append(info.label if info.role != INPUT and info.role != PARAMETER
                         else f"{info.label} ({info.role})")
        if isinstance(n.shape, tuple):
            notes.append("shape (" + ", ".join(map(str, n.shape)) + ("," if len(n.shape) == 1
                                                                       else "") + ")")
        return text + ("  # " + "; ".join(notes) if notes else "")

    def __str__(self) -> str:
        return "\n".join(self.line(i) for i in range(len(self.nodes)))

    def content_hash(self) -> str:
        """A hash of what the graph computes and how its nodes are named: the same for the same
        model in every process (independent of ``PYTHONHASHSEED``).

        >>> g = Graph(); g.output = g.name(g.add("exp", (g.input("x"),)), "f")
        >>> h = Graph(); h.output = h.name(h.add("exp", (h.input("x"),)), "f")
        >>> g.content_hash() == h.content_hash(), len(g.content_hash())
        (True, 64)
        """
        digest = hashlib.sha256()
        for n, info in zip(self.nodes, self.info, strict=True):
            digest.update(repr((n.op, n.args, _stable(n.attrs), n.shape, n.dtype, info.role,
                                info.label, info.equation, info.of)).encode())
            digest.update(b"\n")
        digest.update(repr((self.output, self.wrt, self.grads)).encode())
        return digest.hexdigest()


def _stable(attrs: tuple) -> tuple:
    """``attrs`` with SymPy objects as their ``srepr`` (stable across processes)."""
    import sympy as sp

    return tuple(sp.srepr(a) if isinstance(a, sp.Basic) else a for a in attrs)


__all__ = [
    "ADJOINT",
    "INPUT",
    "NAMED",
    "PARAMETER",
    "TEMP",
    "AnySize",
    "Graph",
    "Info",
    "Node",
    "Opaque",
    "any_size",
    "known",
    "same_shape",
]
