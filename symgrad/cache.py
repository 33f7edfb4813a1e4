"""An on-disk cache of generated modules, so that a model compiled before loads at once, in this
process or in another one.

An entry is the generated ``.py`` module itself, readable, stored as
``<directory>/<key[:2]>/<key>.py``. Its last line is a comment holding the symgrad version and
the SHA-256 of the rest of the file; :meth:`ModuleCache.load` checks that line before anything
is executed, so an entry that is corrupt, truncated or from another version reads as absent and
the next :meth:`ModuleCache.store` rewrites it. Writers write a temporary file in the entry's
own directory and rename it over the entry, so a reader sees a whole entry or none. Python's own
bytecode cache (``__pycache__``) keeps each compiled part of the module beside it: a load in a
fresh process skips Python's compilation (some microseconds a line) and only unmarshals the
code, even the first time, when the model's first call in the compiling process wrote it.

>>> import tempfile
>>> tmp = tempfile.TemporaryDirectory()
>>> cache = ModuleCache(tmp.name)
>>> key = "0123456789abcdef" * 4
>>> cache.load(key) is None
True
>>> cache.store(key, "def double(x):\\n    return 2*x\\n")
>>> cache.load(key)["double"](21)
42
>>> tmp.cleanup()
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import marshal
import os
import re
import secrets
import shutil
import sys
import warnings
from pathlib import Path
from types import CodeType
from typing import Any

from .codegen.load import Module
from .errors import SymgradError, SymgradWarning

__all__ = ["ModuleCache", "default_cache_dir"]

# Lowercase only: on a case-insensitive file system (macOS, Windows) two keys that differ only
# in case would share one file. The length range admits the usual digests (64-bit to SHA-512).
_KEY = re.compile(r"[0-9a-f]{16,128}")

# The directories about which a failed store has warned already: once per directory and process,
# however many ModuleCache objects (one per compile, say) point there.
_warned: set[Path] = set()

# The flags word of a checked-hash .pyc (PEP 552): bit 0 hash-based, bit 1 check the source.
_CHECKED_HASH_FLAGS = (0b11).to_bytes(4, "little")


def default_cache_dir() -> Path:
    """The directory symgrad caches compiled models in, by default (it may not exist yet).

    ``$SYMGRAD_CACHE_DIR`` itself if that is set; otherwise a ``symgrad`` directory in the user's
    cache directory: ``$XDG_CACHE_HOME`` (when it is an absolute path, as the XDG specification
    requires) or ``~/.cache`` on Linux and other Unixes, ``~/Library/Caches`` on macOS and
    ``%LOCALAPPDATA%`` on Windows.

    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, SYMGRAD_CACHE_DIR="/srv/models"):
    ...     default_cache_dir().as_posix()
    '/srv/models'
    >>> with mock.patch.dict(os.environ, SYMGRAD_CACHE_DIR=""):
    ...     default_cache_dir().name
    'symgrad'
    """
    try:
        own = os.environ.get("SYMGRAD_CACHE_DIR")
        if own:  # empty counts as unset, as the XDG variables do
            return Path(own).expanduser()
        if sys.platform == "win32":
            local = os.environ.get("LOCALAPPDATA")
            base = Path(local) if local else Path.home() / "AppData" / "Local"
        elif sys.platform == "darwin":
            base = Path.home() / "Library" / "Caches"
        else:
            xdg = os.environ.get("XDG_CACHE_HOME")
            base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    except RuntimeError as e:  # Path.home() when neither $HOME nor the user database knows it
        raise SymgradError(
            f"symgrad cannot find a cache directory ({e}): set $SYMGRAD_CACHE_DIR, pass "
            "compile(..., cache_dir=...) or turn the cache off with compile(..., cache=False)"
        ) from None
    return base / "symgrad"


class ModuleCache:
    """Generated modules on disk, by key: ``store(key, source)``, then ``load(key)`` in any
    process returns the module's namespace.

    ``directory`` is where the entries live (created at the first store), by default
    :func:`default_cache_dir`. A key is a lowercase hexadecimal digest of 16 to 128 digits that
    determines the source (the caller hashes what the source is generated from). The cache never
    breaks its caller: a directory that cannot be written makes :meth:`store` do nothing (with one
    ``SymgradWarning``) and :meth:`load` return None.

    >>> import tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> cache = ModuleCache(tmp.name)
    >>> cache.directory == Path(tmp.name).absolute()
    True
    >>> ModuleCache(42)
    Traceback (most recent call last):
    symgrad.errors.SymgradError: the cache directory 42 is an int, not a path: ...
    >>> tmp.cleanup()
    """

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self._directory = default_cache_dir() if directory is None else _checked_dir(directory)

    @property
    def directory(self) -> Path:
        """The directory of the entries, absolute (a later ``os.chdir`` does not move it).

        >>> ModuleCache("/srv/cache").directory.as_posix()
        '/srv/cache'
        """
        return self._directory

    def path(self, key: str) -> Path:
        """The file of the entry ``key`` (it may not exist): ``<directory>/<key[:2]>/<key>.py``,
        so that no directory holds more than a 256th of the entries.

        >>> ModuleCache("/srv/cache").path("00ff" * 8).as_posix()
        '/srv/cache/00/00ff00ff00ff00ff00ff00ff00ff00ff.py'
        >>> ModuleCache("/srv/cache").path("../etc")
        Traceback (most recent call last):
        ValueError: '../etc' is not a cache key: ...
        """
        _check_key(key)
        return self._directory / key[:2] / f"{key}.py"

    def load(self, key: str) -> Module | None:
        """The namespace (the globals) of the module stored under ``key``, freshly executed; None
        when there is no such entry, or it is corrupt, truncated or from another symgrad version
        (then it is not executed), or executing it fails (the caller's own compilation then
        reports that as it would without a cache).

        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> cache, key = ModuleCache(tmp.name), "ab" * 8
        >>> cache.store(key, "import math\\nTAU = 2*math.pi\\n")
        >>> cache.load(key)["TAU"]
        6.283185307179586
        >>> cache.load("cd" * 8) is None
        True
        >>> tmp.cleanup()
        """
        path = self.path(key)
        try:
            data = path.read_bytes()
        except OSError:  # absent, a directory, unreadable: all mean "not cached"
            return None
        if not _verified(data):
            return None
        body = data[: data.rfind(b"\n", 0, len(data) - 1) + 1].decode("utf-8")
        codes = _Bytecode(path)
        try:
            return self.module(key, body)
        except Exception:
            # A helper module that is not installed, code that fails when it runs: drop the
            # compiled parts (they are written again), report a miss.
            codes.forget()
            return None

    def module(self, key: str, source: str) -> Module:
        """The module ``source`` of the entry ``key``, run: its parts compiled once, in any
        process, and kept beside the entry; tracebacks show the entry's lines. ``source`` must be
        what ``store`` stores under ``key`` (the compiled parts are bound to their text).

        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> cache, key = ModuleCache(tmp.name), "ab" * 8
        >>> cache.module(key, "def double(x):\\n    return 2*x\\n")["double"](21)
        42
        >>> sorted(p.name for p in (cache.path(key).parent / "__pycache__").iterdir())[-1][:24]
        'abababababababab.double.'
        >>> tmp.cleanup()
        """
        path = self.path(key)
        if source and not source.endswith("\n"):
            source += "\n"  # as stored
        # unique per key; the hyphen makes it no importable module
        return Module(source, str(path), f"symgrad-cache-{key}", _Bytecode(path))

    def load_note(self, key: str) -> dict[str, Any] | None:
        """The note stored under ``key`` (a JSON object), or None when there is none, or it is
        corrupt, truncated or from another symgrad version.

        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> cache, key = ModuleCache(tmp.name), "ab" * 8
        >>> cache.store_note(key, {"inputs": ["x"]})
        >>> cache.load_note(key), cache.load_note("cd" * 8)
        ({'inputs': ['x']}, None)
        >>> tmp.cleanup()
        """
        data = _read(_note_path(self, key))
        if data is None or not _verified(data):
            return None
        body = data[: data.rfind(b"\n", 0, len(data) - 1) + 1]
        try:
            note = json.loads(body)
        except ValueError:
            return None
        return note if isinstance(note, dict) else None

    def store_note(self, key: str, note: dict[str, Any]) -> None:
        """Store the JSON object ``note`` under ``key`` (as ``store`` stores a module)."""
        data = _entry(json.dumps(note, sort_keys=True).encode("utf-8"))
        try:
            _write(_note_path(self, key), data)
        except OSError:
            pass  # (only costs the cache; store warns about the directory once)

    def store(self, key: str, source: str) -> None:
        """Store the module ``source`` under ``key``, replacing any entry there. A directory that
        cannot be written (read-only, full, a file in its place) only costs the cache: nothing is
        stored and a ``SymgradWarning`` says so, once per directory.

        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> cache, key = ModuleCache(tmp.name), "ab" * 8
        >>> cache.store(key, "X = 1\\n")
        >>> print(cache.path(key).read_text().splitlines()[0])
        X = 1
        >>> tmp.cleanup()
        """
        path = self.path(key)
        if not isinstance(source, str):
            raise TypeError(f"source must be a str, not {type(source).__name__}")
        data = _entry(source.encode("utf-8"))
        try:
            _write(path, data)
        except OSError as e:
            if self._directory not in _warned:
                _warned.add(self._directory)
                warnings.warn(
                    SymgradWarning(
                        f"symgrad cannot write its compile cache in {self._directory} "
                        f"({e.strerror or e}), so models are compiled again in each process: "
                        "make that directory writable, choose another with "
                        "compile(..., cache_dir=...) or $SYMGRAD_CACHE_DIR, or turn the cache "
                        "off with compile(..., cache=False)"
                    ),
                    stacklevel=2,
                )


def _note_path(cache: ModuleCache, key: str) -> Path:
    return cache.path(key).with_suffix(".json")


def _check_key(key: object) -> None:
    """Refuse what is not a key, before it becomes part of a path (``"../x"`` would escape).

    >>> _check_key("ABCDEF0123456789")
    Traceback (most recent call last):
    ValueError: 'ABCDEF0123456789' is not a cache key: ...
    """
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise ValueError(
            f"{key!r} is not a cache key: a key is 16 to 128 lowercase hexadecimal digits, "
            "e.g. hashlib.sha256(...).hexdigest()"
        )


def _checked_dir(directory: object) -> Path:
    """The user's ``directory`` as an absolute path, or a ``SymgradError`` naming what is wrong
    with it. A directory that does not exist yet is fine: the first store creates it.

    >>> _checked_dir("")
    Traceback (most recent call last):
    symgrad.errors.SymgradError: the cache directory is an empty path: ...
    """
    if not isinstance(directory, str | os.PathLike):
        raise SymgradError(
            f"the cache directory {directory!r} is {_a(type(directory).__name__)}, not a path: "
            "pass a str or a pathlib.Path"
        )
    text = os.fspath(directory)
    if not isinstance(text, str):
        raise SymgradError(
            f"the cache directory {directory!r} is a bytes path: pass a str or a pathlib.Path"
        )
    if not text:
        raise SymgradError(
            "the cache directory is an empty path: pass a directory, or turn the cache off "
            "with compile(..., cache=False)"
        )
    if "\0" in text:
        raise SymgradError(
            f"the cache directory {text!r} contains a NUL character, which no path can: "
            "pass another directory"
        )
    try:
        path = Path(text).expanduser().absolute()
    except RuntimeError as e:  # "~" when no home directory is known
        raise SymgradError(f"the cache directory {text!r}: {e}; pass a full path") from None
    # The nearest part of the path that exists must be a directory, or nothing can be created.
    for part in (path, *path.parents):
        try:
            exists, is_dir = part.exists(), part.is_dir()
        except OSError:  # not ours to look at (EACCES): the first store will tell
            break
        if exists:
            if not is_dir:
                what = "is" if part == path else f"is inside {part}, which is"
                raise SymgradError(
                    f"the cache directory {path} {what} a file, not a directory: "
                    "pass a directory (it is created if it does not exist)"
                )
            break
    return path


def _a(noun: str) -> str:
    return f"an {noun}" if noun[:1] in "aeiou" else f"a {noun}"


def _header(body: bytes) -> bytes:
    """The last line of the entry whose other lines are ``body`` (last, so that the module's
    lines keep their numbers: a traceback points at the line ``model.source`` shows).

    >>> _header(b"X = 1\\n")
    b'# symgrad ... compile cache entry; sha256 of the lines above: 0abae1...\\n'
    """
    from . import __version__  # here, not at the top: symgrad/__init__ may import this module

    digest = hashlib.sha256(body).hexdigest()
    line = f"# symgrad {__version__} compile cache entry; sha256 of the lines above: {digest}\n"
    return line.encode()


def _entry(body: bytes) -> bytes:
    """The file that stores the module ``body``: the module, then its checksum line."""
    if body and not body.endswith(b"\n"):
        body += b"\n"
    return body + _header(body)


def _verified(data: bytes) -> bool:
    """Whether ``data`` is a whole entry of this symgrad version: its last line is the line
    that this version writes for the lines above it.

    >>> entry = _entry(b"X = 1\\n")
    >>> _verified(entry), _verified(entry[:-1]), _verified(entry.replace(b"= 1", b"= 2"))
    (True, False, False)
    >>> _verified(b""), _verified(entry.replace(b"symgrad ", b"symgrad 9"))
    (False, False)
    """
    if not data.endswith(b"\n"):
        return False
    start = data.rfind(b"\n", 0, len(data) - 1) + 1
    return data[start:] == _header(data[:start])


def _write(path: Path, data: bytes) -> None:
    """Put ``data`` at ``path`` in one step, as far as any reader can see: written to a temporary
    file in the same directory (a rename is atomic only within one file system), then renamed
    over ``path``. There is no fsync: a file torn by a crash fails its checksum and reads as
    absent. Anything in the way inside the cache's own layout (a file where the key's
    subdirectory goes, a directory where the entry goes) is removed first."""
    folder = path.parent
    if folder.exists() and not folder.is_dir():
        folder.unlink(missing_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)  # another writer may be removing it too
    # Not mkstemp: its files are private (0o600), and an entry is as readable as the umask says.
    # The suffix is not .py, so that a half-written file is never taken for an entry.
    temporary = folder / f".{path.stem}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(temporary, flags, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(temporary, path)
    except OSError:
        _remove(temporary)
        # On Windows a rename over a file that another process has open fails; the entry there
        # is then another writer's, and as good as ours (a key determines its source).
        if _read(path) != data:
            raise
    except BaseException:  # interrupted: leave no temporary file behind
        _remove(temporary)
        raise


def _remove(path: str | Path) -> None:
    """Remove the file ``path`` if it can be (best effort: a cache only loses its space)."""
    try:
        os.unlink(path)
    except OSError:
        pass


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


class _Bytecode:
    """The compiled code of each part of one entry (its top level, each public function), kept
    where Python keeps a module's, ``__pycache__/<key>.<part>.<cache tag>.pyc``, each a
    checked-hash ``.pyc`` (PEP 552): a header holding a hash of the part's text, then the
    marshalled code. A part is compiled, and its file written, when the model first uses it,
    in whichever process that is; later processes unmarshal it instead of compiling.

    Why a hash rather than Python's default check of the source's mtime and size: a timestamp
    ``.pyc`` is trusted when the ``.py`` has the same size and the same whole second of mtime,
    so an entry rewritten with other bytes of the same size within that second (or on a file
    system with a coarse clock, or copied with its mtime) would run bytecode that the checksum
    never saw. The hash binds the code to the very text verified; it costs one SipHash of that
    text (about a millisecond per MB). The files are written even under
    ``PYTHONDONTWRITEBYTECODE`` (common in containers), which keeps Python from littering source
    trees, whereas this directory is a cache, there to hold compiled code.
    """

    def __init__(self, entry: Path) -> None:
        self._entry = str(entry)
        self._folder, self._key = entry.parent / "__pycache__", entry.stem
        self._tag = sys.implementation.cache_tag  # None: an interpreter without .pyc files

    def _path(self, part: str) -> Path | None:
        if self._tag is None or not _PART.fullmatch(part):
            return None
        return self._folder / f"{self._key}.{part or '_'}.{self._tag}.pyc"

    def get(self, part: str, text: str) -> CodeType | None:
        path = self._path(part)
        data = None if path is None else _read(path)
        if data is None or data[:16] != _pyc_header(text):
            return None
        try:
            code = marshal.loads(memoryview(data)[16:])
        except (EOFError, ValueError, TypeError):
            return None  # cut short or damaged: compiled and written again by the caller
        # (named after the entry where it is now: the directory may have moved since)
        return _with_filename(code, self._entry) if isinstance(code, CodeType) else None

    def put(self, part: str, text: str, code: CodeType) -> None:
        path = self._path(part)
        if path is not None:
            try:
                _write(path, _pyc_header(text) + marshal.dumps(code))
            except OSError:
                pass  # only costs the next process a compile

    def forget(self) -> None:
        """Remove the compiled parts of this entry."""
        for path in self._folder.glob(f"{self._key}.*.pyc"):
            _remove(path)


def _with_filename(code: CodeType, filename: str) -> CodeType:
    """``code`` and the code objects in it naming ``filename`` as their file (for tracebacks)."""
    if code.co_filename == filename:
        return code
    consts = tuple(_with_filename(c, filename) if isinstance(c, CodeType) else c
                   for c in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)


# A part's name as it may appear in a file name: the top level ("") or a generated function's.
_PART = re.compile(r"[A-Za-z0-9_]*")


def _pyc_header(text: str) -> bytes:
    """The header of a checked-hash ``.pyc`` of ``text``: magic number, flags, source hash."""
    source_hash = importlib.util.source_hash(text.encode("utf-8"))
    return importlib.util.MAGIC_NUMBER + _CHECKED_HASH_FLAGS + source_hash


_scratch: list[ModuleCache] = []


def scratch_cache() -> ModuleCache:
    """A cache in a temporary directory of this process's, removed when it exits: where the
    modules of models compiled with ``cache=False`` live when their compiler needs a file
    (Numba compiles, and keeps what it compiled, beside the module's file).

    >>> scratch_cache() is scratch_cache()
    True
    """
    if not _scratch:
        import atexit
        import shutil
        import tempfile

        directory = tempfile.mkdtemp(prefix="symgrad-")
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        _scratch.append(ModuleCache(directory))
    return _scratch[0]
