"""``python -m symgrad``: the ``symgrad`` command (see ``symgrad/cli.py``)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
