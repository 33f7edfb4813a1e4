"""The ``symgrad`` command (also ``python -m symgrad``).

``symgrad compile`` compiles a model given as text and prints its chains and the generated
code, or writes the module, a diagram or the explanation; ``symgrad demo`` draws the
tutorial's two-layer model and prints its chains. Run ``symgrad compile --help`` for details.
The text means what the same call means in Python (see ``symgrad/parsing.py``). ``-`` as a
file is standard input (``--file``) or standard output (``--emit``, ``--graph``).

Exit status: 0 on success (also when the reader of standard output stops early, as
``| head -1`` does), 2 on bad usage or a model error (one line on stderr naming the culprit;
``--debug`` shows the traceback), 1 on an internal error.

>>> main(["compile", "mean((k*x + b - y)**2)", "--wrt", "k,b", "--no-code"])
∂f/∂k = ∂f/∂t1·∂t1/∂k
∂f/∂b = ∂f/∂t1·∂t1/∂b
0
>>> main(["compile", "k*x +"])  # stderr: symgrad: error: cannot read 'k*x +' at column 6 ...
2
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import sympy as sp

from . import __version__, chains
from . import compile as compile_model
from .errors import SymgradError
from .model import CompiledModel
from .parsing import (
    check_name,
    equation_name,
    equations_from_text,
    is_equation,
    parse_equation,
    parse_equations,
    parse_expression,
    read_equations,
)
from .render import GROUPS, KINDS, GraphvizNotFound

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
    """Write the seed model into ``directory``: its text, its code and its two diagrams.

    Returns the model and the paths it wrote: ``two_layer.txt`` (the model file, for
    ``symgrad compile --file``), ``two_layer_model.py`` (the generated module),
    ``two_layer_forward.<format>`` and ``two_layer_backward.<format>``; ``highlight`` marks one
    parameter's chain in both diagrams. The pictures need Graphviz's ``dot`` program: without
    it the text and the code are written and ``GraphvizNotFound`` says how to install it. In a
    notebook, display the returned model to see its forward diagram and chains, and
    ``model.graph("backward")`` for the backward one.
    """
    model, written, draw = _demo_files(directory, format, highlight)
    return model, [*written, *draw()]


def _demo_files(
    directory: str | os.PathLike, format: str, highlight: str | None
) -> tuple[CompiledModel, list[Path], Callable[[], list[Path]]]:
    """Write the seed model's text and code; return them and what draws its two pictures."""
    if format not in PICTURES:
        raise SymgradError(
            f"unknown picture format {format!r}; choose one of {', '.join(PICTURES)}"
        )
    model = seed_model()
    model.graph("forward", highlight)  # an unknown parameter is refused before any file is made
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise SymgradError(f"{directory} is a file; the demo writes into a directory")
    directory.mkdir(parents=True, exist_ok=True)
    text = directory / "two_layer.txt"
    text.write_text(SEED, encoding="utf-8")
    code = model.save(directory / "two_layer_model.py")

    def draw() -> list[Path]:
        return [
            model.render(directory / f"two_layer_{kind}.{format}", kind, highlight)
            for kind in ("forward", "backward")
        ]

    return model, [text, code], draw


def chain_lines(model: CompiledModel) -> list[str]:
    """``∂out/∂p = chain`` for every parameter; a chain of one factor is written out.

    >>> k, x = sp.symbols("k x")
    >>> chain_lines(compile_model(k*x**2, wrt=[k]))
    ['∂f/∂k = x²']
    """
    lines = []
    view = model.symbolic
    for p in view.wrt:
        out, name = model.output, view[p].label
        chain = chains.chain(view, p)
        if chain == f"∂{out}/∂{name}":
            labels = {n.symbol: n.label for n in view}
            chain = chains.display(chains.local_factor(view, view.output, p), labels)
        lines.append(f"∂{out}/∂{name} = {chain}")
    return lines


# -- the command line --------------------------------------------------------------------------

STDIO = "-"  # as a file name: standard input (--file) or standard output (--emit, --graph)
DEPRECATED = {"--output": "--result"}  # still accepted, with a warning, until the next release


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage block
        if "required: COMMAND" in message:
            message = "give a command: compile or demo"
        raise _UsageError(f"{message} (see '{self.prog} --help')")


class _Renamed(argparse.Action):
    """An option's old spelling: it still works, and says what it is called now."""

    def __call__(self, parser, namespace, values, option_string=None):
        new = DEPRECATED[option_string]
        print(f"symgrad: warning: {option_string} is renamed {new} and will be removed in the "
              f"next release; write {new} {values}", file=sys.stderr)  # fmt: skip
        setattr(namespace, self.dest, values)


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
            "Compile a model written as text: EXPRESSION (its output is --name), or equations\n"
            "'name = expression' from --eq options, and/or a model file (--file), in any order;\n"
            "with --file, EXPRESSION adds the output. '-' as a file is standard input (--file)\n"
            "or standard output (--emit, --graph).\n\n"
            "The text means what it means in Python. sum mean max min logsumexp reduce\n"
            "(axis=, keepdims=); softmax log_softmax (axis=); matmul; transpose (axes=);\n"
            "elementwise: sigmoid softplus relu exp log sqrt sin cos tan tanh sinh cosh asin\n"
            "acos atan asinh acosh atanh atan2 erf erfc sinc Abs sign floor ceiling Max Min\n"
            "Heaviside Piecewise; ^ or ** is power."
        ),
        epilog=(
            "examples:\n"
            '  symgrad compile "mean((k*x + b - y)**2)" --wrt k,b\n'
            '  symgrad compile --eq "L1 = k1*x + b1" --eq "σ = sigmoid(L1)" \\\n'
            '                  --eq "Loss = mean((σ - y)**2)" --wrt k1,b1 --explain\n'
            '  symgrad compile "sum(matmul(X, w), axis=0)" --shape X=n,3 --shape w=3 -o m.py\n'
            "  symgrad compile --file model.txt -o model.py --graph model.svg "
            "--kind backward --highlight k1\n"
            "  cat model.txt | symgrad compile --file - --graph - | dot -Tpng > model.png"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    c.add_argument("expression", nargs="?", help="an expression, or one 'name = expression'")
    c.add_argument("--eq", action="append", default=[], metavar="'NAME = EXPR'",
                   help="an equation (repeat for several)")
    c.add_argument("--file", metavar="MODEL", help="a model file: one 'name = expression' per "
                   "line, '#' starts a comment; - reads standard input")
    c.add_argument("--wrt", help="comma-separated inputs to differentiate by (default: all)")
    c.add_argument("--shape", action="append", default=[], metavar="NAME=SIZES",
                   help="declare an input's shape, checked at compile time: X=n,12 (a name "
                   "for any size, an integer for a fixed one; t= for a scalar); repeat for "
                   "several inputs")
    c.add_argument("--result", metavar="NAME",
                   help="the equation whose value is the output (default: the one no other reads)")
    c.add_argument("--output", dest="result", action=_Renamed, help=argparse.SUPPRESS)
    c.add_argument("--name", default="f", help="the output's name for a bare EXPRESSION")
    c.add_argument("-o", "--emit", metavar="MODULE.py",
                   help="write the standalone NumPy module (the code is then not printed); "
                   "- writes it to standard output")
    c.add_argument("--graph", metavar="PICTURE",
                   help="draw a diagram: .svg, .png or .pdf (needs Graphviz), or .dot/.gv "
                   "text; - writes the DOT text to standard output")
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
        description="Write the tutorial's two-layer model (two_layer.txt), its generated code "
        "(two_layer_model.py) and its forward and backward diagrams (two_layer_forward.svg, "
        "two_layer_backward.svg; these need Graphviz); print its chains.",
    )
    d.add_argument("--out", type=Path, default=Path("."), metavar="DIR",
                   help="where to write the files (default: the current directory)")
    d.add_argument("--format", choices=PICTURES, default="svg", help="picture format")
    d.add_argument("--highlight", metavar="PARAM", help="mark the chain(s) of PARAM (e.g. k1)")
    d.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``symgrad`` command with ``argv`` (default: ``sys.argv[1:]``); the exit status.

    >>> main(["compile", "sum(x**2, axis=0)", "--no-code"])
    ∂f/∂x = ∂f/∂t1·∂t1/∂x
    0
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    for stream in (sys.stdout, sys.stderr):  # never fail on a terminal that lacks ∂ or σ
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    debug = "--debug" in argv
    try:
        try:
            args = _parser().parse_args(argv)
        except SystemExit as e:  # --help or --version, printed
            sys.stdout.flush()
            return e.code if isinstance(e.code, int) else 0
        status = args.run(args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return status
    except BrokenPipeError:
        return _reader_gone()
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


def _reader_gone() -> int:
    """The reader of standard output has gone (``| head -1``): end quietly, as ``cat`` does.

    What is still buffered can never be written; standard output is pointed at the null
    device so that Python's own flush at exit does not complain either.
    """
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    except (OSError, ValueError, AttributeError):  # no file descriptor (a captured stream)
        pass
    return 0


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
    explain = args.explain or args.format is not None
    to_stdout = [o for o, v in (("--emit", args.emit), ("--graph", args.graph)) if v == STDIO]
    if len(to_stdout) > 1:
        raise _UsageError("--emit - and --graph - both write to standard output: "
                          "write one of them to a file")  # fmt: skip
    if to_stdout and explain:
        raise _UsageError(f"{to_stdout[0]} - writes to standard output, where --explain "
                          "prints too: write it to a file, or drop --explain")  # fmt: skip
    check_name(args.name, "--name")
    model_spec = _model(args)
    wrt = _wrt(args.wrt, model_spec)
    shapes = _shapes(args.shape, model_spec)
    model = compile_model(model_spec, wrt=wrt, name=args.name, output=args.result, shapes=shapes)
    # everything is made before anything is printed: a failure leaves nothing half-printed
    printed = None
    written = []
    if args.graph is not None:
        group = {"group": args.group} if args.group else {}
        if args.graph == STDIO:
            printed = model.to_dot(args.kind or "forward", args.highlight, **group)
        else:
            written.append(model.render(args.graph, args.kind or "forward", args.highlight,
                                        **group))  # fmt: skip
    if args.emit is not None:
        if args.emit == STDIO:
            printed = model.source
        else:
            written.append(model.save(args.emit))
    if printed is None:
        if explain:
            printed = model.explain(args.format or "text")
        else:
            printed = "\n".join(chain_lines(model))
            if not (args.emit or args.no_code):
                printed += "\n\n" + model.source
    for path in written:
        print(f"symgrad: wrote {path}", file=sys.stderr)
    print(printed, end="" if printed.endswith("\n") else "\n")
    return 0


def _model(args: argparse.Namespace):
    """The model the options describe: one expression, or a list of equations."""
    if args.expression is not None and args.eq:
        raise _UsageError(
            f"the model is given twice, as {args.expression!r} and as --eq: give every "
            f"equation with --eq (or all in a --file), or the whole model as one EXPRESSION"
        )
    equations = []
    if args.file == STDIO:
        equations += equations_from_text(_standard_input(), "<stdin>")
    elif args.file is not None:
        equations += read_equations(args.file)
    texts = [(text, f"--eq {i}: ") for i, text in enumerate(args.eq, 1)]
    expression = args.expression
    if expression is not None and is_equation(expression):
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


def _standard_input() -> str:
    """Standard input as text: UTF-8 (a byte-order mark is dropped), else an error."""
    data = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read()
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise SymgradError(f"--file -: standard input is not UTF-8 text ({e.reason})") from None


def _names(model) -> tuple[set[str], set[str]]:
    """The model's inputs and the names its equations define."""
    if isinstance(model, list):
        defined = {lhs.name for lhs, _ in model}
        free = set().union(*(rhs.free_symbols for _, rhs in model))
    else:
        defined, free = set(), model.free_symbols
    return {s.name for s in free} - defined, defined


def _wrt(option: str | None, model) -> list[str] | None:
    if option is None:
        return None
    names = [n.strip() for n in option.split(",")]
    if not all(names):
        raise _UsageError(f"--wrt {option!r}: give names separated by commas, such as k,b")
    inputs, defined = _names(model)
    unknown = [n for n in names if n not in inputs and n not in defined]
    if unknown:
        raise SymgradError(
            f"--wrt: {', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not in the "
            f"model; its inputs are {', '.join(sorted(inputs)) or 'none'}"
        )
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise SymgradError(f"--wrt {option!r}: {', '.join(twice)} given twice; name each once")
    return names


def _shapes(options: list[str], model) -> dict[str, tuple[int | None, ...]] | None:
    """``--shape X=n,12`` options as ``shapes=``: a name (any size) or an integer per axis."""
    if not options:
        return None
    inputs, _ = _names(model)
    shapes: dict[str, tuple[int | None, ...]] = {}
    for option in options:
        name, equals, sizes = (part.strip() for part in option.partition("="))
        if not equals or not name:
            raise _UsageError(
                f"--shape {option!r}: write NAME=SIZES, such as X=n,12 (a name for any size, "
                "an integer for a fixed one; t= for a scalar)"
            )
        if name not in inputs:
            raise SymgradError(
                f"--shape {option!r}: {name} is not an input of the model; its inputs are "
                f"{', '.join(sorted(inputs)) or 'none'}"
            )
        if name in shapes:
            raise SymgradError(f"--shape: {name} is given twice; give each input's shape once")
        sizes = sizes.removeprefix("(").removesuffix(")").strip().removesuffix(",")
        shape = []
        for size in (s.strip() for s in sizes.split(",")) if sizes else ():
            if size.isascii() and size.isdigit():
                shape.append(int(size))
            elif size.isidentifier():
                shape.append(None)
            else:
                raise SymgradError(
                    f"--shape {option!r}: {size!r} is not a size; write an integer for a fixed "
                    "size or a name such as n for any size"
                )
        shapes[name] = tuple(shape)
    return shapes


def _demo(args: argparse.Namespace) -> int:
    model, paths, draw = _demo_files(args.out, args.format, args.highlight)
    try:
        paths += draw()
        missing = None
    except GraphvizNotFound as e:
        missing = str(e)
    print("The tutorial's two-layer model:")
    print("".join(f"    {line}\n" for line in SEED.splitlines()[1:]), end="")
    print()
    print("Its chains, parameter by parameter:")
    for line in chain_lines(model):
        print(f"    {line}")
    print()
    for path in paths:
        print(f"wrote {path}")
    if missing is not None:
        print(f"symgrad: note: the diagrams were not drawn: {missing}; then run symgrad demo "
              "again", file=sys.stderr)  # fmt: skip
    print()
    print("Every local factor, written out:")
    print(f"    symgrad compile --file {paths[0]} --wrt {','.join(SEED_WRT)} --explain")
    return 0

