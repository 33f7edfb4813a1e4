"""Operations the compiler itself inserts into graphs (never written by users).

>>> import sympy as sp
>>> g, x = sp.symbols("g x", real=True)
>>> sum_to(g, x)
sum_to(g, x)
"""

from __future__ import annotations

import sympy as sp
from sympy.printing.precedence import PRECEDENCE


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
    """The cotangent of ``x`` in ``out = max(x, axis)``: ``g`` shared by the maxima that tie.

    Written as a teacher does, with Iverson brackets: 1 where x is the maximum, over the
    number of elements that tie for it.

    >>> g, x, out = sp.symbols("g x out")
    >>> max_vjp(g, x, out, sp.Tuple(), sp.false)
    g*[x = out]/Σ[x = out]
    """

    elementwise = False

    nargs = 5

    def _sympystr(self, printer):
        g, x, out = self.args[:3]
        hit = f"[{printer._print(x)} = {printer._print(out)}]"
        share = f"{hit}/Σ{hit}"
        return share if g == 1 else f"{printer.parenthesize(g, 50)}*{share}"

    def _latex(self, printer):
        g, x, out = self.args[:3]
        hit = rf"[{printer._print(x)} = {printer._print(out)}]"
        share = rf"\frac{{{hit}}}{{\sum {hit}}}"
        return share if g == 1 else f"{printer.parenthesize(g, 50)} {share}"


class sinc_derivative(sp.Function):
    """d/dx sinc(x) = (cos(x) − sinc(x))/x, continued by 0 at 0 (the rule of ``sp.sinc``).

    Computed by its Taylor series near 0, where the formula is 0/0 or cancels.

    >>> x = sp.Symbol("x", real=True)
    >>> sinc_derivative(0), sinc_derivative(x).rewrite(sp.cos)
    (0, (cos(x) - sinc(x))/x)
    >>> sinc_derivative(sp.pi).evalf(5)
    -0.31831
    """

    nargs = 1

    @classmethod
    def eval(cls, x):
        if x.is_zero:
            return sp.S.Zero

    def _eval_rewrite_as_cos(self, x, **kwargs):
        return (sp.cos(x) - sp.sinc(x)) / x

    def _sympystr(self, printer):  # as a teacher writes it (its value at 0 is the limit)
        x = printer._print(self.args[0])
        return f"(cos({x}) - sinc({x}))/{printer.parenthesize(self.args[0], 50)}"

    def _latex(self, printer):
        x = self.args[0]
        return rf"\frac{{{printer._print(sp.cos(x) - sp.sinc(x))}}}{{{printer._print(x)}}}"

    def _eval_evalf(self, prec):
        return self.rewrite(sp.cos)._eval_evalf(prec)

    def _eval_is_real(self):
        return self.args[0].is_real


class sigmoid_complement(sp.Function):
    """1 − s for s = sigmoid(x), computed exactly as 1/(1 + exp(x)) (the rule of ``sigmoid``).

    Shown as the textbook's ``1 - s``; computed from ``x``, since 1 − s cancels once s rounds
    near 1 (x > 20): σ'(x) = σ·(1 − σ) is then exact to the last digit at every x.

    >>> s, x = sp.symbols("s x", real=True)
    >>> s * sigmoid_complement(s, x)  # written as a factor: parenthesised
    s*(1 - s)
    >>> sigmoid_complement(sp.S.Half, 0)
    1/2
    """

    nargs = 2

    @classmethod
    def eval(cls, s, x):
        if s.is_Number:
            return 1 - s

    def fdiff(self, argindex=1):
        return sp.S.NegativeOne if argindex == 1 else sp.S.Zero  # as a function of s: 1 - s

    def _sympystr(self, printer):
        return f"(1 - {printer.parenthesize(self.args[0], PRECEDENCE['Add'], strict=True)})"

    _symgrad_comment = _sympystr  # in the comments of generated code

    def _latex(self, printer):
        s = printer.parenthesize(self.args[0], PRECEDENCE["Add"], strict=True)
        return rf"\left(1 - {s}\right)"

    def _eval_evalf(self, prec):
        return (1 - self.args[0]).evalf(prec)

    def _eval_rewrite_as_exp(self, s, x, **kwargs):
        return 1 / (1 + sp.exp(x))

    def _eval_is_real(self):
        return self.args[1].is_real

    def _numpycode(self, printer):
        """For ``sympy.lambdify``: exp(−softplus(x)), without overflow."""
        return f"numpy.exp(-numpy.logaddexp(0, {printer._print(self.args[1])}))"
