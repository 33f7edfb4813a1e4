"""How a compiled model's call runs on each backend: one record per backend.

The code a backend runs is written by ``codegen`` (NumPy's own, or the array API's for every
other library); the record says the rest: which code, what it needs installed, how an input
becomes one of the library's arrays, and what the call does with the generated function's
result (JAX jit-compiles the function, Dask computes the value and every gradient at once).

>>> RUNTIMES["jax"].written, RUNTIMES["dask"].needs[0]
('array_api', ('dask', 'dask'))
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp

from .errors import InputError, SymgradError


def _same(value, name: str, dtype: np.dtype | None):
    return value


def _returned(result, function: str, wrt: tuple[str, ...]):
    return result


@dataclass(frozen=True)
class Runtime:
    """What running a model on one array library takes besides its generated code."""

    name: str
    #: the codegen backend whose code runs: "numpy", or "array_api" for every other library
    written: str
    #: (module, extra) pairs: the modules the backend imports, and the extras that install them
    needs: tuple[tuple[str, str], ...] = ()
    #: an input already checked by ``array_input`` as this library's array (NumPy's arrays are
    #: copied to the library: a tensor, a JAX or CuPy array, one Dask chunk)
    array: Callable[[Any, str, np.dtype | None], Any] = _same
    #: what a call returns, given the generated function's result
    finish: Callable[[Any, str, tuple[str, ...]], Any] = _returned
    #: whether the generated function is jit-compiled (by JAX) before it runs
    jit: bool = False
    #: the library whose arrays it takes (as array_api_compat names its namespace; None: any)
    library: str | None = None
    #: (model, function, inputs) -> the call's result, or None for the generated function's
    run: Callable[[Any, str, list], Any] = lambda model, function, values: None


def _in_jax(value, name: str, dtype: np.dtype | None):
    """An input as a JAX array (JAX's own as it is); a float64 input or model where JAX
    computes in float32 (its default) is refused, not cut to float32."""
    import jax

    if not jax.config.jax_enable_x64 and (
            dtype == np.float64 or (dtype is None and getattr(value, "dtype", None) == "float64")):
        what = "the model's dtype" if dtype is not None else f"input {name!r}"
        raise InputError(
            f"{what} is float64, and JAX computes in float32 unless told otherwise: call "
            "jax.config.update('jax_enable_x64', True) first, or pass float32 arrays"
        )
    return value if isinstance(value, jax.Array) else jax.numpy.asarray(value)


def _from_numpy(module: str, convert: str) -> Callable[[Any, str, np.dtype | None], Any]:
    """An input converter: a NumPy array through ``module.convert`` (a CPU tensor sharing its
    memory, a copy on the current GPU, a Dask array of one chunk); anything else as it is
    (numbers stay numbers: they take the arrays' dtype)."""
    def array(value, name: str, dtype: np.dtype | None):
        if isinstance(value, np.ndarray):
            return getattr(importlib.import_module(module), convert)(value)
        return value

    return array


def _by_chunks(model, function: str, values: list):
    """Dask's value and gradient as the chunks' own, where the model keeps rows apart."""
    from .chunked import by_chunks

    return by_chunks(model, function, values)


def _by_wrt(result, function: str, wrt: tuple[str, ...]):
    """The gradients in ``wrt`` order (a jit-compiled function returns a dict by sorted key)."""
    if function == "value_and_grad":
        return result[0], {n: result[1][n] for n in wrt}
    return result


def _computed(result, function: str, wrt: tuple[str, ...]):
    """The value and every gradient in one ``dask.compute``: one pass over the data."""
    import dask

    return dask.compute(*result) if function == "value_and_grad" else result.compute()


#: Elements below which a fused model runs its NumPy code: too few to pay for a compiled call
#: (and, at the first call, for Numba's compile).
FUSED_FROM = 20_000


def _fused_or_numpy(model, function: str, values: list):
    """A fused model's call: the NumPy code's instead where the fused code does not take the
    inputs (its own ``_fused_shape`` refuses them) or they are few."""
    module = model._functions
    arrays = module.get("_ARRAYS")
    if arrays is None:
        return None  # (not fused: its module is the NumPy code)
    names = model._modules.get(("parameters", function))
    if names is None:  # (once per model: inspect takes longer than the rest of the check)
        names = model._modules[("parameters", function)] = list(
            inspect.signature(module[function]).parameters)
    given = dict(zip(names, values, strict=True))
    try:
        shape = module["_fused_shape"]({n: given[n] for n in arrays},
                                       {n: v for n, v in given.items() if n not in arrays})
    except ValueError:  # (shapes it does not take)
        return model.to("numpy")._functions[function](*values)
    if arrays and int(np.prod(shape)) < FUSED_FROM:
        return model.to("numpy")._functions[function](*values)
    return None


RUNTIMES: dict[str, Runtime] = {r.name: r for r in (
    Runtime("numpy", "numpy"),
    Runtime("array_api", "array_api", (("array_api_compat", "array-api"),)),
    Runtime("jax", "array_api", (("jax", "jax"), ("array_api_compat", "jax")),
            library="jax.numpy", array=_in_jax, finish=_by_wrt, jit=True),
    Runtime("torch", "array_api", (("torch", "torch"), ("array_api_compat", "torch")),
            library="torch", array=_from_numpy("torch", "as_tensor")),
    Runtime("cupy", "array_api", (("cupy", "cupy"), ("array_api_compat", "cupy")),
            library="cupy", array=_from_numpy("cupy", "asarray")),
    Runtime("dask", "array_api", (("dask", "dask"), ("array_api_compat", "dask")),
            library="dask.array", array=_from_numpy("dask.array", "asarray"), finish=_computed,
            run=_by_chunks),
    Runtime("numba", "numba", (("numba", "numba"),), run=_fused_or_numpy),
)}

#: The backends ``compile`` takes.
BACKENDS = tuple(RUNTIMES)


def runtime(backend: object, installed: bool = True) -> Runtime:
    """The record of ``backend`` if symgrad has it (and, if ``installed``, its library is:
    writing its code needs none), else a SymgradError naming the choices or the extra.

    >>> runtime("torch", installed=False).written
    'array_api'
    """
    found = RUNTIMES.get(backend) if isinstance(backend, str) else None
    if found is None:
        raise SymgradError(f"backend={backend!r}: choose one of {', '.join(map(repr, BACKENDS))}")
    for module, extra in found.needs if installed else ():
        if importlib.util.find_spec(module) is None:
            raise SymgradError(f"backend={backend!r} needs {module}, which is not installed: "
                               f"pip install 'symgrad[{extra}]'")
    return found


def is_dask(value: Any) -> bool:
    """Whether ``value`` is a Dask array (never importing Dask to find out)."""
    module = sys.modules.get("dask.array")
    return module is not None and isinstance(value, module.Array)


def array_input(value, name: str):
    """An input of the array API backends: an array of any library as it is, a real number as a
    Python float (NumPy's scalars too: a number takes the arrays' dtype); what is neither, or
    holds no real numbers, is refused, naming the input."""
    if isinstance(value, float | int | np.integer | np.floating | np.bool_):
        return float(value)
    if (type(value), getattr(value, "dtype", None)) in _CHECKED:
        return value
    if isinstance(value, sp.Basic) and value.is_number:  # (pi, sqrt(2): not Python numbers)
        return sympy_real(value, name)
    if hasattr(value, "__array_namespace__") or hasattr(value, "shape"):
        xp = _namespace(value, name)
        if not xp.isdtype(value.dtype, ("real floating", "integral", "bool")):
            raise InputError(
                f"input {name!r} holds {value.dtype} values, not real numbers: pass real ones "
                "(take .real if the imaginary part is meant to be dropped)"
            )
        _CHECKED.add((type(value), value.dtype))
        return value
    raise InputError(
        f"input {name!r} is {type(value).__name__}, not an array or a real number: the "
        "array_api backend computes with the inputs' own arrays; pass one (np.asarray(...), "
        "torch.tensor(...), jnp.asarray(...))"
    )


#: (array type, dtype) pairs already found to be real arrays of a library array_api_compat
#: knows: a call with such inputs skips the check.
_CHECKED: set[tuple[type, Any]] = set()


def sympy_real(value: sp.Basic, name: str) -> float:
    """A SymPy number (``pi``, ``sqrt(2)``) as a float; an InputError if it is not real."""
    if not value.is_extended_real:
        raise InputError(f"input {name!r} is {value}, not a real number")
    return float(value)


def one_library(values: list, names: tuple[str, ...], run: Runtime) -> None:
    """The array inputs of one call (as given) are of one library, on one device, and of the
    library ``run`` takes (NumPy's arrays aside, which it converts); else an InputError naming
    the inputs."""
    arrays = [(n, v) for n, v in zip(names, values, strict=True) if not isinstance(v, float | int)]
    if run.library is not None:  # (NumPy's arrays become the backend's own)
        given = len(arrays)
        arrays = [(n, v) for n, v in arrays if type(v) is not np.ndarray]
        if given and not arrays:
            return
    if not arrays:
        raise InputError(f"the {run.name} backend takes its array library from the inputs: pass "
                         "at least one as an array (numbers take the arrays' dtype)")
    if len({type(v) for _, v in arrays}) == 1 and len(
            {str(getattr(v, "device", None)) for _, v in arrays}) == 1:
        by_library = {_library(arrays[0][1], arrays[0][0]): [n for n, _ in arrays]}
        by_device: dict[str, list[str]] = {}
    else:
        from array_api_compat import device

        by_library, by_device = {}, {}
        for name, value in arrays:
            by_library.setdefault(_library(value, name), []).append(name)
            by_device.setdefault(str(device(value)), []).append(name)
    for what, groups in (("libraries", by_library), ("devices", by_device)):
        if len(groups) > 1:
            listed = "; ".join(f"{', '.join(map(repr, ns))}: {k}" for k, ns in groups.items())
            raise InputError(f"the inputs are arrays of different {what} ({listed}): put them "
                             "in one (one library's asarray, on one device)")
    library = next(iter(by_library))
    if run.library is not None and library != run.library:
        theirs = next((r.name for r in RUNTIMES.values() if r.library == library), "array_api")
        raise InputError(
            f"{', '.join(map(repr, by_library[library]))}: {library} arrays, and the {run.name} "
            f"backend takes {run.library}'s (or NumPy's, which it converts): convert them, or "
            f"run the model on theirs (model.to({theirs!r}))")


def _library(value, name: str) -> str:
    """The name of the library of an array (``torch``, ``jax.numpy``, ``dask.array``)."""
    found = _LIBRARIES.get(type(value))
    if found is None:
        found = _LIBRARIES[type(value)] = _namespace(value, name).__name__.removeprefix(
            "array_api_compat.")
    return found


_LIBRARIES: dict[type, str] = {}


def _namespace(value, name: str):
    """The array API namespace of an array, or an InputError naming the input."""
    from array_api_compat import array_namespace

    try:
        return array_namespace(value)
    except TypeError as e:
        raise InputError(f"input {name!r} ({type(value).__name__}): {e}") from None
