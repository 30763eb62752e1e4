"""``python -m bench fmax``: how far one netlist's Fmax moves with the placer's seed, side by side.

Why: the same 85F `default` netlist (050bd56) placed three times reached 56.83, 61.97 and
72.25 MHz (docs/build.md), a spread as large as one timing fix's gain. An Fmax is a distribution
over placements; this bench measures it instead of quoting one build.

Every seed (``--seeds``, default 1,2,3) is one ``python -m hw.build --board B --variant V
--artifact A --hw-config H --clock MHZ --seed S --placer P --allow-timing-fail --detailed-timing
--force --quiet --out <build-dir>/seed<S>`` in its own process, ``--jobs`` at a time (nextpnr-ecp5
places and routes on one thread, so 2 on a 2-core machine). Each row comes from that build's
report.json: Fmax of the core clock, whether ``--clock`` was met, the critical path, LUT4 / FF
(nextpnr's TRELLIS_COMB / TRELLIS_FF), nextpnr's seconds, and ``hw.timing``'s count of register
and RAM inputs whose arrival exceeds the clock period, with the number of register groups they
fall in (what has to be fixed, independent of which one path happens to be worst). A seed whose
build fails is a row with hw.build's last error line. The summary is min / median / max.

Build at a clock above the reachable Fmax (the default 100 MHz): with timing met, nextpnr gives
every connection the same criticality, so a build at an easy clock is not timing-driven and its
Fmax says less (docs/build.md, session 16).

``<build-dir>/seed<S>/`` belongs to this bench and is replaced on every run (default
``build/bench-fmax``). The wall time is about (seeds / jobs) x one build: 12 to 20 minutes per
85F `default` build on this machine.

``--smoke``: the ULX3S 12F board shell (``--shell``: PLL, UART, host link and a stand-in core),
2 seeds at 100 MHz, about a minute; writes JSON only with ``--out-dir``.

Writes ``bench/results/fmax.json`` and ``fmax.png`` (Fmax per seed, the requested clock).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from bench.common import RESULTS, save_results, table
from hw.build import PLACERS
from quant.artifact import SHIPPED_ARTIFACT

ROOT = Path(__file__).resolve().parent.parent


def parse_seeds(spec: str) -> list[int]:
    """``"1,2,3"`` -> [1, 2, 3]: distinct integers >= 0, in the order given."""
    seeds = []
    for part in spec.split(","):
        part = part.strip()
        try:
            s = int(part)
        except ValueError:
            raise SystemExit(f"bench fmax: --seeds {spec!r}: {part!r} is not an integer; give e.g. --seeds 1,2,3")
        if s < 0:
            raise SystemExit(f"bench fmax: --seeds {spec!r}: seed {s} is negative; nextpnr seeds are >= 0")
        if s in seeds:
            raise SystemExit(f"bench fmax: --seeds {spec!r}: seed {s} is given twice")
        seeds.append(s)
    return seeds


def build_command(args, seed: int, out: Path) -> list[str]:
    """The hw.build command line of one seed."""
    cmd = [sys.executable, "-m", "hw.build", "--board", args.board, "--clock", f"{args.clock:g}",
           "--seed", str(seed), "--placer", args.placer, "--allow-timing-fail", "--detailed-timing", "--force",
           "--quiet", "--out", str(out), "--toolchain", args.toolchain]
    if args.variant:
        cmd += ["--variant", args.variant]
    if args.shell:
        cmd += ["--shell"]
    else:
        cmd += ["--artifact", args.artifact]
        if args.hw_config:
            cmd += ["--hw-config", args.hw_config]
    return cmd


def row_from_build(seed: int, build_dir: Path, rc: int, output: str, wall_s: float, period_ns: float) -> dict[str, Any]:
    """One seed's row from its build folder (``<out>/<board>-<variant>/``) and hw.build's exit."""
    from hw.timing import TimingReportError, load_report, slow_endpoints

    row: dict[str, Any] = {"seed": seed, "wall_s": round(wall_s, 1), "build_dir": str(build_dir)}
    rep_path = build_dir / "report.json"
    rep = None
    if rep_path.is_file():
        try:
            rep = json.loads(rep_path.read_text())
        except (OSError, ValueError) as e:
            row.update(status="failed", note=f"{rep_path}: unreadable report ({e})")
            return row
    if rc != 0 or rep is None or not rep.get("ok", False):
        lines = [ln for ln in output.strip().splitlines() if ln.strip()]
        note = (rep or {}).get("error") or (lines[-1] if lines else f"hw.build exited {rc} and printed nothing")
        row.update(status="failed", note=str(note))
        return row
    clk = rep.get("core_clock")
    f = (rep.get("fmax_mhz") or {}).get(clk) or {}
    cp = (rep.get("critical_path") or {}).get(clk) or {}
    res = rep.get("resources") or {}
    row.update(status="built", fmax_mhz=f.get("achieved"), timing_met=bool(rep.get("timing_met")),
               critical_path=f"{cp.get('from', '?')} -> {cp.get('to', '?')}" if cp else None,
               critical_ns=cp.get("ns"),
               lut4=(res.get("LUT4") or {}).get("used"), ff=(res.get("FF") or {}).get("used"),
               nextpnr_s=(rep.get("seconds") or {}).get("nextpnr"))
    try:
        groups = slow_endpoints(load_report(build_dir), period_ns)
        row.update(slow_endpoints=sum(g.count for g in groups), slow_groups=len(groups),
                   worst_groups=[g.to_dict() for g in groups[:5]])
    except TimingReportError as e:
        row.update(slow_endpoints=None, slow_groups=None, note=f"hw.timing: {e}")
    return row


def run_seed(args, seed: int, variant: str, log: Callable[[str], None], runner=subprocess.run) -> dict[str, Any]:
    out = Path(args.build_dir) / f"seed{seed}"
    cmd = build_command(args, seed, out)
    log(f"seed {seed}: {' '.join(cmd[1:])}")
    t0 = time.monotonic()
    proc = runner(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.monotonic() - t0
    row = row_from_build(seed, out / f"{args.board}-{variant}", proc.returncode, (proc.stdout or "") + (proc.stderr or ""), wall,
                         1000.0 / args.clock)
    log(f"seed {seed}: {row.get('fmax_mhz')} MHz ({row['status']}, {wall:.0f} s)")
    return row


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    built = [r for r in rows if r.get("status") == "built" and r.get("fmax_mhz") is not None]
    if not built:
        return {"built": 0, "min_mhz": None, "median_mhz": None, "max_mhz": None, "spread_mhz": None}
    f = [r["fmax_mhz"] for r in built]
    return {"built": len(f), "min_mhz": min(f), "median_mhz": round(statistics.median(f), 2), "max_mhz": max(f),
            "spread_mhz": round(max(f) - min(f), 2), "best_seed": max(built, key=lambda r: r["fmax_mhz"])["seed"]}


def run(args, runner=subprocess.run, log: Callable[[str], None] = print) -> dict[str, Any]:
    seeds = parse_seeds(args.seeds)
    if args.jobs < 1:
        raise SystemExit(f"bench fmax: --jobs {args.jobs}: give at least 1")
    if not args.clock > 0:
        raise SystemExit(f"bench fmax: --clock {args.clock}: give a clock in MHz > 0")
    from bench.hw import git_state
    from hw.platforms import BoardError, get_board

    try:
        board = get_board(args.board)
        if args.variant and args.variant not in board.variants:
            raise BoardError(f"unknown {board.name} variant {args.variant!r}; choose one of {', '.join(board.variants)}")
    except BoardError as e:
        raise SystemExit(f"bench fmax: {e}")
    if not args.shell and not Path(args.artifact).is_file():
        raise SystemExit(f"bench fmax: --artifact {args.artifact}: no such file; export one with python -m quant.export")
    variant = args.variant or board.default_variant  # hw.build's folder: <out>/<board>-<variant>/
    with ThreadPoolExecutor(max_workers=min(args.jobs, len(seeds))) as ex:
        rows = list(ex.map(lambda s: run_seed(args, s, variant, log, runner), seeds))
    return {"board": args.board, "variant": variant, "design": "shell" if args.shell else "network",
            "artifact": None if args.shell else args.artifact, "hw_config": args.hw_config,
            "clock_mhz": args.clock, "placer": args.placer, "jobs": args.jobs, **git_state(),
            "rows": rows, "summary": summarize(rows)}


def _commit(res: dict[str, Any]) -> str:
    """The commit a result was built from, as bench hw records it (fmax.json before 93ad5db: `git`)."""
    if "commit" not in res:
        return str(res.get("git"))
    dirty = " with uncommitted design changes" if res.get("uncommitted_design_sources") else ""
    return f"{str(res['commit'])[:12]}{dirty}"


def report(res: dict[str, Any]) -> str:
    rows = []
    for r in res["rows"]:
        if r["status"] != "built":
            rows.append([r["seed"], "failed", "-", "-", "-", "-", "-", r.get("note", "")[:80]])
            continue
        slow = "-" if r.get("slow_endpoints") is None else f"{r['slow_endpoints']} in {r['slow_groups']}"
        rows.append([r["seed"], f"{r['fmax_mhz']:.2f}", "yes" if r["timing_met"] else "no", r["lut4"], r["ff"], slow,
                     r["nextpnr_s"], f"{r['critical_path']} ({r['critical_ns']} ns)"])
    s = res["summary"]
    head = (f"Fmax over placer seeds: {res['board']} {res['variant'] or ''} {res['design']}, "
            f"{res['placer']} placer, {res['clock_mhz']:g} MHz requested, commit {_commit(res)}")
    lines = [head, "", table(["seed", "Fmax MHz", "met", "LUT4", "FF", f"endpoints > {1000 / res['clock_mhz']:.3g} ns",
                          "nextpnr s", "critical path"], rows), ""]
    if s["built"]:
        lines.append(f"{s['built']} built: min {s['min_mhz']} / median {s['median_mhz']} / max {s['max_mhz']} MHz "
                     f"(spread {s['spread_mhz']} MHz, best seed {s['best_seed']})")
    else:
        lines.append("no seed built")
    return "\n".join(lines)


def plot(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    built = [r for r in res["rows"] if r["status"] == "built"]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.bar([str(r["seed"]) for r in built], [r["fmax_mhz"] for r in built], color="#4c72b0")
    ax.axhline(res["clock_mhz"], color="#c44e52", ls="--", label=f"requested {res['clock_mhz']:g} MHz")
    ax.set_xlabel("nextpnr seed")
    ax.set_ylabel("Fmax (MHz)")
    ax.set_title(f"{res['board']} {res['variant'] or ''} {res['design']}, {res['placer']} placer ({_commit(res)})",
                 fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m bench fmax", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--board", default="ulx3s")
    ap.add_argument("--variant", default="85F")
    ap.add_argument("--artifact", default=str(SHIPPED_ARTIFACT))
    ap.add_argument("--hw-config", default=None, help="as hw.build's --hw-config (default: the board's)")
    ap.add_argument("--clock", type=float, default=100.0, metavar="MHZ",
                    help="requested clock: above the reachable Fmax, so that placement is timing-driven")
    ap.add_argument("--seeds", default="1,2,3", help="comma-separated nextpnr seeds")
    ap.add_argument("--placer", choices=PLACERS, default=PLACERS[0])
    ap.add_argument("--jobs", type=int, default=2, help="builds at a time (nextpnr uses one core)")
    ap.add_argument("--toolchain", choices=("auto", "yowasp", "native"), default="auto")
    ap.add_argument("--build-dir", default=str(ROOT / "build" / "bench-fmax"),
                    help="where seed<S>/ builds go (replaced on every run)")
    ap.add_argument("--shell", action="store_true", help="build the board shell only (a stand-in core)")
    ap.add_argument("--smoke", action="store_true", help="the 12F shell, seeds 1,2; no JSON unless --out-dir")
    ap.add_argument("--out-dir", default=None, help=f"where fmax.json goes (default {RESULTS})")
    return ap


def main(argv: list[str] | None = None, runner=subprocess.run) -> int:
    """`runner`: what starts each hw.build (subprocess.run's signature; tests pass a fake)."""
    args = _parser().parse_args(argv)
    if args.smoke:
        args.variant, args.shell, args.seeds = "12F", True, "1,2"
    res = run(args, runner=runner)
    print(report(res))
    if not res["summary"]["built"]:
        # a run in which every build failed measures nothing: keep the last results
        print("bench fmax: no seed built; nothing written (each row says why)", file=sys.stderr)
        return 1
    save_results("fmax", res, args, plot=plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
