"""Fit a model to more data than the process may hold in memory: the two-layer model, trained on
x and y that Dask generates chunk by chunk and never materialises, under a cap on the process's
memory (on Linux, the address space: ``resource.RLIMIT_AS``; on a cluster, Dask's memory limit
of its workers, half the cap each).

    python examples/beyond_memory.py                       # 10⁸ rows (1.5 GB) under 1 GB
    python examples/beyond_memory.py --rows 300000000      # 4.5 GB, the same cap
    python examples/beyond_memory.py --quick               # 6·10⁷ rows (0.9 GB) under 0.8 GB
    python examples/beyond_memory.py --cluster             # on a dask.distributed LocalCluster

First an epoch of mini-batches (Adam), drawn chunk by chunk, then full-batch steps, each one
``dask.compute`` over every chunk. The summary is printed and written to
``beyond_memory.md`` in ``--output`` (default examples/output).

To use a real cluster, create its client before fitting: ``Client("tcp://scheduler:8786")``;
``fit`` runs on the active client. On macOS the cap is not enforced (its kernel ignores
RLIMIT_AS): the peak memory is reported all the same.
"""

from __future__ import annotations

import argparse
import importlib.util
import resource
import sys
import time
from pathlib import Path

import sympy as sp

import symgrad
from symgrad.optim import Adam

TRUE = {"k1": 1.5, "b1": -0.5, "k2": 2.0, "b2": 0.3}  # the parameters the data is made with


def two_layer() -> symgrad.CompiledModel:
    x, y, k1, b1, k2, b2 = sp.symbols("x y k1 b1 k2 b2")
    L1, σ, L2, Loss = sp.symbols("L1 σ L2 Loss")
    return symgrad.compile(
        [sp.Eq(L1, k1 * x + b1), sp.Eq(σ, symgrad.sigmoid(L1)), sp.Eq(L2, k2 * σ + b2),
         sp.Eq(Loss, symgrad.mean((L2 - y) ** 2))],
        wrt=[k1, b1, k2, b2],
    )


def data(rows: int, chunk: int, seed: int) -> dict:
    """x ~ N(0, 1) and y = the model at TRUE plus noise of 0.1, as lazy Dask arrays."""
    import dask.array as da

    rng = da.random.default_rng(seed)
    x = rng.normal(size=rows, chunks=chunk)
    noise = rng.normal(scale=0.1, size=rows, chunks=chunk)
    y = TRUE["k2"] / (1 + da.exp(-(TRUE["k1"] * x + TRUE["b1"]))) + TRUE["b2"] + noise
    return {"x": x, "y": y}


def peak_mb() -> float:
    """This process's peak resident memory, in MB: Linux's VmHWM (``ru_maxrss`` would count
    the parent's peak from before this program was started), else ``ru_maxrss`` (macOS counts
    it in bytes)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**10
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def main() -> None:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--rows", type=int, default=None, help="rows of data (default 10⁸)")
    parser.add_argument("--chunk", type=int, default=1_000_000, help="rows per chunk")
    parser.add_argument("--memory", type=int, default=None,
                        help="the cap on the process's memory, in MB (default 1024)")
    parser.add_argument("--batch-size", type=int, default=10_000, help="rows per mini-batch")
    parser.add_argument("--full-steps", type=int, default=2, help="full-batch steps after")
    parser.add_argument("--cluster", action="store_true",
                        help="run on a dask.distributed LocalCluster (2 workers)")
    parser.add_argument("--quick", action="store_true", help="6·10⁷ rows under 800 MB")
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "output",
                        help="where beyond_memory.md goes")
    args = parser.parse_args()
    rows = args.rows or (60_000_000 if args.quick else 100_000_000)
    cap = args.memory or (800 if args.quick else 1024)
    if rows < 1 or args.chunk < 1 or cap < 1 or args.batch_size < 1 or args.full_steps < 0:
        parser.error("--rows, --chunk, --memory and --batch-size must be positive")
    if importlib.util.find_spec("dask") is None:
        sys.exit("this example needs Dask: pip install 'symgrad[dask]'")
    if args.cluster:  # the cap is the workers' (Dask's own limit: a worker above it is stopped)
        from dask.distributed import Client, LocalCluster

        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          memory_limit=f"{cap // 2}MiB", dashboard_address=None) as cluster, \
                Client(cluster) as client:
            fit_and_report(args, rows, cap, client, enforced=True)
    else:
        enforced = sys.platform.startswith("linux")
        if enforced:
            resource.setrlimit(resource.RLIMIT_AS, (cap * 2**20, cap * 2**20))
        fit_and_report(args, rows, cap, None, enforced)


def fit_and_report(args: argparse.Namespace, rows: int, cap: int, client, enforced: bool) -> None:
    """The two fits, their figures printed and written to beyond_memory.md."""
    model = two_layer()
    inputs = data(rows, args.chunk, seed=0)
    size_mb = 2 * rows * 8 / 2**20
    where = "a LocalCluster of 2 worker processes" if client else "threads"
    print(f"data: x and y, {rows:,} rows in chunks of {args.chunk:,} = {size_mb:,.0f} MB, "
          f"generated chunk by chunk; memory cap {cap:,} MB"
          f"{'' if enforced else ' (not enforced on this system)'}; Dask on {where}")

    start = {"k1": 0.5, "b1": 0.0, "k2": 1.0, "b2": 0.0}
    optimizer = Adam(lr=0.01)
    began = time.perf_counter()
    mini = symgrad.fit(model, start, inputs, optimizer, epochs=1, batch_size=args.batch_size)
    mini_seconds = time.perf_counter() - began
    print(f"one epoch of mini-batches: {mini.steps:,} steps in {mini_seconds:.1f} s "
          f"({rows / mini_seconds:,.0f} rows/s); last batch's loss {mini.losses[-1]:.5f}")

    began = time.perf_counter()
    full = symgrad.fit(model, mini.params, inputs, optimizer, steps=max(args.full_steps, 1),
                       progress=False)
    full_seconds = (time.perf_counter() - began) / full.steps
    print(f"full-batch steps (one compute over all {rows:,} rows each): {full_seconds:.2f} s a "
          f"step ({rows / full_seconds:,.0f} rows/s); the loss over all the data "
          f"{full.losses[-1]:.5f} (the noise's variance is 0.01)")
    fitted = full.params
    print("parameters, fitted and true: " + ", ".join(
        f"{n} {fitted[n]:.3f} ({TRUE[n]})" for n in TRUE))
    peak = peak_mb()
    workers = ""
    if client is not None:
        peaks = client.run(peak_mb)
        workers = "; its workers' peaks " + ", ".join(f"{p:,.0f} MB" for p in peaks.values())
    print(f"peak memory of this process: {peak:,.0f} MB, against {size_mb:,.0f} MB of data"
          f"{workers}")

    args.output.mkdir(parents=True, exist_ok=True)
    written = args.output / "beyond_memory.md"
    written.write_text(
        f"# Beyond memory\n\n`python examples/beyond_memory.py {' '.join(sys.argv[1:])}`\n\n"
        f"| | |\n|---|---|\n| rows | {rows:,} ({size_mb:,.0f} MB of x and y) |\n"
        f"| chunk | {args.chunk:,} rows |\n| memory cap | {cap:,} MB"
        f"{'' if enforced else ' (not enforced)'} |\n| Dask | {where} |\n"
        f"| mini-batch epoch | {mini.steps:,} steps, {mini_seconds:.1f} s |\n"
        f"| full-batch step | {full_seconds:.2f} s, loss {full.losses[-1]:.5f} |\n"
        f"| fitted (true) | {', '.join(f'{n} {fitted[n]:.3f} ({TRUE[n]})' for n in TRUE)} |\n"
        f"| peak memory | {peak:,.0f} MB{workers} |\n", encoding="utf-8")
    print(f"The summary was written to {written}")


if __name__ == "__main__":
    main()
