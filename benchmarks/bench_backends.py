"""Dtypes and array libraries (issue 16): the same compiled model on each, side by side.

    python benchmarks/bench_backends.py            # n = 10⁶
    python benchmarks/bench_backends.py --n 100000 --pairs 11

Measured now: the two-layer model (bench_core's case (a), W2) at n samples, one
``value_and_grad`` call, float32 inputs against float64 inputs on NumPy, head to head (ABBA
pairs of calibrated batches, the median of the per-pair ratios with its quartiles; CPU time of
this single-threaded process). Each result is checked first: float32's value and gradients
against float64's, to float32 precision. The issue's target: float32 at least 1.6× faster.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import bench_core as bc  # noqa: E402
from _timing import fmt_time, head_to_head  # noqa: E402

import symgrad  # noqa: E402

TARGET_FLOAT32 = 1.6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="samples (default 10⁶)")
    parser.add_argument("--pairs", type=int, default=21, help="ABBA pairs (default 21)")
    args = parser.parse_args()

    equations, wrt, _ = bc.model_two_layer(plain=False)
    model = symgrad.compile(equations, wrt=wrt, cache=False)
    rng = np.random.default_rng(0)
    x = rng.normal(size=args.n)
    y = np.sin(x) + 0.1 * rng.normal(size=args.n)
    inputs64 = {"x": x, "y": y, **bc.PARAMS_A}
    inputs32 = {"x": x.astype(np.float32), "y": y.astype(np.float32), **bc.PARAMS_A}

    value64, grads64 = model.value_and_grad(**inputs64)
    value32, grads32 = model.value_and_grad(**inputs32)
    assert np.asarray(value32).dtype == np.float32, "float32 in, float32 out"
    agreement = max(abs(float(value32) - float(value64)) / abs(float(value64)),
                    *(abs(float(grads32[k]) - float(grads64[k])) / max(abs(float(grads64[k])),
                                                                        1e-30)
                      for k in grads64))
    assert agreement < 1e-3, f"float32 disagrees with float64 by {agreement:.1e}"

    result = head_to_head(lambda: model.value_and_grad(**inputs64),
                          lambda: model.value_and_grad(**inputs32),
                          pairs=args.pairs, clock=time.process_time)
    f64, f32 = result.a.median, result.b.median
    verdict = "met" if result.ratio >= TARGET_FLOAT32 else "NOT MET"
    print(f"# bench_backends: {datetime.date.today()}, {platform.machine()}, "
          f"{platform.python_version()}, NumPy {np.__version__}")
    print(f"# command: python benchmarks/bench_backends.py --n {args.n} --pairs {args.pairs}")
    print(f"two-layer model, n = {args.n:,}, value_and_grad per call (CPU time):")
    print(f"  float64 {fmt_time(f64)}   float32 {fmt_time(f32)}   "
          f"float64/float32 {result}   (largest relative difference {agreement:.1e})")
    print(f"target: float32 ≥ {TARGET_FLOAT32}× faster than float64: {verdict}")


if __name__ == "__main__":
    main()
