"""SymPy expression -> NumPy source text, one line at a time.

A subclass of SymPy's ``NumPyPrinter`` that writes ``np.exp`` (not ``numpy.exp``), floats at
full precision, comparisons as operators, Piecewise as nested ``np.where``, and symgrad's own
functions in their numerically stable forms. How each function is computed is one entry in
``CALLS`` (or, for a stable helper, in ``HELPERS``).

>>> import sympy as sp
>>> from symgrad.functions import sigmoid, softplus
>>> x = sp.Symbol("x", real=True)
>>> p = Printer()
>>> p.doprint(softplus(-x) + sp.exp(x)/2)
'np.exp(x)/2 + np.logaddexp(0, -x)'
>>> p.doprint(sp.Piecewise((sp.log(x), x > 0), (0, True)))
'np.where(x > 0, np.log(x), 0.0)'
"""

from __future__ import annotations

import sympy as sp
from sympy.codegen.cfunctions import exp2, expm1, log1p, log2, log10
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.precedence import PRECEDENCE, precedence

from ..construct import new
from ..errors import ModelError
from ..functions import (
    FUNCTIONS,
    log_softmax,
    logsumexp,
    matmul,
    max,
    mean,
    ones_like,
    relu,
    sigmoid,
    softmax,
    softplus,
    sum,
)
from ..ops import (
    broadcast_like,
    expand_dims,
    full_like,
    matmul_vjp,
    max_vjp,
    sigmoid_complement,
    sinc_derivative,
    size,
    sum_to,
)
from . import fastprint

#: Function class -> a template for its NumPy code, with {0}, {1}, ... for its arguments.
CALLS: dict[type, str] = {
    sigmoid: "_sigmoid({0})",
    sigmoid_complement: "_sigmoid_complement({1})",  # 1 - s for s = sigmoid(x), from x
    softplus: "np.logaddexp(0, {0})",
    relu: "np.maximum({0}, 0)",
    size: "np.size({0})",
    matmul_vjp: "_matmul_grad({0}, {1}, {2}, {3})",
    max_vjp: "_max_grad({0}, {1}, {2}, {3}, {4})",
    softmax: "_softmax({0}, {1})",
    log_softmax: "_log_softmax({0}, {1})",
    sum_to: "_sum_to({0}, {1})",
    sinc_derivative: "_sinc_derivative({0})",
    ones_like: "np.ones_like({0})",
    sp.Abs: "np.abs({0})",
    sp.sign: "np.sign({0})",
    sp.exp: "np.exp({0})",
    sp.log: "np.log({0})",
    sp.sin: "np.sin({0})",
    sp.cos: "np.cos({0})",
    sp.tan: "np.tan({0})",
    sp.sinh: "np.sinh({0})",
    sp.cosh: "np.cosh({0})",
    sp.tanh: "np.tanh({0})",
    sp.asin: "np.arcsin({0})",
    sp.acos: "np.arccos({0})",
    sp.atan: "np.arctan({0})",
    sp.asinh: "np.arcsinh({0})",
    sp.acosh: "np.arccosh({0})",
    sp.atanh: "np.arctanh({0})",
    sp.atan2: "np.arctan2({0}, {1})",
    sp.erf: "_erf({0})",
    sp.erfc: "_erfc({0})",
    sp.floor: "np.floor({0})",
    sp.ceiling: "np.ceil({0})",
    log1p: "np.log1p({0})",
    expm1: "np.expm1({0})",
    log2: "np.log2({0})",
    log10: "np.log10({0})",
    exp2: "np.exp2({0})",
}

#: The elementwise calls the fast path prints (fastprint.py), exactly as the full printer does.
ELEMENTWISE = (sigmoid, softplus, relu, sp.Abs, sp.sign, sp.exp, sp.log, sp.sin, sp.cos, sp.tan,
               sp.sinh, sp.cosh, sp.tanh, sp.asin, sp.acos, sp.atan)
FAST_CALLS: dict[type, str] = {cls: CALLS[cls] for cls in (*ELEMENTWISE, sigmoid_complement)}

#: Reductions: class -> a NumPy method (``.sum``: ``x.sum()``, a few µs faster than
#: ``np.sum(x)`` on small arrays) or a helper function, with ``axis=`` and ``keepdims=`` as
#: needed.
REDUCTIONS: dict[type, str] = {
    sum: ".sum",
    mean: ".mean",
    max: ".max",
    logsumexp: "_logsumexp",
}

#: Functions printed by a method of Printer below (not by a template).
OWN_METHODS: tuple[type, ...] = (
    sp.Max, sp.Min, sp.Heaviside, sp.sinc, broadcast_like, full_like, expand_dims,
    *FUNCTIONS,
)

#: Every function class the generated code can compute: anything else is refused at compile
#: time (``check_printable``), never written as a call that fails when it runs.
PRINTABLE: frozenset[type] = frozenset({*CALLS, *REDUCTIONS, *OWN_METHODS})

#: What a user may write, as the refusal of anything else lists it.
SUPPORTED = (
    "+ - * / **, exp, log, sqrt, sin, cos, tan, sinh, cosh, tanh, asin, acos, atan, asinh, "
    "acosh, atanh, atan2, erf, erfc, Abs, sign, floor, ceiling, Max, Min, Heaviside, sinc, "
    "Piecewise, "
    "and symgrad's "
    + ", ".join(f.__name__ for f in FUNCTIONS)
)


def cannot_compute(expr: sp.Basic, where: str = "", show: bool = True) -> ModelError:
    """The error for a function the generated code cannot compute, naming it (and, if
    ``show``, the expression it is in)."""
    name = type(expr).__name__
    shown = f" (in {sp.sstr(expr)})" if show else ""
    return ModelError(
        f"{where}symgrad cannot compute {name}{shown}: NumPy code for it is not known; the "
        f"functions symgrad computes are {SUPPORTED}"
    )


#: Helper functions the generated module defines when it uses them, keyed by name.
HELPERS: dict[str, str] = {
    "_sigmoid": '''\
def _sigmoid(x):
    """1/(1 + exp(-x)): where exp(-x) overflows to inf (x < -709) the result is the right 0."""
    with np.errstate(over="ignore", under="ignore"):
        return 1 / (1 + np.exp(-x))
''',
    "_sigmoid_complement": '''\
def _sigmoid_complement(x):
    """1 - sigmoid(x) = 1/(1 + exp(x)), exact where sigmoid(x) rounds near 1 and 1 - sigmoid(x)
    would cancel; where exp(x) overflows (x > 709) the result is the right 0."""
    with np.errstate(over="ignore"):
        e = np.exp(x)
    e += 1
    return np.reciprocal(e, out=e) if isinstance(e, np.ndarray) else 1 / e
''',
    "_logsumexp": '''\
def _logsumexp(x, axis=None, keepdims=False):
    """log(sum(exp(x))) over axis, shifted by the maximum so that exp never overflows."""
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)
''',
    "_softmax": '''\
def _softmax(x, axis):
    """exp(x)/sum(exp(x)) along axis, shifted by the maximum so that exp never overflows."""
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)
''',
    "_log_softmax": '''\
def _log_softmax(x, axis):
    """x - logsumexp(x) along axis, without ever taking log(0)."""
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))
''',
    "_matmul_grad": '''\
def _matmul_grad(g, a, b, which):
    """The gradient of a (which=0: g @ b.T) or b (which=1: a.T @ g) in a @ b.

    NumPy's rules for 1-D operands (promoted to matrices, then squeezed) and stacks of them.
    """
    if a.ndim == 1 and b.ndim == 1:  # an inner product
        return g * (b if which == 0 else a)
    a2 = a[np.newaxis, :] if a.ndim == 1 else a
    b2 = b[:, np.newaxis] if b.ndim == 1 else b
    g2 = np.expand_dims(g, -2) if a.ndim == 1 else g
    g2 = np.expand_dims(g2, -1) if b.ndim == 1 else g2
    if which == 0:
        d = g2 @ np.swapaxes(b2, -1, -2)
        return _sum_to(d[..., 0, :] if a.ndim == 1 else d, a)
    d = np.swapaxes(a2, -1, -2) @ g2
    return _sum_to(d[..., :, 0] if b.ndim == 1 else d, b)
''',
    "_max_grad": '''\
def _max_grad(g, x, out, axis, keepdims):
    """The gradient of x in out = max(x, axis): shared equally by the elements that tie."""
    axis = axis or None
    if not keepdims and axis is not None:
        g, out = np.expand_dims(g, axis), np.expand_dims(out, axis)
    hit = x == out
    return hit * (g / np.sum(hit, axis=axis, keepdims=True))
''',
    "_sinc_derivative": '''\
def _sinc_derivative(x):
    """d/dx sin(x)/x = (cos(x) - sin(x)/x)/x, by its Taylor series where |x| < 1/2 (there the
    formula cancels, and is 0/0 at 0); each branch is computed where it is taken only."""
    near = np.abs(x) < 0.5
    s = np.where(near, x, 0.0)
    far = np.where(near, 1.0, x)
    t = s * s
    series = s * (-1/3 + t*(1/30 + t*(-1/840 + t*(1/45360 + t*(-1/3991680 + t*(
        1/518918400 - t/93405312000))))))
    return np.where(near, series, (np.cos(far) - np.sin(far)/far)/far)
''',
    "_erf": '''\
def _erf(x):
    """erf(x), element by element: NumPy has none; Python's math.erf is exact to the last digit
    (it costs about 0.1 µs an element, a NumPy function a few ns)."""
    import math

    return np.vectorize(math.erf, otypes=[float])(x)[()]  # [()]: a scalar for a scalar
''',
    "_erfc": '''\
def _erfc(x):
    """erfc(x) = 1 - erf(x), element by element, exact where 1 - erf(x) would cancel (x > 3):
    Python's math.erfc, as _erf."""
    import math

    return np.vectorize(math.erfc, otypes=[float])(x)[()]
''',
    "_sum_to": '''\
def _sum_to(g, like):
    """Sum the gradient g over the axes along which `like` was broadcast."""
    shape = np.shape(like)
    if np.shape(g) == shape:
        return g
    g = np.broadcast_to(g, np.broadcast_shapes(np.shape(g), shape))
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and g.shape[lead + i] != 1
    )
    return np.sum(g, axis=axes).reshape(shape)
''',
}


def _matmul_text(printer, expr) -> str:
    """``a @ b`` with each operand parenthesized where Python would read it otherwise: ``@``
    binds like ``*`` and ``/``, from the left (``(w*A) @ v``, ``A @ (w*v)``, ``A @ B @ C``)."""
    a, b = expr.args
    mul = PRECEDENCE["Mul"]  # (SymPy's strict=False: parenthesized at Mul's precedence too)
    left = printer._print(a) if isinstance(a, matmul) else _operand(printer, a, mul)
    return f"{left} @ {_operand(printer, b, mul)}"


def _operand(printer, e, level: int) -> str:
    """``e`` as an operand at ``level``; a power with a negative exponent is printed as a
    quotient (``1/U``), which binds as a product does, not as a power."""
    if isinstance(e, sp.Pow) and e.exp.is_number and e.exp.is_negative:
        return f"({printer._print(e)})"
    return printer.parenthesize(e, level)


class MatmulParentheses:
    """For a printer of ``@``: a matrix product is parenthesized as the operand of any operator
    (``@`` binds like ``*`` in Python; a sum prints its terms without asking)."""

    def parenthesize(self, item, level, strict=False):
        if isinstance(item, matmul):
            return f"({self._print(item)})"
        return super().parenthesize(item, level, strict)

    def _print_matmul(self, expr):
        return _matmul_text(self, expr)


def _is_size_factor(e: sp.Basic) -> bool:
    """size(x), or a power of it: a number known only when the code runs."""
    return isinstance(e, size) or (isinstance(e, sp.Pow) and isinstance(e.base, size))


class Printer(MatmulParentheses, NumPyPrinter):
    """Prints one expression as NumPy code with ``np`` as the module name."""

    printmethod = "_symgrad_numpy"

    def __init__(self, settings=None):
        # order="none": terms as SymPy keeps them (canonical already), not sorted again
        super().__init__({"fully_qualified_modules": False, "order": "none", **(settings or {})})
        self.printmethod = type(self).printmethod  # not SymPy's _numpycode (lambdify's)
        self.helpers: set[str] = set()  # names of HELPERS the printed code calls

    def _module_format(self, fqn, register=True):
        return "np." + fqn[len("numpy.") :] if fqn.startswith("numpy.") else fqn

    def doprint(self, expr, assign_to=None):
        """The code for ``expr``: the fast path's when it knows the expression, else SymPy's."""
        if assign_to is None:
            try:
                return fastprint.text(expr, FAST_CALLS, on_call=self._use)
            except fastprint.Unsupported:
                pass
        return super().doprint(expr, assign_to)

    def _use(self, cls: type) -> None:
        """Note the helper function the template of ``cls`` calls, if any."""
        name = CALLS[cls].split("(", 1)[0]
        if name in HELPERS:
            self.helpers.add(name)
            if name == "_matmul_grad":
                self.helpers.add("_sum_to")

    def _print_call(self, expr):
        for cls in type(expr).__mro__:
            if cls in CALLS:
                self._use(cls)
                return CALLS[cls].format(*(self._print(a) for a in expr.args))
        raise cannot_compute(expr)

    _print_Abs = _print_sign = _print_call

    def _print_And(self, expr):
        return self._logical("np.logical_and", expr)

    def _print_Or(self, expr):
        return self._logical("np.logical_or", expr)

    def _logical(self, function: str, expr) -> str:
        """``a & b & c`` as nested two-argument calls, which broadcast (SymPy's
        ``logical_and.reduce((a, b, c))`` stacks its operands: a scalar beside an array fails)."""
        text, *rest = (self._print(a) for a in expr.args)
        for a in rest:
            text = f"{function}({text}, {a})"
        return text

    def _print_Mul(self, expr):
        """Rational coefficients as a division: ``x/2``, ``-3*x/4``, not ``(1/2)*x``; a factor
        made of sizes first, so an array is multiplied once: ``(2/np.size(t))*t``."""
        sizes = [a for a in expr.args if _is_size_factor(a)]
        others = [a for a in expr.args if not _is_size_factor(a) and not a.is_Number]
        if sizes and others:
            scalar = sp.Mul(*(a for a in expr.args if a.is_Number), *sizes)
            # (kept as given: SymPy's evaluation would cancel t/t, and with it t's shape)
            rest = others[0] if len(others) == 1 else new(sp.Mul, *others)
            return f"({self._print(scalar)})*{self.parenthesize(rest, PRECEDENCE['Mul'])}"
        c, rest = expr.as_coeff_Mul()
        if not (c.is_Rational and not c.is_Integer) or rest == 1:
            return super()._print_Mul(expr)
        body = self.parenthesize(rest, PRECEDENCE["Mul"], strict=True)
        if abs(c.p) != 1:
            body = f"{abs(c.p)}*{body}"
        return f"{'-' if c < 0 else ''}{body}/{c.q}"

    def _print_transpose(self, expr):
        x = expr.args[0]
        if expr.axes is not None:
            return f"np.transpose({self._print(x)}, {expr.axes})"
        if isinstance(x, sp.Symbol):
            return f"{self._print(x)}.T"
        return f"np.transpose({self._print(x)})"

    def _print_broadcast_like(self, expr):
        g, x = expr.args
        return f"np.broadcast_to({self._branch(g)}, np.shape({self._print(x)}))"

    def _print_full_like(self, expr):
        x, c = expr.args
        if c == 0:
            return f"np.zeros_like({self._print(x)})"
        return f"np.full_like({self._print(x)}, {self._print(sp.Float(c))})"

    def _print_expand_dims(self, expr):
        g, axes = expr.args
        axes_text = str(int(axes[0])) if len(axes) == 1 else str(tuple(int(a) for a in axes))
        return f"np.expand_dims({self._print(g)}, {axes_text})"

    def _print_Function(self, expr):
        for cls in type(expr).__mro__:
            if cls in REDUCTIONS:
                return self._reduction(REDUCTIONS[cls], expr)
        return self._print_call(expr)

    def _reduction(self, name: str, expr) -> str:
        options = []
        if expr.axis is not None:
            options.append(f"axis={expr.axis[0] if len(expr.axis) == 1 else expr.axis}")
        if expr.keepdims:
            options.append("keepdims=True")
        x = expr.args[0]
        if name.startswith("."):  # a method: of an array, never of a Python number
            receiver = self._print(x)
            if x.is_number:  # a constant (2, pi): a NumPy scalar has the method, a float not
                receiver = f"np.float64({receiver})"
            elif not (isinstance(x, sp.Symbol) or type(x) in CALLS):
                receiver = f"({receiver})"  # a call or a name binds tighter than .sum()
            return f"{receiver}{name}({', '.join(options)})"
        self.helpers.add(name)
        return f"{name}({', '.join([self._print(x), *options])})"

    def _print_Tuple(self, expr):
        return str(tuple(int(a) for a in expr)) if expr else "None"

    def _print_Float(self, expr):
        return repr(float(expr))

    def _print_Rational(self, expr):
        return f"{expr.p}/{expr.q}"

    def _print_Half(self, expr):
        return "1/2"

    def _print_Pow(self, expr, rational=False):
        base, exp = expr.args
        if exp == sp.S.Half:
            return f"np.sqrt({self._print(base)})"
        if exp == -sp.S.Half:
            return f"1/np.sqrt({self._print(base)})"
        if exp == -1:
            return "1/" + self.parenthesize(base, precedence(expr), strict=True)
        if exp.is_Rational and not exp.is_Integer:
            exp_text = f"({exp.p}/{exp.q})"
        else:
            exp_text = self.parenthesize(exp, precedence(expr), strict=True)
        # not strict: a power's base that is itself a power keeps its parentheses, (x**2)**y
        return f"{self.parenthesize(base, precedence(expr), strict=False)}**{exp_text}"

    def _print_Max(self, expr):
        return self._fold("np.maximum", expr.args)

    def _print_Min(self, expr):
        return self._fold("np.minimum", expr.args)

    def _fold(self, name: str, args) -> str:
        text = self._print(args[0])
        for a in args[1:]:
            text = f"{name}({text}, {self._print(a)})"
        return text

    def _print_Heaviside(self, expr):
        h0 = expr.args[1] if len(expr.args) > 1 else sp.S.Half
        return f"np.heaviside({self._print(expr.args[0])}, {self._print(h0)})"

    def _print_Relational(self, expr):
        ops = {"==": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
        return f"{self._print(expr.lhs)} {ops[expr.rel_op]} {self._print(expr.rhs)}"

    def _print_Piecewise(self, expr):
        """Nested ``np.where``: the caller evaluates it under ``np.errstate(all="ignore")``."""
        *pairs, last = expr.args
        text = self._branch(last.expr) if last.cond == sp.true else "np.nan"
        if last.cond != sp.true:
            pairs.append(last)
        for pair in reversed(pairs):
            text = f"np.where({self._print(pair.cond)}, {self._branch(pair.expr)}, {text})"
        return text

    def _branch(self, value) -> str:
        """A branch value; whole numbers as floats, so that np.where gives a float array."""
        return self._print(sp.Float(value)) if value.is_Integer else self._print(value)

    def _print_BooleanTrue(self, expr):
        return "True"

    def _print_BooleanFalse(self, expr):
        return "False"

    def _print_sinc(self, expr):
        return f"np.sinc({self._print(expr.args[0] / sp.pi)})"  # NumPy's sinc is sin(πx)/(πx)

    def _print_not_finite(self, expr):
        raise ModelError(
            f"{sp.sstr(expr)} in a computation: an expression (or its derivative) is undefined "
            "or infinite here"
        )

    _print_ComplexInfinity = _print_NaN = _print_not_finite


def _sympy_function_printers() -> list[str]:
    """The print methods SymPy's printers have for functions by name (``_print_erf``, writing
    ``math.erf``, which NumPy code cannot call), that Printer itself does not define."""
    names = []
    for attr in dir(NumPyPrinter):
        name = attr[len("_print_"):]
        if not attr.startswith("_print_") or attr in Printer.__dict__:
            continue
        cls = getattr(sp, name, None)
        if name in NumPyPrinter._kf or (isinstance(cls, type) and issubclass(cls, sp.Function)):
            names.append(attr)
    return names


# every function goes through CALLS (or is refused, naming it), never SymPy's own by-name table
for _attr in _sympy_function_printers():
    setattr(Printer, _attr, Printer._print_Function)
