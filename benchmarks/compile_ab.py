"""Two symgrad checkouts head to head: did a change make compiling or calling slower?

The machine's speed drifts by up to 2× over an hour, so times taken an hour apart (or against a
figure in the docs) say little about a change. This script measures two checkouts in pairs of
fresh processes, one per checkout, alive side by side and measured in turn (A B B A …, one
compile or one batch of calls at a time, so that a burst of load from other jobs lands on both),
and reports per metric the median over the pairs of B's time over A's: a ratio that drifts far
less than either time. The metrics (CPU time):

- compile time (``symgrad.compile`` plus the first ``value_and_grad`` call, as
  ``bench_core.py`` times it; best of three per process, SymPy's cache cleared before each) of
  the Rosenbrock sum over N = 1000 scalar symbols (``-n``) and of bench_core's case (b), the
  chain of D = 100 nested sigmoid layers (``--depth``);
- the per-call time of ``model.value_and_grad`` for bench_core's four cases, W1–W4: (a) the
  two-layer model at n = 1,000,000 samples, (b) the chain at D = 100, n = 10,000, (c) the
  Rosenbrock sum at N = 1000, (d) the tiny model with x of 3 elements (median over
  rounds of calibrated batches, benchmarks/_timing.py; a pair's ratio is the median of the
  ratios within a round).

The models and data are bench_core.py's, from this script's directory, for both checkouts.
Both checkouts' values are compared: a pair that disagrees is flagged. The target, from issue
15: every ratio within 1.05×.

    git worktree add /tmp/symgrad-before <commit>
    python benchmarks/compile_ab.py /tmp/symgrad-before .        # 8 pairs: about 3 minutes
    python benchmarks/compile_ab.py /tmp/symgrad-before . --quick  # 3 pairs, smaller W1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGET = 1.05

#: A fresh process with the checkout first on sys.path and bench_core's directory second (argv:
#: checkout, benchmarks directory, options as JSON). It builds the models, prints "ready",
#: then answers commands read from stdin, one JSON line each, so that the parent can alternate
#: between A's and B's processes measurement by measurement:
#:   compile_rosenbrock, compile_chain -> seconds of one compile + first call (cache cleared)
#:   calls                             -> compiles W1-W4, calibrates batches; their values
#:   W1 ... W4                         -> seconds per value_and_grad call, over one batch
CHILD = """
import gc, json, sys, time
sys.path.insert(0, sys.argv[1])
sys.path.insert(1, sys.argv[2])
import numpy as np
import sympy as sp
import symgrad
assert symgrad.__file__.startswith(sys.argv[1]), symgrad.__file__
import bench_core as bc
from _timing import calibrate, time_batch
opts = json.loads(sys.argv[3])
clock = time.process_time
settings = bc.Settings()

# The Rosenbrock compile, as this script has always timed it (SymPy's evaluated sum).
n = opts["n"]
xs = sp.symbols(f"x0:{n}")
f = sum(100*(xs[i + 1] - xs[i]**2)**2 + (1 - xs[i])**2 for i in range(n - 1))
ros_inputs = {f"x{i}": 0.5 for i in range(n)}
# bench_core's case (b) at depth D, with its data.
depth = opts["depth"]
chain_expr, chain_wrt, _ = bc.model_chain(depth, plain=False)
chain_inputs = bc._chain_inputs(depth, settings)
# W1: case (a), the two-layer model, with bench_core's data.
rng = np.random.default_rng(0)
x = rng.normal(size=opts["n_two_layer"])
y = np.sin(x) + 0.1 * rng.normal(size=x.size)
equations, wrt_a, _ = bc.model_two_layer(plain=False)
two_inputs = {"x": x, "y": y, **bc.PARAMS_A}
# W3: case (c), bench_core's Rosenbrock model and point.
ros_expr, ros_wrt, _ = bc.model_rosenbrock(n, plain=False)
ros_c_inputs = bc._rosenbrock_inputs(n, settings)
# W4: case (d), call overhead on x of 3 elements.
xt, yt, kt, bt = sp.symbols("x y k b")
X = np.array([1.0, 2.0, 3.0])
tiny_expr = symgrad.mean((kt * xt + bt - yt) ** 2)
tiny_inputs = {"x": X, "y": 2 * X + 1.5, "k": 1.0, "b": 0.0}


def cold(compile_and_call):
    sp.core.cache.clear_cache()
    gc.collect()
    start = clock()
    compile_and_call()
    return clock() - start


compiles = {
    "compile_rosenbrock": lambda: symgrad.compile(
        f, **bc.cold_compile_options(symgrad)).value_and_grad(**ros_inputs),
    "compile_chain": lambda: bc.symgrad_compile(chain_expr, chain_wrt, chain_inputs),
}
calls, numbers = {}, {}
print("ready", flush=True)
for command in sys.stdin:
    command = command.strip()
    if command in compiles:
        answer = cold(compiles[command])
    elif command == "calls":
        models = {
            "W1": (bc.symgrad_compile(equations, wrt_a, two_inputs), two_inputs),
            "W2": (bc.symgrad_compile(chain_expr, chain_wrt, chain_inputs), chain_inputs),
            "W3": (bc.symgrad_compile(ros_expr, ros_wrt, ros_c_inputs), ros_c_inputs),
            "W4": (bc.symgrad_compile(tiny_expr, [kt, bt], tiny_inputs), tiny_inputs),
        }
        answer = {}
        for name, (model, inputs) in models.items():
            calls[name] = lambda model=model, inputs=inputs: model.value_and_grad(**inputs)
            value, grad = calls[name]()
            answer[name] = [float(value), *(float(np.sum(g)) for g in grad.values())]
            numbers[name] = calibrate(calls[name], opts["target"], clock=clock)
    elif command in calls:
        answer = time_batch(calls[command], numbers[command], clock)
    else:
        break
    print(json.dumps(answer), flush=True)
"""

#: (key, label) of each metric, in the order reported.
METRICS = [
    ("compile_rosenbrock", "compile N = {n} Rosenbrock"),
    ("compile_chain", "compile D = {depth} chain"),
    ("W1", "W1 (a) two-layer vg, n = {n_two_layer:,}"),
    ("W2", "W2 (b) chain vg, D = {depth}, n = 10,000"),
    ("W3", "W3 (c) Rosenbrock vg, N = {n}"),
    ("W4", "W4 (d) tiny vg, x of 3"),
]
CALLS = ["W1", "W2", "W3", "W4"]


class Child:
    """One checkout's fresh process, answering one command at a time."""

    def __init__(self, python: str, checkout: Path, opts: dict):
        self.checkout = checkout
        self.errors = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(
            [python, "-c", CHILD, str(checkout), str(HERE), json.dumps(opts)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errors, text=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},  # one source of process-to-process noise
            cwd=tempfile.gettempdir(),  # nothing importable by accident from the caller's cwd
        )
        self._read()  # "ready": imported and built, idle until asked

    def _read(self) -> str:
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            self.errors.seek(0)
            raise SystemExit(f"{self.checkout}: the child failed:\n{self.errors.read()[-3000:]}")
        return line

    def ask(self, command: str):
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return json.loads(self._read())

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()
        self.errors.close()


def pair(python: str, a: Path, b: Path, opts: dict, a_first: bool) -> tuple[dict, dict, dict]:
    """One pair of fresh processes, measured in alternation: (A's, B's seconds, values)."""
    children: dict[str, Child] = {}
    seconds: dict[str, dict[str, list[float]]] = {"a": {}, "b": {}}
    flip = [0]

    def both(command: str) -> dict:
        sides = ["a", "b"] if (flip[0] % 2 == 0) == a_first else ["b", "a"]
        flip[0] += 1  # ABBA: each side goes first as often as the other
        return {side: children[side].ask(command) for side in sides}

    try:
        for side, checkout in ([("a", a), ("b", b)] if a_first else [("b", b), ("a", a)]):
            children[side] = Child(python, checkout, opts)  # one at a time: no overlap
        for _ in range(opts["compiles"]):
            for key in ("compile_rosenbrock", "compile_chain"):
                for side, t in both(key).items():
                    seconds[side].setdefault(key, []).append(t)
        values = both("calls")
        for _ in range(opts["rounds"]):
            for key in CALLS:
                for side, t in both(key).items():
                    seconds[side].setdefault(key, []).append(t)
    finally:
        for child in children.values():
            child.close()
    return seconds["a"], seconds["b"], values


def fmt(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.1f} µs"


def disagreement(a: dict, b: dict) -> str | None:
    """The workloads whose value or gradient sums differ between A and B (relatively > 1e-9)."""
    bad = []
    for name, va in a.items():
        vb = b.get(name, [])
        if len(va) != len(vb) or any(
            abs(p - q) > 1e-9 * max(abs(p), abs(q), 1e-300) for p, q in zip(va, vb, strict=True)
        ):
            bad.append(name)
    return ", ".join(bad) or None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", type=Path, help="checkout A (the reference)")
    parser.add_argument("b", type=Path, help="checkout B")
    parser.add_argument("-n", type=int, default=1000, help="Rosenbrock symbols (default 1000)")
    parser.add_argument("--depth", type=int, default=100, help="chain depth D (default 100)")
    parser.add_argument("--pairs", type=int, default=None, help="A/B pairs (default 8; quick 3)")
    parser.add_argument("--quick", action="store_true",
                        help="3 pairs, W1 at n = 100,000, fewer rounds: a smoke test (~1 min)")
    parser.add_argument("--python", default=sys.executable,
                        help="the interpreter of the children (default: this one)")
    args = parser.parse_args(argv)
    a, b = args.a.resolve(), args.b.resolve()
    pairs = args.pairs or (3 if args.quick else 8)
    opts = {"n": args.n, "depth": args.depth, "compiles": 2 if args.quick else 3,
            "n_two_layer": 100_000 if args.quick else 1_000_000,
            "rounds": 3 if args.quick else 5, "target": 0.02 if args.quick else 0.05}
    labels = {key: label.format(**opts) for key, label in METRICS}
    print(f"A = {a}\nB = {b}\n{pairs} pairs of fresh processes (A's and B's alive together, "
          "measured in turn, ABBA); CPU time; compiles: best of "
          f"{opts['compiles']} per process; calls: median of {opts['rounds']} rounds")
    short = {"compile_rosenbrock": f"N={args.n}", "compile_chain": f"D={args.depth}"}
    print(f"{'pair':>4}  " + "  ".join(f"{short.get(k, k):>7}" for k, _ in METRICS)
          + "   (B / A per metric)")
    times: dict[str, dict[str, list[float]]] = {"a": {}, "b": {}}
    ratios: dict[str, list[float]] = {k: [] for k, _ in METRICS}
    for i in range(pairs):
        sa, sb, values = pair(args.python, a, b, opts, a_first=i % 2 == 0)
        for key, _ in METRICS:
            if key in CALLS:  # the median of the same-round ratios; per-call: the medians
                ratio = statistics.median(q / p for p, q in zip(sa[key], sb[key], strict=True))
                ta, tb = statistics.median(sa[key]), statistics.median(sb[key])
            else:  # compiles: best of each side's
                ta, tb = min(sa[key]), min(sb[key])
                ratio = tb / ta
            times["a"].setdefault(key, []).append(ta)
            times["b"].setdefault(key, []).append(tb)
            ratios[key].append(ratio)
        line = f"{i + 1:>4}  " + "  ".join(f"{ratios[k][-1]:6.2f}×" for k, _ in METRICS)
        if bad := disagreement(values["a"], values["b"]):
            line += f"   A and B disagree on {bad}"
        print(line, flush=True)
    print(f"\n{'metric':<38}  {'A':>9}  {'B':>9}  {'B / A':>6}  {'quartiles':>11}  "
          f"target ≤ {TARGET}×")
    for key, _ in METRICS:
        rs = ratios[key]
        q = statistics.quantiles(rs, n=4) if len(rs) > 1 else rs * 3
        median = statistics.median(rs)
        print(f"{labels[key]:<38}  {fmt(statistics.median(times['a'][key])):>9}  "
              f"{fmt(statistics.median(times['b'][key])):>9}  {median:5.2f}×  "
              f"{q[0]:.2f}–{q[2]:.2f}   {'met' if median <= TARGET else 'NOT MET'}")
    print("A, B: medians over the pairs; B / A: the median of the pairs' ratios")


if __name__ == "__main__":
    main()
