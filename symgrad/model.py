"""``CompiledModel``: what ``symgrad.compile`` returns.

>>> import numpy as np, sympy as sp
>>> import symgrad
>>> x, y, k, b = sp.symbols("x y k b")
>>> model = symgrad.compile(symgrad.mean((k*x + b - y)**2), wrt=[k, b])
>>> X, Y = np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 6.0])
>>> float(model(x=X, y=Y, k=2.0, b=0.0))
0.0
>>> value, grads = model.value_and_grad({x: X, y: Y, k: 1.0, b: 0.0})
>>> round(float(value), 6), {name: round(float(g), 6) for name, g in grads.items()}
(4.666667, {'k': -9.333333, 'b': -4.0})
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Mapping
from functools import cached_property, lru_cache
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import sympy as sp

from . import chains
from .cache import ModuleCache, scratch_cache
from .errors import InputError, NotScalarError, ShapeError, SymgradError, SymgradWarning
from .ir import Graph as IR
from .ops import derivative
from .runtime import RUNTIMES, array_input, is_dask, one_library, runtime, sympy_real
from .values import MISSING, has_missing, is_real_number


class CompiledModel:
    """A model compiled to NumPy: call it for the value, ``value_and_grad`` for both."""

    def __init__(
        self, graph: IR | None, model: Any = None, wrt: Any = None, name: str = "f",
        broadcast: str = "warn", cache: ModuleCache | None = None, *,
        output: Any = None, shapes: Any = None, note: dict | None = None,
        dtype: np.dtype | None = None, backend: str = "numpy",
    ):
        from .memory import keep_freed_memory

        keep_freed_memory()  # once per process: freed temporaries stay warm (memory.py)
        self.broadcast = broadcast  # what an outer-product broadcast does: warn, error, allow
        self.dtype = dtype  # the dtype every input is put in; None: the inputs' own (call_dtype)
        self.backend = backend  # the array library the code is written for (codegen.emit)
        self._warned: set[tuple] = set()  # shape patterns already warned about
        self._compiled = (model, wrt, name)  # what was compiled, as symgrad.compile was given it
        self._built_with = (output, shapes)  # and the rest of what the front end was given
        if graph is not None:
            self._forward = graph  # the model's IR before the reverse sweep
            info = graph.info
            note = {"inputs": [info[i].label for i in graph.inputs],
                    "wrt": [info[p].label for p in graph.wrt],
                    "output": info[graph.output].label,
                    "code": cache_key(graph, _run_code(backend, dtype)) if cache is not None
                    else None}
        else:  # a model compiled before, in this process or another: its IR is built on demand
            self.__dict__["_one_shape_suffices"] = bool(note["one_shape"])
        self.inputs: tuple[str, ...] = tuple(note["inputs"])
        self.wrt: tuple[str, ...] = tuple(note["wrt"])
        self.output: str = note["output"]
        self._code_key: str | None = note["code"]
        self._slot = {name: i for i, name in enumerate(self.inputs)}
        self._cache = cache  # the disk's cache, for the same model on another backend (to())
        self._functions = self._load(cache, cache is not None, self._code_key)
        self._modules: dict = {}  # other modules (function()) and jit-compiled functions
        self._checked: dict[tuple, list] = {}  # input shapes -> every node's shape
        self._last_shapes: dict[str, tuple] | None = None  # of the last new shapes called with

    @cached_property
    def _forward(self) -> IR:
        """The model's IR before the reverse sweep, built again for a model loaded from the
        compile cache when something asks for more than its code."""
        from .frontend import build

        (model, wrt, name), (output, shapes) = self._compiled, self._built_with
        return build(model, name=name, output=output, wrt=wrt, shapes=shapes)

    def note(self) -> dict[str, Any]:
        """What the compile cache keeps of this model besides its code: enough to call it
        without building its IR again.

        >>> import sympy as sp
        >>> from symgrad import compile, mean
        >>> k, x = sp.symbols("k x")
        >>> note = compile(mean((k*x)**2), wrt=[k], cache=False).note()
        >>> note["inputs"], note["wrt"], note["output"], note["one_shape"]
        (['k', 'x'], ['k'], 'f', True)
        """
        return {"inputs": list(self.inputs), "wrt": list(self.wrt), "output": self.output,
                "one_shape": self._one_shape_suffices,
                "code": self._code_key or cache_key(self._forward,
                                                    _run_code(self.backend, self.dtype))}

    def _load(self, cache: ModuleCache | None, memory: bool, key: str | None):
        """The code that runs: the lines of ``source`` without comments, taking the inputs in
        order, converted (``_arguments`` converts them); from this process's cache (``memory``)
        or the disk's (``cache``), under ``key``, when this model was compiled before."""
        from .codegen.emit import emit
        from .codegen.load import load

        written = RUNTIMES[self.backend].written
        if written == "numba" and cache is None:  # (Numba compiles, and caches, from a file)
            cache = scratch_cache()
            key = key or cache_key(self._forward, _run_code(self.backend, self.dtype))
        functions = _LOADED.get(key) if memory else None
        if functions is None and cache is not None:
            functions = cache.load(key)
        if functions is None:
            # (the array API's code converts the inputs itself: _arguments only checks them)
            source = emit(self._differentiated, comments=False, keyword_only=False,
                          convert=written == "array_api", backend=written,
                          dtype=None if self.dtype is None or self.backend == "numpy"
                          else self.dtype.name)
            if cache is not None:
                cache.store(key, source)
                functions = cache.module(key, source)  # its compiled parts are kept too
            else:
                functions = load(source)
        if memory:
            _LOADED[key] = functions
            while len(_LOADED) > 32:
                _LOADED.pop(next(iter(_LOADED)))
        return functions

    @cached_property
    def _differentiated(self) -> IR:
        """The IR with its reverse sweep: what the code is written from (the nodes a rule or
        a rewrite left unread are not written; ``ir`` leaves them out)."""
        from .backward import differentiate

        return differentiate(self._forward)

    @cached_property
    def ir(self) -> IR:
        """The differentiated IR (``symgrad.ir.Graph``); ``print(model.ir)`` lists it."""
        return self._differentiated.pruned()

    def __getstate__(self) -> dict[str, Any]:
        """What pickles: all but the compiled functions (loaded again when unpickled)."""
        state = self.__dict__.copy()
        state.pop("_functions", None)
        state["_modules"] = {}
        state["_cache"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._functions = self._load(None, True,
                                     self._code_key or cache_key(
                                         self._forward, _run_code(self.backend, self.dtype)))

    @cached_property
    def symbolic(self):
        """The symbolic view of the IR: one SymPy expression per node, over the names of the
        generated code (``symgrad.graph.Graph``), as the chains and diagrams read it."""
        from .views import view

        return view(self.ir)

    @cached_property
    def _user(self) -> dict[sp.Symbol, sp.Symbol]:
        """View symbol -> the user's own symbol (with its assumptions), found by name in what
        was compiled: only the symbolic views ask, and it is a walk of the whole model."""
        from .expressions import free_symbols
        from .frontend import equations_of

        model, wrt, name = self._compiled
        by_name: dict[str, sp.Symbol] = {}
        if model is not None:
            for _, rhs in equations_of(model, name):
                by_name.update((s.name, s) for s in free_symbols(rhs))
        for s in [wrt] if isinstance(wrt, sp.Symbol) else wrt or ():
            if isinstance(s, sp.Symbol):
                by_name.setdefault(s.name, s)
        return {n.symbol: by_name.get(n.label, sp.Symbol(n.label)) for n in self.symbolic.inputs}

    @cached_property
    def source(self) -> str:
        """The generated module: the code that runs, with its comments."""
        return self.source_with(self.backend)

    def source_with(self, backend: str) -> str:
        """The generated module written for another backend (``"numpy"``, ``"array_api"``).

        >>> import sympy as sp
        >>> from symgrad import compile
        >>> x, k = sp.symbols("x k")
        >>> print(compile(sp.exp(k*x), wrt=[k], cache=False).source_with("array_api"))
        ... # doctest: +ELLIPSIS
        # Generated by symgrad ...
        from array_api_compat import array_namespace
        ...
            xp, k, x = _arrays(k, x)
            f = xp.exp(k*x)
        ...
        """
        from .codegen.emit import emit

        return emit(self._differentiated, dtype=None if self.dtype is None else self.dtype.name,
                    backend=runtime(backend, installed=False).written)

    def function(self, name: str = "value_and_grad", backend: str | None = None) -> Any:
        """The generated function ``name`` (``"forward"``, ``"value_and_grad"``) of the module
        for ``backend`` (default: the model's own), taking the inputs by keyword: what
        ``save`` writes, to call directly or to hand to ``jax.jit``.

        >>> import sympy as sp
        >>> from symgrad import compile
        >>> x, k = sp.symbols("x k")
        >>> compile(k*x, wrt=[k], cache=False).function()(k=2.0, x=3.0)
        (np.float64(6.0), {'k': np.float64(3.0)})
        """
        from .codegen.load import load

        if name not in ("forward", "value_and_grad"):
            raise SymgradError(f"function {name!r}: choose 'forward' or 'value_and_grad'")
        backend = runtime(self.backend if backend is None else backend).written
        found = self._modules.get(backend)
        if found is None:
            found = self._modules[backend] = load(self.source_with(backend))
        return found[name]

    def to(self, backend: str) -> CompiledModel:
        """This model on another backend (``"numpy"``, ``"jax"``, ``"torch"``, ``"dask"`` ...):
        the same IR, its code written and loaded for that library (once per model).

        >>> import sympy as sp
        >>> from symgrad import compile
        >>> x, k = sp.symbols("x k")
        >>> model = compile(k*x, wrt=[k], cache=False)
        >>> model.to("array_api").backend, model.to("numpy") is model
        ('array_api', True)
        """
        backend = runtime(backend).name
        if backend == self.backend:
            return self
        found = self._modules.get(("to", backend))
        if found is None:
            (model, wrt, name), (output, shapes) = self._compiled, self._built_with
            found = self._modules[("to", backend)] = CompiledModel(
                self._forward, model, wrt, name, self.broadcast, self._cache, output=output,
                shapes=shapes, dtype=self.dtype, backend=backend)
        return found

    def __repr__(self) -> str:
        return (
            f"<CompiledModel {self.output}({', '.join(self.inputs)}), "
            f"gradient with respect to {', '.join(self.wrt) or 'nothing'}>"
        )

    # -- calling -------------------------------------------------------------------------------

    def _arguments(self, args: tuple, kwargs: dict) -> list:
        if args:
            if len(args) > 1 or not isinstance(args[0], Mapping):
                raise InputError(
                    "pass the inputs by name (model(x=..., k=...)) or as one mapping "
                    "keyed by symbol or name (model({x: ..., k: ...}))"
                )
            kwargs = _by_name(args[0], kwargs)
        values: list = [None] * len(self.inputs)
        unknown = []
        if RUNTIMES[self.backend].written == "array_api":  # (its code converts the inputs)
            run = RUNTIMES[self.backend]
            for name, value in kwargs.items():
                slot = self._slot.get(name)
                if slot is None:
                    unknown.append(name)
                else:
                    values[slot] = array_input(value, name)
            self._all_known(values, kwargs, unknown)
            one_library(values, self.inputs, run)  # (the arrays as given)
            return [run.array(v, name, self.dtype)
                    for name, v in zip(self.inputs, values, strict=True)]
        other_dtype = self.dtype is not None  # an input, or the model, not in float64
        for name, value in kwargs.items():
            slot = self._slot.get(name)
            if slot is None:
                unknown.append(name)
            elif type(value) is np.ndarray and value.dtype is _FLOAT and value.ndim:
                values[slot] = value  # already what the generated code computes with
            elif type(value) is float:
                values[slot] = np.float64(value)
            else:
                values[slot] = array = _as_array(value, name)
                if array.dtype is not _FLOAT:
                    other_dtype = True
        self._all_known(values, kwargs, unknown)
        if other_dtype:
            given = [kwargs[name] for name in self.inputs]
            _in_call_dtype(values, given, self.dtype)
        return values

    def _all_known(self, values: list, kwargs: dict, unknown: list) -> None:
        """An InputError naming the inputs given that the model does not take, or the ones it
        takes that were not given."""
        if unknown:
            raise InputError(
                f"unknown input{'s' * (len(unknown) > 1)} {', '.join(map(repr, unknown))}; "
                f"this model takes {', '.join(map(repr, self.inputs))}"
            )
        if len(kwargs) < len(self.inputs):
            missing = [n for n, v in zip(self.inputs, values, strict=True) if v is None]
            if missing:
                raise InputError(
                    f"missing input{'s' * (len(missing) > 1)} {', '.join(map(repr, missing))}"
                )

    def __call__(self, /, *args: Mapping, **inputs: Any) -> Any:
        """The value of the output for the given inputs."""
        values = self._arguments(args, inputs)
        return self._run("forward", values)

    def value_and_grad(self, /, *args: Mapping, **inputs: Any) -> tuple[Any, dict[str, Any]]:
        """The output's value and its gradient: a dict name -> array, in ``wrt`` order."""
        values = self._arguments(args, inputs)
        return self._run("value_and_grad", values)

    def grad(self, /, *args: Mapping, **inputs: Any) -> dict[str, Any]:
        """The gradient alone: a dict name -> array shaped like that input."""
        return self.value_and_grad(*args, **inputs)[1]

    def source_for(self, /, *args: Mapping, **inputs: Any) -> str:
        """The generated module compiled for inputs of these shapes, as if they had been
        declared with ``shapes=``: sums over broadcast axes written out (``dW = X.T @ dt2``,
        ``db = dt2.sum(axis=0)``), no backward lines for an output that is not a scalar."""
        from .backward import differentiate
        from .codegen.emit import emit
        from .frontend import build

        values = self._arguments(args, inputs)
        self._check(values)
        shapes = {name: np.shape(v) for name, v in zip(self.inputs, values, strict=True)}
        model, wrt, name = self._compiled
        output = self.output if len(self._forward.equations) > 1 else None
        return emit(differentiate(build(model, name=name, output=output, wrt=wrt,
                                        shapes=shapes)))

    def _check(self, values: list) -> None:
        """Check the shapes of a call once per shape pattern: a mismatch named by its
        equation, an outer-product broadcast warned about (as ``broadcast=`` says)."""
        if self.backend == "numpy":
            shapes = tuple([v.shape for v in values])  # (NumPy values: _arguments made them)
        else:
            shapes = tuple([v.shape if hasattr(v, "shape") else () for v in values])
        if shapes in self._checked:
            return
        from .shapes import infer

        by_name = dict(zip(self.inputs, shapes, strict=True))
        if len({s for s in shapes if s != ()}) <= 1 and self._one_shape_suffices:
            self._checked[shapes] = None  # (nothing can mismatch or broadcast outward)
            self._last_shapes = by_name
            return
        # the forward nodes say it all (the gradients' shapes follow from theirs): a model
        # loaded from the cache is not differentiated for this
        known = infer(self._forward, by_name, upto=self._forward.forward or None)
        if self.broadcast != "allow":
            self._check_broadcasts(by_name, known)
        if len(self._checked) > 64:
            self._checked.clear()
        self._checked[shapes] = known
        self._last_shapes = by_name

    @cached_property
    def _one_shape_suffices(self) -> bool:
        from .shapes import one_shape_suffices

        return one_shape_suffices(self._forward)

    def _key(self, shapes: Mapping[str, tuple]) -> tuple:
        return tuple(
            None if s is None else tuple(n == 1 for n in s)
            for s in (shapes.get(name) for name in self.inputs)
        )

    def _check_broadcasts(self, shapes: Mapping[str, tuple], known) -> None:
        """Warn (once per shape pattern) or raise where operands broadcast into an outer
        product, as ``broadcast=`` says."""
        from .shapes import outer_broadcasts

        key = self._key(shapes)
        if key in self._warned:
            return
        found = outer_broadcasts(self._forward, known)
        if not found:
            return
        text = "; ".join(found)
        if self.broadcast == "error":
            raise ShapeError(
                f"{text}; reshape an operand (e.g. y.reshape(-1, 1)), or compile with "
                "broadcast='allow' if that is meant"
            )
        self._warned.add(key)
        warnings.warn(
            f"{text}; is that meant? (reshape an operand, e.g. y.reshape(-1, 1); "
            "compile(..., broadcast='allow') silences this)",
            SymgradWarning, stacklevel=_caller_level(),
        )

    def _run(self, name: str, values: list):
        self._check(values)
        run = RUNTIMES[self.backend]
        function = self._jitted(name) if run.jit else self._functions[name]
        try:
            found = run.run(self, name, values)
            if found is not None:
                return found
            return run.finish(function(*values), name, self.wrt)
        except SymgradError:
            raise  # (already says what went wrong, as the chunks of a Dask call do)
        except ValueError as e:
            if str(e).startswith("value_and_grad needs a scalar output"):
                raise NotScalarError(
                    f"{self.output} is not a scalar, so it has no gradient: {e}; reduce it, "
                    f"for example symgrad.sum(...) or symgrad.mean(...) of it"
                ) from None
            raise InputError(f"computing {self.output} failed: {e}") from e

    def _jitted(self, name: str) -> Any:
        """The run module's function ``name`` compiled by ``jax.jit`` (once per model)."""
        found = self._modules.get(("jit", name))
        if found is None:
            import jax

            found = self._modules[("jit", name)] = jax.jit(self._functions[name])
        return found

    # -- symbolic views ------------------------------------------------------------------------

    @cached_property
    def gradients(self) -> dict[sp.Symbol, sp.Expr]:
        """Symbol -> the gradient as a SymPy expression in the inputs only.

        For a reduction (``sum``, ``mean``) the expression is the derivative with respect to a
        uniform shift of the symbol: for a scalar, the ordinary derivative.
        """
        view = self.symbolic
        full: dict[sp.Basic, sp.Basic] = {n.symbol: self._user[n.symbol] for n in view.inputs}
        for node in view.nodes:
            if node.expr is not None and node.role != "adjoint":
                full[node.symbol] = (
                    node.expr.xreplace({a: full[a] for a in node.args}) if node.args else node.expr
                )
        output = full[view.output]
        return {self._user[p]: derivative(output, self._user[p]) for p in view.wrt}

    def chain(self, param: sp.Symbol | str) -> str:
        """The chain rule for ``param``, e.g. ``∂Loss/∂L2·∂L2/∂σ·∂σ/∂L1·∂L1/∂k1``."""
        return chains.chain(self.symbolic, self._param(param))

    def explain(self, format: str = "text") -> str:
        """Every chain with each of its local factors written out.

        ``format`` is ``"text"``, ``"latex"`` or ``"markdown"``.
        """
        return chains.explain(self.symbolic, format)

    def _param(self, param: sp.Symbol | str):
        name = _key(param)
        view = self.symbolic
        for p in view.wrt:
            if view[p].label == name:
                return p
        for n in view.inputs:
            if n.label == name:
                return n.symbol
        raise InputError(
            f"{name!r} is not an input of this model; inputs: {', '.join(self.inputs)}"
        )

    # -- pictures (symgrad/render.py) ---------------------------------------------------------

    def graph(self, kind: str = "forward", highlight: sp.Symbol | str | None = None, **options):
        """The model as a ``graphviz.Digraph``: ``kind`` is forward, backward or both.

        ``highlight`` marks the chain(s) of one parameter.
        """
        from . import render

        graph = self.symbolic
        if self._last_shapes is not None:  # shapes seen at the last call: show them
            from .views import view

            known = self._check_shapes(self._last_shapes)
            graph = view(self.ir, known)
        return render.digraph(graph, kind=kind, highlight=self._highlight(highlight), **options)

    def to_dot(
        self, kind: str = "forward", highlight: sp.Symbol | str | None = None, **options
    ) -> str:
        """The DOT text of ``graph(kind, highlight)``; needs no Graphviz program."""
        return self.graph(kind, highlight, **options).source

    def render(
        self,
        path: str | Path,
        kind: str = "forward",
        highlight: sp.Symbol | str | None = None,
        **options,
    ) -> Path:
        """Draw the diagram to ``path`` (SVG, PNG or PDF, by its suffix); return the path."""
        from . import render

        return render.render(self.graph(kind, highlight, **options), path)

    def _check_shapes(self, shapes):
        from .shapes import infer

        return infer(self.ir, shapes)

    def _highlight(self, highlight):
        return None if highlight is None else self._param(highlight)

    def _repr_mimebundle_(self, include=None, exclude=None):
        from . import render

        return render.mimebundle(self)

    # -- optimisation (symgrad/training.py) --------------------------------------------------

    def objective(self, data: Mapping[Any, Any], params: Mapping[Any, Any]):
        """``(fun, x0, unflatten)`` for ``scipy.optimize.minimize(fun, x0, jac=True)``.

        ``fun(vector) -> (value, flat gradient)`` with the data held fixed; ``x0`` is the
        flattened ``params``; ``unflatten(vector) -> dict`` of named parameters.
        """
        from .training import objective

        return objective(self, data, params)

    # -- the generated module ------------------------------------------------------------------

    def save(self, path: str | Path, backend: str | None = None) -> Path:
        """Write the generated module to ``path`` and return the path: for the model's own
        backend, or ``backend`` (``"numpy"``, ``"array_api"``)."""
        if not isinstance(path, str | PathLike):
            raise SymgradError(f"save: {path!r} is not a path; pass a file name such as 'model.py'")
        path = Path(path)
        source = self.source if backend in (None, self.backend) else self.source_with(backend)
        try:
            path.write_text(source, encoding="utf-8")
        except OSError as e:
            raise SymgradError(f"save: cannot write {str(path)!r}: {e.strerror}") from None
        return path


def _run_code(backend: str, dtype: np.dtype | None) -> str:
    """What the code a model runs depends on besides its IR: the backend it is written for, and
    for the array API the dtype its inputs are put in (NumPy's are put in it before the call)."""
    written = RUNTIMES[backend].written
    return written if written == "numpy" or dtype is None else f"{written} {dtype.name}"


#: Compiled models' functions by cache key: a model compiled again in this process is loaded
#: at once (the last few kept).
_LOADED: dict[str, Any] = {}


def cache_key(graph: IR, backend: str = "numpy") -> str:
    """The key of a model's code in the caches: its IR's content, the backend, and symgrad's
    version and own code (a change to the compiler is a change to the code it writes)."""
    import hashlib

    text = f"{_compiler_digest()} {backend} {graph.content_hash()}"
    return hashlib.sha256(text.encode()).hexdigest()


def source_key(model: Any, name: str, output: Any, wrt: Any, shapes: Any,
               backend: str = "numpy", dtype: np.dtype | None = None) -> str | None:
    """The key of what ``compile`` was given (each equation's expression by its structure, the
    output's name, the parameters, the shapes), the backend and symgrad's version and own code:
    a model compiled before is found without building its IR. None where the model cannot be
    read (then the compile itself says why)."""
    import hashlib

    from .expressions import structural_hash
    from .frontend import equations_of

    try:
        equations = [(str(lhs), structural_hash(sp.sympify(rhs)))
                     for lhs, rhs in equations_of(model, name)]
        params = None if wrt is None else [
            _key(w) for w in ([wrt] if isinstance(wrt, sp.Symbol | str) else wrt)]
        declared = None if shapes is None else sorted(
            (_key(k), repr(v)) for k, v in dict(shapes).items())
    except Exception:  # (anything the front end refuses: it is reported by the compile)
        return None
    text = repr((_compiler_digest(), backend, None if dtype is None else dtype.name, name,
                 None if output is None else _key(output), params, declared, equations))
    return hashlib.sha256(text.encode()).hexdigest()


@lru_cache(maxsize=1)
def _compiler_digest() -> str:
    """symgrad's version and a digest of its source files."""
    import hashlib

    from . import __version__

    digest = hashlib.sha256(__version__.encode())
    root = Path(__file__).parent
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _caller_level() -> int:
    """The ``stacklevel`` of a warning raised by the function that calls this one, that points
    at the user's line: the first frame outside symgrad (a call, ``grad``, ``fit`` ...)."""
    frame, level = sys._getframe(2), 2  # (1 is the warning function itself)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    return level


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _key(k) -> str:
    return k.name if isinstance(k, sp.Symbol) else str(k)


def _by_name(mapping: Mapping, keywords: dict[str, Any]) -> dict[str, Any]:
    """The inputs of one mapping keyed by symbol or name, and of keywords, by name; an input
    given twice (as a symbol and as its name, or in both) is an error, never a silent choice."""
    result: dict[str, Any] = {}
    for k, v in mapping.items():
        if not isinstance(k, sp.Symbol | str):
            raise InputError(
                f"input key {k!r} is not a symbol or a name; key the mapping by symbol or name"
            )
        name = _key(k)
        if name in result:
            raise InputError(f"input {name!r} is given twice in the mapping; give it once")
        result[name] = v
    for name, v in keywords.items():
        if name in result:
            raise InputError(
                f"input {name!r} is given twice, in the mapping and as a keyword; give it once"
            )
        result[name] = v
    return result


_FLOAT = np.dtype(np.float64)


def call_dtype(values: list, dtype: np.dtype | None = None) -> np.dtype:
    """The floating dtype a call computes in: ``dtype`` when the model was compiled with one,
    else the one NumPy gives the input arrays together with a Python float (float32 arrays:
    float32; float32 and float64: float64; integers: float64). Python numbers are left out:
    they take the arrays' dtype, as in NumPy's own arithmetic.

    >>> call_dtype([np.ones(2, np.float32), 0.5]), call_dtype([np.arange(2), 0.5])
    (dtype('float32'), dtype('float64'))
    """
    if dtype is not None:
        return dtype
    kinds = {np.asarray(v).dtype for v in values if not _weak(v)}
    return np.result_type(*(k if k.kind in "biuf" else _FLOAT for k in kinds), 0.0)


def _weak(value) -> bool:
    """Whether an input is a number of Python's or SymPy's (no dtype of its own), which takes
    the dtype of the arrays it meets."""
    return not hasattr(value, "dtype") and np.ndim(value) == 0


def _in_call_dtype(values: list, given: list, dtype: np.dtype | None) -> None:
    """Put each input that is not a floating array (a Python number, an integer or boolean
    array) in the call's dtype; every input, for a model compiled with a ``dtype``."""
    target = call_dtype(given, dtype)
    for k, (value, original) in enumerate(zip(values, given, strict=True)):
        if value.dtype != target and (
                dtype is not None or value.dtype.kind != "f" or _weak(original)):
            values[k] = value.astype(target)[()]


def _as_array(value, name: str):
    """``value`` as a NumPy floating value: a floating array (or scalar) as it is, anything else
    in float64 (a scalar as ``np.float64``); or an InputError naming the input when it is not
    real numbers that float64 holds faithfully: None, strings, missing values (pandas ``NA``),
    complex numbers and other objects are refused, not turned into NaN or cut."""
    if type(value) is np.ndarray and value.dtype.kind == "f":
        return value if value.ndim else value[()]  # (a 0-d array as the scalar it holds)
    if type(value) is float or (type(value) is int and abs(value) < 2**53):
        return np.float64(value)  # (an int of at most 53 bits is a float64 exactly)
    if isinstance(value, np.floating):
        return value
    if value is None:
        raise InputError(f"input {name!r} is None; pass a number or an array of numbers")
    if isinstance(value, str | bytes):
        raise InputError(f"input {name!r} is text ({value!r:.40}), not a number or an array of "
                         "numbers; convert it first if it holds one (float(...))")
    if isinstance(value, Mapping | set):
        raise InputError(
            f"input {name!r} is a {type(value).__name__}, not a number or an array of numbers"
        )
    if has_missing(value):
        raise InputError(f"input {name!r} {MISSING}")
    if isinstance(value, sp.Basic) and value.is_number:  # (pi, sqrt(2): not Python numbers)
        value = sympy_real(value, name)
    if is_dask(value):
        raise InputError(
            f"input {name!r} is a Dask array, which NumPy's code would load whole: run the "
            f"model on Dask (model.to('dask'), or compile(..., backend='dask')), or pass "
            f"{name}.compute()")
    try:
        array = np.asarray(value)
    except OverflowError as e:  # (an int beyond float64: 10**400)
        raise InputError(f"input {name!r} does not fit in a float64: {e}") from None
    except Exception as e:  # (a library's own refusal, such as a tensor that requires grad)
        raise InputError(
            f"input {name!r} ({type(value).__name__}) cannot be read as an array of numbers: "
            f"{e}{_HINTS.get(type(value).__module__.split('.')[0], '')}"
        ) from None
    kind = array.dtype.kind
    if kind == "O" and all(is_real_number(v) for v in array.flat):  # (a list of Fractions, SymPy's
        kind = "f"  # numbers: each one a real number)
    if kind in "biuf":
        try:
            converted = array.astype(np.float64)
        except (OverflowError, TypeError) as e:  # (an int beyond float64: 10**400)
            raise InputError(f"input {name!r} does not fit in a float64: {e}") from None
        if array.dtype.kind != "O":  # (integers kept: _in_call_dtype puts them in the call's)
            converted = array
        return converted if converted.ndim else converted[()]
    what = {"c": "complex numbers (symgrad computes with real ones; pass .real if the "
                 "imaginary part is meant to be dropped)",
            "U": "text", "S": "bytes", "M": "dates", "m": "time spans"}.get(
        kind, "values that are not all numbers (None, a missing value, ...)")
    raise InputError(f"input {name!r} holds {what}; pass a number or an array of real numbers")


#: How to pass a library's array that NumPy cannot read as it is.
_HINTS = {"torch": " (pass tensor.detach(), or tensor.detach().cpu() for a GPU tensor)",
          "jax": " (pass numpy.asarray(array))"}


__all__ = ["CompiledModel", "SymgradError"]
