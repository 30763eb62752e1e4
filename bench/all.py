"""``python -m bench all [--smoke]``: every benchmark module that exists, within a time budget.

Runs, in this order, those of golden, sim, latency, cpu, energy, hw, stf, accuracy that
exist under ``bench/``, then any other bench module (never ``all``, ``summary`` or ``area``, the
alias of ``hw``), each as its
own process ``python -m bench <name>`` with ``--smoke`` (and ``--out-dir``) passed on when given.
Latency must come before cpu, which reads its JSON. The whole run has ``--budget-min`` minutes
(default 60): a bench still running when the budget is spent is stopped (its process group) and
reported as ``timeout``; benches not started for lack of time are ``skipped``. ``hw`` (bitstream
builds, 2 to 10 minutes each when not cached) gets ``--budget-min`` of half the time left when it
starts, so that the benches after it keep the other half: it starts no build it cannot finish in
its share (cached builds cost nothing) and says which it left out. At the end
`bench.summary.write_summary` writes ``SUMMARY.md`` from the JSON results in the results folder
(``--out-dir`` when given, else ``bench/results``).

``stf`` and ``accuracy`` come last because they train: 12 digits + 12 Fashion-MNIST runs and 5
digits variants (plus one Verilator build per variant), far more than an hour on a 2-core
machine when ``runs/bench/`` is empty. They cache every finished run there, and with a warm
cache they only re-measure (minutes). So ``all`` first asks each of them (``--check-cache``,
seconds) whether every run it needs is cached; if not, the bench is ``skipped`` with the
message that names the first missing run and the command that trains them
(``python -m bench stf``; it continues from whatever runs have finished). Their ``--smoke``
versions train a few tiny runs in a temporary folder and always run.

Exit status 0 when every bench that ran returned 0 (skipped benches do not count as failures).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.common import MISSING_RUNS, RESULTS, table

ROOT = Path(__file__).resolve().parent.parent
ORDER = ("golden", "sim", "latency", "cpu", "energy", "hw", "stf", "accuracy")
NOT_BENCHES = ("all", "summary", "area")  # area: an alias of hw
# Benches that take --budget-min and skip work rather than be stopped midway: the share of the
# time left (when they start) that they may use.
BUDGET_SHARE = {"hw": 0.5}
# Benches that train (and cache) models first; run only when their cache is complete.
NEEDS_TRAINED_RUNS = ("stf", "accuracy")


def plan() -> list[str]:
    from bench.__main__ import available

    names = [n for n in available() if n not in NOT_BENCHES]
    return [n for n in ORDER if n in names] + [n for n in names if n not in ORDER]


def _run_one(name: str, extra: list[str], timeout_s: float) -> tuple[str, int | None, float]:
    cmd = [sys.executable, "-m", "bench", name, *extra]
    print(f"\n=== bench all: {' '.join(cmd[1:])} (at most {timeout_s / 60:.1f} min) ===", flush=True)
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True)
    try:
        rc = proc.wait(timeout=timeout_s)
        return ("ok" if rc == 0 else "failed"), rc, time.monotonic() - t0
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)  # the group this call started (the bench and its simulators)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        return "timeout", None, time.monotonic() - t0


def _untrained(name: str, timeout_s: float) -> str | None:
    """None when `name`'s training runs are all cached, else the bench's own message about them."""
    cmd = [sys.executable, "-m", "bench", name, "--check-cache"]
    try:
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return f"bench {name} --check-cache did not answer within {timeout_s:.0f} s"
    if r.returncode == 0:
        return None
    if r.returncode == MISSING_RUNS:
        return r.stdout.strip()
    return f"bench {name} --check-cache failed (exit {r.returncode}): {(r.stderr or r.stdout).strip()[-500:]}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench all", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="pass --smoke to every bench")
    ap.add_argument("--out-dir", type=Path, default=None, help="pass --out-dir to every bench; SUMMARY.md goes there")
    ap.add_argument("--budget-min", type=float, default=60.0, help="minutes for the whole run")
    ap.add_argument("--only", default=None, help="comma-separated subset of the benches (in the usual order)")
    args = ap.parse_args(argv)
    names = plan()
    if args.only:
        want = [s.strip() for s in args.only.split(",") if s.strip()]
        unknown = [w for w in want if w not in names]
        if unknown:
            print(f"bench all: unknown bench {unknown[0]!r}; have {', '.join(names)}", file=sys.stderr)
            return 2
        names = [n for n in names if n in want]
    extra = (["--smoke"] if args.smoke else []) + (["--out-dir", str(args.out_dir.resolve())] if args.out_dir else [])
    if args.out_dir:
        args.out_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + 60 * args.budget_min
    rows = []
    for n in names:
        left = deadline - time.monotonic()
        if left < 5:
            rows.append([n, "skipped (budget spent)", "-", "-"])
            continue
        if n in NEEDS_TRAINED_RUNS and not args.smoke:
            why = _untrained(n, min(left, 300))
            if why is not None:
                print(f"\n=== bench all: {n} skipped ===\n{why}", flush=True)
                rows.append([n, "skipped (runs not trained)", "-", "-"])
                continue
        own = []
        if n in BUDGET_SHARE and not args.smoke:
            own = ["--budget-min", f"{BUDGET_SHARE[n] * left / 60:.1f}"]
        status, rc, secs = _run_one(n, extra + own, left)
        rows.append([n, status, "-" if rc is None else rc, round(secs, 1)])
    from bench.summary import write_summary

    folder = args.out_dir or RESULTS
    path = write_summary(folder)
    print(f"\nbench all ({'smoke' if args.smoke else 'full'}, budget {args.budget_min:g} min):")
    print(table(["bench", "status", "exit", "seconds"], rows))
    print(f"wrote {path}")
    return 0 if all(r[1] == "ok" or r[1].startswith("skipped") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
