"""Optimizers with the update rules of ``torch.optim``, for dicts of NumPy parameters.

An optimizer takes the parameters and the gradients that ``model.value_and_grad`` returns,
both dicts keyed by parameter name, and moves the parameters one step:

>>> import numpy as np
>>> opt = SGD(lr=0.1, momentum=0.9)
>>> params = {"w": np.array([1.0, 2.0]), "b": 0.5}
>>> params = opt.step(params, {"w": np.array([1.0, -1.0]), "b": 2.0})
>>> params["w"], params["b"]
(array([0.9, 2.1]), 0.3)

Conventions:

* Arrays are updated **in place** (a writeable floating-point ``numpy.ndarray``, including a
  0-d one); Python floats and NumPy scalars cannot be, so the dict gets a new ``float``. Any
  other value (a list, an integer array) is replaced by a new float64 array. An array keeps its
  dtype, and its state (momentum, Adam's moments) is in that dtype too. The ``params``
  dict itself is updated and returned, so ``opt.step(params, grads)`` and
  ``params = opt.step(params, grads)`` are the same thing.
* The state (momentum buffers, Adam's moments and step count) is kept in ``opt.state``, one
  entry per parameter **name**; ``opt.reset()`` forgets it. Keys of ``params`` may be names or
  SymPy symbols, as everywhere in symgrad.
* A parameter with no entry in ``grads`` (or a gradient of ``None``) is left alone, as
  ``torch.optim`` skips a parameter whose ``.grad`` is ``None``. A gradient for a parameter not
  in ``params``, or of another shape than its parameter, is a ``SymgradError``.
* The given gradients are never modified.

The update formulas, with g the gradient, p the parameter and t the step count (from 1):

``SGD``: with weight decay λ, g ← g + λp. With momentum μ > 0 the buffer is b ← g on the first
step and b ← μb + (1 − d)g afterwards (d the dampening); then g ← g + μb with Nesterov, else
g ← b. Finally p ← p − lr·g. This is ``torch.optim.SGD``.

``Adam``: with weight decay λ, g ← g + λp (L2, as ``torch.optim.Adam``, not AdamW);
m ← β₁m + (1 − β₁)g, v ← β₂v + (1 − β₂)g², then
p ← p − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε). This is ``torch.optim.Adam``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any, ClassVar

import numpy as np
import sympy as sp

from .errors import InputError, ShapeError
from .values import MISSING, has_missing, is_real_number

__all__ = ["SGD", "Adam", "Optimizer"]

_MISSING = object()


# -- hyperparameters ----------------------------------------------------------------------------


def _real(what: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputError(f"{what} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise InputError(f"{what} must be finite, got {value}")
    return value


def _positive(what: str, value: Any) -> float:
    value = _real(what, value)
    if value <= 0:
        raise InputError(f"{what} must be > 0, got {value}")
    return value


def _betas(what: str, value: Any) -> tuple[float, float]:
    try:
        beta1, beta2 = (float(b) for b in value)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be two numbers in [0, 1), got {value!r}") from None
    for i, beta in enumerate((beta1, beta2)):
        if not 0.0 <= beta < 1.0:
            raise InputError(f"{what}[{i}] must be in [0, 1), got {beta}")
    return beta1, beta2


def _nonnegative(what: str, value: Any) -> float:
    value = _real(what, value)
    if value < 0:
        raise InputError(f"{what} must be >= 0, got {value}")
    return value


class Optimizer:
    """Base class: ``step`` checks its inputs, then applies the update rule to each parameter.

    A subclass implements ``_update_scalar(name, p, g, state) -> new p`` for a 0-d parameter
    (floats in, float out) and ``_update_array(name, p, g, state)`` that updates the float
    array ``p`` in place. ``state`` is the parameter's own dict in ``self.state``.

    >>> Optimizer().state
    {}
    """

    #: The hyperparameters, each with its check, made whenever it is set: ``opt.lr = 1e-3``
    #: between steps is a schedule, ``opt.lr = -1`` a ``SymgradError`` right there.
    _settings: ClassVar[dict[str, Callable[[str, Any], Any]]] = {}

    def __init__(self) -> None:
        self.state: dict[str, dict[str, Any]] = {}
        self._shapes: dict[str, tuple[int, ...]] = {}

    def __setattr__(self, name: str, value: Any) -> None:
        check = self._settings.get(name)
        super().__setattr__(name, value if check is None else check(name, value))

    def reset(self) -> None:
        """Forget the state (buffers, moments, step counts) of every parameter.

        >>> opt = SGD(lr=0.1, momentum=0.5)
        >>> _ = opt.step({"k": 1.0}, {"k": 1.0})
        >>> opt.state
        {'k': {'momentum_buffer': 1.0}}
        >>> opt.reset(); opt.state
        {}
        """
        self.state.clear()
        self._shapes.clear()

    def step(self, params: Mapping[Any, Any], grads: Mapping[Any, Any]) -> dict[Any, Any]:
        """Move ``params`` one step against ``grads``; return the updated ``params``.

        ``params`` maps names (or symbols) to arrays or numbers, ``grads`` maps names (or
        symbols) to gradients of the same shapes, as ``model.value_and_grad`` returns them.
        Arrays are updated in place, numbers are replaced in the dict; the dict is returned
        (a new dict only if ``params`` cannot be modified).

        >>> opt = SGD(lr=0.5)
        >>> opt.step({"k": 1.0}, {"k": 0.5})
        {'k': 0.75}
        """
        if not isinstance(params, Mapping):
            raise InputError(
                f"params must be a dict of parameters by name, not {type(params).__name__}"
            )
        if not isinstance(grads, Mapping):
            raise InputError(
                f"grads must be a dict of gradients by name, not {type(grads).__name__}"
            )
        keys: dict[str, Any] = {}
        for key in params:
            name = key if type(key) is str else _name(key)
            if name in keys:
                raise InputError(f"parameter {name!r} appears twice in params")
            keys[name] = key
        # check everything first, so that a bad input leaves params and state untouched
        work = []
        seen: set[str] = set()
        for gkey, g in grads.items():
            name = gkey if type(gkey) is str else _name(gkey)
            if name in seen:
                raise InputError(f"parameter {name!r} has two gradients in grads")
            seen.add(name)
            key = keys.get(name, _MISSING)
            if key is _MISSING:
                unknown = [_name(k) for k in grads if _name(k) not in keys]
                raise InputError(
                    f"gradient{'s' * (len(unknown) > 1)} for unknown parameter"
                    f"{'s' * (len(unknown) > 1)} {', '.join(map(repr, unknown))}; the "
                    f"parameters are {', '.join(map(repr, keys)) or 'none'}"
                )
            if g is not None:
                work.append((key, name, *self._check(name, params[key], g)))
        out = params if isinstance(params, MutableMapping) else dict(params)
        for key, name, p, g, value in work:
            state = self.state.get(name)
            if state is None:
                state = self.state[name] = {}
                self._shapes[name] = p.shape if value is None else ()
            if value is None:  # an array, updated in place
                self._update_array(name, p, g, state)
                if p is not params[key]:
                    out[key] = p
            else:
                new = self._update_scalar(name, value, g, state)
                if isinstance(p, np.ndarray):
                    p[()] = new  # a writeable float 0-d array: in place, like any array
                    if p is not params[key]:
                        out[key] = p
                else:
                    out[key] = new
        return out  # type: ignore[return-value]

    # -- one parameter -------------------------------------------------------------------------

    def _check(self, name: str, p: Any, g: Any) -> tuple[Any, Any, float | None]:
        """``(p, g, None)`` for an array (p a writeable float array, g a float array of its
        shape) or ``(p, g, value)`` for a scalar (g and value floats; p the original, or a
        writeable float 0-d array to update in place)."""
        if isinstance(p, np.ndarray) and p.dtype.kind not in _REAL_KINDS:
            p = real_array(p, f"the parameter {name!r}")  # objects, text or complex: checked
        if isinstance(p, np.ndarray):
            if p.ndim > 0:
                if type(g) is not np.ndarray or g.dtype.kind != "f":
                    g = real_array(g, f"the gradient {name!r}")
                if g.shape != p.shape:
                    raise ShapeError(
                        f"the gradient of {name!r} has shape {g.shape} but the parameter has "
                        f"shape {p.shape}"
                    )
                self._check_state(name, p.shape)
                if p.dtype.kind != "f" or not p.flags.writeable:
                    p = p.astype(p.dtype if p.dtype.kind == "f" else np.float64)  # a new
                    # array: integer or read-only input
                return p, g, None
            value = float(p)
            if p.dtype.kind != "f" or not p.flags.writeable:
                p = None  # cannot be updated in place: replaced by a float
        elif isinstance(p, float) or (isinstance(p, numbers.Real) and not isinstance(p, bool)):
            value = float(p)
            p = None
        else:
            arr = real_array(p, f"the parameter {name!r}")
            if arr.ndim > 0:
                return self._check(name, arr, g)
            value = float(arr)
            p = None
        if isinstance(g, float) or (isinstance(g, numbers.Real) and not isinstance(g, bool)):
            g = float(g)
        else:
            garr = real_array(g, f"the gradient {name!r}")
            if garr.shape != ():
                raise ShapeError(
                    f"the gradient of {name!r} has shape {garr.shape} but the parameter is a "
                    f"scalar (shape ())"
                )
            g = float(garr)
        self._check_state(name, ())
        return p, g, value

    def _check_state(self, name: str, shape: tuple[int, ...]) -> None:
        old = self._shapes.get(name, shape)
        if old != shape:
            raise ShapeError(
                f"parameter {name!r} has shape {shape} but had shape {old} at the last step; "
                f"call reset() or use a new optimizer for new parameters"
            )

    def _update_scalar(self, name: str, p: float, g: float, state: dict) -> float:
        raise NotImplementedError

    def _update_array(self, name: str, p: np.ndarray, g: np.ndarray, state: dict) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, as ``torch.optim.SGD``.

    With μ = ``momentum``, d = ``dampening`` and λ = ``weight_decay``: g ← g + λp; the momentum
    buffer is b ← g on the first step, b ← μb + (1 − d)g after; g ← g + μb (Nesterov) or
    g ← b; p ← p − lr·g. Without momentum this is plain gradient descent, p ← p − lr·g.

    >>> opt = SGD(lr=0.1, momentum=0.9, nesterov=True)
    >>> p = {"k": 1.0}
    >>> for _ in range(2):
    ...     p = opt.step(p, {"k": 1.0})
    >>> round(p["k"], 6)   # 1 − 0.1·(1 + 0.9·1) − 0.1·(1 + 0.9·1.9)
    0.539
    """

    _settings: ClassVar[dict[str, Callable[[str, Any], Any]]] = {
        "lr": _positive,
        "momentum": _nonnegative,
        "dampening": _nonnegative,
        "weight_decay": _nonnegative,
    }

    def __init__(
        self,
        lr: float,
        momentum: float = 0.0,
        nesterov: bool = False,
        *,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__()
        self.lr = lr
        self.momentum = momentum
        self.dampening = dampening
        self.weight_decay = weight_decay
        if nesterov and (self.momentum == 0 or self.dampening != 0):
            raise InputError(
                f"nesterov=True needs momentum > 0 and dampening = 0 (got momentum="
                f"{momentum}, dampening={dampening})"
            )
        self.nesterov = bool(nesterov)

    def __repr__(self) -> str:
        extra = "".join(
            f", {k}={v}"
            for k, v in (("dampening", self.dampening), ("weight_decay", self.weight_decay))
            if v
        )
        return (
            f"SGD(lr={self.lr}, momentum={self.momentum}, nesterov={self.nesterov}{extra})"
        )

    def _update_scalar(self, name: str, p: float, g: float, state: dict) -> float:
        if self.weight_decay:
            g = g + self.weight_decay * p
        mu = self.momentum
        if mu:
            buf = state.get("momentum_buffer")
            buf = g if buf is None else mu * buf + (1.0 - self.dampening) * g
            state["momentum_buffer"] = buf
            g = g + mu * buf if self.nesterov else buf
        return p - self.lr * g

    def _update_array(self, name: str, p: np.ndarray, g: np.ndarray, state: dict) -> None:
        if self.weight_decay:
            g = g + self.weight_decay * p
        mu = self.momentum
        if mu:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = np.array(g, dtype=p.dtype)
            else:
                buf *= mu
                buf += g if self.dampening == 0 else (1.0 - self.dampening) * g
            g = g + mu * buf if self.nesterov else buf
        p -= self.lr * g


class Adam(Optimizer):
    """Adam with bias correction, as ``torch.optim.Adam`` (``amsgrad=False``).

    With β₁, β₂ = ``betas`` and t the parameter's step count (from 1): g ← g + λp
    (λ = ``weight_decay``, an L2 penalty as in ``torch.optim.Adam``), m ← β₁m + (1 − β₁)g,
    v ← β₂v + (1 − β₂)g², p ← p − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε).

    >>> opt = Adam(lr=0.1)
    >>> p = opt.step({"k": 1.0}, {"k": 3.0})   # the first step moves by lr·g/(|g| + ε)
    >>> round(p["k"], 9)
    0.9
    """

    _settings: ClassVar[dict[str, Callable[[str, Any], Any]]] = {
        "lr": _positive,
        "betas": _betas,
        "eps": _nonnegative,
        "weight_decay": _nonnegative,
    }

    def __init__(
        self,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        *,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__()
        self.lr = lr
        self.betas = betas
        self.eps = eps
        self.weight_decay = weight_decay

    def __repr__(self) -> str:
        extra = f", weight_decay={self.weight_decay}" if self.weight_decay else ""
        return f"Adam(lr={self.lr}, betas={self.betas}, eps={self.eps}{extra})"

    def _update_scalar(self, name: str, p: float, g: float, state: dict) -> float:
        beta1, beta2 = self.betas
        if self.weight_decay:
            g = g + self.weight_decay * p
        t = state["step"] = state.get("step", 0) + 1
        m = state["exp_avg"] = beta1 * state.get("exp_avg", 0.0) + (1.0 - beta1) * g
        v = state["exp_avg_sq"] = beta2 * state.get("exp_avg_sq", 0.0) + (1.0 - beta2) * g * g
        step_size = self.lr / (1.0 - beta1**t)
        denom = math.sqrt(v) / math.sqrt(1.0 - beta2**t) + self.eps
        return p - step_size * m / denom

    def _update_array(self, name: str, p: np.ndarray, g: np.ndarray, state: dict) -> None:
        beta1, beta2 = self.betas
        if self.weight_decay:
            g = g + self.weight_decay * p
        if "step" not in state:
            state["step"] = 0
            state["exp_avg"] = np.zeros(p.shape, p.dtype)  # (a float32 parameter's state in
            state["exp_avg_sq"] = np.zeros(p.shape, p.dtype)  # float32, as torch.optim keeps it)
        t = state["step"] = state["step"] + 1
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m *= beta1
        m += (1.0 - beta1) * g
        v *= beta2
        v += (1.0 - beta2) * (g * g)
        denom = np.sqrt(v)
        denom /= math.sqrt(1.0 - beta2**t)
        denom += self.eps
        step_size = self.lr / (1.0 - beta1**t)
        p -= step_size * (m / denom)


# -- helpers ---------------------------------------------------------------------------------


def _name(key: Any) -> str:
    return key.name if isinstance(key, sp.Symbol) else str(key)


#: dtype kinds that are real numbers: float, signed and unsigned int, bool
_REAL_KINDS = frozenset("fiub")


def real_array(value: Any, culprit: str) -> np.ndarray:
    """``value`` as a floating array (``value`` itself when it is one: float32 stays float32),
    anything else in float64; or a ``SymgradError``
    naming ``culprit`` for anything but real numbers: None, text, complex numbers, symbols,
    ragged lists, an object array holding any of these (such as pandas' ``NA``).

    >>> real_array([1, 2], "data 'x'")
    array([1., 2.])
    >>> real_array([1.0, None], "data 'x'")
    Traceback (most recent call last):
    ...
    symgrad.errors.InputError: data 'x' is not a number ...: it holds None at index 1
    """
    if type(value) is np.ndarray and value.dtype.kind == "f":
        return value
    if has_missing(value):
        raise InputError(f"{culprit} {MISSING}")
    if value is None:
        reason = "it is None"
    elif isinstance(value, str | bytes):
        reason = f"it is the text {value!r}; convert text to numbers first"
    else:
        try:
            array = np.asarray(value)
        except Exception as e:  # a ragged list, a torch tensor that requires grad, ...
            reason = f"{type(e).__name__}: {e}"
        else:
            reason = _not_real(array)
            if reason is None:
                if array.dtype.kind == "f":
                    return array
                try:
                    return array.astype(np.float64, copy=False)
                except (TypeError, ValueError, OverflowError) as e:  # an int beyond float
                    reason = f"{type(e).__name__}: {e}"
    raise InputError(f"{culprit} is not a number or an array of numbers: {reason}")


def _not_real(array: np.ndarray) -> str | None:
    """Why ``array`` does not hold real numbers, or None when it does."""
    kind = array.dtype.kind
    if kind in _REAL_KINDS:
        return None
    if kind == "c":
        return (
            "it has complex values, and symgrad computes with real numbers (pass its .real "
            "part if dropping the imaginary part is meant)"
        )
    if kind in "US":
        return f"it holds text (dtype {array.dtype}); convert text to numbers first"
    if kind != "O":
        return f"its dtype is {array.dtype}, not a number type"
    for index, item in np.ndenumerate(array):
        if not (is_real_number(item) or isinstance(item, bool | np.bool_)):
            what = "None" if item is None else f"{item!r} (a {type(item).__name__})"
            if not index:
                return f"it is {what}"
            return f"it holds {what} at index {index[0] if len(index) == 1 else index}"
    return None
