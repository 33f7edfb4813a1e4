"""The CuPy backend, on a GPU: arrays stay on the device, results match NumPy's.

Skipped where CuPy or a GPU is missing (as on CI). On a machine with one:

    .venv/bin/python -m pip install -e '.[cupy]' && .venv/bin/python -m pytest tests/test_cupy.py

That the generated code never waits for the device (no value brought to the host inside it) is
checked on every machine, for every operation record, by test_dask.py's one-compute tests: such
a value is a compute of its own on Dask.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_array_api import MODELS

cupy = pytest.importorskip("cupy", reason="CuPy is not installed: pip install 'symgrad[cupy]'")
try:
    _GPUS = cupy.cuda.runtime.getDeviceCount()
except cupy.cuda.runtime.CUDARuntimeError:
    _GPUS = 0
if not _GPUS:
    pytest.skip("no GPU on this machine: the CuPy backend needs one", allow_module_level=True)


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_golden_models_on_the_gpu(name, dtype):
    numpy_model, inputs = MODELS[name]()
    cupy_model, _ = MODELS[name]("cupy")
    inputs = {k: np.asarray(v, dtype) if np.ndim(v) else v for k, v in inputs.items()}
    on_gpu = {k: cupy.asarray(v) if np.ndim(v) else v for k, v in inputs.items()}
    value, grads = cupy_model.value_and_grad(**on_gpu)
    want, want_grads = numpy_model.value_and_grad(**inputs)
    rtol = 1e-12 if dtype == np.float64 else 3e-5
    assert isinstance(value, cupy.ndarray) and value.dtype == dtype
    np.testing.assert_allclose(cupy.asnumpy(value), want, rtol=rtol)
    for n, g in grads.items():
        assert isinstance(g, cupy.ndarray) and g.device == value.device, n
        np.testing.assert_allclose(cupy.asnumpy(g), want_grads[n], rtol=rtol,
                                   atol=rtol * float(np.max(np.abs(want_grads[n]))), err_msg=n)


def test_numpy_inputs_are_copied_to_the_gpu():
    model, inputs = MODELS["two-layer"]("cupy")
    value, grads = model.value_and_grad(**inputs)
    assert isinstance(value, cupy.ndarray)
    assert all(isinstance(g, cupy.ndarray) for g in grads.values())


@pytest.mark.skipif(_GPUS < 2, reason="needs two GPUs")
def test_arrays_on_two_gpus_are_refused_naming_the_inputs():
    import symgrad

    model, inputs = MODELS["two-layer"]("cupy")
    with cupy.cuda.Device(0):
        x = cupy.asarray(inputs["x"])
    with cupy.cuda.Device(1):
        y = cupy.asarray(inputs["y"])
    with pytest.raises(symgrad.SymgradError, match=r"different devices.*'x'.*'y'"):
        model.value_and_grad(**{**inputs, "x": x, "y": y})
