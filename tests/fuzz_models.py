"""Random models for the gradient fuzz (test_fuzz.py), and the independent checks they go through.

A model is a formula: one line of Python over named inputs, read two ways. ``SYMBOLIC`` reads it
with SymPy's and symgrad's functions (what is compiled); ``NUMERIC`` reads the same text with
NumPy's (the reference). Gradients are checked against central finite differences of the NumPy
formula and, for scalar models, against ``sympy.diff``; nothing here trusts symgrad's own
numbers. A failing model prints as a Python snippet to paste into a regression test.

Points are drawn away from kinks (Abs, sign, Heaviside, relu, Max/Min, Piecewise conditions, the
ties of ``max``) and inside every domain (log and sqrt of positive arguments, asin and acos inside
(-1, 1), tan away from its poles): each such argument is recorded as a *guard* when the formula is
built, and a point is used only when every guard holds there.
"""

from __future__ import annotations

import importlib.util
import math
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import reduce
from pathlib import Path

import numpy as np
import sympy as sp
from helpers import ref_relu, ref_sigmoid, ref_softplus

import symgrad

# Sizes of the tensor models: all different, so that a transposed or misrouted axis cannot fit.
N, M, Q = 3, 4, 2

#: The scalar functions of README.md's "Functions".
SCALAR_FUNCTIONS = [
    "exp", "log", "sqrt", "sin", "cos", "tan", "tanh", "sinh", "cosh", "asin", "acos", "atan",
    "Abs", "sign", "Max", "Min", "Heaviside", "Piecewise", "sigmoid", "softplus", "relu",
]
#: Functions symgrad computes beyond README's list (its error message names them).
MORE_FUNCTIONS = ["asinh", "acosh", "atanh", "atan2", "erf", "erfc", "sinc", "floor", "ceiling"]
#: The operations of README.md's "Tensor models".
TENSOR_FUNCTIONS = [
    "sum", "mean", "max", "logsumexp", "softmax", "log_softmax", "matmul", "transpose",
]
OPERATORS = ["+", "-", "*", "/", "**"]

# -- the two readings of a formula ------------------------------------------------------------

SYMBOLIC: dict[str, object] = {name: getattr(sp, name) for name in
                               [*SCALAR_FUNCTIONS, *MORE_FUNCTIONS] if hasattr(sp, name)}
SYMBOLIC.update({name: getattr(symgrad, name) for name in
                 ["sigmoid", "softplus", "relu", *TENSOR_FUNCTIONS]})


def _piecewise(*pairs):
    """Piecewise((value, condition), ..., (value, True)) elementwise: the first that holds."""
    out = np.asarray(pairs[-1][0], dtype=float)
    for value, condition in reversed(pairs[:-1]):
        out = np.where(condition, value, out)
    return out


def _logsumexp(e, axis=None, keepdims=False):
    top = np.max(e, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(e - top), axis=axis, keepdims=True)) + top
    return out if keepdims else np.squeeze(out, axis=axis)


def _log_softmax(e, axis=-1):
    return e - _logsumexp(e, axis=axis, keepdims=True)


NUMERIC: dict[str, object] = {
    "exp": np.exp, "log": np.log, "sqrt": np.sqrt, "sin": np.sin, "cos": np.cos,
    "tan": np.tan, "tanh": np.tanh, "sinh": np.sinh, "cosh": np.cosh, "asin": np.arcsin,
    "acos": np.arccos, "atan": np.arctan, "Abs": np.abs, "sign": np.sign,
    "Max": lambda *a: reduce(np.maximum, a), "Min": lambda *a: reduce(np.minimum, a),
    "Heaviside": lambda u: np.heaviside(u, 0.5), "Piecewise": _piecewise,
    "asinh": np.arcsinh, "acosh": np.arccosh, "atanh": np.arctanh, "atan2": np.arctan2,
    "erf": np.vectorize(math.erf), "erfc": np.vectorize(math.erfc),
    "sinc": lambda u: np.sinc(np.asarray(u) / np.pi),  # SymPy's sinc is sin(x)/x
    "floor": np.floor, "ceiling": np.ceil,
    "sigmoid": ref_sigmoid, "softplus": ref_softplus, "relu": ref_relu,
    "sum": np.sum, "mean": np.mean, "max": np.max, "logsumexp": _logsumexp,
    "softmax": lambda e, axis=-1: np.exp(_log_softmax(e, axis)), "log_softmax": _log_softmax,
    "matmul": np.matmul, "transpose": np.transpose,
}



def _floats(f):
    """f with float results (NumPy's integer results refuse negative integer powers)."""
    return lambda *args, **kwargs: np.asarray(f(*args, **kwargs), dtype=float)


NUMERIC = {name: _floats(f) for name, f in NUMERIC.items()}

HEADER = (
    "import numpy as np\n"
    "import sympy as sp\n"
    "from sympy import (Abs, Heaviside, Max, Min, Piecewise, acos, asin, atan, cos, cosh, exp,\n"
    "                   log, sign, sin, sinh, sqrt, tan, tanh)\n\n"
    "import symgrad\n"
    "from symgrad import (log_softmax, logsumexp, matmul, max, mean, relu, sigmoid, softmax,\n"
    "                     softplus, sum, transpose)\n"
)


# -- a model ----------------------------------------------------------------------------------


@dataclass
class Model:
    """A formula over named inputs, the inputs' values, and the names to differentiate."""

    formula: str
    inputs: dict[str, object]  # name -> float or float array
    wrt: list[str]
    kind: str
    used: set[str] = field(default_factory=set)  # the functions and operators in the formula
    onehot: dict[str, int] = field(default_factory=dict)  # label input -> its one-hot axis
    sympy_checked: bool = False  # whether sympy.diff could check the gradient (scalar models)

    @property
    def scalar_output(self) -> bool:
        return np.ndim(self.numeric()) == 0

    def symbols(self) -> dict[str, sp.Symbol]:
        return {name: sp.Symbol(name) for name in self.inputs}

    def expression(self) -> sp.Expr:
        """The formula read by SymPy and symgrad: what is compiled."""
        return eval(self.formula, {"__builtins__": {}, "True": True, **SYMBOLIC, **self.symbols()})

    def numeric(self, **override) -> np.ndarray:
        """The formula read by NumPy at the model's inputs (or ``override``): the reference."""
        values = {**self.inputs, **override}
        with np.errstate(all="ignore"):
            return np.asarray(eval(_code(self.formula), {**NUMERIC, **values}), dtype=float)

    def compile(self) -> symgrad.CompiledModel:
        symbols = self.symbols()
        return symgrad.compile(self.expression(), wrt=[symbols[n] for n in self.wrt])

    def source(self) -> str:
        """The model as Python to paste into a regression test."""
        names = list(self.inputs)
        lines = [HEADER, f"{', '.join(names)}{',' * (len(names) == 1)} = sp.symbols("
                 f"{' '.join(names)!r})",
                 f"model = symgrad.compile({self.formula}, wrt=[{', '.join(self.wrt)}])",
                 "inputs = {"]
        for name, value in self.inputs.items():
            text = (repr(value) if np.ndim(value) == 0
                    else f"np.array({np.asarray(value).tolist()!r})")
            lines.append(f"    {name!r}: {text},")
        lines.append("}")
        if self.scalar_output:
            lines.append("value, grads = model.value_and_grad(**inputs)")
        else:
            lines.append("value = model(**inputs)")
        return "\n".join(lines)


_CODES: dict[str, object] = {}


def _code(formula: str):
    code = _CODES.get(formula)
    if code is None:
        if len(_CODES) > 4096:
            _CODES.clear()
        code = _CODES[formula] = compile(formula, "<formula>", "eval")
    return code


# -- choices: a seeded generator, or hypothesis's draws (which then shrink) --------------------


class Choices:
    """Every random decision of the generator goes through here."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def index(self, n: int) -> int:
        return int(self.rng.integers(n))

    def pick(self, options: Sequence):
        return options[self.index(len(options))]

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)


class DrawnChoices(Choices):
    """Decisions drawn by hypothesis (``data.draw``), the first option the simplest; point values
    still come from a NumPy generator seeded by a drawn integer."""

    def __init__(self, data):
        from hypothesis import strategies as st

        self.data, self.st = data, st
        super().__init__(np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))))

    def index(self, n: int) -> int:
        return self.data.draw(self.st.integers(0, n - 1)) if n > 1 else 0

    def chance(self, p: float) -> bool:
        return self.data.draw(self.st.booleans())


# -- the generator ----------------------------------------------------------------------------

#: Bounds on the arguments of exp, sinh, cosh and the periodic functions at a point: beyond them
#: the functions vary too fast for finite differences to be a reference.
MODERATE = {"exp": 6.0, "sinh": 6.0, "cosh": 6.0, "sin": 20.0, "cos": 20.0, "tan": 20.0,
            "sinc": 20.0}

PARAM_NAMES = [*"abcdghkpqrstuvw", *(f"p{i}" for i in range(99))]  # no f: the output's name
DATA_NAMES = [*"XYZUVW", *(f"D{i}" for i in range(99))]


def broadcastable(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Every shape that NumPy broadcasts to ``shape`` (fewer axes, or 1 in place of a size)."""
    shapes = [()]
    for k in range(1, len(shape) + 1):
        tail = shape[-k:]
        shapes += [tuple(n if keep else 1 for n, keep in zip(tail, mask, strict=True))
                   for mask in np.ndindex(*(2,) * k) for mask in [tuple(map(bool, mask))]]
    return sorted(set(shapes), key=lambda s: (len(s), s))


class Generator:
    """Builds one random formula; ``kind`` is "scalar", "elementwise", "tensor" or "matmul".

    "scalar": every input a number, every scalar function, Piecewise and Max/Min.
    "elementwise": the same functions over data and parameters of every broadcastable shape.
    "tensor": elementwise expressions over data and parameters of every broadcastable shape,
      reduced (sum, mean, max, logsumexp, along each axis or all, with and without keepdims),
      softmax and log_softmax, cross-entropies.
    "matmul": every binary operator mixed with matmul and transpose, operands of every rank.
    """

    def __init__(self, choices: Choices, kind: str):
        self.c = choices
        self.kind = kind
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.data: set[str] = set()
        self.onehot: dict[str, int] = {}  # name -> the axis along which it is one-hot
        self.guards: list[tuple] = []
        self.used: set[str] = set()

    def data_kinds(self) -> dict[str, int | None]:
        """Data input -> the axis along which it is one-hot (None: ordinary data)."""
        return {n: self.onehot.get(n) for n in self.data}

    # leaves

    def leaf(self, shape: tuple[int, ...], exact: bool = True) -> str:
        if self.kind != "scalar" and not exact:
            shape = self.c.pick(broadcastable(shape))
        if (self.kind == "scalar" or not exact or not shape) and self.c.chance(0.12):
            return self.c.pick(["2", "3", "0.5", "(-1.5)", "0.25"])
        same = [n for n, s in self.shapes.items() if s == shape and n not in self.onehot]
        if same and (len(self.shapes) >= 6 or self.c.chance(0.4)):
            return self.c.pick(same)
        is_data = (self.kind != "scalar" and shape and min(shape) > 1
                   and (len(shape) == 2 or self.kind == "elementwise") and self.c.chance(0.5))
        pool = DATA_NAMES if is_data else PARAM_NAMES
        name = next(n for n in pool if n not in self.shapes)
        self.shapes[name] = shape
        if is_data:
            self.data.add(name)
        return name

    def onehot_data(self, shape: tuple[int, ...], axis: int) -> str:
        name = next(n for n in DATA_NAMES if n not in self.shapes)
        self.shapes[name] = shape
        self.data.add(name)
        self.onehot[name] = axis
        return name

    # expressions of a given shape

    def expr(self, shape: tuple[int, ...], depth: int, exact: bool = True) -> str:
        if depth <= 0:
            return self.leaf(shape, exact)
        makers: list[tuple[Callable, float]] = [
            (lambda s, d, e: self.leaf(s, e), 1), (self.unary, 3), (self.binary, 4),
            (self.power, 1.2), (self.kink, 1.2), (self.maxmin, 0.8), (self.piecewise, 0.8),
        ]
        if self.kind == "tensor":
            makers += [(self.reduced, 2.5), (self.along_axis, 1), (self.matmul, 0.4)]
            if len(shape) == 2:
                makers += [(self.transposed, 0.4)]
        if self.kind == "matmul":
            makers = [(lambda s, d, e: self.leaf(s, e), 1), (self.binary, 5), (self.power, 2),
                      (self.matmul, 4), (self.unary, 0.7)]
            if len(shape) == 2:
                makers += [(self.transposed, 2)]
            if len(shape) < 2:
                makers += [(self.reduced, 0.5)]
        weights = np.array([w for _, w in makers])
        if isinstance(self.c, DrawnChoices):
            maker = makers[self.c.index(len(makers))][0]
        else:
            maker = makers[self.c.rng.choice(len(makers), p=weights / weights.sum())][0]
        return maker(shape, depth - 1, exact)

    def unary(self, shape, depth, exact) -> str:
        u = self.expr(shape, depth, exact)
        name = self.c.pick(["exp", "log", "sqrt", "sin", "cos", "tan", "tanh", "sinh", "cosh",
                            "asin", "acos", "atan", "sigmoid", "softplus", "neg", "asinh",
                            "acosh", "atanh", "atan2", "erf", "erfc", "sinc"])
        if name == "neg":
            self.used.add("-")
            return f"(-{u})"
        self.used.add(name)
        if name == "atan2":  # atan2(y, x) off its branch cut (x > 0)
            return f"atan2({u}, {self.positive(self.expr(shape, depth - 1, exact=False))})"
        if name in ("log", "sqrt"):
            u = self.positive(u)
            self.guards.append(("positive", u))
        elif name == "acosh":
            u = f"(1.1 + {self.positive(u)})"
        elif name in ("asin", "acos", "atanh"):
            u = self.c.pick([f"tanh({u})", f"sin({u})", f"(2*sigmoid({u}) - 1)"])
            u = f"(0.9*{u})"
            self.guards.append(("unit", u))
        elif name in ("exp", "sinh", "cosh"):
            u = f"tanh({u})" if self.c.chance(0.5) else u  # keep values moderate
        if name == "tan":
            self.guards.append(("tan", u))
        if name in MODERATE:
            self.guards.append(("within", u, MODERATE[name]))
        return f"{name}({u})"

    def positive(self, u: str) -> str:
        """An expression of ``u`` that is positive by construction."""
        form = self.c.pick([f"exp({u})", f"({u}**2 + 0.5)", f"sigmoid({u})", f"softplus({u})",
                            f"cosh({u})", f"(Abs({u}) + 0.5)"])
        if form.startswith(("exp", "cosh")):
            self.guards.append(("within", u, MODERATE["exp"]))
        return form

    def binary(self, shape, depth, exact) -> str:
        op = self.c.pick(["+", "-", "*", "/"])
        self.used.add(op)
        left_exact = self.c.chance(0.5)
        u = self.expr(shape, depth, exact and left_exact)
        v = self.expr(shape, depth, exact and not left_exact)
        if u == v and op in "-/":  # SymPy would cancel it, and with it the operands' shape
            op = "+"
        if op == "/":
            if self.c.chance(0.5):
                v = self.positive(v)
            else:
                self.guards.append(("apart", v, "0", 0.3))
        return f"({u} {op} {v})"

    def power(self, shape, depth, exact) -> str:
        self.used.add("**")
        u = self.expr(shape, depth, exact)
        form = self.c.pick(["int", "real", "variable", "base", "reciprocal"])
        if form == "reciprocal":  # 1/u, a quotient SymPy writes as a power
            self.guards.append(("apart", u, "0", 0.3))
            return f"({self.c.pick(['1', '2'])}/{u})"
        if form == "int":
            k = self.c.pick(["2", "3", "(-1)", "(-2)"])
            if k.startswith("("):
                self.guards.append(("apart", u, "0", 0.3))
            return f"({u}**{k})"
        if form == "real":
            exponent = self.c.pick(["0.5", "1.5", "(1/3)", "(-0.5)", "2.5"])
            return f"({self.positive(u)}**{exponent})"
        if form == "variable":  # a variable exponent: d/dy b**y = b**y log b
            v = self.expr(shape, depth - 1, exact=False)
            return f"({self.positive(u)}**tanh({v}))"
        return f"({self.c.pick(['2', '0.5', '3'])}**tanh({u}))"

    def kink(self, shape, depth, exact) -> str:
        name = self.c.pick(["Abs", "sign", "Heaviside", "relu", "floor", "ceiling"])
        self.used.add(name)
        u = self.expr(shape, depth, exact)
        if name in ("floor", "ceiling"):
            u = f"(3*{u})"  # steps at every integer: some of them within reach
            self.guards.append(("off-integer", u))
        else:
            self.guards.append(("apart", u, "0", 1e-2))
        if name in ("sign", "Heaviside", "floor", "ceiling"):
            # a zero derivative: multiply it into something
            v = self.expr(shape, depth, exact=False)
            return f"({name}({u})*{v})"
        return f"{name}({u})"

    def maxmin(self, shape, depth, exact) -> str:
        name = self.c.pick(["Max", "Min"])
        self.used.add(name)
        args = [self.expr(shape, depth, exact)]
        for _ in range(self.c.pick([1, 1, 2])):
            args.append(self.c.pick(["0.3", "(-0.2)"]) if self.c.chance(0.2)
                        else self.expr(shape, depth, exact=False))
        for i in range(len(args)):
            for j in range(i):
                self.guards.append(("apart", args[i], args[j], 1e-2))
        return f"{name}({', '.join(args)})"

    def piecewise(self, shape, depth, exact) -> str:
        self.used.add("Piecewise")
        pairs = []
        for _ in range(self.c.pick([1, 1, 2])):
            value = self.expr(shape, depth, exact)
            u = self.expr(shape, depth - 1, exact=False)
            cut = self.c.pick(["0", "0.5", "(-0.3)"])
            relation = self.c.pick([">", "<", ">=", "<="])
            self.guards.append(("apart", u, cut, 1e-2))
            pairs.append(f"({value}, {u} {relation} {cut})")
        pairs.append(f"({self.expr(shape, depth, exact)}, True)")
        return f"Piecewise({', '.join(pairs)})"

    # tensor operations

    def reduced(self, shape, depth, exact) -> str:
        """A reduction whose result has ``shape`` (or, not ``exact``, a shape that broadcasts to
        it): along an axis the result lacks or has with size 1 (keepdims), or over all axes."""
        if not exact and self.kind != "scalar":
            shape = self.c.pick(broadcastable(shape))
        options = []  # (operand shape, axis, keepdims)
        if len(shape) < 2:
            for axis in range(len(shape) + 1):
                for size in (N, M):
                    options.append(((*shape[:axis], size, *shape[axis:]), axis, False))
        for axis, n in enumerate(shape):
            if n == 1:
                for size in (N, M):
                    options.append(((*shape[:axis], size, *shape[axis + 1:]), axis, True))
        if not shape:
            options += [((N,), None, False), ((N, M), None, False)]
        elif all(n == 1 for n in shape):
            options.append(((N, M)[-len(shape):], None, True))
        if not options:
            return self.expr(shape, depth, exact=True)
        operand_shape, axis, keepdims = self.c.pick(options)
        name = self.c.pick(["sum", "mean", "max", "logsumexp"])
        self.used.add(name)
        u = self.expr(operand_shape, depth, exact=True)
        if name == "max":
            self.guards.append(("gap", u, axis))
        text = u
        if axis is not None:
            spelled = self.c.pick([axis, axis - len(operand_shape)])  # positive or negative
            text += f", axis={spelled}"
            self.used.add(f"{name}(axis)")
        if keepdims:
            text += ", keepdims=True"
            self.used.add(f"{name}(keepdims)")
        return f"{name}({text})"

    def along_axis(self, shape, depth, exact) -> str:
        if not shape:
            return self.expr(shape, depth, exact)
        name = self.c.pick(["softmax", "log_softmax"])
        self.used.add(name)
        axis = self.c.index(len(shape))
        spelled = self.c.pick([axis, axis - len(shape)])
        return f"{name}({self.expr(shape, depth, exact=True)}, axis={spelled})"

    def matmul(self, shape, depth, exact) -> str:
        """matmul(A, B) of ``shape``, with 1-D and 2-D operands as NumPy's rules allow."""
        self.used.add("matmul")
        inner = self.c.pick([Q, N, M])
        if len(shape) == 2:
            left, right = (shape[0], inner), (inner, shape[1])
        elif len(shape) == 1:
            left, right = self.c.pick([((shape[0], inner), (inner,)),
                                       ((inner,), (inner, shape[0]))])
        else:
            left, right = (inner,), (inner,)
        return f"matmul({self.expr(left, depth, True)}, {self.expr(right, depth, True)})"

    def transposed(self, shape, depth, exact) -> str:
        self.used.add("transpose")
        return f"transpose({self.expr(shape[::-1], depth, exact=True)})"

    # whole models

    def top(self, depth: int) -> tuple[str, bool]:
        """The formula, and whether its output is non-scalar (checked for its value only)."""
        if self.kind == "scalar":
            return self.expr((), depth), False
        if self.kind == "tensor" and self.c.chance(0.12):  # a softmax cross-entropy
            axis = self.c.index(2)
            z = self.expr((N, M), depth - 1, exact=True)
            y = self.onehot_data((N, M), axis)
            self.used |= {"log_softmax", "cross-entropy"}
            if self.c.chance(0.5):
                return f"(-sum({y}*log_softmax({z}, axis={axis})))", False
            self.used |= {"logsumexp", "mean"}
            return (f"mean(logsumexp({z}, axis={axis}) - sum({y}*{z}, axis={axis}))", False)
        if self.c.chance(0.15):  # a non-scalar output: per-row values
            shape = self.c.pick([(N,), (M,), (N, 1), (N, M)])
            self.used.add("non-scalar output")
            return self.expr(shape, depth, exact=True), True
        name = self.c.pick(["sum", "mean", "max", "logsumexp"])
        self.used.add(name)
        shape = self.c.pick([(N,), (N, M), (M, N)] if self.kind == "matmul" else [(N,), (N, M)])
        u = self.expr(shape, depth, exact=True)
        if name == "max":
            self.guards.append(("gap", u, None))
        return f"{name}({u})", False


def generate(choices: Choices, kind: str, depth: int | None = None) -> tuple[Model, list]:
    """A random model of this kind (inputs still without values) and its guards."""
    gen = Generator(choices, kind)
    if depth is None:
        depth = choices.pick([2, 3, 3, 4] if kind != "scalar" else [2, 3, 4, 4])
    formula, _ = gen.top(depth)
    if not gen.shapes:  # a formula of numbers only: add an input
        formula = f"({formula} + a*{'X' if kind != 'scalar' else 'b'})"
        gen.shapes["a"] = ()
        if kind == "scalar":
            gen.shapes["b"] = ()
        else:
            gen.shapes["X"] = (N, M)
            gen.data.add("X")
        gen.used |= {"+", "*"}
    for s in gen.shapes.values():
        gen.used.add(f"shape{s}")
    inputs = dict(sorted(gen.shapes.items()))
    model = Model(formula, inputs, _wrt(choices, inputs, gen.data_kinds()), kind, gen.used,
                  gen.onehot)
    return model, gen.guards


def _wrt(choices: Choices, inputs, data) -> list[str]:
    """Every input (one-hot labels aside), the parameters alone (the common case: data is not
    differentiated) or a random part of the inputs; what is asked for changes the code."""
    names = [n for n in inputs if n not in data or data[n] is None]
    form = choices.index(3)
    if form == 0:
        return names
    part = ([n for n in names if n not in data] if form == 1
            else [n for n in names if choices.chance(0.5)])
    return part or [choices.pick(names)]


def reduction_model(choices: Choices) -> tuple[Model, list]:
    """A reduction (sum, mean, max, logsumexp over all elements or along an axis, with or
    without keepdims; or a softmax cross-entropy) of a random elementwise expression that mixes
    data with parameters of every shape that broadcasts to it; reduced to a scalar by a sum."""
    gen = Generator(choices, "elementwise")
    name = choices.pick(["sum", "mean", "max", "logsumexp", "cross-entropy"])
    gen.used.add(name)
    shape = (N, M) if name == "cross-entropy" else choices.pick([(N, M), (N,)])
    body = gen.expr(shape, choices.pick([1, 2, 3]), exact=True)
    if choices.index(3):  # a parameter reaching the reduction through a sum (coefficient 1)
        body = f"({body} + {gen.leaf(shape, exact=False)})"
        gen.used.add("+")
    if name == "cross-entropy":
        axis = choices.index(2)
        y = gen.onehot_data(shape, axis)
        formula = f"(-sum({y}*log_softmax({body}, axis={axis})))"
    else:
        axis = choices.pick([None, None, *range(len(shape)), -1])
        keepdims = choices.chance(0.5)
        if name == "max":
            gen.guards.append(("gap", body, axis))
        text = body + (f", axis={axis}" if axis is not None else "")
        text += ", keepdims=True" if keepdims else ""
        formula = f"{name}({text})"
        if axis is not None or keepdims:
            formula = f"{choices.pick(['sum', 'mean'])}({formula})"
    if not gen.shapes:
        formula = f"({formula} + sum(X))"
        gen.shapes["X"] = shape
        gen.data.add("X")
    for s in gen.shapes.values():
        gen.used.add(f"shape{s}")
    inputs = dict(sorted(gen.shapes.items()))
    model = Model(formula, inputs, _wrt(choices, inputs, gen.data_kinds()), "reduction",
                  gen.used, gen.onehot)
    return model, gen.guards


def draw_point(model: Model, guards: list, rng: np.random.Generator, tries: int = 40) -> bool:
    """Give the model's inputs values at which every guard holds; False if none is found."""
    shapes = dict(model.inputs)
    onehot = model.onehot
    for _ in range(tries):
        values: dict[str, object] = {}
        for name, shape in shapes.items():
            if name in onehot:
                axis = onehot[name]
                labels = rng.integers(shape[axis], size=shape[1 - axis])
                eye = np.eye(shape[axis])[labels]
                values[name] = eye if axis == 1 else eye.T.copy()
            elif shape == ():
                values[name] = float(np.round(rng.uniform(-1.5, 1.5), 3))
            else:
                values[name] = np.round(rng.uniform(-1.5, 1.5, size=shape), 3)
        if _holds(guards, values):
            model.inputs = values
            value = model.numeric()
            if np.all(np.isfinite(value)) and np.max(np.abs(value), initial=0) < 1e6:
                return True
    return False


def _holds(guards: list, values: dict) -> bool:
    def ev(text):
        with np.errstate(all="ignore"):
            return np.asarray(eval(_code(text), {**NUMERIC, **values}), dtype=float)

    for guard in guards:
        kind, text = guard[0], guard[1]
        v = ev(text)
        if not np.all(np.isfinite(v)):
            return False
        if kind == "positive" and not np.all(v > 1e-3):
            return False
        if kind == "unit" and not np.all(np.abs(v) < 0.97):
            return False
        if kind == "tan" and not np.all(np.abs(np.cos(v)) > 0.15):
            return False
        if kind == "within" and not np.all(np.abs(v) < guard[2]):
            return False
        if kind == "off-integer" and not np.all(np.abs(v - np.round(v)) > 1e-2):
            return False
        if kind == "apart" and not np.all(np.abs(v - ev(guard[2])) > guard[3]):
            return False
        if kind == "gap":
            axis = guard[2]
            flat = v.reshape(-1) if axis is None else np.moveaxis(v, axis, -1)
            if flat.shape[-1] > 1:
                top2 = np.sort(flat, axis=-1)[..., -2:]
                if not np.all(top2[..., 1] - top2[..., 0] > 1e-2):
                    return False
    return True


def keeps_inputs(model: Model) -> bool:
    """Whether SymPy's reading of the formula still has every input. SymPy evaluates some
    formulas away as they are built (``X - X`` is 0, ``Heaviside(Max(a, 2))`` is 1), and with
    them the shape of the inputs they held, which no compiler can know; such models are not
    drawn. (A formula SymPy cannot build at all is kept: that is a failure to report.)"""
    try:
        expression = model.expression()
    except Exception:
        return True
    return {s.name for s in expression.free_symbols} == set(model.inputs)


def keeps_shape(model: Model) -> bool:
    """Whether SymPy's reading of the formula, printed and read by NumPy, has the formula's
    shape: SymPy cancels subexpressions that hold inputs' shapes (``(X + d) - X`` is ``d``), and
    a model it changed so (its printed form has another shape, or shapes NumPy refuses: a
    ValueError) is not drawn. Where the printed form is not NumPy's to read (a name NumPy lacks,
    say), the model is kept."""
    try:
        model.expression()
    except Exception:
        return True  # a formula SymPy cannot build: a failure to report
    try:
        with np.errstate(all="ignore"):
            shape = np.shape(eval(str(model.expression()), {**NUMERIC, **model.inputs}))
    except ValueError:
        return False
    except Exception:
        return True
    return shape == model.numeric().shape


def make_models(kind: str, count: int, seed: int) -> list[Model]:
    """``count`` models of a kind, each with a point; deterministic for a seed."""
    rng = np.random.default_rng(seed)
    models = []
    while len(models) < count:
        model, guards = generate(Choices(rng), kind)
        if keeps_inputs(model) and draw_point(model, guards, rng) and keeps_shape(model):
            models.append(model)
    return models


# -- the checks -------------------------------------------------------------------------------


def finite_differences(model: Model, name: str, h: float = 1e-5) -> np.ndarray:
    """d (scalar formula) / d input ``name``, elementwise, by the 4-point central stencil."""
    x0 = np.asarray(model.inputs[name], dtype=float)
    grad = np.zeros(x0.shape)
    for idx in np.ndindex(x0.shape):
        step = h * max(1.0, abs(float(x0[idx])))
        values = []
        for k in (-2, -1, 1, 2):
            x = x0.copy()
            x[idx] += k * step
            values.append(float(model.numeric(**{name: x if x.ndim else float(x)})))
        grad[idx] = (values[0] - 8 * values[1] + 8 * values[2] - values[3]) / (12 * step)
    return grad


def sympy_gradients(model: Model) -> dict[str, float] | None:
    """For a scalar model, each derivative by ``sympy.diff``, evaluated at the point by SymPy
    (substituted, then evalf); None where SymPy cannot give a finite number."""
    try:
        result = _sympy_gradients(model)
    except Exception:
        return None
    return result if all(math.isfinite(v) for v in result.values()) else None


def _sympy_gradients(model: Model) -> dict[str, float]:
    from helpers import no_delta, realify

    real, mapping = realify(model.expression())
    by_name = {s.name: s for s in mapping.values()}
    # symgrad's functions in SymPy's own terms, so that they evaluate at numbers
    elementary = {
        symgrad.sigmoid: lambda u: 1 / (1 + sp.exp(-u)),
        symgrad.softplus: lambda u: sp.log(1 + sp.exp(u)),
        symgrad.relu: lambda u: sp.Max(u, 0),
    }
    point = {s: sp.Float(float(model.inputs[n]), 30) for n, s in by_name.items()}
    result = {}
    for n in model.wrt:
        d = no_delta(sp.diff(real, by_name[n])) if n in by_name else sp.S.Zero
        for function, meaning in elementary.items():
            d = d.replace(function, meaning)
        result[n] = float(d.subs(point).evalf(20))
    return result


@dataclass
class Failure:
    model: Model
    path: str
    problem: str

    def __str__(self) -> str:
        return (f"# {self.model.kind} model, {self.path}: {self.problem}\n"
                f"{self.model.source()}\n")


def _load_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _from_source(source: str) -> dict:
    namespace: dict = {}
    exec(compile(source, "<source_for>", "exec"), namespace)
    return namespace


def check(model: Model, tmp: Path, paths: Sequence[str] = ("call", "source_for", "save"),
          use_sympy: bool = False) -> list[Failure]:
    """Every listed code path against the NumPy formula, finite differences and (``use_sympy``)
    sympy.diff; the failures found (the first of each path)."""
    failures: list[Failure] = []
    want = model.numeric()
    scalar = want.ndim == 0
    scale = 1.0 + float(np.max(np.abs(want), initial=0))
    if scalar:
        fd = {n: finite_differences(model, n) for n in model.wrt}
        exact = sympy_gradients(model) if use_sympy else None
        model.sympy_checked = exact is not None

    def fail(path, problem):
        failures.append(Failure(model, path, problem))

    def compare_value(path, got) -> bool:
        got = np.asarray(got, dtype=float)
        if got.shape != want.shape:
            fail(path, f"value has shape {got.shape}, expected {want.shape}")
            return False
        if not np.allclose(got, want, rtol=1e-8, atol=1e-10 * scale):
            fail(path, f"value {_short(got)}, expected {_short(want)} (NumPy)")
            return False
        return True

    def compare_grads(path, grads) -> bool:
        if not isinstance(grads, dict) or sorted(grads) != sorted(model.wrt):
            fail(path, f"gradients for {sorted(grads) if isinstance(grads, dict) else grads}, "
                       f"expected {sorted(model.wrt)}")
            return False
        for n in model.wrt:
            g = np.asarray(grads[n], dtype=float)
            shape = np.shape(model.inputs[n])
            if g.shape != shape:
                fail(path, f"gradient of {n!r} has shape {g.shape}, the input's is {shape}; "
                           f"got {_short(g)}, expected {_short(fd[n])} (finite differences)")
                return False
            gscale = scale + float(np.max(np.abs(fd[n]), initial=0))
            if not np.allclose(g, fd[n], rtol=1e-5, atol=1e-6 * gscale):
                fail(path, f"gradient of {n!r} is {_short(g)}, expected {_short(fd[n])} "
                           f"(finite differences)")
                return False
            if exact is not None and not math.isclose(float(g), exact[n], rel_tol=1e-8,
                                                      abs_tol=1e-10 * gscale):
                fail(path, f"gradient of {n!r} is {float(g)!r}, expected {exact[n]!r} "
                           f"(sympy.diff)")
                return False
        return True

    def run(path, forward, value_and_grad):
        try:
            if not compare_value(path + " (forward)", forward(**model.inputs)):
                return
            if scalar:
                value, grads = value_and_grad(**model.inputs)
                if compare_value(path + " (value_and_grad)", value):
                    compare_grads(path + " (value_and_grad)", grads)
            elif path == "call":
                try:
                    value_and_grad(**model.inputs)
                except symgrad.SymgradError:
                    pass
                else:
                    fail(path, "value_and_grad of a non-scalar output did not refuse")
        except Exception as e:
            fail(path, _error(e))

    try:
        compiled = model.compile()
    except Exception as e:
        fail("compile", _error(e))
        return failures
    if "call" in paths:
        run("call", compiled, compiled.value_and_grad)
    if "source_for" in paths:
        try:
            namespace = _from_source(compiled.source_for(**model.inputs))
        except Exception as e:
            fail("source_for", _error(e))
        else:
            run("source_for", namespace["forward"], namespace["value_and_grad"])
    if "save" in paths:
        try:
            name = f"fuzz_saved_{id(model):x}"
            module = _load_module(compiled.save(tmp / f"{name}.py"), name)
            sys.modules.pop(name, None)
        except Exception as e:
            fail("save", _error(e))
        else:
            run("save", module.forward, module.value_and_grad)
    return failures


def _short(a) -> str:
    a = np.asarray(a, dtype=float)
    return np.array2string(a, precision=6, threshold=12, separator=", ").replace("\n", "")


def _error(e: BaseException) -> str:
    frames = traceback.extract_tb(e.__traceback__)
    where = f" (at {frames[-1].name}: {frames[-1].line})" if frames else ""
    return f"{type(e).__name__}: {str(e)[:300]}{where}"
