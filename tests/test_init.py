"""symgrad.init: shapes, reproducibility and the documented scale of every initialiser."""

from __future__ import annotations

import math

import numpy as np
import pytest

from symgrad import init
from symgrad.errors import SymgradError

RANDOM = [init.normal, init.uniform, init.xavier_normal, init.xavier_uniform, init.he_normal,
          init.he_uniform]


@pytest.mark.parametrize("f", RANDOM)
def test_shapes_dtype_and_int_seed_reproducibility(f):
    for shape, expected in [((3, 4), (3, 4)), (5, (5,)), ((), ()), ((2, 3, 4), (2, 3, 4))]:
        a = f(shape, seed=7)
        assert isinstance(a, np.ndarray) and a.shape == expected and a.dtype == np.float64
        np.testing.assert_array_equal(a, f(shape, seed=7))
    assert not np.array_equal(f((3, 4), seed=7), f((3, 4), seed=8))


@pytest.mark.parametrize("f", RANDOM)
def test_a_generator_draws_successive_numbers_reproducibly(f):
    rng = np.random.default_rng(3)
    first, second = f((4, 4), seed=rng), f((4, 4), seed=rng)
    assert not np.array_equal(first, second)
    rng = np.random.default_rng(3)
    np.testing.assert_array_equal(first, f((4, 4), seed=rng))
    np.testing.assert_array_equal(second, f((4, 4), seed=rng))


def test_no_seed_gives_fresh_numbers():
    assert not np.array_equal(init.normal(100), init.normal(100))


def test_zeros():
    np.testing.assert_array_equal(init.zeros((2, 3)), np.zeros((2, 3)))
    assert init.zeros(()).shape == ()


def test_fans_for_x_at_w():
    assert init.fans((13, 10)) == (13, 10)  # (fan_in, fan_out) as in X @ W
    assert init.fans((3, 3, 16, 32)) == (3 * 3 * 16, 3 * 3 * 32)
    assert init.fans(7) == (7, 7)
    assert init.fans(()) == (1, 1)


def std_and_bound(a):
    return float(a.std()), float(np.abs(a).max())


def test_normal_and_uniform_parameters():
    a = init.normal((200_000,), mean=2.0, std=0.5, seed=0)
    assert a.mean() == pytest.approx(2.0, abs=0.01) and a.std() == pytest.approx(0.5, rel=0.01)
    u = init.uniform((200_000,), low=-3.0, high=1.0, seed=0)
    assert u.min() >= -3.0 and u.max() < 1.0
    assert u.mean() == pytest.approx(-1.0, abs=0.02)
    d = init.uniform(1000, seed=0)  # torch's default: U(0, 1)
    assert d.min() >= 0.0 and d.max() < 1.0


@pytest.mark.parametrize("shape", [(300, 500), (64, 1000), (3, 3, 40, 60)])
def test_xavier_scales(shape):
    fan_in, fan_out = init.fans(shape)
    std, _ = std_and_bound(init.xavier_normal(shape, seed=1))
    assert std == pytest.approx(math.sqrt(2 / (fan_in + fan_out)), rel=0.02)
    a = math.sqrt(6 / (fan_in + fan_out))
    std, bound = std_and_bound(init.xavier_uniform(shape, seed=1))
    assert bound <= a and bound == pytest.approx(a, rel=0.01)
    assert std == pytest.approx(a / math.sqrt(3), rel=0.02)  # the std of U(-a, a)
    std, _ = std_and_bound(init.xavier_normal(shape, gain=3.0, seed=1))
    assert std == pytest.approx(3 * math.sqrt(2 / (fan_in + fan_out)), rel=0.02)


@pytest.mark.parametrize("shape", [(300, 500), (1000, 64)])
def test_he_scales(shape):
    fan_in, fan_out = init.fans(shape)
    std, _ = std_and_bound(init.he_normal(shape, seed=2))
    assert std == pytest.approx(math.sqrt(2 / fan_in), rel=0.02)
    std, _ = std_and_bound(init.he_normal(shape, mode="fan_out", seed=2))
    assert std == pytest.approx(math.sqrt(2 / fan_out), rel=0.02)
    _, bound = std_and_bound(init.he_uniform(shape, seed=2))
    assert bound <= math.sqrt(6 / fan_in) and bound == pytest.approx(math.sqrt(6 / fan_in),
                                                                     rel=0.01)
    std, _ = std_and_bound(init.he_normal(shape, gain=init.gain("tanh"), seed=2))
    assert std == pytest.approx(5 / 3 / math.sqrt(fan_in), rel=0.02)


def test_gains_match_torch():
    torch = pytest.importorskip("torch")
    for name in ["linear", "sigmoid", "tanh", "relu", "selu"]:
        assert init.gain(name) == pytest.approx(torch.nn.init.calculate_gain(name))
    assert init.gain("leaky_relu", 0.2) == pytest.approx(
        torch.nn.init.calculate_gain("leaky_relu", 0.2)
    )
    assert init.gain("leaky_relu") == pytest.approx(torch.nn.init.calculate_gain("leaky_relu"))


def test_scales_match_torch_with_the_transposed_layout():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    fan_in, fan_out = 400, 250
    t = torch.empty(fan_out, fan_in, dtype=torch.float64)  # torch.nn.Linear: (out, in)
    ours = {
        "xavier_normal_": init.xavier_normal((fan_in, fan_out), seed=0),
        "kaiming_normal_": init.he_normal((fan_in, fan_out), seed=0),
    }
    torch.nn.init.xavier_normal_(t)
    assert ours["xavier_normal_"].std() == pytest.approx(float(t.std()), rel=0.02)
    torch.nn.init.kaiming_normal_(t, nonlinearity="relu")
    assert ours["kaiming_normal_"].std() == pytest.approx(float(t.std()), rel=0.02)


def test_empty_shapes_are_fine():
    assert init.he_normal((0, 5), seed=0).shape == (0, 5)
    assert init.xavier_uniform((0, 0), seed=0).shape == (0, 0)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: init.zeros((2, -1)), "shape"),
        (lambda: init.normal((2.5,), seed=0), "shape"),
        (lambda: init.normal("ab", seed=0), "shape"),
        (lambda: init.normal(3, std=-1.0, seed=0), "std"),
        (lambda: init.uniform(3, low=1.0, high=0.0, seed=0), "low <= high"),
        (lambda: init.he_normal((3, 3), mode="fan_avg", seed=0), "mode"),
        (lambda: init.xavier_normal((3, 3), gain=-1.0, seed=0), "gain"),
        (lambda: init.gain("swish"), "swish"),
        (lambda: init.normal(3, seed=True), "seed"),
        (lambda: init.normal(3, seed="zero"), "seed"),
        (lambda: init.zeros(None), "shape"),
        (lambda: init.normal(3, std="0.1", seed=0), r"std must be a real number, got '0\.1'"),
        (lambda: init.normal(3, std=None, seed=0), r"std must be a real number, got None"),
        (lambda: init.normal(3, mean=1j, seed=0), r"mean must be a real number, got 1j"),
        (lambda: init.normal(3, mean="0", seed=0), r"mean must be a real number"),
        (lambda: init.uniform(3, low="0", seed=0), r"low must be a real number"),
        (lambda: init.uniform(3, high=1 + 1j, seed=0), r"high must be a real number"),
        (lambda: init.he_normal((3, 3), gain="2", seed=0), r"gain must be a real number"),
        (lambda: init.gain("leaky_relu", "0.2"), r"param must be a real number"),
    ],
)
def test_errors_name_the_culprit(call, match):
    with pytest.raises(SymgradError, match=match):
        call()
