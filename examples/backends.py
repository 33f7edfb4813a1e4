"""One model, every array library: the two-layer model compiled once and run on NumPy,
array-api-strict, JAX, PyTorch, CuPy and Dask arrays side by side (``model.to(backend)``), and
on NumPy's arrays in loops fused by Numba, with the agreement of each result with NumPy's and
the time of a value-and-gradient call (with ``--quick``, 10⁴ samples are too few for the fused
loops: that row runs the NumPy code).

    python examples/backends.py            # n = 10⁶ samples
    python examples/backends.py --quick    # n = 10⁴, a few calls: seconds

The table is printed and written to ``backends.md`` in ``--output`` (default examples/output).

A library that is not installed (or CuPy without a GPU) is listed as such.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from pathlib import Path

import numpy as np
import sympy as sp

import symgrad


def two_layer() -> symgrad.CompiledModel:
    x, y, k1, b1, k2, b2 = sp.symbols("x y k1 b1 k2 b2")
    L1, σ, L2, Loss = sp.symbols("L1 σ L2 Loss")
    return symgrad.compile(
        [sp.Eq(L1, k1 * x + b1), sp.Eq(σ, symgrad.sigmoid(L1)), sp.Eq(L2, k2 * σ + b2),
         sp.Eq(Loss, symgrad.mean((L2 - y) ** 2))],
        wrt=[k1, b1, k2, b2],
    )


def libraries(x: np.ndarray, y: np.ndarray) -> dict[str, tuple[str, dict] | None]:
    """Library -> (backend, its x and y), or None where it is not installed."""
    found: dict[str, tuple[str, dict] | None] = {"NumPy": ("numpy", {"x": x, "y": y})}
    if importlib.util.find_spec("array_api_strict"):
        import array_api_strict as xp

        found["array-api-strict"] = ("array_api", {"x": xp.asarray(x), "y": xp.asarray(y)})
    else:
        found["array-api-strict"] = None
    if importlib.util.find_spec("jax"):
        import jax

        jax.config.update("jax_enable_x64", True)  # float64, as NumPy computes
        found["JAX (jit)"] = ("jax", {"x": jax.numpy.asarray(x), "y": jax.numpy.asarray(y)})
    else:
        found["JAX (jit)"] = None
    if importlib.util.find_spec("dask"):
        import dask.array as da

        chunks = max(1, x.size // 8)
        found["Dask (8 chunks)"] = ("dask", {"x": da.from_array(x, chunks=chunks),
                                             "y": da.from_array(y, chunks=chunks)})
    else:
        found["Dask (8 chunks)"] = None
    if importlib.util.find_spec("torch"):
        import torch

        found["PyTorch"] = ("torch", {"x": torch.as_tensor(x), "y": torch.as_tensor(y)})
    else:
        found["PyTorch"] = None
    found["Numba (fused)"] = (("numba", {"x": x, "y": y}) if importlib.util.find_spec("numba")
                              else None)  # (NumPy arrays, in loops compiled by Numba)
    found["CuPy"] = None
    if importlib.util.find_spec("cupy"):
        import cupy

        try:
            if cupy.cuda.runtime.getDeviceCount():
                found["CuPy"] = ("cupy", {"x": cupy.asarray(x), "y": cupy.asarray(y)})
        except cupy.cuda.runtime.CUDARuntimeError:  # (no GPU, or no driver)
            pass
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n = 10⁴, few calls")
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "output",
                        help="the folder backends.md is written to (default examples/output)")
    args = parser.parse_args()
    n, calls = (10_000, 3) if args.quick else (1_000_000, 7)
    rng = np.random.default_rng(0)
    x = rng.normal(size=n)
    y = np.sin(x) + 0.1 * rng.normal(size=n)
    params = {"k1": 0.5, "b1": 0.1, "k2": 2.0, "b2": -0.3}
    model = two_layer()
    want, want_grads = model.value_and_grad(x=x, y=y, **params)
    lines = [f"the two-layer model, n = {n:,}, float64; value {float(want):.6f}",
             f"{'library':18} {'backend':10} {'largest difference from NumPy':>30} "
             f"{'per call':>10}"]
    for library, found in libraries(x, y).items():
        if found is None:
            lines.append(f"{library:18} {'-':10} {'not installed (or no GPU)':>30}")
            continue
        backend, data = found
        on = model.to(backend)
        value, grads = on.value_and_grad(**data, **params)  # (a first call: jit, warm-up)
        difference = max(abs(float(value) - float(want)) / abs(float(want)),
                         *(abs(float(grads[k]) - float(want_grads[k])) / abs(float(want_grads[k]))
                           for k in want_grads))
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            value, grads = on.value_and_grad(**data, **params)
            float(value)  # (waits for the result, where the library is asynchronous)
            times.append(time.perf_counter() - start)
        lines.append(f"{library:18} {backend:10} {difference:>30.1e} "
                     f"{statistics.median(times) * 1e3:>8.2f} ms")
    print("\n".join(lines))
    args.output.mkdir(parents=True, exist_ok=True)
    written = args.output / "backends.md"
    written.write_text("```\n" + "\n".join(lines) + "\n```\n", encoding="utf-8")
    print(f"The table was written to {written}")


if __name__ == "__main__":
    main()
