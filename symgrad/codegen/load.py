"""Generated source -> callable functions, compiled once, with real lines in tracebacks.

The source is registered in ``linecache`` (as SymPy's ``lambdify`` does) so that a traceback
through generated code shows the generated lines.

>>> ns = load("import numpy as np\\ndef forward(x):\\n    return np.exp(x)\\n")
>>> float(ns["forward"](0.0))
1.0
"""

from __future__ import annotations

import hashlib
import linecache
from typing import Any


def load(source: str) -> dict[str, Any]:
    """Compile and run the module ``source``; return its namespace."""
    digest = hashlib.sha1(source.encode()).hexdigest()[:12]
    filename = f"<symgrad-{digest}>"
    code = compile(source, filename, "exec")
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {"__name__": f"symgrad_generated_{digest}"}
    exec(code, namespace)  # the compiler's own output: identifiers are sanitised, labels escaped
    return namespace
