"""Helpers shared by the benchmarks: where results go, atomic JSON, Markdown tables."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any, Sequence

from quant.artifact import atomic_write_bytes

RESULTS = Path(__file__).parent / "results"


def machine() -> dict[str, Any]:
    import os

    return {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def write_json(name: str, data: dict[str, Any], out_dir: Path = RESULTS) -> Path:
    """Write ``<out_dir>/<name>.json`` atomically (results are regenerated, so replacing is expected)."""
    data = {"benchmark": name, "machine": machine(), **data}
    return atomic_write_bytes(out_dir / f"{name}.json", (json.dumps(data, indent=2) + "\n").encode(), overwrite=True)


def save_results(name: str, res: dict[str, Any], args, plot=None) -> None:
    """Write a benchmark's JSON (and PNG via ``plot(res, path)``) the way every bench does:
    always for a full run, in smoke mode only with an explicit ``--out-dir``; smoke results are
    named ``<name>-smoke``."""
    if args.smoke and not args.out_dir:
        return
    out = Path(args.out_dir) if args.out_dir else RESULTS
    name = f"{name}-smoke" if args.smoke else name
    path = write_json(name, res, out)
    if plot is not None:
        plot(res, out / f"{name}.png")
        print(f"wrote {path} and {name}.png")
    else:
        print(f"wrote {path}")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (also readable in a terminal)."""
    cells = [[str(h) for h in headers]] + [[f"{c:.4g}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    w = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = lambda r: "| " + " | ".join(c.ljust(w[i]) for i, c in enumerate(r)) + " |"
    return "\n".join([line(cells[0]), "|" + "|".join("-" * (x + 2) for x in w) + "|"] + [line(r) for r in cells[1:]])


# Exit status of ``--check-cache`` when some training runs are missing (0: all cached).
MISSING_RUNS = 3


def report_missing(bench: str, missing: Sequence[str], runs_dir: Path) -> int:
    """Print what ``python -m bench <bench> --check-cache`` found; its exit status."""
    if not missing:
        print(f"bench {bench}: every training run it needs is cached in {runs_dir}")
        return 0
    print(f"bench {bench}: {len(missing)} training run(s) not yet in {runs_dir} (first: {missing[0]}); "
          f"`python -m bench {bench}` trains them (and caches them for later runs)")
    return MISSING_RUNS
