"""The array API backend: the same models, written once against the Python array API standard,
run under array-api-strict (which refuses anything outside the standard) and compared with the
NumPy backend, in float64 to rounding and in float32 to float32 precision.

Every operation record, the golden models (two-layer, MLP, softmax classifier, Huber Piecewise,
deep chain) and a sample of the gradient fuzz's random models run here; so do the refusals:
arrays of two libraries in one call, inputs that are no arrays, an operation the standard
cannot compute, a backend that is not there.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import sympy as sp
from fuzz_models import make_models
from models import seed_model
from test_ops import ARRAYS, ELEMENTWISE, weighted_sum

import symgrad
from symgrad.codegen.load import load

xp = pytest.importorskip("array_api_strict")
pytest.importorskip("array_api_compat")

SCIPY_ONLY = {"erf", "erfc", "gammaln", "polygamma"}


def _strict(values: dict, dtype=None) -> dict:
    """Each array input as an array-api-strict array (numbers stay Python numbers)."""
    return {k: v if isinstance(v, float | int) else xp.asarray(np.asarray(v), dtype=dtype)
            for k, v in values.items()}


def _compile_both(expr, **options):
    return (symgrad.compile(expr, cache=False, **options),
            symgrad.compile(expr, cache=False, backend="array_api", **options))


def _agree(numpy_model, array_model, inputs: dict, rtol=1e-13, float32=False) -> None:
    """The array API model on strict arrays gives the NumPy model's value and gradients, as
    strict arrays of the inputs' dtype."""
    dtype = xp.float32 if float32 else None
    value, grads = array_model.value_and_grad(**_strict(inputs, dtype))
    reference = {k: np.asarray(v, np.float32 if float32 else np.float64) if not isinstance(
        v, float | int) else v for k, v in inputs.items()}
    want, want_grads = numpy_model.value_and_grad(**reference)
    assert isinstance(value, type(xp.asarray(0.0)))
    assert value.dtype == (xp.float32 if float32 else xp.float64)
    scale = max([1e-30, *(float(np.max(np.abs(g))) for g in want_grads.values())])
    np.testing.assert_allclose(np.asarray(value), want, rtol=rtol, atol=rtol * abs(float(want)))
    for name, g in grads.items():
        assert g.dtype == value.dtype, name
        assert tuple(g.shape) == np.shape(want_grads[name]), name
        np.testing.assert_allclose(np.asarray(g), want_grads[name], rtol=rtol,
                                   atol=rtol * scale, err_msg=name)


@pytest.mark.parametrize("case", ELEMENTWISE, ids=lambda c: f"{c.record}:{c.id}")
def test_every_elementwise_record_under_array_api_strict(case):
    expr = symgrad.sum(case.expr)
    if case.record in SCIPY_ONLY:
        with pytest.raises(symgrad.SymgradError, match=rf"{case.record} .*array_api backend"):
            symgrad.compile(expr, cache=False, backend="array_api").source  # noqa: B018
        return
    numpy_model, array_model = _compile_both(expr, wrt=list(case.args))
    for point in case.points:
        inputs = {s.name: np.array([v, v * 0.99, v * 1.01]) for s, v in
                  zip(case.args, point, strict=True)}
        _agree(numpy_model, array_model, inputs)
        _agree(numpy_model, array_model, inputs, rtol=3e-5, float32=True)


@pytest.mark.parametrize("case", ARRAYS, ids=lambda c: f"{c.record}:{c.id}")
def test_every_array_record_under_array_api_strict(case):
    expr, wrt, inputs = weighted_sum(case)
    numpy_model, array_model = _compile_both(expr, wrt=wrt)
    _agree(numpy_model, array_model, inputs)
    _agree(numpy_model, array_model, inputs, rtol=3e-5, float32=True)


# -- whole models -------------------------------------------------------------------------------


def _two_layer(backend="numpy"):
    model = seed_model()
    if backend != "numpy":  # (seed_model's equations, for the other backend)
        x, y, k1, b1, k2, b2 = sp.symbols("x y k1 b1 k2 b2")
        L1, σ, L2, Loss = sp.symbols("L1 σ L2 Loss")
        model = symgrad.compile(
            [sp.Eq(L1, k1 * x + b1), sp.Eq(σ, symgrad.sigmoid(L1)), sp.Eq(L2, k2 * σ + b2),
             sp.Eq(Loss, symgrad.mean((L2 - y) ** 2))],
            wrt=[k1, b1, k2, b2], cache=False, backend=backend)
    return model, {"x": np.linspace(-2, 2, 9), "y": np.sin(np.linspace(-2, 2, 9)),
                          "k1": 0.7, "b1": -0.2, "k2": 1.3, "b2": 0.1}


def _mlp(backend="numpy"):
    X, W1, b1, W2, b2, y = sp.symbols("X W1 b1 W2 b2 y")
    L1, H, L2, Loss = sp.symbols("L1 H L2 Loss")
    model = symgrad.compile(
        [sp.Eq(L1, symgrad.matmul(X, W1) + b1), sp.Eq(H, symgrad.sigmoid(L1)),
         sp.Eq(L2, symgrad.matmul(H, W2) + b2), sp.Eq(Loss, symgrad.mean((L2 - y)**2))],
        wrt=[W1, b1, W2, b2],
        shapes={X: ("n", 12), W1: (12, 16), b1: (16,), W2: (16, 1), b2: (1,), y: ("n", 1)},
        cache=False, backend=backend)
    rng = np.random.default_rng(0)
    return model, {"X": rng.normal(size=(5, 12)), "y": rng.normal(size=(5, 1)),
                   "W1": rng.normal(size=(12, 16)) / 4, "b1": rng.normal(size=16),
                   "W2": rng.normal(size=(16, 1)) / 8, "b2": rng.normal(size=1)}


def _classifier(backend="numpy"):
    X, W, b, Y = sp.symbols("X W b Y")
    Z, P, Loss = sp.symbols("Z P Loss")
    model = symgrad.compile(
        [sp.Eq(Z, symgrad.matmul(X, W) + b), sp.Eq(P, symgrad.log_softmax(Z, axis=1)),
         sp.Eq(Loss, -symgrad.mean(symgrad.sum(Y * P, axis=1)))],
        wrt=[W, b], shapes={X: ("n", 4), W: (4, 3), b: (3,), Y: ("n", 3)}, cache=False,
        backend=backend)
    rng = np.random.default_rng(1)
    return model, {"X": rng.normal(size=(6, 4)), "Y": np.eye(3)[rng.integers(0, 3, size=6)],
                   "W": rng.normal(size=(4, 3)), "b": rng.normal(size=3)}


def _huber(backend="numpy"):
    x, y, k, b = sp.symbols("x y k b")
    R, H, Loss = sp.symbols("R H Loss")
    model = symgrad.compile(
        [sp.Eq(R, k*x + b - y),
         sp.Eq(H, sp.Piecewise((R**2/2, sp.Abs(R) <= 1), (sp.Abs(R) - sp.Rational(1, 2), True))),
         sp.Eq(Loss, symgrad.mean(H))], wrt=[k, b], cache=False, backend=backend)
    x = np.linspace(-2.0, 2.0, 9)
    return model, {"x": x, "y": 2 * x + np.array([0.3, -2.5, 0.1, 3.2, -0.4, 0.6, -1.7, 0.2,
                                                  2.4]), "k": 2.05, "b": 0.02}


def _deep_chain(backend="numpy"):
    x, y, Loss = sp.symbols("x y Loss")
    equations, h, point = [], x, {"x": np.linspace(-1.0, 1.0, 7), "y": np.linspace(0, 1, 7)}
    for i in range(1, 7):
        hi, wi, ci = sp.symbols(f"h{i} w{i} c{i}")
        equations.append(sp.Eq(hi, symgrad.sigmoid(wi*h + ci)))
        point[f"w{i}"], point[f"c{i}"] = 1.5 + 0.1 * i, -0.3 + 0.05 * i
        h = hi
    equations.append(sp.Eq(Loss, symgrad.mean((h - y)**2)))
    return symgrad.compile(equations, cache=False, backend=backend), point


MODELS = {"two-layer": _two_layer, "mlp": _mlp, "classifier": _classifier, "huber": _huber,
          "deep-chain": _deep_chain}


@pytest.mark.parametrize("make", MODELS.values(), ids=MODELS.keys())
def test_the_golden_models_under_array_api_strict(make, tmp_path):
    numpy_model, inputs = make()
    array_model, _ = make("array_api")
    _agree(numpy_model, array_model, inputs)
    _agree(numpy_model, array_model, inputs, rtol=3e-5, float32=True)
    source = array_model.source
    assert not re.search(r"\bnp\.", source), "NumPy in the array API code"
    assert "[::-" not in source  # no negative-step slice (PyTorch refuses them)
    # the module it saves runs alone, on strict arrays
    path = numpy_model.save(tmp_path / "model.py", backend="array_api")
    assert path.read_text(encoding="utf-8") == source
    value, _ = load(source)["value_and_grad"](**_strict(inputs))
    assert float(value) == pytest.approx(float(numpy_model(**inputs)), rel=1e-13)


def test_numpy_arrays_in_give_numpy_arrays_out():
    numpy_model, inputs = _two_layer()
    array_model, _ = _two_layer("array_api")
    value, grads = array_model.value_and_grad(**inputs)
    assert type(value) is np.float64 and all(type(g) is np.float64 for g in grads.values())
    want, want_grads = numpy_model.value_and_grad(**inputs)
    assert float(value) == pytest.approx(float(want), rel=1e-14)
    for name in want_grads:
        assert float(grads[name]) == pytest.approx(float(want_grads[name]), rel=1e-13)


def test_a_sample_of_the_fuzz_models_under_array_api_strict():
    """Random models through every function and operator: the array API code agrees."""
    checked = 0
    for kind, seed in (("scalar", 11), ("tensor", 12), ("matmul", 13)):
        for m in make_models(kind, 40, seed):
            if m.used & SCIPY_ONLY or not m.scalar_output:
                continue
            numpy_model, array_model = _compile_both(m.expression(), wrt=m.wrt)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # (scalars as 0-d arrays: the namespace comes from the arrays)
                inputs = {k: np.asarray(v, dtype=float) for k, v in m.inputs.items()}
                _agree(numpy_model, array_model, inputs, rtol=1e-10)
            checked += 1
    assert checked > 60


# -- stability, float32 ---------------------------------------------------------------------


def test_float32_stability_under_array_api_strict():
    x = sp.Symbol("x", real=True)
    for expr in (symgrad.sigmoid(x), symgrad.softplus(x), sp.log(symgrad.sigmoid(x)),
                 symgrad.logsumexp(x)):
        model = symgrad.compile(symgrad.sum(expr), cache=False, backend="array_api")
        v = xp.asarray([-1000.0, -100.0, 0.0, 100.0, 1000.0], dtype=xp.float32)
        value, grads = model.value_and_grad(x=v)
        assert value.dtype == xp.float32 and grads["x"].dtype == xp.float32
        assert bool(xp.isfinite(value)) and bool(xp.all(xp.isfinite(grads["x"]))), expr


# -- refusals -------------------------------------------------------------------------------


def test_arrays_of_two_libraries_are_refused_naming_the_inputs():
    model, inputs = _two_layer("array_api")
    mixed = {**inputs, "x": xp.asarray(inputs["x"])}
    with pytest.raises(symgrad.SymgradError, match=r"different libraries.*'x'.*'y'"):
        model.value_and_grad(**mixed)


@pytest.mark.parametrize(("value", "message"), [
    ([1.0, 2.0], r"input 'x' is list, not an array"),
    (None, r"input 'x' is NoneType"),
    ("1.5", r"input 'x' is str"),
    (np.array([1 + 2j]), r"input 'x' holds complex128 values, not real numbers"),
    (xp.asarray([1 + 2j]), r"input 'x' holds \S*complex128 values, not real numbers"),
])
def test_an_input_that_is_no_array_is_refused_naming_it(value, message):
    k, x = sp.symbols("k x")
    model = symgrad.compile(symgrad.sum(k * x), wrt=[k], cache=False, backend="array_api")
    with pytest.raises(symgrad.SymgradError, match=message):
        model.value_and_grad(k=0.5, x=value)


def test_numbers_alone_are_refused_saying_an_array_is_needed():
    k, x = sp.symbols("k x")
    model = symgrad.compile(k * x, wrt=[k], cache=False, backend="array_api")
    with pytest.raises(symgrad.SymgradError, match="at least one as an array"):
        model.value_and_grad(k=0.5, x=2.0)


@pytest.mark.parametrize("backend", ["array_api", "jax", "torch", "cupy", "dask"])
def test_a_backend_whose_library_is_missing_names_the_extra(backend, monkeypatch):
    import importlib.util

    from symgrad.runtime import RUNTIMES

    module, extra = RUNTIMES[backend].needs[0]
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == module else real(name, *a))
    with pytest.raises(symgrad.SymgradError,
                       match=rf"backend='{backend}' needs {module}.*'symgrad\[{extra}\]'"):
        symgrad.compile(sp.Symbol("x"), backend=backend)


@pytest.mark.parametrize("backend", ["NumPy", "", None, 3])
def test_an_unknown_backend_is_refused_listing_the_backends(backend):
    with pytest.raises(symgrad.SymgradError, match=r"backend=.*'numpy', 'array_api'"):
        symgrad.compile(sp.Symbol("x"), backend=backend)


@pytest.mark.parametrize("shape", [(3,), (2, 3), (2, 3, 4)])
@pytest.mark.parametrize("declared", [True, False])
def test_transpose_of_any_rank_under_array_api_strict(shape, declared):
    """NumPy's x.T reverses every axis (and leaves a vector as it is); the standard's .T is for
    matrices only: a matrix is written x.T, any other array through permute_dims."""
    T, C = sp.symbols("T C")
    expr = symgrad.sum(C * symgrad.transpose(T))
    shapes = {T: shape, C: shape[::-1]} if declared else None
    numpy_model, array_model = _compile_both(expr, wrt=[T], shapes=shapes)
    rng = np.random.default_rng(5)
    _agree(numpy_model, array_model, {"T": rng.normal(size=shape),
                                      "C": rng.normal(size=shape[::-1])})
    if declared and len(shape) == 2:
        assert "T.T" in array_model.source and "_transpose" not in array_model.source


@pytest.mark.parametrize("reduce", [symgrad.sum, symgrad.mean, symgrad.max, symgrad.logsumexp],
                         ids=lambda f: f.__name__)
@pytest.mark.parametrize(("shape", "axis"), [((3, 3, 2, 2), (-3, 3)), ((2, 3, 2, 2), (-3, 3)),
                                             ((2, 3, 4), (-3, 2)), ((2, 3, 4), (0, -1))])
def test_reductions_over_axes_of_both_signs_under_array_api_strict(reduce, shape, axis):
    """The gradient puts the reduced axes back where they were, negative or not."""
    X, C = sp.symbols("X C")
    kept = tuple(n for k, n in enumerate(shape) if k not in {a % len(shape) for a in axis})
    numpy_model, array_model = _compile_both(symgrad.sum(C * reduce(X, axis=axis)), wrt=[X])
    rng = np.random.default_rng(6)
    _agree(numpy_model, array_model, {"X": rng.normal(size=shape), "C": rng.normal(size=kept)})


@pytest.mark.parametrize("backend", ["array_api", "jax"])
def test_compiled_with_a_dtype_the_array_backends_compute_in_it(backend, tmp_path, request):
    """dtype= puts every input in that dtype on these backends too, the cache telling the
    models of each dtype apart."""
    if backend == "jax":
        request.getfixturevalue("jax_x64")
    k, x = sp.symbols("k x")
    expr = symgrad.sum(k * x)
    for dtype, want in (("float32", xp.float32), ("float64", xp.float64)):
        model = symgrad.compile(expr, wrt=[k], backend=backend, dtype=dtype, cache_dir=tmp_path)
        data = xp.asarray(np.arange(3.0), dtype=xp.float64 if dtype == "float32" else xp.float32)
        if backend == "jax":
            import jax.numpy as jnp

            data = jnp.asarray(np.arange(3.0), dtype=jnp.float32)
            want = jnp.float32 if dtype == "float32" else jnp.float64
        value, grads = model.value_and_grad(k=1.5, x=data)
        assert value.dtype == want and grads["k"].dtype == want, (backend, dtype)


def test_numbers_take_the_arrays_dtype_whatever_their_type():
    """Python and NumPy numbers alike (and integers beyond int64) are numbers: they take the
    arrays' dtype, on any library."""
    k, x = sp.symbols("k x")
    model = symgrad.compile(symgrad.sum(k * x), wrt=[k], cache=False, backend="array_api")
    data = xp.asarray([1.0, 2.0], dtype=xp.float32)
    for number in (1.5, np.float64(1.5), np.float32(1.5), 10**20, True):
        value, grads = model.value_and_grad(k=number, x=data)
        assert value.dtype == xp.float32 and grads["k"].dtype == xp.float32, type(number)
        assert float(value) == pytest.approx(3 * float(number), rel=1e-6)


# -- Piecewise branches that are not taken --------------------------------------------------

from sympy.codegen.cfunctions import exp2, expm1, log1p, log2, log10  # noqa: E402

x_ = sp.Symbol("x")
#: A condition under which each function with a safe point (Op.safe) is finite, and so is its
#: derivative: the branch that computes it is taken only there.
DOMAINS = {
    "sqrt": (sp.sqrt(x_), x_ > 0), "log": (sp.log(x_), x_ > 0),
    "log2": (log2(x_), x_ > 0), "log10": (log10(x_), x_ > 0),
    "log1p": (log1p(x_), x_ > -1), "div": (1 / x_, sp.Ne(x_, 0)),
    "pow": (x_ ** sp.Rational(3, 2), x_ > 0), "exp": (sp.exp(x_), x_ < 50),
    "exp2": (exp2(x_), x_ < 50), "expm1": (expm1(x_), x_ < 50),
    "sinh": (sp.sinh(x_), x_ < 50), "cosh": (sp.cosh(x_), x_ < 50),
    "tan": (sp.tan(x_), sp.Abs(x_) < 1), "asin": (sp.asin(x_), sp.Abs(x_) < 1),
    "acos": (sp.acos(x_), sp.Abs(x_) < 1), "atanh": (sp.atanh(x_), sp.Abs(x_) < 1),
    "acosh": (sp.acosh(x_), x_ > 1),
}


def test_every_function_with_a_safe_point_has_a_domain_here():
    from symgrad.ops import OPS

    assert set(DOMAINS) == {name for name, op in OPS.items() if op.safe is not None}


@pytest.mark.parametrize("name", sorted(DOMAINS))
def test_a_branch_not_taken_never_warns_and_gives_numpys_numbers(name):
    """The branch's function reads its safe point where the branch is not taken: no
    floating-point warning (an error here), where NumPy's code silences them."""
    f, condition = DOMAINS[name]
    k = sp.Symbol("k")
    expr = symgrad.sum(sp.Piecewise((k * f, condition), (k * x_, True)))
    numpy_model, array_model = _compile_both(expr, wrt=[k, x_])
    inputs = {"x": np.array([-2.0, -0.5, 0.0, 0.5, 1.5, 2.0, 800.0]), "k": 1.5}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _agree(numpy_model, array_model, inputs)


@pytest.mark.parametrize(("backend", "make", "theirs"), [
    ("jax", lambda v: __import__("dask.array").array.from_array(v, chunks=2), "dask"),
    ("dask", lambda v: __import__("torch").as_tensor(v), "torch"),
    ("torch", lambda v: __import__("jax.numpy").numpy.asarray(v, dtype="float32"), "jax"),
])
def test_an_array_of_another_library_than_the_backends_is_refused_naming_it(backend, make,
                                                                             theirs):
    """Not loaded whole or copied silently: the error names the input and the backend that
    takes it (NumPy's arrays beside it are converted, as always)."""
    for library in (backend, theirs):
        pytest.importorskip("dask" if library == "dask" else library)
    k, x, y = sp.symbols("k x y")
    model = symgrad.compile(symgrad.mean((k * x - y) ** 2), wrt=[k], cache=False,
                            backend=backend)
    with pytest.raises(symgrad.SymgradError,
                       match=rf"'x': .* arrays, and the {backend} backend takes .*"
                             rf"model.to\('{theirs}'\)"):
        model.value_and_grad(x=make(np.arange(4.0)), y=np.ones(4, np.float32), k=0.5)


@pytest.mark.parametrize("backend", ["array_api", "torch", "dask"])
def test_numbers_alone_are_refused_naming_the_backend(backend):
    pytest.importorskip({"array_api": "array_api_compat"}.get(backend, backend))
    k, x = sp.symbols("k x")
    model = symgrad.compile(k * x, wrt=[k], cache=False, backend=backend)
    with pytest.raises(symgrad.SymgradError, match=rf"the {backend} backend takes its array "
                                                   "library from the inputs"):
        model.value_and_grad(k=0.5, x=2.0)
