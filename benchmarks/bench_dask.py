"""Dask beyond memory (issue 16): the two-layer model's value and gradient over data generated
chunk by chunk, against NumPy's in memory.

    python benchmarks/bench_dask.py                    # 10⁸ rows against NumPy at 10⁷
    python benchmarks/bench_dask.py --rows 30000000 --pairs 5

Measured head to head (ABBA pairs, the median of the per-pair ratios with its quartiles), wall
time, after checking that both give the same loss and gradients on the same rows:

- NumPy: one ``value_and_grad`` of the two-layer model (bench_core's case (a), W2) on ``--n``
  rows in memory, on one core (NumPy's elementwise code is single-threaded);
- Dask: the same compiled model on Dask (``model.to("dask")``) over ``--rows`` rows in chunks of
  ``--chunk``, generated chunk by chunk and never held whole (x evenly spaced, y a line of x:
  cheap to make, so the figure is the model's), one ``dask.compute`` a call on the threaded
  scheduler with one thread per core.

Throughput is rows per second per core used; the issue's target: Dask's at least 0.7× NumPy's,
against the head-to-head NumPy figure and against NumPy alone (calls in a row: a NumPy call
right after a Dask call is slower, its memory faulted in again).
Also reported: the same call where the data is random normal draws (drawing them costs more
than the model), and the peak of what NumPy and Dask allocate during a Dask call (tracemalloc,
above what was allocated before), in chunks of x and y.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import bench_core as bc  # noqa: E402
from _timing import fmt_time, head_to_head  # noqa: E402

import symgrad  # noqa: E402

TARGET = 0.7


def lazy_data(rows: int, chunk: int, kind: str):
    import dask.array as da

    if kind == "normal":
        x = da.random.default_rng(0).normal(size=rows, chunks=chunk)
    else:
        x = da.linspace(-3.0, 3.0, rows, chunks=chunk)
    return {"x": x, "y": 0.5 * x + 0.1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000_000, help="Dask's rows (10⁸)")
    parser.add_argument("--chunk", type=int, default=1_000_000, help="rows a chunk (10⁶)")
    parser.add_argument("--n", type=int, default=10_000_000, help="NumPy's rows (10⁷)")
    parser.add_argument("--pairs", type=int, default=7, help="ABBA pairs (default 7)")
    args = parser.parse_args()
    import dask

    cores = os.cpu_count() or 1
    dask.config.set(scheduler="threads", num_workers=cores)
    equations, wrt, _ = bc.model_two_layer(plain=False)
    model = symgrad.compile(equations, wrt=wrt, cache=False)
    on_dask = model.to("dask")
    params = bc.PARAMS_A

    # the same rows both ways first: NumPy's first n of Dask's own rows, in memory
    check = lazy_data(args.n, args.chunk, "linear")
    in_memory = {k: v.compute() for k, v in check.items()}
    want, want_grads = model.value_and_grad(**in_memory, **params)
    got, got_grads = on_dask.value_and_grad(**check, **params)
    assert abs(float(got) - float(want)) <= 1e-12 * abs(float(want))
    for k in want_grads:
        assert abs(float(got_grads[k]) - float(want_grads[k])) <= 1e-10 * abs(
            float(want_grads[k])), k

    big = lazy_data(args.rows, args.chunk, "linear")
    result = head_to_head(lambda: model.value_and_grad(**in_memory, **params),
                          lambda: on_dask.value_and_grad(**big, **params), pairs=args.pairs)
    # NumPy right after a Dask call is slower than on its own (its memory is faulted in
    # again): NumPy alone, calls in a row, is the fair baseline, and the verdict's
    alone = []
    for _ in range(args.pairs):
        began = time.perf_counter()
        model.value_and_grad(**in_memory, **params)
        alone.append(time.perf_counter() - began)
    alone_seconds = statistics.median(alone)
    numpy_rate = args.n / result.a.median
    dask_rate = args.rows / result.b.median / cores
    per_core = result.ratio * args.rows / args.n / cores  # (the paired ratio, in rows)
    low, high = (r * args.rows / args.n / cores for r in (result.low, result.high))
    fair = dask_rate / (args.n / alone_seconds)

    normal = lazy_data(args.rows, args.chunk, "normal")
    on_dask.value_and_grad(**normal, **params)
    start = time.perf_counter()
    on_dask.value_and_grad(**normal, **params)
    normal_seconds = time.perf_counter() - start

    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    on_dask.value_and_grad(**big, **params)
    peak = tracemalloc.get_traced_memory()[1] - before
    tracemalloc.stop()
    chunk_bytes = 2 * args.chunk * 8

    verdict = "met" if min(per_core, fair) >= TARGET else "NOT MET"
    print(f"# bench_dask: {datetime.date.today()}, {platform.machine()}, {cores} cores, "
          f"Python {platform.python_version()}, NumPy {np.__version__}, Dask {dask.__version__}")
    print(f"# command: python benchmarks/bench_dask.py --rows {args.rows} --chunk {args.chunk} "
          f"--n {args.n} --pairs {args.pairs}")
    print(f"two-layer model, value_and_grad per call (wall time, median of {args.pairs} pairs):")
    print(f"  NumPy, {args.n:,} rows in memory, 1 core: {fmt_time(result.a.median)} = "
          f"{numpy_rate / 1e6:.1f} M rows/s")
    print(f"  Dask, {args.rows:,} rows in chunks of {args.chunk:,}, generated, {cores} cores: "
          f"{fmt_time(result.b.median)} = {dask_rate / 1e6:.1f} M rows/s per core")
    print(f"  Dask's rows/s per core over NumPy's: {per_core:.2f}× (quartiles {low:.2f}–"
          f"{high:.2f}) head to head; {fair:.2f}× against NumPy alone ({fmt_time(alone_seconds)}"
          f" a call, {args.pairs} in a row); target ≥ {TARGET}× (both): {verdict}")
    print(f"  with random normal x instead (drawing it costs more than the model): "
          f"{fmt_time(normal_seconds)} = {args.rows / normal_seconds / cores / 1e6:.1f} M rows/s "
          f"per core")
    print(f"  allocated during a Dask call, at its peak: {peak / 2**20:.0f} MB = "
          f"{peak / chunk_bytes:.1f} chunks of x and y (the data: "
          f"{args.rows * 16 / 2**20:,.0f} MB)")


if __name__ == "__main__":
    main()
