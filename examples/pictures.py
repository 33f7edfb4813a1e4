"""What the examples share for their pictures: Graphviz diagrams and matplotlib on Agg."""

from __future__ import annotations

from pathlib import Path

import symgrad


def render_diagrams(model: symgrad.CompiledModel, output: Path, stem: str) -> list[Path]:
    """Draw the forward and backward (the first parameter's chain highlighted) diagrams as PNG;
    return their paths.

    Prints a message and returns [] when Graphviz's dot program is missing.
    """
    from symgrad.render import GraphvizNotFound

    paths = []
    try:
        paths.append(model.render(output / f"{stem}_forward.png", kind="forward"))
        paths.append(model.render(output / f"{stem}_backward.png", kind="backward",
                                  highlight=model.wrt[0]))
    except GraphvizNotFound as e:
        print(f"no diagrams: {e}")
    return paths


def pyplot():
    """matplotlib.pyplot on the Agg backend (files only), or None when matplotlib is absent."""
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is not installed (pip install 'symgrad[plot]'): no plots")
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
