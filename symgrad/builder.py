"""Adding nodes to the IR: shapes as they are added, numbers folded, SymPy written as nodes.

``Builder.op`` adds one operation with its shape (by the record's shape rule) and folds what
needs no node (``x*1``, ``-(-x)``, ``0 + x``, exact numbers); ``Builder.sympy`` writes a SymPy
expression as nodes, one per distinct sub-expression. The front end writes the user's model
with it, the reverse sweep the derivative rules.

A sum, product or power is written with the binary operations ``add sub mul div neg pow`` in
the order a person writes it: ``b + k*x - y``, ``-x/2``, ``1/(2*u)``. A Piecewise becomes one
``piecewise`` node whose template is the Piecewise over its operands (the symbols and the
operations in it that are not elementwise): it is computed, and differentiated, as a whole,
so no branch's value or derivative leaks where another branch is taken.

>>> import sympy as sp
>>> from symgrad.ir import Graph
>>> x, y = sp.symbols("x y")
>>> g = Graph()
>>> b = Builder(g)
>>> env = {x: g.input("x", shape=()), y: g.input("y", shape=(3,))}
>>> i = b.sympy(-x/2 + sp.exp(y), env)
>>> print(g)
%0 = input  # x (input); shape ()
%1 = input  # y (input); shape (3,)
%2 = const [2]  # shape ()
%3 = div %0, %2  # shape ()
%4 = exp %1  # shape (3,)
%5 = sub %4, %3  # shape (3,)
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

from .errors import ModelError, ShapeError
from .expressions import term_kind
from .ir import NAMED, Graph, Info, Opaque, a_number, any_size, known, same_shape
from .ops import OPS, SUPPORTED, broadcast, piecewise_slots, record_of
from .rewrites import BY_OP, rewrite

S = sp.S


class Builder:
    """Adds operations to ``graph``; ``info()`` gives the metadata of each new node."""

    def __init__(self, graph: Graph, info: Callable[[], Info] = Info,
                 describe: Callable[[], str] | None = None):
        self.graph = graph
        self.info = info
        self.describe = describe  # where a shape error is (the equation being built)

    # -- one operation -------------------------------------------------------------------------

    def const(self, value) -> int:
        if not isinstance(value, sp.Basic):
            value = sp.sympify(value)
        key = ("const", (), (value,))
        found = self.graph._ids.get(key)
        return found if found is not None else self.graph.add("const", (), (value,), ())

    def number(self, i: int):
        """The number node ``i`` holds, or None."""
        node = self.graph.nodes[i]
        return node.attrs[0] if node.op == "const" else None

    def op(self, name: str, args: tuple[int, ...] = (), attrs: tuple = ()) -> int:
        """The node of ``name(args; attrs)``, folded where no node is needed."""
        graph = self.graph
        key = (name, args, attrs)
        found = graph._ids.get(key)  # (made before: computes the same, folded or not)
        if found is not None:
            return found
        folded = self._fold(name, args, attrs)
        if folded is not None:
            return folded
        if name in _FUNCTIONS and all(graph.nodes[a].op == "const" for a in args):
            # a function of numbers is a number: log(2), not np.log(2) (a NumPy float64,
            # which would widen the float32 arrays it meets)
            value = OPS[name].sympy_of(tuple(graph.nodes[a].attrs[0] for a in args), attrs)
            if value.is_number and value.is_extended_real and _finite_float(value):
                return self.const(value)
        if name in BY_OP:
            stable = rewrite(self, name, args, attrs)
            if stable is not None:
                return stable
        return graph.append(key, self.shape(name, args, attrs), self.info())

    def shape(self, name: str, args: tuple[int, ...], attrs: tuple):
        nodes = self.graph.nodes
        if len(args) == 2 and name in _BINARY:  # (most operations: the common cases first)
            a, b = nodes[args[0]].shape, nodes[args[1]].shape
            if a is b or a == ():
                return b
            if b == ():
                return a
        shapes = [nodes[a].shape for a in args]
        record = OPS[name]
        if record.elementwise:
            wide = [s for s in shapes if s != ()]  # (a scalar never widens the result)
            if not wide:
                return ()
            if all(s == wide[0] for s in wide):  # (an opaque shape, too)
                return wide[0]
            if all(isinstance(s, Opaque) for s in wide):
                union = functools.reduce(operator.or_, wide)
                if len(union.of) <= _MAX_OPAQUE:
                    return union
                return Opaque(frozenset((len(self.graph.nodes),)))  # (this new node's own)
            if any(not isinstance(s, tuple) for s in wide):  # (known and not: the node's own,
                return Opaque(frozenset((len(self.graph.nodes),)))  # for those made from it)
        elif any(not isinstance(s, tuple) for s in shapes):
            if name in _SHAPE_OF_ARGUMENT:
                return record.shape(attrs, *shapes)
            if record.scalar_result(attrs):
                return ()  # (a full reduction gives a scalar, whatever it reduces)
            return None
        try:
            if record.elementwise:
                shape = broadcast(*wide)
                if None in shape:  # (sizes that may differ: this node's own, for its users)
                    node = f"%{len(self.graph.nodes)}"
                    shape = tuple(any_size(node, k) if n is None else n
                                  for k, n in enumerate(shape))
                return shape
            return tuple(record.shape(attrs, *shapes))
        except ShapeError as e:
            where = self.describe() if self.describe is not None else None
            raise ShapeError(f"{where}: {e}" if where else str(e)) from None

    def _fold(self, name: str, args: tuple[int, ...], attrs: tuple) -> int | None:
        number = self.number
        if name in _BINARY:
            nodes = self.graph.nodes
            if nodes[args[0]].op not in _LOOKED_AT and (
                    len(args) == 1 or nodes[args[1]].op not in _LOOKED_AT):
                return None  # (the common case: nothing to fold)
        if name in _FOLDABLE or name == "pow":
            if name == "pow":
                return args[0] if self.number(args[1]) == 1 else None
            values = [number(a) for a in args]
            if all(v is not None and v.is_Rational for v in values):
                return self.const(_FOLDABLE[name](*values))
            a = args[0]
            b = args[1] if len(args) > 1 else None
            va = values[0]
            vb = values[1] if len(values) > 1 else None
            if name == "neg":
                inner = self.graph.nodes[a]
                if inner.op == "neg":
                    return inner.args[0]
            elif name == "add":
                if va == 0:
                    return b
                if vb == 0:
                    return a
            elif name == "sub":
                if vb == 0:
                    return a
                if va == 0:
                    return self.op("neg", (b,))
            elif name == "mul":
                quotient = self.graph.nodes[b]
                if va is not None and quotient.op == "div" and self.number(quotient.args[0]):
                    # c*(d/y) is (c*d)/y: one division of numbers, not two operations
                    return self.op("div", (self.const(va * self.number(quotient.args[0])),
                                           quotient.args[1]))
                if va == 1:
                    return b
                if vb == 1:
                    return a
                if va == -1:
                    return self.op("neg", (b,))
                if vb == -1:
                    return self.op("neg", (a,))
            elif name == "div":
                if vb == 1:
                    return a
            signed = self._sign_outward(name, args)
            if signed is not None:
                return signed
            spread = self._through_broadcast(name, args)
            if spread is not None:
                return spread
        elif name in _REDUCTIONS and attrs == (None, False) and a_number(self.graph.nodes, args[0]):
            return args[0]  # (a number reduced whole is itself: sum(c), mean(2))
        elif name == "sum_to" and self.graph.nodes[args[0]].op == "neg":  # (it is linear)
            return self.op("neg", (self.op("sum_to", (self.graph.nodes[args[0]].args[0],
                                                      args[1])),))
        elif name in _LOWER:
            return _LOWER[name](self, args, attrs)
        return None

    def _sign_outward(self, name: str, args: tuple[int, ...]) -> int | None:
        """A minus sign taken out of a product and into a sum, as a person writes it:
        ``-(2*g*x)`` for ``2*(-g)*x``, ``a - b`` for ``a + (-b)``."""
        nodes, info = self.graph.nodes, self.graph.info
        negated = [nodes[a].op == "neg" and info[a].role != NAMED for a in args]  # (an
        # equation of the user's, e = -x, stays a line of its own)
        if not any(negated):
            return None
        inner = [nodes[a].args[0] if n else a for a, n in zip(args, negated, strict=True)]
        if name in ("mul", "div"):
            if all(negated):
                return self.op(name, tuple(inner))
            return self.op("neg", (self.op(name, tuple(inner)),))
        if name == "add":
            a, b = args
            if negated[1]:
                return self.op("sub", (a, inner[1]))
            return self.op("sub", (b, inner[0]))
        if name == "sub" and negated[1]:
            return self.op("add", (args[0], inner[1]))
        return None

    def _through_broadcast(self, name: str, args: tuple[int, ...]) -> int | None:
        """A reduction's gradient is ``broadcast_like(g, x)``, g spread to x's shape. An
        operation with a scalar is done before the spreading (on g, not on every element),
        and a product with an operand of x's shape needs no spreading at all: ``2*t1*g``, not
        ``2*t1*np.broadcast_to(g, np.shape(t1))``."""
        nodes = self.graph.nodes
        for k, a in enumerate(args):
            node = nodes[a]
            if node.op != "broadcast_like" or (name in ("sub", "div") and k == 1):
                continue
            g, x = node.args
            others = args[:k] + args[k + 1:]
            if name == "neg":
                return self.op("broadcast_like", (self.op("neg", (g,)), x))
            (other,) = others
            if nodes[other].shape == ():
                inner = (g, other) if k == 0 else (other, g)
                return self.op("broadcast_like", (self.op(name, inner), x))
            if name in ("mul", "div") and _covers(nodes[other].shape, nodes[x].shape):
                return self.op(name, (g, other) if k == 0 else (other, g))
        return None

    # -- a SymPy expression --------------------------------------------------------------------

    def sympy(self, expr: sp.Basic, env: dict, where: bool = False) -> int:
        """The node of ``expr``; ``env`` maps its symbols (and sub-expressions already
        written) to nodes, and is extended. ``where=True`` writes a Piecewise as nested
        ``where`` (for printing a template), not as one node."""
        memo = env
        stack = [expr]
        while stack:  # iterative post-order: deep models must not hit the recursion limit
            e = stack[-1]
            if e in memo:
                stack.pop()
                continue
            parts = _parts(e, where)
            todo = [p for p in parts if p not in memo]
            if todo:
                stack.extend(reversed(todo))
                continue
            memo[e] = self._convert(e, memo, where)
            stack.pop()
        return memo[expr]

    def _convert(self, e: sp.Basic, memo: dict, where: bool) -> int:
        cls = type(e)
        if cls is sp.Add:
            return self._sum(e, memo)
        if cls is sp.Mul:
            return self._product(e, memo)
        if cls is sp.Pow:
            return self._power(e, memo)
        if e.is_Number or e.is_NumberSymbol or e is sp.I:
            return self._number(e, where)
        if isinstance(e, sp.Piecewise):
            return self._where(e, memo) if where else self._piecewise(e, memo)
        if isinstance(e, sp.Symbol):
            raise AssertionError(f"unknown symbol {e}")
        if cls in REAL_PARTS:
            return memo[REAL_PARTS[cls](e.args[0])] if cls is not sp.im else self.const(0)
        if cls in MATRIX:
            return self._matrix(e, memo)
        if (e is sp.true or e is sp.false) and where:
            return self.graph.add(str(e).lower(), (), (), ())
        record = record_of(e)
        if record is None or record.name in ("input", "const", "copy"):
            raise cannot_compute(e)
        if not record.differentiable and not where:
            raise ModelError(f"{sp.sstr(e)}: a condition is only meaningful inside a Piecewise")
        operands, attrs = record.operands(e)
        return self.op(record.name, tuple(memo[a] for a in operands), attrs)

    def _number(self, e: sp.Basic, where: bool) -> int:
        if e.is_extended_real is False:
            raise _NotReal(e)
        if not e.is_finite:
            raise ModelError(
                f"{e} in a computation: a value is undefined or infinite for every input; "
                "symgrad cannot compute it: rewrite the expression, e.g. with Piecewise"
            )
        return self.const(e)

    def _sum(self, e: sp.Add, memo: dict) -> int:
        terms = sorted(e.args, key=term_kind)  # k*x + b - y, as a person writes it
        plus = [t for t in terms if not _negative(t)]
        minus = [t for t in terms if _negative(t)]
        if plus:
            result = memo[plus[0]]
            for t in plus[1:]:
                result = self.op("add", (result, memo[t]))
        else:
            result = self.op("neg", (memo[_negated(minus[0])],))
            minus = minus[1:]
        for t in minus:
            result = self.op("sub", (result, memo[_negated(t)]))
        return result

    def _product(self, e: sp.Mul, memo: dict) -> int:
        c, above, below = _fraction(e)
        p, q = (sp.Integer(c.p), c.q) if c.is_Rational else (c, 1)
        factors = [memo[f] for f in above]
        if (p != 1 and p != -1) or not factors:
            factors.insert(0, self.const(p))  # (-2*x: the sign goes with the number)
        elif p == -1:
            factors[0] = self.op("neg", (factors[0],))  # -x*y is (-x)*y, as Python reads it
        result = factors[0]
        for f in factors[1:]:
            result = self.op("mul", (result, f))
        divisors = [memo[f] for f in below]
        if q != 1:
            divisors.insert(0, self.const(q))
        if divisors:
            divisor = divisors[0]
            for f in divisors[1:]:
                divisor = self.op("mul", (divisor, f))
            result = self.op("div", (result, divisor))
        return result

    def _power(self, e: sp.Pow, memo: dict) -> int:
        base, exp = e.args
        if exp is S.Half:
            return self.op("sqrt", (memo[base],))
        if exp.is_Number and exp.is_negative:
            positive = _inverse(e)
            return self.op("div", (self.const(1), memo[positive]))
        return self.op("pow", (memo[base], memo[exp] if not exp.is_Number else self.const(exp)))

    def _piecewise(self, e: sp.Piecewise, memo: dict) -> int:
        slots = _slots_of(e)
        put = dict(zip(slots, piecewise_slots(len(slots)), strict=True))
        template = e.xreplace(put)
        args = tuple(memo[s] for s in slots)
        if not isinstance(template, sp.Piecewise):  # (SymPy decided it, over the slots)
            return self.sympy(template, dict(zip(put.values(), args, strict=True)))
        return self.op("piecewise", args, (template,))

    def _matrix(self, e: sp.Basic, memo: dict) -> int:
        """A matrix product (scalar factors times the matrices' product), sum, elementwise
        product, transpose or elementwise function, over the operands' nodes."""
        cls = type(e)
        if cls is ElementwiseApplyFunction:
            x = sp.Dummy("x")
            return self.sympy(e.function(x), {x: memo[e.expr]})
        if cls is sp.Transpose:
            return self.op("transpose", (memo[e.args[0]],), (None,))
        args = [memo[a] for a in e.args]
        if cls is sp.MatMul:
            matrices = [memo[a] for a in e.args if a.is_Matrix]
            result = matrices[0]
            for m in matrices[1:]:
                result = self.op("matmul", (result, m))
            for a in e.args:
                if not a.is_Matrix:
                    result = self.op("mul", (memo[a], result))
            return result
        name = "add" if cls is sp.MatAdd else "mul"
        result = args[0]
        for a in args[1:]:
            result = self.op(name, (result, a))
        return result

    def _where(self, e: sp.Piecewise, memo: dict) -> int:
        def value(v):  # a branch's whole number as a float, so np.where gives floats
            return self.const(sp.Float(v)) if v.is_Integer else memo[v]

        *pairs, last = e.args
        if last.cond == sp.true:
            result = value(last.expr)
        else:
            result = self.graph.add("const", (), (sp.nan,), ())
            pairs.append(last)
        for pair in reversed(pairs):
            result = self.op("where", (memo[pair.cond], value(pair.expr), result))
        return result


#: The most inputs an opaque shape follows: beyond them the node's result has an opaque shape
#: of its own, which the nodes made from it with scalars share (a sum over thousands of
#: separate inputs would otherwise cost a union of them at every term).
_MAX_OPAQUE = 8

#: Operations whose result has the shape of one of their arguments, whatever it is.
_SHAPE_OF_ARGUMENT = frozenset({"sum_to", "broadcast_like", "full_like", "max_vjp", "copy"})


def _covers(a, b) -> bool:
    """Whether shape ``a`` is known to be what ``a`` and ``b`` broadcast to."""
    if same_shape(a, b):
        return True
    if not (known(a) and known(b)) or len(b) > len(a):
        return False
    return all(m == n or m == 1 for m, n in zip(b[::-1], a[::-1], strict=False))


def _lower_sum_to(b: Builder, args, attrs) -> int | None:
    """``sum_to(g, like)`` as the sum it is, where both shapes are known: nothing to sum, or
    ``g.sum(axis=...)`` over the leading axes and the axes ``like`` has as 1."""
    g, like = args
    source, target = b.graph.nodes[g].shape, b.graph.nodes[like].shape
    if same_shape(source, target):
        return g
    if not (known(source) and known(target)):
        return None
    if len(source) < len(target):
        return None
    lead = len(source) - len(target)
    if any(t != 1 and s != t for s, t in zip(source[lead:], target, strict=True)):
        return None  # g must be spread up to the target, not summed: keep the general helper
    ones = tuple(lead + i for i, (s, t) in enumerate(zip(source[lead:], target, strict=True))
                 if t == 1 and s != 1)
    if lead:
        g = b.op("sum", (g,), (tuple(range(lead)) if target else None, False))
        ones = tuple(a - lead for a in ones)
    if ones:
        g = b.op("sum", (g,), (ones, True))
    return g


def _lower_broadcast_like(b: Builder, args, attrs) -> int | None:
    g, x = args
    if same_shape(b.graph.nodes[g].shape, b.graph.nodes[x].shape):
        return g
    inner = b.graph.nodes[g]
    if inner.op == "broadcast_like":  # spread to one shape, then to a larger: to the larger
        return b.op("broadcast_like", (inner.args[0], x))
    value = b.number(g)
    if value is not None:  # a number spread: an array full of it (of floats, as every value)
        return b.op("full_like", (x,), (value,))
    return None


def _lower_full_like(b: Builder, args, attrs) -> int | None:
    if b.graph.nodes[args[0]].shape == ():  # a scalar's: the number itself
        return b.const(sp.Float(attrs[0]))
    return None


def _lower_matmul_vjp(b: Builder, args, attrs) -> int | None:
    g, x, y = args
    sx, sy = b.graph.nodes[x].shape, b.graph.nodes[y].shape
    if not (isinstance(sx, tuple) and isinstance(sy, tuple)) or len(sx) != 2 or len(sy) != 2:
        return None
    if attrs[0] == 0:
        return b.op("matmul", (g, b.op("transpose", (y,), (None,))))
    return b.op("matmul", (b.op("transpose", (x,), (None,)), g))


def _lower_size(b: Builder, args, attrs) -> int | None:
    """A known size as a number; else the size of the operand with the same shape (``t**2``
    has t's: then t**2 need not be kept for its size)."""
    nodes = b.graph.nodes
    x = args[0]
    shape = nodes[x].shape
    if isinstance(shape, tuple) and all(isinstance(n, int) for n in shape):
        return b.const(math.prod(shape))
    if not OPS[nodes[x].op].elementwise:
        return None
    for a in nodes[x].args:  # an input first (it is there all along), then any operand
        if nodes[a].op == "input" and same_shape(nodes[a].shape, shape):
            return b.op("size", (a,))
    for a in nodes[x].args:
        if same_shape(nodes[a].shape, shape):
            return b.op("size", (a,))
    return None


def _lower_expand_dims(b: Builder, args, attrs) -> int | None:
    node = b.graph.nodes[args[0]]
    if node.op == "const":
        return args[0]
    if node.op == "broadcast_like" and b.graph.nodes[node.args[0]].shape == ():
        # a number spread, with an axis more: the number spread to the larger shape
        return b.op("broadcast_like", (node.args[0], b.op("expand_dims", (node.args[1],), attrs)))
    return None


#: Operations the reverse sweep inserts, written more simply once the shapes are known:
#: operation -> ``lower(builder, args, attrs)``, the simpler node or None.
_LOWER = {
    "sum_to": _lower_sum_to,
    "broadcast_like": _lower_broadcast_like,
    "full_like": _lower_full_like,
    "matmul_vjp": _lower_matmul_vjp,
    "size": _lower_size,
    "expand_dims": _lower_expand_dims,
}


class _NotReal(ModelError):
    """An imaginary number: the front end looks for SymPy's real-part notation, then refuses."""

    def __init__(self, e):
        super().__init__(f"symgrad computes with real numbers, not {e}")
        self.number = e


def cannot_compute(e: sp.Basic) -> ModelError:
    """The error for a function no code computes, naming it and listing what is supported."""
    name = type(e).__name__
    return ModelError(
        f"symgrad cannot compute {name} (in {sp.sstr(e)}): NumPy code for it is not known; the "
        f"functions symgrad computes are {SUPPORTED}"
    )


#: Operations whose folds look at an operand's operation, and the operations they look for.
_BINARY = frozenset({"add", "sub", "mul", "div", "neg", "pow"})
_LOOKED_AT = frozenset({"const", "neg", "broadcast_like", "div"})

_REDUCTIONS = frozenset({"sum", "mean", "max", "logsumexp"})

#: The elementwise functions a user writes (not arithmetic): of numbers, they give a number.
_FUNCTIONS = frozenset(
    op.name for op in OPS.values() if op.elementwise and op.differentiable and op.arity != 0
    and (op.sympy or op.show) and op.name not in ("copy", "add", "sub", "mul", "div", "neg", "pow"))

_FOLDABLE = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b if b != 0 else None,
    "neg": lambda a: -a,
}


def _finite_float(value: sp.Basic) -> bool:
    """Whether a number is a finite float (a function of numbers that overflows is left to
    compute, as NumPy computes it: inf)."""
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError, OverflowError):
        return False


def _negative(t: sp.Basic) -> bool:
    """A term written with a minus sign: a negative number, or a product whose coefficient
    is one."""
    if t.is_Number:
        return t.is_negative and t.is_Rational
    return type(t) is sp.Mul and t.args[0].is_Number and t.args[0].is_negative


def _negated(t: sp.Basic) -> sp.Basic:
    """−t for a term ``_negative`` says is negative, built without SymPy's evaluation."""
    if t.is_Number:
        return -t
    c, *rest = t.args
    if c == -1:
        return rest[0] if len(rest) == 1 else sp.Mul._from_args(tuple(rest))
    return sp.Mul._from_args((-c, *rest))


def _fraction(e: sp.Mul):
    """(coefficient, factors above, factors below, as positive powers) of a product."""
    c = S.One
    above, below = [], []
    for f in e.args:
        if f.is_Number:
            c = c * f
        elif type(f) is sp.Pow and f.args[1].is_Number and f.args[1].is_negative:
            below.append(_inverse(f))
        else:
            above.append(f)
    return c, above, below


def _inverse(f: sp.Pow) -> sp.Basic:
    """1/f for a power with a negative exponent: its base, or a power with the exponent
    negated."""
    base, exp = f.args
    if exp == -1:
        return base
    return sp.Pow(base, -exp, evaluate=False)


def _parts(e: sp.Basic, where: bool) -> list:
    """The sub-expressions ``Builder._convert`` reads the nodes of."""
    cls = type(e)
    if cls is sp.Add:
        return [_negated(t) if _negative(t) else t for t in e.args]
    if cls is sp.Mul:
        _, above, below = _fraction(e)
        return above + below
    if cls is sp.Pow:
        base, exp = e.args
        if exp.is_Number and exp.is_negative:
            return [_inverse(e)]
        return [base] if exp.is_Number else [base, exp]
    if not e.args or e.is_Number:
        return []
    if isinstance(e, sp.Piecewise):
        if where:
            return [a for pair in e.args for a in (pair.expr, pair.cond)
                    if not (a is sp.true and pair is e.args[-1])]
        return _slots_of(e)
    if cls in REAL_PARTS:
        return [REAL_PARTS[cls](e.args[0])] if cls is not sp.im else []
    if cls in MATRIX:
        return [e.expr] if cls is ElementwiseApplyFunction else list(e.args)
    if isinstance(e, sp.MatrixExpr):
        raise ModelError(
            f"symgrad cannot compute {cls.__name__} (in {e}); write it with matmul, transpose, "
            "sum and elementwise operations"
        )
    if isinstance(e, sp.Symbol):
        return []
    record = record_of(e)
    if record is None:
        raise cannot_compute(e)
    return list(record.operands(e)[0])


def _slots_of(e: sp.Piecewise) -> list:
    """A Piecewise's operands: the symbols in it and the operations in it that are not
    elementwise (a reduction, matmul: computed whole, as nodes of their own), in order of
    first appearance."""
    found: dict = {}
    stack = [e]
    while stack:
        a = stack.pop()
        if isinstance(a, sp.Symbol | sp.MatrixSymbol):
            found.setdefault(a, None)
            continue
        if not a.args or a.is_number:
            continue
        record = record_of(a)
        if (record is not None and not record.elementwise) or isinstance(a, sp.MatrixExpr):
            found.setdefault(a, None)
            continue
        stack.extend(reversed(a.args))
    return sorted(found, key=sp.default_sort_key)


#: Every value is real, so these are their operand or 0 (SymPy writes |exp(u)| as exp(re(u))
#: for a symbol not declared real).
REAL_PARTS: dict[type, Callable] = {
    sp.re: lambda u: u,
    sp.im: lambda u: S.Zero,
    sp.conjugate: lambda u: u,
}


#: SymPy's matrix expressions, written as the same operations on arrays (``Builder._matrix``).
MATRIX = frozenset({sp.MatMul, sp.MatAdd, sp.HadamardProduct, sp.Transpose,
                    ElementwiseApplyFunction})
