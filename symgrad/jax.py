"""symgrad models inside JAX programs: a compiled model as a JAX function whose gradient is
symgrad's own (``jax.custom_vjp``), so that ``jax.grad``, ``jax.jit`` and ``jax.vmap`` of a
larger program run symgrad's generated backward code for the model's part.

>>> import jax, sympy as sp, symgrad
>>> from symgrad.jax import custom_vjp
>>> k, x = sp.symbols("k x")
>>> f = custom_vjp(symgrad.compile(symgrad.sum((k*x)**2), wrt=[k], cache=False))
>>> float(jax.grad(lambda k: 3*f(k, jax.numpy.arange(3.0)))(1.0))  # 3·2k·Σx²
30.0
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import SymgradError
from .model import CompiledModel

try:
    import jax
    import jax.numpy as jnp
except ImportError:  # pragma: no cover (the message is the point)
    raise SymgradError("symgrad.jax needs JAX, which is not installed: "
                       "pip install 'symgrad[jax]'") from None


def custom_vjp(model: CompiledModel) -> Callable[..., Any]:
    """``model``'s value as a JAX function of its inputs, positional in ``model.inputs`` order,
    differentiated by symgrad's generated gradient: the cotangent of a parameter (``model.wrt``)
    is the incoming cotangent times symgrad's gradient. Differentiating with respect to an
    input the model was not compiled for is a SymgradError naming it (compile with that input
    in ``wrt``), not a silent zero."""
    forward = model.function("forward", backend="array_api")
    value_and_grad = model.function("value_and_grad", backend="array_api")
    names = model.inputs

    def inputs(values):  # (JAX's arrays: a NumPy array beside a traced one is one library)
        return {n: jnp.asarray(v) for n, v in zip(names, values, strict=True)}

    @jax.custom_vjp
    def f(*values):
        return forward(**inputs(values))

    def f_forward(*primals):
        values = [p.value for p in primals]
        for name, p in zip(names, primals, strict=True):
            if p.perturbed and name not in model.wrt:
                raise SymgradError(
                    f"the JAX program differentiates with respect to {name!r}, which the model "
                    f"was not compiled for (wrt: {', '.join(model.wrt) or 'nothing'}): compile "
                    f"it with {name!r} in wrt, or wrt=None for every input"
                )
        value, grads = value_and_grad(**inputs(values))
        return value, (grads, values)

    def f_backward(saved, cotangent):
        grads, values = saved
        if isinstance(cotangent, jax.custom_derivatives.SymbolicZero):
            return (None,) * len(values)  # (the output is not differentiated: nothing flows)
        return tuple(cotangent * grads[n] if n in grads else jnp.zeros_like(v)
                     for n, v in zip(names, values, strict=True))

    f.defvjp(f_forward, f_backward, symbolic_zeros=True)  # (fwd learns what is differentiated)
    return f


__all__ = ["custom_vjp"]
