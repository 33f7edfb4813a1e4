"""A softmax classifier of the 8x8 handwritten digits, compiled by symgrad.

    Z = matmul(X, W) + b,  P = log_softmax(Z, axis=1),  Loss = -mean(sum(Y*P, axis=1))

X holds the 64 pixels of each image (scaled from 0-16 to 0-1), Y the one-hot labels. With
``--hidden N`` the model gets one sigmoid hidden layer first (H = sigmoid(matmul(X, W1) + b1),
Z = matmul(H, W2) + b2). log_softmax is computed in its stable form (shifted by the row's
maximum), so the cross-entropy never overflows. The rows are split 80/20 into a training and
a test set (seeded); the script prints the chains, draws the diagrams, trains with symgrad.fit
and Adam in mini-batches, reports the test accuracy and draws the confusion matrix and some
of the test digits it got wrong. Everything goes to examples/output/.

Run: python examples/digits_classifier.py [--hidden N] [--epochs N] [--seed S] [--quick]
     [--output DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import sympy as sp
from datasets import load_digits, train_test_split
from pictures import pyplot, render_diagrams

import symgrad
from symgrad import init
from symgrad.optim import Adam

OUTPUT = Path(__file__).resolve().parent / "output"
CLASSES = 10


def classifier_equations(hidden: int = 0) -> list[sp.Eq]:
    """Softmax regression (``hidden=0``) or one sigmoid hidden layer, with the cross-entropy.

    The cross-entropy is -mean(sum(Y*log_softmax(Z, axis=1), axis=1)), written in two
    equations so that the log-probabilities P have a name.
    """
    X, Y = sp.symbols("X Y")
    Z, Loss = sp.symbols("Z Loss")
    if hidden:
        W1, b1, W2, b2, L1, H = sp.symbols("W1 b1 W2 b2 L1 H")
        layers = [
            sp.Eq(L1, symgrad.matmul(X, W1) + b1),
            sp.Eq(H, symgrad.sigmoid(L1)),
            sp.Eq(Z, symgrad.matmul(H, W2) + b2),
        ]
    else:
        W, b = sp.symbols("W b")
        layers = [sp.Eq(Z, symgrad.matmul(X, W) + b)]
    P = sp.Symbol("P")  # log-probabilities: named, so the diagrams show log_softmax's factor
    return [
        *layers,
        sp.Eq(P, symgrad.log_softmax(Z, axis=1)),
        sp.Eq(Loss, -symgrad.mean(symgrad.sum(Y * P, axis=1))),
    ]


def parameters(hidden: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Xavier-normal weights and zero biases, from one seeded generator."""
    rng = np.random.default_rng(seed)
    if not hidden:
        return {"W": init.xavier_normal((64, CLASSES), seed=rng), "b": init.zeros(CLASSES)}
    return {
        "W1": init.xavier_normal((64, hidden), seed=rng),
        "b1": init.zeros(hidden),
        "W2": init.xavier_normal((hidden, CLASSES), seed=rng),
        "b2": init.zeros(CLASSES),
    }


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """counts[i, j]: how many test images of digit i were classified as j."""
    counts = np.zeros((CLASSES, CLASSES), dtype=int)
    np.add.at(counts, (truth, predicted), 1)
    return counts






def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=0,
                        help="hidden units (0: softmax regression, the default)")
    parser.add_argument("--epochs", type=int, default=30, help="passes over the training set")
    parser.add_argument("--lr", type=float, default=0.01, help="Adam's learning rate")
    parser.add_argument("--batch-size", type=int, default=64, help="rows per mini-batch")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and the start")
    parser.add_argument("--quick", action="store_true", help="a short run (for CI)")
    parser.add_argument("--output", type=Path, default=OUTPUT,
                        help="folder for the pictures (default: examples/output)")
    args = parser.parse_args()
    output: Path = args.output
    epochs = min(args.epochs, 5) if args.quick else args.epochs

    images, labels = load_digits()
    train, test = train_test_split(len(labels), test_fraction=0.2, seed=args.seed)
    X = images / 16.0
    Y = np.eye(CLASSES)[labels]
    print(f"Digits: {len(train)} training and {len(test)} test images of 8x8 pixels, "
          f"{CLASSES} classes")

    equations = classifier_equations(args.hidden)
    params = parameters(args.hidden, seed=args.seed)
    model = symgrad.compile(equations, wrt=list(params))
    scores = symgrad.compile(equations, output="Z", wrt=[])  # the logits, to classify
    kind = (f"one sigmoid hidden layer of {args.hidden}" if args.hidden
            else "softmax regression")
    print(f"\nModel: {kind}; P = log_softmax(Z, axis=1), cross-entropy "
          f"Loss = -mean(sum(Y*P, axis=1)).")
    print("The chain rule, parameter by parameter:")
    for name in model.wrt:
        print(f"  ∂{model.output}/∂{name} = {model.chain(name)}")
    output.mkdir(parents=True, exist_ok=True)
    stem = f"digits_hidden{args.hidden}" if args.hidden else "digits_softmax"
    for path in render_diagrams(model, output, stem):
        print(f"Diagram: {path}")

    def accuracy(params: dict, rows: np.ndarray) -> float:
        return float(np.mean(np.argmax(scores(X=X[rows], **params), axis=1) == labels[rows]))

    print(f"\nTraining: Adam(lr={args.lr}), {epochs} epochs in mini-batches of "
          f"{args.batch_size} (symgrad.fit)")
    per_epoch = -(-len(train) // args.batch_size)
    every = max(1, epochs // 5)

    def report(step: int, loss: float, params: dict) -> None:
        epoch = (step + 1) // per_epoch
        if (step + 1) % per_epoch == 0 and (epoch % every == 0 or epoch == epochs):
            loss_now = float(model(X=X[train], Y=Y[train], **params))
            print(f"epoch {epoch:3d}   training loss {loss_now:.4f}"
                  f"   test accuracy {accuracy(params, test):.3f}")

    history = symgrad.fit(model, params, {"X": X[train], "Y": Y[train]}, Adam(lr=args.lr),
                          epochs=epochs, batch_size=args.batch_size, seed=args.seed,
                          callback=report)
    trained = history.params
    print(f"{history.steps} steps in {history.seconds:.2f} s, with the evaluations above "
          f"({1e6 * history.seconds / history.steps:.0f} µs a step)")
    predicted = np.argmax(scores(X=X[test], **trained), axis=1)
    test_accuracy = float(np.mean(predicted == labels[test]))
    print(f"\ntest accuracy {test_accuracy:.4f} ({np.sum(predicted == labels[test])} of "
          f"{len(test)}); training accuracy {accuracy(trained, train):.4f}")
    counts = confusion_matrix(labels[test], predicted)
    print("confusion matrix (rows: true digit, columns: predicted):")
    print("      " + " ".join(f"{j:3d}" for j in range(CLASSES)))
    for i in range(CLASSES):
        print(f"  {i:2d}  " + " ".join(f"{c:3d}" for c in counts[i]))

    plt = pyplot()
    if plt is None:
        return
    wrong = test[predicted != labels[test]]
    guesses = predicted[predicted != labels[test]]
    shown = min(len(wrong), 12)
    fig = plt.figure(figsize=(11, 5.6), layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=[1.25, 1])
    ax = left.subplots()
    image = ax.imshow(counts, cmap="Blues")
    for i in range(CLASSES):
        for j in range(CLASSES):
            if counts[i, j]:
                dark = counts[i, j] > counts.max() / 2
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=10,
                        color="white" if dark else ("tab:red" if i != j else "black"))
    ax.set(xticks=range(CLASSES), yticks=range(CLASSES), xlabel="predicted digit",
           ylabel="true digit",
           title=f"Confusion matrix, {len(test)} test images: accuracy {test_accuracy:.1%}")
    left.colorbar(image, ax=ax, shrink=0.8, label="images")
    right.suptitle(f"Misclassified test digits ({len(wrong)}; {shown} shown)")
    if shown:
        axes = right.subplots(3, 4)
        for k, a in enumerate(axes.flat):
            a.set_axis_off()
            if k < shown:
                a.imshow(images[wrong[k]].reshape(8, 8), cmap="gray_r", vmin=0, vmax=16)
                a.set_title(f"true {labels[wrong[k]]}, said {guesses[k]}", fontsize=10)
    picture = output / "digits_confusion.png"
    fig.savefig(picture, dpi=110)
    plt.close(fig)
    print(f"Picture: {picture}")


if __name__ == "__main__":
    main()
