"""The NumPy backend: how generated modules import, convert inputs, and the helpers they call.

How each operation is written is in its record (``ops.py``, the ``numpy`` template); this
module holds what the emitted module needs around those lines.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ..ops import Op
from . import array_api_backend

#: The modules a generated module imports, in this order: always NumPy; another one only where
#: an operation needs it (the record's ``extra``; ``math`` for a constant such as log(2)).
IMPORTS = {"math": "import math", None: "import numpy as np", "scipy": "import scipy.special"}

NAME = "numpy"

#: The helper each function first calls on its inputs (converted: what it returns after
#: NAMESPACE), and how it is given a dtype.
NAMESPACE = ()
DTYPE_OPTION = "dtype=np.{0}"
CONVERT_HELPER = "_floats"
#: How the output's rank and shape are asked for (the gradient needs a scalar output).
NDIM, SHAPE = "np.ndim({0})", "np.shape({0})"
#: A number on a line of its own, as a NumPy scalar (as every other value of a scalar is).
NUMBER = "np.float64({0})"
#: The line a Piecewise that computes in its branches is written under: NumPy computes every
#: branch for every element, and np.where drops the ones not taken.
SILENCE = 'with np.errstate(all="ignore"):  # np.where drops the branches not taken'
NAN = "np.nan"
MASK = False  # (SILENCE does it)


def shaped(record: Op, args: list, attrs, shapes: list) -> None:
    """No operation's NumPy code depends on its operands' shapes."""
    return None


def helper(record: Op) -> str | None:
    """The helper function the code of ``record`` calls, if any."""
    return record.helper


def template(record: Op) -> str | Callable:
    """The code of ``record``: its NumPy template."""
    return record.numpy


#: Helpers a helper calls in turn.
NEEDS = {"_matmul_grad": ("_sum_to",)}

#: Helper functions the generated module defines when it uses them, keyed by name (those the
#: array API backend has in the same words are added below, from its text).
HELPERS: dict[str, str] = {
    "_floats": '''\
def _floats(*values, dtype=None):
    """The inputs as floating NumPy values (a 0-d array as the number it holds), each in dtype
    if given; else a floating array stays as it is, and a Python number or an integer array
    takes the dtype NumPy gives the arrays together with a float (float64 if there are none)."""
    pairs = [(np.asarray(v), not hasattr(v, "dtype") and np.ndim(v) == 0) for v in values]
    keep = dtype is None
    if keep:
        kinds = {a.dtype for a, weak in pairs if not weak and a.dtype.kind in "biuf"}
        dtype = np.result_type(*kinds, 0.0)
    return [a[()] if a.dtype == dtype or (keep and a.dtype.kind == "f" and not weak)
            else a.astype(dtype)[()] for a, weak in pairs]
''',
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
    hit = (x == out).astype(np.result_type(x, g))  # (in the arrays' dtype, not bool)
    return hit * (g / np.sum(hit, axis=axis, keepdims=True))
''',
    "_sum_to": '''\
def _sum_to(g, like):
    """Sum the gradient g over the axes along which `like` was broadcast."""
    if type(like) is np.float64:  # the common cases first: to a scalar, every element,
        return g.sum() if type(g) is np.ndarray else g
    try:
        if g.shape == like.shape:  # or nothing to sum,
            return g
        if like.shape == ():  # or a scalar's: the sum of every element
            return g.sum()
    except AttributeError:  # (a Python number)
        pass
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


def _in_numpy(helper: str) -> str:
    """An array API helper's text in NumPy's names: its namespace is np."""
    text = re.sub(r"\n    xp = array_namespace\(.*\)", "", helper)
    return text.replace("xp.", "np.")


HELPERS.update({name: _in_numpy(array_api_backend.HELPERS[name])
                for name in ("_softmax", "_log_softmax", "_sinc_derivative")})
