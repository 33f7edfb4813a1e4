"""Identifiers for generated code, made from user names that may be anything.

A symbol's name is user data: ``a b``, ``q"uote``, ``lambda`` or ``__import__('os')`` must
never reach generated source as written. ``Namer`` turns each into a fresh, valid Python
identifier that cannot shadow anything the generated code uses.

>>> namer = Namer()
>>> [namer.fresh(s) for s in ["x", "σ", "lambda", "a b", "np", "a_b", "__import__('os')"]]
['x', 'σ', 'lambda_', 'a_b', 'np_', 'a_b_2', 'import_os']
"""

from __future__ import annotations

import builtins
import keyword
import re
import unicodedata

#: Names the generated module defines or uses; user names are renamed away from them.
RESERVED = frozenset(
    {"np", "numpy", "numba", "forward", "value_and_grad", "math"}
    | set(keyword.kwlist)
    | set(keyword.softkwlist)
    | set(dir(builtins))
)


def sanitize(name: str) -> str:
    """The closest valid identifier to ``name`` (not yet checked against other names).

    >>> sanitize("x[0]"), sanitize("2x"), sanitize("ﬁ")
    ('x_0', '_2x', 'fi')
    """
    if name.isascii() and name.isidentifier() and "__" not in name and name.strip("_") == name:
        return name  # already what the rules below make of it (the common case: fast)
    return _sanitize(name)


def _plain(name: str) -> bool:
    """Whether ``fresh`` makes ``name`` itself of ``name``, if it is not taken (which it is,
    if it is reserved): an ASCII identifier with no ``_`` at either end and no ``__``."""
    return (
        name.isascii() and name.isidentifier() and "__" not in name
        and name[0] != "_" and name[-1] != "_"
    )


def _sanitize(name: str) -> str:
    name = unicodedata.normalize("NFKC", name)  # Python reads identifiers in NFKC
    chars = [c if ("_" + c).isidentifier() else "_" for c in name]
    ident = re.sub(r"_+", "_", "".join(chars)).strip("_")
    if not ident:
        return "v"
    if not ident.isidentifier():  # starts with a digit
        ident = "_" + ident
    return ident


class Namer:
    """Hands out unique identifiers; nothing it returns starts with ``_`` unless asked to."""

    def __init__(self, taken: set[str] | frozenset[str] = frozenset()):
        self.taken = set(RESERVED) | set(taken)

    def fresh(self, name: str) -> str:
        """A new identifier close to ``name``."""
        if name not in self.taken and _plain(name):  # the common case: the name itself
            self.taken.add(name)
            return name
        base = sanitize(name)
        if base.startswith("_") and not name.startswith("_"):
            base = "v" + base
        base = base.lstrip("_") or "v"  # leading underscores belong to symgrad's helpers
        if base[0].isdigit():
            base = "v" + base
        ident = base if base not in RESERVED else base + "_"
        n = 2
        while ident in self.taken:
            ident = f"{base}_{n}"
            n += 1
        self.taken.add(ident)
        return ident
