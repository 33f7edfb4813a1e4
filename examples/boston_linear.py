"""The tutorial's first day on the Boston data: neighbours, random search, gradient descent.

x is the average number of rooms (rm), y the median home value (medv, in $1000s).

1. k-nearest neighbours: estimate medv for a house with rm = 7 as the mean of the medv of the
   houses whose rm is closest.
2. Random search for the line y = k*x + b: 1,000 seeded random tries, keep the best.
3. Gradient descent with symgrad: compile Loss = mean((k*x + b - y)**2), train it with
   symgrad.fit, and check the result against NumPy's least-squares line (np.polyfit).

Writes examples/output/boston_linear.png: the data with the fitted lines, and the loss curve.

Run: python examples/boston_linear.py [--quick] [--output DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import sympy as sp
from datasets import load_boston
from pictures import pyplot

import symgrad
from symgrad.optim import SGD

OUTPUT = Path(__file__).resolve().parent / "output"


def nearest_neighbours(x: np.ndarray, y: np.ndarray, at: float, count: int) -> float:
    """The mean of y over the ``count`` points whose x is closest to ``at``."""
    nearest = np.argsort(np.abs(x - at), kind="stable")[:count]
    return float(np.mean(y[nearest]))


def random_search(
    x: np.ndarray, y: np.ndarray, tries: int, seed: int
) -> tuple[float, float, float]:
    """The best (k, b, loss) among ``tries`` random lines, k and b uniform in [-100, 100]."""
    rng = np.random.default_rng(seed)
    best = (0.0, 0.0, np.inf)
    for _ in range(tries):
        k, b = rng.uniform(-100, 100, size=2)
        loss = float(np.mean((k * x + b - y) ** 2))
        if loss < best[2]:
            best = (float(k), float(b), loss)
    return best


def line_model() -> symgrad.CompiledModel:
    """Loss = mean((k*x + b - y)**2), compiled with respect to k and b."""
    x, y, k, b = sp.symbols("x y k b")
    return symgrad.compile(symgrad.mean((k * x + b - y) ** 2), wrt=[k, b])


def line_label(k: float, b: float) -> str:
    """``9.10·rm − 34.67``: the line as a reader writes it."""
    return f"{k:.2f}·rm {'−' if b < 0 else '+'} {abs(b):.2f}"




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run (for CI)")
    parser.add_argument("--neighbours", type=int, default=5, help="neighbours for the estimate")
    parser.add_argument("--tries", type=int, default=1_000, help="random-search tries")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random search")
    parser.add_argument("--output", type=Path, default=OUTPUT,
                        help="folder for the pictures (default: examples/output)")
    args = parser.parse_args()
    output: Path = args.output

    data = load_boston()
    x, y = data["rm"], data["medv"]

    print("1. Nearest neighbours")
    estimate = nearest_neighbours(x, y, 7.0, args.neighbours)
    print(f"   the {args.neighbours} houses with rm closest to 7 have mean medv {estimate:.3f}"
          f" (${1000 * estimate:,.0f})")

    print(f"\n2. Random search over k and b in [-100, 100] ({args.tries:,} tries, seed "
          f"{args.seed})")
    k_rs, b_rs, loss_rs = random_search(x, y, args.tries, args.seed)
    print(f"   best: k = {k_rs:.5f}, b = {b_rs:.5f}, loss = {loss_rs:.5f}")

    print("\n3. Gradient descent on Loss = mean((k*x + b - y)**2), compiled by symgrad")
    model = line_model()
    for name in model.wrt:
        print(f"   ∂Loss/∂{name}: {model.gradients[sp.Symbol(name)]}")
    # rm is not centred (its mean is 6.3), so the loss is a long narrow valley: plain gradient
    # descent needs tens of thousands of steps at the largest stable rate; momentum 0.9 (the
    # heavy ball, torch.optim.SGD's rule) crosses it in a few thousand.
    start = {"k": 0.0, "b": 0.0}
    steps_plain = 4_000 if args.quick else 40_000
    plain = symgrad.fit(model, start, {"x": x, "y": y}, SGD(lr=0.02), steps=steps_plain,
                        progress=False)
    heavy = symgrad.fit(model, start, {"x": x, "y": y}, SGD(lr=0.01, momentum=0.9),
                        steps=8_000, progress=False)
    k_gd, b_gd = heavy.params["k"], heavy.params["b"]
    loss_gd = float(model(x=x, y=y, k=k_gd, b=b_gd))
    k_ls, b_ls = np.polyfit(x, y, 1)
    loss_ls = float(np.mean((k_ls * x + b_ls - y) ** 2))
    rows = [
        (f"plain GD, lr 0.02, {plain.steps:,} steps", plain.params["k"], plain.params["b"],
         plain.losses[-1], f"{plain.seconds:.2f} s"),
        (f"GD, lr 0.01, momentum 0.9, {heavy.steps:,} steps", k_gd, b_gd, loss_gd,
         f"{heavy.seconds:.2f} s"),
        ("np.polyfit (least squares)", k_ls, b_ls, loss_ls, ""),
    ]
    for label, k_, b_, loss_, seconds in rows:
        line = f"   {label:<40} k = {k_:.5f}, b = {b_:.5f}, loss = {loss_:.5f}  {seconds}"
        print(line.rstrip())
    agree = abs(k_gd - k_ls) < 5e-5 and abs(b_gd - b_ls) < 5e-5
    print(f"   gradient descent {'agrees' if agree else 'DOES NOT agree'} with least squares "
          f"to 5 decimals")
    print(f"   its prediction for rm = 7: medv {k_gd * 7 + b_gd:.3f} (neighbours: {estimate:.3f})")

    plt = pyplot()
    if plt is None:
        return
    output.mkdir(parents=True, exist_ok=True)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8), layout="constrained")
    left.scatter(x, y, s=10, alpha=0.5, color="0.45", label="houses")
    grid = np.linspace(x.min(), x.max(), 2)
    left.plot(grid, k_rs * grid + b_rs, color="tab:orange", lw=2,
              label=f"random search: {line_label(k_rs, b_rs)} (loss {loss_rs:.1f})")
    left.plot(grid, k_gd * grid + b_gd, color="tab:blue", lw=2,
              label=f"gradient descent: {line_label(k_gd, b_gd)} (loss {loss_gd:.1f})")
    left.plot([7.0], [estimate], marker="*", ms=16, color="tab:red", ls="none",
              label=f"{args.neighbours} nearest neighbours at rm = 7: {estimate:.1f}")
    left.set(xlabel="average number of rooms (rm)", ylabel="median value, $1000s (medv)",
             title="Boston: medv against rm")
    left.set_ylim(-6, 72)  # room above the data for the legend
    left.set_yticks(range(0, 51, 10))
    left.legend(loc="upper left", fontsize=9)

    for history, label, color in (
        (plain, "plain GD, lr 0.02", "tab:gray"),
        (heavy, "GD with momentum 0.9, lr 0.01", "tab:blue"),
    ):
        excess = np.asarray(history.losses) - loss_ls
        excess[excess < 1e-12 * loss_ls] = np.nan  # below rounding: nothing left to see
        right.semilogy(np.arange(1, history.steps + 1), excess, color=color, lw=1.5,
                       label=label)
    right.set(xlabel="step", ylabel="loss − least-squares loss (log scale)",
              title=f"Gradient descent: excess loss over the optimum {loss_ls:.3f}")
    right.set_xscale("log")
    right.set_ylim(bottom=1e-11)
    right.grid(True, which="major", alpha=0.3)
    right.legend(fontsize=9)
    path = output / "boston_linear.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"\nWrote {path}")


if __name__ == "__main__":
    main()
