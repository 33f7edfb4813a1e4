"""The comment of a backward line: the local factor it applies, as a person writes it.

``dL1 = dσ*σ*_sigmoid_complement(L1)  # ∂σ/∂L1 = σ*(1 - σ)``: for each adjoint that flows into
the line, the factor it is multiplied by, written as SymPy writes it over the code's names (an
operation that is not a product, such as a matrix product, is shown whole:
``∂L2/∂H: dL2 @ W2ᵀ``). At an input, the sum over the axes it was broadcast along is said in
words.
"""

from __future__ import annotations

import sympy as sp

from ..expressions import N, WrittenOrderPrinter, as_taught, tree_size
from ..ir import ADJOINT, INPUT, PARAMETER, TEMP
from ..ops import OPS, size


def factor_comment(emitter, i: int) -> str:
    graph = emitter.graph
    nodes, info = graph.nodes, graph.info
    v = info[i].of
    inputs = emitter.input_set
    materialized = emitter.materialized

    def visible(a: int) -> bool:
        return a in materialized or a in inputs or a == i

    def inlined(a: int) -> bool:
        return not visible(a) and nodes[a].op != "const"

    def written_here(a: int) -> bool:
        return a == i or inlined(a)

    root = nodes[i].args[0] if nodes[i].op == "copy" else i
    at_input = info[v].role in (INPUT, PARAMETER)
    parts = []
    v_name = emitter.name(v)
    out_name = emitter.name(graph.output)
    for sign, term in _terms(graph, root, written_here):
        tail = ""
        while at_input and nodes[term].op in ("sum_to", "sum") and written_here(term):
            term, tail = nodes[term].args[0], ", summed over the broadcast axes"
        factors = _flatten(graph, term, "mul", written_here) if written_here(term) else [term]
        sources = [f for f in factors if info[f].role == ADJOINT and not inlined(f) and f != i]
        if len(sources) == 1:
            s = sources[0]
            rest = [f for f in factors if f != s]
            owner = emitter.name(info[s].of) if info[s].of is not None else "?"
            text = _show(emitter, rest, inlined, i, sign)
            parts.append(f"∂{owner}/∂{v_name} = {text}{tail}")
            continue
        inner = _adjoints_in(graph, term, inlined)
        text = _show(emitter, [term], inlined, i, sign)
        if inner:
            owner = emitter.name(info[inner[0]].of) if info[inner[0]].of is not None else "?"
            parts.append(f"∂{owner}/∂{v_name}: {text}{tail}")
        else:
            parts.append(f"∂{out_name}/∂{v_name} = {text}{tail}")
    return "; ".join(parts)


def _terms(graph, i: int, written_here) -> list[tuple[int, int]]:
    """The terms of a sum written on one line, with their signs: ``a - b`` is (+a, -b)."""
    node = graph.nodes[i]
    if not written_here(i) or node.op not in ("add", "sub", "neg"):
        return [(1, i)]
    if node.op == "neg":
        return [(-s, t) for s, t in _terms(graph, node.args[0], written_here)]
    a, b = node.args
    right = _terms(graph, b, written_here)
    if node.op == "sub":
        right = [(-s, t) for s, t in right]
    return _terms(graph, a, written_here) + right


def _flatten(graph, i: int, op: str, written_here) -> list[int]:
    """The factors of a product written on one line."""
    node = graph.nodes[i]
    if node.op != op or not written_here(i):
        return [i]
    return [f for a in node.args for f in _flatten(graph, a, op, written_here)]


def _adjoints_in(graph, i: int, inlined) -> list[int]:
    found, stack = [], [i]
    while stack:
        a = stack.pop()
        if graph.info[a].role == ADJOINT and a != i and not inlined(a):
            found.append(a)
        elif a == i or inlined(a):
            stack.extend(graph.nodes[a].args)
    return found


def _show(emitter, factors: list[int], inlined, line: int, sign: int = 1) -> str:
    """The product of ``factors`` (negated if ``sign`` is negative; 1 if there are none) as
    explain writes a factor: the model's own temporaries spelled out while short
    (``2·(L2 − y)/N``, not ``2*t1/size(t1)``), N for the number of elements a mean averages
    over."""
    graph = emitter.graph
    nodes, info = graph.nodes, graph.info
    memo: dict[int, sp.Basic] = {}

    def view(a: int) -> sp.Basic:
        if a in memo:
            return memo[a]
        node = nodes[a]
        if node.op == "const":
            result = node.attrs[0]
        elif (inlined(a) or a == line) and node.op == "mul":  # (not spread over a sum)
            result = sp.Mul(*(view(b) for b in node.args), evaluate=False)
        elif inlined(a) or a == line:
            result = OPS[node.op].sympy_of(tuple(view(b) for b in node.args), node.attrs)
        else:
            result = sp.Symbol(emitter.name(a), real=True)
            if a < graph.forward and info[a].role == TEMP and node.op != "input":
                whole = OPS[node.op].sympy_of(tuple(view(b) for b in node.args), node.attrs)
                if tree_size(whole) <= _SPELLED_OUT:
                    result = whole
        memo[a] = result
        return result

    parts = [view(f) for f in factors]
    while any(p.is_Mul for p in parts):
        parts = [a for p in parts for a in (p.args if p.is_Mul else (p,))]
    sizes = set().union(*(p.atoms(size) for p in parts))
    if len(sizes) == 1:
        n = {sizes.pop(): N}
        parts = [p.xreplace(n) for p in parts]
    # the numbers (and the sign) in front, the rest as it is: 200·(x7 − x6²), not SymPy's
    # 200·x7 − 200·x6², which spreads a number over a sum
    number = sp.Mul(sign, *(p for p in parts if p.is_Number))
    rest = [p for p in parts if not p.is_Number]
    expr = sp.Mul(number, *rest, evaluate=False) if rest and number != 1 else (
        sp.Mul(*rest, evaluate=False) if len(rest) > 1 else rest[0] if rest else number)
    return as_taught(_CommentPrinter({"order": "none"}).doprint(expr))


#: The largest temporary (as a tree of operations) a comment spells out rather than names.
_SPELLED_OUT = 12

class _CommentPrinter(WrittenOrderPrinter):
    """Comments read like the math: ``A @ B``, ``Wᵀ``, ``sum(g)``."""

    def _print_matmul(self, expr):
        a, b = (self.parenthesize(x, 50) for x in expr.args)
        return f"{a} @ {b}"

    def _print(self, expr, **kwargs):
        from ..functions import transpose

        if isinstance(expr, transpose) and len(expr.args) == 1:  # (before its own _sympystr)
            return self.parenthesize(expr.args[0], 1000, strict=True) + "ᵀ"
        return super()._print(expr, **kwargs)

    def _print_sum_to(self, expr):
        return self._print(expr.args[0])

    _print_broadcast_like = _print_sum_to

    def parenthesize(self, item, level, strict=False):
        from ..functions import matmul

        if isinstance(item, matmul):
            return f"({self._print(item)})"
        return super().parenthesize(item, level, strict)
