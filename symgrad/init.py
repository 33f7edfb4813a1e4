"""Reproducible parameter initialisation: normal, uniform, Xavier (Glorot), He (Kaiming), zeros.

Every function takes a shape (an int or a tuple of ints; ``()`` for a scalar) and returns a new
float64 NumPy array of that shape. The random ones take ``seed``: an int (the same int gives
the same numbers), a ``numpy.random.Generator`` (successive calls draw successive numbers from
it), or ``None`` (fresh, unpredictable numbers).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> W1 = he_normal((13, 10), seed=rng)   # one Generator for the whole model:
>>> W2 = he_normal((10, 1), seed=rng)    # independent draws, reproducible as a whole
>>> W1.shape, W2.shape, zeros(10).shape
((13, 10), (10, 1), (10,))

Pass one Generator to all the calls that initialise a model: two calls with the same *int*
seed start from the same point of the same stream, so their numbers are related (identical
up to scale for the same distribution and size).

Fans, for a weight used as ``X @ W`` (rows of X are examples), are computed by :func:`fans`:
a matrix of shape ``(fan_in, fan_out)``; for more axes ``(..., fan_in, fan_out)`` the leading
axes are a receptive field whose size r multiplies both (``fan_in·r``, ``fan_out·r``, Keras's
convention for kernels); a vector of shape ``(n,)`` has fan_in = fan_out = n and a scalar 1.
Note that ``torch.nn.Linear`` stores its weight transposed, ``(fan_out, fan_in)``.

The formulas (gain g; ``fan`` is fan_in, or fan_out with ``mode="fan_out"``):

==================  =========================================  ==============================
function            distribution                               scale
==================  =========================================  ==============================
``normal``          N(mean, std²)                              given
``uniform``         U(low, high)                               given
``xavier_normal``   N(0, σ²)                                   σ = g·√(2 / (fan_in + fan_out))
``xavier_uniform``  U(−a, a)                                   a = g·√(6 / (fan_in + fan_out))
``he_normal``       N(0, σ²)                                   σ = g / √fan, g = √2 for ReLU
``he_uniform``      U(−a, a)                                   a = g·√(3 / fan)
``zeros``           0                                          —
==================  =========================================  ==============================

These are the formulas of ``torch.nn.init`` (``xavier_*_``, ``kaiming_*_`` with their default
``a=0``, ``mode="fan_in"``); :func:`gain` gives its recommended gains.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from .errors import InputError

__all__ = [
    "fans",
    "gain",
    "he_normal",
    "he_uniform",
    "normal",
    "uniform",
    "xavier_normal",
    "xavier_uniform",
    "zeros",
]

Shape = int | tuple[int, ...]
Seed = int | np.random.Generator | np.random.SeedSequence | None


def fans(shape: Shape) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight of this shape used as ``X @ W``.

    >>> fans((13, 10)), fans((3, 3, 16, 32)), fans(5), fans(())
    ((13, 10), (144, 288), (5, 5), (1, 1))
    """
    shape = _shape(shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def gain(nonlinearity: str = "linear", param: float | None = None) -> float:
    """The recommended gain for an activation, as ``torch.nn.init.calculate_gain``.

    linear, sigmoid and identity: 1; tanh: 5/3; relu: √2; leaky_relu with negative slope
    ``param`` (default 0.01): √(2 / (1 + param²)); selu: 3/4.

    >>> gain("relu") == 2 ** 0.5, gain("tanh")
    (True, 1.6666666666666667)
    """
    if nonlinearity in ("linear", "identity", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else _number("param", param)
        return math.sqrt(2.0 / (1.0 + slope**2))
    if nonlinearity == "selu":
        return 0.75
    raise InputError(
        f"no gain for nonlinearity {nonlinearity!r}; known: linear, identity, sigmoid, tanh, "
        f"relu, leaky_relu, selu"
    )


def zeros(shape: Shape) -> np.ndarray:
    """An array of zeros (biases usually start here).

    >>> zeros((2, 3))
    array([[0., 0., 0.],
           [0., 0., 0.]])
    """
    return np.zeros(_shape(shape))


def normal(shape: Shape, mean: float = 0.0, std: float = 1.0, *, seed: Seed = None) -> np.ndarray:
    """Samples of the normal distribution N(mean, std²).

    >>> normal(3, std=0.1, seed=0)
    array([ 0.01257302, -0.01321049,  0.06404227])
    """
    std = _nonnegative("std", std)
    return _rng(seed).normal(_number("mean", mean), std, _shape(shape))


def uniform(shape: Shape, low: float = 0.0, high: float = 1.0, *, seed: Seed = None) -> np.ndarray:
    """Samples of the uniform distribution U(low, high).

    >>> uniform((2, 2), -1.0, 1.0, seed=0)
    array([[ 0.27392337, -0.46042657],
           [-0.91805295, -0.96694473]])
    """
    low, high = _number("low", low), _number("high", high)
    if not (math.isfinite(low) and math.isfinite(high) and low <= high):
        raise InputError(f"uniform needs finite low <= high, got low={low}, high={high}")
    return _rng(seed).uniform(low, high, _shape(shape))


def xavier_normal(shape: Shape, gain: float = 1.0, *, seed: Seed = None) -> np.ndarray:
    """Xavier (Glorot) normal: N(0, σ²) with σ = gain·√(2 / (fan_in + fan_out)).

    >>> W = xavier_normal((400, 600), seed=0)
    >>> round(float(W.std()), 3), round((2 / (400 + 600)) ** 0.5, 3)
    (0.045, 0.045)
    """
    fan_in, fan_out = fans(shape)
    std = _nonnegative("gain", gain) * math.sqrt(2.0 / max(fan_in + fan_out, 1))
    return _rng(seed).normal(0.0, std, _shape(shape))


def xavier_uniform(shape: Shape, gain: float = 1.0, *, seed: Seed = None) -> np.ndarray:
    """Xavier (Glorot) uniform: U(−a, a) with a = gain·√(6 / (fan_in + fan_out)).

    >>> W = xavier_uniform((2, 4), seed=0)
    >>> bool(abs(W).max() <= 1.0)    # a = √(6/6) = 1
    True
    """
    fan_in, fan_out = fans(shape)
    bound = _nonnegative("gain", gain) * math.sqrt(6.0 / max(fan_in + fan_out, 1))
    return _rng(seed).uniform(-bound, bound, _shape(shape))


def he_normal(
    shape: Shape, gain: float = math.sqrt(2.0), mode: str = "fan_in", *, seed: Seed = None
) -> np.ndarray:
    """He (Kaiming) normal: N(0, σ²) with σ = gain / √fan; gain √2 suits ReLU.

    ``mode`` chooses fan = fan_in (keeps the forward variance) or fan_out (the backward one).

    >>> W = he_normal((500, 300), seed=0)
    >>> round(float(W.std()), 3), round((2 / 500) ** 0.5, 3)
    (0.063, 0.063)
    """
    std = _nonnegative("gain", gain) / math.sqrt(_fan(shape, mode))
    return _rng(seed).normal(0.0, std, _shape(shape))


def he_uniform(
    shape: Shape, gain: float = math.sqrt(2.0), mode: str = "fan_in", *, seed: Seed = None
) -> np.ndarray:
    """He (Kaiming) uniform: U(−a, a) with a = gain·√(3 / fan), so √(6 / fan_in) for ReLU.

    >>> W = he_uniform((6, 3), seed=0)
    >>> bool(abs(W).max() <= 1.0)    # a = √(6/6) = 1
    True
    """
    bound = _nonnegative("gain", gain) * math.sqrt(3.0 / _fan(shape, mode))
    return _rng(seed).uniform(-bound, bound, _shape(shape))


# -- helpers ---------------------------------------------------------------------------------


def _shape(shape: Any) -> tuple[int, ...]:
    dims = (shape,) if isinstance(shape, numbers.Integral) else shape
    try:
        dims = tuple(dims)
    except TypeError:
        raise InputError(f"a shape is an int or a tuple of ints, got {shape!r}") from None
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 0:
            raise InputError(
                f"a shape is an int or a tuple of non-negative ints, got {shape!r}"
            )
    return tuple(int(d) for d in dims)


def _fan(shape: Shape, mode: str) -> int:
    fan_in, fan_out = fans(shape)
    if mode == "fan_in":
        fan = fan_in
    elif mode == "fan_out":
        fan = fan_out
    else:
        raise InputError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    return max(fan, 1)  # a shape with a 0 gives an empty array anyway


def _rng(seed: Seed) -> np.random.Generator:
    if isinstance(seed, bool):
        raise InputError(f"seed must be an int, a numpy Generator or None, got {seed!r}")
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError) as e:
        raise InputError(
            f"seed must be an int, a numpy Generator or None, got {seed!r}: {e}"
        ) from None


def _number(what: str, value: Any) -> float:
    """A real number (not text, a bool or a complex number) as a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputError(f"{what} must be a real number, got {value!r}")
    return float(value)


def _nonnegative(what: str, value: Any) -> float:
    value = _number(what, value)
    if not (math.isfinite(value) and value >= 0):
        raise InputError(f"{what} must be finite and >= 0, got {value}")
    return value
