"""The tutorial's two-layer model on the Boston data, compiled by symgrad.

    L1 = k1*x + b1,  σ = sigmoid(L1),  L2 = k2*σ + b2,  Loss = mean((L2 - y)**2)

x is the average number of rooms (rm), y the median home value (medv, in $1000s). The script
prints the chain rule for every parameter, trains by gradient descent, and writes the
generated NumPy module to examples/output/.

Run: python examples/boston_two_layer.py [--steps N] [--quick]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import sympy as sp
from datasets import load_boston

import symgrad

OUTPUT = Path(__file__).resolve().parent / "output"


def two_layer_model() -> symgrad.CompiledModel:
    """The four equations of the tutorial, compiled with respect to k1, b1, k2, b2."""
    x, y, k1, b1, k2, b2 = sp.symbols("x y k1 b1 k2 b2")
    L1, σ, L2, Loss = sp.symbols("L1 σ L2 Loss")
    equations = [
        sp.Eq(L1, k1 * x + b1),
        sp.Eq(σ, symgrad.sigmoid(L1)),
        sp.Eq(L2, k2 * σ + b2),
        sp.Eq(Loss, symgrad.mean((L2 - y) ** 2)),
    ]
    return symgrad.compile(equations, wrt=[k1, b1, k2, b2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5_000, help="gradient-descent steps")
    parser.add_argument("--lr", type=float, default=0.05, help="learning rate")
    parser.add_argument("--quick", action="store_true", help="a short run (for CI)")
    args = parser.parse_args()
    steps = 500 if args.quick else args.steps

    data = load_boston()
    x, y = data["rm"], data["medv"]
    x = (x - x.mean()) / x.std()  # standardised rooms: the sigmoid sees values near 0

    model = two_layer_model()
    print("The chain rule, parameter by parameter:")
    for name in model.wrt:
        print(f"  ∂{model.output}/∂{name} = {model.chain(name)}")
    print()
    print(model.explain().split("\n\n")[1])  # the first parameter's factors, written out
    print()

    rng = np.random.default_rng(0)
    params = {"k1": rng.normal(), "b1": rng.normal(), "k2": rng.normal(), "b2": rng.normal()}
    start = time.perf_counter()
    for step in range(steps + 1):
        loss, grads = model.value_and_grad(x=x, y=y, **params)
        if step % (steps // 10) == 0:
            print(f"step {step:6d}   loss {loss:10.4f}")
        for name, g in grads.items():
            params[name] -= args.lr * g
    seconds = time.perf_counter() - start
    print(f"{steps} steps in {seconds:.2f} s ({1e6 * seconds / steps:.0f} µs a step)")
    print("parameters:", ", ".join(f"{k} = {float(v):.4f}" for k, v in params.items()))

    OUTPUT.mkdir(exist_ok=True)
    path = model.save(OUTPUT / "boston_two_layer_model.py")
    print(f"\nThe generated NumPy module (value_and_grad, forward) was written to {path}")


if __name__ == "__main__":
    main()
