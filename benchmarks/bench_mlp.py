"""Tensor-model benchmark: training an MLP with symgrad, hand-written NumPy, PyTorch and JAX.

    python benchmarks/bench_mlp.py              # the full run (a few minutes)
    python benchmarks/bench_mlp.py --quick      # small sizes, a smoke test (seconds)
    python benchmarks/bench_mlp.py --threads 2  # every competitor on 2 threads

Cases, all float64 on the CPU, full-batch gradient descent (plain SGD) on
Loss = mean((sigmoid(X @ W1 + b1) @ W2 + b2 - y)**2):

(a) Boston: the 506 houses, the 12 features other than `black` (the issue's "13 features";
    `black` encodes a racially motivated variable, see examples/data/README.md),
    standardised; MLP 12 → 64 → 1; 2,000 steps, lr 0.05;
(b) large: n = 100,000 synthetic rows (seeded), MLP 12 → 256 → 1; 5 steps a run (a step
    takes about a second), lr 0.01 (0.05 diverges with 256 hidden units).

Competitors, each from the same initial weights (Xavier-normal from one seeded generator),
on the same data:

* symgrad fit      — ``symgrad.fit(model, start, data, SGD(lr), steps=N)``, the user's way
  (it also records every loss, checks it is finite and keeps the best parameters);
* symgrad loop     — ``value, grads = model.value_and_grad(...)`` and ``p -= lr*g``;
* NumPy (hand)     — the same forward and backward written by hand, updated in place;
* PyTorch eager    — ``torch.nn.Sequential(Linear, Sigmoid, Linear)``, ``torch.optim.SGD``,
  ``zero_grad(); loss.backward(); step()``, ``loss.item()`` every step;
* JAX jit          — one jitted step (``jax.value_and_grad`` and the update) called in a
  Python loop, the losses kept on the device; its compile time is reported apart.

Each training run is timed whole (process CPU time: user and system, so page faults count; on
a shared machine less noisy than the wall clock), in interleaved rounds (every competitor once
per round, in a new seeded random order each round), after one untimed warm-up run; the
figure is the median over rounds, per step. The minor page faults of each run are counted
too (getrusage): on this kind of machine (a VM) touching fresh memory is expensive, and it
is what separates codes that do the same arithmetic. Ratios are paired (the median over
rounds of the two times taken in the same round). The final losses (the last step's loss)
must agree to 1e-6 relative, else the script exits with status 1. symgrad's compile time
for the MLP is measured too (fresh compiles; the median, and the first one).

Memory: NumPy gets memory for each temporary from malloc, and with glibc's defaults a
temporary of a few hundred kB is mmapped or, when the heap's free top grows past the trim
threshold, handed back to the system and page-faulted in again on the next step. How often
that happens depends on the order in which a code frees its temporaries, and it can cost
more than the arithmetic (see docs/benchmarks.md, "Tensor models"). symgrad raises glibc's
thresholds the first time a compiled model runs (symgrad/memory.py); the benchmark does it
before the first run, so that every competitor runs with the same allocator settings, and the
header says which settings those are. ``SYMGRAD_MALLOC=system python benchmarks/bench_mlp.py``
runs everything with glibc's defaults instead.

Threads: every competitor runs on ``--threads`` threads (default 1): OpenBLAS (NumPy,
symgrad) through OPENBLAS_NUM_THREADS, set before NumPy is imported; PyTorch through
``torch.set_num_threads``; XLA through XLA_FLAGS. On a shared 2-core machine a second busy
thread mostly adds noise. PyTorch and JAX are optional: a column whose library does not
import is skipped with a message.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":  # before NumPy is imported: OpenBLAS reads its thread count once
    _threads = sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv else "1"
    for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_variable] = _threads

import argparse
import datetime
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sympy as sp

import symgrad
from symgrad import init
from symgrad.memory import keep_freed_memory
from symgrad.optim import SGD

try:  # run as a script (benchmarks/ is on sys.path) or imported as benchmarks.bench_mlp
    from _timing import Stats, fmt_ratio, fmt_time, interleaved_once, paired_ratio
except ModuleNotFoundError:  # pragma: no cover
    from benchmarks._timing import Stats, fmt_ratio, fmt_time, interleaved_once, paired_ratio

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "examples" / "data" / "boston.csv"
#: The Boston features but the target and `black` (see examples/data/README.md).
FEATURES = ("crim", "zn", "indus", "chas", "nox", "rm", "age", "dis", "rad", "tax", "ptratio",
            "lstat")

SYMGRAD_FIT = "symgrad fit"
SYMGRAD_LOOP = "symgrad loop"
NUMPY = "NumPy (hand)"
TORCH = "PyTorch eager"
JAX = "JAX jit"

TOLERANCE = 1e-6  # final losses must agree to this, relative
TARGET_NUMPY = 1.1  # symgrad within 1.1× of hand-written NumPy
TARGET_COMPILE = 0.5  # seconds to compile the MLP

Params = dict[str, np.ndarray]
Run = Callable[[int], float]  # steps -> the last step's loss


# -- the problems ----------------------------------------------------------------------------


@dataclass
class Case:
    """One training problem: data, starting weights, learning rate and steps."""

    name: str
    X: np.ndarray
    y: np.ndarray
    start: Params
    lr: float
    steps: int

    @property
    def shape(self) -> str:
        return f"n = {len(self.X):,}, {self.X.shape[1]} → {self.start['W1'].shape[1]} → 1"


def starting_weights(inputs: int, hidden: int, seed: int = 0) -> Params:
    """Xavier-normal weights, zero biases, from one seeded generator."""
    rng = np.random.default_rng(seed)
    return {"W1": init.xavier_normal((inputs, hidden), seed=rng), "b1": init.zeros(hidden),
            "W2": init.xavier_normal((hidden, 1), seed=rng), "b2": init.zeros(1)}


def boston_case(steps: int) -> Case:
    """The Boston MLP: 506 rows, 12 standardised features, 64 hidden units."""
    table = np.genfromtxt(DATA, delimiter=",", names=True, dtype=float)
    X = np.column_stack([table[f] for f in FEATURES])
    X = (X - X.mean(0)) / X.std(0)
    return Case("Boston", X, table["medv"][:, None], starting_weights(12, 64), 0.05, steps)


def large_case(n: int, steps: int, hidden: int = 256) -> Case:
    """Synthetic rows: X ~ N(0, 1), y a smooth function of X plus noise (seeded)."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(n, 12))
    a, b = rng.normal(size=12) / np.sqrt(12), rng.normal(size=12) / np.sqrt(12)
    y = 3 * np.tanh(X @ a) + (X @ b) ** 2 + 0.1 * rng.normal(size=n)
    return Case("large", X, y[:, None], starting_weights(12, hidden), 0.01, steps)


def mlp_equations() -> list[sp.Eq]:
    X, W1, b1, W2, b2, y = sp.symbols("X W1 b1 W2 b2 y")
    L1, H, L2, Loss = sp.symbols("L1 H L2 Loss")
    return [
        sp.Eq(L1, symgrad.matmul(X, W1) + b1),
        sp.Eq(H, symgrad.sigmoid(L1)),
        sp.Eq(L2, symgrad.matmul(H, W2) + b2),
        sp.Eq(Loss, symgrad.mean((L2 - y) ** 2)),
    ]


def compile_mlp() -> symgrad.CompiledModel:
    return symgrad.compile(mlp_equations(), wrt=["W1", "b1", "W2", "b2"])


# -- the competitors: each returns run(steps) -> last loss ----------------------------------


def copy(params: Params) -> Params:
    return {name: np.array(value, dtype=np.float64) for name, value in params.items()}


def symgrad_fit(case: Case, model: symgrad.CompiledModel) -> Run:
    data = {"X": case.X, "y": case.y}

    def run(steps: int) -> float:
        history = symgrad.fit(model, case.start, data, SGD(lr=case.lr), steps=steps,
                              progress=False)
        return history.losses[-1]

    return run


def symgrad_loop(case: Case, model: symgrad.CompiledModel) -> Run:
    def run(steps: int) -> float:
        p = copy(case.start)
        lr = case.lr
        for _ in range(steps):
            value, grads = model.value_and_grad(X=case.X, y=case.y, **p)
            for name, g in grads.items():
                p[name] -= lr * g
        return float(value)

    return run


def numpy_hand(case: Case) -> Run:
    """What a careful person writes: the forward, the chain rule by hand, in-place updates."""
    X, y = case.X, case.y

    def run(steps: int) -> float:
        p = copy(case.start)
        W1, b1, W2, b2 = p["W1"], p["b1"], p["W2"], p["b2"]
        lr = case.lr
        for _ in range(steps):
            H = 1 / (1 + np.exp(-(X @ W1 + b1)))
            r = H @ W2 + b2 - y
            loss = np.mean(r**2)
            dL2 = (2 / r.size) * r
            dL1 = (dL2 @ W2.T) * H * (1 - H)
            W1 -= lr * (X.T @ dL1)
            b1 -= lr * dL1.sum(0)
            W2 -= lr * (H.T @ dL2)
            b2 -= lr * dL2.sum(0)
        return float(loss)

    return run


def torch_eager(case: Case, torch: Any) -> Run:
    X, y = torch.from_numpy(case.X), torch.from_numpy(case.y)
    W1, b1, W2, b2 = (case.start[k] for k in ("W1", "b1", "W2", "b2"))

    def run(steps: int) -> float:
        net = torch.nn.Sequential(
            torch.nn.Linear(*W1.shape), torch.nn.Sigmoid(), torch.nn.Linear(*W2.shape)
        ).double()
        with torch.no_grad():  # nn.Linear keeps its weight transposed: (out, in)
            net[0].weight.copy_(torch.from_numpy(W1.T))
            net[0].bias.copy_(torch.from_numpy(b1))
            net[2].weight.copy_(torch.from_numpy(W2.T))
            net[2].bias.copy_(torch.from_numpy(b2))
        optimizer = torch.optim.SGD(net.parameters(), lr=case.lr)
        losses = []
        for _ in range(steps):
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(net(X), y)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        return losses[-1]

    return run


def jax_jit(case: Case, jax: Any) -> tuple[Run, float]:
    """The jitted step in a Python loop, and the seconds its first call (the compile) took."""
    jnp = jax.numpy
    X, y = jnp.asarray(case.X), jnp.asarray(case.y)
    lr = case.lr

    def loss_fn(p, X, y):
        H = jax.nn.sigmoid(X @ p["W1"] + p["b1"])
        return jnp.mean((H @ p["W2"] + p["b2"] - y) ** 2)

    @jax.jit
    def step(p, X, y):
        loss, g = jax.value_and_grad(loss_fn)(p, X, y)
        return jax.tree_util.tree_map(lambda a, b: a - lr * b, p, g), loss

    def run(steps: int) -> float:
        p = {name: jnp.asarray(value) for name, value in case.start.items()}
        losses = []
        for _ in range(steps):
            p, loss = step(p, X, y)
            losses.append(loss)
        return float(losses[-1].block_until_ready())

    start = time.perf_counter()
    jax.block_until_ready(step({k: jnp.asarray(v) for k, v in case.start.items()}, X, y))
    return run, time.perf_counter() - start


# -- the race --------------------------------------------------------------------------------


@dataclass
class Result:
    case: Case
    stats: dict[str, Stats]
    losses: dict[str, float]
    faults: dict[str, float]  # minor page faults per step (median over rounds)
    failures: dict[str, BaseException]
    jax_compile: float | None


def load_optional(skip: set[str], messages: list[str]) -> tuple[Any, Any]:
    torch = jax = None
    if "torch" not in skip:
        try:
            import torch

            torch.set_num_threads(int(os.environ.get("OPENBLAS_NUM_THREADS", "1")))
            messages.append(f"PyTorch {torch.__version__} ({torch.get_num_threads()} thread(s))")
        except Exception as e:
            messages.append(f"PyTorch not available, column skipped ({type(e).__name__}: {e})")
            torch = None
    if "jax" not in skip:
        try:
            threads = int(os.environ.get("OPENBLAS_NUM_THREADS", "1"))
            if threads == 1:
                os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " "
                                           "--xla_cpu_multi_thread_eigen=false "
                                           "intra_op_parallelism_threads=1").strip()
            import jax

            jax.config.update("jax_enable_x64", True)
            jax.config.update("jax_platforms", "cpu")
            messages.append(f"JAX {jax.__version__} (x64, CPU)")
        except Exception as e:
            messages.append(f"JAX not available, column skipped ({type(e).__name__}: {e})")
            jax = None
    return torch, jax


def timed_rounds(
    runs: dict[str, Run], steps: int, rounds: int
) -> tuple[dict[str, Stats], dict[str, float], dict[str, float], dict[str, BaseException]]:
    """Every run once per round, in a new (seeded) random order each round: wall times, last
    losses, page faults. (A rotation would keep each run's predecessor fixed, and what the
    predecessor leaves in the heap and the caches matters for arrays of this size.)

    Also counts the minor page faults of each run (``getrusage``): fresh memory for large
    temporaries is what separates codes that do the same arithmetic.
    """
    names = list(runs)
    samples: dict[str, list[float]] = {name: [] for name in names}
    faults: dict[str, list[int]] = {name: [] for name in names}
    losses: dict[str, float] = {}
    failures: dict[str, BaseException] = {}
    order = np.random.default_rng(0)
    for _ in range(rounds):
        for name in order.permutation(names).tolist():
            if name in failures:
                continue
            before = _minor_faults()
            start = time.process_time()
            try:
                losses[name] = float(runs[name](steps))
            except Exception as e:  # reported in the table, the race goes on
                failures[name] = e
                continue
            samples[name].append(time.process_time() - start)
            faults[name].append(_minor_faults() - before)
    stats = {name: Stats(tuple(s)) for name, s in samples.items() if s}
    per_step = {name: statistics.median(f) / steps for name, f in faults.items() if f}
    return stats, losses, per_step, failures


def _minor_faults() -> int:
    try:
        import resource
    except ImportError:  # not on Windows
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def race(case: Case, model: symgrad.CompiledModel, torch: Any, jax: Any, rounds: int) -> Result:
    runs: dict[str, Run] = {
        SYMGRAD_FIT: symgrad_fit(case, model),
        SYMGRAD_LOOP: symgrad_loop(case, model),
        NUMPY: numpy_hand(case),
    }
    if torch is not None:
        runs[TORCH] = torch_eager(case, torch)
    jax_compile = None
    if jax is not None:
        runs[JAX], jax_compile = jax_jit(case, jax)
    for run in runs.values():  # warm-up: first calls, symgrad's specialisation, caches
        run(2)
    stats, losses, faults, failures = timed_rounds(runs, case.steps, rounds)
    return Result(case, stats, losses, faults, failures, jax_compile)


def table(result: Result) -> str:
    steps = result.case.steps
    base = result.stats.get(NUMPY)
    reference = result.losses.get(NUMPY)
    lines = [
        f"| {result.case.name} ({result.case.shape}), {steps:,} steps | per step | run "
        f"| spread | vs NumPy (hand) | page faults / step | final loss | rel. diff. |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, s in result.stats.items():
        loss = result.losses[name]
        diff = abs(loss - reference) / abs(reference) if reference else float("nan")
        lines.append(
            f"| {name} | {fmt_time(s.median / steps)} | {fmt_time(s.median)} "
            f"| {100 * s.spread:.0f}% | {fmt_ratio(paired_ratio(s, base))} "
            f"| {result.faults[name]:.0f} | {loss:.12g} | {diff:.1g} |"
        )
    for name, e in result.failures.items():
        lines.append(f"| {name} | failed: {type(e).__name__}: {e} | | | | | | |")
    return "\n".join(lines)


def compile_times(rounds: int) -> tuple[float, Stats]:
    """The first compile of the MLP in this process, and fresh compiles after it."""
    start = time.perf_counter()
    compile_mlp()
    first = time.perf_counter() - start
    stats, _, _ = interleaved_once({"compile": compile_mlp}, rounds=rounds)
    return first, stats["compile"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    parser.add_argument("--rounds", type=int, default=None,
                        help="interleaved rounds (default: 15 for Boston, 5 for the large case)")
    parser.add_argument("--threads", type=int, default=1, help="threads for every competitor")
    parser.add_argument("--skip", action="append", default=[], choices=["torch", "jax"],
                        help="leave a competitor out (repeatable)")
    args = parser.parse_args()
    if os.environ.get("OPENBLAS_NUM_THREADS") != str(args.threads):
        print("note: NumPy's BLAS thread count is set only when this file runs as a script")
    rounds = {"Boston": 15, "large": 5} if args.rounds is None else {
        "Boston": args.rounds, "large": args.rounds}
    if args.quick:
        rounds = {name: min(n, 2) for name, n in rounds.items()}

    messages: list[str] = []
    torch, jax = load_optional(set(args.skip), messages)
    command = "python benchmarks/bench_mlp.py " + " ".join(sys.argv[1:])
    print(f"# {command.strip()}")
    print(f"# {datetime.date.today()}, {platform.platform()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}")
    print(f"# symgrad {symgrad.__version__}, NumPy {np.__version__}, SymPy {sp.__version__}; "
          + "; ".join(messages))
    print(f"# threads: {args.threads} for every competitor (OPENBLAS_NUM_THREADS="
          f"{os.environ.get('OPENBLAS_NUM_THREADS')}, torch.set_num_threads, XLA_FLAGS); "
          f"interleaved rounds ({rounds['Boston']} Boston, {rounds['large']} large), medians "
          "of process CPU time; float64, full-batch SGD")
    tuned = {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")}
    if keep_freed_memory():  # what symgrad does at its first call, for every competitor
        allocator = "thresholds raised by symgrad.memory (mmap 32 MB, trim 256 MB)"
    else:
        allocator = ", ".join(f"{k}={v}" for k, v in tuned.items()) or "glibc defaults"
    print(f"# malloc: {allocator}, for every competitor\n")

    first, compiles = compile_times(3 if args.quick else 7)
    compile_ok = compiles.median < TARGET_COMPILE
    print(f"symgrad compile of the MLP: {fmt_time(compiles.median)} median of {compiles.n} "
          f"(first in this process {fmt_time(first)}); target < {TARGET_COMPILE} s: "
          f"{'met' if compile_ok else 'NOT met'}\n", flush=True)

    model = compile_mlp()
    cases = ([boston_case(200), large_case(10_000, 5)] if args.quick
             else [boston_case(2_000), large_case(100_000, 5)])
    agree = True
    for case in cases:
        result = race(case, model, torch, jax, rounds[case.name])
        print(table(result))
        if result.jax_compile is not None:
            print(f"\n(JAX's jit compile of the step, not in the runs: "
                  f"{fmt_time(result.jax_compile)})")
        losses = list(result.losses.values())
        worst = max(abs(v - losses[0]) / abs(losses[0]) for v in losses)
        agree = agree and worst <= TOLERANCE and not result.failures
        ratio = paired_ratio(result.stats[SYMGRAD_FIT], result.stats[NUMPY])
        loop = paired_ratio(result.stats[SYMGRAD_LOOP], result.stats[NUMPY])
        verdicts = [
            f"final losses agree to {TOLERANCE:g}: {'yes' if worst <= TOLERANCE else 'NO'} "
            f"(largest relative difference {worst:.1g})",
            f"symgrad fit / NumPy (hand) {fmt_ratio(ratio)}, symgrad loop / NumPy (hand) "
            f"{fmt_ratio(loop)} (target ≤ {TARGET_NUMPY}×: "
            f"{'met' if ratio is not None and ratio <= TARGET_NUMPY else 'NOT met'})",
        ]
        if TORCH in result.stats:
            vs_torch = paired_ratio(result.stats[TORCH], result.stats[SYMGRAD_FIT])
            faster = "symgrad faster" if vs_torch and vs_torch > 1 else "PyTorch faster"
            verdicts.append(f"PyTorch eager / symgrad fit {fmt_ratio(vs_torch)} ({faster})")
        if JAX in result.stats:
            vs_jax = paired_ratio(result.stats[JAX], result.stats[SYMGRAD_FIT])
            verdicts.append(f"JAX jit / symgrad fit {fmt_ratio(vs_jax)}")
        print("\n" + "\n".join(f"- {v}" for v in verdicts) + "\n", flush=True)
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
