"""Dtypes and array libraries (issue 16): the same compiled model on each, side by side.

    python benchmarks/bench_backends.py            # n = 10⁶
    python benchmarks/bench_backends.py --n 100000 --pairs 11

Measured, each head to head (ABBA pairs of calibrated batches, the median of the per-pair
ratios with its quartiles), each result checked against the other first:

- the two-layer model (bench_core's case (a), W2) at n samples, one ``value_and_grad`` call,
  float32 inputs against float64 inputs on NumPy (CPU time of this single-threaded process);
  the issue's target: float32 at least 1.6× faster;
- the line model mean((k*x + b - y)**2) (W1), the two-layer model (W2) and the Boston MLP
  (12 → 64 → 1 on 506 rows, its shapes declared) on JAX, float64:
  symgrad's JAX backend (its generated ``value_and_grad`` under ``jax.jit``) against
  ``jax.jit(jax.value_and_grad(f))`` of the same model written in JAX, on JAX arrays, each
  call waited for (``block_until_ready``); wall time, as XLA may use threads; the issue's
  target: within 1.1×. Left out when JAX is not installed (``--no-jax`` leaves it out too);
- the same three models on PyTorch, float64 CPU tensors: symgrad's PyTorch backend
  (``model.value_and_grad``) against ``torch.autograd`` on the same model written in PyTorch
  (the loss, then ``backward()``); CPU time; the issue's target: within 1.1×. Left out when
  PyTorch is not installed.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import bench_core as bc  # noqa: E402
import bench_mlp as bm  # noqa: E402
from _timing import fmt_time, head_to_head  # noqa: E402

import symgrad  # noqa: E402

TARGET_FLOAT32 = 1.6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="samples (default 10⁶)")
    parser.add_argument("--pairs", type=int, default=21, help="ABBA pairs (default 21)")
    parser.add_argument("--no-jax", action="store_true", help="leave JAX out")
    args = parser.parse_args()

    equations, wrt, _ = bc.model_two_layer(plain=False)
    model = symgrad.compile(equations, wrt=wrt, cache=False)
    rng = np.random.default_rng(0)
    x = rng.normal(size=args.n)
    y = np.sin(x) + 0.1 * rng.normal(size=args.n)
    inputs64 = {"x": x, "y": y, **bc.PARAMS_A}
    inputs32 = {"x": x.astype(np.float32), "y": y.astype(np.float32), **bc.PARAMS_A}

    value64, grads64 = model.value_and_grad(**inputs64)
    value32, grads32 = model.value_and_grad(**inputs32)
    assert np.asarray(value32).dtype == np.float32, "float32 in, float32 out"
    agreement = max(abs(float(value32) - float(value64)) / abs(float(value64)),
                    *(abs(float(grads32[k]) - float(grads64[k])) / max(abs(float(grads64[k])),
                                                                        1e-30)
                      for k in grads64))
    assert agreement < 1e-3, f"float32 disagrees with float64 by {agreement:.1e}"

    result = head_to_head(lambda: model.value_and_grad(**inputs64),
                          lambda: model.value_and_grad(**inputs32),
                          pairs=args.pairs, clock=time.process_time)
    f64, f32 = result.a.median, result.b.median
    verdict = "met" if result.ratio >= TARGET_FLOAT32 else "NOT MET"
    print(f"# bench_backends: {datetime.date.today()}, {platform.machine()}, "
          f"{platform.python_version()}, NumPy {np.__version__}")
    print(f"# command: python benchmarks/bench_backends.py --n {args.n} --pairs {args.pairs}")
    print(f"two-layer model, n = {args.n:,}, value_and_grad per call (CPU time):")
    print(f"  float64 {fmt_time(f64)}   float32 {fmt_time(f32)}   "
          f"float64/float32 {result}   (largest relative difference {agreement:.1e})")
    print(f"target: float32 ≥ {TARGET_FLOAT32}× faster than float64: {verdict}")
    if not args.no_jax:
        if importlib.util.find_spec("jax") is None:
            print("JAX: not installed, left out")
        else:
            jax_rows(args, x, y)
    if importlib.util.find_spec("torch") is None:
        print("PyTorch: not installed, left out")
    else:
        torch_rows(args, x, y)


def torch_rows(args, x, y) -> None:
    """symgrad's PyTorch backend against torch.autograd, W1, W2 and the Boston MLP, float64 on
    the CPU."""
    import sympy as sp
    import torch

    torch.set_num_threads(1)  # (one thread, as NumPy's code runs)
    X, Y = torch.as_tensor(x), torch.as_tensor(y)
    xs, ys, k, b = sp.symbols("x y k b")
    line = symgrad.compile(symgrad.mean((k * xs + b - ys) ** 2), wrt=[k, b], cache=False,
                           backend="torch")
    equations, wrt, _ = bc.model_two_layer(plain=False)
    two_layer = symgrad.compile(equations, wrt=wrt, cache=False, backend="torch")

    def line_in_torch(k, b):
        return torch.mean((k * X + b - Y) ** 2)

    def two_layer_in_torch(k1, b1, k2, b2):
        return torch.mean((k2 * torch.sigmoid(k1 * X + b1) + b2 - Y) ** 2)

    boston = bm.boston_case(steps=1)
    BX, By = torch.as_tensor(boston.X), torch.as_tensor(boston.y)
    mlp = symgrad.compile(bm.mlp_equations(), wrt=["W1", "b1", "W2", "b2"], cache=False,
                          backend="torch", shapes=MLP_SHAPES)

    def mlp_in_torch(W1, b1, W2, b2):
        return torch.mean((torch.sigmoid(BX @ W1 + b1) @ W2 + b2 - By) ** 2)

    cases = [("W1 line", line, {"k": 0.5, "b": 0.1}, {"x": X, "y": Y}, line_in_torch),
             ("W2 two-layer", two_layer, dict(bc.PARAMS_A), {"x": X, "y": Y},
              two_layer_in_torch),
             ("Boston MLP", mlp, dict(boston.start), {"X": BX, "y": By}, mlp_in_torch)]
    print(f"PyTorch {torch.__version__}, float64, n = {args.n:,}, CPU time per call, one thread "
          "(symgrad: model.value_and_grad; PyTorch: the loss and backward())")
    for label, model, params, data, in_torch in cases:
        leaves = {n: torch.tensor(np.asarray(v), dtype=torch.float64, requires_grad=True)
                  for n, v in params.items()}

        def autograd():
            for leaf in leaves.values():  # noqa: B023
                leaf.grad = None
            loss = in_torch(*leaves.values())  # noqa: B023
            loss.backward()
            return loss, {n: leaf.grad for n, leaf in leaves.items()}  # noqa: B023

        given = {n: v if isinstance(v, float) else torch.as_tensor(v) for n, v in params.items()}

        def ours():
            return model.value_and_grad(**data, **given)  # noqa: B023

        value, grads = ours()
        want, want_grads = autograd()
        want = want.detach()
        difference = max(abs(float(value) - float(want)) / abs(float(want)),
                         *(float((grads[n] - want_grads[n]).abs().max()) /
                           max(float(want_grads[n].abs().max()), 1e-30) for n in params))
        assert difference < 1e-10, f"{label}: symgrad and PyTorch disagree by {difference:.1e}"
        result = head_to_head(ours, autograd, pairs=args.pairs, clock=time.process_time)
        verdict = "met" if result.ratio <= TARGET_JAX else "NOT MET"
        print(f"  {label}: symgrad {fmt_time(result.a.median)}   PyTorch "
              f"{fmt_time(result.b.median)}   symgrad/PyTorch {result}   (largest relative "
              f"difference {difference:.1e})   target ≤ {TARGET_JAX}×: {verdict}")


TARGET_JAX = 1.1
#: The Boston MLP's shapes, declared (the code a person writes: dW1 = X.T @ dL1).
MLP_SHAPES = {"X": ("n", 12), "W1": (12, 64), "b1": (64,), "W2": (64, 1), "b2": (1,),
              "y": ("n", 1)}


def jax_rows(args, x, y) -> None:
    """symgrad's JAX backend under jit against jax.jit(jax.value_and_grad(f)), W1, W2 and the
    Boston MLP."""
    import jax
    import jax.numpy as jnp
    import sympy as sp

    jax.config.update("jax_enable_x64", True)
    X, Y = jnp.asarray(x), jnp.asarray(y)
    xs, ys, k, b = sp.symbols("x y k b")
    line = symgrad.compile(symgrad.mean((k * xs + b - ys) ** 2), wrt=[k, b], cache=False,
                           backend="jax")
    equations, wrt, _ = bc.model_two_layer(plain=False)
    two_layer = symgrad.compile(equations, wrt=wrt, cache=False, backend="jax")
    p = bc.PARAMS_A

    # (the data are arguments on both sides, as a training loop passes them)
    def line_in_jax(k, b, x, y):
        return jnp.mean((k * x + b - y) ** 2)

    def two_layer_in_jax(k1, b1, k2, b2, x, y):
        return jnp.mean((k2 * jax.nn.sigmoid(k1 * x + b1) + b2 - y) ** 2)

    boston = bm.boston_case(steps=1)
    BX, By = jnp.asarray(boston.X), jnp.asarray(boston.y)
    mlp = symgrad.compile(bm.mlp_equations(), wrt=["W1", "b1", "W2", "b2"], cache=False,
                          backend="jax", shapes=MLP_SHAPES)

    def mlp_in_jax(W1, b1, W2, b2, X, y):
        return jnp.mean((jax.nn.sigmoid(X @ W1 + b1) @ W2 + b2 - y) ** 2)

    cases = [
        ("W1 line", line, {"x": X, "y": Y, "k": 0.5, "b": 0.1}, ("k", "b"), line_in_jax,
         (X, Y)),
        ("W2 two-layer", two_layer, {"x": X, "y": Y, **p}, ("k1", "b1", "k2", "b2"),
         two_layer_in_jax, (X, Y)),
        ("Boston MLP", mlp, {"X": BX, "y": By, **boston.start}, ("W1", "b1", "W2", "b2"),
         mlp_in_jax, (BX, By)),
    ]
    print(f"JAX {jax.__version__}, float64, n = {args.n:,} (the MLP: Boston's 506 rows, "
          "12 → 64 → 1), wall time per call (symgrad: jax.jit(model.function('value_and_grad'));"
          " JAX: jax.jit(jax.value_and_grad(f)))")
    for label, model, inputs, names, in_jax, data in cases:
        ours = jax.jit(model.function("value_and_grad"))
        theirs = jax.jit(jax.value_and_grad(in_jax, argnums=tuple(range(len(names)))))
        point = [jnp.asarray(inputs[n], jnp.float64) for n in names]
        arguments = {**inputs, **dict(zip(names, point, strict=True))}
        value, grads = ours(**arguments)
        want, want_grads = theirs(*point, *data)
        difference = max(abs(float(value - want)) / abs(float(want)),
                         *(float(jnp.max(jnp.abs(grads[n] - g)) / max(jnp.max(jnp.abs(g)), 1e-30))
                           for n, g in zip(names, want_grads, strict=True)))
        assert difference < 1e-10, f"{label}: symgrad and JAX disagree by {difference:.1e}"
        result = head_to_head(lambda: jax.block_until_ready(ours(**arguments)),  # noqa: B023
                              lambda: jax.block_until_ready(theirs(*point, *data)),  # noqa: B023
                              pairs=args.pairs)
        verdict = "met" if result.ratio <= TARGET_JAX else "NOT MET"
        print(f"  {label}: symgrad {fmt_time(result.a.median)}   JAX {fmt_time(result.b.median)}"
              f"   symgrad/JAX {result}   (largest relative difference {difference:.1e})"
              f"   target ≤ {TARGET_JAX}×: {verdict}")


if __name__ == "__main__":
    main()
