"""symgrad.memory: glibc's malloc keeps freed temporaries, unless the user says otherwise."""

from __future__ import annotations

import gc
import os
import platform
import subprocess
import sys
import textwrap
import weakref

import pytest

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

#: Prints whether the thresholds were raised, then the minor page faults of 200 calls of a
#: function that allocates and frees a few 300 kB temporaries, as a training step does.
SCRIPT = textwrap.dedent(
    """
    import resource
    import numpy as np
    import sympy as sp
    import symgrad

    x, w = sp.symbols("x w")
    model = symgrad.compile(symgrad.mean(symgrad.sigmoid(w * x) ** 2), wrt=[w])
    X = np.linspace(-1, 1, 40_000)
    model.value_and_grad(x=X, w=0.5)  # the first call: compiles, and tunes malloc
    from symgrad.memory import keep_freed_memory
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(200):
        model.value_and_grad(x=X, w=0.5)
    print(keep_freed_memory(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """
)


def run(**env: str) -> tuple[bool, int]:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("MALLOC_") and k not in ("GLIBC_TUNABLES", "SYMGRAD_MALLOC")}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env={**clean, **env}, capture_output=True, text=True,
        check=True, timeout=120,
    ).stdout.split()
    return out[0] == "True", int(out[1])


@pytest.mark.skipif(not GLIBC, reason="the tuning is glibc's")
def test_a_compiled_model_keeps_its_temporaries_warm():
    tuned, faults = run()
    untuned, faults_default = run(SYMGRAD_MALLOC="system")
    assert tuned and not untuned
    # 200 calls over 320 kB temporaries: with the defaults nearly every call faults its
    # temporaries in again (hundreds of pages a call); tuned, the heap is reused
    assert faults_default > 200 * 50
    assert faults < faults_default / 10


@pytest.mark.skipif(not GLIBC, reason="the tuning is glibc's")
@pytest.mark.parametrize(
    "env",
    [{"MALLOC_TRIM_THRESHOLD_": "131072"}, {"MALLOC_MMAP_THRESHOLD_": "131072"},
     {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=131072"}, {"SYMGRAD_MALLOC": "system"}],
)
def test_the_users_own_malloc_settings_stand(env):
    applied, _ = run(**env)
    assert not applied


def test_elsewhere_it_does_nothing(monkeypatch):
    from symgrad import memory

    monkeypatch.setattr(memory, "_applied", None)
    monkeypatch.setattr(memory.platform, "system", lambda: "Darwin")
    monkeypatch.delenv("SYMGRAD_MALLOC", raising=False)
    for k in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES"):
        monkeypatch.delenv(k, raising=False)
    assert memory.keep_freed_memory() is False
    assert memory.keep_freed_memory() is False  # decided once


# -- compiling leaves Python's cycle collector alone ----------------------------------------------


class _Cyclic:
    def __init__(self) -> None:
        self.me = self


def test_compiling_in_a_loop_leaves_the_collector_running():
    """Models compiled and dropped in a loop (each generated module is a cycle of its functions
    and their globals) and the caller's own garbage cycles are collected as usual, without a
    gc.collect(): compiling neither disables the collector nor puts collections off."""
    import numpy as np
    import sympy as sp

    import symgrad

    collections = []

    def count(phase, info):
        if phase == "stop":
            collections.append(info["generation"])

    xs = sp.symbols("x0:20")
    gc.callbacks.append(count)
    try:
        refs = []
        for i in range(8):  # a model of some 120 nodes: thousands of objects a compile
            f = sum((i + 1) * (xs[j + 1] - xs[j] ** 2) ** 2 + (1 - xs[j]) ** 2 for j in range(19))
            model = symgrad.compile(f)
            model.value_and_grad({s: np.float64(0.5) for s in xs})
            refs.append(weakref.ref(_Cyclic()))
    finally:
        gc.callbacks.remove(count)
    assert len(collections) >= 4
    assert sum(ref() is None for ref in refs) >= 4  # the cycles did not pile up


def test_compiling_leaves_the_collectors_state_and_freeze_as_they_were():
    """A caller's gc.disable() and gc.freeze() (before forking workers) stand through a compile."""
    import sympy as sp

    import symgrad

    x = sp.Symbol("x")
    gc.freeze()
    gc.disable()
    try:
        frozen = gc.get_freeze_count()
        symgrad.compile(symgrad.sum(sp.tanh(x) ** 2))
        assert not gc.isenabled()
        # (frozen objects freed meanwhile leave the generation; an unfreeze would empty it)
        assert gc.get_freeze_count() > 0.99 * frozen
    finally:
        gc.enable()
        gc.unfreeze()
    symgrad.compile(symgrad.sum(sp.sin(x) ** 2))
    assert gc.isenabled()
