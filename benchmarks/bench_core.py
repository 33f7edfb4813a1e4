"""Core compiler benchmark: symgrad against hand-written NumPy, SymPy, JAX, PyTorch and CasADi.

    python benchmarks/bench_core.py            # the full run (a few minutes)
    python benchmarks/bench_core.py --quick    # small sizes, about ten seconds (a smoke test)

Cases (see benchmarks/README.md for what exactly is timed):

(a) the two-layer model L1 = k1*x + b1, σ = sigmoid(L1), L2 = k2*σ + b2,
    Loss = mean((L2 - y)**2) at n = 1,000,000 samples: compile, value, value-and-grad;
(b) D nested sigmoid layers h <- sigmoid(w_i*h + c_i), loss mean((h - y)**2), n = 10,000,
    D = 5, 20, 50, 100: compile, value-and-grad;
(c) the Rosenbrock sum over N scalar symbols, N = 10, 100, 1000: compile, value-and-grad;
(d) call overhead: value_and_grad of mean((k*x + b - y)**2) with x of 3 elements.

Every figure is a median over interleaved rounds (benchmarks/_timing.py); ratios are taken
between medians measured in the same rounds. SymPy's diff + lambdify runs in a subprocess
with a timeout, so that a blow-up cannot stall the run. JAX, PyTorch and CasADi are optional:
a column whose library does not import is skipped with a message.
"""

from __future__ import annotations

import argparse
import datetime
import inspect
import json
import math
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp

try:  # run as a script (benchmarks/ is on sys.path) or imported as benchmarks.bench_core
    from _timing import (
        CLOCKS,
        HeadToHead,
        Stats,
        fmt_ratio,
        fmt_time,
        head_to_head,
        interleaved,
        interleaved_once,
        paired_ratio,
    )
except ModuleNotFoundError:  # pragma: no cover
    from benchmarks._timing import (
        CLOCKS,
        HeadToHead,
        Stats,
        fmt_ratio,
        fmt_time,
        head_to_head,
        interleaved,
        interleaved_once,
        paired_ratio,
    )

NUMPY = "NumPy (hand)"
SYMGRAD = "symgrad"
SYMPY = "SymPy diff+lambdify"
JAX = "JAX jit"
TORCH = "PyTorch eager"
CASADI = "CasADi SX"
GENERATED = "symgrad generated fn"

#: Every competitor computes on one thread, as NumPy's elementwise code does: the race is
#: about the code each produces, and on a shared 2-core machine a second busy thread only
#: adds noise to everybody's figures.
THREADS = "every competitor single-threaded (torch.set_num_threads(1); XLA_FLAGS " \
    "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1)"
CLOCK_TEXT = {
    "cpu": "process CPU time (time.process_time: user + system, all threads)",
    "wall": "wall-clock time (time.perf_counter)",
}
XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"

TARGET_VG_RATIO = 1.1
TARGET_GRAD_COST = 3.0
TARGET_COMPILE_D100 = 0.3
TARGET_COMPILE_N1000 = 0.5
TARGET_OVERHEAD = 20e-6
TARGET_GROWTH = 1.15  # time ∝ size^p with p at most this counts as linear
#: CasADi's compile time where the issue measured it, at D = 100 and N = 1000: the compile
#: targets as a multiple of CasADi's, a figure that drifts far less than a time with the
#: machine's speed. (The strictest yardstick for (c): this CasADi builds that case, relative
#: to (b), 2.4× faster than the one the issue measured; docs/benchmarks.md.)
ISSUE_CASADI_COMPILE = {"b": 0.15, "c": 0.41}


# =============================================================================================
# Settings
# =============================================================================================


@dataclass
class Settings:
    quick: bool = False
    rounds: int = 7  # timing rounds (each round: one calibrated batch of every candidate)
    compile_rounds: int = 5  # compile timings: one compile of every candidate per round
    compile_budget: float = 8.0  # stop repeating a compile once it has used this many seconds
    target: float = 0.05  # seconds per timed batch
    sympy_timeout: float = 60.0
    n_two_layer: int = 1_000_000
    n_chain: int = 10_000
    depths: tuple[int, ...] = (5, 20, 50, 100)
    rosenbrock: tuple[int, ...] = (10, 100, 1000)
    cases: str = "abcd"
    skip: frozenset[str] = frozenset()
    clock: str = "cpu"  # "cpu" (process CPU time) or "wall"
    sigmoid: str = "where"  # the formula of symgrad's _sigmoid (a key of SIGMOIDS)
    slow_first_only: bool = False  # SymPy and JAX (slow to compile) at the first size only

    def slow_here(self, sizes: tuple[int, ...], size: int) -> bool:
        """Whether the slow-to-compile competitors run at this size of a sized case."""
        return not self.slow_first_only or size == sizes[0]

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Settings:
        s = cls()
        if args.quick:
            s = cls(
                quick=True, rounds=3, compile_rounds=1, compile_budget=2.0, target=0.005,
                sympy_timeout=10.0, n_two_layer=10_000, n_chain=1_000, depths=(3, 8),
                rosenbrock=(5, 20), slow_first_only=True,
            )
        if args.rounds is not None:
            s.rounds = args.rounds
            s.compile_rounds = max(1, min(args.rounds, 5))
        if args.sympy_timeout is not None:
            s.sympy_timeout = args.sympy_timeout
        s.cases = args.cases
        s.clock = args.clock
        s.sigmoid = symgrad_sigmoid_form()
        s.skip = frozenset(x.strip().lower() for x in args.skip.split(",") if x.strip())
        return s


# =============================================================================================
# Optional libraries
# =============================================================================================


class Libraries:
    """The optional competitors, imported once; each is None when unavailable or skipped."""

    def __init__(self, skip: frozenset[str]):
        self.messages: list[str] = []
        self.jax = self._load("jax", skip, self._import_jax)
        self.torch = self._load("torch", skip, self._import_torch)
        self.casadi = self._load("casadi", skip, lambda: __import__("casadi"))
        self.sympy = "sympy" not in skip

    def _load(self, name: str, skip: frozenset[str], loader: Callable[[], Any]):
        if name in skip:
            self.messages.append(f"{name}: skipped (--skip)")
            return None
        try:
            module = loader()
        except Exception as e:  # any failure to import means: no column
            self.messages.append(f"{name}: not available, column skipped ({type(e).__name__}: {e})")
            return None
        self.messages.append(f"{name} {module.__version__}")
        return module

    @staticmethod
    def _import_torch():
        import torch

        torch.set_num_threads(1)  # like NumPy's elementwise code; see THREADS
        return torch

    @staticmethod
    def _import_jax():
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "") + " " + XLA_ONE_THREAD
        ).strip()
        import jax

        jax.config.update("jax_enable_x64", True)
        jax.config.update("jax_platforms", "cpu")
        return jax


# =============================================================================================
# The race: alternatives, rows, tables
# =============================================================================================


@dataclass
class Alternative:
    """One competitor on one problem.

    ``compile()`` builds the artifact (timed; None: nothing to compile). ``external()``
    instead returns ``(seconds or None, failure text or None, artifact)`` for a compile that
    is timed elsewhere (SymPy's, in a subprocess). ``calls(artifact)`` gives the zero-argument
    callables to time: ``"vg"`` (value and gradient) and optionally ``"value"``. ``flat``
    turns what ``"vg"`` returns into ``(value, gradient vector)`` in the problem's order.
    """

    name: str
    calls: Callable[[Any], dict[str, Callable[[], Any]]]
    flat: Callable[[Any], tuple[float, np.ndarray]]
    compile: Callable[[], Any] | None = None
    external: Callable[[], tuple[float | None, str | None, Any]] | None = None
    note: str = ""


@dataclass
class Row:
    name: str
    compile: Stats | None = None
    compile_failure: str | None = None
    value: Stats | None = None
    vg: Stats | None = None
    value_error: float | None = None
    grad_error: float | None = None
    failure: str | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _failure_text(e: BaseException) -> str:
    text = str(e).splitlines()[0] if str(e) else ""
    if isinstance(e, RecursionError):
        return "failed (RecursionError)"
    return f"failed ({type(e).__name__}{': ' + text[:60] if text else ''})"


def _clear_sympy_cache() -> None:
    from sympy.core.cache import clear_cache

    clear_cache()


def race(alternatives: list[Alternative], settings: Settings, reference: str = NUMPY) -> list[Row]:
    """Compile every alternative (interleaved), check them against ``reference``, time them."""
    rows = {alt.name: Row(alt.name, note=alt.note) for alt in alternatives}
    artifacts: dict[str, Any] = {}
    makers = {alt.name: alt.compile for alt in alternatives if alt.compile is not None}
    if makers:
        stats, results, failures = interleaved_once(
            makers, settings.compile_rounds, before=_clear_sympy_cache,
            budget=settings.compile_budget, clock=CLOCKS[settings.clock],
        )
        for name, s in stats.items():
            rows[name].compile = s
        artifacts.update(results)
        for name, e in failures.items():
            rows[name].compile_failure = _failure_text(e)
    for alt in alternatives:
        if alt.compile is None and alt.external is None:
            artifacts[alt.name] = None
        elif alt.external is not None:
            seconds, failure, artifact = alt.external()  # timed by its own process
            if failure is not None:
                rows[alt.name].compile_failure = failure
            else:
                rows[alt.name].compile = Stats((seconds,))
                artifacts[alt.name] = artifact

    candidates: dict[str, Callable[[], Any]] = {}
    checks: dict[str, tuple[float, np.ndarray, float | None]] = {}
    for alt in alternatives:
        if alt.name not in artifacts:
            continue
        try:
            calls = alt.calls(artifacts[alt.name])
            value, grad = alt.flat(calls["vg"]())
            value_alone = float(calls["value"]()) if "value" in calls else None
        except (Exception, RecursionError) as e:
            rows[alt.name].failure = _failure_text(e)
            continue
        checks[alt.name] = (value, np.asarray(grad, dtype=float).ravel(), value_alone)
        rows[alt.name].extra["calls"] = calls
        for kind, fn in calls.items():
            candidates[f"{alt.name}\0{kind}"] = fn

    if reference in checks:
        ref_value, ref_grad, _ = checks[reference]
        scale = max(float(np.max(np.abs(ref_grad))), 1e-300)
        for name, (value, grad, value_alone) in checks.items():
            row = rows[name]
            row.grad_error = float(np.max(np.abs(grad - ref_grad))) / scale
            errors = [abs(value - ref_value)]
            if value_alone is not None:
                errors.append(abs(value_alone - ref_value))
            row.value_error = max(errors) / max(abs(ref_value), 1e-300)

    timings = interleaved(candidates, rounds=settings.rounds, target=settings.target,
                          clock=CLOCKS[settings.clock])
    for key, s in timings.items():
        name, kind = key.split("\0")
        setattr(rows[name], kind, s)
    return list(rows.values())


def _median(s: Stats | None) -> float | None:
    return None if s is None else s.median


def _ratio(a: Stats | None, b: Stats | None) -> float | None:
    """Paired (same-round) ratio when both were timed in the same rounds, else of medians."""
    paired = paired_ratio(a, b)
    if paired is not None:
        return paired
    return None if a is None or b is None or b.median <= 0 else a.median / b.median


MISMATCH = 1e-6  # a relative difference above this is not rounding: the race would be unfair


def _err(x: float | None) -> str:
    if x is None:
        return "–"
    text = "0" if x == 0 else f"{x:.0e}"
    return text + " MISMATCH" if x > MISMATCH else text


def _compile_cell(row: Row) -> str:
    if row.compile_failure:
        return row.compile_failure
    if row.compile is None:
        return "–"
    text = fmt_time(row.compile.median)
    return text if row.compile.n > 1 else text + " (1 run)"


def _noise(s: Stats | None) -> str:
    return "–" if s is None or s.n < 2 else f"±{100 * s.spread / 2:.0f}%"


class Table:
    """Rows of cells, printed aligned for the terminal or as a Markdown table."""

    def __init__(self, title: str, headers: list[str], notes: list[str] | None = None):
        self.title = title
        self.headers = headers
        self.rows: list[list[str]] = []
        self.notes = notes or []

    def add(self, *cells: Any) -> None:
        self.rows.append([str(c) for c in cells])

    def text(self) -> str:
        columns = range(len(self.headers))
        widths = [max(len(r[i]) for r in [self.headers, *self.rows]) for i in columns]
        numeric = [
            all(_looks_numeric(r[i]) for r in self.rows) and bool(self.rows)
            for i in range(len(self.headers))
        ]

        def line(cells: list[str]) -> str:
            return "  ".join(
                c.rjust(w) if num else c.ljust(w)
                for c, w, num in zip(cells, widths, numeric, strict=True)
            ).rstrip()

        out = [self.title, line(self.headers), "  ".join("-" * w for w in widths)]
        out += [line(r) for r in self.rows]
        out += [f"  {n}" for n in self.notes]
        return "\n".join(out)

    def markdown(self) -> str:
        out = [f"#### {self.title}", ""]
        out.append("| " + " | ".join(self.headers) + " |")
        out.append("|" + "|".join(" --- " for _ in self.headers) + "|")
        out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in self.rows]
        if self.notes:
            out.append("")
            out += [f"- {n}" for n in self.notes]
        return "\n".join(out)


def _looks_numeric(cell: str) -> bool:
    return bool(cell) and (cell[0].isdigit() or cell[0] in "±–>")


# =============================================================================================
# Reference implementations: hand-written NumPy
# =============================================================================================


def sigmoid_where(z):
    """The classic stable form: exp only of -|z|, accurate everywhere, never a warning."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0, e) / (1.0 + e)


def sigmoid_errstate(z):
    """1/(1 + exp(-z)) with the overflow of exp (z < -709) silenced: it gives the right 0."""
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-z))


def sigmoid_naive(z):
    """1/(1 + exp(-z)) as is: a RuntimeWarning (overflow) for z < -709."""
    return 1.0 / (1.0 + np.exp(-z))


#: The hand-written sigmoids: label, function, description.
SIGMOIDS = {
    "where": ("NumPy where-σ", sigmoid_where,
              "σ = where(z ≥ 0, 1, e)/(1 + e) with e = exp(−|z|)"),
    "errstate": ("NumPy errstate-σ", sigmoid_errstate,
                 "σ = 1/(1 + exp(−z)) under np.errstate(over=\"ignore\")"),
    "naive": ("NumPy naive σ", sigmoid_naive, "σ = 1/(1 + exp(−z)), warns when exp overflows"),
}


def symgrad_sigmoid_form() -> str:
    """Which of SIGMOIDS symgrad's generated ``_sigmoid`` computes (``where`` if unsure).

    The hand-written reference uses the same formula, so that the race compares the code
    around it; the other forms get their own rows, and the gap shows the cost of stability.
    """
    import symgrad

    u = sp.Symbol("u")
    try:
        source = symgrad.compile(symgrad.sum(symgrad.sigmoid(u)), wrt=[u]).source
    except Exception:
        return "where"
    helper = source[source.find("def _sigmoid"):]
    if "np.abs" in helper or "np.where" in helper:
        return "where"
    if "errstate" in helper:
        return "errstate"
    return "where"


def numpy_sigmoid_rows(settings: Settings) -> list[tuple[str, Callable]]:
    """(row name, sigmoid): the reference (symgrad's formula) first, then the others."""
    rows = [(NUMPY, SIGMOIDS[settings.sigmoid][1])]
    rows += [(label, fn) for key, (label, fn, _) in SIGMOIDS.items() if key != settings.sigmoid]
    return rows


def sigmoid_notes(settings: Settings) -> list[str]:
    ref = SIGMOIDS[settings.sigmoid]
    notes = [f"{NUMPY}: {ref[2]}, the formula of symgrad's generated _sigmoid"]
    notes += [f"{label}: {text}" for key, (label, _, text) in SIGMOIDS.items()
              if key != settings.sigmoid]
    return notes


def numpy_two_layer(sigmoid):
    def value(k1, b1, k2, b2, x, y):
        s = sigmoid(k1 * x + b1)
        r = k2 * s + b2 - y
        return np.mean(r * r)

    def value_and_grad(k1, b1, k2, b2, x, y):
        s = sigmoid(k1 * x + b1)
        r = k2 * s + b2 - y
        loss = np.mean(r * r)
        d_l2 = (2.0 / r.size) * r  # ∂Loss/∂L2
        d_l1 = d_l2 * k2 * s * (1.0 - s)  # ∂Loss/∂L1
        grads = {"k1": np.sum(d_l1 * x), "b1": np.sum(d_l1),
                 "k2": np.sum(d_l2 * s), "b2": np.sum(d_l2)}
        return loss, grads

    return value, value_and_grad


def numpy_chain(sigmoid):
    def value(w, c, x, y):
        h = x
        for wi, ci in zip(w, c, strict=True):
            h = sigmoid(wi * h + ci)
        r = h - y
        return np.mean(r * r)

    def value_and_grad(w, c, x, y):
        hs = [x]
        for wi, ci in zip(w, c, strict=True):
            hs.append(sigmoid(wi * hs[-1] + ci))
        r = hs[-1] - y
        loss = np.mean(r * r)
        g = (2.0 / r.size) * r  # ∂Loss/∂h_D
        gw, gc = np.empty(len(w)), np.empty(len(c))
        for i in reversed(range(len(w))):
            h = hs[i + 1]
            gu = g * h * (1.0 - h)  # ∂Loss/∂u_i, u_i = w_i*h_{i-1} + c_i
            gw[i] = np.sum(gu * hs[i])
            gc[i] = np.sum(gu)
            g = gu * w[i]
        return loss, gw, gc

    return value, value_and_grad


def numpy_rosenbrock_value(x):
    a = x[1:] - x[:-1] ** 2
    b = 1.0 - x[:-1]
    return 100.0 * np.sum(a * a) + np.sum(b * b)


def numpy_rosenbrock_vg(x):
    a = x[1:] - x[:-1] ** 2
    b = 1.0 - x[:-1]
    value = 100.0 * np.sum(a * a) + np.sum(b * b)
    grad = np.zeros_like(x)
    grad[:-1] = -400.0 * a * x[:-1] - 2.0 * b
    grad[1:] += 200.0 * a
    return value, grad


def numpy_tiny_vg(k, b, x, y):
    r = k * x + b - y
    return np.mean(r * r), {"k": 2.0 * np.mean(r * x), "b": 2.0 * np.mean(r)}


# =============================================================================================
# The models, as SymPy (for symgrad and for the SymPy baseline)
# =============================================================================================


def sympy_sigmoid(u):
    return 1 / (1 + sp.exp(-u))


def model_two_layer(plain: bool):
    """(equations or expression, wrt, argument order) of case (a).

    ``plain``: the per-sample squared error with sigmoid spelt 1/(1 + exp(-u)), for
    ``sympy.diff``, which knows nothing of symgrad's ``sigmoid`` or ``mean``.
    """
    x, y, k1, b1, k2, b2 = sp.symbols("x y k1 b1 k2 b2")
    wrt = [k1, b1, k2, b2]
    if plain:
        return (k2 * sympy_sigmoid(k1 * x + b1) + b2 - y) ** 2, wrt, [x, y, *wrt]
    import symgrad

    L1, s, L2, Loss = sp.symbols("L1 σ L2 Loss")
    equations = [
        sp.Eq(L1, k1 * x + b1),
        sp.Eq(s, symgrad.sigmoid(L1)),
        sp.Eq(L2, k2 * s + b2),
        sp.Eq(Loss, symgrad.mean((L2 - y) ** 2)),
    ]
    return equations, wrt, [x, y, *wrt]


def model_chain(depth: int, plain: bool):
    x, y = sp.symbols("x y")
    w = sp.symbols(f"w0:{depth}")
    c = sp.symbols(f"c0:{depth}")
    if plain:
        sigmoid = sympy_sigmoid
    else:
        import symgrad

        sigmoid = symgrad.sigmoid
    h = x
    for wi, ci in zip(w, c, strict=True):
        h = sigmoid(wi * h + ci)
    wrt = [*w, *c]
    if plain:
        return (h - y) ** 2, wrt, [x, y, *wrt]
    import symgrad

    return symgrad.mean((h - y) ** 2), wrt, [x, y, *wrt]


def model_rosenbrock(n: int, plain: bool):
    xs = sp.symbols(f"x0:{n}")
    expr = sp.Add(*(100 * (xs[i + 1] - xs[i] ** 2) ** 2 + (1 - xs[i]) ** 2 for i in range(n - 1)))
    return expr, list(xs), list(xs)


MODELS = {"two_layer": model_two_layer, "chain": model_chain, "rosenbrock": model_rosenbrock}


# =============================================================================================
# SymPy diff + lambdify, in a subprocess with a timeout
# =============================================================================================


SYMGRAD_COMPILE_NOTE = "symgrad's compile: symgrad.compile() plus the first value_and_grad call"


def symgrad_alternative(expr, wrt, inputs: dict, names: list[str]) -> Alternative:
    """symgrad as a competitor on scalar parameters: its gradient flattened in ``names`` order."""
    return Alternative(
        SYMGRAD,
        compile=lambda: symgrad_compile(expr, wrt, inputs),
        calls=lambda m: {"vg": lambda: m.value_and_grad(**inputs), "value": lambda: m(**inputs)},
        flat=lambda r: (float(r[0]), np.array([float(r[1][k]) for k in names])),
    )


def symgrad_compile(model, wrt, inputs: dict):
    """``symgrad.compile`` and one ``value_and_grad`` call on the benchmark's inputs.

    The first call counts as compile time (as JAX's first call does): symgrad may emit code
    specialised to the input shapes on first use, and a user waits for that too.
    """
    import symgrad

    compiled = symgrad.compile(model, wrt=wrt, **cold_compile_options(symgrad))
    compiled.value_and_grad(**inputs)
    return compiled


def cold_compile_options(symgrad) -> dict:
    """What makes a compile cold: symgrad's compile cache (where it has one) neither read nor
    written, in this process or on disk, so a compile time is never a cache hit's."""
    import inspect

    getattr(getattr(symgrad, "model", None), "_LOADED", {}).clear()
    if "cache" in inspect.signature(symgrad.compile).parameters:
        return {"cache": False}
    return {}


class _Alarm(Exception):
    pass


def sympy_worker(spec: dict) -> dict:
    """In the subprocess: build the model, time diff + lambdify(cse=True), return the source."""
    kind, size = spec["kind"], spec.get("size")
    builder = MODELS[kind]
    expr, wrt, args = builder(plain=True) if size is None else builder(size, plain=True)

    def on_alarm(signum, frame):
        raise _Alarm

    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, spec["timeout"])  # wall time: a hang is a hang
    clock = CLOCKS[spec["clock"]]
    start = clock()
    try:
        grads = [sp.diff(expr, p) for p in wrt]
        vg = sp.lambdify(args, [expr, *grads], modules="numpy", cse=True)
        seconds = clock() - start
    except RecursionError:
        return {"failure": "failed (RecursionError)", "seconds": clock() - start}
    except _Alarm:
        return {"failure": f"> {spec['timeout']:g} s (timed out)"}
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    value = sp.lambdify(args, expr, modules="numpy", cse=True)  # untimed: for the value column
    return {"seconds": seconds, "vg": inspect.getsource(vg), "value": inspect.getsource(value)}


def sympy_compile(kind: str, size: int | None, settings: Settings):
    """Run ``sympy_worker`` in a subprocess: ``(seconds, failure, (value_fn, vg_fn))``."""
    timeout = settings.sympy_timeout
    spec = json.dumps({"kind": kind, "size": size, "timeout": timeout, "clock": settings.clock})
    command = [sys.executable, os.path.abspath(__file__), "--sympy-worker", spec]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout + 60, check=False
        )
    except subprocess.TimeoutExpired:
        return None, f"> {timeout:g} s (killed)", None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"crashed (exit {done.returncode}: {tail[:60]})", None
    result = json.loads(lines[-1])
    if "failure" in result:
        return None, result["failure"], None
    return result["seconds"], None, (_exec_lambdified(result["value"]),
                                     _exec_lambdified(result["vg"]))


def _exec_lambdified(source: str):
    """Recreate a function lambdify(modules="numpy") generated, from its source."""
    namespace: dict[str, Any] = {}
    exec("from numpy import *", namespace)  # the namespace lambdify gives modules="numpy"
    exec(source, namespace)
    return namespace["_lambdifygenerated"]


# =============================================================================================
# Case (a): the two-layer model
# =============================================================================================

PARAMS_A = {"k1": 0.5, "b1": 0.1, "k2": 2.0, "b2": -0.3}


def case_two_layer(settings: Settings, libs: Libraries) -> list[Table]:

    n = settings.n_two_layer
    rng = np.random.default_rng(0)
    x = rng.normal(size=n)
    y = np.sin(x) + 0.1 * rng.normal(size=n)
    order = list(PARAMS_A)
    p = [PARAMS_A[k] for k in order]
    alts: list[Alternative] = []

    def flat_dict(result):
        value, grads = result
        return float(value), np.array([float(grads[k]) for k in order])

    for name, sigmoid in numpy_sigmoid_rows(settings):
        value_fn, vg_fn = numpy_two_layer(sigmoid)
        alts.append(Alternative(
            name,
            calls=lambda _, v=value_fn, g=vg_fn: {
                "value": lambda: v(*p, x, y), "vg": lambda: g(*p, x, y)},
            flat=flat_dict,
        ))

    equations, wrt, _ = model_two_layer(plain=False)
    inputs = {"x": x, "y": y, **PARAMS_A}
    alts.append(Alternative(
        SYMGRAD,
        compile=lambda: symgrad_compile(equations, wrt, inputs),
        calls=lambda m: {"value": lambda: m(**inputs), "vg": lambda: m.value_and_grad(**inputs)},
        flat=flat_dict,
    ))

    if libs.sympy:
        def sympy_calls(fns):
            value_fn, vg_fn = fns

            def vg():
                out = vg_fn(x, y, *p)
                return np.mean(out[0]), [np.mean(g) for g in out[1:]]

            return {"value": lambda: np.mean(value_fn(x, y, *p)), "vg": vg}

        alts.append(Alternative(
            SYMPY,
            external=lambda: sympy_compile("two_layer", None, settings),
            calls=sympy_calls,
            flat=lambda r: (float(r[0]), np.array(r[1], dtype=float)),
        ))

    pv = np.array(p)
    if libs.jax:
        jax = libs.jax
        xj, yj = jax.numpy.asarray(x), jax.numpy.asarray(y)

        def jax_loss(q, x, y):
            k1, b1, k2, b2 = q  # a tuple of scalars
            s = jax.nn.sigmoid(k1 * x + b1)
            r = k2 * s + b2 - y
            return jax.numpy.mean(r * r)

        def jax_compile():
            # a fresh function each time, so that nothing is reused from a previous round
            vg = jax.jit(jax.value_and_grad(lambda q, x, y: jax_loss(q, x, y)))
            jax.block_until_ready(vg(pt, xj, yj))
            return vg

        pt = tuple(p)
        value_jit = jax.jit(jax_loss)
        alts.append(Alternative(
            JAX,
            compile=jax_compile,
            calls=lambda vg: {
                "value": lambda: jax.block_until_ready(value_jit(pt, xj, yj)),
                "vg": lambda: jax.block_until_ready(vg(pt, xj, yj)),
            },
            flat=lambda r: (float(r[0]), np.array([float(g) for g in r[1]])),
            note="data moved to the device once (jnp.asarray), outside the timing",
        ))

    if libs.torch:
        torch = libs.torch
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)

        def torch_forward(q):
            s = torch.sigmoid(q[0] * xt + q[1])
            r = q[2] * s + q[3] - yt
            return (r * r).mean()

        def torch_vg():
            q = torch.tensor(p, dtype=torch.float64, requires_grad=True)
            loss = torch_forward(q)
            loss.backward()
            return loss.item(), q.grad.numpy()

        def torch_value():
            with torch.no_grad():
                return torch_forward(torch.tensor(p, dtype=torch.float64)).item()

        alts.append(Alternative(
            TORCH, calls=lambda _: {"value": torch_value, "vg": torch_vg},
            flat=lambda r: (float(r[0]), np.asarray(r[1])),
        ))

    if libs.casadi:
        ca = libs.casadi
        x_row, y_row = x[None, :], y[None, :]

        def casadi_functions():
            q, xs, ys = ca.SX.sym("q", 4), ca.SX.sym("x"), ca.SX.sym("y")
            s = 1 / (1 + ca.exp(-(q[0] * xs + q[1])))
            loss = (q[2] * s + q[3] - ys) ** 2
            per_sample = ca.Function("vg", [q, xs, ys], [loss, ca.gradient(loss, q)])
            return per_sample.map("vg_sum", "serial", n, [0], [0, 1]), (q, xs, ys, loss)

        def casadi_compile():
            return casadi_functions()[0]

        q, xs, ys, loss = casadi_functions()[1]
        value_map = ca.Function("v", [q, xs, ys], [loss]).map("v_sum", "serial", n, [0], [0])

        def casadi_vg(f):
            value, grad = f(pv, x_row, y_row)
            return float(value) / n, grad.full().ravel() / n

        alts.append(Alternative(
            CASADI,
            compile=casadi_compile,
            calls=lambda f: {"value": lambda: float(value_map(pv, x_row, y_row)) / n,
                             "vg": lambda: casadi_vg(f)},
            flat=lambda r: r,
            note="per-sample SX Function, map(serial) with the sum reduced inside CasADi",
        ))

    rows = race(alts, settings)
    ref = next(r for r in rows if r.name == NUMPY)
    table = Table(
        f"(a) two-layer model, n = {n:,} (per call; medians of {settings.rounds} rounds)",
        ["alternative", "compile", "value", "value+grad", "noise", "vg / NumPy",
         "vg / value", "grad rel. diff", "value rel. diff"],
        notes=[
            "vg / NumPy: value-and-grad time over hand-written NumPy's;"
            " vg / value: the cost of the gradient relative to the value alone",
            "grad rel. diff: max |g - g_NumPy| / max |g_NumPy| over the 4 gradients",
            SYMGRAD_COMPILE_NOTE,
            *sigmoid_notes(settings),
        ] + [f"{r.name}: {r.note}" for r in rows if r.note],
    )
    for r in rows:
        table.add(
            r.name, _compile_cell(r), fmt_time(_median(r.value)),
            r.failure or fmt_time(_median(r.vg)), _noise(r.vg),
            fmt_ratio(_ratio(r.vg, ref.vg)), fmt_ratio(_ratio(r.vg, r.value)),
            _err(r.grad_error), _err(r.value_error),
        )
    RESULTS["a"] = rows
    return [table]


# =============================================================================================
# Case (b): D nested sigmoid layers
# =============================================================================================


def case_chain(settings: Settings, libs: Libraries) -> list[Table]:
    n = settings.n_chain
    rng = np.random.default_rng(1)
    x = rng.normal(size=n)
    y = rng.uniform(0.2, 0.8, size=n)
    table = Table(
        f"(b) D nested sigmoid layers, n = {n:,} (medians of {settings.rounds} rounds; compile: "
        f"median of up to {settings.compile_rounds})",
        ["D", "alternative", "compile", "value+grad", "noise", "vg / NumPy", "grad rel. diff"],
        notes=[
            "SymPy's compile is one run in a subprocess (diff of every parameter + lambdify "
            "with cse=True)",
            "JAX: the layers are a Python loop, unrolled by tracing, the parameters tuples of "
            "scalars (indexing one vector makes JAX's compile quadratic in D); CasADi: "
            "per-sample SX Function mapped over the samples",
            SYMGRAD_COMPILE_NOTE,
            *sigmoid_notes(settings),
        ],
    )
    RESULTS["b"] = {}
    for depth in settings.depths:
        w = rng.normal(0.9, 0.3, size=depth)
        c = rng.normal(0.0, 0.3, size=depth)
        pv = np.concatenate([w, c])
        alts: list[Alternative] = []
        for name, sigmoid in numpy_sigmoid_rows(settings):
            _, vg_fn = numpy_chain(sigmoid)
            alts.append(Alternative(
                name, calls=lambda _, g=vg_fn, w=w, c=c: {"vg": lambda: g(w, c, x, y)},
                flat=lambda r: (float(r[0]), np.concatenate([r[1], r[2]])),
            ))
        expr, wrt, _ = model_chain(depth, plain=False)
        inputs = {"x": x, "y": y, **{f"w{i}": float(w[i]) for i in range(depth)},
                  **{f"c{i}": float(c[i]) for i in range(depth)}}
        names = [s.name for s in wrt]
        alts.append(symgrad_alternative(expr, wrt, inputs, names))
        slow = settings.slow_here(settings.depths, depth)
        if libs.sympy and slow:
            def sympy_calls(fns, pv=pv):
                _, vg_fn = fns

                def vg():
                    out = vg_fn(x, y, *pv)
                    return np.mean(out[0]), [np.mean(g) for g in out[1:]]

                return {"vg": vg}

            alts.append(Alternative(
                SYMPY,
                external=lambda depth=depth: sympy_compile("chain", depth, settings),
                calls=sympy_calls,
                flat=lambda r: (float(r[0]), np.array(r[1], dtype=float)),
            ))
        if libs.jax and slow:
            alts.append(_jax_chain(libs.jax, depth, pv, x, y))
        if libs.torch:
            alts.append(_torch_chain(libs.torch, depth, pv, x, y))
        if libs.casadi:
            alts.append(_casadi_chain(libs.casadi, depth, pv, x, y))
        rows = race(alts, settings)
        ref = next(r for r in rows if r.name == NUMPY)
        for r in rows:
            table.add(
                depth, r.name, _compile_cell(r), r.failure or fmt_time(_median(r.vg)),
                _noise(r.vg), fmt_ratio(_ratio(r.vg, ref.vg)), _err(r.grad_error),
            )
        RESULTS["b"][depth] = rows
    return [table]


def _jax_chain(jax, depth, pv, x, y) -> Alternative:
    xj, yj = jax.numpy.asarray(x), jax.numpy.asarray(y)
    q = (tuple(map(float, pv[:depth])), tuple(map(float, pv[depth:])))  # scalars w_i, c_i

    def compile_():
        def loss(q, x, y):
            w, c = q
            h = x
            for i in range(depth):
                h = jax.nn.sigmoid(w[i] * h + c[i])
            r = h - y
            return jax.numpy.mean(r * r)

        vg = jax.jit(jax.value_and_grad(loss))
        jax.block_until_ready(vg(q, xj, yj))
        return vg

    return Alternative(
        JAX, compile=compile_,
        calls=lambda vg: {"vg": lambda: jax.block_until_ready(vg(q, xj, yj))},
        flat=lambda r: (float(r[0]), np.array([float(g) for part in r[1] for g in part])),
    )


def _torch_chain(torch, depth, pv, x, y) -> Alternative:
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def vg():
        q = torch.tensor(pv, dtype=torch.float64, requires_grad=True)
        h = xt
        for i in range(depth):
            h = torch.sigmoid(q[i] * h + q[depth + i])
        loss = ((h - yt) ** 2).mean()
        loss.backward()
        return loss.item(), q.grad.numpy()

    return Alternative(TORCH, calls=lambda _: {"vg": vg},
                       flat=lambda r: (float(r[0]), np.asarray(r[1])))


def _casadi_chain(ca, depth, pv, x, y) -> Alternative:
    n = x.size
    x_row, y_row = x[None, :], y[None, :]

    def compile_():
        q, xs, ys = ca.SX.sym("q", 2 * depth), ca.SX.sym("x"), ca.SX.sym("y")
        h = xs
        for i in range(depth):
            h = 1 / (1 + ca.exp(-(q[i] * h + q[depth + i])))
        loss = (h - ys) ** 2
        per_sample = ca.Function("vg", [q, xs, ys], [loss, ca.gradient(loss, q)])
        return per_sample.map("vg_sum", "serial", n, [0], [0, 1])

    def calls(f):
        def vg():
            value, grad = f(pv, x_row, y_row)
            return float(value) / n, grad.full().ravel() / n

        return {"vg": vg}

    return Alternative(CASADI, compile=compile_, calls=calls, flat=lambda r: r)


# =============================================================================================
# Case (c): the Rosenbrock sum over N scalar symbols
# =============================================================================================


def case_rosenbrock(settings: Settings, libs: Libraries) -> list[Table]:

    table = Table(
        f"(c) Rosenbrock sum over N scalar symbols (medians of {settings.rounds} rounds)",
        ["N", "alternative", "compile", "value+grad", "noise", "vg / NumPy", "grad rel. diff"],
        notes=[
            "NumPy, JAX and PyTorch work on one vector x; symgrad, SymPy and CasADi on N "
            "scalar symbols (symgrad is called with N keyword arguments)",
            SYMGRAD_COMPILE_NOTE,
        ],
    )
    RESULTS["c"] = {}
    rng = np.random.default_rng(2)
    for size in settings.rosenbrock:
        xv = rng.uniform(-1.5, 1.5, size=size)
        alts: list[Alternative] = [Alternative(
            NUMPY,
            calls=lambda _, xv=xv: {"vg": lambda: numpy_rosenbrock_vg(xv),
                                    "value": lambda: numpy_rosenbrock_value(xv)},
            flat=lambda r: (float(r[0]), r[1]),
        )]
        expr, wrt, _ = model_rosenbrock(size, plain=False)
        inputs = {f"x{i}": float(xv[i]) for i in range(size)}
        names = list(inputs)
        alts.append(symgrad_alternative(expr, wrt, inputs, names))
        slow = settings.slow_here(settings.rosenbrock, size)
        if libs.sympy and slow:
            def sympy_calls(fns, xv=xv):
                _, vg_fn = fns

                def vg():
                    out = vg_fn(*xv)
                    return out[0], np.array(out[1:])

                return {"vg": vg}

            alts.append(Alternative(
                SYMPY,
                external=lambda size=size: sympy_compile("rosenbrock", size, settings),
                calls=sympy_calls, flat=lambda r: (float(r[0]), r[1]),
            ))
        if libs.jax and slow:
            alts.append(_jax_rosenbrock(libs.jax, xv))
        if libs.torch:
            alts.append(_torch_rosenbrock(libs.torch, xv))
        if libs.casadi:
            alts.append(_casadi_rosenbrock(libs.casadi, xv))
        rows = race(alts, settings)
        ref = next(r for r in rows if r.name == NUMPY)
        for r in rows:
            table.add(
                size, r.name, _compile_cell(r), r.failure or fmt_time(_median(r.vg)),
                _noise(r.vg), fmt_ratio(_ratio(r.vg, ref.vg)), _err(r.grad_error),
            )
        RESULTS["c"][size] = rows
    return [table]


def _jax_rosenbrock(jax, xv) -> Alternative:
    jnp = jax.numpy

    def compile_():
        def f(x):
            a = x[1:] - x[:-1] ** 2
            b = 1.0 - x[:-1]
            return 100.0 * jnp.sum(a * a) + jnp.sum(b * b)

        vg = jax.jit(jax.value_and_grad(f))
        jax.block_until_ready(vg(xv))
        return vg

    return Alternative(JAX, compile=compile_,
                       calls=lambda vg: {"vg": lambda: jax.block_until_ready(vg(xv))},
                       flat=lambda r: (float(r[0]), np.asarray(r[1])))


def _torch_rosenbrock(torch, xv) -> Alternative:
    def vg():
        x = torch.tensor(xv, dtype=torch.float64, requires_grad=True)
        a = x[1:] - x[:-1] ** 2
        b = 1.0 - x[:-1]
        f = 100.0 * (a * a).sum() + (b * b).sum()
        f.backward()
        return f.item(), x.grad.numpy()

    return Alternative(TORCH, calls=lambda _: {"vg": vg},
                       flat=lambda r: (float(r[0]), np.asarray(r[1])))


def _casadi_rosenbrock(ca, xv) -> Alternative:
    size = xv.size

    def compile_():
        x = ca.SX.sym("x", size)
        f = 0
        for i in range(size - 1):
            f += 100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2
        return ca.Function("vg", [x], [f, ca.gradient(f, x)])

    def calls(fn):
        def vg():
            value, grad = fn(xv)
            return float(value), grad.full().ravel()

        return {"vg": vg}

    return Alternative(CASADI, compile=compile_, calls=calls, flat=lambda r: r)


# =============================================================================================
# Case (d): call overhead on tiny inputs
# =============================================================================================


def case_tiny(settings: Settings, libs: Libraries) -> list[Table]:
    import symgrad

    x_, y_, k_, b_ = sp.symbols("x y k b")
    X = np.array([1.0, 2.0, 3.0])
    Y = 2 * X + 1.5
    K, B = 1.0, 0.0
    order = ["k", "b"]

    def flat_dict(r):
        return float(r[0]), np.array([float(r[1][k]) for k in order])

    inputs = {"x": X, "y": Y, "k": K, "b": B}

    def compile_():
        return symgrad_compile(symgrad.mean((k_ * x_ + b_ - y_) ** 2), [k_, b_], inputs)

    def generated(model):
        # the module that model.value_and_grad runs for inputs of these shapes
        source_for = getattr(model, "source_for", None)
        source = source_for(**inputs) if source_for else model.source
        namespace: dict[str, Any] = {}
        exec(compile(source, "<symgrad generated>", "exec"), namespace)
        fn = namespace["value_and_grad"]
        return {"vg": lambda: fn(**inputs)}

    alts = [
        Alternative(NUMPY, calls=lambda _: {"vg": lambda: numpy_tiny_vg(K, B, X, Y)},
                    flat=flat_dict),
        Alternative(SYMGRAD, compile=compile_,
                    calls=lambda m: {"vg": lambda: m.value_and_grad(**inputs)},
                    flat=flat_dict),
        Alternative(GENERATED, compile=compile_, calls=generated, flat=flat_dict,
                    note="the generated module's value_and_grad(b=, k=, x=, y=), called directly"),
    ]
    pv = np.array([K, B])
    if libs.jax:
        jax = libs.jax
        xj, yj = jax.numpy.asarray(X), jax.numpy.asarray(Y)

        def jax_compile():
            def f(q, x, y):
                k, b = q
                r = k * x + b - y
                return jax.numpy.mean(r * r)

            vg = jax.jit(jax.value_and_grad(f))
            jax.block_until_ready(vg((K, B), xj, yj))
            return vg

        alts.append(Alternative(
            JAX, compile=jax_compile,
            calls=lambda vg: {"vg": lambda: jax.block_until_ready(vg((K, B), xj, yj))},
            flat=lambda r: (float(r[0]), np.array([float(g) for g in r[1]])),
        ))
    if libs.torch:
        torch = libs.torch
        xt, yt = torch.from_numpy(X), torch.from_numpy(Y)

        def torch_vg():
            q = torch.tensor([K, B], dtype=torch.float64, requires_grad=True)
            r = q[0] * xt + q[1] - yt
            loss = (r * r).mean()
            loss.backward()
            return loss.item(), q.grad.numpy()

        alts.append(Alternative(TORCH, calls=lambda _: {"vg": torch_vg},
                                flat=lambda r: (float(r[0]), np.asarray(r[1]))))
    if libs.casadi:
        ca = libs.casadi

        def casadi_compile():
            q, xs, ys = ca.SX.sym("q", 2), ca.SX.sym("x", 3), ca.SX.sym("y", 3)
            r = q[0] * xs + q[1] - ys
            f = ca.sumsqr(r) / 3
            return ca.Function("vg", [q, xs, ys], [f, ca.gradient(f, q)])

        def casadi_calls(fn):
            def vg():
                value, grad = fn(pv, X, Y)
                return float(value), grad.full().ravel()

            return {"vg": vg}

        alts.append(Alternative(CASADI, compile=casadi_compile, calls=casadi_calls,
                                flat=lambda r: r))
    rows = race(alts, settings)
    ref = next(r for r in rows if r.name == NUMPY)
    table = Table(
        f"(d) call overhead: value_and_grad of mean((k*x + b - y)**2), x of 3 elements "
        f"(medians of {settings.rounds} rounds)",
        ["alternative", "per call", "noise", "vs NumPy", "grad rel. diff"],
        notes=[f"{r.name}: {r.note}" for r in rows if r.note],
    )
    for r in rows:
        vg = _median(r.vg)
        table.add(r.name, r.failure or (f"{vg * 1e6:.1f} µs" if vg is not None else "–"),
                  _noise(r.vg), fmt_ratio(_ratio(r.vg, ref.vg)), _err(r.grad_error))
    RESULTS["d"] = rows
    return [table]


# =============================================================================================
# symgrad's compile time: stages and growth
# =============================================================================================


PROFILE_ROWS = (  # (label, file suffix, function name) of the cProfile entries reported
    ("build (front end)", "symgrad/frontend.py", "build"),
    ("differentiate", "symgrad/backward.py", "differentiate"),
    ("emit", "symgrad/codegen/emit.py", "emit"),
    ("· layout", "symgrad/layout.py", "layout"),
    ("shape check", "symgrad/model.py", "_check"),
    ("Python compile()", "~", "<built-in method builtins.compile>"),
)


def compile_profile(settings: Settings) -> list[Table]:
    """Where symgrad's compile time goes: one cold, profiled compile + first call per size.

    Shares of the profiled time (cProfile inflates the total, not much the proportions), by
    function: robust to refactoring, a function that no longer exists shows as ``–``.
    """
    import cProfile
    import pstats

    jobs = []
    for key, kind, builder, inputs_of in (
        ("b", "chain", model_chain, _chain_inputs),
        ("c", "rosenbrock", model_rosenbrock, _rosenbrock_inputs),
    ):
        if key not in settings.cases:
            continue
        for size, rows in RESULTS.get(key, {}).items():
            row = _row(rows, SYMGRAD)
            jobs.append((kind, size, builder, inputs_of, row))
    labels = [label for label, _, _ in PROFILE_ROWS]
    table = Table(
        "symgrad compile + first call, profiled: share of the time by function (one cold run)",
        ["model", "size", "compile (race)", *labels],
        notes=["· a column inside the one before it (the layout inside emit); Python's "
               "compile() of the generated source, at compile time and at the first call; "
               "a profile is skipped when the compile took over "
               f"{settings.compile_budget:g} s in the race"],
    )
    for kind, size, builder, inputs_of, row in jobs:
        seconds = row.compile.median if row and row.compile else None
        if seconds is None or seconds > settings.compile_budget:
            table.add(kind, size, _compile_cell(row) if row else "–",
                      *(["(skipped)"] + ["–"] * (len(labels) - 1)))
            continue
        expr, wrt, _ = builder(size, plain=False)
        inputs = inputs_of(size, settings)
        _clear_sympy_cache()
        profile = cProfile.Profile()
        profile.enable()
        try:
            symgrad_compile(expr, wrt, inputs)
        except (Exception, RecursionError) as e:
            profile.disable()
            table.add(kind, size, _failure_text(e), *(["–"] * len(labels)))
            continue
        profile.disable()
        stats = pstats.Stats(profile).stats  # (file, line, name) -> (cc, nc, tt, ct, callers)
        total = sum(entry[2] for entry in stats.values())
        shares = []
        for _, suffix, name in PROFILE_ROWS:
            ct = sum(entry[3] for (file, _, fn), entry in stats.items()
                     if fn == name and file.replace(os.sep, "/").endswith(suffix))
            shares.append(f"{100 * ct / total:.0f}%" if ct else "–")
        table.add(kind, size, _compile_cell(row), *shares)
    return [table]


def _chain_inputs(depth: int, settings: Settings) -> dict:
    x = np.linspace(-1, 1, settings.n_chain)
    return {"x": x, "y": x, **{f"w{i}": 0.9 for i in range(depth)},
            **{f"c{i}": 0.0 for i in range(depth)}}


def _rosenbrock_inputs(size: int, settings: Settings) -> dict:
    return {f"x{i}": 0.5 for i in range(size)}


# =============================================================================================
# Targets
# =============================================================================================


def _row(rows, name) -> Row | None:
    return next((r for r in rows if r.name == name), None)


def _calls(row: Row | None, kind: str) -> Callable[[], Any] | None:
    if row is None or row.failure:
        return None
    return row.extra.get("calls", {}).get(kind)


def head_to_heads(settings: Settings) -> tuple[Table, dict[str, HeadToHead]]:
    """symgrad against hand-written NumPy (and against its own value), batch by batch.

    The race tables time many competitors per round; the targets deserve a closer look: two
    callables only, in adjacent batches, ABBA-ordered, with the quartiles of the pair ratios.
    """
    clock = CLOCKS[settings.clock]
    pairs = 7 if settings.quick else 31
    jobs: list[tuple[str, str, Callable, Callable]] = []
    a = RESULTS.get("a")
    if a:
        sg, ref = _row(a, SYMGRAD), _row(a, NUMPY)
        jobs.append(("a.vg", "(a) symgrad value+grad / NumPy value+grad",
                     _calls(sg, "vg"), _calls(ref, "vg")))
        jobs.append(("a.value", "(a) symgrad value / NumPy value",
                     _calls(sg, "value"), _calls(ref, "value")))
        jobs.append(("a.cost", "(a) symgrad value+grad / symgrad value",
                     _calls(sg, "vg"), _calls(sg, "value")))
        jobs.append(("a.cost_numpy", "(a) NumPy value+grad / NumPy value",
                     _calls(ref, "vg"), _calls(ref, "value")))
    for size, rows in RESULTS.get("b", {}).items():
        sg, ref = _row(rows, SYMGRAD), _row(rows, NUMPY)
        jobs.append((f"b.{size}", f"(b) D = {size}: symgrad value+grad / NumPy value+grad",
                     _calls(sg, "vg"), _calls(ref, "vg")))
    d = RESULTS.get("d")
    if d:
        jobs.append(("d.wrapper", "(d) symgrad value_and_grad / the generated function",
                     _calls(_row(d, SYMGRAD), "vg"), _calls(_row(d, GENERATED), "vg")))
        jobs.append(("d.numpy", "(d) symgrad value_and_grad / hand-written NumPy",
                     _calls(_row(d, SYMGRAD), "vg"), _calls(_row(d, NUMPY), "vg")))
    table = Table(
        f"head to head: {pairs} pairs of adjacent batches, ABBA order",
        ["comparison", "ratio", "quartiles", "A", "B"],
        notes=["ratio: median over the pairs of A's time over B's; A and B: median per call"],
    )
    found: dict[str, HeadToHead] = {}
    for key, label, fa, fb in jobs:
        if fa is None or fb is None:
            table.add(label, "–", "–", "–", "–")
            continue
        h = head_to_head(fa, fb, pairs=pairs, target=settings.target / 2, clock=clock)
        found[key] = h
        table.add(label, fmt_ratio(h.ratio), f"{h.low:.2f}–{h.high:.2f}",
                  fmt_time(h.a.median), fmt_time(h.b.median))
    return table, found


def _growth(points: list[tuple[int, float]]) -> float | None:
    """The exponent p of time ∝ size^p between the two largest sizes."""
    if len(points) < 2:
        return None
    (s1, t1), (s2, t2) = points[-2], points[-1]
    return math.log(t2 / t1) / math.log(s2 / s1)


def targets(settings: Settings, h2h: dict[str, HeadToHead]) -> Table:
    notes = ["--quick: small sizes and few rounds; the verdicts are indicative only"]
    table = Table("targets (issue 2)", ["target", "figure", "verdict"],
                  notes=notes if settings.quick else [])

    def verdict(ok: bool | None) -> str:
        return "–" if ok is None else "met" if ok else "NOT MET"

    if RESULTS.get("a") and "a.vg" not in h2h:
        row = _row(RESULTS["a"], SYMGRAD)
        failure = (row.compile_failure or row.failure) if row else "not run"
        table.add(f"(a) value+grad within {TARGET_VG_RATIO}× of hand-written NumPy",
                  f"symgrad: {failure}", verdict(False))
    if "a.vg" in h2h:
        h = h2h["a.vg"]
        table.add(f"(a) value+grad within {TARGET_VG_RATIO}× of hand-written NumPy",
                  f"{h} ({fmt_time(h.a.median)} vs {fmt_time(h.b.median)})",
                  verdict(h.ratio <= TARGET_VG_RATIO))
    if "a.cost" in h2h:
        h = h2h["a.cost"]
        table.add(f"(a) gradient cost at most {TARGET_GRAD_COST:g}× the value alone",
                  f"value+grad / value = {h}", verdict(h.ratio <= TARGET_GRAD_COST))
    ratios = [f"D={k.split('.')[1]}: {fmt_ratio(h.ratio)}" for k, h in h2h.items()
              if k.startswith("b.")]
    if ratios:
        worst = max(h.ratio for k, h in h2h.items() if k.startswith("b."))
        table.add(f"(b) value+grad within {TARGET_VG_RATIO}× of hand-written NumPy",
                  ", ".join(ratios), verdict(worst <= TARGET_VG_RATIO))
    for key, label, unit in (("b", "D", "layers"), ("c", "N", "symbols")):
        results = RESULTS.get(key)
        if not results:
            continue
        largest = max(results)
        limit = TARGET_COMPILE_D100 if key == "b" else TARGET_COMPILE_N1000
        sg = _row(results[largest], SYMGRAD)
        ok = None if sg.compile is None else sg.compile.median < limit
        if sg.compile_failure:
            ok = False
        full_size = (key == "b" and largest == 100) or (key == "c" and largest == 1000)
        table.add(f"({key}) compile at {label} = {largest} under {limit:g} s"
                  + ("" if full_size else " (quick sizes; the target is for the full run)"),
                  _compile_cell(sg), verdict(ok))
        ca = _row(results[largest], CASADI)
        if full_size and sg.compile and ca and ca.compile:
            allowed = limit / ISSUE_CASADI_COMPILE[key]
            ratio = sg.compile.median / ca.compile.median
            table.add(f"({key}) the same, against CasADi (the issue's {limit:g} s is "
                      f"{allowed:.2f}× its {ISSUE_CASADI_COMPILE[key]:g} s)",
                      f"{fmt_ratio(ratio)} CasADi's {_compile_cell(ca)} in this run",
                      verdict(ratio <= allowed))
        points = []
        for size, rows in results.items():
            s = _row(rows, SYMGRAD)
            if s and s.compile:
                points.append((size, s.compile.median))
        p = _growth(points)
        if p is not None:
            text = ", ".join(f"{label}={s}: {fmt_time(t)}" for s, t in points)
            failed = [str(size) for size, rows in results.items()
                      if (r := _row(rows, SYMGRAD)) and r.compile_failure]
            text += (f"; time ∝ {label}^{p:.2f} from {label}={points[-2][0]} to "
                     f"{label}={points[-1][0]}")
            if failed:
                text += f"; fails at {label}={', '.join(failed)}"
            table.add(f"({key}) compile time linear in the number of {unit}", text,
                      verdict(p <= TARGET_GROWTH and not failed))
    if "c" in RESULTS:
        ratios = []
        for size, rows in RESULTS["c"].items():
            r = _ratio(_row(rows, SYMGRAD).vg, _row(rows, NUMPY).vg)
            ratios.append(f"N={size}: {fmt_ratio(r)}")
        table.add("(c) value+grad vs hand-written NumPy (a vector: not like for like)",
                  ", ".join(ratios), "–")
    d = RESULTS.get("d")
    if d:
        sg = _row(d, SYMGRAD)
        t = _median(sg.vg) if sg else None
        table.add(f"(d) call overhead on tiny inputs under {TARGET_OVERHEAD * 1e6:g} µs",
                  f"{t * 1e6:.1f} µs per value_and_grad call" if t else "–",
                  verdict(None if t is None else t < TARGET_OVERHEAD))
    return table


RESULTS: dict[str, Any] = {}


# =============================================================================================
# Main
# =============================================================================================


def symgrad_origin() -> str:
    """Where symgrad was imported from, and its git commit when that is a checkout."""
    import symgrad

    folder = os.path.dirname(os.path.dirname(os.path.abspath(symgrad.__file__)))
    text = f"symgrad {symgrad.__version__} from {folder}"
    try:
        commit = subprocess.run(["git", "-C", folder, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=10, check=True)
        dirty = subprocess.run(["git", "-C", folder, "status", "--porcelain", "--", "symgrad"],
                               capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return text + " (not a git checkout)"
    state = ", symgrad/ modified" if dirty.stdout.strip() else ""
    return text + f" at commit {commit.stdout.strip()}{state}"


def machine() -> list[str]:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        if names:
            cpu = f"{names[0]} (platform.processor(): {platform.processor()!r})"
    except OSError:
        pass
    return [
        f"machine: {platform.machine()}, {os.cpu_count()} cores, no GPU, CPU {cpu}",
        f"Python {platform.python_version()}, NumPy {np.__version__}, SymPy {sp.__version__}",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="small sizes, about ten seconds: a smoke test")
    parser.add_argument("--rounds", type=int, default=None,
                        help="timing rounds (default 7; 3 with --quick)")
    parser.add_argument("--cases", default="abcd", help="which cases to run (default abcd)")
    parser.add_argument("--skip", default="",
                        help="comma-separated competitors to leave out: sympy,jax,torch,casadi")
    parser.add_argument("--sympy-timeout", type=float, default=None,
                        help="seconds allowed for SymPy diff + lambdify (default 60; 10 quick)")
    parser.add_argument("--clock", choices=["cpu", "wall"], default="cpu",
                        help="cpu: the process's CPU time (default; steady on a shared machine, "
                             "every competitor runs single-threaded); wall: elapsed time")
    parser.add_argument("--markdown", metavar="PATH",
                        help="also write the tables as Markdown to PATH")
    parser.add_argument("--sympy-worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.sympy_worker:
        print(json.dumps(sympy_worker(json.loads(args.sympy_worker))))
        return 0


    settings = Settings.from_args(args)
    started = time.perf_counter()
    command = "python benchmarks/bench_core.py " + " ".join(argv if argv is not None
                                                               else sys.argv[1:])
    header = [
        f"symgrad core benchmark, {datetime.date.today().isoformat()}",
        f"command: {command.strip()}",
        symgrad_origin(),
        *machine(),
    ]
    libs = Libraries(settings.skip)
    header.append("competitors: " + "; ".join(libs.messages))
    header.append(f"threads: {THREADS}")
    header.append(f"clock: {CLOCK_TEXT[settings.clock]}; figures are medians over interleaved "
                  f"rounds, ratios medians of same-round ratios")
    print("\n".join(header), flush=True)

    tables: list[Table] = []
    cases = {"a": case_two_layer, "b": case_chain, "c": case_rosenbrock, "d": case_tiny}
    for key in settings.cases:
        if key not in cases:
            parser.error(f"unknown case {key!r}: choose among a, b, c, d")
        for table in cases[key](settings, libs):
            print("\n" + table.text(), flush=True)
            tables.append(table)
    if "b" in settings.cases or "c" in settings.cases:
        for table in compile_profile(settings):
            print("\n" + table.text(), flush=True)
            tables.append(table)
    h2h_table, h2h = head_to_heads(settings)
    print("\n" + h2h_table.text(), flush=True)
    tables.append(h2h_table)
    summary = targets(settings, h2h)
    print("\n" + summary.text())
    tables.append(summary)
    elapsed = time.perf_counter() - started
    print(f"\n(run took {elapsed:.0f} s)")
    if args.markdown:
        text = "\n".join(f"    {h}" for h in header) + "\n\n"
        text += "\n\n".join(t.markdown() for t in tables) + "\n"
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
