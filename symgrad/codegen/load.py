"""Generated source -> callable functions, each compiled once, at its first use, with real
lines in tracebacks.

The source is registered in ``linecache`` (as SymPy's ``lambdify`` does) so that a traceback
through generated code shows the generated lines. Python's ``compile`` takes some 6 µs a line,
and a model of thousands of nodes has thousands of lines in each of ``forward`` and
``value_and_grad``: a public function is compiled when it is first asked for (training never
needs ``forward``), the rest of the module (imports, helpers) at once. A ``CodeStore`` (the
compile cache's) keeps each part's compiled code, so that another process skips the compile.

>>> ns = load("import numpy as np\\ndef forward(x):\\n    return np.exp(x)\\n")
>>> float(ns["forward"](0.0))
1.0
"""

from __future__ import annotations

import hashlib
import linecache
import sys
from collections.abc import Iterator, Mapping
from itertools import pairwise
from types import CodeType, FunctionType, ModuleType
from typing import Any, Protocol


class CodeStore(Protocol):
    """Keeps a module's compiled parts (``part``: ``""`` its top level, else a function's name),
    each good only for the ``text`` it was compiled from."""

    def get(self, part: str, text: str) -> CodeType | None: ...

    def put(self, part: str, text: str, code: CodeType) -> None: ...


def load(source: str) -> Module:
    """Compile and run the module ``source``; return its namespace (public functions are
    compiled at their first lookup)."""
    return Module(source)


class Module(Mapping):
    """A generated module's namespace; ``module[name]`` compiles a public function on demand
    (and, first, the public functions its body names).

    >>> m = Module("def f(x):\\n    return 2*x\\n\\n\\ndef _helper():\\n    pass\\n")
    >>> sorted(m), m.compiled
    (['_helper', 'f'], ['_helper'])
    >>> m["f"](3), m.compiled
    (6, ['_helper', 'f'])
    """

    def __init__(self, source: str, filename: str | None = None, name: str | None = None,
                 codes: CodeStore | None = None) -> None:
        digest = hashlib.sha1(source.encode()).hexdigest()[:12]
        self._filename, self._codes = filename or f"<symgrad-{digest}>", codes
        name = name or f"symgrad_generated_{digest}"
        self._namespace: dict[str, Any] = {"__name__": name}
        if filename:
            self._namespace["__file__"] = filename
            if "\nimport numba\n" in source:
                # Numba's disk cache finds a function's globals again by its module's name
                module = sys.modules.get(name) or ModuleType(name)
                module.__dict__.update(self._namespace)
                sys.modules[name] = module
                self._namespace = module.__dict__
        lines = source.splitlines(True)
        linecache.cache[self._filename] = (len(source), None, lines, self._filename)
        self._pending: dict[str, tuple[int, str]] = {}  # name -> (first line, its source)
        eager = ["\n"] * len(lines)  # the rest of the module, at the same line numbers
        for name, start, end in _blocks(lines):
            if name is not None and not name.startswith("_") and _only_def(lines[start:end]):
                self._pending[name] = (start, "".join(lines[start:end]))
            else:
                eager[start:end] = lines[start:end]
        eager_text = "".join(eager)
        if any(_names(name, eager_text) for name in self._pending):
            self._pending.clear()  # the rest of the module names one: load it all at once
            eager_text = source
        self._run("", eager_text)

    @property
    def compiled(self) -> list[str]:
        """The functions defined so far."""
        return sorted(n for n, v in self._namespace.items() if isinstance(v, FunctionType))

    def _run(self, part: str, text: str) -> None:
        code = self._codes.get(part, text) if self._codes is not None else None
        if code is None:
            # the compiler's own output: identifiers are sanitised, labels escaped
            code = compile(text, self._filename, "exec")
            if self._codes is not None:
                self._codes.put(part, text, code)
        exec(code, self._namespace)

    def _define(self, name: str) -> None:
        pending = self._pending.get(name)
        if pending is None:
            return
        start, text = pending
        for other in list(self._pending):  # what the body calls by name is defined first
            if other != name and _names(other, text):
                self._define(other)
        self._run(name, "\n" * start + text)  # padded: tracebacks show the module's own lines
        self._pending.pop(name, None)  # (only once defined: another thread may be here too)

    def __getitem__(self, name: str) -> Any:
        if name in self._pending:
            self._define(name)
        return self._namespace[name]

    def __contains__(self, name: object) -> bool:
        return name in self._pending or name in self._namespace

    def __iter__(self) -> Iterator[str]:
        names = {n for n in self._namespace if not n.startswith("__")} | set(self._pending)
        return iter(sorted(names))

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _names(name: str, text: str) -> bool:
    """Whether ``text`` names ``name`` outside its comment lines (``# forward, in topological
    order`` does not make ``value_and_grad`` wait for ``forward``); a name in a string or after
    code on a line counts, which costs at most an early compile.

    >>> _names("forward", "    # forward\\n    y = 1\\n")
    False
    >>> _names("forward", "    y = forward(x)\\n")
    True
    """
    start = text.find(name)
    while start != -1:
        end = start + len(name)
        whole = not _in_word(text[start - 1 : start]) and not _in_word(text[end : end + 1])
        line = text[text.rfind("\n", 0, start) + 1 : start]
        if whole and not line.lstrip().startswith("#"):
            return True
        start = text.find(name, end)
    return False


def _in_word(char: str) -> bool:
    return char.isalnum() or char == "_"


def _blocks(lines: list[str]) -> Iterator[tuple[str | None, int, int]]:
    """``(name, start, end)`` for each top-level ``def`` (its lines ``start:end``, up to the
    next one) and ``(None, start, end)`` for the lines before the first."""
    starts = [i for i, line in enumerate(lines) if line.startswith("def ")]
    edges = [0, *starts, len(lines)]
    for start, end in pairwise(edges):
        if start == end:
            continue
        line = lines[start]
        if line.startswith("def "):
            yield line[4 : line.index("(")].strip(), start, end
        else:
            yield None, start, end


def _only_def(block: list[str]) -> bool:
    """Whether the block after its ``def`` line is only the body (indented), blank lines and
    comments: nothing else of the module's may wait for the function's first use."""
    return all(line[:1] in (" ", "\n", "#", "") for line in block[1:])
