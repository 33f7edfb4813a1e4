"""A Boston-housing MLP, 12 → 64 → 1 with a sigmoid hidden layer, compiled by symgrad.

    L1 = matmul(X, W1) + b1,  H = sigmoid(L1),  L2 = matmul(H, W2) + b2,
    Loss = mean((L2 - y)**2)

X holds all the Boston features but `black` (a racially motivated variable, see
examples/data/README.md): the tutorial's "all 13 features" are 12 here. They are standardised
with the training set's mean and deviation; y is medv (in $1000s). The rows are split 80/20
into a training and a test set (seeded). The script prints the chains, draws the diagrams,
trains with symgrad.fit and Adam in mini-batches, reports the test MSE (next to a linear
least-squares fit on the same split) and plots the predictions against the truth with the
residuals drawn as lines. Everything goes to examples/output/.

Run: python examples/boston_mlp.py [--epochs N] [--hidden H] [--seed S] [--quick] [--output DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import sympy as sp
from datasets import BOSTON_FEATURES, boston_matrix, standardize, train_test_split
from pictures import pyplot, render_diagrams

import symgrad
from symgrad import init
from symgrad.optim import Adam

OUTPUT = Path(__file__).resolve().parent / "output"


def mlp_equations() -> list[sp.Eq]:
    """The four equations of the MLP (X: rows of features, y: a column of targets)."""
    X, W1, b1, W2, b2, y = sp.symbols("X W1 b1 W2 b2 y")
    L1, H, L2, Loss = sp.symbols("L1 H L2 Loss")
    return [
        sp.Eq(L1, symgrad.matmul(X, W1) + b1),
        sp.Eq(H, symgrad.sigmoid(L1)),
        sp.Eq(L2, symgrad.matmul(H, W2) + b2),
        sp.Eq(Loss, symgrad.mean((L2 - y) ** 2)),
    ]


def mlp_model(inputs: int = 12, hidden: int = 64) -> symgrad.CompiledModel:
    """The loss of the MLP, compiled with respect to W1, b1, W2, b2.

    The declared shapes (None: any number of rows) are checked at compile time, and every
    call is checked against them, a mismatch naming its equation.
    """
    shapes = {"X": (None, inputs), "W1": (inputs, hidden), "b1": (hidden,),
              "W2": (hidden, 1), "b2": (1,), "y": (None, 1)}
    return symgrad.compile(mlp_equations(), wrt=["W1", "b1", "W2", "b2"], shapes=shapes)


def mlp_predictor() -> symgrad.CompiledModel:
    """The same equations with L2, the predictions, as the output (no gradient)."""
    return symgrad.compile(mlp_equations(), output="L2", wrt=[])


def mlp_start(inputs: int, hidden: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Xavier-normal weights and zero biases, from one seeded generator."""
    rng = np.random.default_rng(seed)
    return {
        "W1": init.xavier_normal((inputs, hidden), seed=rng),
        "b1": init.zeros(hidden),
        "W2": init.xavier_normal((hidden, 1), seed=rng),
        "b2": init.zeros(1),
    }






def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=200, help="passes over the training set")
    parser.add_argument("--hidden", type=int, default=64, help="hidden units")
    parser.add_argument("--lr", type=float, default=0.01, help="Adam's learning rate")
    parser.add_argument("--batch-size", type=int, default=32, help="rows per mini-batch")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and the start")
    parser.add_argument("--quick", action="store_true", help="a short run (for CI)")
    parser.add_argument("--output", type=Path, default=OUTPUT,
                        help="folder for the pictures (default: examples/output)")
    args = parser.parse_args()
    output: Path = args.output
    epochs = 100 if args.quick else args.epochs

    features, medv = boston_matrix()
    train, test = train_test_split(len(medv), test_fraction=0.2, seed=args.seed)
    X_train, X_test = standardize(features[train], features[test])
    y_train, y_test = medv[train][:, None], medv[test][:, None]
    print(f"Boston: {len(train)} training and {len(test)} test houses, "
          f"{len(BOSTON_FEATURES)} features ({', '.join(BOSTON_FEATURES)}; not `black`)")

    model = mlp_model(len(BOSTON_FEATURES), args.hidden)
    print(f"\nMLP {len(BOSTON_FEATURES)} → {args.hidden} → 1, sigmoid hidden layer. "
          f"The chain rule, parameter by parameter:")
    for name in model.wrt:
        print(f"  ∂{model.output}/∂{name} = {model.chain(name)}")
    output.mkdir(parents=True, exist_ok=True)
    for path in render_diagrams(model, output, "boston_mlp"):
        print(f"Diagram: {path}")

    data = {"X": X_train, "y": y_train}
    per_epoch = -(-len(train) // args.batch_size)
    curve: list[tuple[int, float, float]] = []  # (epoch, train MSE, test MSE)

    def evaluate(step: int, loss: float, params: dict) -> None:
        if (step + 1) % per_epoch == 0:
            curve.append((
                (step + 1) // per_epoch,
                float(model(X=X_train, y=y_train, **params)),
                float(model(X=X_test, y=y_test, **params)),
            ))

    start = mlp_start(len(BOSTON_FEATURES), args.hidden, seed=args.seed)
    first = float(model(**data, **start))
    print(f"\nTraining: Adam(lr={args.lr}), {epochs} epochs in mini-batches of "
          f"{args.batch_size} (symgrad.fit)")
    history = symgrad.fit(model, start, data, Adam(lr=args.lr), epochs=epochs,
                          batch_size=args.batch_size, seed=args.seed, callback=evaluate)
    curve.insert(0, (0, first, float(model(X=X_test, y=y_test, **start))))
    every = max(1, epochs // 10)
    for epoch, train_mse, test_mse in curve:
        if epoch % every == 0 or epoch == epochs:
            print(f"epoch {epoch:4d}   train MSE {train_mse:9.3f}   test MSE {test_mse:9.3f}")
    params = history.params
    print(f"{history.steps} steps in {history.seconds:.2f} s, with the evaluations above "
          f"({1e6 * history.seconds / history.steps:.0f} µs a step)")

    predicted = mlp_predictor()(X=X_test, **params)
    test_mse = float(np.mean((predicted - y_test) ** 2))
    ones_train = np.column_stack([X_train, np.ones(len(train))])
    ones_test = np.column_stack([X_test, np.ones(len(test))])
    coef = np.linalg.lstsq(ones_train, y_train, rcond=None)[0]
    linear_mse = float(np.mean((ones_test @ coef - y_test) ** 2))
    print(f"\ntest MSE {test_mse:.3f} (RMSE ${1000 * np.sqrt(test_mse):,.0f}); "
          f"a linear least-squares fit on the same split: test MSE {linear_mse:.3f}")

    plt = pyplot()
    if plt is None:
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5.2), layout="constrained")
    truth, guess = y_test.ravel(), predicted.ravel()
    left.vlines(truth, truth, guess, color="tab:red", alpha=0.6, lw=1.2,
                label="residual (prediction − truth)")
    left.scatter(truth, guess, s=16, color="tab:blue", zorder=3, label="test house")
    lo, hi = 0.0, 55.0
    left.plot([lo, hi], [lo, hi], color="0.3", lw=1, ls="--", label="prediction = truth")
    left.set(xlim=(lo, hi), ylim=(lo, hi), aspect="equal",
             xlabel="true medv ($1000s)", ylabel="predicted medv ($1000s)",
             title=f"MLP on {len(test)} test houses: MSE {test_mse:.2f} "
                   f"(linear fit {linear_mse:.2f})")
    left.legend(loc="upper left", fontsize=9)

    epoch_axis, train_curve, test_curve = zip(*curve, strict=True)
    right.semilogy(epoch_axis, train_curve, color="tab:blue", label="training set")
    right.semilogy(epoch_axis, test_curve, color="tab:orange", label="test set")
    right.axhline(linear_mse, color="0.4", ls=":", label=f"linear fit, test ({linear_mse:.1f})")
    right.set(xlabel="epoch", ylabel="MSE (log scale)",
              title=f"Adam, lr {args.lr}, batches of {args.batch_size}")
    right.grid(True, which="major", alpha=0.3)
    right.legend(fontsize=9)
    picture = output / "boston_mlp.png"
    fig.savefig(picture, dpi=110)
    plt.close(fig)
    print(f"Plots: {picture}")


if __name__ == "__main__":
    main()
