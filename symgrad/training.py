"""Training a compiled model: ``fit`` (an optimizer over full or mini-batches) and ``objective``
(a flat-vector function for ``scipy.optimize.minimize``).

>>> import numpy as np, sympy as sp, symgrad
>>> from symgrad.optim import Adam
>>> x, y, k, b = sp.symbols("x y k b")
>>> model = symgrad.compile(symgrad.mean((k*x + b - y)**2), wrt=[k, b])
>>> X = np.linspace(0.0, 1.0, 50); Y = 3*X + 1
>>> history = fit(model, {k: 0.0, b: 0.0}, {x: X, y: Y}, Adam(lr=0.1), steps=500,
...               progress=False)
>>> history.losses[0] > history.losses[-1], round(history.params["k"], 2)
(True, 3.0)
"""

from __future__ import annotations

import math
import numbers
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import sympy as sp

from .errors import InputError, ShapeError, SymgradError
from .optim import real_array
from .runtime import is_dask

if TYPE_CHECKING:
    from .model import CompiledModel

__all__ = ["History", "Objective", "TrainingDiverged", "fit", "objective"]


class TrainingDiverged(SymgradError):
    """The loss became NaN or infinite during ``fit``; nothing is lost.

    ``step`` is the step (counted from 0) whose loss was not finite and ``loss`` that value;
    ``losses`` holds the finite losses of the steps before. ``params`` holds copies of the
    parameters with the lowest loss before the divergence, those of step ``best_step``
    (``losses[best_step]`` is their loss), ready to restart from with a smaller learning
    rate; when the very first loss is not finite they are the parameters ``fit`` started
    from, and ``best_step`` is None.

    >>> issubclass(TrainingDiverged, SymgradError)
    True
    """

    def __init__(
        self,
        message: str,
        *,
        step: int = -1,
        loss: float = math.nan,
        params: dict[str, Any] | None = None,
        losses: list[float] | None = None,
        best_step: int | None = None,
    ) -> None:
        super().__init__(message)
        self.step = step
        self.loss = loss
        self.params: dict[str, Any] = {} if params is None else params
        self.losses: list[float] = [] if losses is None else losses
        self.best_step = best_step


@dataclass(repr=False)
class History:
    """What ``fit`` returns.

    ``losses[i]`` is the loss of step i, measured on that step's batch *before* its update;
    ``seconds`` the wall time of the training loop; ``params`` the parameters after the last
    update (new arrays, by name); ``epochs`` the number of passes over the data (fractional
    when ``steps`` ends inside an epoch); ``stopped_early`` whether the callback stopped it.

    >>> History([3.0, 2.0], 0.5, {"k": 1.0}, 2.0)
    <History: 2 steps (2 epochs) in 0.5 s, loss 3 → 2>
    """

    losses: list[float]
    seconds: float
    params: dict[str, Any]
    epochs: float
    stopped_early: bool = False

    @property
    def steps(self) -> int:
        """The number of steps taken, ``len(losses)``.

        >>> History([3.0, 2.0], 0.5, {}, 2.0).steps
        2
        """
        return len(self.losses)

    def __repr__(self) -> str:
        loss = f", loss {self.losses[0]:.4g} → {self.losses[-1]:.4g}" if self.losses else ""
        early = ", stopped early" if self.stopped_early else ""
        return (
            f"<History: {self.steps} steps ({self.epochs:.4g} epochs) in {self.seconds:.3g} s"
            f"{loss}{early}>"
        )


def fit(
    model: CompiledModel,
    params: Mapping[Any, Any],
    data: Mapping[Any, Any],
    optimizer: Any,
    *,
    steps: int | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    shuffle: bool = True,
    seed: int | np.random.Generator | None = 0,
    callback: Callable[[int, float, dict[str, Any]], Any] | None = None,
    progress: bool = True,
) -> History:
    """Train ``params`` of ``model`` on ``data`` with ``optimizer``; return a :class:`History`.

    ``params`` maps the parameters to train (names or symbols of ``model.wrt``) to their
    starting values; ``data`` maps every other input of the model to its value. A parameter
    of ``model.wrt`` given in ``data`` instead is held fixed. ``params`` is **copied** first
    (an array in its own floating dtype, so float32 trains in float32; anything else in
    float64): the caller's arrays are never modified; the trained values are in
    ``history.params``.

    ``data`` may hold **Dask arrays**, or be the path of a Zarr store holding an array for each
    input or of a Parquet file (or folder, the path ending in ``.parquet``) holding a column for
    each, opened with Dask: then the data is streamed, never loaded whole. A full-batch step
    is one ``dask.compute`` over every chunk (on Dask's scheduler: threads, or a
    ``dask.distributed`` cluster when a ``Client`` is active); mini-batches are drawn chunk by
    chunk (each chunk computed once an epoch, while the previous one trains), so a batch never
    spans two chunks, and ``batch_size`` is at most the largest chunk's rows.

    ``optimizer`` is anything with a ``step(params, grads)`` method that returns the updated
    params (or ``None`` if it updated them in place), such as ``symgrad.optim.SGD(lr=0.01)`` or
    ``Adam()`` (an instance, not the class). It keeps its state, so a second ``fit`` with the
    same optimizer continues where the first stopped.

    Give exactly one of ``steps`` (optimizer steps) or ``epochs`` (passes over the data).

    With ``batch_size=None`` every step sees all the data (an epoch is one step). With an int,
    each epoch splits the data arrays along their first axis (they must share its length n)
    into consecutive batches of ``batch_size`` rows (at most n), the last one smaller when n
    is not a multiple, so an epoch is ceil(n / batch_size) steps (with Dask arrays: per
    chunk); ``shuffle`` draws a new order of the rows for every epoch (with Dask arrays: of the
    chunks, and of the rows in each) from ``seed`` (an int or a ``numpy.random.Generator``;
    the same int gives the same run, ``None`` a different one each time). 0-d values in
    ``data`` are constants, the same in every batch. ``steps`` may end inside an epoch.

    ``callback(step, loss, params)``, if given, is called after each step's update with the
    step (from 0), its loss (``history.losses[step]``) and the updated parameters (the live
    dict: copy what you keep, change nothing); if it returns a true value (e.g. ``True``),
    training stops there and ``history.stopped_early`` is true.

    ``progress`` shows a progress bar with the loss (``tqdm.auto``): a widget in Jupyter, text
    on standard error when that is a terminal, nothing in a pipe, a log file or a test run.

    If a loss is NaN or infinite, training stops with :class:`TrainingDiverged` (a
    ``SymgradError``) naming the step and suggesting a smaller learning rate; its ``params``
    are copies of the parameters with the lowest loss before it. NumPy's overflow, divide and
    invalid-value warnings are silenced inside the steps (the loss check reports what they
    would); the callback runs with the caller's settings.

    >>> import numpy as np, sympy as sp, symgrad
    >>> from symgrad.optim import SGD
    >>> x, y, k = sp.symbols("x y k")
    >>> model = symgrad.compile(symgrad.mean((k*x - y)**2), wrt=[k])
    >>> X = np.arange(10.0); Y = 2*X
    >>> h = fit(model, {"k": 0.0}, {"x": X, "y": Y}, SGD(lr=0.01), epochs=3, batch_size=4)
    >>> h.steps, h.epochs, round(h.params["k"], 2)    # 3 epochs of ceil(10/4) = 3 batches
    (9, 3.0, 2.0)
    """
    names, values, data_arrays = _split(
        model, params, data, "fit(model, params, data, optimizer, ...)"
    )
    _check_optimizer(optimizer)
    if (steps is None) == (epochs is None):
        raise InputError("give exactly one of steps= or epochs=")
    if callback is not None and not callable(callback):
        raise InputError(f"callback must be callable, got {callback!r}")
    if batch_size is not None:
        batch_size = _count("batch_size", batch_size)

    lazy = any(is_dask(a) for a in data_arrays.values())
    if lazy and batch_size is not None:  # chunk by chunk, each batch NumPy's arrays
        batches: _Batches = _ChunkBatches(data_arrays, batch_size, shuffle, seed)
        model = model.to("numpy") if model.backend == "dask" else model
    else:
        batches = _Batches(data_arrays, batch_size, shuffle, seed)
        model = model.to("dask") if lazy else model  # (one compute a step)
    total = (
        _count("steps", steps) if steps is not None
        else _count("epochs", epochs) * batches.per_epoch
    )
    if isinstance(batches, _ChunkBatches):
        batches.total = total
    trained = dict.fromkeys(names)
    select = tuple(model.wrt) != tuple(names)  # some of wrt are held fixed: drop their grads

    params_now: dict[str, Any] = values
    best = _copy(params_now)  # the parameters with the lowest loss so far (the start, at first)
    best_loss, best_step = math.inf, None
    losses: list[float] = []
    stopped = False
    bar = _progress_bar(total, progress)
    next_postfix = 0.0
    batch_iter = iter(batches)
    fast: _InPlace | None = None
    callers_errstate = np.geterr()
    start = time.perf_counter()
    try:
        # a diverging run overflows long before its loss is inf: the loss check speaks for it
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            for step in range(total):
                batch = next(batch_iter)
                value, grads = model.value_and_grad(**batch, **params_now)
                loss = float(value)
                if not math.isfinite(loss):
                    raise _diverged(step, loss, total, best, best_step, losses, optimizer)
                losses.append(loss)
                better = loss < best_loss
                if better:
                    best_loss, best_step = loss, step
                if fast is not None and fast.ready():  # the arrays checked at the first step
                    if better:
                        fast.save()
                    fast.step(grads)
                else:
                    if better:
                        _save(best, params_now)
                    if select:
                        grads = {n: g for n, g in grads.items() if n in trained}
                    updated = optimizer.step(params_now, grads)
                    if updated is not None:  # None: an optimizer that only updates in place
                        params_now = updated
                    fast = _InPlace.plan(optimizer, params_now, best, trained)
                if bar is not None:
                    now = time.perf_counter()
                    if now >= next_postfix or step == total - 1:
                        bar.set_postfix_str(
                            _postfix(loss, step, batches, epochs), refresh=False
                        )
                        next_postfix = now + 0.1
                    bar.update(1)
                if callback is not None:
                    with np.errstate(**callers_errstate):
                        stop = callback(step, loss, params_now)
                    if stop:
                        stopped = True
                        break
    finally:
        batch_iter.close()  # (a chunk being computed ahead is waited for)
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start
    return History(
        losses=losses,
        seconds=seconds,
        params=dict(params_now),
        epochs=len(losses) / batches.per_epoch,
        stopped_early=stopped,
    )


class Objective(NamedTuple):
    """``(fun, x0, unflatten)``, what ``objective`` returns; unpacks as a tuple of three."""

    fun: Callable[[np.ndarray], tuple[float, np.ndarray]]
    x0: np.ndarray
    unflatten: Callable[[np.ndarray], dict[str, Any]]


def objective(
    model: CompiledModel, data: Mapping[Any, Any], params: Mapping[Any, Any]
) -> Objective:
    """``(fun, x0, unflatten)`` for ``scipy.optimize.minimize(fun, x0, jac=True)``.

    The parameters (names or symbols of ``model.wrt``) are laid end to end in one flat vector
    in ``model.wrt`` order, each raveled in C order; ``data`` holds every other input fixed.
    ``fun(vector) -> (value, flat gradient)`` evaluates the model, ``x0`` is the flattened
    ``params`` (a new array), and ``unflatten(vector)`` gives back a dict of named
    parameters with their original shapes (a float for a scalar given as a number).

    >>> import numpy as np, sympy as sp, symgrad
    >>> x, y, k, b = sp.symbols("x y k b")
    >>> model = symgrad.compile(symgrad.mean((k*x + b - y)**2), wrt=[k, b])
    >>> fun, x0, unflatten = objective(model, {"x": [1.0, 2.0], "y": [3.0, 5.0]},
    ...                                {"b": 0.0, "k": np.array([1.0])})
    >>> x0, unflatten(x0)
    (array([1., 0.]), {'k': array([1.]), 'b': 0.0})
    >>> value, grad = fun(np.array([2.0, 1.0]))    # k = 2, b = 1 fits exactly
    >>> float(value), grad
    (0.0, array([0., 0.]))

    With SciPy: ``result = scipy.optimize.minimize(fun, x0, jac=True, method="L-BFGS-B")``,
    then ``unflatten(result.x)``.
    """
    names, values, data_arrays = _split(
        model, params, data, "model.objective(data, params) or objective(model, data, params)"
    )
    if any(is_dask(a) for a in data_arrays.values()):
        model = model.to("dask")  # (each call one compute over the data)
    shapes = {n: np.shape(values[n]) for n in names}
    scalar = {n: not isinstance(values[n], np.ndarray) for n in names}
    slices: dict[str, slice] = {}
    offset = 0
    for n in names:
        size = math.prod(shapes[n])
        slices[n] = slice(offset, offset + size)
        offset += size
    total = offset
    x0 = np.empty(total)
    for n in names:
        x0[slices[n]] = np.ravel(values[n])

    def vector_of(vector: Any) -> np.ndarray:
        v = real_array(vector, "the parameter vector")
        if v.shape != (total,):
            raise ShapeError(
                f"the parameter vector must have shape ({total},) for "
                f"{', '.join(names)}, got shape {v.shape}"
            )
        return v

    def split(v: np.ndarray) -> dict[str, Any]:
        return {
            n: float(v[slices[n].start]) if shapes[n] == () else v[slices[n]].reshape(shapes[n])
            for n in names
        }

    def fun(vector: np.ndarray) -> tuple[float, np.ndarray]:
        value, grads = model.value_and_grad(**data_arrays, **split(vector_of(vector)))
        flat = np.empty(total)
        for n in names:
            flat[slices[n]] = np.ravel(grads[n])
        return float(value), flat

    def unflatten(vector: np.ndarray) -> dict[str, Any]:
        parts = split(vector_of(vector).copy())
        return {
            n: parts[n] if scalar[n] else np.array(parts[n], dtype=np.float64) for n in names
        }

    fun.__doc__ = f"(value, flat gradient) of {model.output} at a vector of {', '.join(names)}."
    unflatten.__doc__ = f"A flat vector -> {{name: value}} for {', '.join(names)}."
    return Objective(fun, x0, unflatten)


# -- helpers ---------------------------------------------------------------------------------


def _name(key: Any) -> str:
    return key.name if isinstance(key, sp.Symbol) else str(key)


def _by_name(mapping: Any, what: str, example: str) -> dict[str, Any]:
    if not isinstance(mapping, Mapping):
        missing = what == "data" and isinstance(mapping, str | os.PathLike)  # (no such path)
        raise InputError(
            f"{what} must be a dict keyed by name or symbol, such as {example}"
            f"{' (or the path of a Zarr store or Parquet file)' if what == 'data' else ''}; got "
            f"{_describe(mapping)}"
            f"{', which is no file or folder' if missing else ''}"
        )
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        name = _name(key)
        if name in out:
            raise InputError(f"{name!r} appears twice in {what}")
        out[name] = value
    return out


def _plural(names: list[str]) -> str:
    return "s" * (len(names) > 1)


def _split(
    model: CompiledModel, params: Any, data: Any, call: str
) -> tuple[list[str], dict[str, Any], dict[str, np.ndarray]]:
    """Check params and data against the model (``call`` is the signature, for the message
    when they look swapped); return the trained names in wrt order, copies of their values
    (``_param_copy``), and the data as floating arrays (Dask's as they are; a path opened)."""
    _check_model(model)
    given = {_name(k) for k in params} if isinstance(params, Mapping) else set()
    source, data = data, _opened(data, model, skip=given)
    inputs = list(model.inputs)
    others = [n for n in inputs if n not in model.wrt]
    p = _by_name(params, "params", "{" + ", ".join(f"{n!r}: 0.0" for n in model.wrt) + "}")
    d = _by_name(data, "data", "{" + ", ".join(f"{n!r}: array" for n in others) + "}")
    known = set(inputs)
    if p and all(n in others for n in p) and any(n in model.wrt for n in d):
        raise InputError(
            f"params and data look swapped: params holds {', '.join(map(repr, p))}, which are "
            f"not parameters, and data holds {', '.join(repr(n) for n in d if n in model.wrt)};"
            f" the call is {call}"
        )
    for what, given in (("parameter", p), ("data input", d)):
        unknown = [n for n in given if n not in known]
        if unknown:
            raise InputError(
                f"unknown {what}{_plural(unknown)} {', '.join(map(repr, unknown))}; this "
                f"model's inputs are {', '.join(map(repr, inputs))}"
            )
    fixed = [n for n in p if n not in model.wrt]
    if fixed:
        raise InputError(
            f"{', '.join(map(repr, fixed))} {'are' if len(fixed) > 1 else 'is'} not differentiated "
            f"by this model (wrt: {', '.join(map(repr, model.wrt)) or 'nothing'}), so cannot "
            f"be trained; pass {'them' if len(fixed) > 1 else 'it'} in data"
        )
    both = [n for n in p if n in d]
    if both:
        raise InputError(
            f"{', '.join(map(repr, both))} given both in params and in data; a parameter "
            f"goes in params to be trained, or in data to be held fixed"
        )
    missing = [n for n in inputs if n not in p and n not in d]
    if missing and isinstance(source, str | os.PathLike):
        raise InputError(
            f"data {os.fspath(source)!r} has no array or column {', '.join(map(repr, missing))} "
            f"for the model's input{_plural(missing)} of that name (parameters to train go in "
            f"params)")
    if missing:
        raise InputError(
            f"missing input{_plural(missing)} {', '.join(map(repr, missing))}: put "
            f"parameters to train in params and everything else in data"
        )
    if not p:
        raise InputError(
            f"no parameters to train: params is empty (this model differentiates with "
            f"respect to {', '.join(map(repr, model.wrt)) or 'nothing'})"
        )
    names = [n for n in model.wrt if n in p]
    values = {n: _param_copy(n, p[n]) for n in names}
    arrays = {n: _data_array(n, d[n]) for n in inputs if n in d}
    return names, values, arrays


def _param_copy(name: str, value: Any) -> Any:
    """A copy of a parameter's starting value: a number as a float (a NumPy float32 as a 0-d
    float32 array), a float32 or float64 array in its own dtype (float32 trains in float32),
    anything else in float64; a float16 array is refused (Adam's eps and small steps vanish
    in it)."""
    if isinstance(value, np.float32):  # (a float32 scalar: a 0-d array, trained in float32)
        return np.array(value)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    array = np.array(real_array(value, f"parameter {name!r}"))
    if array.dtype.kind == "f" and array.dtype not in (np.float32, np.float64):
        raise InputError(f"parameter {name!r} is {array.dtype}: symgrad trains in float32 or "
                         f"float64; pass {name}.astype(np.float32)")
    return array


def _data_array(name: str, value: Any) -> Any:
    """A data input as a floating NumPy array; a Dask array stays lazy (its dtype and length
    checked), but a 0-d one, a constant, is computed now."""
    if is_dask(value):
        if value.dtype.kind not in "biuf":
            raise InputError(f"data {name!r} is a Dask array of {value.dtype}, not of real "
                             "numbers; convert it first (x.astype(float))")
        if value.ndim == 0:
            return real_array(value.compute(), f"data {name!r}")
        if any(math.isnan(n) for n in value.shape):
            raise InputError(f"data {name!r} is a Dask array of unknown length {value.shape} "
                             f"(filtered, say): call {name}.compute_chunk_sizes() first")
        return value
    return real_array(value, f"data {name!r}")


def _opened(data: Any, model: CompiledModel, skip: set[str]) -> Any:
    """``data``, or for the path of a Zarr store or a Parquet file (or folder of them, a path
    ending in ``.parquet``), its array or column of each input of the model it holds (but
    those in ``skip``, the parameters), opened with Dask (read chunk by chunk)."""
    if not isinstance(data, str | os.PathLike):
        return data
    path = os.fspath(data)
    if not os.path.exists(path):
        return data  # (_by_name says what data must be, and that this path is not there)
    parquet = path.rstrip("/\\").endswith((".parquet", ".pq"))
    try:
        if parquet:
            import dask.dataframe as dd
        else:
            import dask.array as da
            import zarr
    except ImportError:
        what, extra = ("a Parquet file", "parquet") if parquet else ("a Zarr store", "zarr")
        raise InputError(f"data is the path {path!r}: reading {what} needs an extra: "
                         f"pip install 'symgrad[{extra}]'") from None
    wanted = [n for n in model.inputs if n not in skip]
    try:
        if parquet:  # each column an array of its own dtype, its chunks' lengths read once
            table = dd.read_parquet(path)  # (lengths=True miscounts the chunks of one column)
            return {n: table[n].to_dask_array().compute_chunk_sizes() for n in wanted
                    if n in table.columns}
        store = zarr.open_group(path, mode="r")
        held = set(store.array_keys())
        return {n: da.from_zarr(store[n]) for n in wanted if n in held}
    except Exception as e:
        raise InputError(f"data {path!r} is not a {'Parquet file' if parquet else 'Zarr store'} "
                         f"symgrad can read: {type(e).__name__}: {e}") from None


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def _check_model(model: Any) -> None:
    from .model import CompiledModel

    if not isinstance(model, CompiledModel):
        raise InputError(
            f"model must be a compiled model, made by symgrad.compile(expression or "
            f"equations, wrt=[...]); got {_describe(model)}"
        )


def _check_optimizer(optimizer: Any) -> None:
    if isinstance(optimizer, type):
        raise InputError(
            f"optimizer is the class {optimizer.__name__} itself: pass an instance, such as "
            f"{optimizer.__name__}(lr=0.01)"
        )
    if not callable(getattr(optimizer, "step", None)):
        raise InputError(
            f"optimizer must have a step(params, grads) method, such as "
            f"symgrad.optim.SGD(lr=0.01); got {_describe(optimizer)}"
        )
    lr = getattr(optimizer, "lr", None)
    if (
        isinstance(lr, numbers.Real) and not isinstance(lr, bool)
        and not (math.isfinite(lr) and lr > 0)
    ):
        raise InputError(f"the optimizer's lr must be a positive number, got {lr!r}")


def _count(what: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise InputError(f"{what} must be a positive int, got {value!r}")
    return int(value)


def _copy(params: dict[str, Any]) -> dict[str, Any]:
    return {n: np.array(v) if isinstance(v, np.ndarray) else v for n, v in params.items()}


def _save(saved: dict[str, Any], params: Mapping[str, Any]) -> None:
    """Copy params into saved, reusing saved's arrays."""
    for n, v in params.items():
        old = saved.get(n)
        if isinstance(v, np.ndarray):
            if isinstance(old, np.ndarray) and old.shape == v.shape and old.dtype == v.dtype:
                np.copyto(old, v)
            else:
                saved[n] = np.array(v)
        else:
            saved[n] = v


class _InPlace:
    """Steps two on, for symgrad's own optimizers on float arrays: the update and the saved
    copy without the checks ``Optimizer.step`` and ``_save`` make, which the first step has
    made on these very arrays (a few µs a step, on steps of a few hundred µs)."""

    def __init__(self, optimizer, updates: list, copies: list):
        self.update = optimizer._update_array
        self.state = optimizer.state  # name -> that parameter's state (reset() empties it)
        self.updates = updates  # (name, parameter array)
        self.copies = copies  # (saved array, parameter array)

    @classmethod
    def plan(cls, optimizer, params: dict, saved: dict, trained: dict) -> _InPlace | None:
        from .optim import Optimizer

        if not isinstance(optimizer, Optimizer) or type(optimizer).step is not Optimizer.step:
            return None  # another optimizer, or one with its own step: it is always called
        if set(params) != set(trained) or not all(
            type(p) is np.ndarray and p.ndim > 0 and p.dtype.kind == "f"
            and p.flags.writeable and type(saved.get(n)) is np.ndarray
            and saved[n].shape == p.shape and saved[n].dtype == p.dtype
            and n in optimizer.state
            for n, p in params.items()
        ):
            return None
        return cls(
            optimizer,
            [(n, params[n]) for n in trained],
            [(saved[n], params[n]) for n in trained],
        )

    def ready(self) -> bool:
        """False once the optimizer was reset (by a callback): the next step is checked."""
        return all(name in self.state for name, _ in self.updates)

    def save(self) -> None:
        for saved, p in self.copies:
            np.copyto(saved, p)

    def step(self, grads: Mapping[str, Any]) -> None:
        update, state = self.update, self.state
        for name, p in self.updates:
            update(name, p, grads[name], state[name])


class _Batches:
    """Endless iterator of input dicts: the full data, or mini-batches epoch after epoch."""

    def __init__(
        self,
        data: dict[str, np.ndarray],
        batch_size: int | None,
        shuffle: bool,
        seed: int | np.random.Generator | None,
    ) -> None:
        self.data = data
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.per_epoch = 1
        if batch_size is None:
            return
        self.arrays = {n: a for n, a in data.items() if a.ndim > 0}
        self.constants = {n: a for n, a in data.items() if a.ndim == 0}
        if not self.arrays:
            raise InputError(
                "batch_size needs data arrays to split into batches; the data has none "
                "(leave batch_size=None to train on all of it)"
            )
        lengths = {n: a.shape[0] for n, a in self.arrays.items()}
        if len(set(lengths.values())) > 1:
            raise ShapeError(
                "mini-batches split the data arrays along their first axis, so it must have "
                "the same length in all of them; got "
                + ", ".join(f"{n}: {length}" for n, length in lengths.items())
            )
        self.n = next(iter(lengths.values()))
        if self.n == 0:
            raise InputError("the data arrays are empty: there is nothing to train on")
        self.size = min(batch_size, self.n)  # more than the data: one batch of all of it, as
        # PyTorch's DataLoader and Keras do
        self.per_epoch = -(-self.n // self.size)
        try:
            self.rng = np.random.default_rng(seed) if shuffle else None
        except (TypeError, ValueError) as e:
            raise InputError(
                f"seed must be an int, a numpy Generator or None, got {seed!r}: {e}"
            ) from None

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        if self.batch_size is None:
            while True:
                yield self.data
        while True:
            yield from self._cut(self.arrays)

    def _cut(self, arrays: dict[str, np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
        """The batches of ``arrays`` (of one length), their rows shuffled if asked, each with
        the constants."""
        n = len(next(iter(arrays.values())))
        if self.rng is not None:
            order = self.rng.permutation(n)
            arrays = {k: a[order] for k, a in arrays.items()}
        for start in range(0, n, self.size):
            batch = {k: a[start : start + self.size] for k, a in arrays.items()}
            batch.update(self.constants)
            yield batch


class _ChunkBatches(_Batches):
    """Endless iterator of mini-batches of Dask arrays, drawn chunk by chunk: each epoch visits
    the chunks (along the first axis, as the first Dask array splits it) in a new order, and
    computes each one once, in one ``dask.compute`` for all the arrays (so data derived from one
    source is read once), while the previous chunk trains."""

    def __init__(
        self,
        data: dict[str, Any],
        batch_size: int,
        shuffle: bool,
        seed: int | np.random.Generator | None,
    ) -> None:
        super().__init__(data, batch_size, shuffle, seed)
        chunks = next(a.chunks[0] for a in self.arrays.values() if is_dask(a))
        largest, size = max(chunks), self.size  # (at most n: one batch of all, as in memory)
        if size > largest:
            raise InputError(
                f"batch_size={batch_size} is more rows than the data's largest chunk "
                f"({largest}), and a batch is drawn from one chunk: pass a smaller batch_size or "
                f"rechunk the data (x.rechunk({size}))"
            )
        self.bounds = np.cumsum((0, *chunks))
        self.arrays = {n: a.rechunk({0: chunks}) if is_dask(a) else a
                       for n, a in self.arrays.items()}
        self.per_epoch = sum(-(-c // size) for c in chunks)
        self.total: int | None = None  # the steps fit will take (no chunk computed beyond)

    def _chunk(self, i: int) -> dict[str, np.ndarray]:
        import dask

        start, stop = self.bounds[i], self.bounds[i + 1]
        lazy = {n: a.blocks[i] for n, a in self.arrays.items() if is_dask(a)}
        computed = dict(zip(lazy, dask.compute(*lazy.values()), strict=True))
        return {n: computed[n] if n in computed else a[start:stop]
                for n, a in self.arrays.items()}

    def _order(self) -> Iterator[int]:
        """The chunks' indices, epoch after epoch."""
        count = len(self.bounds) - 1
        while True:
            yield from (self.rng.permutation(count) if self.rng is not None else range(count))

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        from concurrent.futures import ThreadPoolExecutor

        order = self._order()
        planned = 0  # the batches of the chunks computed so far, or being computed

        with ThreadPoolExecutor(1) as ahead:

            def fetch():
                nonlocal planned
                i = next(order)
                planned += -(-int(self.bounds[i + 1] - self.bounds[i]) // self.size)
                return ahead.submit(self._chunk, i)

            coming = None
            while True:
                chunk = (coming or fetch()).result()
                # the next chunk, while this one trains: if the steps asked for need it
                coming = fetch() if self.total is None or planned < self.total else None
                yield from self._cut(chunk)


def _progress_bar(total: int, progress: bool) -> Any:
    """tqdm.auto's bar: a widget in Jupyter, text on a terminal; None anywhere else."""
    if not progress or not (_in_jupyter() or _is_terminal(sys.stderr)):
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm missing: train quietly
        return None
    return tqdm(total=total, file=sys.stderr, unit="step", dynamic_ncols=True)


def _in_jupyter() -> bool:
    """Running in a Jupyter kernel, by the test tqdm.auto makes to choose its widget."""
    return "ipykernel.zmqshell" in sys.modules or (
        "IPython.utils._process_emscripten" in sys.modules  # JupyterLite
    )


def _is_terminal(stream: Any) -> bool:
    try:
        return stream is not None and bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _postfix(loss: float, step: int, batches: _Batches, epochs: int | None) -> str:
    if epochs is None:
        return f"loss={loss:.4g}"
    return f"epoch={step // batches.per_epoch + 1}/{epochs}, loss={loss:.4g}"


def _diverged(
    step: int,
    loss: float,
    total: int,
    best: dict[str, Any],
    best_step: int | None,
    losses: list[float],
    optimizer: Any,
) -> TrainingDiverged:
    lr = getattr(optimizer, "lr", None)
    lr_text = f" (this optimizer's lr is {lr:g})" if isinstance(lr, numbers.Real) else ""
    if best_step is None:
        message = (
            f"the loss is {loss} at the starting parameters (step 0 of {total}); training "
            f"stopped. This is not the learning rate: check the initial parameters and the "
            f"data. error.params holds copies of the starting parameters"
        )
    else:
        message = (
            f"the loss became {loss} at step {step} of {total} (counted from 0); training "
            f"stopped. The learning rate is probably too large: try a smaller one{lr_text}, "
            f"starting from error.params, copies of the parameters with the lowest loss so "
            f"far (step {best_step}, loss {losses[best_step]:.6g}); error.losses holds the "
            f"losses so far"
        )
    return TrainingDiverged(
        message, step=step, loss=loss, params=best, losses=list(losses), best_step=best_step
    )
