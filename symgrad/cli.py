"""The ``symgrad`` command (also ``python -m symgrad``).

``symgrad compile`` compiles a model given as text and prints its chains and the generated
code, or writes the module, a diagram or the explanation; ``symgrad demo`` draws the
tutorial's two-layer model and prints its chains. Run ``symgrad compile --help`` for details.

Exit status: 0 on success, 2 on bad usage or a model error (a one-line message on stderr;
``--debug`` shows the traceback), 1 on an internal error.

>>> main(["compile", "mean((k*x + b - y)**2)", "--wrt", "k,b", "--no-code"])
∂f/∂k = 2·x·(b − y + k·x)/N
∂f/∂b = 2·(b − y + k·x)/N
0
>>> main(["compile", "k*x +"])  # stderr: symgrad: error: cannot read 'k*x +' at column 6 ...
2
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import sympy as sp

from . import __version__, chains
from . import compile as compile_model
from .errors import SymgradError
from .model import CompiledModel
from .parsing import (
    equation_name,
    parse_equation,
    parse_equations,
    parse_expression,
    read_equations,
)
from .render import GROUPS, KINDS

#: The tutorial's two-layer model, as a model file would hold it.
SEED = """\
# The tutorial's two-layer model: x -> L1 -> σ -> L2 -> Loss <- y
L1 = k1*x + b1
σ = sigmoid(L1)
L2 = k2*σ + b2
Loss = mean((L2 - y)**2)
"""
SEED_WRT = ("k1", "b1", "k2", "b2")
PICTURES = ("svg", "png", "pdf")


def seed_model() -> CompiledModel:
    """The tutorial's two-layer model (``SEED``), compiled with respect to k1, b1, k2, b2.

    >>> seed_model().chain("k1")
    '∂Loss/∂L2·∂L2/∂σ·∂σ/∂L1·∂L1/∂k1'
    """
    return compile_model(parse_equations(SEED.splitlines()), wrt=list(SEED_WRT))


def demo(
    directory: str | os.PathLike = ".", format: str = "svg", highlight: str | None = None
) -> tuple[CompiledModel, list[Path]]:
    """Write the seed model into ``directory``: its text and its two diagrams.

    Returns the model and the paths it wrote: ``two_layer.txt`` (the model file, for
    ``symgrad compile --file``), ``two_layer_forward.<format>`` and
    ``two_layer_backward.<format>``; ``highlight`` marks one parameter's chain in both
    diagrams. Needs Graphviz's ``dot`` program. In a notebook, display the returned model to
    see its forward diagram and chains, and ``model.graph("backward")`` for the backward one.
    """
    if format not in PICTURES:
        raise SymgradError(
            f"unknown picture format {format!r}; choose one of {', '.join(PICTURES)}"
        )
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model = seed_model()
    pictures = [
        model.render(directory / f"two_layer_{kind}.{format}", kind, highlight)
        for kind in ("forward", "backward")
    ]
    text = directory / "two_layer.txt"
    text.write_text(SEED, encoding="utf-8")
    return model, [text, *pictures]


def chain_lines(model: CompiledModel) -> list[str]:
    """``∂out/∂p = chain`` for every parameter; a chain of one factor is written out.

    >>> k, x = sp.symbols("k x")
    >>> chain_lines(compile_model(k*x**2, wrt=[k]))
    ['∂f/∂k = x²']
    """
    lines = []
    for p in model.ir.wrt:
        out, name = model.output, model.ir[p].label
        chain = chains.chain(model.ir, p)
        if chain == f"∂{out}/∂{name}":
            labels = {n.symbol: n.label for n in model.ir}
            chain = chains.display(chains.local_factor(model.ir, model.ir.output, p), labels)
        lines.append(f"∂{out}/∂{name} = {chain}")
    return lines


# -- the command line --------------------------------------------------------------------------


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage block
        if "required: COMMAND" in message:
            message = "give a command: compile or demo"
        raise _UsageError(f"{message} (see '{self.prog} --help')")


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the traceback of an error")
    parser = _Parser(
        prog="symgrad",
        description="Compile SymPy models to NumPy value-and-gradient code; see the chain rule.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"symgrad {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    c = commands.add_parser(
        "compile",
        parents=[common],
        help="compile a model; print its chains and code, write the module or a diagram",
        description=(
            "Compile a model written as text. The model is EXPRESSION (its output is --name), "
            "and/or equations 'name = expression' from --eq options and --file, in any order. "
            "Functions: sigmoid softplus relu sum mean exp log sqrt sin cos tan tanh sinh cosh "
            "asin acos atan Abs sign Max Min Heaviside Piecewise; ^ or ** is power."
        ),
        epilog=(
            "examples:\n"
            '  symgrad compile "mean((k*x + b - y)**2)" --wrt k,b\n'
            '  symgrad compile --eq "L1 = k1*x + b1" --eq "σ = sigmoid(L1)" \\\n'
            '                  --eq "Loss = mean((σ - y)**2)" --wrt k1,b1 --explain\n'
            "  symgrad compile --file model.txt --emit model.py --graph model.svg "
            "--kind backward --highlight k1"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    c.add_argument("expression", nargs="?", help="an expression, or one 'name = expression'")
    c.add_argument("--eq", action="append", default=[], metavar="'NAME = EXPR'",
                   help="an equation (repeat for several)")
    c.add_argument("--file", type=Path, help="a model file: one 'name = expression' per line, "
                   "'#' starts a comment")
    c.add_argument("--wrt", help="comma-separated inputs to differentiate by (default: all)")
    c.add_argument("--output", help="the equation whose value is the output (default: the last)")
    c.add_argument("--name", default="f", help="the output's name for a bare EXPRESSION")
    c.add_argument("--emit", type=Path, metavar="MODULE.py",
                   help="write the standalone NumPy module (the code is then not printed)")
    c.add_argument("--graph", type=Path, metavar="PICTURE",
                   help="draw a diagram: .svg, .png or .pdf (needs Graphviz), or .dot/.gv text")
    c.add_argument("--kind", choices=KINDS, help="the diagram: forward (default), backward, both")
    c.add_argument("--highlight", metavar="PARAM", help="mark the chain(s) of PARAM in the diagram")
    c.add_argument("--group", choices=GROUPS, help="diagram detail: one node per equation "
                   "(collapse), temporaries boxed per equation (cluster), every node (none)")
    c.add_argument("--explain", action="store_true",
                   help="print every chain, its local factors and the assembled gradient "
                   "(instead of the chains and the code)")
    c.add_argument("--format", choices=("text", "latex", "markdown"),
                   help="the explanation's format (implies --explain; default text)")
    c.add_argument("--no-code", action="store_true", help="do not print the generated code")
    c.set_defaults(run=_compile)

    d = commands.add_parser(
        "demo",
        parents=[common],
        help="draw the tutorial's two-layer model, forward and backward; print its chains",
        description="Write the tutorial's two-layer model (two_layer.txt) and its forward and "
        "backward diagrams (two_layer_forward.svg, two_layer_backward.svg); print its chains.",
    )
    d.add_argument("--out", type=Path, default=Path("."), metavar="DIR",
                   help="where to write the pictures (default: the current directory)")
    d.add_argument("--format", choices=PICTURES, default="svg", help="picture format")
    d.add_argument("--highlight", metavar="PARAM", help="mark the chain(s) of PARAM (e.g. k1)")
    d.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``symgrad`` command with ``argv`` (default: ``sys.argv[1:]``); the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    for stream in (sys.stdout, sys.stderr):  # never fail on a terminal that lacks ∂ or σ
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    debug = "--debug" in argv
    try:
        args = _parser().parse_args(argv)
        return args.run(args)
    except _UsageError as e:
        return _fail(str(e), debug)
    except SymgradError as e:
        return _fail(str(e), debug)
    except OSError as e:  # a file that cannot be read or written
        where = f"{e.filename}: " if e.filename else ""
        return _fail(f"{where}{e.strerror or e}", debug)
    except KeyboardInterrupt:
        return 130
    except Exception as e:
        if debug:
            raise
        print(f"symgrad: internal error: {type(e).__name__}: {_one_line(str(e))} "
              "(run with --debug for the traceback)", file=sys.stderr)
        return 1


def _fail(message: str, debug: bool) -> int:
    if debug:
        raise
    print(f"symgrad: error: {_one_line(message)}", file=sys.stderr)
    return 2


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _compile(args: argparse.Namespace) -> int:
    if args.graph is None:
        for option in ("kind", "highlight", "group"):
            if getattr(args, option) is not None:
                raise _UsageError(f"--{option} applies to a diagram: add --graph PICTURE")
    model_spec = _model(args)
    wrt = _wrt(args.wrt, model_spec)
    model = compile_model(model_spec, wrt=wrt, name=args.name, output=args.output)
    written = []  # files first: a failure leaves no half-printed output behind
    if args.graph is not None:
        group = {"group": args.group} if args.group else {}
        written.append(model.render(args.graph, args.kind or "forward", args.highlight, **group))
    if args.emit is not None:
        written.append(model.save(args.emit))
    if args.explain or args.format:
        print(model.explain(args.format or "text"))
    else:
        print("\n".join(chain_lines(model)))
    if not (args.emit or args.no_code or args.explain or args.format):
        print()
        print(model.source, end="" if model.source.endswith("\n") else "\n")
    for path in written:
        print(f"symgrad: wrote {path}", file=sys.stderr)
    return 0


def _model(args: argparse.Namespace):
    """The model the options describe: one expression, or a list of equations."""
    equations = []
    if args.file is not None:
        equations += read_equations(args.file)
    texts = [(text, f"--eq {i}: ") for i, text in enumerate(args.eq, 1)]
    expression = args.expression
    if expression is not None and _is_equation(expression):
        texts.append((expression, ""))
        expression = None
    defined = {lhs.name for lhs, _ in equations}
    defined |= {equation_name(text, where=where) for text, where in texts}
    equations += [parse_equation(text, defined, where=where) for text, where in texts]
    if expression is not None:
        rhs = parse_expression(expression, defined)
        if not equations:
            return rhs
        equations.append((sp.Symbol(args.name), rhs))
    if not equations:
        raise _UsageError("give the model: an EXPRESSION, --eq 'name = expression' or --file")
    return equations


def _is_equation(text: str) -> bool:
    """Whether ``text`` has a lone ``=`` (not part of ``==``, ``<=``, ``>=``, ``!=``)."""
    cleaned = text
    for op in ("==", "<=", ">=", "!="):
        cleaned = cleaned.replace(op, "  ")
    return "=" in cleaned


def _wrt(option: str | None, model) -> list[str] | None:
    if option is None:
        return None
    names = [n.strip() for n in option.split(",")]
    if not all(names):
        raise _UsageError(f"--wrt {option!r}: give names separated by commas, such as k,b")
    if isinstance(model, list):
        defined = {lhs.name for lhs, _ in model}
        free = set().union(*(rhs.free_symbols for _, rhs in model))
    else:
        defined, free = set(), model.free_symbols
    inputs = {s.name for s in free} - defined
    unknown = [n for n in names if n not in inputs and n not in defined]
    if unknown:
        raise SymgradError(
            f"--wrt: {', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not in the "
            f"model; its inputs are {', '.join(sorted(inputs)) or 'none'}"
        )
    return names


def _demo(args: argparse.Namespace) -> int:
    model, paths = demo(args.out, args.format, args.highlight)
    print("The tutorial's two-layer model:")
    print("".join(f"    {line}\n" for line in SEED.splitlines()[1:]), end="")
    print()
    print("Its chains, parameter by parameter:")
    for line in chain_lines(model):
        print(f"    {line}")
    print()
    for path in paths:
        print(f"wrote {path}")
    print()
    print("Every local factor, written out:")
    print(f"    symgrad compile --file {paths[0]} --wrt {','.join(SEED_WRT)} --explain")
    return 0
