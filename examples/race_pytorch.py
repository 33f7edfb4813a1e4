"""The tutorial's race, honestly: symgrad against PyTorch on the Boston models, in one process.

For each model both contestants get the same data, the same model, the same initial weights,
the same learning rate and the same number of full-batch gradient-descent steps, in float64
on the CPU:

* symgrad: the model compiled once, trained with ``symgrad.fit(model, start, data,
  SGD(lr), steps=N)``;
* PyTorch (eager): the usual loop, ``optimizer.zero_grad(); loss = ...; loss.backward();
  optimizer.step()``, with ``torch.optim.SGD``, recording ``loss.item()`` every step as fit
  records every loss.

The models: the tutorial's line (Loss = mean((k*x + b - y)**2), x = rm), its two-layer model
(L1 = k1*x + b1, σ = sigmoid(L1), L2 = k2*σ + b2, x = standardised rm) and an MLP 12 → 64 → 1
on all the features but `black` (see examples/data/README.md; the tutorial's "13 features").

Each training run is timed whole (wall clock), several times, the two contestants taking
turns (interleaved, the order alternating), and the median is reported; symgrad's compile
time is shown apart. Both run on the same number of threads (--threads, default 1: NumPy's
BLAS and torch.set_num_threads), so the race is about the code each runs, not about who grabs
more cores of a shared machine. The final losses must agree to 1e-6 relative, or the script
exits with status 1. Without PyTorch installed it says so and exits 0.

The tutorial's own race was 219 s (its framework) against 359 s (PyTorch); these figures are
a side-by-side measurement on this machine.

Prints the table and writes it, in Markdown, to examples/output/race_pytorch.md (--output
DIR for another folder).

Run: python examples/race_pytorch.py [--runs N] [--threads N] [--quick] [--output DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Final losses of the two contestants must agree to this relative tolerance.
TOLERANCE = 1e-6
OUTPUT = Path(__file__).resolve().parent / "output"


@dataclass
class Race:
    """One model's race: both contestants' timed runs and final losses."""

    key: str
    name: str
    steps: int
    lr: float
    compile_seconds: float
    symgrad_seconds: list[float]
    torch_seconds: list[float]
    symgrad_loss: float
    torch_loss: float

    @property
    def ratio(self) -> float:
        """PyTorch's median time over symgrad's: above 1, symgrad is faster."""
        return statistics.median(self.torch_seconds) / statistics.median(self.symgrad_seconds)

    @property
    def relative_difference(self) -> float:
        """|symgrad's final loss − PyTorch's| / |PyTorch's|."""
        return abs(self.symgrad_loss - self.torch_loss) / abs(self.torch_loss)


def set_threads(threads: int) -> None:
    """Ask NumPy's BLAS for ``threads`` threads: must run before NumPy is first imported."""
    if "numpy" in sys.modules:
        raise RuntimeError("set_threads must run before numpy is imported")
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(threads)


def contestants(quick: bool) -> list[dict[str, Any]]:
    """The three models: equations, data, start, learning rate and steps for each."""
    import sympy as sp
    from boston_mlp import mlp_equations, mlp_start
    from boston_two_layer import starting_point, two_layer_model
    from datasets import BOSTON_FEATURES, boston_matrix, load_boston

    import symgrad

    table = load_boston()
    rooms, medv = table["rm"], table["medv"]
    features, _ = boston_matrix()
    x, y, k, b = sp.symbols("x y k b")
    return [
        {
            "key": "line",
            "name": "line: mean((k*x + b - y)**2), x = rm",
            "compile": lambda: symgrad.compile(symgrad.mean((k * x + b - y) ** 2), wrt=[k, b]),
            "data": {"x": rooms, "y": medv},
            "start": {"k": 0.0, "b": 0.0},
            "lr": 0.02,
            "steps": 1_000 if quick else 20_000,
        },
        {
            "key": "two-layer",
            "name": "two-layer: k2*sigmoid(k1*x + b1) + b2",
            "compile": two_layer_model,
            "data": {"x": (rooms - rooms.mean()) / rooms.std(), "y": medv},
            "start": starting_point(0),
            "lr": 0.03,
            "steps": 300 if quick else 5_000,
        },
        {
            "key": "MLP",
            "name": f"MLP {len(BOSTON_FEATURES)} → 64 → 1, sigmoid",
            "compile": lambda: symgrad.compile(mlp_equations(), wrt=["W1", "b1", "W2", "b2"]),
            "data": {"X": (features - features.mean(0)) / features.std(0), "y": medv[:, None]},
            "start": mlp_start(len(BOSTON_FEATURES), 64, seed=0),
            "lr": 0.05,
            "steps": 100 if quick else 2_000,
        },
    ]


def symgrad_run(model, data: dict, start: dict, lr: float, steps: int) -> Callable[[], float]:
    """One training run with symgrad.fit; returns the last step's loss."""
    import symgrad
    from symgrad.optim import SGD

    def run() -> float:
        history = symgrad.fit(model, start, data, SGD(lr=lr), steps=steps, progress=False)
        return history.losses[-1]

    return run


def torch_run(key: str, data: dict, start: dict, lr: float, steps: int) -> Callable[[], float]:
    """The same training run written the usual PyTorch way; returns the last step's loss."""
    import numpy as np
    import torch

    tensors = {key: torch.from_numpy(np.asarray(value, dtype=np.float64))
               for key, value in data.items()}

    if key == "MLP":
        W1, b1, W2, b2 = (np.asarray(start[key]) for key in ("W1", "b1", "W2", "b2"))

        def build() -> tuple[list[torch.Tensor], Callable[[], torch.Tensor]]:
            net = torch.nn.Sequential(
                torch.nn.Linear(W1.shape[0], W1.shape[1]),
                torch.nn.Sigmoid(),
                torch.nn.Linear(W2.shape[0], W2.shape[1]),
            ).double()
            with torch.no_grad():  # the same start: nn.Linear stores its weight transposed
                net[0].weight.copy_(torch.from_numpy(W1.T))
                net[0].bias.copy_(torch.from_numpy(b1))
                net[2].weight.copy_(torch.from_numpy(W2.T))
                net[2].bias.copy_(torch.from_numpy(b2))
            X, y = tensors["X"], tensors["y"]
            return list(net.parameters()), lambda: torch.nn.functional.mse_loss(net(X), y)

    else:
        def build() -> tuple[list[torch.Tensor], Callable[[], torch.Tensor]]:
            p = {name: torch.tensor(float(value), dtype=torch.float64, requires_grad=True)
                 for name, value in start.items()}
            x, y = tensors["x"], tensors["y"]
            if "k1" in p:
                def loss() -> torch.Tensor:
                    L1 = p["k1"] * x + p["b1"]
                    σ = torch.sigmoid(L1)
                    L2 = p["k2"] * σ + p["b2"]
                    return torch.mean((L2 - y) ** 2)
            else:
                def loss() -> torch.Tensor:
                    return torch.mean((p["k"] * x + p["b"] - y) ** 2)
            return list(p.values()), loss

    def run() -> float:
        parameters, loss_fn = build()
        optimizer = torch.optim.SGD(parameters, lr=lr)
        losses = []
        for _ in range(steps):
            optimizer.zero_grad()
            loss = loss_fn()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        return losses[-1]

    return run


def race(spec: dict[str, Any], runs: int) -> Race:
    """Warm both contestants up, then time ``runs`` runs of each, taking turns."""
    start = time.perf_counter()
    model = spec["compile"]()
    compile_seconds = time.perf_counter() - start
    args = (spec["data"], spec["start"], spec["lr"], spec["steps"])
    candidates = {
        "symgrad": symgrad_run(model, *args),
        "torch": torch_run(spec["key"], *args),
    }
    times: dict[str, list[float]] = {name: [] for name in candidates}
    losses: dict[str, float] = {}
    for name, run in candidates.items():  # warm-up: first calls, code specialisation, caches
        losses[name] = run()
    for r in range(runs):
        order = list(candidates) if r % 2 == 0 else list(reversed(candidates))
        for name in order:
            t0 = time.perf_counter()
            losses[name] = candidates[name]()
            times[name].append(time.perf_counter() - t0)
    return Race(spec["key"], spec["name"], spec["steps"], spec["lr"], compile_seconds,
                times["symgrad"], times["torch"], losses["symgrad"], losses["torch"])


def seconds(value: float) -> str:
    """``1.23 s``, ``45.6 ms``: three significant figures."""
    if value >= 1:
        return f"{value:.2f} s"
    if value >= 0.1:
        return f"{1e3 * value:.0f} ms"
    return f"{1e3 * value:.1f} ms"


def table(results: list[Race]) -> str:
    """The results as a Markdown table."""
    lines = [
        "| model | steps | symgrad | PyTorch | PyTorch / symgrad | symgrad final loss "
        "| PyTorch final loss | rel. difference |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        s, t = statistics.median(r.symgrad_seconds), statistics.median(r.torch_seconds)
        lines.append(
            f"| {r.name} | {r.steps:,} | {seconds(s)} ({1e6 * s / r.steps:.0f} µs/step) "
            f"| {seconds(t)} ({1e6 * t / r.steps:.0f} µs/step) | {r.ratio:.2f}× "
            f"| {r.symgrad_loss:.10g} | {r.torch_loss:.10g} | {r.relative_difference:.1g} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each contestant")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads for both NumPy's BLAS and PyTorch (default 1)")
    parser.add_argument("--quick", action="store_true", help="fewer steps and runs (for CI)")
    parser.add_argument("--output", type=Path, default=OUTPUT,
                        help="folder for race_pytorch.md, the table (default: examples/output)")
    args = parser.parse_args()
    runs = min(args.runs, 2) if args.quick else args.runs
    set_threads(args.threads)

    try:
        import torch
    except ImportError:
        print("PyTorch is not installed, so there is no race to run: pip install torch "
              "(the CPU build is enough). Skipped.")
        return 0
    import numpy as np

    import symgrad

    torch.set_num_threads(args.threads)
    print(f"symgrad {symgrad.__version__} against PyTorch {torch.__version__} (eager, CPU), "
          f"NumPy {np.__version__}; float64; full-batch gradient descent (SGD, no momentum); "
          f"{args.threads} thread{'s' * (args.threads != 1)} each; median of {runs} "
          f"interleaved runs after one warm-up run each.\n")
    results = []
    for spec in contestants(args.quick):
        result = race(spec, runs)
        results.append(result)
        print(f"{result.name}: lr {result.lr}, {result.steps:,} steps — symgrad "
              f"{seconds(statistics.median(result.symgrad_seconds))}, PyTorch "
              f"{seconds(statistics.median(result.torch_seconds))}; compiled in "
              f"{seconds(result.compile_seconds)}", flush=True)

    print()
    print(table(results))
    print()
    args.output.mkdir(parents=True, exist_ok=True)
    path = args.output / "race_pytorch.md"
    path.write_text(table(results) + "\n", encoding="utf-8")
    print(f"The table was written to {path}")
    worst = max(r.relative_difference for r in results)
    agree = worst <= TOLERANCE
    print(f"final losses agree to {TOLERANCE:g} relative: {'yes' if agree else 'NO'} "
          f"(largest relative difference {worst:.1e})")
    faster = [r.key for r in results if r.ratio >= 1]
    slower = [r.key for r in results if r.ratio < 1]
    print(f"symgrad at least as fast as PyTorch on: {', '.join(faster) or 'none'}"
          + (f"; slower on: {', '.join(slower)}" if slower else ""))
    print("(symgrad's compile time, once per model, is not in the run times: "
          + ", ".join(f"{r.key} {seconds(r.compile_seconds)}" for r in results)
          + ")")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
