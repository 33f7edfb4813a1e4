"""The errors a user can cause. Every one is a ``SymgradError``, itself a ``ValueError``."""

from __future__ import annotations


class SymgradError(ValueError):
    """Base class of every error symgrad raises for a user's mistake.

    >>> issubclass(SymgradError, ValueError)
    True
    """


class ModelError(SymgradError):
    """The model itself is malformed: a cycle, a symbol defined twice, an unknown output."""


class CycleError(ModelError):
    """The equations depend on each other in a circle."""

    def __init__(self, cycle: list[str]):
        self.cycle = cycle
        path = " -> ".join([*cycle, cycle[0]])
        super().__init__(
            f"the equations form a cycle: {path}; "
            "every symbol must be computable from the inputs without itself"
        )


class NoRuleError(ModelError):
    """A function in the model has no derivative rule."""


class InputError(SymgradError):
    """A call got missing, unknown or malformed inputs."""


class NotScalarError(SymgradError):
    """A gradient was asked of an output that is not a scalar."""


class ShapeError(SymgradError):
    """Operand shapes do not fit together."""


class SymgradWarning(UserWarning):
    """Something legal that is most likely a mistake, such as an outer-product broadcast.

    >>> issubclass(SymgradWarning, UserWarning)
    True
    """
