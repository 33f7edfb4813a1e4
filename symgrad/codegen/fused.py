'''The IR -> the source of a module for the Numba backend: the elementwise work of the forward
and backward passes fused into loops that read each element once.

Every node is one of three kinds:

- a number: computed once (a parameter, ``2/N``, what a sum gives);
- an element: computed for each element of the arrays the loops run over (``L1 = k1*x[i] + b1``);
- a sum over every element (``mean``, ``sum``, a gradient summed back to a number): each
  element's part is kept, and the block's parts are added at the end of the loop.

The inputs that are differentiated and whose shapes are not declared are numbers, the others
arrays of one shape (declared shapes say which is which). A loop is one *pass* over the
elements; a node that needs a sum finished by a pass is computed in a later pass. The passes
run in blocks of ``_BLOCK`` elements shared among Numba's threads (``_in_blocks``), and each
block's sums are added in the blocks' order, so the results are the same for any number of
threads. An element
that a later pass, or the caller, reads is stored in an array (``L1[i] = ...``); the others
live in registers. A model with an operation that is not elementwise (a matrix product, a
reduction along an axis) is not fused: its module is the NumPy code (``NOT_FUSED`` says why).

The module's ``forward`` and ``value_and_grad`` convert the inputs and check their shapes, then
call ``_forward`` and ``_value_and_grad``: a compiled function for a model of numbers, else a
Python one that runs each pass's compiled kernel over the blocks.
'''

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from ..errors import ModelError
from ..ir import Graph
from ..layout import layout
from ..ops import ATOM, OPS
from . import numba_backend
from .emit import INDENT, _Emitter, _for_value, _header, _wrapped, emit

#: Elements per block: each block's sums are added in the blocks' order.
BLOCK = 4096
#: The most lines one loop holds: Numba's compile time grows faster than a loop, and longer
#: loops ran no faster than the NumPy code (docs/benchmarks.md), so their model is not fused.
MAX_LOOP_LINES = 30
#: The most lines of numbers one compiled function holds, for the same reason.
MAX_NUMBER_LINES = 600
#: The first line of a numba backend's module that is the NumPy code.
NOT_FUSED = "not fused, so this is the NumPy code"

NUMBER, ELEMENT, SUM = "number", "element", "sum"


@dataclass
class _Kinds:
    """Each node's kind, its pass (an element's: the loop that computes it, from 1) or the
    passes it waits for (a number's), and why the model cannot be fused, if it cannot."""

    kind: dict[int, str] = field(default_factory=dict)
    passes: dict[int, int] = field(default_factory=dict)
    arrays: list[int] = field(default_factory=list)  # the inputs read element by element
    why_not: str | None = None


def arrays_of(graph: Graph) -> list[int]:
    """The inputs the loops run over: data, and parameters declared not to be scalars."""
    wrt = set(graph.wrt)
    return [i for i in graph.inputs
            if graph.nodes[i].shape != () and (isinstance(graph.nodes[i].shape, tuple)
                                               or i not in wrt)]


def kinds(graph: Graph, needed: set[int]) -> _Kinds:
    """The kind and pass of every node in ``needed`` (see the module docstring)."""
    nodes, found = graph.nodes, _Kinds()
    kind, passes = found.kind, found.passes
    found.arrays = arrays_of(graph)
    for i in found.arrays:
        kind[i], passes[i] = ELEMENT, 0
    for i, node in enumerate(nodes):
        if i not in needed or i in kind:
            continue
        name, args = node.op, node.args
        if node.op == "input":
            kind[i], passes[i] = NUMBER, 0
            continue
        if name not in numba_backend.FUSED and name not in numba_backend.REDUCING:
            found.why_not = (f"{name} has no form in the loops (SciPy's functions, helpers "
                             "written for arrays)" if OPS[name].elementwise
                             else f"{name} is not elementwise")
            return found
        if name in ("sum", "mean") and node.attrs != (None, False):
            found.why_not = f"{name} along an axis is not elementwise"
            return found
        if name == "size":
            kind[i], passes[i] = NUMBER, 0
            continue
        element = any(kind[a] == ELEMENT for a in args)
        if name in ("sum", "mean") or (name == "sum_to" and kind[args[1]] != ELEMENT):
            if kind[args[0]] == ELEMENT:  # (a sum of every element: ready after that pass)
                kind[i], passes[i] = SUM, max(1, passes[args[0]])
                continue
            element = False
        waits = max((passes[a] for a in args if kind[a] != ELEMENT), default=0)
        if element:
            kind[i] = ELEMENT
            passes[i] = max(1, waits + 1, *(passes[a] for a in args if kind[a] == ELEMENT))
        else:
            kind[i], passes[i] = NUMBER, waits
    declared = {nodes[i].shape for i in found.arrays if isinstance(nodes[i].shape, tuple)}
    if len(declared) > 1:
        found.why_not = "its arrays are declared of different shapes"
    return found


def emit_fused(graph: Graph, comments: bool = True, keyword_only: bool = True,
               convert: bool = True, dtype: str | None = None) -> str:
    """The module source for a differentiated graph: fused, or the NumPy code with a first line
    that says why not."""
    roots = [graph.output, *(d for _, d in graph.grads)]
    needed = _needed(graph, roots)
    found = kinds(graph, needed)
    if found.why_not is None:
        try:
            return _Fused(graph, found, comments, needed).module(keyword_only, convert,
                                                               dtype)
        except ModelError as e:  # (an operation inside a Piecewise that the loop cannot write)
            found.why_not = str(e).split(" cannot ")[0] + " is not fused"
        except _TooLong as e:
            found.why_not = str(e)
    source = emit(graph, comments, keyword_only, convert, dtype)
    return f"# {NOT_FUSED}: {found.why_not}\n{source}"


class _TooLong(Exception):
    """A model too long for Numba to compile in good time."""


def _stored(graph: Graph, found: _Kinds, plan, needed: set[int]) -> set[int]:
    """The elements kept in arrays the size of the data: those returned, and those read by
    another pass or by a number."""
    kind, passes, nodes = found.kind, found.passes, graph.nodes
    reader: dict[int, int] = {}  # an inlined node -> the node that reads it
    for j in needed:
        for a in nodes[j].args:
            if a in plan.inlined:
                reader[a] = j

    def line_of(j: int) -> int:
        while j in plan.inlined:
            j = reader[j]
        return j

    stored = {r for r in plan.roots if kind.get(r) == ELEMENT}
    for j in needed:
        line = line_of(j)
        for a in nodes[j].args:
            if (kind.get(a) == ELEMENT and a not in plan.inlined
                    and (kind[line] == NUMBER or passes[line] != passes[a])):
                stored.add(a)
    return stored - set(found.arrays)


def _needed(graph: Graph, roots: list[int]) -> set[int]:
    needed, stack = set(), list(roots)
    while stack:
        i = stack.pop()
        if i not in needed:
            needed.add(i)
            stack.extend(graph.nodes[i].args)
    return needed


class _Fused:
    def __init__(self, graph: Graph, found: _Kinds, comments: bool, needed: set[int]):
        self.graph, self.found = graph, found
        kind = found.kind
        plan = layout(graph, keep={i for i, k in kind.items() if k == SUM})
        numbers = sum(kind.get(i) == NUMBER for i in plan.order)
        if numbers > MAX_NUMBER_LINES:
            raise _TooLong(f"{numbers} lines of numbers, more than Numba compiles in good time "
                           f"({MAX_NUMBER_LINES}); give repeated terms as arrays")
        self.stored = _stored(graph, found, plan, needed)
        longest = max(Counter(found.passes[i] for i in plan.order
                              if kind.get(i) in (ELEMENT, SUM)).values(), default=0)
        if longest > MAX_LOOP_LINES:
            raise _TooLong(f"a loop of {longest} lines, longer than Numba compiles in good time "
                           f"({MAX_LOOP_LINES})")
        self.names = dict(plan.names)  # (before the arrays' are made element reads)
        namer = plan.namer
        self.i, self.n, self.lo, self.hi = (namer.fresh(s) for s in ("i", "N", "lo", "hi"))
        self.m, self.sums = namer.fresh("m"), namer.fresh("sums")
        self.total, self.parts = namer.fresh("total"), namer.fresh("parts")
        for i in (*found.arrays, *self.stored):
            plan.names[i] = f"{plan.name(i)}[{self.i}]"
        self.emitter = _Emitter(graph, comments, numba_backend, plan=plan,
                                overrides=self._code)
        for i in self.emitter.texts:
            self.names.setdefault(i, plan.names[i])
        for i in self.stored:
            self.names[i] = plan.names[i][: -len(f"[{self.i}]")]

    def _code(self, node, args):
        """The code of the nodes whose spelling depends on their kind: a sum's is its operand's
        (each element's part), ``size`` the number of elements the loops run over."""
        if node.op == "size":
            return (self.n if self.found.kind.get(node.args[0]) == ELEMENT else "1"), ATOM
        if node.op in ("sum", "mean", "sum_to", "copy"):
            return args[0]
        return None

    # -- the module ----------------------------------------------------------------------------

    def module(self, keyword_only: bool, convert: bool, dtype: str | None) -> str:
        graph, emitter = self.graph, self.emitter
        lines = emitter.lines
        value_lines = _for_value(lines, graph)
        out = self.names[graph.output]
        inputs = [self.names[i] for i in graph.inputs]
        signature = ", ".join(inputs)
        arrays = [self.names[i] for i in self.found.arrays]
        numbers = [self.names[i] for i in graph.inputs if i not in self.found.arrays]
        parts = [_header(graph, {i: self.names[i] for i in graph.inputs} | {
            i: self.names[i] for i in self.names if graph.info[i].role == "named"})]
        parts += [
            "# Fused by symgrad's numba backend: "
            + (f"{', '.join(arrays)} are arrays of one shape, read element by element; "
               if arrays else "every input is a number; ")
            + (f"{', '.join(numbers)} are numbers." if numbers and arrays else
               "one compiled function, no arrays." if not arrays else "no input is a number."),
            "<imports>",
            "",
            f"_BLOCK = {BLOCK}  # elements per block; the blocks' sums are added in order",
            f"_ARRAYS = {tuple(arrays)!r}  # the inputs read element by element",
        ]
        kernels: list[str] = []
        drivers = []
        for function, chosen, doc in (
            ("forward", value_lines, f"{out} for the inputs {signature}."),
            ("value_and_grad", lines,
             f"{out} and its gradient with respect to "
             f"{', '.join(self.names[p] for p in graph.wrt) or 'nothing'}."),
        ):
            roots = [graph.output] + ([d for _, d in graph.grads]
                                      if function == "value_and_grad" else [])
            driver, passes = self._driver(function, chosen, roots)
            kernels += passes
            drivers.append(driver)
            parts += ["", "", *self._wrapper(function, doc, roots, keyword_only, convert,
                                             dtype, arrays, numbers)]
        helpers = set(emitter.helpers) | {"_floats", "_in"}
        if any("_pass" in k for k in kernels):
            helpers |= {"_sum", "_in_blocks"}
        helpers.add("_fused_shape")
        for name in list(helpers):
            helpers.update(numba_backend.NEEDS.get(name, ()))
        for text in (*drivers, *kernels):
            parts += ["", "", text]
        at = parts.index("<imports>")
        parts[at:at + 1] = [line for key, line in numba_backend.IMPORTS.items()
                            if key is None or key in emitter.extras]
        from . import numpy_backend

        for name in sorted(helpers):
            text = numba_backend.HELPERS.get(name) or numpy_backend.HELPERS[name]
            parts += ["", "", text.rstrip("\n")]
        return "\n".join(parts) + "\n"

    def _wrapper(self, function, doc, roots, keyword_only, convert, dtype, arrays, numbers):
        """The Python function the user calls: inputs converted and checked, the compiled
        function called, the gradients in a dict."""
        graph, names = self.graph, self.names
        inputs = [names[i] for i in graph.inputs]
        params = ", ".join(inputs)
        signature = f"*, {params}" if params and keyword_only else params
        lines = [f"def {function}({signature}):", INDENT + f'"""{doc}"""']
        if inputs and convert:
            option = f", dtype=np.{dtype}" if dtype else ""
            lines.append(INDENT + f"{params}{',' if len(inputs) == 1 else ''} = "
                         f"_floats({params}{option})")
        call = f"_{function}({params})"
        shaped = any(self.found.kind.get(r) == ELEMENT for r in roots)
        lines.append(INDENT + ("shape = " if shaped else "") + "_fused_shape(" + _wrapped(
            "{", [f"{a!r}: {a}" for a in arrays], "}") + ", " + _wrapped(
            "{", [f"{n!r}: {n}" for n in numbers], "}") + ")")
        if arrays:
            call = "_{}({})".format(function, ", ".join(
                f"{n}.reshape(-1)" if n in arrays else n for n in inputs))
        results = [names[r] for r in dict.fromkeys(roots)]
        lines.append(INDENT + f"dtype = np.result_type({params})  # (of what is returned)")
        lines.append(INDENT + f"{', '.join(results)} = _in(dtype, {call})")
        if arrays:
            for r in dict.fromkeys(roots):
                if self.found.kind.get(r) == ELEMENT:
                    lines.append(INDENT + f"{names[r]} = {names[r]}.reshape(shape)")
        out = names[graph.output]
        if function == "forward":
            lines.append(INDENT + f"return {out}")
        else:
            if self.found.kind.get(graph.output) == ELEMENT:
                lines.append(INDENT + 'raise ValueError(f"value_and_grad needs a scalar output, '
                             f'not one of shape {{np.shape({out})}}")')
            else:
                lines.append(INDENT + _wrapped(f"return {out}, {{", [
                    f"{graph.info[p].label!r}: {names[d]}" for p, d in graph.grads], "}"))
        return lines

    def _driver(self, function: str, lines, roots: list[int]) -> tuple[str, list[str]]:
        """``_forward`` or ``_value_and_grad``: the numbers computed once and, per pass, its kernel
        run over the blocks (in Python, which starts the threads; a model of numbers is one
        compiled function); and the kernels' sources."""
        graph, kind, passes = self.graph, self.found.kind, self.found.passes
        names = self.names
        by_node = {line.node: line for line in lines}
        order = [line.node for line in lines]
        stored = [i for i in order if i in self.stored]
        elements = [i for i in order if kind[i] in (ELEMENT, SUM)]
        count = max((passes[i] for i in elements), default=0)
        params = [names[i] for i in graph.inputs]
        body = []
        arrays = [names[i] for i in self.found.arrays]
        if count:
            body.append(f"{self.n} = {arrays[0]}.size  # the elements the loops run over")
        for i in stored:
            body.append(f"{names[i]} = np.empty({self.n})")
        kernels = []
        for p in range(count + 1):
            body += [by_node[i].code for i in order
                     if kind[i] == NUMBER and passes[i] == p]
            if p == count:
                break
            here = [i for i in order if kind[i] in (ELEMENT, SUM) and passes[i] == p + 1]
            kernel, call, summed = self._kernel(function, p + 1, [by_node[i] for i in here])
            kernels.append(kernel)
            body.append(f"{self.total} = {call}" if summed else call)
            if summed:
                for k, i in enumerate(summed):
                    mean = graph.nodes[i].op == "mean"
                    body.append(f"{names[i]} = {self.total}[{k}]" + (f" / {self.n}" if mean
                                                                     else ""))
        results = [names[r] for r in dict.fromkeys(roots)]
        if count:
            self.emitter.extras.add("threads")
        text = "\n".join([
            *([] if count else [f"@numba.njit({numba_backend.JIT})"]),
            f"def _{function}({', '.join(params)}):",
            *(INDENT + line for b in body for line in b.split("\n")),
            INDENT + f"return {', '.join(results)}",
        ])
        return text, kernels

    def _kernel(self, function: str, p: int, lines):
        """One pass's loop over one block: the kernel's source, its call in the driver, and
        the sums it fills (in order)."""
        kind, names, emitter, stored = self.found.kind, self.names, self.emitter, self.stored
        reads: dict[int, None] = {}
        for line in lines:
            for s in sorted(line.reads):
                reads.setdefault(s)
        numbers = [s for s in reads if kind.get(s) in (NUMBER, SUM)]
        arrays = [s for s in reads if kind.get(s) == ELEMENT and (
            s in self.found.arrays or s in stored)]
        arrays += [line.node for line in lines if line.node in stored and line.node not in arrays]
        summed = [line.node for line in lines if kind[line.node] == SUM]
        uses_n = any(re.search(rf"(?<![\w.]){self.n}(?!\w)", emitter.texts[line.node])
                     for line in lines)
        params = [self.lo, self.hi, self.sums, *(names[s] for s in numbers),
                  *([self.n] if uses_n else []), *(names[s] for s in arrays)]
        name = f"_{function}_pass{p}"
        parts = self.parts
        parts_of = {i: f"{parts}[{k}, {self.i}]" for k, i in enumerate(summed)}
        body = [f"{self.m} = {self.hi} - {self.lo}",
                *(f"{names[s]} = {names[s]}[{self.lo}:{self.hi}]" for s in arrays),
                *([f"{parts} = np.empty(({len(summed)}, _BLOCK))  # each element's part of "
                   + ", ".join(names[i] for i in summed)] if summed else []),
                f"for {self.i} in range({self.m}):"]
        for line in lines:
            i = line.node
            text, comment = emitter.texts[i], emitter.comment_of(i)
            target = parts_of[i] if kind[i] == SUM else emitter.plan.names[i]
            comment = comment or (names[i] if kind[i] == SUM else "")
            body.append(INDENT + f"{target} = {text}" + (f"  # {comment}" if comment else ""))
        for k in range(len(summed)):
            body.append(f"{self.sums}[{k}] = _sum({parts}[{k}, :{self.m}])")
        what = ", ".join(names[i] for i in summed)
        doc = (f'"""Pass {p} over the elements {self.lo} to {self.hi}'
               + (f": their parts of {what}, in sums." if what else ".") + '"""')
        text = "\n".join([f"@numba.njit({numba_backend.JIT}, nogil=True)",
                          f"def {name}({', '.join(params)}):", INDENT + doc,
                          *(INDENT + b for b in body)])
        args = [*(names[s] for s in numbers), *([self.n] if uses_n else []),
                *(names[s] for s in arrays)]
        tuple_ = f"({', '.join(args)}{',' if len(args) == 1 else ''})"
        return text, f"_in_blocks({name}, {self.n}, {len(summed)}, {tuple_})", summed
