"""What counts as a real number and as a missing value in the data a user passes: one answer
for every entry point (a model's call, ``fit``, ``objective``).

>>> import numpy as np, sympy as sp
>>> is_real_number(sp.pi), is_real_number(True), is_real_number(1 + 2j)
(True, False, False)
>>> has_missing(np.ma.masked_array([1.0, 2.0], mask=[False, True]))
True
"""

from __future__ import annotations

import decimal
import numbers
from typing import Any

import numpy as np
import sympy as sp


def is_real_number(v: Any) -> bool:
    """Whether ``v`` is one real number that float64 can hold as it is meant: a Python, NumPy,
    ``Fraction`` or ``Decimal`` number, or a SymPy number that is real (pi, sqrt(2)); not a
    bool (which float64 would take as 0 or 1 without a word), not None, not a missing value."""
    if isinstance(v, sp.Basic):
        return bool(v.is_number and v.is_extended_real)
    return isinstance(v, numbers.Real | decimal.Decimal) and not isinstance(v, bool | np.bool_)


def has_missing(value: Any) -> bool:
    """Whether ``value`` has elements that stand for no value: a pandas array or Series of a
    nullable type with NA in it (NumPy reads NA as NaN), a masked array with masked elements
    (NumPy reads them as their hidden values)."""
    if isinstance(value, np.ma.MaskedArray):
        return bool(np.ma.getmaskarray(value).any())
    dtype = getattr(value, "dtype", None)
    if type(getattr(dtype, "na_value", None)).__name__ == "NAType" and hasattr(value, "isna"):
        return bool(np.asarray(value.isna()).any())
    return False


#: What a user is told to do with the missing values ``has_missing`` finds.
MISSING = ("has missing values (pandas NA, or masked elements); fill or drop them first "
           "(e.g. series.dropna(), series.to_numpy(na_value=...))")
