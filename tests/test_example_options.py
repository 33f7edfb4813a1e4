"""The examples accept the options examples/README.md promises, and the race writes its table
to --output (the examples' own runs are in test_examples.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
README = (EXAMPLES / "README.md").read_text(encoding="utf-8")
SCRIPTS = re.findall(r"^\| `(\w+)\.py` \|", README, re.M)


def run(name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), *args], cwd=ROOT,
        env={**os.environ, "MPLBACKEND": "Agg", **(env or {})},
        capture_output=True, text=True, encoding="utf-8", timeout=300,
    )


def test_the_readme_promises_quick_and_output_to_every_script_it_lists():
    assert "Each takes `--quick`" in README and "`--output DIR`" in README
    assert len(SCRIPTS) == 7 and {"race_pytorch", "backends", "beyond_memory"} <= set(SCRIPTS)
    assert {f"{name}.py" for name in SCRIPTS} <= {p.name for p in EXAMPLES.glob("*.py")}


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_example_takes_quick_and_output(name):
    result = run(name, "--help")
    assert result.returncode == 0, result.stderr
    assert "--quick" in result.stdout and "--output" in result.stdout


def test_the_race_accepts_output_without_pytorch(tmp_path):
    """A torch that cannot be imported: --output is accepted, the race says it skipped."""
    hidden = tmp_path / "hidden"
    (hidden / "torch").mkdir(parents=True)
    (hidden / "torch" / "__init__.py").write_text(
        "raise ImportError('No module named torch (hidden by the test)')\n", encoding="utf-8"
    )
    path = os.pathsep.join(filter(None, [str(hidden), os.environ.get("PYTHONPATH")]))
    result = run("race_pytorch", "--quick", "--output", str(tmp_path / "out"),
                 env={"PYTHONPATH": path})
    assert result.returncode == 0, result.stderr
    assert "PyTorch is not installed" in result.stdout and "Skipped" in result.stdout


def test_the_race_writes_its_table_to_output(tmp_path):
    pytest.importorskip("torch")
    result = run("race_pytorch", "--quick", "--output", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    written = tmp_path / "race_pytorch.md"
    assert f"The table was written to {written}" in result.stdout
    table = written.read_text(encoding="utf-8").splitlines()
    assert table[0].startswith("| model | steps | symgrad | PyTorch |")
    rows = [line for line in table if re.match(r"\| (line|two-layer|MLP)", line)]
    assert len(rows) == 3 and all(row in result.stdout for row in rows)
