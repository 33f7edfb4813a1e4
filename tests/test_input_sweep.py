"""Every public entry point given each kind of bad value raises a SymgradError that names the
culprit, never another exception type; values symgrad cannot take faithfully are refused, not
reinterpreted. (fit and objective: test_training_inputs.py; the command: test_cli.py.)"""

from __future__ import annotations

import decimal
import fractions
import pickle
import warnings

import numpy as np
import pytest
import sympy as sp

import symgrad

x, y, k, b = sp.symbols("x y k b")
X, W, Y = sp.symbols("X W Y")

GOOD = {"x": np.array([1.0, 2.0, 3.0]), "y": np.array([3.0, 5.0, 7.0]), "k": 1.0, "b": 0.0}


@pytest.fixture(scope="module")
def model():
    return symgrad.compile(symgrad.mean((k * x + b - y) ** 2), wrt=[k, b])


class Unreadable:
    """An array-like whose library refuses to hand NumPy its data (as a torch tensor that
    requires grad does)."""

    def __array__(self, dtype=None, copy=None):
        raise RuntimeError("Can't call numpy() on Tensor that requires grad")


#: (bad value, a word the message must contain besides the input's name)
BAD_VALUES = [
    (None, "None"),
    ("abc", "text"),
    ("1.5", "text"),
    (np.array(["1", "2", "3"]), "text"),
    (np.array([1 + 2j, 2, 3]), "complex"),
    (1 + 0j, "complex"),
    ([1.0, None, 3.0], "not all numbers"),
    (np.array([1.0, None, 3.0], dtype=object), "not all numbers"),
    ([x, y, k], "not all numbers"),
    ({"a": 1}, "dict"),
    (object(), "not all numbers"),
    (np.array(["2020-01-01"], dtype="datetime64[D]"), "dates"),
    (Unreadable(), "cannot be read"),
]


@pytest.mark.parametrize(("value", "word"), BAD_VALUES, ids=lambda v: type(v).__name__)
@pytest.mark.parametrize("entry", ["__call__", "value_and_grad", "grad", "source_for"])
def test_a_bad_input_value_is_named(model, entry, value, word):
    with pytest.raises(symgrad.SymgradError, match=r"input 'x'") as info:
        getattr(model, entry)(**{**GOOD, "x": value})
    assert word in str(info.value)


def test_missing_values_are_refused(model):
    """pandas NA and masked elements: NumPy would read them as NaN or as the hidden value."""
    pd = pytest.importorskip("pandas")
    for missing in (pd.array([1.0, pd.NA, 3.0], dtype="Float64"),
                    pd.Series([1, None, 3], dtype="Int64"),
                    pd.Series([1.0, None, 3.0], dtype=object),
                    np.ma.masked_array([1.0, 2.0, 3.0], mask=[False, True, False])):
        with pytest.raises(symgrad.SymgradError, match="input 'x'"):
            model(**{**GOOD, "x": missing})
        with pytest.raises(symgrad.SymgradError, match="data 'x'"):
            symgrad.fit(model, {"k": 1.0, "b": 0.0}, {"x": missing, "y": GOOD["y"]},
                        symgrad.optim.SGD(lr=0.1), steps=1, progress=False)
        with pytest.raises(symgrad.SymgradError, match="data 'x'"):
            model.objective({"x": missing, "y": GOOD["y"]}, {"k": 1.0, "b": 0.0})
    expected = model(**GOOD)
    for full in (pd.Series([1.0, 2.0, 3.0]), pd.array([1, 2, 3], dtype="Int64"),
                 np.ma.masked_array([1.0, 2.0, 3.0])):
        assert model(**{**GOOD, "x": full}) == expected
        fun, x0, _ = model.objective({"x": full, "y": GOOD["y"]}, {"k": 1.0, "b": 0.0})
        assert fun(x0)[0] == expected


@pytest.mark.parametrize("value", [[decimal.Decimal(1), 2.0, 3.0], [sp.pi, 2, sp.Rational(3)]],
                         ids=str)
def test_fit_and_the_call_take_the_same_numbers(model, value):
    expected = model(**{**GOOD, "x": value})
    fun, x0, _ = model.objective({"x": value, "y": GOOD["y"]}, {"k": 1.0, "b": 0.0})
    assert fun(x0)[0] == expected


@pytest.mark.parametrize("value", [sp.pi, sp.sqrt(2), sp.E, [sp.pi, 1, sp.Rational(1, 3)]],
                         ids=str)
def test_sympy_real_numbers_are_taken(model, value):
    assert model(**{**GOOD, "k": 1.0, "b": value, "x": np.ones(3)}) == pytest.approx(
        np.mean((1 + np.asarray(value, dtype=float) - GOOD["y"]) ** 2), rel=1e-15)


@pytest.mark.parametrize(("value", "word"), [(sp.I, "not a real number"),
                                             (10**400, "float64"), ([1, 10**400, 3], "float64"),
                                             ({"a": 1.0}, "dict")], ids=str)
def test_numbers_float64_cannot_hold_are_refused(model, value, word):
    with pytest.raises(symgrad.SymgradError, match=rf"input 'x'.*{word}"):
        model(**{**GOOD, "x": value})


def test_a_torch_tensor_that_requires_grad_is_refused_with_the_fix(model):
    torch = pytest.importorskip("torch")
    t = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64, requires_grad=True)
    with pytest.raises(symgrad.SymgradError, match=r"input 'x'.*detach"):
        model(**{**GOOD, "x": t})
    assert model(**{**GOOD, "x": t.detach()}) == model(**GOOD)


@pytest.mark.parametrize(
    "value",
    [[1, 2, 3], np.array([1, 2, 3]), [True, False, True], np.array([1, 2, 3], dtype=np.float32),
     [fractions.Fraction(1), 2, 3], [sp.Integer(1), sp.Float(2), sp.Rational(3)],
     [decimal.Decimal(1), 2.0, 3.0], (1.0, 2.0, 3.0)],
    ids=lambda v: type(v).__name__,
)
def test_real_numbers_of_any_kind_are_taken_exactly(model, value):
    expected = model(**{**GOOD, "x": np.array([float(v) for v in np.asarray(value, object)])})
    assert model(**{**GOOD, "x": value}) == expected


def test_the_same_input_given_twice_is_an_error(model):
    with pytest.raises(symgrad.SymgradError, match="'x' is given twice in the mapping"):
        model({x: GOOD["x"], "x": GOOD["x"] + 1, "y": GOOD["y"], "k": 1.0, "b": 0.0})
    with pytest.raises(symgrad.SymgradError, match="'k' is given twice"):
        model.value_and_grad({**GOOD}, k=2.0)


@pytest.mark.parametrize("entry", ["__call__", "value_and_grad", "grad", "source_for"])
def test_missing_unknown_and_misplaced_inputs_are_named(model, entry):
    call = getattr(model, entry)
    with pytest.raises(symgrad.SymgradError, match="missing input 'b'"):
        call(**{n: v for n, v in GOOD.items() if n != "b"})
    with pytest.raises(symgrad.SymgradError, match="unknown input 'z'"):
        call(**GOOD, z=1.0)
    with pytest.raises(symgrad.SymgradError, match="by name"):
        call(GOOD["x"], GOOD["y"])
    with pytest.raises(symgrad.SymgradError, match="input key 3"):
        call({**GOOD, 3: 1.0})


@pytest.mark.parametrize("entry", ["__call__", "value_and_grad", "source_for"])
def test_a_wrong_shape_names_the_equation_and_the_shapes(model, entry):
    shapes = r"(\(4,\) and \(3,\)|\(3,\) and \(4,\))"  # (in the order the operation has them)
    with pytest.raises(symgrad.SymgradError, match=r"f = mean.*" + shapes) as info:
        getattr(model, entry)(**{**GOOD, "y": np.ones(4)})
    assert "x (3,), y (4,)" in str(info.value)  # which input has which shape


def test_an_input_named_self_can_be_passed_by_keyword():
    s = sp.Symbol("self")
    model = symgrad.compile(symgrad.sum(s * x**2))
    value, grads = model.value_and_grad(self=0.5, x=np.array([1.0, 2.0]))
    assert value == 2.5 and grads["self"] == 5.0
    assert model(self=2.0, x=np.array([1.0])) == 2.0
    assert "def forward(*, self, x)" in model.source_for(self=1.0, x=np.ones(2))


# -- compile ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"wrt": [sp.Symbol("kk"), b]}, "wrt: kk is not a symbol of the model"),
        ({"wrt": "zeta"}, "wrt: zeta is not a symbol of the model"),
        ({"wrt": [x**2]}, r"wrt: x\*\*2 is not a symbol"),
        ({"wrt": [1]}, "wrt: 1 is not a symbol"),
        ({"wrt": [None]}, "wrt: None is not a symbol"),
        ({"wrt": 2 * k}, "wrt: 2\\*k is not a list of symbols"),
        ({"wrt": 5}, "wrt: 5 is not a list of symbols"),
        ({"wrt": [k, "k"]}, "wrt: k is listed twice"),
        ({"shapes": {"x": "abc"}}, "shapes: x: 'abc' is not a shape"),
        ({"shapes": {"x": (1.5,)}}, r"shapes: x: \(1.5,\) is not a shape"),
        ({"shapes": {"x": (-1,)}}, r"shapes: x: \(-1,\) is not a shape"),
        ({"shapes": {"x": (True,)}}, r"shapes: x: \(True,\) is not a shape"),
        ({"shapes": {"x": 3}}, "shapes: x: 3 is not a shape"),
        ({"shapes": {"x": None}}, "shapes: x: None is not a shape"),
        ({"shapes": {"q": (3,)}}, "shapes: q is not a symbol of the model"),
        ({"shapes": [(x, (3,))]}, "shapes"),
        ({"broadcast": "sometimes"}, "broadcast='sometimes'"),
        ({"output": "nothing"}, "nothing"),
        ({"name": 3}, "name"),
    ],
)
def test_bad_compile_arguments_are_named(kwargs, match):
    with pytest.raises(symgrad.SymgradError, match=match):
        symgrad.compile(symgrad.mean((k * x + b - y) ** 2), **kwargs)


@pytest.mark.parametrize(
    ("model", "match"),
    [
        (None, "None"),
        ("", "not a SymPy expression"),
        ([x, y], "equation"),
        ({x: "k*"}, "k\\*"),
        (sp.Matrix([x, y]), "Matrix"),
        (sp.sin, "sin"),
    ],
    ids=["None", "empty string", "list of symbols", "bad text", "Matrix", "a function"],
)
def test_bad_models_are_named(model, match):
    with pytest.raises(symgrad.SymgradError, match=match):
        symgrad.compile(model)


def test_a_wrt_symbol_in_the_model_that_the_output_ignores_gets_a_zero_gradient():
    u, f = sp.symbols("u f")
    model = symgrad.compile([(u, b * 2), (f, symgrad.sum(k * x))], output=f, wrt=[k, b])
    grads = model.grad(k=1.0, x=np.ones(3), b=np.ones(2))
    np.testing.assert_array_equal(grads["b"], np.zeros(2))
    assert model.chain(b) == "0"


def test_save_refuses_a_path_it_cannot_write(model, tmp_path):
    with pytest.raises(symgrad.SymgradError, match="missing"):
        model.save(tmp_path / "missing" / "model.py")
    with pytest.raises(symgrad.SymgradError, match="directory"):
        model.save(tmp_path)
    with pytest.raises(symgrad.SymgradError, match="path"):
        model.save(None)


# -- broadcasting into an outer product ---------------------------------------------------------


def mlp(**options):
    L1, H, L2, Loss, b1, W2, b2 = sp.symbols("L1 H L2 Loss b1 W2 b2")
    return symgrad.compile(
        [sp.Eq(L1, symgrad.matmul(X, W) + b1), sp.Eq(H, symgrad.sigmoid(L1)),
         sp.Eq(L2, symgrad.matmul(H, W2) + b2), sp.Eq(Loss, symgrad.mean((L2 - Y) ** 2))],
        **options,
    )


def mlp_inputs(n: int, y_shape):
    rng = np.random.default_rng(0)
    return {"X": rng.normal(size=(n, 12)), "W": rng.normal(size=(12, 8)), "b1": np.zeros(8),
            "W2": rng.normal(size=(8, 1)), "b2": np.zeros(1), "Y": rng.normal(size=y_shape)}


def test_an_outer_product_broadcast_warns_once_per_shape_pattern_naming_equation_and_shapes():
    model = mlp()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.value_and_grad(**mlp_inputs(20, (20,)))
        model(**mlp_inputs(30, (30,)))  # the same pattern: no second warning
        model.value_and_grad(**mlp_inputs(20, (20, 1)))  # right: no warning
    assert [type(w.message) for w in caught] == [symgrad.SymgradWarning]
    text = str(caught[0].message)
    assert "Loss = mean((L2 - Y)**2)" in text and "(20, 1)" in text and "(20,)" in text
    assert "(20, 20)" in text and "broadcast='allow'" in text
    assert caught[0].filename == __file__  # points at the user's call


def test_broadcast_error_and_allow():
    with pytest.raises(symgrad.SymgradError, match=r"Loss = .*\(20, 1\).*\(20,\)"):
        mlp(broadcast="error").value_and_grad(**mlp_inputs(20, (20,)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = mlp(broadcast="allow")(**mlp_inputs(20, (20,)))
    inputs = mlp_inputs(20, (20,))
    hidden = 1 / (1 + np.exp(-(inputs["X"] @ inputs["W"] + inputs["b1"])))
    expected = np.mean((hidden @ inputs["W2"] + inputs["b2"] - inputs["Y"]) ** 2)
    assert value == pytest.approx(expected, rel=1e-12)  # (20, 20), as NumPy does


@pytest.mark.parametrize(
    ("shapes", "warns"),
    [({"x": (5,), "k": ()}, False), ({"x": (5,), "k": (5,)}, False),
     ({"x": (4, 5), "k": (5,)}, False), ({"x": (4, 1), "k": (1, 5)}, True),
     ({"x": (5, 1), "k": (5,)}, True), ({"x": (1, 5), "k": (5,)}, False),
     ({"x": (2, 1, 3), "k": (4, 1)}, True), ({"x": (1,), "k": (1, 1)}, False)],
)
def test_which_broadcasts_warn(shapes, warns):
    model = symgrad.compile(symgrad.sum(k * x))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model(**{n: np.ones(s) for n, s in shapes.items()})
    assert bool(caught) == warns
    assert all(type(w.message) is symgrad.SymgradWarning for w in caught)


def test_a_model_that_warned_still_pickles():
    model = symgrad.compile(symgrad.sum(k * x))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model(x=np.ones((3, 1)), k=np.ones(3))
    copy = pickle.loads(pickle.dumps(model))
    assert copy(x=np.ones(3), k=np.ones(3)) == 3.0


# -- the public names -------------------------------------------------------------------------


def test_star_import_does_not_shadow_builtins():
    namespace: dict = {}
    exec("from symgrad import *", namespace)
    for name in ("compile", "sum", "max", "min", "abs", "pow"):
        assert name not in namespace, name
    assert "SymgradError" in namespace and "SymgradWarning" in namespace


@pytest.mark.parametrize("axis", [(0, -2), (1, -1), (-1, 1)])
def test_axes_that_name_one_axis_twice_are_an_error_at_the_call(axis):
    model = symgrad.compile(symgrad.sum(x, axis=axis))
    with pytest.raises(symgrad.SymgradError, match="the same axis twice"):
        model(x=np.ones((2, 3)))


def test_equations_in_any_order_end_in_the_equation_no_other_reads():
    loss, l1 = sp.symbols("Loss L1")
    model = symgrad.compile({loss: symgrad.mean((l1 - y) ** 2), l1: k * x + b})
    assert model.output == "Loss"
    assert model(**GOOD) == pytest.approx(np.mean((GOOD["x"] - GOOD["y"]) ** 2))
    with pytest.raises(symgrad.SymgradError, match="pass output="):
        symgrad.compile({loss: symgrad.mean((l1 - y) ** 2), sp.Symbol("u"): 2 * k, l1: k * x})


def test_render_refuses_a_path_it_cannot_write(model, tmp_path):
    for path in (tmp_path / "missing" / "m.svg", tmp_path / "missing" / "m.dot"):
        with pytest.raises(symgrad.SymgradError, match="cannot write"):
            model.render(path)
    with pytest.raises(symgrad.SymgradError, match="not a path"):
        model.render(3)


@pytest.mark.parametrize(
    "call",
    [lambda m, p: m(**p), lambda m, p: m.grad(**p), lambda m, p: m.source_for(**p),
     lambda m, p: symgrad.fit(m, {"k": p["k"]}, {"x": p["x"]}, symgrad.optim.SGD(lr=0.01),
                              steps=1, progress=False),
     lambda m, p: m.objective({"x": p["x"]}, {"k": p["k"]})[0](np.ones(3))],
    ids=["call", "grad", "source_for", "fit", "objective"],
)
def test_the_broadcast_warning_points_at_the_users_line(call):
    m = symgrad.compile(symgrad.sum(k * x), wrt=[k])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call(m, {"x": np.ones((4, 1)), "k": np.ones(3)})
    assert [w.filename for w in caught] == [__file__]
    with pytest.raises(symgrad.SymgradError, match="broadcast"):
        call(symgrad.compile(symgrad.sum(k * x), wrt=[k], broadcast="error"),
             {"x": np.ones((4, 1)), "k": np.ones(3)})
