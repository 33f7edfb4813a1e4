"""The Numba backend: elementwise models fused into compiled loops.

Every elementwise operation record, the golden models and a sample of the fuzz's random models
give the NumPy backend's numbers (float64 to rounding, float32 to its precision); the results
are the same bits for any number of threads; the models it cannot fuse (a matrix product) run
the NumPy code, as do calls whose shapes the fused code does not take and calls on few
elements; hostile names stay inert; its exponential is within one unit in the last place of
NumPy's; Numba's disk cache is hit in a second process; a missing Numba is an error naming the
extra.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import sympy as sp
from fuzz_models import make_models
from test_array_api import MODELS, SCIPY_ONLY
from test_ops import ELEMENTWISE

import symgrad
from symgrad.codegen import fused, numba_backend

numba = pytest.importorskip("numba")
runtime = importlib.import_module("symgrad.runtime")  # (symgrad.runtime is also a function)


#: The records whose models are not fused: SciPy's functions, and sinc (its derivative's helper
#: is written for arrays).
NOT_FUSED = SCIPY_ONLY | {"sinc", "sinc_derivative"}
FUSIBLE = numba_backend.FUSED | numba_backend.REDUCING | {"input"}


@pytest.fixture(autouse=True)
def fuse_any_size(monkeypatch):
    """Small test arrays run the fused code too (not the NumPy code, as few elements do)."""
    monkeypatch.setattr(runtime, "FUSED_FROM", 0)


def _agree(numpy_model, numba_model, inputs: dict, rtol=1e-12, float32=False) -> None:
    dtype = np.float32 if float32 else np.float64
    given = {k: v if isinstance(v, float | int) else np.asarray(v, dtype)
             for k, v in inputs.items()}
    value, grads = numba_model.value_and_grad(**given)
    want, want_grads = numpy_model.value_and_grad(**given)
    assert np.asarray(value).dtype == dtype
    scale = max([1e-30, *(float(np.max(np.abs(g))) for g in want_grads.values())])
    np.testing.assert_allclose(value, want, rtol=rtol, atol=rtol * abs(float(want)))
    for name, g in grads.items():
        assert np.asarray(g).dtype == dtype, name
        assert np.shape(g) == np.shape(want_grads[name]), name
        np.testing.assert_allclose(g, want_grads[name], rtol=rtol, atol=rtol * scale,
                                   err_msg=name)
    np.testing.assert_allclose(numba_model(**given), numpy_model(**given), rtol=rtol,
                               atol=rtol * abs(float(want)))


def _fused(model) -> bool:
    return not model.source.startswith(f"# {fused.NOT_FUSED}")


@pytest.mark.parametrize("case", ELEMENTWISE, ids=lambda c: f"{c.record}:{c.id}")
def test_every_elementwise_record_fused(case):
    expr = symgrad.sum(case.expr)
    shapes = {s: ("n",) for s in case.args}  # (declared arrays: the loops run over them)
    numpy_model = symgrad.compile(expr, wrt=list(case.args), cache=False, shapes=shapes)
    numba_model = symgrad.compile(expr, wrt=list(case.args), cache=False, shapes=shapes,
                                  backend="numba")
    fusible = {node.op for node in numba_model.ir.nodes} <= FUSIBLE
    assert _fused(numba_model) == fusible, numba_model.source[:200]
    assert fusible or case.record in NOT_FUSED, case.record
    for point in case.points:
        inputs = {s.name: np.array([v, v * 0.99, v * 1.01]) for s, v in
                  zip(case.args, point, strict=True)}
        _agree(numpy_model, numba_model, inputs)
        _agree(numpy_model, numba_model, inputs, rtol=3e-5, float32=True)


@pytest.mark.parametrize("make", MODELS.values(), ids=MODELS.keys())
def test_the_golden_models(make, tmp_path):
    numpy_model, inputs = make()
    numba_model, _ = make("numba")
    assert _fused(numba_model) == (make.__name__ not in ("_mlp", "_classifier"))
    _agree(numpy_model, numba_model, inputs)
    _agree(numpy_model, numba_model, inputs, rtol=3e-5, float32=True)
    # the module it saves runs alone, and imports only numpy, numba and the standard library
    path = numpy_model.save(tmp_path / "fused_model.py", backend="numba")
    source = path.read_text(encoding="utf-8")
    assert source == numba_model.source
    imports = {line.split()[1] for line in source.splitlines()
               if line.startswith(("import ", "from "))}
    assert imports <= {"numba", "numpy", "math", "concurrent.futures"}, imports
    spec = importlib.util.spec_from_file_location("fused_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if _fused(numba_model) and not {k for k, v in inputs.items() if np.ndim(v)} <= set(
            module._ARRAYS):  # (the deep chain differentiates x and y: numbers, to the loops)
        with pytest.raises(ValueError, match=r"as numbers, not .* x of shape"):
            module.value_and_grad(**inputs)
        return
    value, _ = module.value_and_grad(**inputs)
    assert float(value) == pytest.approx(float(numpy_model(**inputs)), rel=1e-12)


def test_the_two_layer_model_is_one_loop_for_the_value_and_every_gradient():
    numba_model, _ = MODELS["two-layer"]("numba")
    source = numba_model.source
    assert source.count("for i in range(m):") == 2  # forward, and value_and_grad: one each
    assert "np.empty(N)" not in source  # no element kept in an array: one pass, in registers
    loop = source[source.index("def _value_and_grad_pass1"):]
    assert "σ = _sigmoid(L1)" in loop and "dL1 = dσ*σ*_sigmoid_complement(L1)" in loop


def test_a_sum_read_by_elements_takes_a_second_pass():
    x, y = sp.symbols("x y")
    centred = x - symgrad.mean(x)
    expr = symgrad.mean((centred * y) ** 2) + symgrad.sum(sp.exp(centred))
    numpy_model = symgrad.compile(expr, wrt=[x], cache=False, shapes={x: ("n",), y: ("n",)})
    numba_model = symgrad.compile(expr, wrt=[x], cache=False, shapes={x: ("n",), y: ("n",)},
                                  backend="numba")
    assert "_value_and_grad_pass2" in numba_model.source
    rng = np.random.default_rng(4)
    _agree(numpy_model, numba_model, {"x": rng.normal(size=9000), "y": rng.normal(size=9000)})


def test_a_model_of_numbers_is_one_compiled_function():
    xs = sp.symbols("x0:6")
    expr = sum(100 * (xs[i + 1] - xs[i] ** 2) ** 2 + (1 - xs[i]) ** 2 for i in range(5))
    numpy_model = symgrad.compile(expr, cache=False)
    numba_model = symgrad.compile(expr, cache=False, backend="numba")
    assert "numba.prange" not in numba_model.source and "_pass" not in numba_model.source
    _agree(numpy_model, numba_model, {s.name: 0.3 + 0.2 * k for k, s in enumerate(xs)})


def test_a_sample_of_the_fuzz_models():
    """Random models through every function and operator: fused or not, the same numbers."""
    checked = fused_count = 0
    for kind, seed in (("scalar", 21), ("tensor", 22)):
        for m in make_models(kind, 30, seed):
            if m.used & SCIPY_ONLY or not m.scalar_output:
                continue
            numpy_model = symgrad.compile(m.expression(), wrt=m.wrt, cache=False)
            numba_model = symgrad.compile(m.expression(), wrt=m.wrt, cache=False,
                                          backend="numba")
            fused_count += _fused(numba_model)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _agree(numpy_model, numba_model, m.inputs, rtol=1e-10)
            checked += 1
    assert checked > 30 and fused_count > 10


def test_few_elements_or_other_shapes_run_the_numpy_code(monkeypatch):
    monkeypatch.setattr(runtime, "FUSED_FROM", 10_000)
    numpy_model, inputs = MODELS["two-layer"]()
    numba_model, _ = MODELS["two-layer"]("numba")
    numba_model.value_and_grad(**inputs)  # 9 elements: the NumPy code, nothing compiled
    assert not numba_model._functions["_value_and_grad_pass1"].signatures
    # a parameter given as an array (the fused code takes it as a number): NumPy's answer
    per_sample = {**inputs, "k1": np.linspace(0.5, 0.9, 9)}
    value, grads = numba_model.value_and_grad(**per_sample)
    want, want_grads = numpy_model.value_and_grad(**per_sample)
    assert value == want and np.array_equal(grads["k1"], want_grads["k1"])


def test_the_saved_module_refuses_shapes_it_does_not_take(tmp_path):
    numba_model, inputs = MODELS["two-layer"]("numba")
    path = numba_model.save(tmp_path / "two_layer.py")
    spec = importlib.util.spec_from_file_location("two_layer", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(ValueError, match=r"takes x, y as arrays of one shape .* k1 of shape"):
        module.value_and_grad(**{**inputs, "k1": np.ones(9)})


THREADS = textwrap.dedent("""
    import sys
    import numba, numpy as np, sympy as sp, symgrad
    import importlib
    importlib.import_module("symgrad.runtime").FUSED_FROM = 0
    x, y, k, b = sp.symbols("x y k b")
    model = symgrad.compile(symgrad.mean((k * symgrad.sigmoid(x) + b - y) ** 2)
                            + symgrad.sum(sp.exp(-x**2)), wrt=[k, b], backend="numba",
                            cache=False)
    rng = np.random.default_rng(0)
    data = {"x": rng.normal(size=100_003), "y": rng.normal(size=100_003)}
    for threads in (1, 2, 4):
        numba.set_num_threads(threads)
        value, grads = model.value_and_grad(**data, k=0.3, b=-0.1)
        print(threads, float(value).hex(), float(grads["k"]).hex(), float(grads["b"]).hex())
""")


def test_the_same_bits_for_any_number_of_threads():
    done = subprocess.run([sys.executable, "-c", THREADS], capture_output=True, text=True,
                          env={**os.environ, "NUMBA_NUM_THREADS": "4"}, timeout=600)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split()
    assert len(lines) == 12 and lines[1:4] == lines[5:8] == lines[9:12], done.stdout


CACHED = textwrap.dedent("""
    import sys
    import numpy as np, sympy as sp, symgrad
    import importlib
    importlib.import_module("symgrad.runtime").FUSED_FROM = 0
    x, k = sp.symbols("x k")
    model = symgrad.compile(symgrad.mean(sp.tanh(k * x) ** 2), wrt=[k], backend="numba",
                            cache_dir=sys.argv[1])
    value, grads = model.value_and_grad(x=np.linspace(-1, 1, 1000), k=0.7)
    stats = model._functions["_value_and_grad_pass1"].stats
    print(len(stats.cache_hits), len(stats.cache_misses), float(value))
""")


def test_numbas_disk_cache_is_hit_in_a_second_process(tmp_path):
    runs = [subprocess.run([sys.executable, "-c", CACHED, str(tmp_path)], capture_output=True,
                           text=True, timeout=600) for _ in range(2)]
    for done in runs:
        assert done.returncode == 0, done.stderr
    (hits1, misses1, v1), (hits2, misses2, v2) = (r.stdout.split() for r in runs)
    assert (hits1, misses1) == ("0", "1") and (hits2, misses2) == ("1", "0"), runs[1].stdout
    assert v1 == v2


def test_hostile_names_stay_inert():
    names = ["i", "N", "m", "lo", "hi", "block", "sums", "total", "numba", "_exp", "x[i]",
             "__import__('os').system('echo owned')"]
    symbols = [sp.Symbol(n) for n in names]
    k = sp.Symbol("k")
    expr = symgrad.mean(sum((k * s - 1) ** 2 for s in symbols))
    numpy_model = symgrad.compile(expr, wrt=[k], cache=False)
    numba_model = symgrad.compile(expr, wrt=[k], cache=False, backend="numba")
    assert _fused(numba_model) and "__import__" not in numba_model.source.split("\n", 6)[-1]
    rng = np.random.default_rng(5)
    inputs = {n: rng.normal(size=50) for n in names}
    value, grads = numba_model.value_and_grad(**inputs, k=0.4)
    want, want_grads = numpy_model.value_and_grad(**inputs, k=0.4)
    assert value == pytest.approx(want, rel=1e-13)
    assert grads["k"] == pytest.approx(want_grads["k"], rel=1e-12)


def test_its_exponential_is_within_one_unit_in_the_last_place():
    x, k = sp.symbols("x k")
    model = symgrad.compile(symgrad.sum(sp.exp(k * x)), wrt=[k], cache=False, backend="numba")
    exp = model._functions["_exp"]
    rng = np.random.default_rng(6)
    special = [0.0, -0.0, 1.0, -1.0, 709.78, 709.79, -708.4, -744.0, -745.2, -746.0, 1e-300,
               np.inf, -np.inf, np.nan]
    points = np.concatenate([rng.uniform(-745.5, 709.7, 200_000), rng.normal(size=50_000),
                             special])

    @numba.njit
    def each(values):
        out = np.empty_like(values)
        for j in range(values.size):
            out[j] = exp(values[j])
        return out

    got = each(points)
    with np.errstate(all="ignore"):
        want = np.exp(points)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    finite = np.isfinite(want) & (want != 0)
    assert np.array_equal(got[~finite & ~np.isnan(want)], want[~finite & ~np.isnan(want)])
    ulps = np.abs(got[finite] - want[finite]) / np.spacing(want[finite])
    assert ulps.max() <= 1.0, points[finite][np.argmax(ulps)]


def test_a_missing_numba_names_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "numba" else real(name, *a))
    with pytest.raises(symgrad.SymgradError, match=r"pip install 'symgrad\[numba\]'"):
        symgrad.compile(sp.Symbol("x") ** 2, backend="numba", cache=False)


def test_every_fused_operation_has_a_record():
    from symgrad.ops import OPS

    assert numba_backend.FUSED | numba_backend.REDUCING <= set(OPS)


def test_a_loop_too_long_for_numba_runs_the_numpy_code():
    x, y = sp.symbols("x y")
    h, wrt = x, []
    for i in range(8):  # (eight sigmoid layers: 42 lines in the loop)
        w, c = sp.symbols(f"w{i} c{i}")
        h, wrt = symgrad.sigmoid(w * h + c), [*wrt, w, c]
    expr = symgrad.mean((h - y) ** 2)
    numba_model = symgrad.compile(expr, wrt=wrt, cache=False, backend="numba")
    assert "lines, longer than Numba compiles in good time (30)" in (
        numba_model.source.splitlines()[0])
    inputs = {"x": np.linspace(-1, 1, 5), "y": np.linspace(0, 1, 5), **dict.fromkeys(
        (s.name for s in wrt), 0.6)}
    want = symgrad.compile(expr, wrt=wrt, cache=False)(**inputs)
    assert numba_model(**inputs) == want


def test_a_function_too_long_for_numba_runs_the_numpy_code(monkeypatch):
    monkeypatch.setattr(fused, "MAX_NUMBER_LINES", 5)
    xs = sp.symbols("x0:6")
    expr = sum(100 * (xs[i + 1] - xs[i] ** 2) ** 2 + (1 - xs[i]) ** 2 for i in range(5))
    model = symgrad.compile(expr, cache=False, backend="numba")
    assert model.source.startswith(f"# {fused.NOT_FUSED}: ")
    assert "lines of numbers, more than Numba compiles in good time (5)" in model.source
    want = symgrad.compile(expr, cache=False)(**{s.name: 0.3 for s in xs})
    assert model(**{s.name: 0.3 for s in xs}) == want
