"""symgrad models inside PyTorch programs: a compiled model as a ``torch.autograd.Function``
whose backward is symgrad's generated gradient, so that a model can be one layer of a PyTorch
model, trained by PyTorch's optimisers, and checked by ``torch.autograd.gradcheck``.

>>> import torch, sympy as sp, symgrad
>>> from symgrad.torch import function
>>> k, x = sp.symbols("k x")
>>> f = function(symgrad.compile(symgrad.sum((k*x)**2), wrt=[k], cache=False))
>>> k0 = torch.tensor(1.0, requires_grad=True)
>>> (3 * f(k0, torch.arange(3.0))).backward(); float(k0.grad)  # 3·2k·Σx²
30.0
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import SymgradError
from .model import CompiledModel

try:
    import torch
except ImportError:  # pragma: no cover (the message is the point)
    raise SymgradError("symgrad.torch needs PyTorch, which is not installed: "
                       "pip install 'symgrad[torch]'") from None


def function(model: CompiledModel) -> Callable[..., Any]:
    """``model``'s value as a function of tensors, positional in ``model.inputs`` order, whose
    gradient is symgrad's generated one: a parameter's (``model.wrt``) gradient is the incoming
    gradient times symgrad's. Asking for the gradient of an input the model was not compiled for
    is a SymgradError naming it, not a silent zero."""
    value_and_grad = model.function("value_and_grad", backend="array_api")
    names, wrt = model.inputs, model.wrt

    class ModelFunction(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *values):
            for name, needed in zip(names, ctx.needs_input_grad, strict=True):
                if needed and name not in wrt:
                    raise SymgradError(
                        f"PyTorch asks for the gradient of {name!r}, which the model was not "
                        f"compiled for (wrt: {', '.join(wrt) or 'nothing'}): compile it with "
                        f"{name!r} in wrt, or wrt=None for every input"
                    )
            tensors = [torch.as_tensor(v).detach() for v in values]
            value, grads = value_and_grad(**dict(zip(names, tensors, strict=True)))
            ctx.save_for_backward(*(grads[n] for n in wrt))
            return value

        @staticmethod
        def backward(ctx, incoming):
            grads = dict(zip(wrt, ctx.saved_tensors, strict=True))
            return tuple(incoming * grads[n] if n in grads else None for n in names)

    return ModelFunction.apply


__all__ = ["function"]
