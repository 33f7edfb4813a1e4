"""symgrad.training: fit (full and mini-batch, divergence, progress) and the SciPy bridge."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import symgrad
from symgrad import init
from symgrad.errors import SymgradError
from symgrad.optim import SGD, Adam
from symgrad.training import History, TrainingDiverged, fit, objective

ROOT = Path(__file__).parents[1]
BOSTON = ROOT / "examples" / "data" / "boston.csv"

# np.polyfit(rm, medv, 1) and the mean squared error of that line
K_OPT, B_OPT, MSE_OPT = 9.10211, -34.67062, 43.60055

x, y, k, b = sp.symbols("x y k b")


@pytest.fixture(scope="module")
def boston_xy() -> dict[str, np.ndarray]:
    with open(BOSTON, encoding="utf-8") as f:
        header = [h.strip('"') for h in f.readline().strip().split(",")]
    table = np.loadtxt(BOSTON, delimiter=",", skiprows=1,
                       converters={0: lambda s: float(s.strip('"'))})
    columns = {name: table[:, i] for i, name in enumerate(header)}
    return {"x": columns["rm"], "y": columns["medv"]}


@pytest.fixture(scope="module")
def linear() -> symgrad.CompiledModel:
    return symgrad.compile(symgrad.mean((k * x + b - y) ** 2), wrt=[k, b])


def test_the_data_and_the_reference_optimum(boston_xy):
    assert boston_xy["x"].shape == (506,)
    slope, intercept = np.polyfit(boston_xy["x"], boston_xy["y"], 1)
    mse = np.mean((slope * boston_xy["x"] + intercept - boston_xy["y"]) ** 2)
    assert (slope, intercept, mse) == pytest.approx((K_OPT, B_OPT, MSE_OPT), abs=1e-5)


# -- fit: full batch ------------------------------------------------------------------------------


def test_fit_reduces_the_boston_loss_to_the_optimum(linear, boston_xy):
    h = fit(linear, {"k": 0.0, "b": 0.0}, boston_xy, SGD(lr=0.01, momentum=0.9), steps=8000)
    assert isinstance(h, History)
    assert len(h.losses) == h.steps == 8000
    assert all(type(v) is float for v in h.losses)
    assert h.losses[0] == pytest.approx(np.mean(boston_xy["y"] ** 2))
    assert h.losses[-1] < h.losses[0] / 10
    assert h.losses[-1] == pytest.approx(MSE_OPT, rel=1e-6)
    assert h.params["k"] == pytest.approx(K_OPT, abs=1e-3)
    assert h.params["b"] == pytest.approx(B_OPT, abs=1e-2)
    assert 0 < h.seconds < 120  # a generous sanity limit, not a benchmark
    assert h.epochs == 8000 and not h.stopped_early
    assert "8000 steps" in repr(h)


def test_fit_with_adam_reduces_the_loss(linear, boston_xy):
    h = fit(linear, {k: 1.0, b: 0.0}, {x: boston_xy["x"], y: boston_xy["y"]}, Adam(lr=0.5),
            steps=500)
    assert h.losses[-1] < 0.25 * h.losses[0]
    assert set(h.params) == {"k", "b"}


def test_fit_matches_a_torch_training_loop(linear, boston_xy):
    torch = pytest.importorskip("torch")
    steps = 300
    h = fit(linear, {"k": 0.5, "b": -1.0}, boston_xy, SGD(lr=0.01, momentum=0.9, nesterov=True),
            steps=steps)
    X, Y = (torch.tensor(boston_xy[n], dtype=torch.float64) for n in ("x", "y"))
    kt = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    bt = torch.tensor(-1.0, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([kt, bt], lr=0.01, momentum=0.9, nesterov=True)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.mean((kt * X + bt - Y) ** 2)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    np.testing.assert_allclose(h.losses, losses, rtol=1e-10)
    assert h.params["k"] == pytest.approx(kt.item(), rel=1e-10)
    assert h.params["b"] == pytest.approx(bt.item(), rel=1e-10)


def test_the_callers_parameters_are_copied_not_modified(linear, boston_xy):
    k0, b0 = np.array([0.0]), np.array(0.0)
    params = {"k": k0, "b": b0}
    h = fit(linear, params, boston_xy, SGD(lr=0.01), steps=20)
    assert params["k"] is k0 and float(k0[0]) == 0.0 and float(b0) == 0.0
    assert h.params["k"] is not k0 and h.params["k"].shape == (1,)
    assert h.params["k"][0] != 0.0


def test_a_wrt_parameter_given_in_data_is_held_fixed(linear, boston_xy):
    h = fit(linear, {"k": 0.0}, {**boston_xy, "b": -30.0}, SGD(lr=0.01), steps=200)
    assert set(h.params) == {"k"}
    # the best slope with b fixed at −30 is sum(x(y + 30)) / sum(x²)
    best = np.sum(boston_xy["x"] * (boston_xy["y"] + 30)) / np.sum(boston_xy["x"] ** 2)
    assert h.params["k"] == pytest.approx(best, rel=1e-6)


def test_the_optimizer_keeps_its_state_across_fits(linear, boston_xy):
    opt = Adam(lr=0.1)
    h = fit(linear, {"k": 0.0, "b": 0.0}, boston_xy, opt, steps=30)
    fit(linear, h.params, boston_xy, opt, steps=20)
    assert opt.state["k"]["step"] == 50


def test_any_object_with_a_step_method_is_an_optimizer(linear, boston_xy):
    class HalfStep:
        def step(self, params, grads):  # returns a new dict, modifies nothing
            return {n: p - 0.005 * grads[n] for n, p in params.items()}

    h = fit(linear, {"k": 0.0, "b": 0.0}, boston_xy, HalfStep(), steps=50)
    assert h.losses[-1] < h.losses[0]

    class InPlace:
        def step(self, params, grads):  # updates the dict, returns nothing
            for n, g in grads.items():
                params[n] = params[n] - 0.005 * g

    h = fit(linear, {"k": 0.0, "b": 0.0}, boston_xy, InPlace(), steps=50)
    assert h.losses[-1] < h.losses[0]


# -- epochs, steps and mini-batches ---------------------------------------------------------------

w, v = sp.symbols("w v")


@pytest.fixture(scope="module")
def probe() -> symgrad.CompiledModel:
    """loss = w·sum(v): with SGD(lr=1) each step subtracts its batch's sum of v from w."""
    return symgrad.compile(w * symgrad.sum(v), wrt=[w])


def batch_sums(history: History, w0: float = 0.0) -> list[float]:
    """Recover each step's sum(v) from the losses: loss_i = w_i·s_i and w_(i+1) = w_i − s_i."""
    sums, wi = [], w0
    for loss in history.losses:
        s = loss / wi if wi else None
        sums.append(s)
        if s is None:
            return sums
        wi -= s
    return sums


def test_epochs_and_steps(probe):
    data = {"v": np.arange(20.0)}
    h = fit(probe, {"w": 1.0}, data, SGD(lr=1.0), epochs=3)  # full batch: one step an epoch
    assert h.steps == 3 and h.epochs == 3
    h = fit(probe, {"w": 1.0}, data, SGD(lr=1.0), epochs=2, batch_size=7)  # 7 + 7 + 6
    assert h.steps == 6 and h.epochs == 2
    assert h.params["w"] == pytest.approx(1.0 - 2 * 190.0)  # every row once per epoch
    h = fit(probe, {"w": 1.0}, data, SGD(lr=1.0), steps=4, batch_size=7)
    assert h.steps == 4 and h.epochs == pytest.approx(4 / 3)
    h = fit(probe, {"w": 1.0}, data, SGD(lr=1.0), epochs=2, batch_size=20)  # one batch
    assert h.steps == 2 and h.params["w"] == pytest.approx(1.0 - 2 * 190.0)


def test_unshuffled_batches_are_consecutive_rows(probe):
    h = fit(probe, {"w": 1.0}, {"v": np.arange(20.0)}, SGD(lr=1.0), epochs=2, batch_size=7,
            shuffle=False)
    expected = [sum(range(0, 7)), sum(range(7, 14)), sum(range(14, 20))] * 2
    assert batch_sums(h, 1.0) == pytest.approx(expected)


def test_shuffled_batches_follow_the_seed(probe):
    """Each epoch takes a permutation from default_rng(seed), then consecutive batches."""
    data = {"v": np.arange(20.0)}
    h = fit(probe, {"w": 1.0}, data, SGD(lr=1.0), epochs=2, batch_size=7, seed=5)
    rng, expected = np.random.default_rng(5), []
    for _ in range(2):
        order = rng.permutation(20)
        expected += [float(order[i : i + 7].sum()) for i in range(0, 20, 7)]
    assert batch_sums(h, 1.0) == pytest.approx(expected)


def test_mini_batch_runs_are_deterministic_for_a_seed(linear, boston_xy):
    def run(seed):
        return fit(linear, {"k": 0.0, "b": 0.0}, boston_xy, Adam(lr=0.1), epochs=3,
                   batch_size=32, seed=seed)

    first, again, other = run(0), run(0), run(1)
    assert first.steps == 3 * 16
    assert first.losses == again.losses and first.params == again.params
    assert first.losses != other.losses and first.params != other.params
    from_generator = fit(linear, {"k": 0.0, "b": 0.0}, boston_xy, Adam(lr=0.1), epochs=3,
                         batch_size=32, seed=np.random.default_rng(0))
    assert from_generator.losses == first.losses


def test_without_shuffle_the_seed_does_not_matter(linear, boston_xy):
    runs = [fit(linear, {"k": 0.0, "b": 0.0}, boston_xy, SGD(lr=0.01), epochs=2, batch_size=50,
                shuffle=False, seed=s) for s in (0, 1)]
    assert runs[0].losses == runs[1].losses


def test_zero_d_data_are_constants_in_every_batch(linear, boston_xy):
    h = fit(linear, {"k": 0.0}, {**boston_xy, "b": np.float64(-30.0)}, SGD(lr=0.01), epochs=2,
            batch_size=100)
    assert h.steps == 12


def test_mini_batches_need_arrays_of_one_length(linear, boston_xy):
    with pytest.raises(SymgradError, match=r"first axis.*x: 506, y: 505"):
        fit(linear, {"k": 0.0, "b": 0.0}, {"x": boston_xy["x"], "y": boston_xy["y"][:-1]},
            SGD(lr=0.01), steps=3, batch_size=10)
    with pytest.raises(SymgradError, match="batch_size needs data arrays"):
        fit(symgrad.compile(k**2, wrt=[k]), {"k": 1.0}, {}, SGD(lr=0.1), steps=3,
            batch_size=10)


# -- callback -------------------------------------------------------------------------------------


def test_callback_sees_every_step_and_can_stop(linear, boston_xy):
    seen = []

    def callback(step, loss, params):
        seen.append((step, loss, dict(params)))
        return step == 4 or None

    h = fit(linear, {"k": 0.0, "b": 0.0}, boston_xy, SGD(lr=0.01), steps=100, callback=callback)
    assert h.stopped_early and h.steps == 5
    assert [s for s, _, _ in seen] == [0, 1, 2, 3, 4]
    assert [loss for _, loss, _ in seen] == h.losses
    assert seen[-1][2] == h.params  # the parameters after the step's update
    assert "stopped early" in repr(h)


def test_callback_early_stopping_on_a_threshold(linear, boston_xy):
    h = fit(linear, {"k": 0.0, "b": 0.0}, boston_xy, SGD(lr=0.01, momentum=0.9), steps=10_000,
            callback=lambda step, loss, params: loss < 50)
    assert h.stopped_early and h.losses[-1] < 50 and all(v >= 50 for v in h.losses[:-1])


# -- divergence -----------------------------------------------------------------------------------


def diverging_run(linear, boston_xy, steps):
    """SGD with momentum at lr 0.01, raised to 0.1 after step 200: the loss falls to its lowest
    at step 206, then grows until it is inf at step 401 (with ``steps`` > 401)."""
    optimizer = SGD(lr=0.01, momentum=0.9)

    def schedule(step, loss, params):
        if step == 200:
            optimizer.lr = 0.1

    start = {"k": np.array([0.0]), "b": 0.0}
    return fit(linear, start, boston_xy, optimizer, steps=steps, callback=schedule)


def test_divergence_keeps_the_parameters_with_the_lowest_loss(linear, boston_xy):
    with pytest.raises(TrainingDiverged) as caught:
        diverging_run(linear, boston_xy, steps=1000)
    e = caught.value
    assert isinstance(e, SymgradError)
    assert 0 < e.step < 1000 and not np.isfinite(e.loss)
    assert len(e.losses) == e.step and all(np.isfinite(e.losses))
    # the best step is the one with the lowest loss, well before the last finite one
    assert e.best_step == int(np.argmin(e.losses))
    assert 0 < e.best_step < e.step - 10
    assert e.losses[e.best_step] < e.losses[0] / 10
    message = str(e)
    assert f"step {e.step}" in message and "smaller" in message and "lr is 0.1" in message
    assert f"step {e.best_step}, loss {e.losses[e.best_step]:.6g}" in message
    # e.params: copies of that step's parameters (an array and a float), usable as they are
    assert set(e.params) == {"k", "b"}
    assert isinstance(e.params["k"], np.ndarray) and isinstance(e.params["b"], float)
    assert float(linear(**boston_xy, **e.params)) == pytest.approx(
        e.losses[e.best_step], rel=1e-12
    )
    # the loss of step s is measured after s updates: the same run stopped there agrees
    again = diverging_run(linear, boston_xy, steps=e.best_step)
    np.testing.assert_array_equal(again.params["k"], e.params["k"])
    assert again.params["b"] == e.params["b"]


def test_divergence_from_the_first_step_keeps_the_start(linear, boston_xy):
    """Every step of lr = 1 makes the loss worse: the start is the best there is."""
    k0 = np.array([0.0])
    with pytest.raises(TrainingDiverged) as caught:
        fit(linear, {"k": k0, "b": 0.0}, boston_xy, SGD(lr=1.0), steps=1000)
    e = caught.value
    assert e.step > 10 and e.best_step == 0
    np.testing.assert_array_equal(e.params["k"], [0.0])
    assert e.params["b"] == 0.0 and e.params["k"] is not k0


def test_divergence_keeps_scalar_parameters_too(linear, boston_xy):
    with pytest.raises(TrainingDiverged) as caught:
        fit(linear, {"k": 0.0, "b": 0.0}, boston_xy, Adam(lr=1e300), steps=100)
    e = caught.value
    assert all(np.isfinite(list(e.params.values())))
    assert float(linear(**boston_xy, **e.params)) == min(e.losses)
    assert "smaller" in str(e)


@pytest.mark.parametrize(
    "run",
    [
        pytest.param(lambda m, d: fit(m, {"k": 0.0, "b": 0.0}, d, SGD(lr=1.0), steps=1000),
                     id="SGD-scalars"),
        pytest.param(lambda m, d: fit(m, {"k": np.zeros(1), "b": np.zeros(1)}, d,
                                      SGD(lr=0.05, momentum=0.9), steps=2000), id="SGD-arrays"),
        pytest.param(lambda m, d: fit(m, {"k": 0.0, "b": 0.0}, d, Adam(lr=1e300), steps=100),
                     id="Adam"),
        pytest.param(lambda m, d: fit(m, {"k": np.zeros(1), "b": 0.0}, d, SGD(lr=0.5),
                                      epochs=40, batch_size=100), id="mini-batches"),
    ],
)
def test_a_diverging_run_emits_no_warning_only_the_error(linear, boston_xy, run):
    """NumPy's overflow and invalid-value warnings stay inside the steps."""
    with warnings.catch_warnings(record=True) as emitted:
        warnings.simplefilter("always")
        with pytest.raises(TrainingDiverged):
            run(linear, boston_xy)
    assert [str(w.message) for w in emitted] == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning would now be raised in its place
        with pytest.raises(TrainingDiverged):
            run(linear, boston_xy)


def test_the_callers_numpy_error_settings_hold_outside_the_steps(linear, boston_xy):
    seen = []
    with np.errstate(over="raise", divide="warn", invalid="ignore"):
        before = np.geterr()
        fit(linear, {"k": 0.0, "b": 0.0}, boston_xy, SGD(lr=0.01), steps=3,
            callback=lambda step, loss, params: seen.append(np.geterr()))
        assert np.geterr() == before
        with pytest.raises(TrainingDiverged):
            fit(linear, {"k": 0.0, "b": 0.0}, boston_xy, SGD(lr=1.0), steps=1000)
        assert np.geterr() == before
    assert seen == [before] * 3


@pytest.mark.parametrize(
    "make", [lambda: SGD(lr=0.01, momentum=0.9, nesterov=True), lambda: Adam(lr=0.1)]
)
def test_steps_after_the_first_match_a_loop_of_checked_steps(linear, boston_xy, make):
    """fit's later steps skip the checks of Optimizer.step; the arithmetic is the same."""
    history = fit(linear, {"k": np.array([1.0]), "b": np.array([0.5])}, boston_xy, make(),
                  steps=25)
    params, optimizer, losses = {"k": np.array([1.0]), "b": np.array([0.5])}, make(), []
    for _ in range(25):
        value, grads = linear.value_and_grad(**boston_xy, **params)
        losses.append(float(value))
        params = optimizer.step(params, grads)
    assert history.losses == losses
    for name in params:
        np.testing.assert_array_equal(history.params[name], params[name])


def test_a_reset_of_the_optimizer_during_fit_takes_effect(linear, boston_xy):
    """A callback may reset the optimizer: the next step starts from fresh moments."""
    def reset_at_3(step, loss, params):
        if step == 3:
            optimizer.reset()

    optimizer = Adam(lr=0.1)
    start = {"k": np.array([1.0]), "b": np.array([0.5])}
    history = fit(linear, start, boston_xy, optimizer, steps=6, callback=reset_at_3)
    params, reference = {"k": np.array([1.0]), "b": np.array([0.5])}, Adam(lr=0.1)
    for step in range(6):
        _, grads = linear.value_and_grad(**boston_xy, **params)
        params = reference.step(params, grads)
        if step == 3:
            reference.reset()
    for name in params:
        np.testing.assert_array_equal(history.params[name], params[name])
    assert optimizer.state["k"]["step"] == 2  # steps 4 and 5 after the reset


def test_a_non_finite_first_loss_blames_the_start_not_the_learning_rate(linear, boston_xy):
    with pytest.raises(TrainingDiverged, match=r"step 0.*starting parameters") as caught:
        fit(linear, {"k": np.nan, "b": 0.0}, boston_xy, SGD(lr=0.01), steps=10)
    assert caught.value.step == 0 and caught.value.losses == []
    assert np.isnan(caught.value.params["k"]) and caught.value.params["b"] == 0.0


# -- progress bar ---------------------------------------------------------------------------------


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_quiet_when_stderr_is_not_a_terminal(linear, boston_xy, capfd, monkeypatch):
    fit(linear, {"k": 0.0, "b": 0.0}, boston_xy, SGD(lr=0.01), steps=50, progress=True)
    out, err = capfd.readouterr()  # a captured (or piped) stderr is not a terminal
    assert out == "" and (err == "" or sys.stderr.isatty())
    not_a_terminal = io.StringIO()  # isatty() is False: a pipe, a file, a log
    monkeypatch.setattr(sys, "stderr", not_a_terminal)
    fit(linear, {"k": 0.0, "b": 0.0}, boston_xy, SGD(lr=0.01), steps=50, progress=True)
    assert not_a_terminal.getvalue() == ""


def test_a_progress_bar_with_the_loss_on_a_terminal(linear, boston_xy, monkeypatch):
    pytest.importorskip("tqdm")
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    fit(linear, {"k": 0.0, "b": 0.0}, boston_xy, SGD(lr=0.01), steps=50)
    shown = terminal.getvalue()
    assert "50/50" in shown and "loss=" in shown
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    fit(linear, {"k": 0.0, "b": 0.0}, boston_xy, SGD(lr=0.01), epochs=2, batch_size=300)
    assert "epoch=2/2" in terminal.getvalue()


def test_progress_false_and_missing_tqdm_are_quiet(linear, boston_xy, monkeypatch):
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    fit(linear, {"k": 0.0, "b": 0.0}, boston_xy, SGD(lr=0.01), steps=50, progress=False)
    for module in ("tqdm", "tqdm.auto"):  # importing tqdm now raises ImportError
        monkeypatch.setitem(sys.modules, module, None)
    fit(linear, {"k": 0.0, "b": 0.0}, boston_xy, SGD(lr=0.01), steps=50)
    assert terminal.getvalue() == ""


# A Jupyter kernel as tqdm.auto sees one: the module ipykernel.zmqshell is loaded, and
# IPython.get_ipython() is its shell. Its standard error is not a terminal. ipywidgets, when
# present, records what tqdm's notebook bar does to its widgets.
KERNEL_MODULES = {
    "ipykernel/__init__.py": "",
    "ipykernel/zmqshell.py": "class ZMQInteractiveShell:\n    config = {'IPKernelApp': {}}\n",
    "IPython/__init__.py": (
        "from ipykernel.zmqshell import ZMQInteractiveShell\n"
        "_shell = ZMQInteractiveShell()\n"
        "def get_ipython():\n    return _shell\n"
    ),
    "IPython/display.py": "shown = []\ndef display(obj):\n    shown.append(obj)\n",
}
IPYWIDGETS = """
from types import SimpleNamespace

class _Widget:
    def __init__(self, **kwargs):
        self.layout, self.style = SimpleNamespace(), SimpleNamespace()
        self.value, self.bar_style = "", ""
        self.__dict__.update(kwargs)

    def close(self):
        self.closed = True

class FloatProgress(_Widget): pass
class HTML(_Widget): pass
class HBox(_Widget): pass
"""
IN_THE_KERNEL = """
import json
import ipykernel.zmqshell  # loaded by the kernel before any cell runs
import numpy as np, sympy as sp, symgrad
from IPython import display
from symgrad.optim import SGD

x, k = sp.symbols("x k")
model = symgrad.compile(symgrad.mean((k*x - 1)**2), wrt=[k])
symgrad.fit(model, {"k": 0.0}, {"x": np.linspace(0.0, 1.0, 5)}, SGD(lr=0.1), steps=25)
print(json.dumps([
    {"max": box.children[1].max, "value": box.children[1].value,
     "style": box.children[1].bar_style, "text": box.children[2].value}
    for box in display.shown
]))
"""


def run_in_a_kernel(folder: Path, widgets: bool) -> subprocess.CompletedProcess:
    modules = {**KERNEL_MODULES, **({"ipywidgets/__init__.py": IPYWIDGETS} if widgets else {})}
    for name, text in modules.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")
    path = os.pathsep.join(filter(None, [str(folder), str(ROOT), os.environ.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-c", IN_THE_KERNEL], env={**os.environ, "PYTHONPATH": path},
        capture_output=True, text=True, encoding="utf-8", timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return result


def test_in_jupyter_the_bar_is_a_widget(tmp_path):
    pytest.importorskip("tqdm")
    result = run_in_a_kernel(tmp_path, widgets=True)
    [bar] = json.loads(result.stdout)  # one widget, displayed in the cell's output
    assert bar["max"] == 25 and bar["value"] == 25 and bar["style"] == "success"
    assert "loss=" in bar["text"]
    assert "25/25" not in result.stderr  # no text bar besides


def test_in_jupyter_without_ipywidgets_the_bar_is_text(tmp_path):
    pytest.importorskip("tqdm")
    result = run_in_a_kernel(tmp_path, widgets=False)
    assert json.loads(result.stdout) == []
    assert "25/25" in result.stderr and "loss=" in result.stderr  # though not a terminal
    assert "ipywidgets" in result.stderr  # tqdm says how to get the widget


# -- validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "data", "match"),
    [
        ({"k": 0.0}, {"x": 1.0, "y": 1.0}, r"missing input 'b'"),
        ({"k": 0.0, "b": 0.0}, {"x": 1.0}, r"missing input 'y'"),
        ({"k": 0.0, "b": 0.0, "c": 1.0}, {"x": 1.0, "y": 1.0}, r"unknown parameter 'c'"),
        ({"k": 0.0, "b": 0.0}, {"x": 1.0, "y": 1.0, "z": 1.0}, r"unknown data input 'z'"),
        ({"k": 0.0, "b": 0.0}, {"x": 1.0, "y": 1.0, "b": 1.0}, r"'b' given both"),
        ({}, {"x": 1.0, "y": 1.0, "k": 1.0, "b": 1.0}, r"no parameters to train"),
        ({"k": 0.0, "b": "zero"}, {"x": 1.0, "y": 1.0}, r"parameter 'b' is not a number"),
        ({"k": 0.0, "b": 0.0}, {"x": "one", "y": 1.0}, r"data 'x' is not a number"),
        ([0.0, 0.0], {"x": 1.0, "y": 1.0}, r"params must be a dict"),
    ],
)
def test_bad_params_or_data_are_named(linear, params, data, match):
    with pytest.raises(SymgradError, match=match):
        fit(linear, params, data, SGD(lr=0.1), steps=1)
    with pytest.raises(SymgradError, match=match):
        objective(linear, data, params)


def test_a_parameter_the_model_does_not_differentiate(boston_xy):
    model = symgrad.compile(symgrad.mean((k * x + b - y) ** 2), wrt=[k])
    with pytest.raises(SymgradError, match=r"'b' is not differentiated.*pass it in data"):
        fit(model, {"k": 0.0, "b": 0.0}, boston_xy, SGD(lr=0.1), steps=1)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({}, "exactly one of steps= or epochs="),
        ({"steps": 3, "epochs": 3}, "exactly one of steps= or epochs="),
        ({"steps": 0}, "steps must be a positive int"),
        ({"steps": 2.5}, "steps must be a positive int"),
        ({"epochs": True}, "epochs must be a positive int"),
        ({"steps": 3, "batch_size": 0}, "batch_size must be a positive int"),
        ({"steps": 3, "callback": "print"}, "callback must be callable"),
        ({"steps": 3, "batch_size": 8, "seed": "s"}, "seed"),
    ],
)
def test_bad_options(linear, boston_xy, options, match):
    with pytest.raises(SymgradError, match=match):
        fit(linear, {"k": 0.0, "b": 0.0}, boston_xy, SGD(lr=0.1), **options)


def test_not_an_optimizer(linear, boston_xy):
    with pytest.raises(SymgradError, match=r"step\(params, grads\)"):
        fit(linear, {"k": 0.0, "b": 0.0}, boston_xy, 0.01, steps=3)


# -- the SciPy bridge -----------------------------------------------------------------------------


def test_lbfgs_reaches_the_least_squares_optimum(linear, boston_xy):
    optimize = pytest.importorskip("scipy.optimize")
    fun, x0, unflatten = linear.objective(boston_xy, {"k": 0.0, "b": 0.0})
    result = optimize.minimize(fun, x0, jac=True, method="L-BFGS-B",
                               options={"gtol": 1e-10, "ftol": 1e-15})
    assert result.success
    found = unflatten(result.x)
    assert found["k"] == pytest.approx(K_OPT, abs=1e-5)
    assert found["b"] == pytest.approx(B_OPT, abs=1e-5)
    slope, intercept = np.polyfit(boston_xy["x"], boston_xy["y"], 1)
    assert found["k"] == pytest.approx(slope, rel=1e-8)
    assert found["b"] == pytest.approx(intercept, rel=1e-8)
    assert result.fun == pytest.approx(MSE_OPT, abs=1e-5)
    assert float(linear(**boston_xy, **found)) == pytest.approx(result.fun, rel=1e-12)


def test_the_default_minimize_also_gets_there(linear, boston_xy):
    optimize = pytest.importorskip("scipy.optimize")
    fun, x0, unflatten = objective(linear, {x: boston_xy["x"], y: boston_xy["y"]}, {b: 0.0, k: 0.0})
    result = optimize.minimize(fun, x0, jac=True)
    assert unflatten(result.x)["k"] == pytest.approx(K_OPT, abs=1e-4)


def test_the_flat_layout_follows_wrt_and_shapes_come_back(boston_xy):
    W = sp.Symbol("W")
    model = symgrad.compile(symgrad.mean((W * x + k + b - y) ** 2), wrt=[b, W, k])
    params = {"k": np.array([[1.0, 2.0], [3.0, 4.0]]), "W": np.array(5.0), "b": 6.0}
    data = {"x": np.ones((3, 2, 2)), "y": np.zeros((3, 2, 2))}
    fun, x0, unflatten = objective(model, data, params)
    np.testing.assert_array_equal(x0, [6.0, 5.0, 1.0, 2.0, 3.0, 4.0])  # b, W, k (raveled)
    back = unflatten(x0)
    assert list(back) == ["b", "W", "k"]
    assert type(back["b"]) is float
    assert isinstance(back["W"], np.ndarray) and back["W"].shape == ()
    np.testing.assert_array_equal(back["k"], params["k"])
    x0[:] = 0.0  # unflatten copied: its arrays do not follow the vector
    assert back["k"][1, 1] == 4.0
    value, grad = fun(np.arange(6.0))
    assert type(value) is float and grad.shape == (6,)
    _, grads = model.value_and_grad(**data, b=0.0, W=1.0, k=np.array([[2.0, 3.0], [4.0, 5.0]]))
    np.testing.assert_allclose(grad, np.concatenate([np.ravel(grads[n]) for n in
                                                     ("b", "W", "k")]))


def test_the_gradient_is_the_gradient_of_the_value(linear, boston_xy):
    optimize = pytest.importorskip("scipy.optimize")
    fun, x0, _ = objective(linear, boston_xy, {"k": 3.0, "b": -2.0})
    error = optimize.check_grad(lambda v: fun(v)[0], lambda v: fun(v)[1], x0)
    assert error < 1e-4 * np.linalg.norm(fun(x0)[1])


def test_objective_with_a_fixed_parameter_and_a_wrong_vector(linear, boston_xy):
    fun, x0, unflatten = linear.objective({**boston_xy, "k": 9.0}, {"b": 0.0})
    assert x0.shape == (1,) and unflatten(np.array([2.0])) == {"b": 2.0}
    with pytest.raises(SymgradError, match=r"shape \(1,\).*b.*\(2,\)"):
        fun(np.zeros(2))


# -- a tensor model: the Boston MLP ---------------------------------------------------------------

FEATURES = ["crim", "zn", "indus", "chas", "nox", "rm", "age", "dis", "rad", "tax", "ptratio",
            "lstat", "black"]


@pytest.fixture(scope="module")
def mlp():
    table = np.genfromtxt(BOSTON, delimiter=",", names=True, dtype=float)
    features = np.column_stack([table[f] for f in FEATURES])
    data = {"X": (features - features.mean(0)) / features.std(0), "y": table["medv"][:, None]}
    X, W1, b1, W2, b2, Y = sp.symbols("X W1 b1 W2 b2 y")
    L1, H, L2, Loss = sp.symbols("L1 H L2 Loss")
    model = symgrad.compile(
        [sp.Eq(L1, symgrad.matmul(X, W1) + b1), sp.Eq(H, symgrad.sigmoid(L1)),
         sp.Eq(L2, symgrad.matmul(H, W2) + b2), sp.Eq(Loss, symgrad.mean((L2 - Y) ** 2))],
        wrt=[W1, b1, W2, b2],
    )
    rng = np.random.default_rng(0)
    start = {"W1": init.xavier_normal((13, 16), seed=rng), "b1": init.zeros(16),
             "W2": init.xavier_normal((16, 1), seed=rng), "b2": init.zeros(1)}
    return model, data, start


def test_fit_trains_the_mlp_in_mini_batches(mlp):
    model, data, start = mlp
    h = fit(model, start, data, Adam(lr=0.01), epochs=20, batch_size=32)
    assert h.steps == 20 * 16
    assert h.losses[-1] < 0.2 * h.losses[0]
    assert {n: p.shape for n, p in h.params.items()} == {n: p.shape for n, p in start.items()}
    assert float(start["b2"][0]) == 0.0  # the starting arrays are untouched


def test_fit_on_the_mlp_matches_torch(mlp):
    torch = pytest.importorskip("torch")
    model, data, start = mlp
    h = fit(model, start, data, Adam(lr=0.01), steps=200)
    params = {n: torch.tensor(p, dtype=torch.float64, requires_grad=True)
              for n, p in start.items()}
    X, Y = (torch.tensor(data[n], dtype=torch.float64) for n in ("X", "y"))
    opt = torch.optim.Adam(params.values(), lr=0.01)
    losses = []
    for _ in range(200):
        opt.zero_grad()
        hidden = torch.sigmoid(X @ params["W1"] + params["b1"])
        loss = torch.mean((hidden @ params["W2"] + params["b2"] - Y) ** 2)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    np.testing.assert_allclose(h.losses, losses, rtol=1e-9)
    for n, p in params.items():
        np.testing.assert_allclose(h.params[n], p.detach().numpy(), rtol=1e-8, atol=1e-10)


def test_lbfgs_on_the_mlp_keeps_the_shapes(mlp):
    optimize = pytest.importorskip("scipy.optimize")
    model, data, start = mlp
    fun, x0, unflatten = objective(model, data, start)
    assert x0.shape == (13 * 16 + 16 + 16 + 1,)
    result = optimize.minimize(fun, x0, jac=True, method="L-BFGS-B", options={"maxiter": 100})
    assert result.fun < 0.1 * fun(x0)[0]
    assert {n: p.shape for n, p in unflatten(result.x).items()} == {
        n: p.shape for n, p in start.items()
    }
