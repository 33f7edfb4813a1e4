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

    elementwise = False

    nargs = 1

    @classmethod
    def eval(cls, x):
        if x.is_Number:
            return sp.S.One


class sum_to(sp.Function):
    """``g`` summed over the axes along which ``like`` was broadcast (or spread to its shape)."""

    elementwise = False

    nargs = 2


class full_like(sp.Function):
    """An array shaped like ``x`` full of the number ``c``: the gradient of an input the output
    ignores (c = 0) or depends on linearly (``sum(2*k)``)."""

    elementwise = False

    nargs = 2


class broadcast_like(sp.Function):
    """``g`` spread (as a read-only view) to the shape of ``x``: a reduction's gradient."""

    elementwise = False

    nargs = 2


class expand_dims(sp.Function):
    """``g`` with length-one axes inserted at ``axes``: a reduction's gradient, spread back.

    A number stays a number: it broadcasts to any shape (the seed 1 of an output that is not a
    scalar, whose gradient is never run, must still have a shape).

    >>> expand_dims(sp.S.One, sp.Tuple(1))
    1
    """

    elementwise = False

    nargs = 2

    @classmethod
    def eval(cls, g, axes):
        if g.is_Number:
            return g


class matmul_vjp(sp.Function):
    """The cotangent of operand ``which`` (0: A, 1: B) of ``A @ B`` given the adjoint ``g``.

    Ḡ·Bᵀ for A and Aᵀ·Ḡ for B, with NumPy's rules for 1-D and stacked operands.

    >>> g, a, b = sp.symbols("g a b")
    >>> matmul_vjp(g, a, b, 0), matmul_vjp(g, a, b, 1)
    (g @ bᵀ, aᵀ @ g)
    """

    elementwise = False

    nargs = 4
    precedence = 50  # printed as a product (with @): parenthesised inside another product

    @property
    def which(self) -> int:
        return int(self.args[3])

    def _sympystr(self, printer):
        g, a, b = (printer.parenthesize(x, 50) for x in self.args[:3])
        return f"{g} @ {b}ᵀ" if self.which == 0 else f"{a}ᵀ @ {g}"

    def _latex(self, printer):
        g, a, b = (printer.parenthesize(x, 50) for x in self.args[:3])
        return f"{g} {b}^{{T}}" if self.which == 0 else f"{a}^{{T}} {g}"


class max_vjp(sp.Function):
    """The cotangent of ``x`` in ``out = max(x, axis)``: ``g`` shared by the maxima that tie."""

    elementwise = False

    nargs = 5
