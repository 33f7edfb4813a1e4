"""The comment of a backward line: the local factor it applies, as a person writes it.

``dL1 = dσ*σ*_sigmoid_complement(L1)  # ∂σ/∂L1 = σ*(1 - σ)``: for each adjoint that flows into
the line, the factor it is multiplied by, written as SymPy writes it over the code's names (an
operation that is not a product, such as a matrix product, is shown whole:
``∂L2/∂H: dL2 @ W2ᵀ``). At an input, the sum over the axes it was broadcast along is said in
words.
"""

from __future__ import annotations

import sympy as sp
from sympy.printing.str import StrPrinter

from ..ir import ADJOINT, INPUT, PARAMETER
from ..ops import OPS


def factor_comment(emitter, i: int) -> str:
    graph = emitter.graph
    nodes, info = graph.nodes, graph.info
    v = info[i].of
    visible = emitter.materialized | set(graph.inputs) | {i}

    def inlined(a: int) -> bool:
        return a not in visible and nodes[a].op != "const" and a != i

    root, tail = i, ""
    if nodes[root].op == "copy":
        root = nodes[root].args[0]
    if info[v].role in (INPUT, PARAMETER):
        while nodes[root].op in ("sum_to", "sum") and (root == i or inlined(root)):
            root, tail = nodes[root].args[0], ", summed over the broadcast axes"
    expand = root == i or inlined(root)  # (else the line renames, or sums, another node)
    terms = _flatten(graph, root, "add", inlined, top=True) if expand else [root]
    parts = []
    v_name = emitter.name(v)
    out_name = emitter.name(graph.output)
    for term in terms:
        top = term == i or inlined(term)
        factors = _flatten(graph, term, "mul", inlined, top=top)
        sources = [f for f in factors if info[f].role == ADJOINT and not inlined(f) and f != i]
        if len(sources) == 1:
            s = sources[0]
            rest = [f for f in factors if f != s]
            owner = emitter.name(info[s].of) if info[s].of is not None else "?"
            if not rest:
                parts.append(f"∂{owner}/∂{v_name} = 1{tail}")
            else:
                text = _show(emitter, rest, inlined, i)
                parts.append(f"∂{owner}/∂{v_name} = {text}{tail}")
            continue
        inner = _adjoints_in(graph, term, inlined)
        text = _show(emitter, [term], inlined, i)
        if inner:
            owner = emitter.name(info[inner[0]].of) if info[inner[0]].of is not None else "?"
            parts.append(f"∂{owner}/∂{v_name}: {text}{tail}")
        else:
            parts.append(f"∂{out_name}/∂{v_name} = {text}{tail}")
    return "; ".join(parts)


def _flatten(graph, i: int, op: str, inlined, top: bool) -> list[int]:
    """The operands of a chain of ``op`` (add or mul) nodes written on one line."""
    node = graph.nodes[i]
    if node.op != op or not (top or inlined(i)):
        return [i]
    result = []
    for a in node.args:
        result += _flatten(graph, a, op, inlined, top=False)
    return result


def _adjoints_in(graph, i: int, inlined) -> list[int]:
    found, stack = [], [i]
    while stack:
        a = stack.pop()
        if graph.info[a].role == ADJOINT and a != i and not inlined(a):
            found.append(a)
        elif a == i or inlined(a):
            stack.extend(graph.nodes[a].args)
    return found


def _show(emitter, factors: list[int], inlined, line: int) -> str:
    graph = emitter.graph
    memo: dict[int, sp.Basic] = {}

    def view(a: int) -> sp.Basic:
        if a in memo:
            return memo[a]
        node = graph.nodes[a]
        if node.op == "const":
            result = node.attrs[0]
        elif inlined(a) or a == line:
            args = tuple(view(b) for b in node.args)
            result = OPS[node.op].sympy_of(args, node.attrs)
        else:
            result = sp.Symbol(emitter.name(a), real=True)
        memo[a] = result
        return result

    expr = sp.Mul(*(view(f) for f in factors))
    return _CommentPrinter({"order": "none"}).doprint(expr)


class _CommentPrinter(StrPrinter):
    """Comments read like the math: ``A @ B``, ``Wᵀ``, ``sum(g)``."""

    def _print_matmul(self, expr):
        a, b = (self.parenthesize(x, 50) for x in expr.args)
        return f"{a} @ {b}"

    def _print_transpose(self, expr):
        if len(expr.args) > 1:
            return StrPrinter._print_Function(self, expr)
        return self.parenthesize(expr.args[0], 1000, strict=True) + "ᵀ"

    def _print_sum_to(self, expr):
        return self._print(expr.args[0])

    _print_broadcast_like = _print_sum_to

    def parenthesize(self, item, level, strict=False):
        from ..functions import matmul

        if isinstance(item, matmul):
            return f"({self._print(item)})"
        return super().parenthesize(item, level, strict)
