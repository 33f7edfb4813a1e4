"""Models written as text: ``"L1 = k1*x + b1"``, one equation per line, parsed safely.

Text is parsed by Python's own parser into a syntax tree (``ast.parse``: nothing is run), and
the SymPy expression is built from that tree node by node, accepting only what a model may
contain: numbers, names, arithmetic, comparisons (for ``Piecewise``) and calls of the functions
below with the arguments they take. Nothing in the text is ever evaluated as Python: attribute
access, indexing, strings, lambdas and the like are refused, pointing at the offending text.

The text means what the same call means in Python (``symgrad.sum``, ``sympy.Max``, ...):
``sum``, ``mean``, ``max``, ``min`` and ``logsumexp`` reduce an array over ``axis=`` (default:
every axis), keeping length-one axes with ``keepdims=True``; ``min(x)`` is ``-max(-x)``.
``Max`` and ``Min`` are SymPy's elementwise larger and smaller of their arguments. ``softmax``
and ``log_softmax`` take ``axis=`` (default -1), ``transpose`` takes ``axes=``. ``^`` means
power, as in mathematics. Every other name is a symbol, except the functions and the constants
``pi`` and ``E`` (unless an equation defines that name).

>>> parse_equation("L1 = k1*x + b1")
(L1, b1 + k1*x)
>>> parse_expression("mean((sigmoid(w*x) - y)^2)")
mean((-y + sigmoid(w*x))**2)
>>> parse_expression("sum(X, axis=0, keepdims=True)")
sum(X, axis=0, keepdims=True)
>>> parse_expression("x.__class__")
Traceback (most recent call last):
...
symgrad.parsing.ParseError: cannot read 'x.__class__' at column 1 ('x.__class__'): attribute ...
"""

from __future__ import annotations

import ast
import keyword
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import sympy as sp

from . import functions as fn
from .errors import ModelError


def _min(e: sp.Expr, axis: Any = None, keepdims: bool = False) -> sp.Expr:
    """The smallest element over ``axis``: ``-max(-e)`` (symgrad has no reduction of its own)."""
    return -fn.max(-e, axis=axis, keepdims=keepdims)


@dataclass(frozen=True)
class Signature:
    """How a function of the text language is called.

    ``operands`` is the least and the most number of expression arguments (None: any number);
    then come ``options``, by position or by keyword, each read as a literal: ``axis``/``axes``
    an integer, a tuple of integers or None, ``keepdims`` True or False.
    """

    function: Callable[..., sp.Basic]
    operands: tuple[int, int | None] = (1, 1)
    options: tuple[str, ...] = ()
    usage: str = ""
    hint: str = ""  # said when an option is not a literal: what the user probably meant


def _reduction(function: Callable[..., sp.Basic], name: str, hint: str = "") -> Signature:
    return Signature(function, (1, 1), ("axis", "keepdims"),
                     f"{name}(x), {name}(x, axis=0) or {name}(x, axis=(0, 1), keepdims=True)",
                     hint)  # fmt: skip


#: Functions whose call in the text takes options, or another form than one call of the
#: operation's SymPy class (every other operation is read from its record, below).
# fmt: off
SPECIAL: dict[str, Signature] = {
    "sum": _reduction(fn.sum, "sum"),
    "mean": _reduction(fn.mean, "mean"),
    "max": _reduction(fn.max, "max", "for the elementwise larger of several use Max(a, b)"),
    "min": _reduction(_min, "min", "for the elementwise smaller of several use Min(a, b)"),
    "logsumexp": _reduction(fn.logsumexp, "logsumexp"),
    "softmax": Signature(fn.softmax, (1, 1), ("axis",), "softmax(x) or softmax(x, axis=0)"),
    "log_softmax": Signature(fn.log_softmax, (1, 1), ("axis",),
                             "log_softmax(x) or log_softmax(x, axis=0)"),
    "transpose": Signature(fn.transpose, (1, 1), ("axes",),
                           "transpose(A) or transpose(A, axes=(0, 2, 1))"),
    "log": Signature(sp.log, (1, 2), (), "log(x) or log(x, base)"),
    "sqrt": Signature(sp.sqrt),
    "abs": Signature(sp.Abs),
    "Max": Signature(sp.Max, (1, None), (), "Max(a, b, ...)"),
    "Min": Signature(sp.Min, (1, None), (), "Min(a, b, ...)"),
    "Heaviside": Signature(sp.Heaviside, (1, 2), (), "Heaviside(x) or Heaviside(x, value_at_0)"),
    "Piecewise": Signature(sp.Piecewise, (1, None), (),
                           "Piecewise((value, condition), ..., (value, True))"),
    "polygamma": Signature(sp.polygamma, (2, 2), (), "polygamma(n, x)"),
}
# fmt: on


def _from_records() -> dict[str, Signature]:
    """Every operation a user may write, by its name in the text language: its record's
    (``ops.py``), unless SPECIAL says how it is called."""
    from .ops import OPS

    table = {}
    for record in OPS.values():
        if record.text and record.sympy and record.differentiable and record.text not in SPECIAL:
            n = record.arity
            table[record.text] = Signature(record.sympy[0], (n, n) if n else (1, None))
    return {**table, **SPECIAL}


#: The functions a model may call, by the name it calls them.
FUNCTIONS: dict[str, Signature] = _from_records()
CONSTANTS: dict[str, sp.Basic] = {"pi": sp.pi, "E": sp.E}

_OPERATORS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.Pow: operator.pow,
}  # fmt: skip
_COMPARISONS: dict[type, type] = {ast.Lt: sp.Lt, ast.LtE: sp.Le, ast.Gt: sp.Gt, ast.GtE: sp.Ge}
_WHAT = {
    ast.Attribute: "attribute access",
    ast.Subscript: "indexing",
    ast.Slice: "a slice",
    ast.Lambda: "a lambda",
    ast.Starred: "unpacking",
    ast.NamedExpr: "an assignment expression",
    ast.IfExp: "a conditional expression (use Piecewise)",
    ast.BoolOp: "'and'/'or' (use Piecewise with one condition per branch)",
    ast.List: "a list",
    ast.Dict: "a dict",
    ast.Set: "a set",
    ast.ListComp: "a comprehension",
    ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a comprehension",
    ast.JoinedStr: "an f-string",
    ast.Await: "'await'",
    ast.Eq: "'==' (an equation is 'name = expression')",
    ast.NotEq: "'!='",
    ast.Is: "'is'",
    ast.IsNot: "'is not'",
    ast.In: "'in'",
    ast.NotIn: "'not in'",
    ast.Mod: "'%'",
    ast.FloorDiv: "'//'",
    ast.MatMult: "'@' (use matmul(A, B))",
    ast.BitAnd: "'&'",
    ast.BitOr: "'|'",
    ast.LShift: "'<<'",
    ast.RShift: "'>>'",
    ast.Not: "'not'",
    ast.Invert: "'~'",
}
MAX_EXPONENT = 10_000  # a number raised to a larger literal power is refused: 9**9**9 hangs


class ParseError(ModelError):
    """Model text that cannot be read; the message quotes the offending text."""


def parse_expression(
    text: str, symbols: Iterable[str] = (), *, where: str = ""
) -> sp.Expr:
    """Parse one expression. Names in ``symbols`` are always symbols (never ``E`` or ``pi``).

    ``where`` (such as ``"model.txt:3: "``) prefixes error messages.

    >>> parse_expression("2*E", symbols=["E"])
    2*E
    >>> parse_expression("max(x) - Max(x, 0)")
    max(x) - Max(0, x)
    >>> parse_expression("k*x +")
    Traceback (most recent call last):
    ...
    symgrad.parsing.ParseError: cannot read 'k*x +' at column 6 (the end): invalid syntax
    """
    source = text.strip()
    if not source:
        raise ParseError(f"{where}an empty expression")
    written = _Source(source)
    tree = _syntax_tree(written, where)
    reader = _Reader(written, where, frozenset(symbols))
    try:
        expr = reader.read(tree.body)
    except RecursionError:
        raise ParseError(f"{where}cannot read {source!r}: it is nested too deeply") from None
    if not isinstance(expr, sp.Expr):
        shown = sp.sstr(expr) if isinstance(expr, sp.Basic) else str(expr)
        raise ParseError(f"{where}{source!r} is {shown}, not an arithmetic expression")
    return expr


def parse_equation(
    text: str, symbols: Iterable[str] = (), *, where: str = ""
) -> tuple[sp.Symbol, sp.Expr]:
    """Parse ``"name = expression"`` into ``(Symbol(name), expression)``.

    >>> parse_equation("σ = sigmoid(L1)")
    (σ, sigmoid(L1))
    >>> parse_equation("k*x")
    Traceback (most recent call last):
    ...
    symgrad.parsing.ParseError: 'k*x' is not an equation: write 'name = expression'
    """
    lhs, rhs = _split(text, where)
    return sp.Symbol(lhs), parse_expression(rhs, {lhs, *symbols}, where=where)


def equation_name(text: str, *, where: str = "") -> str:
    """The name ``"name = expression"`` defines (the expression is not read).

    >>> equation_name("L1 = k1*x + b1")
    'L1'
    """
    return _split(text, where)[0]


def is_equation(text: str) -> bool:
    """Whether ``text`` is ``name = expression``: it has an ``=`` outside any parentheses that
    is not part of ``==``, ``<=``, ``>=`` or ``!=`` (``sum(x, axis=0)`` is an expression).

    >>> is_equation("f = sum(x, axis=0)"), is_equation("sum(x, axis=0)"), is_equation("x <= 1")
    (True, False, False)
    """
    return _equals_sign(text) is not None


def check_name(name: str, what: str) -> str:
    """``name`` if a model may define it (as an equation's left side), else a ParseError
    saying why; ``what`` says where the name came from (``"--name"``).

    >>> check_name("Loss", "--name")
    'Loss'
    >>> check_name("sum", "--name")
    Traceback (most recent call last):
    ...
    symgrad.parsing.ParseError: --name 'sum' names a function; call the output something else
    """
    if not name.isidentifier() or keyword.iskeyword(name):
        raise ParseError(f"{what} {name!r} is not a name; write one such as f or Loss")
    if name in FUNCTIONS:
        raise ParseError(f"{what} {name!r} names a function; call the output something else")
    if name.startswith("__"):
        raise ParseError(f"{what} {name!r} is reserved; call the output something else")
    return name


def parse_equations(lines: Iterable[str], *, source: str = "") -> list[tuple[sp.Symbol, sp.Expr]]:
    """Parse ``name = expression`` lines; blank lines and ``#`` comments are skipped.

    ``source`` (a file name) prefixes error messages with ``source:line:``. Every name defined
    on a left side is a symbol in every equation, so ``E = m*c^2`` defines ``E``.

    >>> parse_equations(["# two layers", "h = sigmoid(w*x + c)", "", "f = mean((h - y)**2)"])
    [(h, sigmoid(c + w*x)), (f, mean((h - y)**2))]
    """
    numbered = []
    for number, line in enumerate(lines, 1):
        code = line.split("#", 1)[0].strip()
        if code:
            where = f"{source or 'line'}:{number}: " if source else f"line {number}: "
            numbered.append((code, where))
    defined = {_split(code, where)[0] for code, where in numbered}
    return [parse_equation(code, defined, where=where) for code, where in numbered]


def read_equations(path: str | Path) -> list[tuple[sp.Symbol, sp.Expr]]:
    """Parse a model file: one ``name = expression`` per line, ``#`` starts a comment."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark is not part of the text
    except OSError as e:
        raise ParseError(f"cannot read {str(path)!r}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise ParseError(f"{path}: not UTF-8 text ({e.reason})") from None
    return equations_from_text(text, str(path))


def equations_from_text(text: str, source: str) -> list[tuple[sp.Symbol, sp.Expr]]:
    """Parse the text of a model file; ``source`` names it in messages (``model.txt:3: ...``).

    >>> equations_from_text("h = k*x  # a layer\\nf = sum(h, axis=0)\\n", "<stdin>")
    [(h, k*x), (f, sum(h, axis=0))]
    """
    equations = parse_equations(text.splitlines(), source=source)
    if not equations:
        raise ParseError(f"{source}: no equations (write one 'name = expression' per line)")
    return equations


# -- reading the text --------------------------------------------------------------------------


def _equals_sign(text: str) -> int | None:
    """The position of the first lone ``=`` outside parentheses, brackets and braces."""
    depth = 0
    for i, c in enumerate(text):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth = max(depth - 1, 0)  # an unmatched one is the expression's syntax error
        elif (
            c == "=" and depth == 0
            and text[i - 1 : i] not in ("<", ">", "!", "=") and text[i + 1 : i + 2] != "="
        ):  # fmt: skip
            return i
    return None


def _split(text: str, where: str) -> tuple[str, str]:
    """``"name = expression"`` -> (name, expression), at the first lone ``=``."""
    i = _equals_sign(text)
    if i is None:
        raise ParseError(f"{where}{text.strip()!r} is not an equation: write 'name = expression'")
    lhs, rhs = text[:i].strip(), text[i + 1 :]
    if not lhs.isidentifier() or keyword.iskeyword(lhs):
        raise ParseError(
            f"{where}the left side of {text.strip()!r} must be a name, not {lhs!r}"
        )
    if lhs in FUNCTIONS:
        raise ParseError(f"{where}{lhs!r} names a function; call the equation something else")
    if lhs.startswith("__"):
        raise ParseError(f"{where}the name {lhs!r} is reserved; call the equation something else")
    return lhs, rhs


class _Source:
    """The user's text, and the same text for Python's parser, with ``^`` written ``**`` so that
    it binds as power does (``x^2 + y`` is ``x**2 + y``); messages quote the user's text."""

    def __init__(self, text: str):
        self.text = text
        self.python = text.replace("^", "**")
        self.origin: list[int] = []  # an index into python -> the index into text
        for i, c in enumerate(text):
            self.origin += [i, i] if c == "^" else [i]
        self.origin.append(len(text))
        self.lines = [0] + [i + 1 for i, c in enumerate(self.python) if c == "\n"]

    def index(self, lineno: int, column: int, *, in_bytes: bool = True) -> int:
        """The index into the user's text of a position Python's parser reports: a line and a
        column, in UTF-8 bytes for a syntax tree and in characters for a SyntaxError."""
        start = self.lines[min(max(lineno, 1), len(self.lines)) - 1]
        line = self.python[start:].split("\n", 1)[0]
        if in_bytes:
            column = len(line.encode()[:column].decode(errors="ignore"))
        return self.origin[min(start + max(column, 0), len(self.python))]

    def span(self, node: ast.AST) -> tuple[int, int]:
        """Where ``node`` is in the user's text: (start, end)."""
        start = self.index(node.lineno, node.col_offset)
        if getattr(node, "end_lineno", None) is None:
            return start, start
        return start, self.index(node.end_lineno, node.end_col_offset)

    def problem(self, where: str, start: int, end: int | None, problem: str) -> ParseError:
        """``cannot read 'text' at column N ('the part'): problem``."""
        part = self.text[start:end] if end is not None and end > start else (
            self.text[start : start + 12])
        around = "the end" if not part.strip() else repr(
            part if len(part) <= 24 else part[:23] + "…")
        return ParseError(
            f"{where}cannot read {self.text!r} at column {start + 1} ({around}): {problem}"
        )


def _syntax_tree(source: _Source, where: str) -> ast.Expression:
    try:
        return ast.parse(source.python, mode="eval")
    except SyntaxError as e:
        if not (e.lineno and e.offset):  # at the end of the text
            start = len(source.text)
        else:
            start = source.index(e.lineno, e.offset - 1, in_bytes=False)
        raise source.problem(where, start, None, e.msg) from None
    except (RecursionError, MemoryError, ValueError) as e:
        raise ParseError(f"{where}cannot read {source.text!r}: {_reason(e)}") from None


class _Reader:
    """Builds the SymPy expression of a syntax tree, refusing whatever a model may not hold."""

    def __init__(self, source: _Source, where: str, symbols: frozenset[str]):
        self.source, self.where, self.symbols = source, where, symbols

    def fail(self, node: ast.AST, problem: str) -> NoReturn:
        raise self.source.problem(self.where, *self.source.span(node), problem)

    def text(self, node: ast.AST) -> str:
        start, end = self.source.span(node)
        return self.source.text[start:end] or type(node).__name__

    def read(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return self.constant(node)
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.BinOp):
            if type(node.op) not in _OPERATORS:
                self.fail(node, f"{_WHAT.get(type(node.op), type(node.op).__name__)} is not "
                          "part of a model")  # fmt: skip
            if isinstance(node.op, ast.Pow) and _too_big(node):
                self.fail(node, f"a number to a power above {MAX_EXPONENT}; write the number out")
            left, right = self.read(node.left), self.read(node.right)
            return self.apply(node, _OPERATORS[type(node.op)], left, right)
        if isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, (ast.USub, ast.UAdd)):
                self.fail(node, f"{_WHAT.get(type(node.op), type(node.op).__name__)} is not "
                          "part of a model")  # fmt: skip
            sign = operator.neg if isinstance(node.op, ast.USub) else operator.pos
            return self.apply(node, sign, self.read(node.operand))
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.Tuple):  # a (value, condition) pair of Piecewise
            return tuple(self.read(e) for e in node.elts)
        if isinstance(node, ast.Call):
            return self.call(node)
        self.fail(node, f"{_WHAT.get(type(node), type(node).__name__)} is not part of a model")

    def constant(self, node: ast.Constant) -> sp.Basic:
        value = node.value
        if isinstance(value, bool):
            return sp.true if value else sp.false
        if isinstance(value, int):
            return sp.Integer(value)
        if isinstance(value, float):
            return sp.Float(self.text(node).replace("_", ""))  # the digits as written
        if isinstance(value, complex):
            self.fail(node, "complex numbers are not part of a model (symgrad computes with "
                      "real numbers)")  # fmt: skip
        if value is None:
            self.fail(node, "None is not a value (it is allowed only as axis=None)")
        self.fail(node, f"{type(value).__name__} literals are not part of a model")

    def name(self, node: ast.Name) -> sp.Basic:
        name = node.id
        if name.startswith("__"):
            self.fail(node, f"the name {name!r} is reserved")
        if name in self.symbols:
            return sp.Symbol(name)
        if name in FUNCTIONS:
            self.fail(node, f"{name} is a function: call it, {name}(...)")
        return CONSTANTS[name] if name in CONSTANTS else sp.Symbol(name)

    def apply(self, node: ast.AST, function: Callable, *args: Any, **options: Any) -> Any:
        try:
            return function(*args, **options)
        except RecursionError:
            raise
        except (TypeError, ValueError, AttributeError, ArithmeticError, IndexError,
                sp.SympifyError) as e:  # fmt: skip
            self.fail(node, _reason(e))

    def compare(self, node: ast.Compare) -> sp.Basic:
        for op in node.ops:
            if type(op) not in _COMPARISONS:
                self.fail(node, f"{_WHAT.get(type(op), type(op).__name__)} is not part of a model")
        if len(node.ops) > 1:
            self.fail(node, "a chained comparison is not part of a model; write one comparison "
                      "per condition")  # fmt: skip
        left, right = self.read(node.left), self.read(node.comparators[0])
        return self.apply(node, _COMPARISONS[type(node.ops[0])], left, right)

    def call(self, node: ast.Call) -> sp.Basic:
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            self.fail(node.func, f"{self.text(node.func)} is not a function symgrad knows; use "
                      f"one of {', '.join(sorted(FUNCTIONS, key=str.lower))}")  # fmt: skip
        name, signature = node.func.id, FUNCTIONS[node.func.id]
        for a in node.args:
            if isinstance(a, ast.Starred):
                self.fail(a, "unpacking is not part of a model")
        least, most = signature.operands
        usage = f" ({signature.usage})" if signature.usage else f" ({name}(x))"
        if len(node.args) < least:
            self.fail(node, f"{name} needs {least} argument{'s' if least > 1 else ''}{usage}")
        operands = node.args if most is None else node.args[:most]
        extra = [] if most is None else node.args[most:]
        if len(extra) > len(signature.options):
            takes = f"{most} argument{'s' if most > 1 else ''}"
            if signature.options:
                takes += f" and the options {', '.join(signature.options)}"
            self.fail(extra[len(signature.options)], f"{name} takes {takes}{usage}")
        given = dict(zip(signature.options, extra, strict=False))
        for kw in node.keywords:
            if kw.arg is None:
                self.fail(kw.value, "unpacking is not part of a model")
            if kw.arg not in signature.options:
                takes = (f"the keywords {', '.join(o + '=' for o in signature.options)}"
                         if signature.options else "no keyword arguments")  # fmt: skip
                self.fail(kw, f"{name} takes {takes}, not {kw.arg}={usage}")
            if kw.arg in given:
                self.fail(kw, f"{name} got {kw.arg} twice, by position and by keyword")
            given[kw.arg] = kw.value
        options = {
            option: self.option(name, option, value, signature) for option, value in given.items()
        }
        if name == "Piecewise":
            for a in operands:
                if not (isinstance(a, ast.Tuple) and len(a.elts) == 2):
                    self.fail(a, f"each argument of Piecewise is a (value, condition) pair{usage}")
        args = [self.read(a) for a in operands]
        return self.apply(node, signature.function, *args, **options)

    def option(self, function: str, option: str, node: ast.AST, signature: Signature) -> Any:
        """An option's value, read as a literal: never an expression."""
        value = _literal(node)
        if option == "keepdims":
            if isinstance(value, bool):
                return value
            self.fail(node, f"{function}'s keepdims= takes True or False, not {self.text(node)}")
        one_axis = function in ("softmax", "log_softmax")
        if isinstance(value, tuple) and len(set(value)) < len(value):
            self.fail(node, f"{function}'s {option}= names an axis twice: {self.text(node)}")
        if _is_int(value) or (not one_axis and value is None) or (
            not one_axis and isinstance(value, tuple) and all(map(_is_int, value))
        ):
            return value
        wanted = "an integer" if one_axis else "an integer, a tuple of integers or None"
        hint = f"; {signature.hint}" if signature.hint else ""
        self.fail(node, f"{function}'s {option}= takes {wanted}, not {self.text(node)}{hint}")


_NOT_A_LITERAL = object()


def _literal(node: ast.AST) -> Any:
    """``node`` as a Python int, bool, None or tuple of ints, or ``_NOT_A_LITERAL``."""
    if isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value, int)):
        return node.value
    if (
        isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub)
        and isinstance(node.operand, ast.Constant) and _is_int(node.operand.value)
    ):  # fmt: skip
        return -node.operand.value
    if isinstance(node, ast.Tuple):
        items = tuple(_literal(e) for e in node.elts)
        return items if all(map(_is_int, items)) else _NOT_A_LITERAL
    return _NOT_A_LITERAL


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _too_big(node: ast.BinOp) -> bool:
    """Whether ``node`` raises a number to a power that is not a small literal."""
    if any(isinstance(n, ast.Name) for n in ast.walk(node.left)):
        return False
    exponent = node.right
    if isinstance(exponent, ast.UnaryOp) and isinstance(exponent.op, (ast.USub, ast.UAdd)):
        exponent = exponent.operand
    if isinstance(exponent, ast.Constant) and isinstance(exponent.value, (int, float)):
        return abs(exponent.value) > MAX_EXPONENT
    return not any(isinstance(n, ast.Name) for n in ast.walk(exponent))


def _reason(e: BaseException) -> str:
    if isinstance(e, RecursionError):
        return "it is nested too deeply"
    return " ".join(str(e).split()) or type(e).__name__
