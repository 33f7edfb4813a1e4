"""Memory: freed NumPy temporaries kept warm.

A training step allocates the same large temporaries (n × hidden arrays) every time and frees
them before it returns. With glibc's malloc and its default thresholds, a block of a few
hundred kB comes from ``mmap`` or from the top of the heap, and both go back to the system when
freed: the next step touches fresh pages and pays a page fault for every 4 kB. On the Boston
MLP that made a ``value_and_grad`` three to four times slower than the same arithmetic with
its memory warm (docs/benchmarks.md, "Tensor models"). Hand-written NumPy that happens to keep
a temporary alive across steps escapes it; the same code written as a function does not.

``keep_freed_memory()`` raises glibc's mmap and trim thresholds once for the process (the
settings ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` would make), so freed blocks
up to 32 MB are reused from the heap and up to 256 MB of free heap stays with the process.
symgrad does this the first time a compiled model runs. It does nothing:

* where the C library is not glibc (macOS, Windows, musl): their allocators differ;
* when the environment already sets ``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_MMAP_THRESHOLD_``
  or a ``glibc.malloc`` tunable: the user's choice stands;
* when ``SYMGRAD_MALLOC=system`` is set: the opt-out, for a process that must give memory
  back to the system as soon as it is freed.

>>> keep_freed_memory() in (True, False)
True
"""

from __future__ import annotations

import ctypes
import os
import platform

M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's <malloc.h>
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest (DEFAULT_MMAP_THRESHOLD_MAX, 64-bit)
TRIM_THRESHOLD = 256 * 1024 * 1024

_applied: bool | None = None  # None: not tried yet


def keep_freed_memory() -> bool:
    """Raise glibc's malloc thresholds for this process, once; True if they are raised.

    >>> keep_freed_memory() == keep_freed_memory()  # the second call only reports
    True
    """
    global _applied
    if _applied is None:
        _applied = _apply()
    return _applied


def _apply() -> bool:
    if os.environ.get("SYMGRAD_MALLOC", "").strip().lower() == "system":
        return False
    if any(k in os.environ for k in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")):
        return False
    if "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # mmap first: setting either fixes both (glibc stops adjusting them on its own)
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )


__all__ = ["keep_freed_memory"]
