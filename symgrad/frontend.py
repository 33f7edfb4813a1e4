"""Front end: a SymPy expression or a few named equations -> a hash-consed ``Graph``.

Every distinct sub-expression becomes one node (a sub-expression that occurs many times is
one node), the left-hand side of each equation a named node, every other free symbol an input.
Nodes are created in topological order: equations are ordered first (Kahn's algorithm), then
each right-hand side is decomposed bottom-up.

>>> import sympy as sp
>>> from symgrad.functions import sigmoid, mean
>>> x, y, k1, b1, L1, s, Loss = sp.symbols("x y k1 b1 L1 σ Loss")
>>> g = build([(Loss, mean((s - y)**2)), (s, sigmoid(L1)), (L1, k1*x + b1)], output=Loss)
>>> print(g)
b1: parameter
k1: parameter
x: parameter
y: parameter
t1 = k1*x
L1 = b1 + t1
σ = sigmoid(L1)
t2 = -y + σ
t3 = t2**2
Loss = mean(t3)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from operator import attrgetter
from typing import Any

import numpy as np
import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

from .construct import PLAIN, real_symbol, rebuild, term_base, with_base
from .errors import ModelError
from .functions import matmul, sigmoid, softplus, transpose
from .graph import INPUT, NAMED, PARAMETER, TEMP, Graph, Node, NodeSymbol, Shape
from .names import Namer
from .order import toposort
from .shapes import infer_graph

Equations = list[tuple[sp.Symbol, sp.Expr]]


def equations_of(model: Any, name: str = "f") -> Equations:
    """Normalise what the user passed into a list of ``(symbol, expression)`` pairs.

    Accepts one expression (its output is called ``name``), a dict ``{symbol: expr}``, a list
    of ``(symbol, expr)`` pairs or of ``sympy.Eq(symbol, expr)``.

    >>> x = sp.Symbol("x")
    >>> equations_of(x**2)
    [(f, x**2)]
    >>> equations_of({"y": x + 1})
    [(y, x + 1)]
    """
    if isinstance(model, Mapping):
        pairs: Iterable = model.items()
    elif isinstance(model, sp.Eq):
        pairs = [model]
    elif isinstance(model, (list, tuple)) and not isinstance(model, sp.Basic):
        pairs = model
    else:
        expr = _sympify(model, name)
        if name in {s.name for s in free_symbols(expr)}:
            raise ModelError(
                f"the output is called {name}, like one of the expression's symbols; "
                f"pass another name=, e.g. compile(..., name='{name}_out')"
            )
        return [(sp.Symbol(name), expr)]
    equations = []
    for item in pairs:
        if isinstance(item, sp.Eq):
            lhs, rhs = item.lhs, item.rhs
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            lhs, rhs = item
        elif item is sp.true or item is sp.false:
            raise ModelError(f"an equation evaluated to {item}: write it as (symbol, expression)")
        else:
            raise ModelError(
                f"cannot read {item!r} as an equation: give (symbol, expression) pairs, "
                "sympy.Eq(symbol, expression) or a dict {symbol: expression}"
            )
        if isinstance(lhs, str):
            lhs = sp.Symbol(lhs)
        if not _is_symbol(lhs):
            raise ModelError(f"the left side of an equation must be a symbol, not {lhs}")
        equations.append((lhs, _sympify(rhs, lhs.name)))
    if not equations:
        raise ModelError("the model has no equations")
    return equations


def _sympify(expr: Any, name: str) -> sp.Expr:
    try:
        expr = sp.sympify(expr, strict=True)
    except (sp.SympifyError, TypeError) as e:
        raise ModelError(f"{name}: {expr!r} is not a SymPy expression") from e
    if not isinstance(expr, sp.Expr):
        raise ModelError(f"{name}: {expr} is not an arithmetic expression")
    return expr


def build(
    model: Any,
    *,
    name: str = "f",
    output: sp.Symbol | str | None = None,
    wrt: Sequence[sp.Symbol | str] | None = None,
    shapes: Mapping[sp.Symbol | str, Shape] | None = None,
) -> Graph:
    """Turn a model into a ``Graph`` (see the module docstring)."""
    equations = equations_of(model, name)
    try:
        return _build(equations, output, wrt, shapes, imaginary_parts=False)
    except _ImaginaryPart:  # (rare: a walk of every equation, only when it is needed)
        equations = [(lhs, _real_parts(rhs)) for lhs, rhs in equations]
        return _build(equations, output, wrt, shapes, imaginary_parts=True)


class _ImaginaryPart(Exception):
    """An imaginary number met where SymPy may have written a real value's parts (re, im)."""


def _real_parts(expr: sp.Expr) -> sp.Expr:
    """``expr`` with re, im and conjugate of its (real) values replaced and SymPy's evaluation
    let run: |exp(erfc(a))| is written with erfc(re(a) ± I·im(a)), which is erfc(a)."""
    return expr.replace(lambda e: type(e) in REAL_PARTS,
                        lambda e: REAL_PARTS[type(e)](e.args[0]))


def _build(equations, output, wrt, shapes, imaginary_parts: bool) -> Graph:
    defined: dict[str, sp.Symbol] = {}
    for lhs, _ in equations:
        if lhs.name in defined:
            raise ModelError(f"{lhs.name} is defined twice; give each equation its own symbol")
        defined[lhs.name] = lhs
    rhs_of = {lhs: rhs for lhs, rhs in equations}
    free = {lhs: free_symbols(rhs) for lhs, rhs in equations}
    out = _output_symbol(output, equations, defined, free)
    order = toposort(
        {
            lhs: sorted_symbols(s for s in free[lhs] if s in rhs_of)
            for lhs, _ in equations
        },
        label=lambda s: s.name,
    )
    needed = _reachable(out, free, rhs_of)
    order = [lhs for lhs in order if lhs in needed]
    symbols = _user_symbols(order, free)
    inputs = sorted_symbols(s for s in symbols if s not in rhs_of)
    in_model = {s.name for rhs in free.values() for s in rhs}  # (reached by the output or not)
    params = _resolve_wrt(wrt, inputs, symbols, rhs_of, in_model)
    known_inputs, param_set = set(inputs), set(params)
    for p in params:
        if p not in known_inputs:  # asked for, but the output does not depend on it: zero gradient
            inputs.append(p)
    builder = _Builder(_declared_shapes(shapes or {}, inputs, rhs_of))
    builder.imaginary_parts = imaginary_parts
    builder.rhs_of = rhs_of
    for s in inputs:
        builder.add_input(s, PARAMETER if s in param_set else INPUT)
    for lhs in order:
        builder.add_equation(lhs, rhs_of[lhs])
    equations = NodeEquations(
        [builder.symbol_of[lhs] for lhs in order],
        [rhs_of[lhs] for lhs in order],
        builder.substitute,
    )
    graph = Graph(tuple(builder.nodes), output=builder.symbol_of[out], wrt=(), equations=equations)
    known = infer_graph(graph, {}, describe=lambda node: describe(graph, node))
    nodes = tuple(
        n if n.shape == known[n.symbol] else n.with_expr(n.expr, known[n.symbol])
        for n in builder.nodes
    )
    # the equations keep the builder (its substitute) alive: not its list of nodes, nor its
    # memo of every sub-expression (memory, and work for the collector)
    builder.nodes, builder.memo = [], {}
    return Graph(
        nodes,
        output=builder.symbol_of[out],
        wrt=tuple(builder.symbol_of[p] for p in params),
        equations=equations,
    )


class NodeEquations(Sequence):
    """The user's equations as ``(node symbol, right side over node symbols)`` pairs, in
    topological order, each right side built the first time it is asked for.

    Compiling a model never needs them whole (explaining and drawing it does), and building one
    is a pass over the whole expression: for a large model, a good part of the compile time.

    >>> x, L1, Loss = sp.symbols("x L1 Loss")
    >>> g = build([(L1, 2*x), (Loss, L1**2)])
    >>> g.equations, g.equations[1]
    (NodeEquations(L1, Loss), (Loss, L1**2))
    """

    def __init__(self, symbols: list[sp.Symbol], user_rhs: list[sp.Expr], substitute):
        self.symbols = tuple(symbols)  # the left sides, as node symbols
        self._user_rhs = user_rhs  # the right sides as the user wrote them
        self._substitute = substitute  # user expression -> over node symbols
        self._rhs: list[sp.Expr | None] = [None] * len(symbols)

    def __len__(self) -> int:
        return len(self.symbols)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return tuple(self[j] for j in range(*i.indices(len(self))))
        if self._rhs[i] is None:
            self._rhs[i] = self._substitute(self._user_rhs[i])
        return self.symbols[i], self._rhs[i]

    def larger_than(self, i: int, limit: int) -> bool:
        """Whether the i-th right side has more than ``limit`` terms (as a tree)."""
        return larger_than(self._user_rhs[i], limit)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and tuple(self) == tuple(other)

    def __hash__(self) -> int:
        return hash(self.symbols)

    def __repr__(self) -> str:
        return f"NodeEquations({', '.join(s.name for s in self.symbols)})"


def _declared_shapes(shapes, inputs, rhs_of) -> dict[str, Shape]:
    """Declared shapes by name: ``shapes=`` first, else a MatrixSymbol's own (n, m)."""
    declared: dict[str, Shape] = {}
    for s in [*inputs, *rhs_of]:
        if isinstance(s, sp.MatrixSymbol):
            declared[s.name] = tuple(int(n) if n.is_Integer else None for n in s.shape)
    names = {s.name for s in [*inputs, *rhs_of]}
    for key, shape in shapes.items():
        name = key.name if isinstance(key, (sp.Symbol, sp.MatrixSymbol)) else str(key)
        if name not in names:
            raise ModelError(f"shapes: {name} is not a symbol of the model")
        declared[name] = _shape(name, shape)
    return declared


def _shape(name: str, shape: Any) -> Shape:
    """A declared shape as a tuple of sizes (None for any), or a ModelError naming it: sizes
    are whole numbers >= 0, never read from a string or rounded from a fraction."""
    sizes = shape if isinstance(shape, tuple | list) else None
    if sizes is not None and all(
        n is None or (isinstance(n, int | np.integer | sp.Integer) and not isinstance(n, bool)
                      and int(n) >= 0)
        for n in sizes
    ):
        return tuple(None if n is None else int(n) for n in sizes)
    raise ModelError(
        f"shapes: {name}: {shape!r} is not a shape; give a tuple of sizes, whole numbers or None "
        f"for any size, e.g. shapes={{{name}: (None, 13)}}"
    )


def describe(graph: Graph, node: Node) -> str:
    """``L1 = matmul(X, W1)``: the user's equation a node belongs to, for messages."""
    for lhs, rhs in graph.equations:
        if graph[lhs].label == node.equation:
            if tree_size(rhs) > 60:
                return node.equation or node.label
            labels = {s: sp.Symbol(graph[s].label) for s in free_symbols(rhs) if s in graph}
            return f"{node.equation} = {sp.sstr(rhs.xreplace(labels))}"
    return node.label


@lru_cache(maxsize=8)  # a compile asks for the same large expression's several times
def free_symbols(expr: sp.Basic) -> frozenset[sp.Symbol]:
    """``expr.free_symbols``, in time linear in the size of the expression's DAG.

    (SymPy's own walks the expanded tree: exponential for a shared sub-expression.)

    >>> x, y = sp.symbols("x y")
    >>> sorted(free_symbols(sp.sin(x) + y), key=str)
    [x, y]
    """
    found: set[sp.Symbol] = set()
    seen: set[sp.Basic] = set()
    stack = [expr]
    while stack:
        e = stack.pop()
        args = e.args
        if not args:  # an atom: a symbol, a number
            if type(e) is sp.Symbol or _is_symbol(e):
                found.add(e)
            continue
        if e in seen:
            continue
        seen.add(e)
        if type(e) in _ALL_OPERANDS:
            stack.extend(args)
        elif _is_symbol(e):  # a MatrixSymbol
            found.add(e)
        else:
            stack.extend(_operands(e))
    return frozenset(found)


def _is_symbol(e: sp.Basic) -> bool:
    return isinstance(e, (sp.Symbol, sp.MatrixSymbol))


def _operands(e: sp.Basic) -> tuple:
    """The sub-expressions of ``e`` that are computed (a MatrixSymbol's sizes and a Lambda's
    body are not)."""
    if type(e) in _ALL_OPERANDS:
        return e.args
    if isinstance(e, (sp.MatrixSymbol, sp.Lambda)):
        return ()
    if isinstance(e, ElementwiseApplyFunction):
        return (e.expr,)
    return tuple(a for a in e.args if not _is_option(a))


def _visited(e: sp.Basic) -> list:
    """The sub-expressions of ``e`` that become nodes: its operands, but u for a term c*u**n
    of a sum (see ``_Builder._operand_nodes``)."""
    if type(e) is not sp.Add:
        return list(_operands(e))
    return [a if (u := term_base(a)) is None else u for a in e.args]


#: Classes every argument of which is an operand (the common case, answered first).
_ALL_OPERANDS = frozenset({sp.Add, sp.Mul, sp.Pow, sp.Symbol, sp.Integer, sp.Float, sp.Rational,
                           *PLAIN})


def _is_option(a: sp.Basic) -> bool:
    """An argument that configures an operation (an axis, keepdims), not one it computes on."""
    return type(a) is sp.Tuple or isinstance(a, sp.logic.boolalg.BooleanAtom)


def substitute_unevaluated(expr: sp.Basic, mapping: Mapping) -> sp.Basic:
    """``expr`` with symbols replaced, exactly as written: SymPy re-arranges nothing.

    (``sp.evaluate(False)`` would do the same but clears SymPy's cache each time.)

    >>> x, t = sp.symbols("x t")
    >>> substitute_unevaluated(2*t, {t: x - 1})
    2*(x - 1)
    """
    if not mapping:
        return expr

    def combine(e, args):
        if e in mapping:
            return mapping[e]
        if not args or all(a is b for a, b in zip(args, _operands(e), strict=True)):
            return e
        return _rebuild(e, args, evaluate=False)

    return _postorder(expr, combine)


def _rebuild(e: sp.Basic, operands, evaluate: bool = True) -> sp.Basic:
    """``e`` with its operands replaced (in order), its option arguments kept."""
    it = iter(operands)
    args = [a if _is_option(a) else next(it) for a in e.args]
    return e.func(*args) if evaluate else rebuild(e, args)


def _matmul(e: sp.MatMul, *args):
    matrices = [a for a, orig in zip(args, e.args, strict=True) if orig.is_Matrix]
    scalars = [a for a, orig in zip(args, e.args, strict=True) if not orig.is_Matrix]
    product = matrices[0]
    for m in matrices[1:]:
        product = matmul(product, m)
    return sp.Mul(*scalars) * product


#: SymPy's matrix expressions -> the same operations on arrays, over the operands' nodes.
TRANSLATE = {
    sp.MatMul: _matmul,
    sp.MatAdd: lambda e, *args: sp.Add(*args),
    sp.HadamardProduct: lambda e, *args: sp.Mul(*args),
    sp.Transpose: lambda e, x: transpose(x),
    ElementwiseApplyFunction: lambda e, x: e.function(x),
}


def tree_size(expr: sp.Basic, memo: dict | None = None) -> int:
    """How many nodes ``expr`` has as a tree (its DAG may be far smaller).

    >>> x = sp.Symbol("x")
    >>> e = x
    >>> for _ in range(40): e = sp.sin(e) + sp.cos(e)
    >>> tree_size(e) > 2**40
    True
    """
    return _postorder(expr, lambda e, args: 1 + sum(args), memo)


def larger_than(expr: sp.Basic, limit: int) -> bool:
    """Whether ``expr`` has more than ``limit`` nodes as a tree; looks at no more than that.

    >>> x = sp.Symbol("x")
    >>> larger_than(x + 1, 2), larger_than(x + 1, 3)
    (True, False)
    """
    stack, count = [expr], 0
    while stack:
        count += 1
        if count > limit:
            return True
        stack.extend(_operands(stack.pop()))
    return False


def _postorder(expr: sp.Basic, combine, memo: dict | None = None):
    """Fold ``combine(e, [results of e's args])`` over the DAG of ``expr``, each node once."""
    memo = {} if memo is None else memo
    stack = [expr]
    while stack:
        e = stack[-1]
        if e in memo:
            stack.pop()
            continue
        todo = [a for a in _operands(e) if a not in memo]
        if todo:
            stack.extend(todo)
            continue
        memo[e] = combine(e, [memo[a] for a in _operands(e)])
        stack.pop()
    return memo[expr]


def _output_symbol(output, equations: Equations, defined: dict[str, sp.Symbol], free) -> sp.Symbol:
    """``output``, or else the equation no other one reads; where several are read by none,
    the last equation, if it is one of them (equations may come in any order)."""
    if output is None:
        read = set().union(*free.values())
        ends = [lhs for lhs, _ in equations if lhs not in read]
        last = equations[-1][0]
        if len(ends) == 1:
            return ends[0]
        if not ends or last in ends:  # (none: the equations form a cycle, reported later)
            return last
        raise ModelError(
            f"which equation is the output? {', '.join(s.name for s in ends)} are read by no "
            f"other equation; pass output=, e.g. output={ends[0].name!r}"
        )
    key = output.name if isinstance(output, sp.Symbol) else str(output)
    if key not in defined:
        raise ModelError(
            f"output {key} is not defined by any equation; defined: {', '.join(defined)}"
        )
    return defined[key]


def _reachable(out: sp.Symbol, free, rhs_of) -> set[sp.Symbol]:
    seen, todo = {out}, [out]
    while todo:
        for s in free[todo.pop()]:
            if s in rhs_of and s not in seen:
                seen.add(s)
                todo.append(s)
    return seen


def sorted_symbols(symbols: Iterable[sp.Basic]) -> list[sp.Basic]:
    """``sorted(symbols, key=sp.default_sort_key)``: for plain symbols, by name (the same
    order, without building SymPy's sort key of each).

    >>> sorted_symbols(sp.symbols("x10 x2 b"))
    [b, x10, x2]
    """
    symbols = list(symbols)
    if all(type(s) is sp.Symbol for s in symbols):
        return sorted(symbols, key=attrgetter("name"))
    return sorted(symbols, key=sp.default_sort_key)


def _user_symbols(order, free) -> list[sp.Symbol]:
    symbols: dict[sp.Symbol, None] = dict.fromkeys(order)
    for lhs in order:
        symbols.update(dict.fromkeys(sorted_symbols(free[lhs])))
    by_name: dict[str, sp.Symbol] = {}
    for s in symbols:
        other = by_name.setdefault(s.name, s)
        if other != s:
            raise ModelError(
                f"two different symbols are both named {s.name} (assumptions "
                f"{other.assumptions0} and {s.assumptions0}); give them different names"
            )
    return list(symbols)


def _resolve_wrt(wrt, inputs, symbols, rhs_of, in_model: set[str]) -> list[sp.Symbol]:
    """The parameters ``wrt`` names. One that no equation mentions is a mistake (a typo would
    otherwise become a new input with a zero gradient); one that the output does not depend
    on gets a zero gradient."""
    if wrt is None:
        return list(inputs)
    if isinstance(wrt, (sp.Symbol, str)):
        wrt = [wrt]
    elif not isinstance(wrt, Iterable) or isinstance(wrt, sp.Basic | Mapping):
        raise ModelError(
            f"wrt: {wrt!r} is not a list of symbols; pass wrt=[k, b] (symbols or their names)"
        )
    by_name = {s.name: s for s in symbols}
    params: list[sp.Symbol] = []
    seen: set[sp.Symbol] = set()
    for item in wrt:
        if not isinstance(item, sp.Symbol | str):
            raise ModelError(
                f"wrt: {item!r} is not a symbol; list the inputs to differentiate with respect "
                f"to, by symbol or name ({', '.join(i.name for i in inputs)})"
            )
        key = item.name if isinstance(item, sp.Symbol) else item
        if key not in in_model:
            raise ModelError(
                f"wrt: {key} is not a symbol of the model; its inputs are "
                f"{', '.join(i.name for i in inputs) or 'none'} (a typo?)"
            )
        s = by_name.get(key, item if isinstance(item, sp.Symbol) else sp.Symbol(key))
        if s in rhs_of:
            raise ModelError(
                f"wrt: {key} is defined by an equation; gradients are taken with respect to "
                f"inputs ({', '.join(i.name for i in inputs)})"
            )
        if s in seen:
            raise ModelError(f"wrt: {key} is listed twice")
        seen.add(s)
        params.append(s)
    return params


#: Rewrites into numerically stable forms, applied to every sub-expression before it
#: becomes a node: SymPy class -> function(expr, equations) returning the replacement or None.
def _log_sigmoid(e: sp.log, rhs_of: Mapping) -> sp.Expr | None:
    """log(sigmoid(u)) = -softplus(-u): exact where log(σ) underflows to log(0). Also when the
    sigmoid is an equation of its own (s = sigmoid(u), then log(s))."""
    (arg,) = e.args
    arg = rhs_of.get(arg, arg)
    return -softplus(-arg.args[0]) if isinstance(arg, sigmoid) else None


#: Every value is real, so these are their operand or 0 (SymPy writes |exp(u)| as exp(re(u))
#: for a symbol not declared real): SymPy class -> function of the operand.
REAL_PARTS = {
    sp.re: lambda u: u,
    sp.im: lambda u: sp.S.Zero,
    sp.conjugate: lambda u: u,
}

REWRITES = {
    sp.log: _log_sigmoid,
    **{cls: lambda e, rhs_of, part=part: part(e.args[0]) for cls, part in REAL_PARTS.items()},
}


#: The most terms a sum or product node has; longer ones become a tree of such nodes.
MAX_ARITY = 32


class _Builder:
    """Decomposes expressions into nodes, one per distinct sub-expression."""

    def __init__(self, declared: Mapping[str, Shape]):
        self.nodes: list[Node] = []
        self.memo: dict[sp.Basic, sp.Basic] = {}  # user sub-expression -> node symbol or number
        self.symbol_of: dict[sp.Symbol, sp.Symbol] = {}  # user symbol -> node symbol
        self.namer = Namer()
        self.temps = 0
        self.renamed: dict[sp.Basic, sp.Basic] = {}  # user sub-expression -> over node symbols
        self.equation: str | None = None
        self.declared = declared
        self.rhs_of: Mapping[sp.Symbol, sp.Expr] = {}  # the user's equations, for rewrites
        self.imaginary_parts = True  # whether re and im were taken out already (build)

    def _add(self, symbol: sp.Symbol, expr, role: str, label: str) -> sp.Symbol:
        shape = self.declared.get(label) if expr is None else None  # inferred once built
        self.nodes.append(Node(symbol, expr, role, label, self.equation, shape))
        self.memo[symbol] = symbol  # translated operations are built over node symbols
        return symbol

    def add_input(self, user: sp.Symbol, role: str) -> None:
        symbol = real_symbol(self.namer.fresh(user.name))
        self.symbol_of[user] = symbol
        self.memo[user] = self._add(symbol, None, role, user.name)

    def add_equation(self, lhs: sp.Symbol, rhs: sp.Expr) -> None:
        self.equation = lhs.name
        symbol = real_symbol(self.namer.fresh(lhs.name))
        self.symbol_of[lhs] = symbol
        rhs = self._rewrite(rhs)
        if isinstance(rhs, sp.Piecewise) and rhs not in self.memo:
            expr = self.substitute(self._hoist(rhs))
            self.memo[rhs] = symbol
        elif rhs in self.memo or not _operands(rhs):
            expr = self._visit(rhs)  # an alias, a constant, or a shared sub-expression
        else:
            top = self._translate(rhs, self._operand_nodes(rhs), evaluate=False)
            expr = self._rebuild(top, self._operand_nodes(top)) if top.args else top
            self.memo[rhs] = symbol
        self.memo[lhs] = self._add(symbol, expr, NAMED, lhs.name)

    def _rewrite(self, expr: sp.Basic) -> sp.Basic:
        rewrite = REWRITES.get(type(expr))
        if rewrite is None:
            return expr
        new = rewrite(expr, self.rhs_of)
        return expr if new is None else new

    def _visit(self, expr: sp.Basic) -> sp.Basic:
        """The node symbol (or number) standing for ``expr``, creating nodes as needed."""
        stack = [expr]
        while stack:  # iterative post-order: deep models must not hit the recursion limit
            e = stack[-1]
            if e in self.memo:
                stack.pop()
                continue
            new = self._rewrite(e)
            if new is not e:
                if new in self.memo:
                    self.memo[e] = self.memo[new]
                    stack.pop()
                else:
                    stack.append(new)
                continue
            if isinstance(e, sp.Piecewise):
                self.memo[e] = self._temp(self.substitute(self._hoist(e)))
            elif not _operands(e):
                self.memo[e] = self._atom(e)
            else:
                visited = _visited(e)
                todo = [a for a in visited if a not in self.memo]
                if todo:
                    stack.extend(reversed(todo))
                    continue
                operands = self._operand_nodes(e, visited)
                if isinstance(e, sp.MatrixExpr):  # over node symbols now: decompose it in turn
                    self.memo[e] = self._visit(self._translate(e, operands))
                else:
                    self.memo[e] = self._temp(self._rebuild(e, operands))  # as written
            stack.pop()
        return self.memo[expr]

    def _operand_nodes(self, e: sp.Basic, visited: list | None = None) -> list:
        """``e``'s operands as node symbols (or numbers), visited as needed. In a sum, a term
        ``c*u**n`` (``-u``, ``100*u**2``, see ``construct.term_base``) is written over the node
        of u: ``x - y`` and ``100*t**2 + s**2`` are computed on one line, as a person writes
        them, not as a sum and a node of its own for each term. (``visited``: ``_visited(e)``,
        if the caller has it.)"""
        nodes = []
        memo = self.memo
        if visited is None:
            visited = _visited(e)
        for a, u in zip(_operands(e), visited, strict=True):
            node = memo.get(u)  # (most are built already: visited before their user)
            if node is None:
                node = self._visit(u)
            if u is a:
                nodes.append(node)
            else:  # the base of a term
                nodes.append(a if node is u else with_base(a, node))  # (u a node already)
        return nodes

    def _rebuild(self, e: sp.Basic, operands: list) -> sp.Basic:
        """``e`` over its operands' nodes; a long sum or product is split into nodes of at
        most MAX_ARITY terms (Python cannot compile a line of a few thousand terms)."""
        if isinstance(e, (sp.Add, sp.Mul)):
            while len(operands) > MAX_ARITY:
                operands = [
                    self._temp(rebuild(e, operands[i : i + MAX_ARITY]))
                    for i in range(0, len(operands), MAX_ARITY)
                ]
        if type(e) in _ALL_OPERANDS:  # no option arguments to keep in place
            return rebuild(e, operands)
        return _rebuild(e, operands, evaluate=False)

    def _translate(self, e: sp.Basic, operands: list, evaluate: bool = True) -> sp.Basic:
        if type(e) in TRANSLATE:
            return TRANSLATE[type(e)](e, *operands)
        if isinstance(e, sp.MatrixExpr):
            raise ModelError(
                f"{self.equation}: symgrad cannot compute {type(e).__name__} (in {e}); "
                "write it with matmul, transpose, sum and elementwise operations"
            )
        return _rebuild(e, operands, evaluate) if operands else e

    def _atom(self, e: sp.Basic) -> sp.Basic:
        if isinstance(e, sp.Symbol):  # only a symbol no equation defines and no input is
            raise AssertionError(f"unknown symbol {e}")
        if e.is_Number or e.is_NumberSymbol or e is sp.I:
            if not e.is_real:
                if not self.imaginary_parts:
                    raise _ImaginaryPart
                raise ModelError(f"{self.equation}: symgrad computes with real numbers, not {e}")
            return e
        raise ModelError(f"{self.equation}: cannot compute {e} ({type(e).__name__})")

    def _hoist(self, piecewise: sp.Piecewise) -> sp.Piecewise:
        """``piecewise`` with each operation inside it that is not elementwise (a reduction,
        matmul, softmax, transpose) made a node of its own: the Piecewise then chooses, element
        by element, among node values, and its derivative rule reads operands of the shapes it
        broadcasts (np.where computes every branch whole anyway)."""
        stack = list(piecewise.args)
        while stack:
            e = stack.pop()
            if e in self.renamed or _is_symbol(e):
                continue
            if not getattr(type(e), "elementwise", True) or isinstance(e, sp.MatrixExpr):
                self.renamed[e] = self._visit(e)  # (substitute reads it from there)
            else:
                stack.extend(_operands(e))
        return piecewise

    def substitute(self, e: sp.Basic) -> sp.Basic:
        """``e`` over node symbols, not decomposed (Piecewise branches are computed as a whole)."""
        symbol_of = self.symbol_of
        return _postorder(
            e,
            lambda e, args: (
                symbol_of[e]
                if _is_symbol(e)
                else REAL_PARTS[type(e)](args[0])
                if type(e) in REAL_PARTS
                else self._translate(e, args, evaluate=False)
                if args
                else e
            ),
            self.renamed,
        )

    def _temp(self, expr: sp.Basic) -> sp.Basic:
        if isinstance(expr, sp.Number) or type(expr) is NodeSymbol:
            return expr  # the operands folded to a number, or to one of them (x*1, unevaluated)
        self.temps += 1
        symbol = real_symbol(self.namer.fresh(f"t{self.temps}"))
        return self._add(symbol, expr, TEMP, symbol.name)
