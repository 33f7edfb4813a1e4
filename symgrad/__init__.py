"""symgrad: SymPy models -> fast, readable NumPy value-and-gradient code, chains explained.

>>> import sympy as sp, symgrad
>>> x, k = sp.symbols("x k")
>>> model = symgrad.compile(symgrad.sum((k*x)**2), wrt=[k])
>>> model.chain(k)
'∂f/∂k'
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import sympy as sp

__version__ = "0.1.0"

from . import init, optim
from .errors import SymgradError, SymgradWarning
from .functions import (
    log_softmax,
    logsumexp,
    matmul,
    max,  # noqa: F401 (public as symgrad.max, not in __all__: see there)
    mean,
    relu,
    sigmoid,
    softmax,
    softplus,
    sum,  # noqa: F401 (public as symgrad.sum, not in __all__: see there)
    transpose,
)
from .model import CompiledModel, source_key
from .runtime import runtime
from .training import History, TrainingDiverged, fit


def compile(
    model: Any,
    wrt: Sequence[sp.Symbol | str] | sp.Symbol | str | None = None,
    *,
    name: str = "f",
    output: sp.Symbol | str | None = None,
    shapes: Mapping[sp.Symbol | str, tuple[int | None, ...]] | None = None,
    broadcast: str = "warn",
    dtype: Any = None,
    backend: str = "numpy",
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> CompiledModel:
    """Compile a SymPy expression, or named equations, to value-and-gradient NumPy code.

    ``model`` is one expression (its output is called ``name``) or equations: a dict
    ``{symbol: expr}``, a list of ``(symbol, expr)`` pairs or of ``sympy.Eq(symbol, expr)``, in
    any order; the output is ``output`` or else the equation no other one reads. ``wrt`` lists
    the inputs to differentiate with respect to (default: every input). ``shapes`` declares
    input shapes (``{X: (None, 13), W1: (13, 64)}``, None for any size), checked at compile time;
    undeclared shapes are taken from each call. ``broadcast`` says what happens when an
    elementwise operation broadcasts its operands into something larger than each of them (a
    prediction of shape (n, 1) against a target of shape (n,) gives (n, n)): ``"warn"`` (a
    ``SymgradWarning``, once per model and shape pattern), ``"error"`` or ``"allow"``.
    ``dtype`` (float32 or float64) is the one every input is put in; by default a model
    computes in its inputs' own floating dtype (float32 arrays give float32 results). Python
    numbers take the arrays' dtype; integer arrays are promoted as the library promotes them
    (NumPy: to the dtype it gives all the arrays with a float, float64 beside int64; the array
    API backends: to the floating arrays' dtype, else the library's default).
    ``backend`` is the array library the code is written for: ``"numpy"``, or ``"array_api"``,
    code of the Python array API standard that runs on the inputs' own library (PyTorch, JAX,
    CuPy, Dask, array-api-strict) and returns its arrays; ``"jax"`` (that code jit-compiled),
    ``"torch"``, ``"cupy"`` and ``"dask"`` run it on that library and turn NumPy inputs into
    its arrays (Dask computes the value and every gradient in one ``dask.compute``);
    ``"numba"`` fuses the elementwise work of the value and the gradient into loops compiled by
    Numba that read each element once (the data, and parameters declared with ``shapes=``, are
    the arrays the loops run over; a model it cannot fuse runs the NumPy code, and its source's
    first line says why).

    A model compiled before (the same equations, shapes and parameters) is not compiled again:
    its code is loaded from this process's memory or from the on-disk cache, a directory of the
    generated modules (``cache_dir``, by default ``$SYMGRAD_CACHE_DIR`` or ``symgrad`` in the
    user's cache directory); ``cache=False`` leaves the disk alone.

    >>> x, y, k, b = sp.symbols("x y k b")
    >>> m = compile(mean((k*x + b - y)**2), wrt=[k, b])
    >>> m.inputs, m.wrt
    (('b', 'k', 'x', 'y'), ('k', 'b'))
    """
    from .cache import ModuleCache
    from .frontend import build

    if not isinstance(name, str):
        raise SymgradError(f"name={name!r}: the output's name must be a string, e.g. name='f'")
    if shapes is not None and not isinstance(shapes, Mapping):
        raise SymgradError(
            f"shapes={shapes!r}: give a mapping from symbols (or names) to shapes, "
            "e.g. shapes={X: (None, 13)}"
        )
    if broadcast not in ("warn", "error", "allow"):
        raise SymgradError(f"broadcast={broadcast!r}: choose 'warn', 'error' or 'allow'")
    dtype = _float_dtype(dtype)
    backend = runtime(backend).name
    if not isinstance(cache, bool):
        raise SymgradError(f"cache={cache!r}: pass True (the default) or False")
    disk = ModuleCache(cache_dir) if cache else None
    # what was passed, the containers copied (the user may change them, a generator is read
    # once): the symbolic views look for the user's symbols in it, only if asked
    given = dict(model) if isinstance(model, Mapping) else (
        list(model) if isinstance(model, list | tuple) else model)
    if wrt is not None and not isinstance(wrt, sp.Basic | str) and isinstance(wrt, Iterable):
        wrt = list(wrt)
    key = (source_key(given, name, output, wrt, shapes, backend, dtype) if disk is not None
           else None)
    note = disk.load_note(key) if key is not None else None
    if note is not None:  # compiled before: its IR is built only if something asks for it
        try:
            return CompiledModel(None, given, wrt, name, broadcast, disk, output=output,
                                 shapes=shapes, note=note, dtype=dtype, backend=backend)
        except (KeyError, TypeError, ValueError):  # (a note of another shape: not trusted)
            pass
    graph = build(given, name=name, output=output, wrt=wrt, shapes=shapes)
    compiled = CompiledModel(graph, given, wrt, name, broadcast, disk, output=output,
                             shapes=shapes, dtype=dtype, backend=backend)
    if key is not None:
        disk.store_note(key, compiled.note())
    return compiled


def _float_dtype(dtype: Any) -> np.dtype | None:
    """compile's ``dtype=``: None, or float32 or float64 (as a NumPy dtype, type or name)."""
    if dtype is None:
        return None
    try:
        found = np.dtype(dtype)
    except TypeError:
        found = None
    if found is None or found not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise SymgradError(
            f"dtype={dtype!r}: a model computes in float32 or float64; pass dtype=np.float32, "
            "dtype='float64', or leave it out to compute in the inputs' own floating dtype"
        )
    return found


# (compile, sum and max are not in __all__: ``from symgrad import *`` must not shadow the
# builtins of the same names; use them as symgrad.compile, symgrad.sum, symgrad.max)
__all__ = [
    "CompiledModel",
    "History",
    "SymgradError",
    "SymgradWarning",
    "TrainingDiverged",
    "__version__",
    "fit",
    "init",
    "log_softmax",
    "logsumexp",
    "matmul",
    "mean",
    "optim",
    "relu",
    "sigmoid",
    "softmax",
    "softplus",
    "transpose",
]
