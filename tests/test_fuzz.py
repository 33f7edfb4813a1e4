"""The gradient fuzz: thousands of random models, each through every code path, against NumPy.

Scalar models (every function of README's "Functions", Piecewise, Max/Min; against sympy.diff and
finite differences), tensor models (reductions along each axis with and without keepdims,
softmax, log_softmax, cross-entropies, matmul, transpose, parameters of every broadcastable
shape) and matmul models (every binary operator mixed with matmul and transpose). Each model's
value is checked against NumPy evaluating the same formula, and its gradient, which must have
its input's shape, against central finite differences, through the call, ``source_for``
executed, and ``save`` imported. The seed is fixed; ``--fuzz-models N`` (or the environment
variable SYMGRAD_FUZZ_MODELS) sets how many models run, SYMGRAD_FUZZ_SEED another seed. A
failure prints each failing model as Python to paste into a regression test.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter

import numpy as np
import pytest
from fuzz_models import (
    MORE_FUNCTIONS,
    OPERATORS,
    SCALAR_FUNCTIONS,
    TENSOR_FUNCTIONS,
    Choices,
    DrawnChoices,
    M,
    Model,
    N,
    check,
    draw_point,
    keeps_inputs,
    keeps_shape,
    make_models,
    reduction_model,
)
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

#: How the models divide between the kinds (the scalar ones are the slowest: sympy.diff).
SHARES = {"scalar": 0.35, "tensor": 0.4, "matmul": 0.25}
SEEDS = {"scalar": 1, "tensor": 2, "matmul": 3}
SHOWN = 5  # failing models printed in full; the rest one line each


@pytest.fixture(scope="module")
def fuzz(fuzz_models: int, fuzz_seed: int):
    """kind -> its random models, each with a point away from kinks and inside every domain."""
    counts = {kind: max(1, round(fuzz_models * share)) for kind, share in SHARES.items()}
    counts["matmul"] = max(1, fuzz_models - counts["scalar"] - counts["tensor"])
    return {kind: make_models(kind, count, fuzz_seed * 1000 + SEEDS[kind])
            for kind, count in counts.items()}


def _run(models, tmp_path, use_sympy=False):
    failing = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NumPy's and symgrad's warnings are not the subject here
        for model in models:
            failures = check(model, tmp_path, use_sympy=use_sympy)
            if failures:
                failing.append(failures)
    if failing:
        kinds = Counter(_signature(f[0]) for f in failing)
        tally = "\n".join(f"  {n} x {sig}" for sig, n in kinds.most_common())
        # the shortest model of each kind of failure first: the easiest to read
        firsts = {}
        for f in sorted(failing, key=lambda f: len(f[0].model.formula)):
            firsts.setdefault(_signature(f[0]), f)
        failing = list(firsts.values()) + [f for f in failing if f not in firsts.values()]
        shown = "\n".join(str(f[0]) for f in failing[:SHOWN])
        lines = "\n".join(f"  {f.path}: {f.problem}  <- {f.model.formula}"
                          for failures in failing[SHOWN:] for f in failures[:1])
        pytest.fail(
            f"{len(failing)} of {len(models)} {models[0].kind} models fail:\n{tally}\n\n{shown}\n"
            + (f"The other failing models:\n{lines}" if lines else ""),
            pytrace=False,
        )


def _signature(failure) -> str:
    """The kind of a failure: where, and what, without the numbers."""
    problem = re.sub(r"\(at .*", "", failure.problem)
    problem = re.sub(r"-?\d+(\.\d*)?(e[+-]?\d+)?", "#", problem)
    problem = re.sub(r"[\[(][\[\]()#, ]*[\])]", "…", problem)
    return f"{failure.path.split(' ')[0]}: {problem[:110]}"


def test_fuzz_scalar_models(fuzz, tmp_path):
    """Every scalar function, Piecewise and Max/Min, against sympy.diff and finite differences."""
    _run(fuzz["scalar"], tmp_path, use_sympy=True)
    checked = sum(m.sympy_checked for m in fuzz["scalar"])
    assert checked >= 0.8 * len(fuzz["scalar"]), f"sympy.diff checked only {checked} models"


def test_fuzz_tensor_models(fuzz, tmp_path):
    """Reductions along axes, softmax, cross-entropies and broadcast parameters."""
    _run(fuzz["tensor"], tmp_path)


def test_fuzz_matmul_models(fuzz, tmp_path):
    """Every binary operator mixed with matmul and transpose: the value NumPy gives for the same
    formula, through the call, source_for and save (an operand of ``*``, ``/``, ``**`` that is a
    matmul must keep its parentheses in every one)."""
    _run(fuzz["matmul"], tmp_path)


def test_fuzz_covers_everything(fuzz, fuzz_models):
    """The models use every supported function, operator, reduction form and parameter shape."""
    models = [m for kind in fuzz.values() for m in kind]
    assert len(models) == fuzz_models
    if fuzz_models < 2000:
        pytest.skip("what the models cover is asserted for 2,000 of them or more")
    used = set().union(*(m.used for m in models))
    wanted = {*SCALAR_FUNCTIONS, *MORE_FUNCTIONS, *TENSOR_FUNCTIONS, *OPERATORS,
              "non-scalar output",
              "cross-entropy"}
    wanted |= {f"{r}({form})" for r in ("sum", "mean", "max", "logsumexp")
               for form in ("axis", "keepdims")}
    wanted |= {f"shape{s}" for s in [(), (1,), (N,), (M,), (1, M), (N, 1), (N, M)]}
    assert wanted <= used, sorted(wanted - used)
    matmul_ops = set().union(*(m.used for m in fuzz["matmul"]))
    assert {*OPERATORS, "matmul", "transpose"} <= matmul_ops


# -- reductions of elementwise expressions over parameters of every broadcastable shape


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                 HealthCheck.data_too_large])
@given(data=st.data())
def test_reductions_of_broadcast_parameters(data, tmp_path_factory):
    """sum, mean, max, logsumexp (all elements, each axis, keepdims or not) and a softmax
    cross-entropy of random elementwise expressions mixing data with parameters of shapes (),
    (1,), (n,), (1, m), (n, 1), (n, m): every gradient has its parameter's shape and equals
    central finite differences, through every code path."""
    choices = DrawnChoices(data)
    model, guards = reduction_model(choices)
    assume(keeps_inputs(model) and draw_point(model, guards, choices.rng) and keeps_shape(model))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        failures = check(model, tmp_path_factory.mktemp("saved"))
    assert not failures, "\n".join(map(str, failures))


def test_reduction_models_cover_every_form():
    """The generator of the test above reaches every reduction, axis form and parameter shape."""
    rng = np.random.default_rng(0)
    used = set()
    for _ in range(400):
        used |= reduction_model(Choices(rng))[0].used
    assert {"sum", "mean", "max", "logsumexp", "cross-entropy"} <= used
    assert {f"shape{s}" for s in [(), (1,), (N,), (M,), (1, M), (N, 1), (N, M)]} <= used


# -- the examples and the fuzz's findings, minimised, through the same checks ----------

_rng = np.random.default_rng(14)
_A3, _B3, _C32 = (_rng.normal(size=s) for s in [(3, 3), (3, 3), (3, 2)])
_X53, _w3, _y5 = (_rng.normal(size=s) for s in [(5, 3), (3,), (5,)])
EXAMPLES = [
    # a parameter reaching a full reduction through a sum with coefficient 1
    ("max(a + t)", {"a": np.array([1.0, 3.0, 2.0]), "t": 0.0}, ["t"]),
    ("max(sin(a) + t)", {"a": np.array([1.0, 3.0, 2.0]), "t": 0.0}, ["t"]),
    ("max(acos(0.9*(2*sigmoid(X) - 1)) + a)", {"X": np.array([1.0, 3.0, 2.0]),
                                               "a": np.array([0.5])}, ["a"]),
    ("mean(mean(log(exp(X)), keepdims=True))", {"X": np.array([1.0, 3.0, 2.0])}, ["X"]),
    ("max(sin(X) + mean(a))", {"X": np.arange(12.0).reshape(3, 4), "a": np.array([1.0, 2, 3])},
     ["a"]),
    ("sum(matmul(W, Y + b)**2)", {"W": np.ones((3, 2)), "Y": np.ones((2, 3)), "b": 0.5}, ["b"]),
    # a matmul operand of *, / and ** keeps its parentheses, in values and gradients
    ("sum(w*matmul(A, v))", {"A": np.array([[0.0, 1], [1, 0]]), "v": np.array([1.0, 0]),
                             "w": np.array([1.0, 2])}, ["v"]),
    ("sum(matmul(X, Y)/matmul(Z, U))", {"X": _X53[:3, :2], "Y": _C32.T, "Z": _A3 + 3 * np.eye(3),
                                        "U": np.exp(_B3)}, ["X", "U"]),
    ("sum(matmul(A, v)**3)", {"A": _A3, "v": _w3}, ["A", "v"]),
    ("sum(2**tanh(matmul(A, v)))", {"A": _A3, "v": _w3}, ["A", "v"]),
    ("sum(c*matmul(A, 1/U))", {"A": _A3, "U": np.exp(_C32), "c": _C32}, ["c"]),
    ("sum(matmul(tanh(matmul(matmul(B, A), B)), C))", {"A": _A3, "B": _B3, "C": _C32}, ["A"]),
    ("mean(softplus(-y*matmul(X, w)))", {"X": _X53, "w": _w3, "y": _y5}, ["w"]),
    # non-scalar outputs, reduced along an axis or not
    ("sum(X*w, axis=1)", {"X": np.ones((2, 3)), "w": np.ones(3)}, ["w"]),
    ("log_softmax(X, axis=1)", {"X": _X53}, ["X"]),
    ("mean(tan(X), axis=-2)", {"X": np.full((4, 3), 0.5)}, ["X"]),
    ("matmul(b, cos(X))", {"b": np.ones((3, 2)), "X": np.ones((2, 1))}, ["b", "X"]),
    # Piecewise around reductions and matmul: valid models, elementwise in their branches
    ("sum(Piecewise((mean(X, axis=1), sum(g, axis=0) > 0.5), (k, True)))",
     {"X": _X53[:3, :].T.copy(), "g": np.ones((4, 3)), "k": _w3}, ["X", "k"]),
    ("max(Piecewise((sum(a, axis=0), b >= -0.3), (b, True)))",
     {"a": _A3, "b": np.array([1.3])}, ["a"]),
    ("sum(Piecewise((logsumexp(X, axis=1), h > 0), (h, True)))", {"X": _X53, "h": 0.7}, ["X", "h"]),
    ("sum(sinh(Piecewise((sqrt(cosh(a)), a > -0.3), (mean(b, axis=-2), c >= 0.5), (d - a, True))))",
     {"a": np.array([0.1, -0.5, 0.7]), "b": np.ones((4, 3)), "c": np.array([0.9]),
      "d": np.array([0.2])}, ["a"]),
    # SymPy's Min and Max of symgrad's reductions
    ("sum(Min(a, a - max(b, axis=0)))", {"a": np.array([0.1, -0.5, 0.7]),
                                         "b": np.arange(12.0).reshape(4, 3) / 10 - 0.2},
     ["a", "b"]),
    # SymPy's own rewriting: Abs(exp(u)) is exp(re(u)) for a symbol not declared real
    ("sum(Abs(exp(a)))", {"a": _A3}, ["a"]),
    ("Abs(exp(tanh(c)))", {"c": 0.3}, ["c"]),
    ("sum(Abs(2**tanh(c)))", {"c": _w3}, ["c"]),
    ("sum(Piecewise((d, c <= 0), (Abs(3**tanh(d)), True)))", {"c": 0.5, "d": _w3}, ["d"]),
]


@pytest.mark.parametrize(("formula", "inputs", "wrt"), EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_examples_through_every_path(formula, inputs, wrt, tmp_path):
    """The issue's examples and the fuzz's findings: value against NumPy, every gradient shaped
    like its input and equal to finite differences, through the call, source_for and save."""
    model = Model(formula, dict(inputs), list(wrt), "example")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        failures = check(model, tmp_path)
    assert not failures, "\n".join(map(str, failures))
