"""The functions symgrad adds to SymPy: activations and reductions.

They are ordinary SymPy ``Function`` classes, so they live inside SymPy expressions, print as
themselves and differentiate with ``sympy.diff``. How they are computed lives in
``codegen/printer.py``; their derivative rules live in ``rules.py``.

>>> import sympy as sp
>>> x = sp.Symbol("x")
>>> sigmoid(x).diff(x)
(1 - sigmoid(x))*sigmoid(x)
>>> mean((2*x)**2)
mean(4*x**2)
"""

from __future__ import annotations

import sympy as sp


class sigmoid(sp.Function):
    """The logistic function 1/(1 + exp(-x)); computed stably for any x.

    >>> sigmoid(0)
    1/2
    """

    nargs = 1

    @classmethod
    def eval(cls, x):
        if x.is_zero:
            return sp.S.Half

    def fdiff(self, argindex=1):
        return self * (1 - self)

    def _eval_rewrite_as_exp(self, x, **kwargs):
        return 1 / (1 + sp.exp(-x))

    def _eval_is_real(self):
        return self.args[0].is_real


class softplus(sp.Function):
    """log(1 + exp(x)), computed without overflow; its derivative is sigmoid(x).

    >>> softplus(sp.Symbol("x")).diff(sp.Symbol("x"))
    sigmoid(x)
    """

    nargs = 1

    def fdiff(self, argindex=1):
        return sigmoid(self.args[0])

    def _eval_rewrite_as_exp(self, x, **kwargs):
        return sp.log(1 + sp.exp(x))

    def _eval_rewrite_as_log(self, x, **kwargs):
        return sp.log(1 + sp.exp(x))

    def _eval_is_real(self):
        return self.args[0].is_real


class relu(sp.Function):
    """max(x, 0), with PyTorch's convention relu'(0) = 0.

    >>> relu(-2), relu(3)
    (0, 3)
    """

    nargs = 1

    @classmethod
    def eval(cls, x):
        if x.is_Number:
            return sp.Max(x, 0)

    def fdiff(self, argindex=1):
        return sp.Heaviside(self.args[0], 0)

    def _eval_rewrite_as_Max(self, x, **kwargs):
        return sp.Max(x, 0)

    def _eval_is_real(self):
        return self.args[0].is_real


class ones_like(sp.Function):
    """An array of ones shaped like ``x``: keeps the shape of a constant in a gradient.

    ``model.gradients`` uses it where a derivative is constant over the elements of a
    reduction: d/db sum(k*x + b) = sum(ones_like(b + k*x)), the number of elements.

    >>> ones_like(sp.Symbol("x")).diff(sp.Symbol("x"))
    0
    """

    nargs = 1

    def fdiff(self, argindex=1):
        return sp.S.Zero


def _axes(axis) -> sp.Tuple:
    """An ``axis`` argument as a SymPy Tuple of integers; the empty Tuple means every axis."""
    if axis is None:
        return sp.Tuple()
    if isinstance(axis, (sp.Tuple, tuple, list)):
        return sp.Tuple(*(sp.Integer(int(a)) for a in axis))
    return sp.Tuple(sp.Integer(int(axis)))


class _Reduction(sp.Function):
    """A reduction over some axes (default: all) of its argument, NumPy style.

    Stored as ``(e,)`` when it reduces every element, else ``(e, axes, keepdims)``.
    """

    elementwise = False

    def __new__(cls, e, axis=None, keepdims=False, **options):
        axes = _axes(axis)
        extra = (axes, sp.true if keepdims else sp.false) if (axes or keepdims) else ()
        return super().__new__(cls, e, *extra, **options)

    @classmethod
    def eval(cls, x, *options):
        if x.is_Number and not options:  # a number is a 0-d array: reducing it gives itself
            return x

    @property
    def axis(self) -> tuple[int, ...] | None:
        """The reduced axes, or None for all of them."""
        return tuple(int(a) for a in self.args[1]) or None if len(self.args) > 1 else None

    @property
    def keepdims(self) -> bool:
        """Whether the reduced axes are kept with length one."""
        return len(self.args) > 2 and bool(self.args[2])

    def _sympystr(self, printer):
        text = f"{type(self).__name__}({printer._print(self.args[0])}"
        if self.axis is not None:
            axis = self.axis[0] if len(self.axis) == 1 else self.axis
            text += f", axis={axis}"
        if self.keepdims:
            text += ", keepdims=True"
        return text + ")"

    def _eval_is_real(self):
        return self.args[0].is_real


class _LinearReduction(_Reduction):
    """A linear reduction: d reduce(e) = reduce(de)."""

    linear = True

    def _eval_derivative(self, s):
        # The derivative with respect to a scalar shift of s (for a scalar s, the derivative).
        return self.func(self.args[0].diff(s), *self.args[1:])


class sum(_LinearReduction):
    """The sum of the elements of an array expression, over ``axis`` (default: all).

    >>> sum(sp.Symbol("x")**2).diff(sp.Symbol("x"))
    sum(2*x)
    >>> sum(sp.Symbol("X"), axis=1, keepdims=True)
    sum(X, axis=1, keepdims=True)
    """


class mean(_LinearReduction):
    """The mean of the elements of an array expression, over ``axis`` (default: all).

    >>> mean(3)
    3
    """


class max(_Reduction):
    """The largest element over ``axis`` (default: all); ties share the gradient equally.

    >>> max(sp.Symbol("Z"), axis=1)
    max(Z, axis=1)
    """


class logsumexp(_Reduction):
    """log(sum(exp(e), axis)), computed stably (shifted by the maximum).

    >>> logsumexp(sp.Symbol("Z"), axis=1)
    logsumexp(Z, axis=1)
    """


class _AlongAxis(sp.Function):
    """An operation along one axis (default: the last) that keeps its argument's shape."""

    elementwise = False

    def __new__(cls, e, axis=-1, **options):
        return super().__new__(cls, e, sp.Integer(int(axis)), **options)

    @property
    def axis(self) -> int:
        """The axis the operation runs along."""
        return int(self.args[1])

    def _sympystr(self, printer):
        return f"{type(self).__name__}({printer._print(self.args[0])}, axis={self.axis})"

    def _eval_is_real(self):
        return self.args[0].is_real


class softmax(_AlongAxis):
    """exp(e) / sum(exp(e), axis), computed stably (shifted by the maximum).

    >>> softmax(sp.Symbol("Z"), axis=1)
    softmax(Z, axis=1)
    """


class log_softmax(_AlongAxis):
    """e - logsumexp(e, axis): the log of ``softmax``, without ever taking log(0).

    >>> log_softmax(sp.Symbol("Z"))
    log_softmax(Z, axis=-1)
    """


class matmul(sp.Function):
    """The matrix product A @ B, with NumPy's rules for 1-D and stacked operands.

    >>> matmul(sp.Symbol("X"), sp.Symbol("W"))
    matmul(X, W)
    """

    nargs = 2
    elementwise = False

    def _eval_is_real(self):
        return self.args[0].is_real and self.args[1].is_real


class transpose(sp.Function):
    """A with its axes reversed (``A.T``), or permuted by ``axes``.

    >>> transpose(sp.Symbol("A")), transpose(sp.Symbol("A"), axes=(0, 2, 1))
    (transpose(A), transpose(A, axes=(0, 2, 1)))
    """

    elementwise = False
    linear = True

    def __new__(cls, e, axes=None, **options):
        extra = (_axes(axes),) if axes is not None else ()
        return super().__new__(cls, e, *extra, **options)

    @property
    def axes(self) -> tuple[int, ...] | None:
        """The permutation, or None for reversing every axis."""
        return tuple(int(a) for a in self.args[1]) if len(self.args) > 1 else None

    def _sympystr(self, printer):
        extra = f", axes={self.axes}" if self.axes is not None else ""
        return f"transpose({printer._print(self.args[0])}{extra})"

    def _eval_is_real(self):
        return self.args[0].is_real


#: Every function class symgrad adds; each must have an entry in ``rules.RULES``.
FUNCTIONS: tuple[type[sp.Function], ...] = (
    sigmoid,
    softplus,
    relu,
    sum,
    mean,
    max,
    logsumexp,
    softmax,
    log_softmax,
    matmul,
    transpose,
)
