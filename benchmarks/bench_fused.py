"""The fused Numba backend (issue 17) against JAX's jit, PyTensor's Numba mode, numexpr and the
NumPy backend, side by side in one run.

    python benchmarks/bench_fused.py                  # one thread each, n = 10⁶ and 10⁷
    python benchmarks/bench_fused.py --threads all    # every core (Numba's, XLA's own)
    python benchmarks/bench_fused.py --quick          # n = 10⁶ only, fewer rounds

Measured per value-and-gradient call, float64, interleaved rounds of calibrated batches
(benchmarks/_timing.py), medians with the spread; wall time. Each system's results are
checked against the NumPy backend's first. The cases:

- W1, the line: mean((k*x + b - y)**2); W2, the two-layer model (bench_core's case (a)), at
  n samples;
- W4, the chain of 100 nested sigmoid layers (bench_core's case (b)) at n = 10⁴;
- the Rosenbrock sum over N = 1,000 separate scalar symbols: per call, and the compile (cold:
  a fresh cache directory; warm: the same model again in a fresh process, from the disk).

One thread each: ``NUMBA_NUM_THREADS=1`` and XLA's ``--xla_cpu_multi_thread_eigen=false
intra_op_parallelism_threads=1`` are set before those libraries load (``--threads all``
leaves them alone). The roofline figure is the bytes a W1/W2 call must read (x and y) over
its time, against the machine's read bandwidth measured here (a NumPy sum of a 400 MB array).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", choices=("1", "all"), default="1")
    parser.add_argument("--quick", action="store_true", help="n = 10⁶ only, fewer rounds")
    parser.add_argument("--rounds", type=int, default=9)
    return parser.parse_args()


ARGS = _options() if __name__ == "__main__" else None
if ARGS is not None and ARGS.threads == "1":  # (before Numba and JAX are imported)
    os.environ["NUMBA_NUM_THREADS"] = "1"
    os.environ["XLA_FLAGS"] = ("--xla_cpu_multi_thread_eigen=false "
                               "intra_op_parallelism_threads=1")
    os.environ["OMP_NUM_THREADS"] = "1"

import numpy as np  # noqa: E402
import sympy as sp  # noqa: E402

sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import bench_core as bc  # noqa: E402
from _timing import fmt_time, interleaved  # noqa: E402

import symgrad  # noqa: E402

runtime = __import__("symgrad.runtime", fromlist=["FUSED_FROM"])


def have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _line_models():
    x, y, k, b = sp.symbols("x y k b")
    expr = symgrad.mean((k * x + b - y) ** 2)
    return expr, [k, b], {"k": 0.5, "b": 0.1}


def _check(name, value, grads, want, want_grads, names) -> None:
    scale = max(abs(float(want_grads[n])) for n in names)
    worst = max(abs(float(value) - float(want)) / abs(float(want)),
                *(abs(float(g) - float(want_grads[n])) / scale
                  for n, g in zip(names, grads, strict=True)))
    assert worst < 1e-9, f"{name} disagrees with the NumPy backend by {worst:.1e}"


def _jax_candidate(kind: str, data: dict, params: dict, names):
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    X, Y = jnp.asarray(data["x"]), jnp.asarray(data["y"])
    if kind == "W1":
        def f(k, b, x, y):
            return jnp.mean((k * x + b - y) ** 2)
    else:
        def f(k1, b1, k2, b2, x, y):
            return jnp.mean((k2 * jax.nn.sigmoid(k1 * x + b1) + b2 - y) ** 2)
    g = jax.jit(jax.value_and_grad(f, argnums=tuple(range(len(names)))))
    point = [jnp.asarray(params[n], jnp.float64) for n in names]

    def call():
        value, grads = g(*point, X, Y)
        return jax.block_until_ready(value), jax.block_until_ready(grads)

    return call


def _pytensor_candidate(kind: str, names):
    import pytensor
    import pytensor.tensor as pt

    x, y = pt.dvector("x"), pt.dvector("y")
    scalars = [pt.dscalar(n) for n in names]
    if kind == "W1":
        k, b = scalars
        loss = pt.mean((k * x + b - y) ** 2)
    else:
        k1, b1, k2, b2 = scalars
        loss = pt.mean((k2 * pt.sigmoid(k1 * x + b1) + b2 - y) ** 2)
    function = pytensor.function([*scalars, x, y], [loss, *pytensor.grad(loss, scalars)],
                                 mode="NUMBA")
    return function


def _numexpr_candidate(kind: str, data: dict, params: dict):
    """W1 and W2's value and gradients with numexpr: each formula one multi-threaded pass
    (numexpr's own reductions are single-threaded and serial, so sums are NumPy's)."""
    import numexpr as ne

    x, y = data["x"], data["y"]
    n = x.size
    if kind == "W1":
        k, b = params["k"], params["b"]

        def call():
            r = ne.evaluate("k*x + b - y", {"k": k, "b": b, "x": x, "y": y})
            return (float(np.dot(r, r)) / n, 2 * float(np.dot(r, x)) / n, 2 * float(r.sum()) / n)
        return call
    k1, b1, k2, b2 = (params[n] for n in ("k1", "b1", "k2", "b2"))

    def call():
        s = ne.evaluate("1/(1 + exp(-(k1*x + b1)))", {"k1": k1, "b1": b1, "x": x})
        r = ne.evaluate("k2*s + b2 - y", {"k2": k2, "b2": b2, "s": s, "y": y})
        d1 = ne.evaluate("r*k2*s*(1 - s)", {"r": r, "k2": k2, "s": s})
        return (float(np.dot(r, r)) / n, 2 * float(np.dot(d1, x)) / n, 2 * float(d1.sum()) / n,
                2 * float(np.dot(r, s)) / n, 2 * float(r.sum()) / n)
    return call


def elementwise(kind: str, n: int, rounds: int, bandwidth: float) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=n)
    data = {"x": x, "y": np.sin(x) + 0.1 * rng.normal(size=n)}
    if kind == "W1":
        expr, wrt, params = _line_models()
        numpy_model = symgrad.compile(expr, wrt=wrt, cache=False)
        numba_model = symgrad.compile(expr, wrt=wrt, cache=False, backend="numba")
    else:
        equations, wrt, _ = bc.model_two_layer(plain=False)
        params = dict(bc.PARAMS_A)
        numpy_model = symgrad.compile(equations, wrt=wrt, cache=False)
        numba_model = symgrad.compile(equations, wrt=wrt, cache=False, backend="numba")
    names = list(numpy_model.wrt)
    want, want_grads = numpy_model.value_and_grad(**data, **params)
    candidates = {
        "symgrad numba": lambda: numba_model.value_and_grad(**data, **params),
        "symgrad NumPy": lambda: numpy_model.value_and_grad(**data, **params),
    }
    value, grads = candidates["symgrad numba"]()
    _check("symgrad numba", value, [grads[k] for k in names], want, want_grads, names)
    if have("jax"):
        candidates["JAX jit"] = _jax_candidate(kind, data, params, names)
        value, grads = candidates["JAX jit"]()
        _check("JAX jit", value, grads, want, want_grads, names)
    if have("pytensor"):
        function = _pytensor_candidate(kind, names)
        point = [params[k] for k in names]
        candidates["PyTensor numba"] = lambda: function(*point, data["x"], data["y"])
        value, *grads = candidates["PyTensor numba"]()
        _check("PyTensor numba", value, grads, want, want_grads, names)
    if have("numexpr"):
        candidates["numexpr"] = _numexpr_candidate(kind, data, params)
        value, *grads = candidates["numexpr"]()
        order = ["k", "b"] if kind == "W1" else ["k1", "b1", "k2", "b2"]
        _check("numexpr", value, [grads[order.index(k)] for k in names], want, want_grads,
               names)
    stats = interleaved(candidates, rounds=rounds, target=0.1)
    jax_time = stats["JAX jit"].median if "JAX jit" in stats else None
    print(f"\n{kind} at n = {n:,}: value and gradient per call")
    print(f"  {'system':<16} {'time':>9} {'spread':>7} {'vs JAX':>7} {'GB/s read':>10}")
    for name, s in stats.items():
        ratio = f"{s.median / jax_time:.2f}×" if jax_time else "–"
        print(f"  {name:<16} {fmt_time(s.median):>9} {s.spread:>6.0%} {ratio:>7} "
              f"{16 * n / s.median / 1e9:>10.1f}")
    floor = 16 * n / bandwidth
    print(f"  the floor (x and y read once at {bandwidth / 1e9:.1f} GB/s): {fmt_time(floor)}; "
          f"symgrad numba at {floor / stats['symgrad numba'].median:.0%} of it")
    if jax_time and os.environ.get("NUMBA_NUM_THREADS") == "1":
        verdict = "met" if stats["symgrad numba"].median <= 0.5 * jax_time else "NOT MET"
        print(f"  target (one thread): at most 0.5× JAX jit: {verdict}")


def chain(rounds: int) -> None:
    n, depth = 10_000, 100
    expr, wrt, _ = bc.model_chain(depth, plain=False)
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=n), rng.normal(size=n)
    weights = np.concatenate([rng.uniform(0.5, 1.5, depth), rng.uniform(-0.2, 0.2, depth)])
    point = {s.name: float(v) for s, v in zip(wrt, weights, strict=True)}
    numpy_model = symgrad.compile(expr, wrt=wrt, cache=False)
    numba_model = symgrad.compile(expr, wrt=wrt, cache=False, backend="numba")
    want = numpy_model(x=x, y=y, **point)
    assert abs(float(numba_model(x=x, y=y, **point)) - float(want)) < 1e-9 * abs(float(want))
    candidates = {"symgrad numba": lambda: numba_model.value_and_grad(x=x, y=y, **point),
                  "symgrad NumPy": lambda: numpy_model.value_and_grad(x=x, y=y, **point)}
    if have("jax"):
        import jax

        jax.config.update("jax_enable_x64", True)
        alternative = bc._jax_chain(jax, depth, weights, x, y)
        candidates["JAX jit"] = alternative.calls(alternative.compile())["vg"]
    stats = interleaved(candidates, rounds=rounds, target=0.1)
    print(f"\nW4, the chain of {depth} sigmoid layers at n = {n:,}: value and gradient per call")
    _not_fused(numba_model)
    jax_time = stats["JAX jit"].median if "JAX jit" in stats else None
    for name, s in stats.items():
        ratio = f"{s.median / jax_time:.2f}×" if jax_time else "–"
        print(f"  {name:<16} {fmt_time(s.median):>9} {s.spread:>6.0%} {ratio:>7}")
    if jax_time:
        verdict = "met" if stats["symgrad numba"].median < jax_time else "NOT MET"
        print(f"  target: faster than JAX jit: {verdict}")


ROSENBROCK_COMPILE = """
import sys, time
sys.path.insert(0, sys.argv[1])
import sympy as sp, symgrad
N = int(sys.argv[3])
xs = sp.symbols(f"x0:{N}")
E = False
model = sp.Add(*[sp.Add(sp.Mul(100, sp.Pow(sp.Add(xs[i + 1], sp.Mul(-1, sp.Pow(xs[i], 2,
    evaluate=E), evaluate=E), evaluate=E), 2, evaluate=E), evaluate=E), sp.Pow(sp.Add(1,
    sp.Mul(-1, xs[i], evaluate=E), evaluate=E), 2, evaluate=E), evaluate=E)
    for i in range(N - 1)], evaluate=False)
start = time.perf_counter()
m = symgrad.compile(model, backend="numba", cache_dir=sys.argv[2])
m.value_and_grad(**{str(s): 0.5 for s in xs})
print(time.perf_counter() - start)
"""


def rosenbrock(rounds: int, size: int = 1000) -> None:
    xs = sp.symbols(f"x0:{size}")
    expr = sum(100 * (xs[i + 1] - xs[i] ** 2) ** 2 + (1 - xs[i]) ** 2 for i in range(size - 1))
    numpy_model = symgrad.compile(expr, cache=False)
    numba_model = symgrad.compile(expr, cache=False, backend="numba")
    point = {s.name: 0.5 + 0.001 * k for k, s in enumerate(xs)}
    want = numpy_model(**point)
    assert abs(float(numba_model(**point)) - float(want)) < 1e-9 * abs(float(want))
    candidates = {"symgrad numba": lambda: numba_model.value_and_grad(**point),
                  "symgrad NumPy": lambda: numpy_model.value_and_grad(**point)}
    if have("pytensor"):
        import pytensor
        import pytensor.tensor as pt

        v = pt.dvector("x")
        loss = pt.sum(100 * (v[1:] - v[:-1] ** 2) ** 2 + (1 - v[:-1]) ** 2)
        function = pytensor.function([v], [loss, pytensor.grad(loss, v)], mode="NUMBA")
        vector = np.array(list(point.values()))
        candidates["PyTensor numba (vector)"] = lambda: function(vector)
    stats = interleaved(candidates, rounds=rounds, target=0.1)
    print(f"\nRosenbrock over N = {size:,} scalar symbols: value and gradient per call "
          "(symgrad: N keyword arguments; PyTensor: one vector)")
    _not_fused(numba_model)
    for name, s in stats.items():
        print(f"  {name:<24} {fmt_time(s.median):>9} {s.spread:>6.0%}")
    with tempfile.TemporaryDirectory() as cache:
        times = [float(subprocess.run(
            [sys.executable, "-c", ROSENBROCK_COMPILE, str(HERE.parent), cache, str(size)],
            capture_output=True, text=True, check=True).stdout) for _ in range(2)]
    print(f"  compile and first call, fresh processes: cold {times[0]:.2f} s, warm (from the "
          f"disk cache) {times[1]:.2f} s")


def _not_fused(model) -> None:
    first = model.source.splitlines()[0]
    if first.startswith("# not fused"):
        print(f"  (symgrad numba runs the NumPy code here: {first.split(': ', 1)[1]})")


def read_bandwidth() -> float:
    a = np.ones(50_000_000)
    a.sum()
    best = min(_timed(a.sum) for _ in range(5))
    return a.nbytes / best


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    args = ARGS
    import numba

    versions = [f"NumPy {np.__version__}", f"Numba {numba.__version__}"]
    for module in ("jax", "pytensor", "numexpr"):
        if have(module):
            versions.append(f"{module} {__import__(module).__version__}")
    print(f"# bench_fused: {datetime.date.today()}, {platform.machine()}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}, {', '.join(versions)}")
    print(f"# command: python benchmarks/bench_fused.py --threads {args.threads}"
          + (" --quick" if args.quick else ""))
    print(f"# threads: {'one each' if args.threads == '1' else 'every core'}")
    bandwidth = read_bandwidth()
    rounds = 5 if args.quick else args.rounds
    for n in (10**6,) if args.quick else (10**6, 10**7):
        for kind in ("W1", "W2"):
            elementwise(kind, n, rounds, bandwidth)
    chain(rounds)
    rosenbrock(rounds)


if __name__ == "__main__":
    main()
