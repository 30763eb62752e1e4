"""``python -m bench hw``: area against latency over a sweep of lanes, built and measured.

For every hardware point (``--points``, lanes x token_lanes; the other HardwareConfig fields are
the preset's with those lanes, else the ``default`` preset's) and every device variant
(``--variants``, default 85F and 25F of ``--board ulx3s``), the shipped artifact (``--artifact``)
is built by ``hw.build.build`` (Yosys, nextpnr-ecp5, ecppack) at ``--clock`` MHz into
``<--build-dir>/<board>-L<P>xTL<TL>-<clock>MHz/``,
and the row takes from its report.json: LUT4 (nextpnr's TRELLIS_COMB sites), FF, EBR (DP16KD),
MULT18 (used / available), Fmax of the core clock after routing, and whether timing met
``--clock``. A build that does not fit is a row with hw.build's message (which resource
overflowed and by how much), not a failure of the bench. A variant is not built at all when
``hw.resources.mult18_lower_bound`` (multipliers whose both operands vary: Yosys' synth_ecp5 puts
each in a MULT18X18D) already exceeds the device's MULT18; the row says so.

**Cycles per image are measured**: every point's Top (trace port on) runs the first ``--images``
digits test images under Verilator (``sim.network.rtl_forward``), every spike of every layer is
checked against the golden model (``sim.network.check_images``), and the cycles are the design's
own ``cycles`` field (first pixel to result; docs/hardware.md section 3). The cycle model
(``hw.cycles.image_cycles`` on the golden record) is printed beside it and must agree. Latency
per image is cycles / Fmax (the Fmax nextpnr reports, not ``--clock``), images/s its inverse:
one image after another, UART not counted. Cycles do not depend on the variant or the clock.

**Cache.** A build is reused when ``<variant>.sweep-key.json`` beside it records the same board,
variant, config hash, artifact checksum, hardware config (with the clock) and digest of the
design's sources (hw/, quant/, model/config.py, boards/simboard.py); ``--force`` rebuilds.
Builds run one at a time. ``--budget-min``: a build is not started when its estimated time (its
last build's, else 2 minutes per 8 lanes) exceeds what is left; the row says "time budget".
``python -m bench all`` passes it.

**--smoke** (what CI affords: 1 minute with the Verilator model cached, 2.3 minutes cold, on 2
shared cores): the ``small`` point (8 x 4) on the 25F, 2 images, and instead of a real build (the
25F small took 243 s in the sweep, the 85F default about 10 minutes: too long for a smoke run) a
Yosys-only resource count (36 to 53 s; the board's first synthesis flow, as hw.build runs it, of Top's RTLIL, no
board shell, no place and route): Yosys cells, so LUT4 there is LUT4 + 2 x CCU2C (fewer than nextpnr's sites)
and there is no Fmax. JSON only with ``--out-dir``.

Writes ``bench/results/hw.json`` and ``hw.png`` (area against latency, the ``default`` preset
marked; cycles against lanes).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from bench.common import RESULTS, save_results, table
from hw.build import PLACERS
from quant.artifact import SHIPPED_ARTIFACT, atomic_write_bytes

ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = ROOT / "build" / "hw-sweep"
# 64x16 is left out by default: it fits no ULX3S (193 MULT18 of the 85F's 156, measured) and costs
# about 9 minutes of Verilator compile and 6 of Yosys to show it; give it with --points to see that row
DEFAULT_POINTS = "8x4,16x8,32x16"
RESOURCES = ("LUT4", "FF", "EBR", "MULT18")
# The design's sources: a change to any of them makes a cached build stale.
SOURCES = ("hw", "quant", "model/config.py", "boards/simboard.py")
# MULT18X18D per device, as nextpnr-ecp5 reports them available (report.json of builds here; the
# 12F is the 25F die to nextpnr). Variants not listed are not pre-checked: the build decides.
DEVICE_MULT18 = {"LFE5U-12F": 28, "LFE5U-25F": 28, "LFE5U-85F": 156}
# For Yosys-only rows (no nextpnr to say): nextpnr's available LUT4 sites / FF / DP16KD / MULT18.
DEVICE_CAPACITY = {"LFE5U-12F": (24288, 24288, 56, 28), "LFE5U-25F": (24288, 24288, 56, 28),
                   "LFE5U-85F": (83640, 83640, 208, 156)}


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m bench hw", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--points", default=DEFAULT_POINTS, help="lanes x token_lanes, comma-separated")
    ap.add_argument("--board", default="ulx3s", help="hw.platforms board")
    ap.add_argument("--variants", default="85F,25F", help="device variants, comma-separated")
    ap.add_argument("--clock", type=float, default=40.0, metavar="MHZ",
                    help="requested core clock of every build (Fmax is what nextpnr reports)")
    ap.add_argument("--images", type=int, default=20, help="digits test images per point (Verilator)")
    ap.add_argument("--artifact", default=str(SHIPPED_ARTIFACT), help="artifact .npz (an 8x8 digits config)")
    ap.add_argument("--build-dir", default=str(BUILD_DIR), help="where the sweep's builds go")
    ap.add_argument("--force", action="store_true", help="rebuild points whose cached build matches")
    ap.add_argument("--budget-min", type=float, default=None,
                    help="start no build whose estimated time exceeds the minutes left (default: no limit)")
    ap.add_argument("--seed", type=int, default=None, help="nextpnr placer seed (default: nextpnr's)")
    ap.add_argument("--placer", choices=PLACERS, default=PLACERS[0],
                    help="nextpnr placer (hw.build --placer): heap reaches a higher Fmax in a longer build")
    ap.add_argument("--toolchain", choices=("auto", "yowasp", "native"), default="auto", help="as hw.build")
    ap.add_argument("--smoke", action="store_true",
                    help="point 8x4 on the 25F, 2 images, Yosys-only resources; no JSON unless --out-dir")
    ap.add_argument("--out-dir", default=None, help=f"where hw.json goes (default {RESULTS})")
    return ap


# -- the points ------------------------------------------------------------------------------------
def parse_points(spec: str) -> list[tuple[int, int]]:
    out = []
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        m = re.fullmatch(r"(\d+)\s*[xX]\s*(\d+)", item)
        if not m:
            raise ValueError(f"--points: {item!r} is not LANESxTOKEN_LANES (e.g. 32x16)")
        out.append((int(m.group(1)), int(m.group(2))))
    if not out:
        raise ValueError("--points: no points given")
    if len(set(out)) != len(out):
        raise ValueError(f"--points: a point is given twice in {spec!r}")
    return out


def point_hw(lanes: int, token_lanes: int):
    """The preset with these lanes, as shipped (8x4: "small", one weight bank), else the default
    preset with these lanes (everything else as shipped)."""
    from model.config import HW_PRESETS

    for p in HW_PRESETS.values():
        if (p.lanes, p.token_lanes) == (lanes, token_lanes):
            return p
    return HW_PRESETS["default"].replace(lanes=lanes, token_lanes=token_lanes)


def preset_of(hw) -> str | None:
    """The HW_PRESETS name this config is (clock aside), if any."""
    from model.config import HW_PRESETS

    for name, p in HW_PRESETS.items():
        if p.replace(clock_mhz=hw.clock_mhz) == hw:
            return name
    return None


def label(lanes: int, token_lanes: int) -> str:
    return f"{lanes}x{token_lanes}"


# -- cycles (Verilator) ----------------------------------------------------------------------------
def measure_cycles(art, hw, images: np.ndarray, rec: dict) -> dict[str, Any]:
    """Cycles per image of Top(art, hw) under Verilator, checked bit-exact; the model beside it."""
    import sim.network as net
    from hw.cycles import image_cycles
    from hw.sequencer import Program

    t0 = time.perf_counter()
    design = net.top_design(art, hw, "verilator")
    build_s = time.perf_counter() - t0
    run = net.rtl_forward(design, art.config, images, seed=0, tag=f"hw-{hw.lanes}x{hw.token_lanes}")
    if not run.passed:
        raise SystemExit(f"bench hw: the RTL run of {label(hw.lanes, hw.token_lanes)} failed: "
                         f"{run.failure.strip().splitlines()[0]}")
    bad = net.check_images(art, images, run, seed=0)
    if bad:
        raise SystemExit(f"bench hw: {label(hw.lanes, hw.token_lanes)} is not bit-exact: {bad[0]}")
    cycles = [int(c) for c in run.cycles]
    prog = Program(art, hw)
    model = [image_cycles(prog, rec, b)["total"] for b in range(len(images))]
    return {"hw_config": hw.to_dict(), "cycles_per_image": cycles, "cycles_mean": float(np.mean(cycles)),
            "cycles_min": min(cycles), "cycles_max": max(cycles), "model_cycles_per_image": model,
            "model_agrees": model == cycles, "bit_exact": len(images), "verilator_build_s": round(build_s, 1),
            "sim_s": round(run.sim_seconds, 1)}


# -- builds ----------------------------------------------------------------------------------------
def sources_digest(root: Path = ROOT) -> str:
    h = hashlib.sha256()
    files: list[Path] = []
    for s in SOURCES:
        p = root / s
        files += sorted(p.rglob("*.py")) if p.is_dir() else [p] if p.is_file() else []
    for f in files:
        h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def build_key(art, hw_build, board: str, variant: str, digest: str, placer: str = PLACERS[0]) -> dict[str, Any]:
    return {"board": board, "variant": variant, "config_hash": art.config.hash, "artifact_checksum": art.checksum,
            "hw_config": hw_build.to_dict(), "sources": digest, "placer": placer}


def point_dir(build_dir: Path, board: str, hw_build) -> Path:
    return Path(build_dir) / f"{board}-L{hw_build.lanes}xTL{hw_build.token_lanes}-{hw_build.clock_mhz:g}MHz"


def cached(out: Path, board: str, variant: str, key: dict) -> dict | None:
    """The report of a build with this key (ok or failed), else None."""
    kpath = out / f"{board}-{variant}.sweep-key.json"
    try:
        k = json.loads(kpath.read_text())
    except (OSError, ValueError):
        return None
    if k.get("key") != key:
        return None
    folder = out / (f"{board}-{variant}" if k.get("ok") else f"{board}-{variant}.failed")
    try:
        rep = json.loads((folder / "report.json").read_text())
    except (OSError, ValueError):
        return None
    rep["dir"] = str(folder)
    return rep


def last_build_seconds(out: Path, board: str, variant: str) -> float | None:
    """Total seconds of any earlier build of this point and variant (for the budget estimate)."""
    for name in (f"{board}-{variant}", f"{board}-{variant}.failed"):
        try:
            return float(json.loads((out / name / "report.json").read_text())["seconds"]["total"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


def resources_of(rep: dict) -> dict[str, dict]:
    return {k: {"used": rep["resources"][k]["used"], "available": rep["resources"][k]["available"]}
            for k in RESOURCES}


def row_from_report(rep: dict, status: str) -> dict[str, Any]:
    """A sweep row from a hw.build report (built, cached or failed)."""
    clk = rep.get("core_clock")
    fmax = rep["fmax_mhz"][clk]["achieved"] if clk and clk in rep.get("fmax_mhz", {}) else None
    crit = rep.get("critical_path", {}).get(clk) if clk else None
    err = rep.get("error")
    # hw.build's overflow messages (overuse_message) start so; any other failure says nothing of fit
    overflow = bool(err) and err.startswith(("needs ", "cannot place "))
    fits = True if rep.get("ok") else False if overflow else None
    return {"status": status, "fits": fits, "how": "nextpnr", "resources": resources_of(rep),
            "fmax_mhz": fmax, "timing_met": rep.get("timing_met"), "pll_mhz": rep["clock"]["pll_mhz"],
            "critical_path": crit, "build_s": rep.get("seconds", {}).get("total"), "build_dir": rep.get("dir"),
            "tools": rep.get("tools"), "note": err or ""}


def area_row(art, artifact_path: str, hw, board: str, variant: str, clock: float, build_dir: Path, digest: str, *,
             force: bool,
             deadline: float | None, build_fn: Callable, seed: int | None, toolchain: str,
             log: Callable[[str], None], placer: str = PLACERS[0]) -> dict[str, Any]:
    """Resources and Fmax of one point on one variant: pre-check, cache, or build."""
    from hw.build import BuildError, UsageError
    from hw.platforms import get_board
    from hw.resources import mult18_lower_bound
    from hw.sequencer import Program

    device = get_board(board).platform_class(variant)().device
    hw_build = hw.replace(clock_mhz=clock)
    base = {"variant": variant, "device": device, "point": label(hw.lanes, hw.token_lanes), "lanes": hw.lanes,
            "token_lanes": hw.token_lanes, "preset": preset_of(hw), "clock_mhz": clock}
    need = mult18_lower_bound(Program(art, hw))
    have = DEVICE_MULT18.get(device)
    if have is not None and need > have:
        return {**base, "status": "does not fit", "fits": False, "how": "pre-check", "resources": None,
                "fmax_mhz": None, "timing_met": None, "build_s": 0.0,
                "note": f"not built: needs at least {need} MULT18X18D (hw.resources.mult18_lower_bound), "
                        f"the {variant} has {have}"}
    out = point_dir(build_dir, board, hw_build)
    key = build_key(art, hw_build, board, variant, digest, placer)
    if not force:
        rep = cached(out, board, variant, key)
        if rep is not None:
            row = {**base, **row_from_report(rep, "cached")}
            if not rep.get("ok"):
                row["status"] = "does not fit (cached)" if row["fits"] is False else "failed (cached)"
            return row
    est = last_build_seconds(out, board, variant) or 120.0 * max(1.0, hw.lanes / 8)
    if deadline is not None and time.monotonic() + est > deadline:
        left = max(0.0, deadline - time.monotonic())
        return {**base, "status": "not built", "fits": None, "how": None, "resources": None, "fmax_mhz": None,
                "timing_met": None, "build_s": None,
                "note": f"time budget: about {est / 60:.0f} min to build, {left / 60:.1f} min left (--budget-min)"}
    log(f"building {base['point']} for the {variant} at {clock:g} MHz (about {est / 60:.0f} min) in {out}")
    t0 = time.monotonic()
    try:
        rep = build_fn(board_name=board, variant=variant, artifact_path=artifact_path, hw_cfg=hw, clock_mhz=clock,
                       out=out, force=True, seed=seed, placer=placer,
                       toolchain=toolchain, allow_timing_fail=True,
                       progress=lambda msg: log(f"  [{time.monotonic() - t0:5.0f} s] {msg}"))
        ok = True
    except BuildError as e:
        rep = e.args[1] if len(e.args) > 1 and isinstance(e.args[1], dict) else None
        if rep is None:
            return {**base, "status": "failed", "fits": None, "how": "nextpnr", "resources": None, "fmax_mhz": None,
                    "timing_met": None, "build_s": round(time.monotonic() - t0, 1), "note": str(e.args[0])}
        ok = False
    except UsageError as e:
        raise SystemExit(f"bench hw: hw.build refused {base['point']} on the {variant}: {e}")
    atomic_write_bytes(out / f"{board}-{variant}.sweep-key.json",
                       (json.dumps({"key": key, "ok": ok}, indent=2) + "\n").encode(), overwrite=True)
    row = {**base, **row_from_report(rep, "built")}
    if not ok:
        row["status"] = "does not fit" if row["fits"] is False else "failed"
    return row


# -- Yosys-only estimate (smoke) -------------------------------------------------------------------
# a cell line of ``stat``: "  5157   LUT4" (Yosys 0.5x and later) or "  LUT4   5157" (older); cell
# types are upper case (LUT4, CCU2C, DP16KD) or start with $, unlike the "wires"/"cells" totals
_STAT = re.compile(r"^\s*(\d+)\s+([$A-Z][A-Za-z0-9_$]*)\s*$|^\s*([$A-Z][A-Za-z0-9_$]*)\s+(\d+)\s*$")


def parse_yosys_stat(text: str) -> dict[str, int]:
    """{cell type: count} from the last module block (``=== name ===``) of a Yosys ``stat``."""
    i = text.rfind("=== ")
    if i < 0:
        raise ValueError("no '=== module ===' block in the Yosys stat output")
    cells: dict[str, int] = {}
    for ln in text[i:].splitlines()[1:]:
        m = _STAT.match(ln)
        if m:
            n, name = (m.group(1), m.group(2)) if m.group(1) else (m.group(4), m.group(3))
            cells[name] = int(n)
    if not cells:
        raise ValueError("no cell counts in the Yosys stat output")
    return cells


def yosys_row(art, hw, board: str, variant: str, clock: float, toolchain: str) -> dict[str, Any]:
    """Resources of Top (no board shell) from Yosys' synth_ecp5 alone: cells, no placement."""
    from hw.build import find_toolchain
    from hw.platforms import get_board, synth_commands
    from hw.resources import mult18_lower_bound
    from hw.sequencer import Program
    from amaranth.back import rtlil

    from hw.top import Top

    device = get_board(board).platform_class(variant)().device
    yosys = find_toolchain(toolchain)["YOSYS"]
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-hw-") as d:
        # RTLIL and the board's Yosys recipes in hw.build's order, retried the same way
        # (hw.platforms.SYNTH_FLOWS: Yosys 0.70's abc9 fails on some netlists)
        (Path(d) / "top.il").write_text(rtlil.convert(Top(art, hw), name="top"))
        for flow in get_board(board).synth_attempts:
            script = "; ".join(["read_rtlil top.il", *synth_commands(flow, "top"), "tee -q -o stat.txt stat"])
            r = subprocess.run([yosys, "-q", "-p", script], cwd=d, capture_output=True, text=True)
            if r.returncode == 0:
                break
        if r.returncode != 0:
            tail = (r.stdout + r.stderr).strip().splitlines()[-1:] or ["no output"]
            raise SystemExit(f"bench hw: yosys synth_ecp5 failed (exit status {r.returncode}): {tail[0]}")
        cells = parse_yosys_stat((Path(d) / "stat.txt").read_text())
    cap = DEVICE_CAPACITY.get(device, (None,) * 4)
    used = (cells.get("LUT4", 0) + 2 * cells.get("CCU2C", 0), cells.get("TRELLIS_FF", 0), cells.get("DP16KD", 0),
            cells.get("MULT18X18D", 0))
    return {"variant": variant, "device": device, "point": label(hw.lanes, hw.token_lanes), "lanes": hw.lanes,
            "token_lanes": hw.token_lanes, "preset": preset_of(hw), "clock_mhz": clock, "status": "yosys only",
            "fits": None, "how": "yosys", "resources": {k: {"used": u, "available": a}
                                                        for k, u, a in zip(RESOURCES, used, cap)},
            "yosys_cells": cells, "mult18_lower_bound": mult18_lower_bound(Program(art, hw)), "fmax_mhz": None,
            "timing_met": None, "build_s": round(time.monotonic() - t0, 1),
            "note": "Yosys synth_ecp5 (hw.build's recipe) of Top without the board shell, no place and route: LUT4 = LUT4 + 2 x CCU2C "
                    "cells (nextpnr's TRELLIS_COMB sites are more), no Fmax"}


# -- main ------------------------------------------------------------------------------------------
def git_state() -> dict[str, Any]:
    def git(*a):
        r = subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True)
        return r.stdout if r.returncode == 0 else None

    dirty = git("status", "--porcelain", "--", *SOURCES)  # "XY path" lines
    return {"commit": (git("rev-parse", "HEAD") or "").strip() or None,
            "uncommitted_design_sources": [ln[3:] for ln in dirty.splitlines() if ln.strip()] if dirty else []}


def run(args) -> dict[str, Any]:
    from hw.build import build
    from hw.platforms import BoardError, get_board
    from model.data import load_dataset
    from quant import golden
    from quant.artifact import load_artifact
    from sim import runner

    t_start = time.monotonic()
    deadline = None if args.budget_min is None else t_start + 60 * args.budget_min
    try:
        points = parse_points(args.points)
        variants = [v.strip() for v in args.variants.split(",") if v.strip()]
        board = get_board(args.board)
        for v in variants:
            board.platform_class(v)
        hws = [point_hw(p, tl) for p, tl in points]
    except (ValueError, BoardError) as e:  # ConfigError is a ValueError
        raise SystemExit(f"bench hw: {e}")
    if not variants:
        raise SystemExit("bench hw: --variants: no variant given")
    runner.setup_verilator_env()
    why = runner.simulator_missing("verilator")
    if why:
        raise SystemExit(f"bench hw: Verilator cannot run here: {why}")
    art = load_artifact(args.artifact)
    cfg = art.config
    x, _ = load_dataset("digits", "test")
    if cfg.image_shape[:2] != x.shape[1:]:
        raise SystemExit(f"bench hw: {args.artifact} has config {cfg.name}, not an 8x8 digits config")
    x = x[: args.images]
    rec = golden.forward(art, x)
    log = lambda msg: print(f"bench hw: {msg}", file=sys.stderr, flush=True)  # noqa: E731

    cyc: dict[str, dict] = {}
    for hw in hws:
        name = label(hw.lanes, hw.token_lanes)
        log(f"{name}: Verilator, {len(x)} images ...")
        try:
            cyc[name] = measure_cycles(art, hw, x, rec)
        except ValueError as e:  # Program refuses the point (e.g. more token lanes than tokens)
            raise SystemExit(f"bench hw: point {name}: {e}")
        if not cyc[name]["model_agrees"]:
            c = cyc[name]
            bad = next(b for b, (m, r) in enumerate(zip(c["model_cycles_per_image"], c["cycles_per_image"])) if m != r)
            raise SystemExit(f"bench hw: {name}: the cycle model (hw/cycles.py) gives {c['model_cycles_per_image'][bad]} "
                             f"cycles for image {bad}, the design {c['cycles_per_image'][bad]}; update hw/cycles.py")

    digest, git = sources_digest(), git_state()  # what the builds below are built from
    rows = []
    for variant in variants:
        for hw in hws:
            if args.smoke:
                log(f"{label(hw.lanes, hw.token_lanes)}: Yosys-only resources for the {variant} ...")
                row = yosys_row(art, hw, args.board, variant, args.clock, args.toolchain)
            else:
                row = area_row(art, args.artifact, hw, args.board, variant, args.clock, Path(args.build_dir), digest,
                               force=args.force, deadline=deadline, build_fn=build, seed=args.seed,
                               toolchain=args.toolchain, log=log, placer=args.placer)
            c = cyc[row["point"]]
            row["cycles_mean"] = c["cycles_mean"]
            f = row.get("fmax_mhz")
            row["us_per_image"] = c["cycles_mean"] / f if f else None
            row["images_per_s"] = f * 1e6 / c["cycles_mean"] if f else None
            rows.append(row)
    default = next((label(h.lanes, h.token_lanes) for h in hws if preset_of(h) == "default"), None)
    return {
        "artifact": str(Path(args.artifact).resolve().relative_to(ROOT)) if Path(args.artifact).resolve().is_relative_to(ROOT)
        else str(args.artifact),
        "config": cfg.name, "config_hash": cfg.hash, "dataset": "digits test split", "images": len(x),
        "board": args.board, "variants": variants, "clock_mhz": args.clock,
        "placer": None if args.smoke else args.placer, "default_point": default,
        "mode": "yosys only (smoke)" if args.smoke else "hw.build (Yosys, nextpnr-ecp5, ecppack)",
        "points": cyc, "rows": rows, "sources_digest": digest, **git,
        "seconds": round(time.monotonic() - t_start, 1),
        "method": "resources and Fmax: hw.build report.json (nextpnr); cycles: Verilator, the design's cycles "
                  "field, bit-exact against the golden model; us/image = cycles / Fmax",
    }


def _res(row: dict, k: str) -> str:
    r = row.get("resources")
    if not r or r[k]["used"] is None:
        return "-"
    return f"{r[k]['used']} / {r[k]['available']}" if r[k]["available"] else str(r[k]["used"])


def report(res: dict[str, Any]) -> str:
    pts = res["points"]
    lines = [f"area and latency over lanes: {res['config']} ({res['artifact']}), {res['board']}, requested clock "
             f"{res['clock_mhz']:g} MHz; cycles: Verilator on {res['images']} digits test images, bit-exact; "
             f"{res['mode']}",
             table(["point", "preset", "cycles/image (Verilator)", "min-max", "model", f"us/image @ {res['clock_mhz']:g} MHz"],
                   [[n, preset_of_dict(c["hw_config"]) or "-", f"{c['cycles_mean']:.1f}",
                     f"{c['cycles_min']}-{c['cycles_max']}",
                     "agrees" if c["model_agrees"] else "DIFFERS", round(c["cycles_mean"] / res["clock_mhz"], 2)]
                    for n, c in pts.items()]),
             "",
             table(["variant", "point", "status", "LUT4", "FF", "EBR", "MULT18", "Fmax MHz", "timing", "us/image",
                    "images/s", "build s"],
                   [[r["variant"], r["point"] + (" (default)" if r["preset"] == "default" else
                                                 " (small)" if r["preset"] == "small" else ""),
                     r["status"], _res(r, "LUT4"), _res(r, "FF"), _res(r, "EBR"), _res(r, "MULT18"),
                     "-" if r["fmax_mhz"] is None else f"{r['fmax_mhz']:.2f}",
                     {True: "met", False: "missed", None: "-"}[r["timing_met"]],
                     "-" if r["us_per_image"] is None else f"{r['us_per_image']:.1f}",
                     "-" if r["images_per_s"] is None else round(r["images_per_s"]),
                     "-" if r.get("build_s") is None else r["build_s"]] for r in res["rows"]])]
    notes = [f"  {r['variant']} {r['point']}: {r['note']}" for r in res["rows"] if r.get("note")]
    if notes:
        lines += ["notes:"] + notes
    lines.append(f"built from commit {res['commit']}" + (f", with uncommitted changes to "
                                                         f"{', '.join(res['uncommitted_design_sources'])}"
                                                         if res["uncommitted_design_sources"] else ""))
    return "\n".join(lines)


def preset_of_dict(d: dict) -> str | None:
    from model.config import HardwareConfig

    return preset_of(HardwareConfig(**d))


def plot(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    marks = {}
    for r in res["rows"]:
        if r["us_per_image"] is None or not r.get("resources") or r["resources"]["LUT4"]["used"] is None:
            continue
        marks.setdefault(r["variant"], []).append(r)
    for variant, rs in marks.items():
        rs.sort(key=lambda r: r["resources"]["LUT4"]["used"])
        xs = [r["resources"]["LUT4"]["used"] for r in rs]
        ys = [r["us_per_image"] for r in rs]
        line, = ax.plot(xs, ys, "o-", label=f"{variant}")
        for r, xv, yv in zip(rs, xs, ys):
            ax.annotate(r["point"], (xv, yv), textcoords="offset points", xytext=(5, 4), fontsize=8)
            if r["preset"] == "default":
                ax.plot([xv], [yv], "*", ms=16, color=line.get_color(), mec="k")
        avail = rs[0]["resources"]["LUT4"]["available"]
        if avail:
            ax.axvline(avail, ls=":", color=line.get_color(), lw=1)
    ax.plot([], [], "*", ms=12, color="gray", mec="k", label="default preset")
    ax.set_xlabel("LUT4 sites (nextpnr TRELLIS_COMB); dotted: device size")
    ax.set_ylabel("us per image = cycles / Fmax")
    ax.set_title(f"{res['config']}, {res['board']}, requested {res['clock_mhz']:g} MHz")
    ax.legend(fontsize=8)
    if not marks:
        ax.text(0.5, 0.5, "no placed-and-routed builds\n(" + res["mode"] + ")", ha="center", va="center",
                transform=ax.transAxes)
    pts = res["points"]
    names = list(pts)
    lanes = [pts[n]["hw_config"]["lanes"] for n in names]
    means = [pts[n]["cycles_mean"] for n in names]
    err = [[m - pts[n]["cycles_min"] for n, m in zip(names, means)], [pts[n]["cycles_max"] - m for n, m in zip(names, means)]]
    ax2.errorbar(lanes, means, yerr=err, fmt="o-", capsize=3)
    for n, lx, m in zip(names, lanes, means):
        ax2.annotate(n, (lx, m), textcoords="offset points", xytext=(5, 4), fontsize=8)
        if n == res["default_point"]:
            ax2.plot([lx], [m], "*", ms=16, color="tab:blue", mec="k")
    ax2.set_xscale("log", base=2)
    ax2.set_xlabel("lanes (x token lanes as labelled)")
    ax2.set_ylabel("cycles per image (Verilator; mean, min-max)")
    ax2.set_title(f"{res['images']} digits test images, event-driven, bit-exact")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.smoke:
        args.points, args.variants, args.images = "8x4", "25F", 2
    if args.images < 1:
        print(f"bench hw: --images must be at least 1, got {args.images}", file=sys.stderr)
        return 1
    if not Path(args.artifact).is_file():
        print(f"bench hw: artifact {args.artifact} not found; export one with python -m quant.export", file=sys.stderr)
        return 2
    res = run(args)
    print(report(res))
    save_results("hw", res, args, plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
