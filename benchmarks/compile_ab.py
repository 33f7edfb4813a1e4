"""Compile time of two symgrad checkouts, head to head: did a change make compiling faster?

The machine's speed drifts by up to 2× over an hour, so compile times taken an hour apart (or
against a figure in the docs) say little about a change. This script times the Rosenbrock sum
over N scalar symbols (``symgrad.compile`` plus the first ``value_and_grad`` call, as
``bench_core.py`` does) for two checkouts in alternating fresh processes, and reports the
median over the pairs of B's time over A's: a ratio that drifts far less than either time.

    git worktree add /tmp/symgrad-before <commit>
    python benchmarks/compile_ab.py /tmp/symgrad-before .        # default: N = 1000, 8 pairs
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

#: Run in a fresh process with the checkout first on sys.path: prints the best of three
#: compiles (CPU seconds), each after clearing SymPy's cache.
CHILD = """
import gc, sys, time
sys.path.insert(0, sys.argv[1])
import sympy as sp, symgrad
assert symgrad.__file__.startswith(sys.argv[1]), symgrad.__file__
n = int(sys.argv[2])
xs = sp.symbols(f"x0:{n}")
f = sum(100*(xs[i + 1] - xs[i]**2)**2 + (1 - xs[i])**2 for i in range(n - 1))
values = {f"x{i}": 0.5 for i in range(n)}
best = float("inf")
for _ in range(3):
    sp.core.cache.clear_cache()
    gc.collect()
    start = time.process_time()
    symgrad.compile(f).value_and_grad(**values)
    best = min(best, time.process_time() - start)
print(best)
"""


def compile_seconds(checkout: Path, n: int) -> float:
    """The best of three N-symbol Rosenbrock compiles with the symgrad of ``checkout``."""
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(checkout), str(n)],
        capture_output=True, text=True, check=True,
    )
    return float(result.stdout)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", type=Path, help="checkout A (the reference)")
    parser.add_argument("b", type=Path, help="checkout B")
    parser.add_argument("-n", type=int, default=1000, help="number of symbols (default 1000)")
    parser.add_argument("--pairs", type=int, default=8, help="A/B pairs (default 8)")
    args = parser.parse_args(argv)
    a, b = args.a.resolve(), args.b.resolve()
    ratios = []
    print(f"Rosenbrock N = {args.n}: compile + first call, best of 3 per process (CPU time)")
    print(f"{'pair':>4}  {'A':>8}  {'B':>8}  {'B / A':>6}")
    for i in range(args.pairs):
        first, second = (a, b) if i % 2 == 0 else (b, a)  # alternate which goes first
        times = {first: compile_seconds(first, args.n), second: compile_seconds(second, args.n)}
        ratios.append(times[b] / times[a])
        print(f"{i + 1:>4}  {times[a] * 1e3:6.0f}ms  {times[b] * 1e3:6.0f}ms  {ratios[-1]:5.2f}×")
    quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
    print(f"B / A: median {statistics.median(ratios):.2f}× "
          f"(quartiles {quartiles[0]:.2f}–{quartiles[2]:.2f}) over {len(ratios)} pairs")


if __name__ == "__main__":
    main()
