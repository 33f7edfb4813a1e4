"""The functions symgrad adds to SymPy: activations and reductions.

They are ordinary SymPy ``Function`` classes, so they live inside SymPy expressions, print as
themselves and differentiate with ``sympy.diff``. How they are computed lives in
their records in ``ops.py`` (code, derivative rule, shape rule).

>>> import sympy as sp
>>> x = sp.Symbol("x")
>>> sigmoid(x).diff(x)
(1 - sigmoid(x))*sigmoid(x)
>>> mean((2*x)**2)
mean(4*x**2)

Each checks its arguments as it is called: anything but an expression, or an axis that is not
an integer, is a ``SymgradError`` that names the argument.
"""

from __future__ import annotations

import numbers
import operator

import numpy as np
import sympy as sp

from .errors import SymgradError


def _operand(value, function: str, name: str) -> sp.Expr:
    """``value`` (an expression or a real number) as a SymPy expression, else a SymgradError
    naming the argument and what to pass instead."""
    if isinstance(value, sp.Expr):
        return value
    if isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_):
        return sp.sympify(value)
    if isinstance(value, str):
        fix = f"a SymPy expression, e.g. sp.Symbol({value!r}) (strings are not parsed here)"
    elif isinstance(value, list | tuple | np.ndarray | sp.Tuple):
        fix = ("one SymPy expression: a symbol stands for a whole array, whose values are "
               "given at the call" + (" (the sum of several terms is x + y)"
                                      if function in ("sum", "mean") else ""))
    else:
        fix = "a SymPy expression (a symbol, a number or a formula of them)"
    shown = repr(value) if not isinstance(value, sp.Basic) else sp.sstr(value)
    raise SymgradError(
        f"symgrad.{function}: {name} {shown} is a {type(value).__name__}, not an expression; "
        f"pass {fix}"
    )


def _options(function: str, options: dict) -> dict:
    """The keyword arguments SymPy itself takes (evaluate); any other is a SymgradError."""
    unknown = [k for k in options if k != "evaluate"]
    if unknown:
        raise SymgradError(
            f"symgrad.{function}: unknown keyword argument {unknown[0]!r}; see "
            f"help(symgrad.{function}) for the arguments it takes"
        )
    return options


def _count(function: str, args: tuple, names: tuple[str, ...]) -> None:
    if len(args) != len(names):
        raise SymgradError(
            f"symgrad.{function} takes {len(names)} argument{'s' * (len(names) > 1)} "
            f"({', '.join(names)}), not {len(args)}"
        )


class _Elementwise(sp.Function):
    """A function of one expression, applied element by element."""

    nargs = 1

    def __new__(cls, *args, **options):
        _count(cls.__name__, args, ("x",))
        x = _operand(args[0], cls.__name__, "x")
        return super().__new__(cls, x, **_options(cls.__name__, options))

    def _eval_is_real(self):
        return self.args[0].is_real

    def _eval_evalf(self, prec):
        """A number, as SymPy's own functions give (so ``Max`` can compare it)."""
        x = self.args[0]
        if x.is_number and x.is_extended_real:
            return self._formula(x).evalf(prec)
        return self.func(x._eval_evalf(prec) or x)  # its argument evaluated, as sin(x + pi)

    def _formula(self, x: sp.Expr) -> sp.Expr:
        raise NotImplementedError


class sigmoid(_Elementwise):
    """The logistic function 1/(1 + exp(-x)); computed stably for any x.

    >>> sigmoid(0), sigmoid(sp.cos(1)).evalf(5)
    (1/2, 0.63188)
    """

    @classmethod
    def eval(cls, x):
        if x.is_zero:
            return sp.S.Half

    def fdiff(self, argindex=1):
        return self * (1 - self)

    def _formula(self, x):
        return 1 / (1 + sp.exp(-x))

    def _eval_rewrite_as_exp(self, x, **kwargs):
        return self._formula(x)


class softplus(_Elementwise):
    """log(1 + exp(x)), computed without overflow; its derivative is sigmoid(x).

    >>> softplus(sp.Symbol("x")).diff(sp.Symbol("x"))
    sigmoid(x)
    >>> softplus(sp.cos(1)).evalf(5)
    0.99935
    """

    def fdiff(self, argindex=1):
        return sigmoid(self.args[0])

    def _formula(self, x):
        return sp.log(1 + sp.exp(x))

    def _eval_rewrite_as_exp(self, x, **kwargs):
        return self._formula(x)

    _eval_rewrite_as_log = _eval_rewrite_as_exp


class relu(_Elementwise):
    """max(x, 0), with PyTorch's convention relu'(0) = 0.

    >>> relu(-2), relu(3), relu(sp.cos(1)).evalf(5)
    (0, 3, 0.54030)
    """

    @classmethod
    def eval(cls, x):
        if x.is_Number:
            return sp.Max(x, 0)

    def fdiff(self, argindex=1):
        return sp.Heaviside(self.args[0], 0)

    def _formula(self, x):
        return sp.Max(x, 0)

    def _eval_rewrite_as_Max(self, x, **kwargs):
        return sp.Max(x, 0)


class _Binary(sp.Function):
    """A function of two expressions, applied element by element (broadcasting)."""

    nargs = 2

    def __new__(cls, *args, **options):
        _count(cls.__name__, args, ("x", "y"))
        x, y = (_operand(v, cls.__name__, n) for v, n in zip(args, ("x", "y"), strict=True))
        return super().__new__(cls, x, y, **_options(cls.__name__, options))

    def _eval_is_real(self):
        return self.args[0].is_real and self.args[1].is_real

    def _eval_evalf(self, prec):
        x, y = self.args
        if x.is_number and y.is_number and x.is_extended_real and y.is_extended_real:
            return self._formula(x, y).evalf(prec)
        return None


class logaddexp(_Binary):
    """log(exp(x) + exp(y)), computed without overflow.

    >>> logaddexp(0, 0).evalf(5)
    0.69315
    >>> x, y = sp.symbols("x y")
    >>> logaddexp(x, y).diff(x)
    exp(x - logaddexp(x, y))
    """

    def fdiff(self, argindex=1):
        return sp.exp(self.args[argindex - 1] - self)

    def _formula(self, x, y):
        return sp.log(sp.exp(x) + sp.exp(y))

    def _eval_rewrite_as_exp(self, x, y, **kwargs):
        return self._formula(x, y)


class hypot(_Binary):
    """sqrt(x**2 + y**2), computed without overflow or underflow of the squares.

    >>> hypot(3, 4).evalf(3)
    5.00
    """

    def fdiff(self, argindex=1):
        return self.args[argindex - 1] / self

    def _formula(self, x, y):
        return sp.sqrt(x**2 + y**2)

    def _eval_rewrite_as_sqrt(self, x, y, **kwargs):
        return self._formula(x, y)


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


def _axis(a, function: str, name: str = "axis") -> sp.Integer:
    """One axis: an integer (as NumPy takes it: not a bool, not a float), else a SymgradError."""
    if not isinstance(a, bool | np.bool_ | sp.logic.boolalg.BooleanAtom):
        try:
            return sp.Integer(operator.index(a))
        except TypeError:
            pass
    hint = ""
    if isinstance(a, sp.Expr) and function in _TWO_OPERAND_HINTS:  # max(a, b) meant as Max
        hint = f" ({_TWO_OPERAND_HINTS[function]})"
    raise SymgradError(
        f"symgrad.{function}: {name} {a!r} is not an integer; an axis is a whole number "
        f"(0 the first, -1 the last){hint}"
    )


#: What a second expression given to a reduction, where its axis goes, was probably meant as.
_TWO_OPERAND_HINTS = {
    "max": "the elementwise maximum of two expressions is sp.Max(a, b)",
    "sum": "the sum of two expressions is a + b",
    "mean": "the mean of two expressions is (a + b)/2",
}


def _axes(axis, function: str, name: str = "axis") -> sp.Tuple:
    """An ``axis`` argument as a SymPy Tuple of distinct integers; the empty Tuple means every
    axis (None)."""
    if axis is None or (isinstance(axis, sp.Tuple) and not axis):  # how None is stored
        return sp.Tuple()
    if not isinstance(axis, sp.Tuple | tuple | list):
        return sp.Tuple(_axis(axis, function, name))
    axes = [_axis(a, function, name) for a in axis]
    if not axes:
        raise SymgradError(
            f"symgrad.{function}: {name}=() names no axis; leave {name} out (or None) for all"
        )
    repeated = [a for i, a in enumerate(axes) if a in axes[:i]]
    if repeated:
        raise SymgradError(
            f"symgrad.{function}: {name} {tuple(int(a) for a in axes)} names axis "
            f"{repeated[0]} twice"
        )
    return sp.Tuple(*axes)


def _keepdims(keepdims, function: str) -> bool:
    if isinstance(keepdims, bool | np.bool_ | sp.logic.boolalg.BooleanAtom):
        return bool(keepdims)
    raise SymgradError(f"symgrad.{function}: keepdims must be True or False, not {keepdims!r}")


class _Reduction(sp.Function):
    """A reduction over some axes (default: all) of its argument, NumPy style.

    Stored as ``(e,)`` when it reduces every element, else ``(e, axes, keepdims)``.
    """

    elementwise = False

    def __new__(cls, *args, axis=None, keepdims=False, **options):
        name = cls.__name__
        if not 1 <= len(args) <= 3:
            _count(name, args, ("e", "axis", "keepdims"))
        e = _operand(args[0], name, "the argument")
        axes = _axes(args[1] if len(args) > 1 else axis, name)
        keep = _keepdims(args[2] if len(args) > 2 else keepdims, name)
        extra = (axes, sp.true if keep else sp.false) if (axes or keep) else ()
        return super().__new__(cls, e, *extra, **_options(name, options))

    @classmethod
    def eval(cls, x, *options):
        if x.is_number and not options:  # a number is a 0-d array: reducing it gives itself
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

    def _latex(self, printer):
        options = ""
        if self.axis is not None:
            axis = self.axis[0] if len(self.axis) == 1 else self.axis
            options += rf",\ \text{{axis}}={axis}"
        if self.keepdims:
            options += r",\ \text{keepdims}"
        name = r"\operatorname{" + type(self).__name__ + "}"
        return rf"{name}\left({printer._print(self.args[0])}{options}\right)"

    def _eval_is_commutative(self):
        return self.args[0].is_commutative  # (its option arguments, axes and flags, are not)

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

    def __new__(cls, *args, axis=-1, **options):
        name = cls.__name__
        if not 1 <= len(args) <= 2:
            _count(name, args, ("e", "axis"))
        e = _operand(args[0], name, "the argument")
        axis = args[1] if len(args) > 1 else axis
        if axis is None:
            raise SymgradError(
                f"symgrad.{name}: axis=None is not supported; {name} runs along one axis: "
                "pass an integer (-1, the default, is the last axis)"
            )
        return super().__new__(cls, e, _axis(axis, name), **_options(name, options))

    @property
    def axis(self) -> int:
        """The axis the operation runs along."""
        return int(self.args[1])

    def _sympystr(self, printer):
        return f"{type(self).__name__}({printer._print(self.args[0])}, axis={self.axis})"

    def _latex(self, printer):
        name = r"\operatorname{" + type(self).__name__.replace("_", r"\_") + "}"
        return rf"{name}\left({printer._print(self.args[0])},\ \text{{axis}}={self.axis}\right)"

    def _eval_is_commutative(self):
        return self.args[0].is_commutative  # (its option arguments, axes and flags, are not)

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

    def __new__(cls, *args, **options):
        _count("matmul", args, ("A", "B"))
        a, b = (_operand(v, "matmul", n) for v, n in zip(args, ("A", "B"), strict=True))
        return super().__new__(cls, a, b, **_options("matmul", options))

    def _eval_is_real(self):
        return self.args[0].is_real and self.args[1].is_real


class transpose(sp.Function):
    """A with its axes reversed (``A.T``), or permuted by ``axes``.

    >>> transpose(sp.Symbol("A")), transpose(sp.Symbol("A"), axes=(0, 2, 1))
    (transpose(A), transpose(A, axes=(0, 2, 1)))
    """

    elementwise = False
    linear = True

    def __new__(cls, *args, axes=None, **options):
        if not 1 <= len(args) <= 2:
            _count("transpose", args, ("e", "axes"))
        e = _operand(args[0], "transpose", "the argument")
        axes = args[1] if len(args) > 1 else axes
        if axes is None:
            return super().__new__(cls, e, **_options("transpose", options))
        if not isinstance(axes, sp.Tuple | tuple | list):
            raise SymgradError(
                f"symgrad.transpose: axes {axes!r} is not a permutation of the axes; pass a "
                "tuple such as (1, 0, 2), or leave axes out to reverse every axis"
            )
        perm = _axes(axes, "transpose", "axes")
        n = len(perm)
        if sorted(int(a) % n if -n <= a < n else n for a in perm) != list(range(n)):
            raise SymgradError(
                f"symgrad.transpose: axes {tuple(int(a) for a in perm)} are not a permutation "
                f"of 0, ..., {n - 1}"
            )
        return super().__new__(cls, e, perm, **_options("transpose", options))

    @property
    def axes(self) -> tuple[int, ...] | None:
        """The permutation, or None for reversing every axis."""
        return tuple(int(a) for a in self.args[1]) if len(self.args) > 1 else None

    def _sympystr(self, printer):
        extra = f", axes={self.axes}" if self.axes is not None else ""
        return f"transpose({printer._print(self.args[0])}{extra})"

    def _eval_is_commutative(self):
        return self.args[0].is_commutative  # (its option arguments, axes and flags, are not)

    def _eval_is_real(self):
        return self.args[0].is_real


#: Every function class symgrad adds; each has a record in ``ops.py``.
FUNCTIONS: tuple[type[sp.Function], ...] = (
    sigmoid,
    softplus,
    relu,
    logaddexp,
    hypot,
    sum,
    mean,
    max,
    logsumexp,
    softmax,
    log_softmax,
    matmul,
    transpose,
)
