"""The array API backend: code that runs on any library of the Python array API standard
(NumPy, CuPy, PyTorch, JAX, Dask, array-api-strict), its namespace ``xp`` taken from the
inputs (``array_api_compat.array_namespace``).

An operation is written as its NumPy template says, with NumPy's names put in the standard's
(``np.arcsin`` -> ``xp.asin``); the operations whose NumPy form has no such counterpart (a
method such as ``x.sum()``, a function the standard lacks such as ``np.heaviside``) have a
template of their own here, and an operation that the standard cannot compute at all
(SciPy's special functions) has none: compiling it for this backend is an error naming it.
The helpers take their namespace from their arguments, so their calls read as NumPy's do.
The generated code updates no array in place (JAX's are immutable) and slices with no
negative step (PyTorch refuses them).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ..ops import ATOM, POWER, UNARY, Code, Op, _axis_options, paren

NAME = "array_api"

IMPORTS = {"math": "import math", None: "from array_api_compat import array_namespace"}

#: The helper each function first calls on its inputs (converted: what it returns after
#: NAMESPACE), and how it is given a dtype.
NAMESPACE = ("xp",)
DTYPE_OPTION = "dtype='{0}'"
CONVERT_HELPER = "_arrays"
#: How the output's rank and shape are asked for (the gradient needs a scalar output).
NDIM, SHAPE = "{0}.ndim", "{0}.shape"
#: A number on a line of its own, as an array (a Python float has no shape).
NUMBER = "xp.asarray({0})"
#: Nothing to silence: the standard has no floating-point error state.
SILENCE = None
NAN = "xp.nan"
#: A Piecewise branch not taken reads its functions' safe points (``Op.safe``), not the
#: operands that would make them warn (NumPy's errstate silences those instead).
MASK = True

#: NumPy's names of the standard's functions, where they differ.
RENAMED = {"arcsin": "asin", "arccos": "acos", "arctan": "atan", "arcsinh": "asinh",
           "arccosh": "acosh", "arctanh": "atanh", "arctan2": "atan2"}

_NUMPY_NAME = re.compile(r"(?<![\w.])np\.(\w+)")


def _translated(text: str) -> str:
    """NumPy code in the standard's names: ``np.arcsin(x)`` -> ``xp.asin(x)``."""
    return _NUMPY_NAME.sub(lambda m: "xp." + RENAMED.get(m.group(1), m.group(1)), text)


def _reduction(name: str):
    def code(args: list[Code], attrs) -> Code:
        options = _axis_options(attrs)
        return f"xp.{name}({args[0][0]}{', ' + options if options else ''})", ATOM

    return code


def _expand_dims(args: list[Code], attrs) -> Code:
    (axes,) = attrs
    if len(axes) == 1:
        return f"xp.expand_dims({args[0][0]}, axis={axes[0]})", ATOM
    return f"_expand_dims({args[0][0]}, {tuple(axes)})", ATOM  # (the standard's takes one)


def _full_like(args: list[Code], attrs) -> Code:
    (c,) = attrs
    if c == 0:
        return f"xp.zeros_like({args[0][0]})", ATOM
    return f"xp.full_like({args[0][0]}, {float(c)!r})", ATOM


def _transpose(args: list[Code], attrs) -> Code:
    """A matrix's ``.T``; other arrays' axes reversed by ``_transpose`` (the standard's ``.T`` is
    for matrices only); ``shaped`` below says which."""
    (axes,) = attrs
    if axes is None:
        return f"_transpose({args[0][0]})", ATOM
    return f"xp.permute_dims({args[0][0]}, {tuple(axes)})", ATOM


def shaped(record: Op, args: list[Code], attrs, shapes: list) -> tuple[Code, str | None] | None:
    """The code of ``record`` where its operands' shapes decide it, and the helper that code
    calls; None where they do not (then ``template`` gives it)."""
    if record.name == "transpose" and attrs[0] is None and _matrix(shapes[0]):
        return (f"{paren(args[0], ATOM)}.T", ATOM), None
    return None


def _matrix(shape) -> bool:
    return isinstance(shape, tuple) and len(shape) == 2


def _max_vjp(args: list[Code], attrs) -> Code:
    axes, keepdims = attrs
    g, x, out = (a[0] for a in args)
    return f"_max_grad({g}, {x}, {out}, {tuple(axes) if axes else None}, {keepdims})", ATOM


def _heaviside(args: list[Code], attrs) -> Code:
    from ..ops import number_code

    return f"_heaviside({args[0][0]}, {number_code(attrs[0])[0]})", ATOM


#: The operations whose code is not NumPy's translated; None: not computable here.
TEMPLATES: dict[str, str | Callable | None] = {
    "sum": _reduction("sum"),
    "mean": _reduction("mean"),
    "max": _reduction("max"),
    "transpose": _transpose,
    "size": "_size({0})",
    "broadcast_like": "_broadcast_to({0}, {1})",
    "full_like": _full_like,
    "expand_dims": _expand_dims,
    "max_vjp": _max_vjp,
    "heaviside": _heaviside,
    "sinc": "_sinc({0})",
    "exp2": lambda args, attrs: (f"2.0**{paren(args[0], UNARY)}", POWER),
    "erf": None, "erfc": None, "gammaln": None, "polygamma": None,
}


#: The helpers of the templates above, where a record's own helper is not the one.
_HELPER_OF = {"size": "_size", "heaviside": "_heaviside", "sinc": "_sinc",
              "expand_dims": "_expand_dims",
              "broadcast_like": "_broadcast_to", "transpose": "_transpose"}


def helper(record: Op) -> str | None:
    """The helper function the code of ``record`` calls, if any."""
    return _HELPER_OF.get(record.name, record.helper)


def template(record: Op) -> str | Callable | None:
    """The code of ``record`` in this backend (None: the standard cannot compute it)."""
    if record.name in TEMPLATES:
        return TEMPLATES[record.name]
    numpy = record.numpy
    if isinstance(numpy, str):
        return _translated(numpy)

    def code(args: list[Code], attrs) -> Code:
        text, prec = numpy(args, attrs)
        return _translated(text), prec

    return code


#: Helpers a helper calls in turn.
NEEDS = {"_matmul_grad": ("_sum_to",), "_max_grad": ("_expand_dims",)}

#: Helper functions the generated module defines when it uses them, keyed by name.
HELPERS: dict[str, str] = {
    "_arrays": '''\
def _arrays(*values, dtype=None):
    """The array namespace of the inputs, then the inputs as its arrays: each in dtype if
    given; else a floating array stays as it is, and a Python number or an integer array
    takes the floating arrays' dtype (the library's default floating dtype if there are none)."""
    xp = array_namespace(*values)
    weak = [isinstance(v, int | float) for v in values]
    arrays = [None if w else xp.asarray(v) for v, w in zip(values, weak, strict=True)]
    keep = dtype is None
    if keep:
        floating = [a.dtype for a in arrays
                    if a is not None and xp.isdtype(a.dtype, "real floating")]
        dtype = (xp.result_type(*floating) if floating
                 else xp.__array_namespace_info__().default_dtypes()["real floating"])
    elif isinstance(dtype, str):
        dtype = getattr(xp, dtype)

    def converted(v, a):
        if a is None:  # (a number: made an array in the dtype at once, not rounded first)
            return xp.asarray(v, dtype=dtype)
        if a.dtype == dtype or (keep and xp.isdtype(a.dtype, "real floating")):
            return a
        return xp.astype(a, dtype)

    return (xp, *(converted(v, a) for v, a in zip(values, arrays, strict=True)))
''',
    "_expand_dims": '''\
def _expand_dims(g, axes):
    """g with length-one axes inserted at axes (positions in the result, negative or not)."""
    xp = array_namespace(g)
    ndim = g.ndim + len(axes)
    for axis in sorted(a % ndim for a in axes):
        g = xp.expand_dims(g, axis=axis)
    return g
''',
    "_transpose": '''\
def _transpose(x):
    """x with its axes reversed (NumPy's x.T)."""
    xp = array_namespace(x)
    return xp.permute_dims(x, tuple(reversed(range(x.ndim))))
''',
    "_size": '''\
def _size(x):
    """The number of elements of x."""
    n = 1
    for length in x.shape:
        n *= length
    return n
''',
    "_broadcast_to": '''\
def _broadcast_to(g, like):
    """g spread to the shape of like (a number, in like's dtype)."""
    xp = array_namespace(like)
    if isinstance(g, int | float):
        return xp.full_like(like, g)
    return xp.broadcast_to(g, like.shape)
''',
    "_sigmoid": '''\
def _sigmoid(x):
    """1/(1 + exp(-x)) = (1 or exp(x))/(1 + exp(-|x|)), which never overflows (a tensor's own
    sigmoid, one pass of PyTorch's, where x is one)."""
    if type(x).__module__ == "torch":
        return x.sigmoid()
    xp = array_namespace(x)
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1.0, e) / (1 + e)
''',
    "_sigmoid_complement": '''\
def _sigmoid_complement(x):
    """1 - sigmoid(x) = 1/(1 + exp(x)), exact where sigmoid(x) rounds near 1. x is capped
    where exp(x) would overflow, which moves the result by less than 1e-307 in float64 (1e-38
    in float32). A tensor's own sigmoid of -x, where x is one."""
    if type(x).__module__ == "torch":
        return (-x).sigmoid()
    xp = array_namespace(x)
    cap = xp.log(xp.asarray(xp.finfo(x.dtype).max, dtype=x.dtype)) - 1
    return 1 / (1 + xp.exp(xp.minimum(x, cap)))
''',
    "_heaviside": '''\
def _heaviside(x, at_zero):
    """0 where x < 0, 1 where x > 0, at_zero where x == 0, in x's dtype."""
    xp = array_namespace(x)
    return xp.where(x == 0, at_zero, xp.astype(x > 0, x.dtype))
''',
    "_sinc": '''\
def _sinc(x):
    """sin(x)/x, and 1 at 0 (the division taken only where x is not 0)."""
    xp = array_namespace(x)
    zero = x == 0
    safe = xp.where(zero, 1.0, x)
    return xp.where(zero, 1.0, xp.sin(safe) / safe)
''',
    "_sinc_derivative": '''\
def _sinc_derivative(x):
    """d/dx sin(x)/x = (cos(x) - sin(x)/x)/x, by its Taylor series where |x| < 1/2 (there the
    formula cancels, and is 0/0 at 0); each branch is computed where it is taken only."""
    xp = array_namespace(x)
    near = xp.abs(x) < 0.5
    s = xp.where(near, x, 0.0)
    far = xp.where(near, 1.0, x)
    t = s * s
    series = s * (-1/3 + t*(1/30 + t*(-1/840 + t*(1/45360 + t*(-1/3991680 + t*(
        1/518918400 - t/93405312000))))))
    return xp.where(near, series, (xp.cos(far) - xp.sin(far)/far)/far)
''',
    "_logsumexp": '''\
def _logsumexp(x, axis=None, keepdims=False):
    """log(sum(exp(x))) over axis, shifted by the maximum so that exp never overflows."""
    xp = array_namespace(x)
    m = xp.max(x, axis=axis, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0.0)
    out = xp.log(xp.sum(xp.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else xp.squeeze(out, axis=axis if axis is not None else tuple(
        range(x.ndim)))
''',
    "_softmax": '''\
def _softmax(x, axis):
    """exp(x)/sum(exp(x)) along axis, shifted by the maximum so that exp never overflows."""
    xp = array_namespace(x)
    e = xp.exp(x - xp.max(x, axis=axis, keepdims=True))
    return e / xp.sum(e, axis=axis, keepdims=True)
''',
    "_log_softmax": '''\
def _log_softmax(x, axis):
    """x - logsumexp(x) along axis, without ever taking log(0)."""
    xp = array_namespace(x)
    shifted = x - xp.max(x, axis=axis, keepdims=True)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=axis, keepdims=True))
''',
    "_matmul_grad": '''\
def _matmul_grad(g, a, b, which):
    """The gradient of a (which=0: g @ b.T) or b (which=1: a.T @ g) in a @ b, with the
    standard's rules for 1-D operands (promoted to matrices, then squeezed) and stacks."""
    xp = array_namespace(g, a, b)
    if a.ndim == 1 and b.ndim == 1:  # an inner product
        return g * (b if which == 0 else a)
    a2 = xp.expand_dims(a, axis=0) if a.ndim == 1 else a
    b2 = xp.expand_dims(b, axis=-1) if b.ndim == 1 else b
    g2 = xp.expand_dims(g, axis=-2) if a.ndim == 1 else g
    g2 = xp.expand_dims(g2, axis=-1) if b.ndim == 1 else g2
    if which == 0:
        d = g2 @ xp.matrix_transpose(b2)
        return _sum_to(d[..., 0, :] if a.ndim == 1 else d, a)
    d = xp.matrix_transpose(a2) @ g2
    return _sum_to(d[..., :, 0] if b.ndim == 1 else d, b)
''',
    "_max_grad": '''\
def _max_grad(g, x, out, axis, keepdims):
    """The gradient of x in out = max(x, axis): shared equally by the elements that tie."""
    xp = array_namespace(g, x, out)
    axis = tuple(a % x.ndim for a in axis) if axis else None
    if not keepdims and axis is not None:
        g, out = _expand_dims(g, axis), _expand_dims(out, axis)
    hit = xp.astype(x == out, x.dtype)
    return hit * (g / xp.sum(hit, axis=axis, keepdims=True))
''',
    "_sum_to": '''\
def _sum_to(g, like):
    """Sum the gradient g over the axes along which `like` was broadcast."""
    xp = array_namespace(g, like)
    shape = like.shape
    if g.shape == shape:
        return g
    g = xp.broadcast_arrays(g, like)[0]
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and g.shape[lead + i] != 1
    )
    return xp.reshape(xp.sum(g, axis=axes), shape)
''',
}
