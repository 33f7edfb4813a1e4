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


class _Reduction(sp.Function):
    """A reduction over all elements of its argument; linear, so d reduce(e) = reduce(de)."""

    nargs = 1
    elementwise = False

    @classmethod
    def eval(cls, x):
        if x.is_Number:  # a number is a 0-d array: its sum and mean are itself
            return x

    def _eval_derivative(self, s):
        # The derivative with respect to a scalar shift of s (for a scalar s, the derivative).
        return self.func(self.args[0].diff(s))

    def _eval_is_real(self):
        return self.args[0].is_real


class sum(_Reduction):
    """The sum of all elements of an array expression (NumPy's ``np.sum``).

    >>> sum(sp.Symbol("x")**2).diff(sp.Symbol("x"))
    sum(2*x)
    """


class mean(_Reduction):
    """The mean of all elements of an array expression (NumPy's ``np.mean``).

    >>> mean(3)
    3
    """


#: Every function class symgrad adds; each must have an entry in ``rules.RULES``.
FUNCTIONS: tuple[type[sp.Function], ...] = (sigmoid, softplus, relu, sum, mean)
