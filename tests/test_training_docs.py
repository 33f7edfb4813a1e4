"""docs/training.md runs as written: its Python blocks, in order, from the repository root,
and the recipes say what the docs say they do."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "training.md"
MSE_OPT = 43.60055  # the least-squares line's mean squared error on (rm, medv)


def blocks() -> list[str]:
    """The doc's ```python blocks, in order (those inside a list item dedented)."""
    text = DOC.read_text(encoding="utf-8")
    found = re.findall(r"^[ ]*```python\n(.*?)^[ ]*```", text, re.S | re.M)
    return [textwrap.dedent(block) for block in found]


def block_with(marker: str) -> str:
    [block] = [b for b in blocks() if marker in b]
    return block


def run(*sources: str) -> dict:
    namespace: dict = {}
    for source in sources:
        exec(compile(source, str(DOC), "exec"), namespace)
    return namespace


@pytest.fixture(autouse=True)
def at_the_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # the doc's paths are relative to the repository root


def test_every_block_runs_in_order(capsys):
    pytest.importorskip("scipy")
    namespace = run(*blocks())
    assert namespace["history"].steps == 800  # the last block, the network


def test_the_recovery_recipe_recovers_as_written(capsys):
    """A too-large lr diverges; fit again from the error's parameters with a smaller one."""
    namespace = run(block_with("genfromtxt"), block_with("except TrainingDiverged"))
    printed = capsys.readouterr().out
    assert printed.startswith("the loss became inf at step 80 of 1000 (counted from 0);")
    assert "(step 0, loss 592.147)" in printed  # the best step: the start
    assert namespace["history"].losses[-1] == pytest.approx(MSE_OPT, abs=1e-5)


def test_the_network_leaves_out_the_black_column(capsys):
    assert not any("black" in block for block in blocks())
    network = block_with("names = [")
    namespace = run(block_with("genfromtxt"), block_with("init.he_normal"), network)
    assert namespace["features"].shape == (506, 12)
    assert namespace["start"]["W1"].shape == (12, 16)
    printed = capsys.readouterr().out
    comment = re.search(r"print\(history\)\s+# (<History: .*?) … s, loss ([\d.]+) →", network)
    shown = re.search(r"(<History: .*?) [\d.]+ s, loss ([\d.]+) → ([\d.]+)>", printed)
    assert comment and shown, printed
    assert shown[1] == comment[1] and shown[2] == comment[2]  # the doc's comment is true
    losses = namespace["history"].losses
    assert np.isfinite(losses).all() and losses[-1] < losses[0] / 10


def test_the_dask_recipe_streams_as_written():
    pytest.importorskip("dask")
    namespace = run(block_with("genfromtxt"), block_with("import dask.array"))
    assert namespace["streamed"].steps == 2000
    assert namespace["full"].losses[-1] == pytest.approx(36, rel=0.05)  # the noise's variance
    assert namespace["full"].params["k"] == pytest.approx(9.1, abs=0.05)
