"""The Dask backend: a model called on Dask arrays computes its value and every gradient in one
``dask.compute``, chunk by chunk, so that data larger than memory streams through it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from test_array_api import MODELS

import symgrad

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

ROOT = Path(__file__).resolve().parents[1]


def _chunked(inputs: dict, rows: int) -> dict:
    """Each data array (more than 1 element) as a Dask array of chunks of ``rows`` rows."""
    return {k: da.from_array(np.asarray(v), chunks=rows) if np.size(v) > 1 and k in "xyXY"
            else v for k, v in inputs.items()}


@pytest.mark.parametrize("name", ["two-layer", "mlp", "classifier", "huber", "deep-chain"])
def test_the_golden_models_on_chunked_dask_arrays(name):
    numpy_model, inputs = MODELS[name]()
    dask_model, _ = MODELS[name]("dask")
    value, grads = dask_model.value_and_grad(**_chunked(inputs, 2))
    want, want_grads = numpy_model.value_and_grad(**inputs)
    assert isinstance(value, np.generic | np.ndarray)  # computed, not lazy
    assert float(value) == pytest.approx(float(want), rel=1e-13)
    assert list(grads) == list(want_grads)
    for n, g in grads.items():
        np.testing.assert_allclose(g, want_grads[n], rtol=1e-12, atol=1e-14, err_msg=n)


class _Computes(dask.callbacks.Callback):
    """Counts the graphs Dask computes (each ``dask.compute`` is one)."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def _start(self, dsk):
        self.count += 1


def test_one_compute_per_call_reads_each_chunk_once():
    model, inputs = MODELS["two-layer"]("dask")
    data = _chunked({**inputs, "x": np.linspace(-2, 2, 1000), "y": np.cos(np.linspace(-2, 2,
                                                                                      1000))}, 100)
    with _Computes() as computes:
        model.value_and_grad(**data)
    assert computes.count == 1
    with _Computes() as computes:
        model(**data)
    assert computes.count == 1


BIG = """
import json, sys
sys.path.insert(0, sys.argv[1])
import dask, dask.array as da, numpy as np, sympy as sp, symgrad

def peak_mb():  # (VmHWM: ru_maxrss would keep the peak of the pytest process that started this)
    with open("/proc/self/status", encoding="ascii") as status:
        return next(int(l.split()[1]) for l in status if l.startswith("VmHWM:")) / 1024

rows, chunk = int(sys.argv[2]), int(sys.argv[3])
x, y, k1, b1, k2, b2 = sp.symbols("x y k1 b1 k2 b2")
L1, s, L2, Loss = sp.symbols("L1 σ L2 Loss")
model = symgrad.compile(
    [sp.Eq(L1, k1*x + b1), sp.Eq(s, symgrad.sigmoid(L1)), sp.Eq(L2, k2*s + b2),
     sp.Eq(Loss, symgrad.mean((L2 - y)**2))], wrt=[k1, b1, k2, b2], cache=False, backend="dask")
X = da.random.default_rng(0).normal(size=rows, chunks=chunk)  # generated chunk by chunk
Y = da.sin(X)
small = model.value_and_grad(x=X[:chunk], y=Y[:chunk], k1=0.5, b1=0.1, k2=2.0, b2=-0.3)
base = peak_mb()
with dask.config.set(scheduler="threads"):
    value, grads = model.value_and_grad(x=X, y=Y, k1=0.5, b1=0.1, k2=2.0, b2=-0.3)
print(json.dumps({"value": float(value), "grads": {k: float(v) for k, v in grads.items()},
                  "base_mb": base, "peak_mb": peak_mb()}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_data_ten_times_the_memory_used_streams_through():
    """4·10⁷ rows (610 MB of x and y) generated chunk-wise and never materialised: the call's
    memory above what the process had before stays under a tenth of the data's size, and the
    value is the data's (checked against NumPy on a sample of the same distribution)."""
    rows, chunk = 40_000_000, 250_000
    done = subprocess.run([sys.executable, "-c", BIG, str(ROOT), str(rows), str(chunk)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    data_mb = 2 * rows * 8 / 2**20
    assert result["peak_mb"] - result["base_mb"] < data_mb / 10, (result, data_mb)
    # the loss over normal x at these parameters: its expectation, to within 1e-3 at 10⁶ rows
    rng = np.random.default_rng(1)
    x = rng.normal(size=1_000_000)
    numpy_model, _ = MODELS["two-layer"]()
    sample, _ = numpy_model.value_and_grad(x=x, y=np.sin(x), k1=0.5, b1=0.1, k2=2.0, b2=-0.3)
    assert result["value"] == pytest.approx(float(sample), rel=1e-2)


def test_the_dask_backend_needs_dask(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "dask" else real(name, *a))
    with pytest.raises(symgrad.SymgradError, match=r"pip install 'symgrad\[dask\]'"):
        symgrad.compile(sp.Symbol("x"), backend="dask")


# -- no hidden synchronisation ------------------------------------------------------------------
# A value brought to the host inside the generated code (float(x), bool(x), x.item(), a NumPy
# call) is a compute of its own on Dask, and a device-to-host wait on CuPy: counting Dask's
# computes finds every one, for every operation record.

import warnings  # noqa: E402

from test_array_api import SCIPY_ONLY  # noqa: E402
from test_ops import ARRAYS, ELEMENTWISE, weighted_sum  # noqa: E402


def _one_compute(expr, wrt: list, inputs: dict, rows: int) -> None:
    """On Dask arrays of ``rows`` rows a chunk, of float64 and of float32, the model's value and
    gradients are NumPy's on arrays of that dtype (to rounding, and to float32's precision),
    in one compute."""
    model = symgrad.compile(expr, wrt=wrt, cache=False, backend="dask")
    numpy_model = symgrad.compile(expr, wrt=wrt, cache=False)
    for dtype, rtol in ((np.float64, 1e-12), (np.float32, 3e-5)):
        arrays = {k: np.asarray(v, dtype) for k, v in inputs.items()}
        with _Computes() as computes:
            value, grads = model.value_and_grad(**{k: da.from_array(v, chunks=rows)
                                                   for k, v in arrays.items()})
        assert computes.count == 1
        want, want_grads = numpy_model.value_and_grad(**arrays)
        assert np.asarray(value).dtype == dtype
        scale = max([1e-30, *(float(np.max(np.abs(g))) for g in want_grads.values())])
        atol = 1e-14 if dtype is np.float64 else rtol * scale
        np.testing.assert_allclose(value, want, rtol=rtol, atol=atol)
        for n, g in grads.items():
            assert not isinstance(g, da.Array) and np.asarray(g).dtype == dtype, n
            np.testing.assert_allclose(g, want_grads[n], rtol=rtol, atol=atol, err_msg=n)


@pytest.mark.parametrize("case", [c for c in ELEMENTWISE if c.record not in SCIPY_ONLY],
                         ids=lambda c: f"{c.record}:{c.id}")
def test_every_elementwise_record_computes_once(case):
    point = case.points[0]
    _one_compute(symgrad.sum(case.expr), list(case.args),
                 {s.name: np.array([v, v * 0.99, v * 1.01])
                  for s, v in zip(case.args, point, strict=True)}, rows=2)


@pytest.mark.parametrize("case", ARRAYS, ids=lambda c: f"{c.record}:{c.id}")
def test_every_array_record_computes_once(case):
    _one_compute(*weighted_sum(case), rows=2)


# -- the chunks' own values and gradients, where the model keeps rows apart -----------------
# A loss that is a mean (or sum) of what each row gives on its own is computed chunk by chunk
# by the NumPy code (symgrad.chunked); any other model runs the array API code on the whole
# arrays. Both must give NumPy's numbers on the whole data; which one ran is checked too.

n_, k_, b_, c_ = sp.symbols("n k b c")
xs_, ys_ = sp.symbols("x y")
X_, W_, Y_ = sp.symbols("X W Y")
ROWS = np.linspace(-2.0, 2.0, 12)

APART = [  # (id, expression, wrt, inputs, chunked inputs, the chunks' own?)
    ("squared error", symgrad.mean((k_ * xs_ + b_ - ys_) ** 2), [k_, b_],
     {"x": ROWS, "y": np.sin(ROWS), "k": 0.3, "b": -0.1}, "xy", True),
    ("sum, gradient of the rows too", symgrad.sum(symgrad.sigmoid(k_ * xs_) * ys_),
     [k_, xs_, ys_], {"x": ROWS, "y": np.cos(ROWS), "k": 0.7}, "xy", True),
    ("matmul and softmax along the features",
     -symgrad.mean(symgrad.sum(Y_ * symgrad.log_softmax(symgrad.matmul(X_, W_), axis=1),
                               axis=1)), [W_],
     {"X": np.outer(ROWS, [1.0, -0.5, 2.0]), "W": np.arange(6.0).reshape(3, 2) / 5,
      "Y": np.eye(2)[np.arange(12) % 2]}, "XY", True),
    ("a mean over the rows inside", symgrad.mean((xs_ - k_ * symgrad.mean(xs_)) ** 2), [k_],
     {"x": ROWS, "k": 0.5}, "x", False),
    ("a square of the mean", symgrad.mean(k_ * xs_) ** 2, [k_], {"x": ROWS + 1, "k": 0.5},
     "x", False),
    ("a product of two means", symgrad.mean(k_ * xs_) * symgrad.mean(ys_), [k_],
     {"x": ROWS + 1, "y": ROWS + 2, "k": 0.5}, "xy", False),
    ("a mean over a scalar", symgrad.mean((k_ * xs_ - ys_) ** 2) / c_, [k_, c_],
     {"x": ROWS, "y": ROWS ** 2, "k": 0.5, "c": 3.0}, "xy", True),
    ("a softmax across the rows", symgrad.sum(symgrad.softmax(k_ * xs_, axis=0) * ys_), [k_],
     {"x": ROWS, "y": ROWS ** 2, "k": 0.5}, "xy", False),
    ("a parameter as long as the rows", symgrad.mean((xs_ - c_) ** 2), [c_],
     {"x": ROWS, "c": ROWS / 3}, "x", False),
    ("rows against columns: an outer product", symgrad.mean((xs_ - ys_) ** 2), [],
     {"x": ROWS, "y": ROWS.reshape(-1, 1)}, "xy", False),
    ("rows @ a stack as long as the rows: rows on the second axis",
     symgrad.mean(symgrad.max(symgrad.matmul(X_, W_), axis=1)), [W_],
     {"X": np.outer(ROWS, [1.0, 2.0]), "W": np.ones((12, 2, 1)) / 3}, "X", False),
    ("a sum kept as an array of one element", symgrad.sum(k_ * xs_, keepdims=True), [],
     {"x": ROWS, "k": 0.5}, "x", False),
]


@pytest.mark.parametrize("case", APART, ids=[c[0] for c in APART])
@pytest.mark.parametrize("rows", [5, 12])
def test_the_chunks_own_values_where_rows_stay_apart(case, rows, monkeypatch):
    import symgrad.chunked

    _, expr, wrt, inputs, chunked, apart = case
    used = []
    real = symgrad.chunked.value_and_grad
    monkeypatch.setattr(symgrad.chunked, "value_and_grad",
                        lambda *a: used.append(1) or real(*a))
    numpy_model = symgrad.compile(expr, wrt=wrt, cache=False, broadcast="allow")
    try:
        want, want_grads = numpy_model.value_and_grad(**inputs)
    except symgrad.SymgradError as e:  # (not a scalar: the same error, either way)
        with pytest.raises(type(e)):
            numpy_model.to("dask").value_and_grad(
                **{k: da.from_array(v, chunks=rows) if k in chunked else v
                   for k, v in inputs.items()})
        return
    lazy = {k: da.from_array(v, chunks=(rows, *np.shape(v)[1:])) if k in chunked else v
            for k, v in inputs.items()}
    with _Computes() as computes:
        value, grads = numpy_model.to("dask").value_and_grad(**lazy)
    assert computes.count == 1
    assert bool(used) == (apart and rows < 12)  # (one chunk: the whole arrays' code)
    np.testing.assert_allclose(value, want, rtol=1e-12)
    assert list(grads) == list(want_grads)
    for n, g in grads.items():
        assert np.shape(g) == np.shape(want_grads[n]), n
        np.testing.assert_allclose(g, want_grads[n], rtol=1e-11, atol=1e-14, err_msg=n)


def test_chunks_of_no_rows_and_a_declared_number_of_rows():
    """Filtered data leaves chunks of no rows (skipped: they have no mean); rows declared in
    shapes= are the whole data's (the whole arrays' code runs)."""
    x = np.array([1.0, 2, 3, -1, -2, -3, 4, 5, 6])
    k, xs, ys = sp.symbols("k x y")
    model = symgrad.compile(symgrad.mean((k * xs - ys) ** 2), wrt=[k], cache=False)
    X = da.from_array(x, chunks=3)
    keep = X > 0
    lazy = {"x": X[keep].compute_chunk_sizes(),
            "y": da.from_array(0.3 * x, chunks=3)[keep].compute_chunk_sizes()}
    assert 0 in lazy["x"].chunks[0]
    value, grads = model.to("dask").value_and_grad(**lazy, k=0.5)
    want, want_grads = model.value_and_grad(x=x[x > 0], y=0.3 * x[x > 0], k=0.5)
    assert float(value) == pytest.approx(float(want), rel=1e-13)
    assert float(grads["k"]) == pytest.approx(float(want_grads["k"]), rel=1e-13)
    declared = symgrad.compile(symgrad.mean((k * xs - ys) ** 2), wrt=[k], cache=False,
                               shapes={xs: (9,), ys: (9,)})
    value, _ = declared.to("dask").value_and_grad(x=X, y=da.from_array(0.3 * x, chunks=3),
                                                  k=0.5)
    assert float(value) == pytest.approx(float(declared(x=x, y=0.3 * x, k=0.5)), rel=1e-13)


def test_the_chunks_warn_of_an_outer_broadcast_once_as_the_whole_does():
    k, xs, ys = sp.symbols("k x y")
    model = symgrad.compile(symgrad.mean(k * xs * ys), wrt=[k], cache=False).to("dask")
    x, y = da.from_array(np.ones((6, 1)), chunks=(2, 1)), np.ones(3)
    with pytest.warns(symgrad.SymgradWarning) as warned:
        model.value_and_grad(x=x, y=y, k=1.0)
    assert len(warned) == 1


def test_the_fuzz_models_on_chunked_rows_give_numpys_numbers(monkeypatch):
    """Random models through every function and operator (matmuls and reductions along any
    axis among them), every array input split into chunks of two rows: whichever code runs,
    chunk by chunk or on the whole arrays, the numbers are NumPy's."""
    from fuzz_models import make_models

    import symgrad.chunked

    used = []
    real = symgrad.chunked.value_and_grad
    monkeypatch.setattr(symgrad.chunked, "value_and_grad", lambda *a: used.append(1) or real(*a))
    checked = 0
    for kind, seed in (("scalar", 21), ("tensor", 22), ("matmul", 23)):
        for m in make_models(kind, 40, seed):
            if m.used & SCIPY_ONLY or not m.scalar_output:
                continue
            model = symgrad.compile(m.expression(), wrt=m.wrt, cache=False, broadcast="allow")
            inputs = {k: np.asarray(v, dtype=float) for k, v in m.inputs.items()}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                want, want_grads = model.value_and_grad(**inputs)
                value, grads = model.to("dask").value_and_grad(**{
                    k: da.from_array(v, chunks=(2, *v.shape[1:])) if v.ndim and len(v) > 2
                    else v for k, v in inputs.items()})
            np.testing.assert_allclose(value, want, rtol=1e-10, atol=1e-12, err_msg=m.formula)
            for n, g in grads.items():
                np.testing.assert_allclose(g, want_grads[n], rtol=1e-9, atol=1e-11,
                                           err_msg=f"{m.formula}: {n}")
            checked += 1
    assert checked > 60 and len(used) > 10, (checked, len(used))
