"""Every example runs with --quick and says and draws what it should (examples/*.py).

Each example runs in a subprocess, as a user runs it (``python examples/NAME.py --quick``,
from the repository root, matplotlib on its Agg backend), writing its pictures to a
temporary folder (``--output``). The checks read the key lines of its output and the PNG
signature of every picture it promises. Diagrams need Graphviz's ``dot`` program; without it
the examples say so and the diagram checks are skipped.
"""

from __future__ import annotations

import doctest
import importlib.util
import itertools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
PNG = b"\x89PNG\r\n\x1a\n"
HAVE_DOT = shutil.which("dot") is not None


def run_example(name: str, *args: str, env: dict[str, str] | None = None,
                timeout: float = 300) -> subprocess.CompletedProcess:
    """``python examples/NAME.py --quick ARGS`` from the repository root; fails on an error."""
    environment = {**os.environ, "MPLBACKEND": "Agg", **(env or {})}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), "--quick", *args],
        cwd=ROOT, env=environment, capture_output=True, text=True, encoding="utf-8",
        timeout=timeout,
    )
    assert result.returncode == 0, (
        f"{name} exited with {result.returncode}\n--- stdout\n{result.stdout}\n"
        f"--- stderr\n{result.stderr}"
    )
    return result


def assert_png(path: Path) -> None:
    assert path.is_file(), f"{path.name} was not written"
    assert path.read_bytes()[:8] == PNG, f"{path.name} is not a PNG"
    assert path.stat().st_size > 5_000, f"{path.name} is suspiciously small"


def assert_diagrams(folder: Path, stem: str, stdout: str) -> None:
    if HAVE_DOT:
        assert_png(folder / f"{stem}_forward.png")
        assert_png(folder / f"{stem}_backward.png")
    else:
        assert "no diagrams: Graphviz's dot program is not installed" in stdout


def number(pattern: str, text: str) -> float:
    """The number captured by ``pattern`` in ``text`` (exactly one match; ^ is a line start)."""
    found = re.findall(pattern, text, re.MULTILINE)
    assert len(found) == 1, f"{pattern!r}: {len(found)} matches in\n{text}"
    return float(found[0])


def test_boston_linear(tmp_path):
    out = run_example("boston_linear", "--output", str(tmp_path)).stdout
    assert number(r"have mean medv (\d+\.\d+)", out) == pytest.approx(34.16, abs=0.005)
    assert number(r"best: k = (-?\d+\.\d+)", out) != 0.0
    gd = re.search(r"GD, lr 0\.01, momentum 0\.9, 8,000 steps\s+k = (-?\d+\.\d+), "
                   r"b = (-?\d+\.\d+), loss = (\d+\.\d+)", out)
    assert gd, out
    k, b, loss = map(float, gd.groups())
    assert k == pytest.approx(9.10211, abs=2e-5)
    assert b == pytest.approx(-34.67062, abs=2e-5)
    assert loss == pytest.approx(43.60055, abs=2e-5)
    ls = re.search(r"np\.polyfit \(least squares\)\s+k = (-?\d+\.\d+), b = (-?\d+\.\d+)", out)
    assert ls and (float(ls[1]), float(ls[2])) == (9.10211, -34.67062), out
    assert "gradient descent agrees with least squares to 5 decimals" in out
    assert_png(tmp_path / "boston_linear.png")


def test_boston_two_layer_is_the_demo(tmp_path):
    """The README's demo: the chains, the loss falling, the generated module and pictures."""
    out = run_example("boston_two_layer", "--output", str(tmp_path)).stdout
    assert "∂Loss/∂k1 = ∂Loss/∂L2·∂L2/∂σ·∂σ/∂L1·∂L1/∂k1" in out
    assert "∂Loss/∂b2 = ∂Loss/∂L2·∂L2/∂b2" in out
    assert "∂σ/∂L1 = σ·(1 − σ)" in out
    losses = [float(v) for v in re.findall(r"^step\s+\d+\s+loss\s+(\d+\.\d+)$", out, re.M)]
    assert len(losses) >= 10
    assert all(a > b for a, b in itertools.pairwise(losses)), losses
    assert losses[-1] < losses[0] / 10
    written = re.search(r"was written to (.+boston_two_layer_model\.py)$", out, re.M)
    assert written, out
    module_path = Path(written[1])
    assert module_path == tmp_path / "boston_two_layer_model.py"
    # the generated module stands alone: NumPy only, and it computes the model
    spec = importlib.util.spec_from_file_location("generated_two_layer", module_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    value, grads = module.value_and_grad(x=0.5, y=20.0, k1=1.0, b1=0.0, k2=2.0, b2=1.0)
    assert sorted(grads) == ["b1", "b2", "k1", "k2"]
    assert float(value) > 0
    assert_png(tmp_path / "boston_two_layer.png")
    assert_diagrams(tmp_path, "boston_two_layer", out)


def test_boston_mlp(tmp_path):
    out = run_example("boston_mlp", "--output", str(tmp_path)).stdout
    assert "12 features" in out and "not `black`" in out
    assert "∂Loss/∂W1 = ∂Loss/∂L2·∂L2/∂H·∂H/∂L1·∂L1/∂W1" in out
    assert "∂Loss/∂b2 = ∂Loss/∂L2·∂L2/∂b2" in out
    test_mse = number(r"^test MSE (\d+\.\d+)", out)
    linear_mse = number(r"linear least-squares fit on the same split: test MSE (\d+\.\d+)", out)
    assert test_mse < 15 and test_mse < linear_mse
    assert_png(tmp_path / "boston_mlp.png")
    assert_diagrams(tmp_path, "boston_mlp", out)


def test_digits_classifier(tmp_path):
    out = run_example("digits_classifier", "--output", str(tmp_path)).stdout
    assert "∂Loss/∂W = ∂Loss/∂P·∂P/∂Z·∂Z/∂W" in out
    assert number(r"^test accuracy (\d\.\d+)", out) > 0.9
    assert "confusion matrix" in out
    assert_png(tmp_path / "digits_confusion.png")
    assert_diagrams(tmp_path, "digits_softmax", out)


def test_digits_classifier_with_a_hidden_layer(tmp_path):
    out = run_example("digits_classifier", "--hidden", "32", "--output", str(tmp_path)).stdout
    assert "∂Loss/∂W1 = ∂Loss/∂P·∂P/∂Z·∂Z/∂H·∂H/∂L1·∂L1/∂W1" in out
    assert number(r"^test accuracy (\d\.\d+)", out) > 0.85
    assert_png(tmp_path / "digits_confusion.png")


def test_race_against_pytorch():
    pytest.importorskip("torch")
    out = run_example("race_pytorch").stdout
    assert "final losses agree to 1e-06 relative: yes" in out
    rows = [line for line in out.splitlines() if re.match(r"\| (line|two-layer|MLP)", line)]
    assert len(rows) == 3, out
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        symgrad_loss, torch_loss, difference = float(cells[5]), float(cells[6]), float(cells[7])
        assert symgrad_loss == pytest.approx(torch_loss, rel=1e-6)
        assert difference <= 1e-6


def test_race_without_pytorch_says_so(tmp_path):
    """A torch that cannot be imported: a clear message and exit status 0."""
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text(
        "raise ImportError('No module named torch (hidden by the test)')\n", encoding="utf-8"
    )
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    out = run_example("race_pytorch", env={"PYTHONPATH": path}).stdout
    assert "PyTorch is not installed" in out and "Skipped" in out


def test_datasets_doctests():
    spec = importlib.util.spec_from_file_location("datasets", EXAMPLES / "datasets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def test_backends_runs_one_model_on_every_installed_library(tmp_path):
    out = run_example("backends", "--output", str(tmp_path)).stdout
    assert (tmp_path / "backends.md").read_text(encoding="utf-8").count("\n") > 5
    rows = re.findall(
        r"^(.+?)\s+(numpy|array_api|jax|torch|dask|numba)\s+([0-9.]+e[+-]\d+)\s+[0-9.]+ ms$",
        out, re.MULTILINE)
    libraries = {library.strip() for library, _, _ in rows}
    assert {"NumPy", "array-api-strict", "JAX (jit)", "PyTorch", "Dask (8 chunks)",
            "Numba (fused)"} <= libraries, out
    assert all(float(difference) < 1e-12 for _, _, difference in rows), out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS is Linux's")
def test_beyond_memory_fits_more_data_than_the_memory_it_may_use(tmp_path):
    """6·10⁷ rows (916 MB) under an 800 MB cap on the address space; the fit finds the
    parameters the data was made with."""
    out = run_example("beyond_memory", "--output", str(tmp_path)).stdout
    assert "916 MB, generated chunk by chunk; memory cap 800 MB; Dask on threads" in out
    assert "k1 1.50" in out and "b1 -0.50" in out and "k2 2.00" in out, out
    assert number(r"^peak memory of this process: ([\d,]+) MB", out.replace(",", "")) < 800
    assert (tmp_path / "beyond_memory.md").exists()
