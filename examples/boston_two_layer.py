"""The tutorial's two-layer model on the Boston data, compiled by symgrad.

    L1 = k1*x + b1,  σ = sigmoid(L1),  L2 = k2*σ + b2,  Loss = mean((L2 - y)**2)

x is the average number of rooms (rm, standardised), y the median home value (medv, in
$1000s). The script prints the chain rule for every parameter, draws the forward and backward
diagrams, trains by gradient descent with symgrad.fit (the loss falling), plots the loss curve
and the fitted curve, and writes the generated NumPy module. Everything goes to
examples/output/.

Run: python examples/boston_two_layer.py [--steps N] [--lr LR] [--quick] [--output DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import sympy as sp
from datasets import load_boston
from pictures import pyplot, render_diagrams

import symgrad
from symgrad.optim import SGD

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


def starting_point(seed: int = 0) -> dict[str, float]:
    """k1, b1, k2, b2 drawn from N(0, 1) with a seeded generator (the tutorial's start)."""
    rng = np.random.default_rng(seed)
    return {name: float(rng.normal()) for name in ("k1", "b1", "k2", "b2")}






def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5_000, help="gradient-descent steps")
    parser.add_argument("--lr", type=float, default=0.03, help="learning rate")
    parser.add_argument("--quick", action="store_true", help="a short run (for CI)")
    parser.add_argument("--output", type=Path, default=OUTPUT,
                        help="folder for the pictures (default: examples/output)")
    args = parser.parse_args()
    output: Path = args.output
    steps = 500 if args.quick else args.steps

    data = load_boston()
    rooms, y = data["rm"], data["medv"]
    x = (rooms - rooms.mean()) / rooms.std()  # standardised: the sigmoid sees values near 0

    model = two_layer_model()
    print("The chain rule, parameter by parameter:")
    for name in model.wrt:
        print(f"  ∂{model.output}/∂{name} = {model.chain(name)}")
    print()
    print(model.explain().split("\n\n")[1])  # the first parameter's factors, written out
    print()

    output.mkdir(parents=True, exist_ok=True)
    diagrams = render_diagrams(model, output, "boston_two_layer")
    for path in diagrams:
        print(f"Diagram: {path}")
    if diagrams:
        print()

    every = max(1, steps // 10)

    def report(step: int, loss: float, params: dict) -> None:
        if step % every == 0 or step == steps - 1:
            print(f"step {step:6d}   loss {loss:10.4f}")

    print(f"Gradient descent, lr {args.lr}, {steps} steps (symgrad.fit with SGD):")
    history = symgrad.fit(model, starting_point(), {"x": x, "y": y}, SGD(lr=args.lr),
                          steps=steps, callback=report, progress=False)
    params = history.params
    final = float(model(x=x, y=y, **params))
    print(f"{steps} steps in {history.seconds:.2f} s "
          f"({1e6 * history.seconds / steps:.0f} µs a step); final loss {final:.4f}")
    print("parameters:", ", ".join(f"{k} = {float(v):.4f}" for k, v in params.items()))

    path = model.save(output / "boston_two_layer_model.py")
    print(f"\nThe generated NumPy module (value_and_grad, forward) was written to {path}")

    plt = pyplot()
    if plt is None:
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8), layout="constrained")
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    left.loglog(np.arange(1, history.steps + 1), history.losses, color="tab:blue", lw=1.5)
    left.set(xlabel="step (log scale)", ylabel="Loss = mean((L2 − y)²) (log scale)",
             title=f"Gradient descent, lr {args.lr}: loss {history.losses[0]:.1f} → {final:.2f}")
    left.yaxis.set_major_formatter(ScalarFormatter())
    left.yaxis.set_minor_formatter(NullFormatter())
    left.set_yticks([30, 40, 60, 100, 200, 400, 600])
    left.grid(True, which="major", alpha=0.3)

    grid = np.linspace(rooms.min(), rooms.max(), 300)
    z = (grid - rooms.mean()) / rooms.std()
    curve = params["k2"] / (1 + np.exp(-(params["k1"] * z + params["b1"]))) + params["b2"]
    right.scatter(rooms, y, s=10, alpha=0.5, color="0.45", label="houses")
    right.plot(grid, curve, color="tab:blue", lw=2.5,
               label="L2 = k2·sigmoid(k1·x + b1) + b2")
    right.set(xlabel="average number of rooms (rm)", ylabel="median value, $1000s (medv)",
              title="The trained two-layer model")
    right.set_ylim(top=60)  # room above the data for the legend
    right.set_yticks(range(10, 51, 10))
    right.legend(loc="upper left", fontsize=9)
    picture = output / "boston_two_layer.png"
    fig.savefig(picture, dpi=110)
    plt.close(fig)
    print(f"Plots: {picture}")


if __name__ == "__main__":
    main()
