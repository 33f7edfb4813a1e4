"""Training on data that stays in Dask: ``fit`` with Dask arrays (or a Zarr store) streams over
the chunks, full-batch (one compute a step) or in mini-batches drawn chunk by chunk, and gives
what the same fit on the data in memory gives; the data is never loaded whole, on threads and on
a ``dask.distributed`` LocalCluster."""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from test_array_api import MODELS
from test_dask import _Computes

import symgrad
from symgrad.optim import SGD, Adam
from symgrad.training import _ChunkBatches

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

ROOT = Path(__file__).resolve().parents[1]
START = {"k1": 0.5, "b1": 0.0, "k2": 1.0, "b2": 0.0}


def _linear():
    x, y, k, b = sp.symbols("x y k b")
    return symgrad.compile(symgrad.mean((k * x + b - y) ** 2), wrt=[k, b], cache=False)


def _data(n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return {"x": x, "y": 2.0 / (1 + np.exp(-(1.5 * x - 0.5))) + 0.3 + rng.normal(0, 0.1, n)}


def _lazy(data: dict, chunk: int) -> dict:
    return {k: da.from_array(v, chunks=chunk) for k, v in data.items()}


def _same_fit(a, b, rtol=1e-12):
    np.testing.assert_allclose(a.losses, b.losses, rtol=rtol)
    for n in b.params:
        np.testing.assert_allclose(a.params[n], b.params[n], rtol=rtol, err_msg=n)


@pytest.mark.parametrize("make", ["linear", "two-layer"])
def test_full_batch_on_dask_arrays_is_the_fit_in_memory_one_compute_a_step(make):
    model = _linear() if make == "linear" else MODELS["two-layer"]()[0]
    start = {"k": 0.0, "b": 0.0} if make == "linear" else START
    data = _data(10_000)
    want = symgrad.fit(model, start, data, Adam(lr=0.05), steps=12, progress=False)
    with _Computes() as computes:
        got = symgrad.fit(model, start, _lazy(data, 1_500), Adam(lr=0.05), steps=12,
                          progress=False)
    assert computes.count == 12
    _same_fit(got, want)


def test_a_model_compiled_for_dask_trains_on_its_arrays_either_way():
    model = MODELS["two-layer"]("dask")[0]
    data = _data(4_000)
    want = symgrad.fit(MODELS["two-layer"]()[0], START, data, SGD(lr=0.1), epochs=2,
                       batch_size=500, shuffle=False, progress=False)
    got = symgrad.fit(model, START, _lazy(data, 1_000), SGD(lr=0.1), epochs=2, batch_size=500,
                      shuffle=False, progress=False)
    _same_fit(got, want)
    full = symgrad.fit(model, START, _lazy(data, 1_000), SGD(lr=0.1), steps=3, progress=False)
    _same_fit(full, symgrad.fit(MODELS["two-layer"]()[0], START, data, SGD(lr=0.1), steps=3,
                                progress=False))


def test_mini_batches_in_order_are_the_fit_in_memory_when_chunks_hold_whole_batches():
    model = MODELS["two-layer"]()[0]
    data = _data(6_000)
    want = symgrad.fit(model, START, data, Adam(lr=0.01), epochs=3, batch_size=250,
                       shuffle=False, progress=False)
    got = symgrad.fit(model, START, _lazy(data, 1_000), Adam(lr=0.01), epochs=3,
                      batch_size=250, shuffle=False, progress=False)
    assert got.steps == want.steps == 72 and got.epochs == 3.0
    _same_fit(got, want)


@pytest.mark.parametrize("chunks", [(1000, 1000, 1000, 700), (400, 1300, 2000)])
def test_an_epoch_draws_every_row_once_chunk_by_chunk(chunks):
    n = sum(chunks)
    x = da.from_array(np.arange(n, dtype=float), chunks=(chunks,))
    y = np.arange(n, dtype=float) * 10  # a NumPy array beside it: cut along the same rows
    batches = _ChunkBatches({"x": x, "y": y, "c": np.array(3.0)}, 300, True, 7)
    bounds = np.cumsum((0, *chunks))
    assert batches.per_epoch == sum(-(-c // 300) for c in chunks)
    epochs = iter(batches)
    seen = []
    for _ in range(2):
        rows = []
        with _Computes() as computes:
            for _ in range(batches.per_epoch):
                batch = next(epochs)
                assert len(batch["x"]) <= 300 and float(batch["c"]) == 3.0
                np.testing.assert_array_equal(batch["y"], batch["x"] * 10)
                chunk = np.searchsorted(bounds, batch["x"], side="right") - 1
                assert len(set(chunk)) == 1  # a batch never spans two chunks
                rows.append(batch["x"])
        assert computes.count <= len(chunks) + 1  # each chunk once (and the next one ahead)
        rows = np.concatenate(rows)
        np.testing.assert_array_equal(np.sort(rows), np.arange(n))  # every row, once
        seen.append(rows)
    epochs.close()
    assert not np.array_equal(seen[0], seen[1])  # a new order each epoch


@pytest.mark.parametrize(("steps", "computes"), [({"epochs": 1}, 4), ({"epochs": 2}, 8),
                                                 ({"steps": 1}, 1), ({"steps": 5}, 2)])
def test_no_chunk_is_computed_beyond_the_steps_asked_for(steps, computes):
    data = _lazy(_data(4_000), 1_000)  # 4 chunks of 4 batches
    with _Computes() as counted:
        history = symgrad.fit(_linear(), {"k": 0.0, "b": 0.0}, data, SGD(lr=0.1),
                              batch_size=250, progress=False, **steps)
    assert counted.count == computes, history.steps


def test_a_dask_constant_beside_dask_arrays_is_the_same_in_every_batch():
    x, y, k, c = sp.symbols("x y k c")
    model = symgrad.compile(symgrad.mean((k * x + c - y) ** 2), wrt=[k], cache=False)
    data = _data(1_000)
    want = symgrad.fit(model, {"k": 0.0}, {**data, "c": 0.5}, SGD(lr=0.1), epochs=1,
                       batch_size=125, shuffle=False, progress=False)
    for batch_size in (125, None):
        got = symgrad.fit(model, {"k": 0.0}, {**_lazy(data, 250), "c": da.asarray(0.5)},
                          SGD(lr=0.1), epochs=1, batch_size=batch_size, shuffle=False,
                          progress=False)
        if batch_size:
            _same_fit(got, want)


def test_dask_arrays_of_unknown_length_are_refused_naming_the_fix():
    x = da.from_array(np.linspace(-3, 3, 100), chunks=25)
    x = x[x > -2]  # (a filter: Dask does not know the chunks' lengths)
    with pytest.raises(symgrad.SymgradError, match=r"'x' is a Dask array of unknown length.*"
                                                   r"x.compute_chunk_sizes\(\)"):
        symgrad.fit(_linear(), {"k": 0.0, "b": 0.0}, {"x": x, "y": 2 * x}, SGD(lr=0.1),
                    steps=1, progress=False)


def test_a_batch_as_large_as_the_data_is_one_batch_of_all_of_it_as_in_memory():
    data = _data(1_000)
    want = symgrad.fit(_linear(), {"k": 0.0, "b": 0.0}, data, SGD(lr=0.1), epochs=2,
                       batch_size=5_000, shuffle=False, progress=False)
    got = symgrad.fit(_linear(), {"k": 0.0, "b": 0.0}, _lazy(data, 1_000), SGD(lr=0.1),
                      epochs=2, batch_size=5_000, shuffle=False, progress=False)
    assert got.steps == want.steps == 2
    _same_fit(got, want)
    with pytest.raises(symgrad.SymgradError, match=r"batch_size=5000 .*x\.rechunk\(1000\)"):
        symgrad.fit(_linear(), {"k": 0.0, "b": 0.0}, _lazy(data, 500), SGD(lr=0.1), epochs=1,
                    batch_size=5_000, progress=False)


def test_a_float32_scalar_parameter_trains_in_float32():
    data = {k: v.astype(np.float32) for k, v in _data(100).items()}
    history = symgrad.fit(_linear(), {"k": np.float32(0.0), "b": 0.0}, data, SGD(lr=0.1),
                          steps=3, progress=False)
    assert history.params["k"].dtype == np.float32


def test_a_float16_parameter_is_refused_naming_the_fix():
    with pytest.raises(symgrad.SymgradError, match=r"parameter 'k' is float16.*k.astype"):
        symgrad.fit(_linear(), {"k": np.zeros(1, np.float16), "b": 0.0}, _data(10),
                    SGD(lr=0.1), steps=1, progress=False)


def test_a_batch_larger_than_every_chunk_is_refused_naming_the_fix():
    data = _lazy(_data(1_000), 100)
    with pytest.raises(symgrad.SymgradError, match=r"batch_size=500 .*largest chunk \(100\).*"
                                                   r"rechunk"):
        symgrad.fit(_linear(), {"k": 0.0, "b": 0.0}, data, SGD(lr=0.1), epochs=1,
                    batch_size=500, progress=False)


def test_data_of_no_real_numbers_in_dask_is_refused_naming_it():
    data = {"x": da.from_array(np.array(["a", "b"])), "y": np.ones(2)}
    with pytest.raises(symgrad.SymgradError, match=r"data 'x' is a Dask array of <U1"):
        symgrad.fit(_linear(), {"k": 0.0, "b": 0.0}, data, SGD(lr=0.1), steps=1,
                    progress=False)


def test_the_numpy_backend_refuses_a_dask_array_instead_of_loading_it():
    model = _linear()
    with pytest.raises(symgrad.SymgradError, match=r"'x' is a Dask array.*model.to\('dask'\)"):
        model(x=da.ones(10, chunks=5), y=np.ones(10), k=1.0, b=0.0)
    lazy = model.to("dask")(x=da.ones(10, chunks=5), y=np.ones(10), k=1.0, b=0.0)
    assert float(lazy) == 0.0


def test_objective_on_dask_data_is_the_objective_in_memory():
    model = MODELS["two-layer"]()[0]
    data = _data(2_000)
    fun, x0, _ = model.objective(_lazy(data, 500), START)
    want_fun, _, _ = model.objective(data, START)
    value, grad = fun(x0 + 0.1)
    want, want_grad = want_fun(x0 + 0.1)
    assert value == pytest.approx(want, rel=1e-13)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-12)


def test_a_zarr_store_is_read_chunk_by_chunk(tmp_path):
    zarr = pytest.importorskip("zarr")
    data = _data(3_000)
    store = zarr.open_group(str(tmp_path / "data.zarr"), mode="w")
    for name, values in data.items():
        store.create_array(name, shape=values.shape, chunks=(1_000,), dtype=values.dtype)[:] = (
            values)
    model = MODELS["two-layer"]()[0]
    want = symgrad.fit(model, START, data, Adam(lr=0.01), epochs=2, batch_size=200,
                       shuffle=False, progress=False)
    got = symgrad.fit(model, START, tmp_path / "data.zarr", Adam(lr=0.01), epochs=2,
                      batch_size=200, shuffle=False, progress=False)
    _same_fit(got, want)
    store.create_array("k1", shape=(1,), dtype=float)[:] = 9.0  # a parameter's name: not read
    fun, x0, _ = model.objective(tmp_path / "data.zarr", START)
    assert fun(x0)[0] == pytest.approx(model.objective(data, START).fun(x0)[0], rel=1e-13)
    with pytest.raises(symgrad.SymgradError, match=r"data '.*data.zarr' has no array or column "
                                                   r"'y' for the model's input of that name"):
        del store["y"]
        symgrad.fit(model, START, str(tmp_path / "data.zarr"), SGD(lr=0.1), steps=1,
                    progress=False)
    with pytest.raises(symgrad.SymgradError, match=r"not a Zarr store"):
        (tmp_path / "text.zarr").write_text("not a store")
        symgrad.fit(model, START, str(tmp_path / "text.zarr"), SGD(lr=0.1), steps=1,
                    progress=False)
    with pytest.raises(symgrad.SymgradError,
                       match=r"data must be a dict .*\(or the path of a Zarr store or Parquet "
                             r"file\); got str '/.*, which is no file or folder"):
        symgrad.fit(model, START, str(tmp_path / "nothing.zarr"), SGD(lr=0.1), steps=1,
                    progress=False)


@pytest.mark.filterwarnings("ignore:Dask currently has limited support:UserWarning")
def test_a_parquet_file_is_read_chunk_by_chunk(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    data = _data(3_000)
    for i in range(3):  # a folder of three files: three chunks
        rows = slice(1_000 * i, 1_000 * (i + 1))
        (tmp_path / "data.parquet").mkdir(exist_ok=True)
        pd.DataFrame({"x": data["x"][rows], "y": data["y"][rows], "note": "unused"}).to_parquet(
            tmp_path / "data.parquet" / f"part{i}.parquet")
    model = MODELS["two-layer"]()[0]
    want = symgrad.fit(model, START, data, Adam(lr=0.01), epochs=2, batch_size=200,
                       shuffle=False, progress=False)
    got = symgrad.fit(model, START, tmp_path / "data.parquet", Adam(lr=0.01), epochs=2,
                      batch_size=200, shuffle=False, progress=False)
    _same_fit(got, want)
    full = symgrad.fit(model, START, str(tmp_path / "data.parquet"), SGD(lr=0.1), steps=2,
                       progress=False)
    _same_fit(full, symgrad.fit(model, START, data, SGD(lr=0.1), steps=2, progress=False))
    pd.DataFrame({"x": data["x"].astype(np.float32), "y": np.arange(3_000)}).to_parquet(
        tmp_path / "kinds.parquet")
    opened = symgrad.training._opened(tmp_path / "kinds.parquet", model, skip=set())
    assert opened["x"].dtype == np.float32 and opened["y"].dtype == np.int64  # each its own
    pd.DataFrame({"x": data["x"], "y": pd.array([1, None] * 1_500, dtype="Int64")}).to_parquet(
        tmp_path / "nulls.parquet")
    with pytest.raises(symgrad.SymgradError, match=r"data 'y' is a Dask array of object"):
        symgrad.fit(model, START, tmp_path / "nulls.parquet", SGD(lr=0.1), steps=1,
                    progress=False)
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(symgrad.SymgradError, match=r"'.*bad.parquet' is not a Parquet file"):
        symgrad.fit(model, START, tmp_path / "bad.parquet", SGD(lr=0.1), steps=1,
                    progress=False)


def test_float32_parameters_and_data_train_in_float32():
    model = MODELS["two-layer"]()[0]
    data = {k: v.astype(np.float32) for k, v in _data(2_000).items()}
    start = {n: np.array([v], np.float32) for n, v in START.items()}
    for lazy in (False, True):
        history = symgrad.fit(model, start, _lazy(data, 500) if lazy else data, Adam(lr=0.01),
                              epochs=2, batch_size=250, shuffle=False, progress=False)
        assert all(p.dtype == np.float32 for p in history.params.values())
        want = symgrad.fit(model, {n: v.astype(np.float64) for n, v in start.items()},
                           {k: v.astype(np.float64) for k, v in data.items()}, Adam(lr=0.01),
                           epochs=2, batch_size=250, shuffle=False, progress=False)
        np.testing.assert_allclose(history.losses, want.losses, rtol=1e-4)
    assert start["k1"].dtype == np.float32 and start["k1"][0] == np.float32(0.5)  # not changed


def test_the_linear_model_streams_ten_million_rows_in_a_fraction_of_their_memory():
    """10⁷ rows (153 MB of x and y) generated chunk by chunk: what NumPy and Dask allocate while
    fitting (tracemalloc sees it, in every thread) stays within a few chunks' worth, and a
    tenth of the data's size."""
    rows, chunk = 10_000_000, 100_000
    x = da.random.default_rng(3).normal(size=rows, chunks=chunk)
    data = {"x": x, "y": 3 * x + 1}
    model = _linear()

    def both(full_steps, **mini):
        full = symgrad.fit(model, {"k": 0.0, "b": 0.0}, data, SGD(lr=0.4), steps=full_steps,
                           progress=False)
        return full, symgrad.fit(model, full.params, data, SGD(lr=0.05), **mini,
                                 batch_size=chunk // 4, progress=False)

    tracemalloc.start()
    try:
        with dask.config.set(scheduler="threads"):
            both(1, steps=5)  # (what the first fit imports stays: not data)
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            full, mini = both(4, epochs=1)
            peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert peak < min(10 * 2 * chunk * 8, 2 * rows * 8 / 10), peak / 2**20
    assert full.losses[-1] < full.losses[0] / 10
    assert mini.params["k"] == pytest.approx(3.0, abs=1e-6)
    assert mini.params["b"] == pytest.approx(1.0, abs=1e-6)


def _example(*args: str) -> dict[str, str]:
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "beyond_memory.py"), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    return done.stdout


def test_the_example_on_a_local_cluster_whose_workers_hold_less_than_the_data(tmp_path):
    """beyond_memory.py on a LocalCluster it starts and stops: 916 MB of data through two
    workers limited to 400 MB each (on threads: test_examples.py)."""
    pytest.importorskip("distributed")
    out = _example("--quick", "--cluster", "--output", str(tmp_path))
    assert "Dask on a LocalCluster of 2 worker processes" in out
    assert "k1 1.50" in out and "k2 2.00" in out
    workers = [float(p.replace(",", "")) for p in
               out.split("its workers' peaks ")[1].split("\n")[0].replace(" MB", "").split(", ")]
    assert len(workers) == 2 and all(p < 400 for p in workers), out  # (the cap: 400 each)


def test_the_readmes_cluster_snippet_runs_as_written(tmp_path):
    """The README's fit on a dask.distributed cluster, as a script (its LocalCluster's worker
    processes import it): it finds k = 3, b = 1."""
    pytest.importorskip("distributed")
    import ast
    import re

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    [block] = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S)
               if "from dask.distributed import Client" in b]
    script = tmp_path / "snippet.py"
    script.write_text(block, encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    params = ast.literal_eval(done.stdout.strip().splitlines()[-1])  # (the printed dict)
    assert params["k"] == pytest.approx(3.0, abs=1e-9) and params["b"] == pytest.approx(1.0,
                                                                                        abs=1e-9)
