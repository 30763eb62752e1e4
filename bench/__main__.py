"""``python -m bench <name> [options]``: benchmarks that print a table and write JSON (+ PNG).

Each sub-command is a module ``bench/<name>.py`` with ``main(argv: list[str]) -> int``, so a
benchmark is added by adding one file. Results go under ``bench/results/``.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

HERE = Path(__file__).parent


HELPERS = ("common", "train_variants")  # modules of shared code, not benchmarks


def available() -> list[str]:
    return sorted(
        m.name for m in pkgutil.iter_modules([str(HERE)]) if not m.name.startswith("_") and m.name not in HELPERS
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    names = available()
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m bench {" + ",".join(names) + "} [options]   (each takes --help)")
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in names:
        print(f"bench: unknown benchmark {name!r}; choose one of {', '.join(names)}", file=sys.stderr)
        return 2
    return int(importlib.import_module(f"bench.{name}").main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
