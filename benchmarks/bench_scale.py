"""Scale: symgrad's compile time and memory at 10³ to 10⁵ scalar symbols, beside CasADi's.

    python benchmarks/bench_scale.py --casadi-python /tmp/benchvenv/bin/python
    python benchmarks/bench_scale.py --sizes 1000,10000 --markdown scale.md

The scale targets of issue 15, every measurement in a fresh process (nothing cached, SymPy's
cache empty), each with a timeout (``--timeout``) after which it is reported as "> timeout":

- the Rosenbrock sum Σ 100·(xᵢ₊₁ − xᵢ²)² + (1 − xᵢ)² over N separate scalar symbols
  (``--sizes``, default 10³, 10⁴, 10⁵), built with unevaluated SymPy operations before the clock
  starts; timed: ``symgrad.compile`` plus the first ``value_and_grad`` call. Memory: the
  child's peak resident size (``ru_maxrss``), absolute and above the baseline taken after the
  model was built. The growth exponent log(t₂/t₁)/log(N₂/N₁) between consecutive sizes. CasADi
  SX beside it in the same conditions: the SX expression built before the clock; timed:
  ``casadi.gradient``, the ``casadi.Function`` of value and gradient, and its first call;
- a chain of 10⁵ nested functions (sin and tanh in turn: values stay finite), compiled
  at Python's default recursion limit: whether it compiles, and how long it takes;
- a compile cache hit in a fresh process against the cold compile of the N = 10⁴ model, when
  ``symgrad.compile`` takes a ``cache_dir`` keyword (otherwise "n/a").

Every result is checked before it is reported: the value and gradient against hand-written
NumPy (Rosenbrock) or a NumPy loop (the chain). The interpreters are options: symgrad's
children need sympy and numpy, CasADi's need casadi; the checkout is put on ``sys.path``.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: The issue's targets.
TARGET_SECONDS = 5.0  # compile plus first call at N = 10⁵
TARGET_MEMORY_MB = 1024.0  # peak at N = 10⁵
TARGET_EXPONENT = 1.1  # growth from 10⁴ to 10⁵
TARGET_CACHE = 5.0  # cold compile over cache hit, N = 10⁴
CACHE_SIZE = 10_000

# ---------------------------------------------------------------------------------------------
# The children: each prints one line of JSON (its last line of output).
# ---------------------------------------------------------------------------------------------

#: Shared by the children: the clocks, memory, the Rosenbrock model and its NumPy reference.
PRELUDE = """
import json, resource, sys, time
import numpy as np

def now():
    return time.perf_counter(), time.process_time()

def since(start):
    wall, cpu = now()
    return {"wall": wall - start[0], "cpu": cpu - start[1]}

def peak_mb():  # ru_maxrss is in KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def rosenbrock_point(n):
    return np.random.default_rng(0).uniform(-1.5, 1.5, size=n)

def rosenbrock_reference(x):
    a = x[1:] - x[:-1] ** 2
    b = 1.0 - x[:-1]
    grad = np.zeros_like(x)
    grad[:-1] = -400.0 * a * x[:-1] - 2.0 * b
    grad[1:] += 200.0 * a
    return 100.0 * np.sum(a * a) + np.sum(b * b), grad

def rel_diff(value, grad, ref_value, ref_grad):
    scale = max(abs(ref_value), 1e-300)
    g_scale = max(float(np.max(np.abs(ref_grad))), 1e-300)
    return max(abs(value - ref_value) / scale,
               float(np.max(np.abs(np.asarray(grad) - ref_grad))) / g_scale)
"""

#: argv: checkout, N, cache_dir ("" for none). The model is built before the clock starts.
SYMGRAD_ROSENBROCK = PRELUDE + """
checkout, n, cache_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
sys.path.insert(0, checkout)
import gc
import sympy as sp
import symgrad
assert symgrad.__file__.startswith(checkout), symgrad.__file__
start = now()
xs = sp.symbols(f"x0:{n}")
E = False  # every operation unevaluated: the clock below times symgrad, not SymPy
terms = [
    sp.Add(
        sp.Mul(100, sp.Pow(sp.Add(xs[i + 1], sp.Mul(-1, sp.Pow(xs[i], 2, evaluate=E),
                                                    evaluate=E), evaluate=E), 2, evaluate=E),
               evaluate=E),
        sp.Pow(sp.Add(1, sp.Mul(-1, xs[i], evaluate=E), evaluate=E), 2, evaluate=E),
        evaluate=E,
    )
    for i in range(n - 1)
]
model = sp.Add(*terms, evaluate=False)
point = rosenbrock_point(n)
values = {s.name: float(v) for s, v in zip(xs, point)}
build = since(start)
gc.collect()
base = peak_mb()
import inspect

cacheable = "cache" in inspect.signature(symgrad.compile).parameters
# a cold compile reads and writes no cache (where symgrad has one); the hit runs use cache_dir
options = {"cache_dir": cache_dir} if cache_dir else {"cache": False} if cacheable else {}
start = now()
compiled = symgrad.compile(model, wrt=list(xs), **options)
value, grad = compiled.value_and_grad(**values)
timed = since(start)
peak = peak_mb()
ref_value, ref_grad = rosenbrock_reference(point)
diff = rel_diff(float(value), [float(grad[s.name]) for s in xs], ref_value, ref_grad)
print(json.dumps({"time": timed, "build": build["wall"], "base_mb": base, "peak_mb": peak,
                  "rel_diff": diff}))
"""

#: argv: N. The SX expression is built before the clock starts, as symgrad's model is.
CASADI_ROSENBROCK = PRELUDE + """
n = int(sys.argv[1])
import gc
import casadi as ca
start = now()
x = ca.SX.sym("x", n)
f = 0
for i in range(n - 1):
    f += 100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2
point = rosenbrock_point(n)
build = since(start)
gc.collect()
base = peak_mb()
start = now()
function = ca.Function("vg", [x], [f, ca.gradient(f, x)])
value, grad = function(point)
timed = since(start)
peak = peak_mb()
ref_value, ref_grad = rosenbrock_reference(point)
diff = rel_diff(float(value), grad.full().ravel(), ref_value, ref_grad)
print(json.dumps({"time": timed, "build": build["wall"], "base_mb": base, "peak_mb": peak,
                  "rel_diff": diff, "version": ca.__version__}))
"""

#: argv: checkout, depth. sin and tanh nested in turn, x ↦ tanh(sin(…tanh(sin(x))…)): the value
#: and the derivative stay finite and non-zero (about 0.0045 and 2.4e-7 at depth 10⁵ from
#: x = 0.7; with cos in the chain the derivative underflows to 0, which checks nothing).
#: The recursion limit is left untouched.
SYMGRAD_CHAIN = PRELUDE + """
checkout, depth = sys.argv[1], int(sys.argv[2])
sys.path.insert(0, checkout)
import math
import sympy as sp
import symgrad
assert symgrad.__file__.startswith(checkout), symgrad.__file__
x = sp.Symbol("x")
start = now()
h = x
for i in range(depth):
    h = (sp.sin if i % 2 == 0 else sp.tanh)(h, evaluate=False)
build = since(start)
result = {"build": build["wall"], "limit": sys.getrecursionlimit()}
start = now()
try:
    import inspect

    cold = {"cache": False} if "cache" in inspect.signature(symgrad.compile).parameters else {}
    value, grad = symgrad.compile(h, wrt=[x], **cold).value_and_grad(x=0.7)
except BaseException as e:  # RecursionError, MemoryError, …: the finding is the failure
    first = (str(e).strip().splitlines() or [""])[0][:200]
    result.update(failure=f"{type(e).__name__}: {first}", time=since(start))
else:
    result["time"] = since(start)
    u, slope = 0.7, 1.0  # the value and the chain rule's product, by a loop
    for i in range(depth):
        if i % 2 == 0:
            u, slope = math.sin(u), slope * math.cos(u)
        else:
            u = math.tanh(u)
            slope *= 1 - u * u
    result["grad"] = float(grad["x"])
    result["rel_diff"] = rel_diff(float(value), [float(grad["x"])], u, np.array([slope]))
result["limit_after"] = sys.getrecursionlimit()  # a compile that raised it would show here
print(json.dumps(result))
"""


# ---------------------------------------------------------------------------------------------
# Running a child
# ---------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one child reported, or why it reported nothing."""

    data: dict | None = None
    failure: str | None = None  # "> 300 s" or the child's error

    def seconds(self, clock: str) -> float | None:
        return None if self.data is None or "time" not in self.data else self.data["time"][clock]


def run_child(python: str, code: str, args: list[str], timeout: float) -> Outcome:
    """Run ``code`` in a fresh ``python`` process; its last line of output is JSON."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    try:
        done = subprocess.run(
            [python, "-c", code, *args], capture_output=True, text=True, timeout=timeout,
            env=env, cwd=tempfile.gettempdir(),
        )
    except subprocess.TimeoutExpired:
        return Outcome(failure=f"> {timeout:g} s (timeout)")
    except OSError as e:
        return Outcome(failure=f"cannot run {python}: {e}")
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        error = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        return Outcome(failure=f"failed: {error[:200]}")
    return Outcome(data=json.loads(lines[-1]))


def python_has(python: str, module: str) -> str | None:
    """None if ``module`` imports with ``python``, else the reason it does not."""
    probe = subprocess.run([python, "-c", f"import {module}"], capture_output=True, text=True)
    if probe.returncode == 0:
        return None
    return (probe.stderr.strip().splitlines() or ["import failed"])[-1]


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------


class Table:
    def __init__(self, title: str, headers: list[str], notes: list[str] | None = None):
        self.title, self.headers, self.notes = title, headers, notes or []
        self.rows: list[list[str]] = []

    def add(self, *cells: object) -> None:
        self.rows.append([str(c) for c in cells])

    def text(self) -> str:
        widths = [max(len(r[i]) for r in [self.headers, *self.rows])
                  for i in range(len(self.headers))]
        rows = [self.headers, ["-" * w for w in widths], *self.rows]
        lines = [self.title]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                  for r in rows]
        lines += [f"  {n}" for n in self.notes]
        return "\n".join(lines)

    def markdown(self) -> str:
        lines = [f"**{self.title}**", "", "| " + " | ".join(self.headers) + " |",
                 "|" + "---|" * len(self.headers)]
        lines += ["| " + " | ".join(r) + " |" for r in self.rows]
        if self.notes:
            lines += [""] + [f"- {n}" for n in self.notes]
        return "\n".join(lines)


def fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return f"{seconds:.3f} s" if seconds < 10 else f"{seconds:.1f} s"


def fmt_mb(mb: float | None) -> str:
    return "–" if mb is None else f"{mb:,.0f} MB"


def exponent(points: list[tuple[int, float | None]]) -> list[str]:
    """log(t₂/t₁)/log(N₂/N₁) from each size to the next ("–" for the first and for gaps)."""
    cells = ["–"]
    for (n1, t1), (n2, t2) in itertools.pairwise(points):
        ok = t1 and t2 and n2 != n1
        cells.append(f"{math.log(t2 / t1) / math.log(n2 / n1):.2f}" if ok else "–")
    return cells


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "NOT MET")


# ---------------------------------------------------------------------------------------------
# The benchmarks
# ---------------------------------------------------------------------------------------------


def rosenbrock(args, clock: str, log) -> tuple[Table, dict]:
    sides = [("symgrad", args.python, SYMGRAD_ROSENBROCK, lambda n: [str(args.checkout), n, ""])]
    casadi_missing = "--no-casadi" if args.no_casadi else python_has(args.casadi_python, "casadi")
    if casadi_missing is None:
        sides.append(("CasADi SX", args.casadi_python, CASADI_ROSENBROCK, lambda n: [n]))
    results: dict[str, list[tuple[int, Outcome]]] = {name: [] for name, *_ in sides}
    for n in args.sizes:
        for name, python, code, argv in sides:
            log(f"  Rosenbrock N = {n:,}: {name} ...")
            results[name].append((n, run_child(python, code, argv(str(n)), args.timeout)))
    other = "wall" if clock == "cpu" else "cpu"
    table = Table(
        "Rosenbrock sum over N scalar symbols: compile + first call, one fresh process each",
        ["N", "tool", f"time ({clock})", f"time ({other})", "exponent", "peak − baseline",
         "peak", "model build (untimed)", "rel. diff"],
        notes=[
            "symgrad: symgrad.compile(model, wrt=xs) + the first value_and_grad call; the model "
            "(unevaluated SymPy operations) is built before the clock starts",
            "CasADi SX: casadi.gradient + casadi.Function(value, gradient) + its first call; the "
            "SX expression is built before the clock starts",
            "exponent: log(t₂/t₁)/log(N₂/N₁) from the size above; peak: the child's ru_maxrss; "
            "baseline: its ru_maxrss after the model was built",
            "rel. diff: value and gradient against hand-written NumPy (max relative difference)",
        ],
    )
    if casadi_missing:
        table.notes.append(f"CasADi left out: {casadi_missing} ({args.casadi_python})")
    for name, _, _, _ in sides:
        exps = exponent([(n, o.seconds(clock)) for n, o in results[name]])
        for (n, o), exp in zip(results[name], exps, strict=True):
            d = o.data or {}
            peak, base = d.get("peak_mb"), d.get("base_mb")
            table.add(
                f"{n:,}", name, o.failure or fmt_s(o.seconds(clock)), fmt_s(o.seconds(other)),
                exp, fmt_mb(peak - base if peak is not None else None), fmt_mb(peak),
                fmt_s(d.get("build")), f"{d['rel_diff']:.1e}" if "rel_diff" in d else "–",
            )
    return table, results


def chain(args, clock: str, log) -> tuple[Table, Outcome]:
    log(f"  chain of {args.depth:,} nested functions: symgrad ...")
    o = run_child(args.python, SYMGRAD_CHAIN, [str(args.checkout), str(args.depth)], args.timeout)
    d = o.data or {}
    table = Table(
        f"A chain of {args.depth:,} nested functions, tanh(sin(…tanh(sin(x))…)), at the default "
        "recursion limit",
        ["depth", "recursion limit", "compiled", f"time ({clock})", "model build (untimed)",
         "rel. diff"],
        notes=["timed: symgrad.compile(h, wrt=[x]) + value_and_grad(x=0.7); checked against a "
               "NumPy loop (the value and the chain rule's product)"],
    )
    compiled = o.failure or ("no: " + d["failure"] if "failure" in d else "yes")
    limit = d.get("limit", "–")
    if d.get("limit_after", limit) != limit:
        limit = f"{limit}, {d['limit_after']} after compile"
    table.add(f"{args.depth:,}", limit, compiled, fmt_s(o.seconds(clock)),
              fmt_s(d.get("build")), f"{d['rel_diff']:.1e}" if "rel_diff" in d else "–")
    return table, o


def cache(args, clock: str, log) -> tuple[Table, list[float | None] | None]:
    table = Table(
        f"Compile cache: N = {CACHE_SIZE:,} Rosenbrock, cold compile and a hit in a fresh process",
        ["N", "cold", "first hit", "later hit", "cold / first hit", "cold / later hit"],
        notes=["each: compile + first call in a fresh process, the model built before the "
               "clock; cold: an empty cache_dir (its first call keeps its compiled code); "
               "first hit: a new process, the same cache_dir; later hit: another new process"],
    )
    probe = (
        f"import sys; sys.path.insert(0, {str(args.checkout)!r}); import inspect, symgrad; "
        "print('cache_dir' in inspect.signature(symgrad.compile).parameters)"
    )
    has = subprocess.run([args.python, "-c", probe], capture_output=True, text=True,
                         cwd=tempfile.gettempdir())
    if has.stdout.strip() != "True":
        table.add(f"{CACHE_SIZE:,}", "n/a: no compile cache", "–", "–")
        table.notes.append("symgrad.compile takes no cache_dir keyword")
        return table, None
    directory = tempfile.mkdtemp(prefix="symgrad-cache-")
    try:
        argv = [str(args.checkout), str(CACHE_SIZE), directory]
        log(f"  cache N = {CACHE_SIZE:,}: cold ...")
        cold = run_child(args.python, SYMGRAD_ROSENBROCK, argv, args.timeout)
        log(f"  cache N = {CACHE_SIZE:,}: hits ...")
        hits = [run_child(args.python, SYMGRAD_ROSENBROCK, argv, args.timeout) for _ in "12"]
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    t_cold = cold.seconds(clock)
    times = [h.seconds(clock) for h in hits]
    ratios = [t_cold / t if t_cold and t else None for t in times]
    table.add(f"{CACHE_SIZE:,}", cold.failure or fmt_s(t_cold),
              *(h.failure or fmt_s(t) for h, t in zip(hits, times, strict=True)),
              *("–" if r is None else f"{r:.1f}×" for r in ratios))
    return table, ratios


def targets(args, clock, ros, chain_outcome, cache_ratio) -> Table:
    table = Table("Targets (issue 15)", ["target", "figure", "verdict"])
    sym = dict(ros.get("symgrad", []))
    cas = dict(ros.get("CasADi SX", []))
    top = sym.get(100_000)
    if top is not None:
        t = top.seconds(clock)
        beside = cas.get(100_000)
        c = beside.seconds(clock) if beside else None
        figure = top.failure or fmt_s(t)
        if c:
            figure += f" (CasADi {fmt_s(c)}; {t / c:.0f}× CasADi)" if t else f" (CasADi {fmt_s(c)})"
        table.add("N = 10⁵: compile + first call < 5 s", figure,
                  verdict(None if t is None else t < TARGET_SECONDS) if not top.failure
                  else "NOT MET")
        d = top.data or {}
        if d:
            peak, base = d["peak_mb"], d["base_mb"]
            table.add("N = 10⁵: peak memory < 1 GB (the child's absolute peak)",
                      f"{fmt_mb(peak)} (compile's own: {fmt_mb(peak - base)})",
                      verdict(peak < TARGET_MEMORY_MB))
        else:
            table.add("N = 10⁵: peak memory < 1 GB", top.failure or "–", "n/a")
    else:
        table.add("N = 10⁵ (not in --sizes)", "–", "n/a")
    if 10_000 in sym and 100_000 in sym:
        t1, t2 = sym[10_000].seconds(clock), sym[100_000].seconds(clock)
        p = math.log(t2 / t1) / math.log(10) if t1 and t2 else None
        table.add("growth exponent 10⁴ → 10⁵ ≤ 1.1", "–" if p is None else f"{p:.2f}",
                  verdict(None if p is None else p <= TARGET_EXPONENT))
    else:
        table.add("growth exponent 10⁴ → 10⁵ (not in --sizes)", "–", "n/a")
    d = chain_outcome.data or {}
    skipped = chain_outcome.failure == "skipped"
    ok = None if skipped else (chain_outcome.failure is None and "failure" not in d)
    table.add(f"a chain of {args.depth:,} nested functions compiles at the default recursion "
              "limit", "yes" if ok else (chain_outcome.failure or d.get("failure", "–")),
              verdict(ok))
    first, later = cache_ratio if cache_ratio is not None else (None, None)
    table.add("cache hit in a fresh process ≥ 5× faster than cold (N = 10⁴)",
              "n/a: no compile cache" if later is None else
              f"{first:.1f}× (a later hit: {later:.1f}×)" if first is not None
              else f"{later:.1f}×",
              verdict(None if later is None else min(first or later, later) >= TARGET_CACHE))
    table.notes.append(f"clock: {clock}")
    return table


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores"


def versions(python: str, modules: str) -> str:
    code = (f"import sys, platform; mods = {modules.split(',')!r}\n"
            "out = ['Python ' + platform.python_version()]\n"
            "for m in mods:\n"
            "    try: out.append(m + ' ' + __import__(m).__version__)\n"
            "    except Exception: pass\n"
            "print(', '.join(out))")
    done = subprocess.run([python, "-c", code], capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000",
                        help="Rosenbrock sizes, comma-separated (default 1000,10000,100000)")
    parser.add_argument("--depth", type=int, default=100_000,
                        help="depth of the nested chain (default 100000)")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds before a child is stopped and reported as '> timeout'")
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter for symgrad's children (default: this one)")
    parser.add_argument("--casadi-python", default=sys.executable,
                        help="interpreter for CasADi's children (default: this one)")
    parser.add_argument("--no-casadi", action="store_true", help="leave CasADi out")
    parser.add_argument("--checkout", type=Path, default=ROOT,
                        help="the symgrad checkout to measure (default: this one)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="the clock of the exponent and targets (default wall; both shown)")
    parser.add_argument("--skip", default="",
                        help="parts to leave out, comma-separated: rosenbrock, chain, cache")
    parser.add_argument("--markdown", type=Path, help="also write the tables as Markdown here")
    args = parser.parse_args(argv)
    args.sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    args.checkout = args.checkout.resolve()
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    header = [
        f"date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        f"machine: {machine()}",
        f"symgrad checkout: {args.checkout} (symgrad/ at {git_head(args.checkout)})",
        f"symgrad side: {args.python} ({versions(args.python, 'numpy,sympy')})",
        f"CasADi side: {args.casadi_python} ({versions(args.casadi_python, 'numpy,casadi')})",
        "command: python " + " ".join(
            [os.path.relpath(sys.argv[0], Path.cwd()) if sys.argv[0] else "bench_scale.py",
             *(argv if argv is not None else sys.argv[1:])]),
        f"every figure: one fresh process; timeout {args.timeout:g} s; clock for exponent "
        f"and targets: {args.clock}",
    ]
    print("\n".join(header), flush=True)
    tables = []
    ros: dict = {}
    chain_outcome = Outcome(failure="skipped")
    ratio = None
    if "rosenbrock" not in skip and args.sizes:
        table, ros = rosenbrock(args, args.clock, log)
        tables.append(table)
        print("\n" + table.text(), flush=True)
    if "chain" not in skip:
        table, chain_outcome = chain(args, args.clock, log)
        tables.append(table)
        print("\n" + table.text(), flush=True)
    if "cache" not in skip:
        table, ratio = cache(args, args.clock, log)
        tables.append(table)
        print("\n" + table.text(), flush=True)
    table = targets(args, args.clock, ros, chain_outcome, ratio)
    tables.append(table)
    print("\n" + table.text(), flush=True)
    if args.markdown:
        body = "\n".join(f"- {line}" for line in header)
        body += "\n\n" + "\n\n".join(t.markdown() for t in tables) + "\n"
        args.markdown.write_text(body, encoding="utf-8")
        print(f"\nMarkdown written to {args.markdown}")


def git_head(checkout: Path) -> str:
    """The commit that last changed the package, and whether the work tree differs from it."""
    def git(*argv: str) -> str:
        done = subprocess.run(["git", "-C", str(checkout), *argv], capture_output=True, text=True)
        return done.stdout.strip()

    head = textwrap.shorten(git("log", "-1", "--format=%h %s", "--", "symgrad") or "unknown", 60)
    dirty = git("status", "--porcelain", "--", "symgrad")
    return head + (", with uncommitted changes" if dirty else "")


if __name__ == "__main__":
    main()
