"""Operations the compiler itself inserts into graphs (never written by users).

>>> import sympy as sp
>>> g, x = sp.symbols("g x", real=True)
>>> sum_to(g, x)
sum_to(g, x)
"""

from __future__ import annotations

import sympy as sp


class size(sp.Function):
    """The number of elements of an array (``np.size``); used by the rule of ``mean``."""

    nargs = 1

    @classmethod
    def eval(cls, x):
        if x.is_Number:
            return sp.S.One


class sum_to(sp.Function):
    """``g`` summed over the axes along which ``like`` was broadcast (or spread to its shape)."""

    nargs = 2


class zeros_like(sp.Function):
    """An array of zeros shaped like ``x``: the gradient of an input the output ignores."""

    nargs = 1
