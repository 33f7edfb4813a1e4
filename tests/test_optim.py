"""symgrad.optim: SGD and Adam against their published update rules and torch.optim."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from symgrad.errors import SymgradError
from symgrad.optim import SGD, Adam

# -- a fixed problem: the gradient of a coupled quadratic plus a sine, for arrays and scalars --

RNG = np.random.default_rng(42)
A = RNG.normal(size=(5, 5))
A = A @ A.T / 5 + np.eye(5)
C = RNG.normal(size=5)


def grad_w(w: np.ndarray) -> np.ndarray:
    return A @ w - C + 0.3 * np.cos(w)


def grad_s(s: float) -> float:
    return 2.0 * (s - 1.5) + 0.5 * math.sin(3 * s)


W0 = RNG.normal(size=5)
S0 = -0.7


def run(opt, steps: int = 25) -> list[tuple[np.ndarray, float]]:
    """Trajectory of symgrad's optimizer: params after each step."""
    params = {"w": W0.copy(), "s": S0}
    out = []
    for _ in range(steps):
        params = opt.step(params, {"w": grad_w(params["w"]), "s": grad_s(params["s"])})
        out.append((params["w"].copy(), params["s"]))
    return out


# -- the published formulas, written out here independently -----------------------------------


def sgd_reference(lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0, steps=25):
    """torch.optim.SGD's documented algorithm."""

    def trajectory(p0, grad):
        p, b, out = p0, None, []
        for t in range(1, steps + 1):
            g = grad(p) + weight_decay * p
            if momentum != 0:
                b = g if t == 1 else momentum * b + (1 - dampening) * g
                g = g + momentum * b if nesterov else b
            p = p - lr * g
            out.append(p)
        return out

    return list(zip(trajectory(W0.copy(), grad_w), trajectory(S0, grad_s), strict=True))


def adam_reference(lr, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, steps=25):
    """Kingma & Ba, Algorithm 1 (with ε added to √v̂, as torch.optim.Adam does)."""

    def trajectory(p0, grad):
        p, m, v, out = p0, 0.0, 0.0, []
        for t in range(1, steps + 1):
            g = grad(p) + weight_decay * p
            m = beta1 * m + (1 - beta1) * g
            v = beta2 * v + (1 - beta2) * g**2
            m_hat = m / (1 - beta1**t)
            v_hat = v / (1 - beta2**t)
            p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
            out.append(p)
        return out

    return list(zip(trajectory(W0.copy(), grad_w), trajectory(S0, grad_s), strict=True))


def assert_same(got, expected, rtol=1e-12, atol=1e-13):
    assert len(got) == len(expected)
    for (w, s), (w_ref, s_ref) in zip(got, expected, strict=True):
        np.testing.assert_allclose(w, w_ref, rtol=rtol, atol=atol)
        assert s == pytest.approx(s_ref, rel=rtol, abs=atol)


SGD_CONFIGS = [
    dict(lr=0.1),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, nesterov=True),
    dict(lr=0.05, momentum=0.5, dampening=0.3),
    dict(lr=0.05, momentum=0.9, weight_decay=0.01),
    dict(lr=0.05, weight_decay=0.1),
]
ADAM_CONFIGS = [
    dict(lr=0.1),
    dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6),
    dict(lr=0.05, weight_decay=0.05),
    dict(lr=0.3, betas=(0.0, 0.5)),
]


@pytest.mark.parametrize("config", SGD_CONFIGS)
def test_sgd_matches_the_published_formula(config):
    assert_same(run(SGD(**config)), sgd_reference(**config))


@pytest.mark.parametrize("config", ADAM_CONFIGS)
def test_adam_matches_the_published_formula(config):
    ref = dict(config)
    if "betas" in ref:
        ref["beta1"], ref["beta2"] = ref.pop("betas")
    assert_same(run(Adam(**config)), adam_reference(**ref), rtol=1e-11)


def test_sgd_first_steps_by_hand():
    opt = SGD(lr=0.1, momentum=0.9)
    p = opt.step({"k": 1.0}, {"k": 2.0})  # b = 2, p = 1 - 0.2
    assert p["k"] == pytest.approx(0.8)
    p = opt.step(p, {"k": 1.0})  # b = 0.9*2 + 1 = 2.8, p = 0.8 - 0.28
    assert p["k"] == pytest.approx(0.52)
    assert opt.state["k"]["momentum_buffer"] == pytest.approx(2.8)


def test_adam_first_step_moves_by_lr_times_the_sign():
    opt = Adam(lr=0.01)
    p = opt.step({"w": np.array([3.0, -0.5, 0.0])}, {"w": np.array([100.0, -1e-3, 0.0])})
    np.testing.assert_allclose(p["w"], [3.0 - 0.01, -0.5 + 0.01, 0.0], rtol=1e-6)
    assert opt.state["w"]["step"] == 1


# -- torch.optim trajectories ------------------------------------------------------------------


def torch_run(make, steps=25):
    torch = pytest.importorskip("torch")
    w = torch.tensor(W0.copy(), dtype=torch.float64, requires_grad=True)
    s = torch.tensor(S0, dtype=torch.float64, requires_grad=True)
    opt = make(torch, [w, s])
    out = []
    for _ in range(steps):
        w.grad = torch.from_numpy(grad_w(w.detach().numpy().copy()))
        s.grad = torch.tensor(grad_s(s.item()), dtype=torch.float64)
        opt.step()
        out.append((w.detach().numpy().copy(), s.item()))
    return out


@pytest.mark.parametrize("config", SGD_CONFIGS)
def test_sgd_matches_torch(config):
    expected = torch_run(lambda torch, ps: torch.optim.SGD(ps, **config))
    assert_same(run(SGD(**config)), expected, rtol=1e-12)


@pytest.mark.parametrize("config", ADAM_CONFIGS)
def test_adam_matches_torch(config):
    expected = torch_run(lambda torch, ps: torch.optim.Adam(ps, **config))
    assert_same(run(Adam(**config)), expected, rtol=1e-12)


def test_long_adam_and_nesterov_runs_match_torch():
    for ours, make in [
        (Adam(lr=0.05), lambda torch, ps: torch.optim.Adam(ps, lr=0.05)),
        (
            SGD(lr=0.02, momentum=0.95, nesterov=True),
            lambda torch, ps: torch.optim.SGD(ps, lr=0.02, momentum=0.95, nesterov=True),
        ),
    ]:
        assert_same(run(ours, steps=500), torch_run(make, steps=500), rtol=1e-10, atol=1e-12)


# -- conventions: in place, floats, state -------------------------------------------------------


def test_arrays_are_updated_in_place_and_the_dict_is_returned():
    w = np.array([1.0, 2.0])
    params = {"w": w, "k": 1.0}
    grads = {"w": np.array([1.0, 1.0]), "k": np.float64(1.0)}
    grads_before = {n: np.copy(g) for n, g in grads.items()}
    out = SGD(lr=0.5, momentum=0.9).step(params, grads)
    assert out is params
    assert out["w"] is w
    np.testing.assert_array_equal(w, [0.5, 1.5])
    assert type(out["k"]) is float and out["k"] == 0.5
    for n, g in grads.items():  # gradients untouched
        np.testing.assert_array_equal(g, grads_before[n])


def test_the_momentum_buffer_is_not_the_callers_gradient():
    g = np.array([1.0, 1.0])
    opt = SGD(lr=0.1, momentum=0.9)
    opt.step({"w": np.zeros(2)}, {"w": g})
    opt.step({"w": np.zeros(2)}, {"w": g})
    np.testing.assert_array_equal(g, [1.0, 1.0])


def test_zero_d_arrays_in_place_numpy_scalars_and_ints_replaced():
    z = np.array(1.0)
    params = {"z": z, "n": np.float64(1.0), "i": 2, "ints": np.array([1, 2])}
    grads = {"z": 1.0, "n": 1.0, "i": 1.0, "ints": np.array([1.0, 1.0])}
    out = SGD(lr=0.5).step(params, grads)
    assert out["z"] is z and float(z) == 0.5
    assert type(out["n"]) is float and out["n"] == 0.5
    assert out["i"] == 1.5
    assert out["ints"].dtype == np.float64
    np.testing.assert_array_equal(out["ints"], [0.5, 1.5])


def test_float32_arrays_stay_float32_in_place():
    w = np.ones(3, dtype=np.float32)
    Adam(lr=0.1).step({"w": w}, {"w": np.ones(3)})
    assert w.dtype == np.float32
    np.testing.assert_allclose(w, 0.9, rtol=1e-6)


def test_symbols_as_keys_and_state_by_name():
    k = sp.Symbol("k")
    opt = Adam(lr=0.1)
    params = opt.step({k: 1.0}, {"k": 1.0})
    assert list(params) == [k] and params[k] == pytest.approx(0.9)
    assert set(opt.state) == {"k"}
    opt.step({"k": 0.9}, {k: 1.0})  # the same parameter, by name this time
    assert opt.state["k"]["step"] == 2


def test_a_parameter_without_gradient_is_left_alone():
    params = {"a": 1.0, "b": 2.0}
    SGD(lr=0.1).step(params, {"a": 1.0})
    SGD(lr=0.1).step(params, {"b": None})
    assert params == {"a": 0.9, "b": 2.0}


def test_immutable_mapping_gives_a_new_dict():
    from types import MappingProxyType

    out = SGD(lr=0.1).step(MappingProxyType({"a": 1.0}), {"a": 1.0})
    assert out == {"a": 0.9}


def test_reset_forgets_the_state():
    opt = SGD(lr=0.1, momentum=0.9)
    opt.step({"w": np.zeros(2)}, {"w": np.ones(2)})
    opt.reset()
    assert opt.state == {}
    opt.step({"w": np.zeros(3)}, {"w": np.ones(3)})  # a new shape is fine after reset


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=12),
    st.sampled_from(["sgd", "momentum", "nesterov", "adam"]),
)
def test_scalar_and_array_paths_agree(gradients, kind):
    make = {
        "sgd": lambda: SGD(lr=0.01),
        "momentum": lambda: SGD(lr=0.01, momentum=0.9),
        "nesterov": lambda: SGD(lr=0.01, momentum=0.9, nesterov=True),
        "adam": lambda: Adam(lr=0.01),
    }[kind]
    scalar, array = make(), make()
    ps, pa = {"p": 0.25}, {"p": np.array([0.25])}
    for g in gradients:
        scalar.step(ps, {"p": g})
        array.step(pa, {"p": np.array([g])})
        assert ps["p"] == pytest.approx(float(pa["p"][0]), rel=1e-12, abs=1e-12)


def test_repr():
    assert repr(SGD(lr=0.1, momentum=0.9)) == "SGD(lr=0.1, momentum=0.9, nesterov=False)"
    assert repr(Adam()) == "Adam(lr=0.001, betas=(0.9, 0.999), eps=1e-08)"


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "culprit"),
    [
        (lambda: SGD(lr=0), "lr"),
        (lambda: SGD(lr=-0.1), "lr"),
        (lambda: SGD(lr=float("nan")), "lr"),
        (lambda: SGD(lr="0.1"), "lr"),
        (lambda: SGD(lr=0.1, momentum=-0.5), "momentum"),
        (lambda: SGD(lr=0.1, nesterov=True), "nesterov"),
        (lambda: SGD(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "dampening"),
        (lambda: Adam(lr=0), "lr"),
        (lambda: Adam(betas=(1.0, 0.999)), "betas[0]"),
        (lambda: Adam(betas=(0.9, -0.1)), "betas[1]"),
        (lambda: Adam(betas=(0.9,)), "betas"),
        (lambda: Adam(eps=-1e-8), "eps"),
        (lambda: Adam(weight_decay=-1), "weight_decay"),
    ],
)
def test_bad_hyperparameters(make, culprit):
    with pytest.raises(SymgradError, match=culprit.replace("[", r"\[").replace("]", r"\]")):
        make()


def test_gradient_for_an_unknown_parameter_changes_nothing():
    w = np.array([1.0, 2.0])
    params = {"w": w, "k": 1.0}
    opt = SGD(lr=0.1, momentum=0.9)
    with pytest.raises(SymgradError, match=r"unknown parameter 'bias'.*'w', 'k'"):
        opt.step(params, {"w": np.ones(2), "k": 1.0, "bias": 1.0})
    np.testing.assert_array_equal(w, [1.0, 2.0])
    assert params["k"] == 1.0 and opt.state == {}


def test_shape_mismatch_names_the_parameter_and_changes_nothing():
    w = np.array([1.0, 2.0])
    params = {"a": 1.0, "w": w}
    with pytest.raises(SymgradError, match=r"'w'.*\(3,\).*\(2,\)"):
        SGD(lr=0.1).step(params, {"a": 1.0, "w": np.ones(3)})
    assert params["a"] == 1.0
    with pytest.raises(SymgradError, match=r"'a'.*\(2,\).*scalar"):
        SGD(lr=0.1).step(params, {"a": np.ones(2)})


def test_a_parameter_that_changes_shape_between_steps():
    opt = Adam()
    opt.step({"w": np.zeros(2)}, {"w": np.ones(2)})
    with pytest.raises(SymgradError, match=r"'w'.*reset\(\)"):
        opt.step({"w": np.zeros(3)}, {"w": np.ones(3)})


def test_malformed_inputs():
    with pytest.raises(SymgradError, match="params must be a dict"):
        SGD(lr=0.1).step([1.0], {"a": 1.0})
    with pytest.raises(SymgradError, match="grads must be a dict"):
        SGD(lr=0.1).step({"a": 1.0}, [1.0])
    with pytest.raises(SymgradError, match="parameter 'a' is not a number"):
        SGD(lr=0.1).step({"a": "x"}, {"a": 1.0})
    with pytest.raises(SymgradError, match="gradient 'a' is not a number"):
        SGD(lr=0.1).step({"a": np.ones(2)}, {"a": "x"})
    with pytest.raises(SymgradError, match="'k' appears twice"):
        SGD(lr=0.1).step({"k": 1.0, sp.Symbol("k"): 2.0}, {"k": 1.0})


# values that are not real numbers: None, text, complex, symbols, objects
NOT_REAL = [
    pytest.param(None, r"it is None", id="None"),
    pytest.param("1.5", r"text '1.5'", id="text"),
    pytest.param(np.array(["1", "2"]), r"holds text", id="text-array"),
    pytest.param(1.0 + 2.0j, r"complex", id="complex"),
    pytest.param(np.array([1.0 + 0.0j, 2.0]), r"complex", id="complex-array"),
    pytest.param(np.array([1.0, None], dtype=object), r"holds None at index 1", id="object-None"),
    pytest.param([sp.Symbol("k"), 1.0], r"holds k \(a Symbol\) at index 0", id="symbols"),
    pytest.param([[1.0, 2.0], [3.0]], r"ValueError", id="ragged"),
]


@pytest.mark.parametrize(("value", "reason"), NOT_REAL)
def test_a_parameter_that_is_not_real_numbers_is_named_and_changes_nothing(value, reason):
    opt = SGD(lr=0.1, momentum=0.9)
    params = {"ok": 1.0, "w": value}
    with pytest.raises(SymgradError, match=rf"parameter 'w' is not a number.*{reason}"):
        opt.step(params, {"ok": 1.0, "w": np.ones(2)})
    assert params["ok"] == 1.0 and opt.state == {}


@pytest.mark.parametrize(("value", "reason"), NOT_REAL[1:])  # a None gradient means "skip"
def test_a_gradient_that_is_not_real_numbers_is_named_and_changes_nothing(value, reason):
    opt = Adam(lr=0.1)
    w = np.array([1.0, 2.0])
    for params in ({"w": w}, {"w": 1.0}):
        with pytest.raises(SymgradError, match=rf"gradient 'w' is not a number.*{reason}"):
            opt.step(params, {"w": value})
    np.testing.assert_array_equal(w, [1.0, 2.0])
    assert opt.state == {}


def test_real_numbers_of_other_types_are_accepted():
    params = {"a": np.array([1, 2]), "b": np.array([1.0, 2.0], dtype=object), "c": sp.Float(1)}
    SGD(lr=0.5).step(params, {"a": [1, 1], "b": np.ones(2), "c": sp.Rational(1, 2)})
    np.testing.assert_array_equal(params["a"], [0.5, 1.5])
    np.testing.assert_array_equal(params["b"], [0.5, 1.5])
    assert params["c"] == 0.75


@pytest.mark.parametrize(
    ("make", "setting", "bad"),
    [
        (lambda: SGD(lr=0.1), "lr", -0.1),
        (lambda: SGD(lr=0.1), "lr", 0),
        (lambda: SGD(lr=0.1), "lr", "0.01"),
        (lambda: SGD(lr=0.1), "lr", None),
        (lambda: SGD(lr=0.1, momentum=0.9), "momentum", -0.9),
        (lambda: Adam(), "lr", float("inf")),
        (lambda: Adam(), "betas", (0.9, 1.0)),
        (lambda: Adam(), "eps", -1.0),
        (lambda: Adam(), "weight_decay", "a lot"),
    ],
)
def test_a_setting_changed_between_steps_is_checked(make, setting, bad):
    opt = make()
    before = getattr(opt, setting)
    with pytest.raises(SymgradError, match=setting):
        setattr(opt, setting, bad)
    assert getattr(opt, setting) == before


def test_a_learning_rate_schedule_takes_effect():
    opt = SGD(lr=0.1)
    params = opt.step({"k": 1.0}, {"k": 1.0})
    opt.lr = 0.01
    params = opt.step(params, {"k": 1.0})
    assert opt.lr == 0.01 and params["k"] == pytest.approx(1.0 - 0.1 - 0.01, abs=1e-15)
