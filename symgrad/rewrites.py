"""Stability rewrites: formulas a person writes by hand that lose precision or overflow in
floating point, replaced by their stable equivalents, as a table of patterns.

``log(1 - sigmoid(x))`` is −inf once σ(x) rounds to 1 (x > 37) and ``log(1 + exp(x))`` inf
once exp overflows (x > 709); the same functions written as ``-softplus(x)`` and
``softplus(x)`` are exact at every x. Each pattern is applied as a node is added to the IR
(``Builder.op``), so what a rewrite builds is itself looked at again, and the rules' own
derivatives are rewritten too: ``log(1/(1 + exp(-x)))`` becomes ``log(sigmoid(x))``, then
``-softplus(-x)``.

A pattern is ``(operation, operand patterns...)``; ``X`` and ``Y`` match any node (the same
node wherever a pattern repeats one), a number matches that number only; sums and products
match their operands in either order. The nodes a pattern matched stay in the IR, unread (it
only grows); ``ir.Graph.pruned`` drops them, and the generated code never computes them.

>>> import sympy as sp
>>> from symgrad.frontend import build
>>> print(build(sp.log(1 + sp.exp(sp.Symbol("x")))).pruned())
%0 = input  # x (parameter)
%1 = softplus %0  # f
"""

from __future__ import annotations

X, Y = "X", "Y"

#: (pattern, replacement): the stable form of each formula.
PATTERNS: list[tuple[tuple, tuple]] = [
    # log of a sigmoid, and of its complement
    (("log", ("sigmoid", X)), ("neg", ("softplus", ("neg", X)))),
    (("log", ("sub", 1, ("sigmoid", X))), ("neg", ("softplus", X))),
    (("log1p", ("neg", ("sigmoid", X))), ("neg", ("softplus", X))),
    # softplus written out
    (("log", ("add", 1, ("exp", X))), ("softplus", X)),
    (("log1p", ("exp", X)), ("softplus", X)),
    # sigmoid written out
    (("div", ("exp", X), ("add", 1, ("exp", X))), ("sigmoid", X)),
    (("div", 1, ("add", 1, ("exp", ("neg", X)))), ("sigmoid", X)),
    (("div", 1, ("add", 1, ("exp", X))), ("sigmoid", ("neg", X))),
    # log of a sum of exponentials
    (("log", ("sum", ("exp", X))), ("logsumexp", X)),
    (("log", ("add", ("exp", X), ("exp", Y))), ("logaddexp", X, Y)),
    (("log", ("softmax", X)), ("log_softmax", X)),
]

#: Operations whose operands may come in either order.
COMMUTATIVE = frozenset({"add", "mul"})

#: Operation -> the patterns whose outer operation it is.
BY_OP: dict[str, list[tuple[tuple, tuple]]] = {}
for _pattern, _replacement in PATTERNS:
    BY_OP.setdefault(_pattern[0], []).append((_pattern, _replacement))


def _log_of_exponentials(builder, args: tuple[int, ...]) -> int | None:
    """log(exp(a) + exp(b) + exp(c) + ...), a sum of three or more exponentials, as
    logaddexp(logaddexp(a, b), c) ...: exact where each exponential overflows."""
    nodes = builder.graph.nodes
    terms, stack = [], [args[0]]
    while stack:
        i = stack.pop()
        node = nodes[i]
        if node.op == "add":
            stack.extend(reversed(node.args))
        elif node.op == "exp":
            terms.append(node.args[0])
        else:
            return None
    if len(terms) < 3:
        return None  # (two: the pattern of the table)
    result = builder.op("logaddexp", (terms[0], terms[1]))
    for t in terms[2:]:
        result = builder.op("logaddexp", (result, t))
    return result


#: Rewrites that no one pattern says: operation -> ``rule(builder, args)``.
RULES = {"log": _log_of_exponentials}


def rewrite(builder, op: str, args: tuple[int, ...], attrs: tuple) -> int | None:
    """The node of the stable form of ``op(args; attrs)``, if a pattern matches; else None.

    Attributes (a reduction's axes) go from the matched operation to the one that replaces it:
    ``log(sum(exp(x), axis=1))`` is ``logsumexp(x, axis=1)``.
    """
    rule = RULES.get(op)
    if rule is not None:
        found = rule(builder, args)
        if found is not None:
            return found
    for pattern, replacement in BY_OP.get(op, ()):
        bound: dict[str, int] = {}
        carried: list[tuple] = []
        if all(_match(builder, p, a, bound, carried) for p, a in zip(pattern[1:], args,
                                                                      strict=False)):
            if len(pattern) - 1 == len(args):
                return _build(builder, replacement, bound, carried[0] if carried else ())
    return None


def _match(builder, pattern, i: int, bound: dict, carried: list) -> bool:
    if isinstance(pattern, str):
        if pattern in bound:
            return bound[pattern] == i
        bound[pattern] = i
        return True
    node = builder.graph.nodes[i]
    if isinstance(pattern, int | float):
        return node.op == "const" and node.attrs[0] == pattern
    op, *operands = pattern
    if node.op != op or len(node.args) != len(operands):
        return False
    if node.attrs and op != "const":
        carried.append(node.attrs)
    orders = [node.args]
    if op in COMMUTATIVE:
        orders.append(node.args[::-1])
    for order in orders:
        trial, trial_carried = dict(bound), list(carried)
        if all(_match(builder, p, a, trial, trial_carried) for p, a in zip(operands, order,
                                                                            strict=True)):
            bound.clear()
            bound.update(trial)
            carried[:] = trial_carried
            return True
    return False


def _build(builder, replacement, bound: dict, attrs: tuple) -> int:
    if isinstance(replacement, str):
        return bound[replacement]
    op, *operands = replacement
    args = tuple(_build(builder, r, bound, attrs) for r in operands)
    from .ops import OPS

    record = OPS[op]
    own = attrs if record.read is not None or not record.elementwise else ()
    return builder.op(op, args, own)
