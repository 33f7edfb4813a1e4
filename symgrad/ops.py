"""The operations: one record per operation, the only place one is described.

A record (``Op``) holds everything symgrad knows about an operation: the SymPy class the front
end reads as it, whether it is elementwise, its shape rule, its derivative rule, its NumPy
code and the helper that code needs, its name in the text language, its convention at
non-smooth points and the optional extra it needs. The front end, shape inference, the reverse
sweep, the code generator, the symbolic views and the text language all read it from here.

Derivative rules are SymPy expressions, so that the compiler, the views (``explain``,
``model.gradients``) and the tests read the same rule:

* an elementwise operation gives its local partial derivatives, ``partials(attrs, out, *args)
  -> (∂out/∂arg, ...)``, written over its value ``out`` where that is the natural form
  (exp' = exp, tanh' = 1 − tanh²);
* any other gives its vector-Jacobian product, ``vjp(attrs, g, out, *args) -> (cotangent of
  each arg, ...)``: matmul sends Ḡ·Bᵀ to A and Aᵀ·Ḡ to B, a reduction spreads its adjoint back
  over the reduced axes, softmax sends out·(Ḡ − sum(Ḡ·out, axis)) without a dense Jacobian.

The reverse sweep evaluates a rule once per operation and attributes, over placeholder
symbols, and instantiates the result for every node (``backward.py``). Broadcasting is not the
rules' business: the sweep sums cotangents back to their operand's shape.

Conventions at non-smooth points follow PyTorch: relu'(0) = 0, |x|'(0) = 0, sign' = 0,
Heaviside' = floor' = ceiling' = 0, d/dy 0**y = 0; Max and Min split the gradient equally
between the k arguments that tie (g/k each).

Adding a function is one record here (and, for a function SymPy has no class for, its class in
``functions.py``), plus its tests (``tests/test_ops.py`` runs every record against SymPy).

>>> OPS["exp"].partials((), sp.Symbol("out"), sp.Symbol("x"))
(out,)
>>> OPS["tanh"].numpy
'np.tanh({0})'
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import sympy as sp
from sympy.codegen.cfunctions import exp2, expm1, log1p, log2, log10
from sympy.printing.pycode import PythonCodePrinter

from . import functions as fn
from .errors import ModelError, NoRuleError, ShapeError

S = sp.S

# Precedence of generated code (higher binds tighter), as Python's grammar has it.
ATOM = 100  # a name, a number, a call, an attribute
POWER = 80
UNARY = 70
PRODUCT = 60  # * / @
SUM = 50
COMPARISON = 30

Code = tuple[str, int]  # source text and its precedence


def paren(code: Code, at_least: int) -> str:
    """``code``'s text, parenthesized unless it binds at least as tightly as ``at_least``.

    >>> paren(("a + b", SUM), PRODUCT), paren(("f(x)", ATOM), POWER + 1)
    ('(a + b)', 'f(x)')
    """
    text, prec = code
    return text if prec >= at_least else f"({text})"


# -- internal operations, as SymPy sees them --------------------------------------------------
# The reverse sweep inserts these; the views show them. They are never written by users.


class size(sp.Function):
    """The number of elements of an array (``np.size``); used by the rule of ``mean``."""

    nargs = 1

    @classmethod
    def eval(cls, x):
        if x.is_Number:
            return S.One


class sum_to(sp.Function):
    """``g`` summed over the axes along which ``like`` was broadcast (or spread to its shape)."""

    nargs = 2


class full_like(sp.Function):
    """An array shaped like ``x`` full of the number ``c``: the gradient of an input the output
    ignores (c = 0) or depends on linearly (``sum(2*k)``)."""

    nargs = 2


class broadcast_like(sp.Function):
    """``g`` spread (as a read-only view) to the shape of ``x``: a reduction's gradient."""

    nargs = 2


class expand_dims(sp.Function):
    """``g`` with length-one axes inserted at ``axes``: a reduction's gradient, spread back.

    >>> expand_dims(sp.S.One, sp.Tuple(1))
    1
    """

    nargs = 2

    @classmethod
    def eval(cls, g, axes):
        if g.is_Number:
            return g


class matmul_vjp(sp.Function):
    """The cotangent of operand ``which`` (0: A, 1: B) of ``A @ B`` given the adjoint ``g``.

    >>> g, a, b = sp.symbols("g a b")
    >>> matmul_vjp(g, a, b, 0), matmul_vjp(g, a, b, 1)
    (g @ bᵀ, aᵀ @ g)
    """

    nargs = 4
    precedence = 50  # printed as a product (with @): parenthesised inside another product

    def _sympystr(self, printer):
        g, a, b = (printer.parenthesize(x, 50) for x in self.args[:3])
        return f"{g} @ {b}ᵀ" if int(self.args[3]) == 0 else f"{a}ᵀ @ {g}"

    def _latex(self, printer):
        g, a, b = (printer.parenthesize(x, 50) for x in self.args[:3])
        return f"{g} {b}^{{T}}" if int(self.args[3]) == 0 else f"{a}^{{T}} {g}"


class max_vjp(sp.Function):
    """The cotangent of ``x`` in ``out = max(x, axis)``: ``g`` shared by the maxima that tie.

    >>> g, x, out = sp.symbols("g x out")
    >>> max_vjp(g, x, out, sp.Tuple(), sp.false)
    g*[x = out]/Σ[x = out]
    """

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

    >>> x = sp.Symbol("x", real=True)
    >>> sinc_derivative(0), sinc_derivative(x).rewrite(sp.cos)
    (0, (cos(x) - sinc(x))/x)
    """

    nargs = 1

    @classmethod
    def eval(cls, x):
        if x.is_zero:
            return S.Zero

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
    near 1 (x > 20).

    >>> s, x = sp.symbols("s x", real=True)
    >>> s * sigmoid_complement(s, x)
    s*(1 - s)
    """

    nargs = 2

    @classmethod
    def eval(cls, s, x):
        if s.is_Number:
            return 1 - s

    def fdiff(self, argindex=1):
        return S.NegativeOne if argindex == 1 else S.Zero  # as a function of s: 1 - s

    def _sympystr(self, printer):
        return f"(1 - {printer.parenthesize(self.args[0], 40, strict=True)})"

    def _latex(self, printer):
        s = printer.parenthesize(self.args[0], 40, strict=True)
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


# -- shapes --------------------------------------------------------------------------------------

Size = int | str | None
Shape = tuple[Size, ...]


def broadcast(*shapes: Shape) -> Shape:
    """NumPy's broadcasting over known sizes (ints), sizes named for the call (``"n"``) and
    unknown ones (None).

    >>> broadcast((None, 1), (64,)), broadcast((3, 1), (1, 4)), broadcast(("n", 1), ("n", 5))
    ((None, 64), (3, 4), ('n', 5))
    """
    ndim = max((len(s) for s in shapes), default=0)
    result = []
    for i in range(-ndim, 0):
        sizes = {s[i] for s in shapes if len(s) >= -i} - {1}
        known = {n for n in sizes if isinstance(n, int)}
        if len(known) > 1:
            raise ShapeError(f"shapes {_join(shapes)} do not broadcast together")
        named = {n for n in sizes if isinstance(n, str)}
        if known:
            result.append(known.pop())  # (a named size is then that one, or 1)
        elif len(named) == 1 and None not in sizes:
            result.append(named.pop())
        elif sizes:
            result.append(None)
        else:
            result.append(1)
    return tuple(result)


def _join(shapes) -> str:
    shapes = [tuple(s) for s in shapes]
    return ", ".join(map(str, shapes[:-1])) + " and " + str(shapes[-1])


def normal_axes(axes, ndim: int) -> tuple[int, ...]:
    """``axes`` as non-negative axes of an array of ``ndim`` dimensions, or a ShapeError."""
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise ShapeError(f"axis {a} is out of range for an array of {ndim} dimensions")
        out.append(a % ndim)
    if len(set(out)) < len(out):
        raise ShapeError(
            f"axes {tuple(axes)} name the same axis twice for an array of {ndim} dimensions"
        )
    return tuple(out)


def _reduced(attrs, x: Shape) -> Shape:
    axis, keepdims = attrs
    axes = normal_axes(axis, len(x)) if axis is not None else tuple(range(len(x)))
    if keepdims:
        return tuple(1 if i in axes else n for i, n in enumerate(x))
    return tuple(n for i, n in enumerate(x) if i not in axes)


def _reduction_axes(attrs, ndim: int) -> tuple[int, ...]:
    """The axes a reduction of attrs (axes or None, keepdims) mixes, in an array of ndim."""
    return tuple(range(ndim)) if attrs[0] is None else normal_axes(attrs[0], ndim)


def _along(attrs, x: Shape) -> Shape:
    normal_axes(attrs, len(x))
    return x


def _matmul_shape(attrs, a: Shape, b: Shape) -> Shape:
    if not a or not b:
        raise ShapeError(f"matmul needs arrays of one dimension or more, not {_join((a, b))}")
    a2 = (1, *a) if len(a) == 1 else a
    b2 = (*b, 1) if len(b) == 1 else b
    if isinstance(a2[-1], int) and isinstance(b2[-2], int) and a2[-1] != b2[-2]:
        raise ShapeError(f"shapes {_join((a, b))} do not align")
    try:
        batch = broadcast(a2[:-2], b2[:-2])
    except ShapeError:
        raise ShapeError(f"shapes {_join((a, b))} do not align: their stacks differ") from None
    return (*batch, *a2[-2:-1] * (len(a) > 1), *b2[-1:] * (len(b) > 1))


def _transpose_shape(attrs, x: Shape) -> Shape:
    (axes,) = attrs
    if axes is None:
        return tuple(reversed(x))
    axes = normal_axes(axes, len(x))
    if sorted(axes) != list(range(len(x))):
        raise ShapeError(f"axes {attrs[0]} are not a permutation of the {len(x)} axes")
    return tuple(x[a] for a in axes)


def _expand_dims_shape(attrs, g: Shape) -> Shape:
    (axes,) = attrs
    ndim = len(g) + len(axes)
    axes = normal_axes(axes, ndim)
    it = iter(g)
    return tuple(1 if i in axes else next(it) for i in range(ndim))


def _like(position: int):
    """The shape rule of an operation whose result has the shape of argument ``position``."""
    return lambda attrs, *shapes: shapes[position]


# -- derivative rules ----------------------------------------------------------------------------


def _zero(attrs, out, *xs):
    return (S.Zero,) * len(xs)


def _pow_partials(attrs, out, base, exp):
    if exp == S.Half:
        d_base = 1 / (2 * out)  # sqrt' = 1/(2·sqrt)
    elif exp == -1:
        d_base = -out**2  # (1/x)' = -1/x²
    else:
        d_base = exp * base ** (exp - 1)
    if exp.is_Number:
        return d_base, S.Zero
    if base.is_zero:
        return d_base, S.Zero  # 0**y is 0 for every y > 0 (PyTorch, JAX and autograd agree)
    if base.is_number and not base.is_extended_positive:
        raise NoRuleError(
            f"a power of {sp.sstr(base)} has no real derivative with respect to its exponent "
            f"(log({sp.sstr(base)}) is not real); make the base positive"
        )
    # out·log(base), and 0 where the base is 0 (there out is 0 and log(base) would be −inf): the
    # log is taken of 1 there, so no log(0) is computed; a negative base still says "invalid"
    safe = sp.Piecewise((S.One, sp.Eq(base, 0)), (base, True))
    return d_base, out * sp.log(safe)


def _max_or_min(sign: int):
    """Max or Min: the argument that wins gets the gradient; k arguments that tie get 1/k each.

    With two arguments that is H(x − y) with H(0) = 1/2; with more, an argument wins when it
    equals the result (exactly: the result is one of them, infinite or not); its one is
    ``ones_like(out)``, of the result's dtype (a choice between the numbers 1 and 0 would be
    float64; an argument may be a number).
    """

    def partials(attrs, out, *xs):
        if len(xs) == 2:
            x, y = xs
            return (sp.Heaviside(sign * (x - y), S.Half), sp.Heaviside(sign * (y - x), S.Half))
        wins = [sp.Piecewise((fn.ones_like(out), sp.Eq(x, out)), (S.Zero, True)) for x in xs]
        total = sp.Add(*wins)
        return tuple(w / total for w in wins)

    return partials


def _piecewise_partials(attrs, out, *xs):
    """Branch-safe: each branch's derivative lives under that branch's condition only."""
    (template,) = attrs
    slots = piecewise_slots(len(xs))
    put = dict(zip(slots, xs, strict=True))
    return tuple(derivative(template, s).xreplace(put) for s in slots)


def _spread(g, attrs):
    """A reduction's adjoint with the reduced axes put back (as length one) to broadcast."""
    axis, keepdims = attrs
    if axis is None or keepdims:
        return g
    return expand_dims(g, sp.Tuple(*axis))


def _sum_vjp(attrs, g, out, x):
    return (broadcast_like(_spread(g, attrs), x),)


def _mean_vjp(attrs, g, out, x):
    if attrs == (None, False):
        return (broadcast_like(g / size(x), x),)
    return (broadcast_like(_spread(g, attrs) * size(out) / size(x), x),)


def _max_vjp(attrs, g, out, x):
    axis, keepdims = attrs
    return (max_vjp(g, x, out, sp.Tuple(*(axis or ())), sp.true if keepdims else sp.false),)


def _logsumexp_vjp(attrs, g, out, x):
    """The shares exp(x − out), computed as exp(x − m)/Σ exp(x − m), m the maximum: x − m is
    exact, where x − out loses the digits of a large out (at 1000, 6e-5 in float32)."""
    axis, _ = attrs
    shares = sp.exp(x - fn.max(x, axis=axis, keepdims=True))
    return (_spread(g, attrs) * shares / fn.sum(shares, axis=axis, keepdims=True),)


def _softmax_vjp(attrs, g, out, x):
    (axis,) = attrs
    return (out * (g - fn.sum(g * out, axis=axis, keepdims=True)),)


def _log_softmax_vjp(attrs, g, out, x):
    (axis,) = attrs
    return (g - sp.exp(out) * fn.sum(g, axis=axis, keepdims=True),)


def _transpose_vjp(attrs, g, out, x):
    (axes,) = attrs
    if axes is None:
        return (fn.transpose(g),)
    inverse = sorted(range(len(axes)), key=lambda i: axes[i] % len(axes))
    return (fn.transpose(g, axes=inverse),)


# -- reading SymPy and showing as SymPy ----------------------------------------------------------


def _read_reduction(e: fn._Reduction):
    return (e.args[0],), (e.axis, e.keepdims)


def _show_reduction(cls):
    return lambda args, attrs: cls(args[0], axis=attrs[0], keepdims=attrs[1])


def _read_along(e: fn._AlongAxis):
    return (e.args[0],), (e.axis,)


def _read_transpose(e: fn.transpose):
    return (e.args[0],), (e.axes,)


def _read_heaviside(e: sp.Heaviside):
    h0 = e.args[1] if len(e.args) > 1 else S.Half
    if not h0.is_number:
        raise ModelError(f"Heaviside's value at 0 must be a number, not {h0}")
    return (e.args[0],), (h0,)


def _read_tuple_options(n: int):
    """Operands first, then ``n`` option arguments (a Tuple of axes, a flag, a number)."""

    def read(e):
        options = tuple(_option(a) for a in e.args[len(e.args) - n:])
        return e.args[: len(e.args) - n], options

    return read


def _option(a: sp.Basic):
    if isinstance(a, sp.Tuple):
        return tuple(int(v) for v in a)
    if isinstance(a, sp.logic.boolalg.BooleanAtom):
        return bool(a)
    if a.is_Integer:
        return int(a)
    return a


def _show_options(cls):
    def show(args, attrs):
        options = [sp.Tuple(*a) if isinstance(a, tuple) else (sp.true if a is True else sp.false
                   if a is False else a) for a in attrs]  # fmt: skip
        return cls(*args, *options)

    return show


# -- NumPy code ----------------------------------------------------------------------------------


def _method(name: str):
    """A reduction as a method of its operand: ``x.sum(axis=1)`` (a few µs faster than
    ``np.sum(x)`` on small arrays)."""

    def code(args: list[Code], attrs) -> Code:
        return f"{paren(args[0], ATOM)}.{name}({_axis_options(attrs)})", ATOM

    return code


def _axis_options(attrs) -> str:
    axis, keepdims = attrs
    options = []
    if axis is not None:
        options.append(f"axis={axis[0] if len(axis) == 1 else tuple(axis)}")
    if keepdims:
        options.append("keepdims=True")
    return ", ".join(options)


def _logsumexp_code(args: list[Code], attrs) -> Code:
    options = _axis_options(attrs)
    return f"_logsumexp({args[0][0]}{', ' + options if options else ''})", ATOM


def _transpose_code(args: list[Code], attrs) -> Code:
    (axes,) = attrs
    if axes is None:
        return f"{paren(args[0], ATOM)}.T", ATOM
    return f"np.transpose({args[0][0]}, {tuple(axes)})", ATOM


def _fold(function: str):
    def code(args: list[Code], attrs) -> Code:
        text = args[0][0]
        for a in args[1:]:
            text = f"{function}({text}, {a[0]})"
        return text, ATOM

    return code


def _binary(symbol: str, prec: int, right_assoc: bool = False):
    """An infix operator: the right operand parenthesized when it binds as loosely (so that the
    order of the computation is the IR's), a power's left operand likewise."""

    left_min, right_min = (prec + 1, UNARY) if right_assoc else (prec, prec + 1)
    space = " " if prec == SUM or symbol == "@" else ""  # k*x + b, as SymPy writes it
    between = f"{space}{symbol}{space}"

    def code(args: list[Code], attrs) -> Code:
        (left, left_prec), (right, right_prec) = args
        if left_prec < left_min:
            left = f"({left})"
        if right_prec < right_min:
            right = f"({right})"
        return f"{left}{between}{right}", prec

    return code


def _neg_code(args: list[Code], attrs) -> Code:
    """``-a*b`` for -(a*b): (-a)*b is the same number (rounding is symmetric in sign); but
    ``-(A @ B)``, which negates the (often smaller) result, not A."""
    (text, prec), = args
    if prec == PRODUCT and not text.startswith("-") and " @ " not in text:
        return f"-{text}", PRODUCT
    return f"-{paren(args[0], UNARY)}", UNARY


def _expand_dims_code(args: list[Code], attrs) -> Code:
    (axes,) = attrs
    return f"np.expand_dims({args[0][0]}, {axes[0] if len(axes) == 1 else tuple(axes)})", ATOM


def _full_like_code(args: list[Code], attrs) -> Code:
    """An array like x full of c: ``[()]`` makes a scalar's a NumPy scalar, as every other
    value of a scalar is (an array's is the array itself)."""
    (c,) = attrs
    if c == 0:
        return f"np.zeros_like({args[0][0]})[()]", ATOM
    return f"np.full_like({args[0][0]}, {float(c)!r})[()]", ATOM


def _max_vjp_code(args: list[Code], attrs) -> Code:
    axes, keepdims = attrs
    g, x, out = (a[0] for a in args)
    return f"_max_grad({g}, {x}, {out}, {tuple(axes) if axes else None}, {keepdims})", ATOM


def _polygamma_code(args: list[Code], attrs) -> Code:
    """ψ⁽ⁿ⁾(x) = (−1)ⁿ⁺¹ n! ζ(n + 1, x) for n ≥ 1, as SciPy's own polygamma computes it, but
    in x's dtype (SciPy's multiplies by a float64)."""
    (n,) = attrs
    if n == 0:
        return f"scipy.special.digamma({args[0][0]})", ATOM
    factor = (-1) ** (n + 1) * math.factorial(n)
    call = f"scipy.special.zeta({n + 1}, {args[0][0]})"
    return (call, ATOM) if factor == 1 else (f"{factor}*{call}", UNARY if factor < 0 else PRODUCT)


def _heaviside_code(args: list[Code], attrs) -> Code:
    return f"np.heaviside({args[0][0]}, {number_code(attrs[0])[0]})", ATOM


def _sinc_code(args: list[Code], attrs) -> Code:
    return f"np.sinc({paren(args[0], PRODUCT)}/np.pi)", ATOM  # NumPy's sinc is sin(πx)/(πx)


def _compare(symbol: str):
    def code(args: list[Code], attrs) -> Code:
        return f"{paren(args[0], SUM)} {symbol} {paren(args[1], SUM)}", COMPARISON

    return code


def _where_code(args: list[Code], attrs) -> Code:
    return f"np.where({args[0][0]}, {args[1][0]}, {args[2][0]})", ATOM


def number_code(value: sp.Basic) -> Code:
    """A number as code that gives a Python float (which takes the dtype of the arrays it
    meets, where a NumPy float64 would widen float32 to float64): exact fractions as a
    division, floats at full precision, other constants with ``math`` where it has their
    functions, else as a float.

    >>> number_code(sp.Rational(-3, 4)), number_code(sp.Float(0.1)), number_code(sp.pi)
    (('-3/4', 60), ('0.1', 100), ('np.pi', 100))
    >>> number_code(sp.log(2)), number_code(2/sp.sqrt(sp.pi))
    (('math.log(2)', 100), ('2/math.sqrt(math.pi)', 50))
    """
    if value is S.Pi:
        return "np.pi", ATOM
    if value is S.Exp1:
        return "np.e", ATOM
    if value.is_Integer:
        return str(int(value)), (UNARY if value < 0 else ATOM)
    if value.is_Rational:
        return f"{value.p}/{value.q}", PRODUCT
    if value.is_Float or value.is_number:
        v = float(value)
        if not math.isfinite(v):
            raise ModelError(f"{value} is not a finite number")
        if not value.is_Float:
            printer = PythonCodePrinter({"fully_qualified_modules": True, "strict": False})
            text = printer.doprint(value)
            names = set(re.findall(r"(?<![\w.])[A-Za-z_]\w*", text))  # (math's own alone)
            # written with math where that is short and gives exactly the number's float
            if (names == {"math"} and not printer._not_supported and len(text) <= 40
                    and eval(text, {"__builtins__": {}, "math": math}) == v):
                return text, ATOM if re.fullmatch(r"math\.\w+\([\w.]*\)", text) else SUM
        return repr(v), (UNARY if v < 0 else ATOM)
    raise ModelError(f"{value} is not a number")


def _const_code(args: list[Code], attrs) -> Code:
    return number_code(attrs[0])


# -- the records -------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Op:
    """Everything about one operation (see the module docstring)."""

    name: str
    sympy: tuple[type, ...] = ()  # the SymPy classes the front end reads as this operation
    arity: int | None = 1  # None: any number of operands
    elementwise: bool = True
    partials: Callable | None = None  # elementwise: (attrs, out, *args) -> ∂out/∂args
    vjp: Callable | None = None  # otherwise: (attrs, g, out, *args) -> cotangents
    shape: Callable | None = None  # not elementwise: (attrs, *shapes) -> shape
    numpy: str | Callable = ""  # "np.exp({0})", or (args: list[Code], attrs) -> Code
    helper: str | None = None  # the helper function the NumPy code calls
    text: str | None = None  # its name in the text language (the CLI, model files)
    read: Callable | None = None  # SymPy expression -> (operands, attrs)
    show: Callable | None = None  # (SymPy operands, attrs) -> SymPy expression, for views
    extra: str | None = None  # the optional extra (pip install symgrad[...]) it needs
    nonsmooth: str = ""  # its convention at points where it has no derivative
    differentiable: bool = True  # False: only inside a Piecewise template (conditions)
    jvp: Callable | None = None  # forward mode: (attrs, out, tangents, *args) -> tangent
    along: Callable | None = None  # a reduction or softmax: (attrs, ndim) -> the axes it mixes
    rows: Callable | None = None  # otherwise: (operand shapes, which carry the rows) -> whether
    # the result's first axis is those rows, each computed from its own (symgrad.chunked)
    safe: tuple | None = None  # per operand, a value where it is finite (None: any value): a
    # Piecewise branch not taken computes there in the array API code (nothing silences
    # floating-point warnings there)

    def operands(self, e: sp.Basic) -> tuple[tuple, tuple]:
        """``e``'s operands and attrs as this operation reads them."""
        if self.read is not None:
            return self.read(e)
        return e.args, ()

    def scalar_result(self, attrs: tuple) -> bool:
        """Whether the result is a scalar whatever the operands' shapes: a reduction over every
        axis (``sum(x)``, ``mean(x)``), or a size."""
        return self.name == "size" or (self.shape is _reduced and attrs == (None, False))

    def sympy_of(self, args: tuple, attrs: tuple) -> sp.Basic:
        """The operation over SymPy ``args``, as the views show it."""
        if self.show is not None:
            return self.show(args, attrs)
        return self.sympy[0](*args)


def _elementwise(name, cls, code, partials, text=None, **more) -> Op:
    return Op(name, (cls,) if cls is not None else (), 1, True, partials, numpy=code,
              text=text if text is not None else name, **more)


_RECORDS: list[Op] = [
    # structure
    Op("input", arity=0, numpy=""),
    Op("const", arity=0, numpy=_const_code, show=lambda args, attrs: attrs[0]),
    Op("copy", partials=lambda a, out, x: (S.One,), numpy="{0}", shape=lambda attrs, x: x,
       show=lambda args, attrs: args[0]),
    # arithmetic: the front end writes SymPy's sums, products and powers with these
    Op("add", arity=2, partials=lambda a, out, x, y: (S.One, S.One), numpy=_binary("+", SUM),
       show=lambda args, attrs: args[0] + args[1]),
    Op("sub", arity=2, partials=lambda a, out, x, y: (S.One, S.NegativeOne),
       numpy=_binary("-", SUM), show=lambda args, attrs: args[0] - args[1]),
    Op("mul", arity=2, partials=lambda a, out, x, y: (y, x), numpy=_binary("*", PRODUCT),
       show=lambda args, attrs: args[0] * args[1]),
    Op("div", arity=2, partials=lambda a, out, x, y: (1 / y, -out / y), safe=(None, 1.0),
       numpy=_binary("/", PRODUCT), show=lambda args, attrs: args[0] / args[1]),
    Op("neg", partials=lambda a, out, x: (S.NegativeOne,), numpy=_neg_code,
       show=lambda args, attrs: -args[0]),
    Op("pow", arity=2, partials=_pow_partials, numpy=_binary("**", POWER, right_assoc=True),
       safe=(1.0, None),
       show=lambda args, attrs: args[0] ** args[1],
       nonsmooth="d/dy x**y is 0 where x = 0"),
    Op("sqrt", partials=lambda a, out, x: (1 / (2 * out),), numpy="np.sqrt({0})", text="sqrt",
       safe=(1.0,),
       show=lambda args, attrs: sp.sqrt(args[0])),
    # elementwise functions
    _elementwise("exp", sp.exp, "np.exp({0})", lambda a, out, x: (out,),
                 safe=(0.0,)),
    _elementwise("log", sp.log, "np.log({0})", lambda a, out, x: (1 / x,),
                 safe=(1.0,)),
    _elementwise("sin", sp.sin, "np.sin({0})", lambda a, out, x: (sp.cos(x),)),
    _elementwise("cos", sp.cos, "np.cos({0})", lambda a, out, x: (-sp.sin(x),)),
    _elementwise("tan", sp.tan, "np.tan({0})", lambda a, out, x: (1 + out**2,),
                 safe=(0.0,)),
    _elementwise("sinh", sp.sinh, "np.sinh({0})", lambda a, out, x: (sp.cosh(x),),
                 safe=(0.0,)),
    _elementwise("cosh", sp.cosh, "np.cosh({0})", lambda a, out, x: (sp.sinh(x),),
                 safe=(0.0,)),
    _elementwise("tanh", sp.tanh, "np.tanh({0})", lambda a, out, x: (1 - out**2,)),
    _elementwise("asin", sp.asin, "np.arcsin({0})", lambda a, out, x: (1 / sp.sqrt(1 - x**2),),
                 safe=(0.0,)),
    _elementwise("acos", sp.acos, "np.arccos({0})",
                 lambda a, out, x: (-1 / sp.sqrt(1 - x**2),),
                 safe=(0.0,)),
    _elementwise("atan", sp.atan, "np.arctan({0})", lambda a, out, x: (1 / (1 + x**2),)),
    _elementwise("asinh", sp.asinh, "np.arcsinh({0})",
                 lambda a, out, x: (1 / sp.sqrt(x**2 + 1),)),
    _elementwise("acosh", sp.acosh, "np.arccosh({0})",
                 lambda a, out, x: (1 / sp.sqrt(x**2 - 1),),
                 safe=(2.0,)),
    _elementwise("atanh", sp.atanh, "np.arctanh({0})", lambda a, out, x: (1 / (1 - x**2),),
                 safe=(0.0,)),
    _elementwise("log1p", log1p, "np.log1p({0})", lambda a, out, x: (1 / (1 + x),),
                 safe=(0.0,)),
    _elementwise("expm1", expm1, "np.expm1({0})", lambda a, out, x: (out + 1,),
                 safe=(0.0,)),
    _elementwise("log2", log2, "np.log2({0})", lambda a, out, x: (1 / (x * sp.log(2)),),
                 safe=(1.0,)),
    _elementwise("log10", log10, "np.log10({0})", lambda a, out, x: (1 / (x * sp.log(10)),),
                 safe=(1.0,)),
    _elementwise("exp2", exp2, "np.exp2({0})", lambda a, out, x: (out * sp.log(2),),
                 safe=(0.0,)),
    _elementwise("erf", sp.erf, "scipy.special.erf({0})",
                 lambda a, out, x: (2 / sp.sqrt(sp.pi) * sp.exp(-x**2),), extra="scipy"),
    _elementwise("erfc", sp.erfc, "scipy.special.erfc({0})",
                 lambda a, out, x: (-2 / sp.sqrt(sp.pi) * sp.exp(-x**2),), extra="scipy"),
    _elementwise("gammaln", sp.loggamma, "scipy.special.gammaln({0})",
                 lambda a, out, x: (sp.polygamma(0, x),), extra="scipy"),
    Op("polygamma", (sp.polygamma,), 1, True,
       lambda a, out, x: (sp.polygamma(a[0] + 1, x),),
       numpy=_polygamma_code,
       read=lambda e: ((e.args[1],), (_order(e.args[0]),)),
       show=lambda args, attrs: sp.polygamma(attrs[0], args[0]), extra="scipy"),
    _elementwise("sinc", sp.sinc, _sinc_code, lambda a, out, x: (sinc_derivative(x),)),
    _elementwise("sigmoid", fn.sigmoid, "_sigmoid({0})",
                 lambda a, out, x: (out * sigmoid_complement(out, x),), helper="_sigmoid"),
    _elementwise("softplus", fn.softplus, "np.logaddexp(0, {0})",
                 lambda a, out, x: (fn.sigmoid(x),)),
    _elementwise("relu", fn.relu, "np.maximum({0}, 0)", lambda a, out, x: (sp.Heaviside(x, 0),),
                 nonsmooth="relu'(0) = 0"),
    _elementwise("abs", sp.Abs, "np.abs({0})", lambda a, out, x: (sp.sign(x),), text="Abs",
                 nonsmooth="|x|'(0) = 0"),
    _elementwise("sign", sp.sign, "np.sign({0})", _zero, nonsmooth="sign' = 0"),
    _elementwise("floor", sp.floor, "np.floor({0})", _zero, nonsmooth="floor' = 0"),
    _elementwise("ceiling", sp.ceiling, "np.ceil({0})", _zero, nonsmooth="ceiling' = 0"),
    _elementwise("ones_like", fn.ones_like, "np.ones_like({0})", _zero, text=""),
    Op("heaviside", (sp.Heaviside,), 1, True, _zero, numpy=_heaviside_code, text="Heaviside",
       read=_read_heaviside, show=lambda args, attrs: sp.Heaviside(args[0], attrs[0]),
       nonsmooth="Heaviside' = 0"),
    Op("atan2", (sp.atan2,), 2, True,
       lambda a, out, y, x: (x / (x**2 + y**2), -y / (x**2 + y**2)),
       numpy="np.arctan2({0}, {1})", text="atan2"),
    Op("logaddexp", (fn.logaddexp,), 2, True,
       lambda a, out, x, y: (sp.exp(x - out), sp.exp(y - out)),
       numpy="np.logaddexp({0}, {1})", text="logaddexp"),
    Op("hypot", (fn.hypot,), 2, True, lambda a, out, x, y: (x / out, y / out),
       numpy="np.hypot({0}, {1})", text="hypot", nonsmooth="undefined at (0, 0): NaN there"),
    Op("maximum", (sp.Max,), None, True, _max_or_min(+1), numpy=_fold("np.maximum"), text="Max",
       nonsmooth="tied arguments share the gradient equally"),
    Op("minimum", (sp.Min,), None, True, _max_or_min(-1), numpy=_fold("np.minimum"), text="Min",
       nonsmooth="tied arguments share the gradient equally"),
    Op("sinc_derivative", (sinc_derivative,), 1, True,
       lambda a, out, x: (-(2 * sinc_derivative(x) / x + sp.sinc(x)),),  # (from sinc'' formula)
       numpy="_sinc_derivative({0})", helper="_sinc_derivative"),
    Op("sigmoid_complement", (sigmoid_complement,), 2, True,
       lambda a, out, s, x: (S.Zero, -out * (1 - out)),
       numpy=lambda args, attrs: (f"_sigmoid_complement({args[1][0]})", ATOM),
       helper="_sigmoid_complement"),
    # a Piecewise: its template over slots, computed as a whole (branch-safe)
    Op("piecewise", arity=None, partials=_piecewise_partials, numpy="",
       show=lambda args, attrs: attrs[0].xreplace(dict(zip(piecewise_slots(len(args)), args,
                                                              strict=True)))),
    # conditions and selection: inside a Piecewise template only
    *(Op(name, (cls,), 2, True, numpy=_compare(symbol), differentiable=False)
      for name, cls, symbol in (("lt", sp.StrictLessThan, "<"), ("le", sp.LessThan, "<="),
                                ("gt", sp.StrictGreaterThan, ">"), ("ge", sp.GreaterThan, ">="),
                                ("eq", sp.Equality, "=="), ("ne", sp.Unequality, "!="))),
    Op("and", (sp.And,), None, True, numpy=_fold("np.logical_and"), differentiable=False),
    Op("or", (sp.Or,), None, True, numpy=_fold("np.logical_or"), differentiable=False),
    Op("not", (sp.Not,), 1, True, numpy="np.logical_not({0})", differentiable=False),
    Op("where", (), 3, True, numpy=_where_code, differentiable=False),
    Op("ite", (sp.ITE,), 3, True, numpy=_where_code, differentiable=False),  # (of conditions)
    Op("true", arity=0, numpy=lambda args, attrs: ("True", ATOM), differentiable=False),
    Op("false", arity=0, numpy=lambda args, attrs: ("False", ATOM), differentiable=False),
    # reductions and other operations that are not elementwise
    Op("sum", (fn.sum,), 1, False, vjp=_sum_vjp, shape=_reduced, numpy=_method("sum"),
       along=_reduction_axes,
       read=_read_reduction, show=_show_reduction(fn.sum), text="sum"),
    Op("mean", (fn.mean,), 1, False, vjp=_mean_vjp, shape=_reduced, numpy=_method("mean"),
       along=_reduction_axes,
       read=_read_reduction, show=_show_reduction(fn.mean), text="mean"),
    Op("max", (fn.max,), 1, False, vjp=_max_vjp, shape=_reduced, numpy=_method("max"),
       along=_reduction_axes,
       read=_read_reduction, show=_show_reduction(fn.max), text="max",
       nonsmooth="tied maxima share the gradient equally"),
    Op("logsumexp", (fn.logsumexp,), 1, False, vjp=_logsumexp_vjp, shape=_reduced,
       along=_reduction_axes,
       numpy=_logsumexp_code, helper="_logsumexp", read=_read_reduction,
       show=_show_reduction(fn.logsumexp), text="logsumexp"),
    Op("softmax", (fn.softmax,), 1, False, vjp=_softmax_vjp, shape=_along, along=normal_axes,
       numpy=lambda args, attrs: (f"_softmax({args[0][0]}, {attrs[0]})", ATOM),
       helper="_softmax", read=_read_along, text="softmax",
       show=lambda args, attrs: fn.softmax(args[0], axis=attrs[0])),
    Op("log_softmax", (fn.log_softmax,), 1, False, vjp=_log_softmax_vjp, shape=_along,
       along=normal_axes,
       numpy=lambda args, attrs: (f"_log_softmax({args[0][0]}, {attrs[0]})", ATOM),
       helper="_log_softmax", read=_read_along, text="log_softmax",
       show=lambda args, attrs: fn.log_softmax(args[0], axis=attrs[0])),
    Op("matmul", (fn.matmul,), 2, False,
       rows=lambda shapes, carrying: carrying == [True, False] and len(shapes[0]) == 2
       and len(shapes[1]) in (1, 2),  # (rows @ a matrix or vector)
       vjp=lambda a, g, out, x, y: (matmul_vjp(g, x, y, 0), matmul_vjp(g, x, y, 1)),
       shape=_matmul_shape, numpy=_binary("@", PRODUCT), text="matmul"),
    Op("transpose", (fn.transpose,), 1, False, vjp=_transpose_vjp, shape=_transpose_shape,
       numpy=_transpose_code, read=_read_transpose, text="transpose",
       show=lambda args, attrs: fn.transpose(args[0], axes=attrs[0])),
    # what the reverse sweep inserts
    Op("size", (size,), 1, False, vjp=_zero, shape=lambda attrs, x: (), numpy="np.size({0})"),
    Op("sum_to", (sum_to,), 2, False, vjp=lambda a, g, out, x, like: (sum_to(g, x), S.Zero),
       shape=_like(1), numpy="_sum_to({0}, {1})", helper="_sum_to"),
    Op("broadcast_like", (broadcast_like,), 2, False,
       vjp=lambda a, g, out, x, like: (sum_to(g, x), S.Zero), shape=_like(1),
       numpy="np.broadcast_to({0}, np.shape({1}))"),
    Op("full_like", (full_like,), 1, False, vjp=_zero, shape=_like(0), numpy=_full_like_code,
       read=_read_tuple_options(1), show=_show_options(full_like)),
    Op("expand_dims", (expand_dims,), 1, False,
       vjp=lambda a, g, out, x: (fn.sum(g, axis=a[0]),), shape=_expand_dims_shape,
       numpy=_expand_dims_code, read=_read_tuple_options(1), show=_show_options(expand_dims)),
    Op("matmul_vjp", (matmul_vjp,), 3, False, shape=lambda attrs, g, a, b: (a, b)[attrs[0]],
       numpy=lambda args, attrs: (
           f"_matmul_grad({', '.join(a[0] for a in args)}, {attrs[0]})", ATOM),
       helper="_matmul_grad", read=_read_tuple_options(1), show=_show_options(matmul_vjp)),
    Op("max_vjp", (max_vjp,), 3, False, shape=_like(1), numpy=_max_vjp_code,
       helper="_max_grad", read=_read_tuple_options(2), show=_show_options(max_vjp)),
]


def _order(n: sp.Basic) -> int:
    if not (n.is_Integer and n >= 0):
        raise ModelError(f"polygamma's order must be a whole number >= 0, not {n}")
    return int(n)


#: Every operation, by name.
OPS: dict[str, Op] = {op.name: op for op in _RECORDS}

#: SymPy class -> the operation the front end reads it as.
BY_CLASS: dict[type, Op] = {cls: op for op in _RECORDS for cls in op.sympy}

_SLOTS: list[sp.Symbol] = []


def piecewise_slots(n: int) -> list[sp.Symbol]:
    """The symbols a Piecewise template is written over: its operands, in order."""
    while len(_SLOTS) < n:
        _SLOTS.append(sp.Symbol(f"_p{len(_SLOTS)}", real=True))
    return _SLOTS[:n]


def record_of(e: sp.Basic) -> Op | None:
    """The record of a SymPy operation (by its class, or a base class), or None."""
    for cls in type(e).__mro__:
        op = BY_CLASS.get(cls)
        if op is not None:
            return op
    return None


#: What a user may write, as the refusal of anything else lists it.
SUPPORTED = (
    "+ - * / **, sqrt, Piecewise and "
    + ", ".join(sorted({op.text for op in _RECORDS if op.text and op.differentiable},
                       key=str.lower))
)


def derivative(expr: sp.Basic, v: sp.Symbol, memo: dict | None = None) -> sp.Expr:
    """d expr / d v over the expression's DAG (forward mode), with the rules of the records.

    A reduction is linear: d sum(e)/dv = sum(de/dv), the derivative with respect to a uniform
    shift of ``v`` (the ordinary derivative when ``v`` is a scalar).

    >>> x = sp.Symbol("x", real=True)
    >>> derivative(fn.sigmoid(x**2), x)
    2*x*sigmoid(x**2)*(1 - sigmoid(x**2))
    >>> derivative(fn.relu(x), x)
    Heaviside(x, 0)
    """
    memo = {} if memo is None else memo
    stack = [expr]
    while stack:  # iterative post-order, so deep models do not hit the recursion limit
        e = stack[-1]
        if e in memo:
            stack.pop()
            continue
        if e == v:
            memo[e] = S.One
        elif not e.args or e.is_number:
            memo[e] = S.Zero
        elif isinstance(e, sp.Piecewise):
            pieces = [(derivative(p.expr, v, memo), p.cond) for p in e.args]
            memo[e] = sp.Piecewise(*pieces) if any(d != 0 for d, _ in pieces) else S.Zero
        else:
            op = _arithmetic(e) or record_of(e)
            operands, attrs = op.operands(e) if op is not None else (e.args, ())
            todo = [a for a in operands if a not in memo]
            if todo:
                stack.extend(todo)
                continue
            memo[e] = _derivative_of(e, op, operands, attrs, memo)
        stack.pop()
    return memo[expr]


def _arithmetic(e: sp.Basic) -> Op | None:
    return _ARITHMETIC.get(type(e))


def _derivative_of(e, op, operands, attrs, memo) -> sp.Expr:
    ds = [memo[a] for a in operands]
    if all(d == 0 for d in ds):
        return S.Zero
    if isinstance(e, sp.Add):
        return sp.Add(*ds)
    if isinstance(e, sp.Mul):
        return sp.Add(*(d * sp.Mul(*(a for j, a in enumerate(operands) if j != i))
                        for i, d in enumerate(ds) if d != 0))
    if op is None:
        raise NoRuleError(f"no derivative rule for {type(e).__name__} (in {sp.sstr(e)})")
    if op.name in ("sum", "mean"):  # linear: d reduce(e) = reduce(de)
        d = ds[0]
        if not operands[0].free_symbols <= d.free_symbols:  # keep the shape of a constant
            d = d * fn.ones_like(operands[0])
        return e.func(d, *e.args[1:])
    if op.name == "transpose":
        return e.func(ds[0], *e.args[1:])
    if op.name == "matmul":
        a, b = operands
        return fn.matmul(ds[0], b) + fn.matmul(a, ds[1])
    if not op.elementwise or op.partials is None:
        raise NoRuleError(
            f"no symbolic derivative for {type(e).__name__} (the compiled gradient works; only "
            "the SymPy expression of the gradient is not available)"
        )
    partials = op.partials(attrs, e, *operands)
    return sp.Add(*(p * d for p, d in zip(partials, ds, strict=True) if d != 0))


_ARITHMETIC: dict[type, Op] = {sp.Add: Op("_add"), sp.Mul: Op("_mul"),
                               sp.Pow: Op("pow", partials=_pow_partials)}


__all__ = ["BY_CLASS", "OPS", "SUPPORTED", "Op", "broadcast", "derivative", "record_of"]
