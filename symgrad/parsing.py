"""Models written as text: ``"L1 = k1*x + b1"``, one equation per line, parsed safely.

Text is first parsed by Python's own parser into a syntax tree (``ast.parse``: nothing is run)
and the tree is checked against a short list of what a model may contain: numbers, names,
arithmetic, comparisons (for ``Piecewise``) and calls of known functions. Attribute access,
indexing, strings, lambdas and the like are refused, pointing at the offending text. Only
then does SymPy's ``parse_expr`` build the expression, with a global namespace holding nothing
but the functions a model may use (no builtins), so input text is never evaluated as Python.

``^`` means power, as in mathematics. Every other name is a symbol, except the functions
below and the constants ``pi`` and ``E`` (unless an equation defines that name).

>>> parse_equation("L1 = k1*x + b1")
(L1, b1 + k1*x)
>>> parse_expression("mean((sigmoid(w*x) - y)^2)")
mean((-y + sigmoid(w*x))**2)
>>> parse_expression("x.__class__")
Traceback (most recent call last):
...
symgrad.parsing.ParseError: cannot read 'x.__class__' at column 1 ('x.__class__'): attribute ...
"""

from __future__ import annotations

import ast
import keyword
from collections.abc import Iterable
from pathlib import Path

import sympy as sp
from sympy.parsing.sympy_parser import convert_xor, parse_expr, standard_transformations

from .errors import ModelError
from .functions import mean, relu, sigmoid, softplus, sum

#: The functions a model may call, by the name it calls them.
FUNCTIONS: dict[str, type] = {
    "sigmoid": sigmoid,
    "softplus": softplus,
    "relu": relu,
    "sum": sum,
    "mean": mean,
    "exp": sp.exp,
    "log": sp.log,
    "sqrt": sp.sqrt,
    "sin": sp.sin,
    "cos": sp.cos,
    "tan": sp.tan,
    "tanh": sp.tanh,
    "sinh": sp.sinh,
    "cosh": sp.cosh,
    "asin": sp.asin,
    "acos": sp.acos,
    "atan": sp.atan,
    "Abs": sp.Abs,
    "abs": sp.Abs,
    "sign": sp.sign,
    "Max": sp.Max,
    "Min": sp.Min,
    "max": sp.Max,
    "min": sp.Min,
    "Heaviside": sp.Heaviside,
    "Piecewise": sp.Piecewise,
}
CONSTANTS: dict[str, sp.Basic] = {"pi": sp.pi, "E": sp.E, "True": sp.true, "False": sp.false}

#: What SymPy's transformations write into the code they generate; a model may not name them.
_MACHINERY = {"Symbol": sp.Symbol, "Integer": sp.Integer, "Float": sp.Float,
              "Rational": sp.Rational, "Function": sp.Function}
_TRANSFORMATIONS = (*standard_transformations, convert_xor)

_ALLOWED = (
    ast.Expression, ast.BinOp, ast.UnaryOp, ast.Call, ast.Name, ast.Load, ast.Constant,
    ast.Compare, ast.Tuple,
    ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.BitXor, ast.USub, ast.UAdd,
    ast.Lt, ast.LtE, ast.Gt, ast.GtE,
)  # fmt: skip
_WHAT = {
    ast.Attribute: "attribute access",
    ast.Subscript: "indexing",
    ast.Lambda: "a lambda",
    ast.keyword: "a keyword argument",
    ast.Starred: "unpacking",
    ast.NamedExpr: "an assignment expression",
    ast.IfExp: "a conditional expression (use Piecewise)",
    ast.BoolOp: "'and'/'or' (use Piecewise with one condition per branch)",
    ast.List: "a list",
    ast.Dict: "a dict",
    ast.Set: "a set",
    ast.Eq: "'==' (an equation is 'name = expression')",
    ast.NotEq: "'!='",
    ast.Mod: "'%'",
    ast.FloorDiv: "'//'",
    ast.MatMult: "'@'",
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
    >>> parse_expression("k*x +")
    Traceback (most recent call last):
    ...
    symgrad.parsing.ParseError: cannot read 'k*x +' at column 6 (the end): invalid syntax
    """
    source = text.strip()
    if not source:
        raise ParseError(f"{where}an empty expression")
    tree = _syntax_tree(source, where)
    _check(tree, source, where)
    names = set(symbols)
    local_dict: dict = {name: sp.Symbol(name) for name in names}
    global_dict: dict = {"__builtins__": {}, **_MACHINERY, **CONSTANTS, **FUNCTIONS}
    for name in names:
        global_dict.pop(name, None)
    try:
        expr = parse_expr(
            source, local_dict=local_dict, global_dict=global_dict,
            transformations=_TRANSFORMATIONS,
        )  # fmt: skip
    except (SyntaxError, TypeError, ValueError, AttributeError, sp.SympifyError) as e:
        raise ParseError(f"{where}cannot read {source!r}: {_reason(e)}") from None
    if not isinstance(expr, sp.Expr):
        raise ParseError(f"{where}{source!r} is {expr}, not an arithmetic expression")
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
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ParseError(f"cannot read {str(path)!r}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise ParseError(f"{path}: not UTF-8 text ({e.reason})") from None
    equations = parse_equations(text.splitlines(), source=str(path))
    if not equations:
        raise ParseError(f"{path}: no equations (write one 'name = expression' per line)")
    return equations


# -- the checks --------------------------------------------------------------------------------


def _split(text: str, where: str) -> tuple[str, str]:
    """``"name = expression"`` -> (name, expression), at the first lone ``=``."""
    for i, c in enumerate(text):
        if c == "=" and text[i - 1 : i] not in ("<", ">", "!", "=") and text[i + 1 : i + 2] != "=":
            lhs, rhs = text[:i].strip(), text[i + 1 :]
            break
    else:
        raise ParseError(f"{where}{text.strip()!r} is not an equation: write 'name = expression'")
    if not lhs.isidentifier() or keyword.iskeyword(lhs):
        raise ParseError(
            f"{where}the left side of {text.strip()!r} must be a name, not {lhs!r}"
        )
    if lhs in FUNCTIONS or lhs in _MACHINERY:
        raise ParseError(f"{where}{lhs!r} names a function; call the equation something else")
    return lhs, rhs


def _syntax_tree(source: str, where: str) -> ast.Expression:
    try:
        return ast.parse(source, mode="eval")
    except SyntaxError as e:
        column = e.offset or len(source) + 1
        if e.lineno and e.lineno > 1:  # a newline inside the text
            column = len(source) + 1
        raise ParseError(
            f"{where}cannot read {source!r} at column {column} ({_around(source, column)}): "
            f"{e.msg}"
        ) from None
    except (RecursionError, MemoryError, ValueError) as e:
        raise ParseError(f"{where}cannot read {source!r}: {_reason(e)}") from None


def _check(tree: ast.Expression, source: str, where: str) -> None:
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    for node in ast.walk(tree):
        problem = None
        if isinstance(node, ast.Constant) and not isinstance(node.value, (int, float)):
            problem = f"{type(node.value).__name__} literals are not part of a model"
        elif isinstance(node, ast.Name) and (node.id.startswith("__") or node.id in _MACHINERY):
            problem = f"the name {node.id!r} is reserved"
        elif isinstance(node, ast.Name) and node.id in FUNCTIONS and id(node) not in called:
            problem = f"{node.id} is a function: call it, {node.id}(...)"
        elif isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
                name = ast.get_source_segment(source, node.func) or "?"
                problem = (
                    f"{name} is not a function symgrad knows; use one of "
                    f"{', '.join(sorted(FUNCTIONS, key=str.lower))}"
                )
            elif node.keywords:
                node = node.keywords[0]
                problem = "keyword arguments are not part of a model"
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
            if _too_big(node):
                problem = f"a number to a power above {MAX_EXPONENT}; write the number out"
        elif not isinstance(node, _ALLOWED):
            what = _WHAT.get(type(node), type(node).__name__)
            problem = f"{what} is not part of a model"
        if problem:
            column = getattr(node, "col_offset", 0) + 1
            raise ParseError(
                f"{where}cannot read {source!r} at column {column} "
                f"({_around(source, column, node)}): {problem}"
            )


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


def _around(source: str, column: int, node: ast.AST | None = None) -> str:
    """The offending text at ``column`` (1-based), quoted, or ``the end``."""
    if node is not None and hasattr(node, "end_col_offset") and node.end_col_offset:
        text = source[node.col_offset : node.end_col_offset]
    else:
        text = source[column - 1 : column + 11]
    if not text.strip():
        return "the end"
    return repr(text if len(text) <= 24 else text[:23] + "…")


def _reason(e: BaseException) -> str:
    if isinstance(e, RecursionError):
        return "it is nested too deeply"
    return " ".join(str(e).split()) or type(e).__name__
