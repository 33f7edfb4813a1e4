"""The Numba backend: how one element of a fused loop is written, and the helpers it calls.

``fused.py`` writes the loops; this module says how each operation is spelled on one number.
An elementwise operation is written as its NumPy template says (``np.log(x)`` is Numba's scalar
``log``), except where a scalar form is better or the NumPy form takes arrays only:

- ``exp`` is ``_exp``, a polynomial that LLVM turns into vector instructions (Numba calls the C
  library's ``exp`` one number at a time unless Intel's SVML is installed, and the pip wheels of
  llvmlite are built without it), within one unit in the last place of ``np.exp``;
- sigmoid and its complement share one ``_exp(-|x|)``, so that the exact σ′ costs no second
  exponential; a Piecewise is a conditional expression, so a branch not taken is never
  computed;
- a gradient summed back to a number (``_sum_to``), ``sum`` and ``mean`` accumulate; ``size`` is
  the number of elements the loops run over.

The operations not listed in ``FUSED`` (matrix products, reductions along an axis, SciPy's
special functions) are not fused: a model that has one runs the NumPy code.
"""

from __future__ import annotations

from collections.abc import Callable

from ..ops import ATOM, Code, Op, number_code

NAME = "numba"

IMPORTS = {None: "import numba\nimport numpy as np", "math": "import math",
           "threads": "from concurrent.futures import ThreadPoolExecutor"}

#: The elementwise operations a fused loop computes (their NumPy template, or OVERRIDES).
FUSED = frozenset({
    "const", "copy", "add", "sub", "mul", "div", "neg", "pow", "sqrt", "exp", "log", "sin",
    "cos", "tan", "sinh", "cosh", "tanh", "asin", "acos", "atan", "asinh", "acosh", "atanh",
    "log1p", "expm1", "log2", "log10", "exp2", "sigmoid", "sigmoid_complement", "softplus",
    "relu", "abs", "sign", "floor", "ceiling", "atan2", "logaddexp", "hypot", "maximum",
    "minimum", "piecewise", "lt", "le", "gt", "ge", "eq", "ne", "and", "or", "not", "where",
    "ite", "true", "false", "heaviside", "full_like", "broadcast_like", "ones_like",
})
#: What else a fused model may hold: sums over every element (accumulated), the number of
#: elements, and gradients summed back to a number.
REDUCING = frozenset({"sum", "mean", "sum_to", "size"})

SILENCE = None  # (no floating-point error state to silence: a branch not taken is not run)
MASK = False
NAN = "np.nan"
NUMBER = "{0}"


def _either(args: list[Code], attrs) -> Code:
    return f"({args[1][0]} if {args[0][0]} else {args[2][0]})", ATOM


def _number(args: list[Code], attrs) -> Code:
    return number_code(attrs[0]) if attrs[0] != 0 else ("0.0", ATOM)


def _heaviside(args: list[Code], attrs) -> Code:
    x, at_zero = args[0][0], number_code(attrs[0])[0]
    return f"(1.0 if {x} > 0 else (0.0 if {x} < 0 else {at_zero}))", ATOM


OVERRIDES: dict[str, str | Callable] = {
    "exp": "_exp({0})",
    "where": _either,
    "ite": _either,
    "and": lambda args, attrs: (" and ".join(f"({a[0]})" for a in args), ATOM),
    "or": lambda args, attrs: (" or ".join(f"({a[0]})" for a in args), ATOM),
    "not": "(not {0})",
    "full_like": _number,
    "ones_like": "1.0",
    "broadcast_like": "{0}",
    "heaviside": _heaviside,
    "relu": "max({0}, 0.0)",
}

def shaped(record: Op, args: list, attrs, shapes: list) -> None:
    return None


def helper(record: Op) -> str | None:
    """The helper a record's loop code calls: this module's scalar one of the same name."""
    return "_exp" if record.name == "exp" else record.helper


def template(record: Op) -> str | Callable | None:
    return OVERRIDES.get(record.name, record.numpy) if record.name in FUSED else None


NEEDS = {"_sigmoid": ("_exp",), "_sigmoid_complement": ("_exp",), "_in_blocks": ("_sum",)}

#: The options of every compiled function: the disk cache of Numba (beside the module's file),
#: and NumPy's rules for division by zero (inf and nan, as the NumPy code gives, not an error).
JIT = 'cache=True, error_model="numpy"'
#: A helper's options: written into the loop that calls it, where the compiler can put it into
#: vector instructions (and compute once what two helpers share).
INLINE = JIT + ', inline="always"'

HELPERS: dict[str, str] = {
    "_exp": f'''\
@numba.extending.intrinsic
def _as_float(typing_context, bits):
    """The float64 whose bits are the int64 ``bits``."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(signature.return_type))

    return numba.float64(numba.int64), codegen


@numba.njit({INLINE})
def _exp(x):
    """e**x within one unit in the last place, as a few operations LLVM can run on vectors:
    x = k*log(2) + r with |r| <= log(2)/2, e**r by its Taylor series, times 2**k made from its
    bits (in two factors, so that results near the ends of the range are right)."""
    x = min(max(x, -746.0), 710.0)  # (e**x is 0 below, inf above; nan stays nan)
    k = np.floor(x * 1.4426950408889634 + 0.5)
    r = (x - k * 6.93147180369123816490e-01) - k * 1.90821492927058770002e-10
    p = 1 + r * (1 + r * (1/2 + r * (1/6 + r * (1/24 + r * (1/120 + r * (1/720 + r * (
        1/5040 + r * (1/40320 + r * (1/362880 + r * (1/3628800 + r * (1/39916800 + r * (
        1/479001600 + r / 6227020800))))))))))))
    n = np.int64(k) if k == k else np.int64(0)
    half = n >> 1
    return p * _as_float((half + 1023) << 52) * _as_float((n - half + 1023) << 52)
''',
    "_sigmoid": f'''\
@numba.njit({INLINE})
def _sigmoid(x):
    """1/(1 + exp(-x)), from exp(-|x|), which never overflows."""
    e = _exp(-abs(x))
    return (1.0 if x >= 0 else e) / (1 + e)
''',
    "_sigmoid_complement": f'''\
@numba.njit({INLINE})
def _sigmoid_complement(x):
    """1 - sigmoid(x) = 1/(1 + exp(x)), exact where sigmoid(x) rounds to 1; from the same
    exp(-|x|) as sigmoid's, which the compiler computes once for both."""
    e = _exp(-abs(x))
    return (e if x >= 0 else 1.0) / (1 + e)
''',
    "_sum": '''\
@numba.njit(cache=True, fastmath={"reassoc"})
def _sum(parts):
    """The sum of one block's parts, in an order the compiler may vectorise (the same order
    on every call: the total does not depend on the threads)."""
    total = 0.0
    for k in range(parts.size):
        total += parts[k]
    return total
''',
    "_in_blocks": '''\
def _in_blocks(kernel, n, width, args):
    """kernel over the n elements, a block of _BLOCK at a time, the blocks shared among
    Numba's threads; the blocks' sums (width of them) added in the blocks' order, so the
    totals are the same bits for any number of threads."""
    blocks = -(-n // _BLOCK)
    sums = np.zeros((blocks, width))
    threads = max(1, min(numba.get_num_threads(), blocks // 8))  # (8 blocks a thread at least)
    cuts = [blocks * t // threads for t in range(threads + 1)]
    if threads == 1:
        _blocks(kernel, 0, blocks, n, sums, args)
    else:
        if _POOL.get("threads") != threads:  # (one pool, made again if the threads change)
            _POOL.update(threads=threads, pool=ThreadPoolExecutor(threads))
        for done in [_POOL["pool"].submit(_blocks, kernel, first, last, n, sums, args)
                     for first, last in zip(cuts, cuts[1:])]:
            done.result()
    return np.add.reduce(sums, axis=0)


_POOL = {}  # the threads that run the blocks


@numba.njit(error_model="numpy", nogil=True)
def _blocks(kernel, first, last, n, sums, args):
    """kernel over the blocks first to last (a thread's share)."""
    for block in range(first, last):
        lo = block * _BLOCK
        kernel(lo, min(lo + _BLOCK, n), sums[block], *args)
''',
    "_in": '''\
def _in(dtype, values):
    """The compiled function's results (a tuple, or one) in the inputs' dtype: the loops compute
    in float64, and float32 inputs give float32 results."""
    if isinstance(values, tuple):
        return tuple(np.asarray(v, dtype)[()] for v in values)
    return np.asarray(values, dtype)[()]
''',
    "_fused_shape": '''\
def _fused_shape(arrays, numbers):
    """The shape of the arrays the fused loops run over (arrays of one shape, and numbers)."""
    shapes = {np.shape(a) for a in arrays.values()}
    wrong = [n for n, v in numbers.items() if np.ndim(v) != 0]
    if (arrays and (len(shapes) != 1 or () in shapes)) or wrong:
        given = ", ".join(f"{n} of shape {np.shape(v)}" for n, v in {**arrays, **numbers}.items())
        raise ValueError(
            f"this fused code takes {', '.join(arrays) or 'no input'} as arrays of one shape "
            f"and {', '.join(numbers) or 'no input'} as numbers, not {given}: call the NumPy "
            "code (backend='numpy') for other shapes")
    return shapes.pop() if arrays else ()
''',
}
