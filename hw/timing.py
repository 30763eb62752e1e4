"""``python -m hw.timing``: where a build's slow paths end, ranked by register group.

    python -m hw.timing build/ulx3s-85F                    # the build's nextpnr-report.json
    python -m hw.timing build/ulx3s-85F --over 10 --top 30 # endpoints over 10 ns (100 MHz)
    python -m hw.timing build/ulx3s-85F --json slow.json   # the table as JSON too

nextpnr prints one critical path per clock; fixing it just shows the next one, one build
(~10 minutes on the 85F) at a time. With ``python -m hw.build --detailed-timing`` its JSON report
holds every net's arrival time at each of its sinks (``detailed_net_timings``), and the sinks
that are register or RAM inputs (the cells' D/DI/CE/LSR/M ports, a multiplier's A/B...) are the
ends of timing paths. This tool groups those endpoints by what they are in the design: the
endpoint cell's name with bit indices and tool suffixes taken off (``core.sl.spikes3`` ->
``core.sl.spikes#``), its port, and the name group of the net's driver (the cell whose output reaches the endpoint:
often the path's last LUT, which Yosys names after the signal it computes, so the group says
which logic cone the path ends through, not where it starts), and ranks the groups by
their worst arrival, so one build shows every path family that misses a clock goal.

Arrival times are nextpnr's own (``delay`` [min, max] in ns from the launching clock edge to
the sink, routing included); the endpoint's setup time is not in them, so a group at 9.9 ns can
still fail 100 MHz by a few tenths. Only sinks nextpnr records are listed: a net that ends in
combinational logic shows up at the register its path ends in.

Exit status: 0 listed, 2 bad input (no such report, not a nextpnr JSON report, built without
``--detailed-timing``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["TimingReportError", "EndpointGroup", "load_report", "cell_group", "slow_endpoints",
           "fmax", "critical_paths", "format_groups", "main"]

REPORT_NAME = "nextpnr-report.json"

# Cell ports that are not timing endpoints: a LUT/carry input continues a combinational path,
# and nextpnr's detailed report still lists it as a net's sink.
_COMB_PORTS = frozenset({"A", "B", "C", "D", "A0", "A1", "B0", "B1", "C0", "C1", "D0", "D1",
                         "FCI", "FXA", "FXB", "M0", "M1", "SEL"})
# Cell types whose combinational inputs are listed under those port names (TRELLIS_COMB: LUT4 or
# CCU2 half; TRELLIS_SLICE in older nextpnr). Their other ports (a slice FF's DI/M/CE/LSR, a
# LUTRAM's write ports) are endpoints.
_SUFFIX = re.compile(r"(_TRELLIS_[A-Z0-9_]+|_DP16KD|_MULT18X18D|_ALU54B|\$[^.]*|_LC|_CCU2C?|_LUT4)+$")
_YOSYS_MADE = re.compile(r"\$(abc|auto|techmap|procdff|procmux|flatten|opt|memory|ternary|eq|ne|logic|reduce|add|sub)\b")
_INDEX = re.compile(r"\[\d+\]|(?<=[A-Za-z_])\d+(?=$|[._\[])")


class TimingReportError(Exception):
    """The report cannot be read or holds no per-sink timing: exit 2."""


@dataclass
class EndpointGroup:
    """Endpoints of one name group at one port, fed by one driver group."""

    cell: str
    port: str
    driver: str
    count: int = 0
    worst_ns: float = 0.0
    worst_cell: str = ""
    nets: set = field(default_factory=set)

    def to_dict(self) -> dict:
        return {"cell": self.cell, "port": self.port, "driver": self.driver, "count": self.count,
                "worst_ns": round(self.worst_ns, 3), "worst_cell": self.worst_cell, "nets": len(self.nets)}


def load_report(path: str | os.PathLike) -> dict:
    """nextpnr's JSON report: `path` is the file or a build folder holding ``nextpnr-report.json``."""
    p = Path(path)
    if p.is_dir():
        p = p / REPORT_NAME
    if not p.is_file():
        raise TimingReportError(f"{p}: no such file; pass a build folder of `python -m hw.build` "
                                f"(<out>/<board>-<variant>/) or its {REPORT_NAME}")
    try:
        rep = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TimingReportError(f"{p}: not a JSON file ({e}); it should be nextpnr's --report output") from None
    if not isinstance(rep, dict) or "fmax" not in rep:
        raise TimingReportError(f"{p}: not a nextpnr JSON report (no 'fmax' key)")
    return rep


def cell_group(name: str) -> str:
    """A cell or net name with its bit indices and tool suffixes replaced: the register group.

    ``core.sl.spikes3_TRELLIS_FF_Q`` -> ``core.sl.spikes#``; ``core.lif.mem[12]`` ->
    ``core.lif.mem[#]``; a Yosys-made name (``$abc$123$auto$...``) -> ``$auto``, inside a named
    scope (``core.$abc$9``) -> ``core.$auto``; an Amaranth-made one keeps its name
    (``core.$signature__data$12_TRELLIS_FF_Q_3`` -> ``core.$signature__data``).
    """
    scope, last = "", name
    if ".$" in name:
        cut = name.index(".$") + 1
        scope, last = name[:cut], name[cut:]
    if last.startswith("$"):
        if _YOSYS_MADE.match(last):  # a Yosys-made cell: nothing of the design's names left
            return scope + "$auto"
        scope, last = scope + "$", last[1:]  # an Amaranth-made name, e.g. $signature__data$12
    base = scope + (_SUFFIX.sub("", last) or last)
    return _INDEX.sub(lambda m: "[#]" if m.group(0).startswith("[") else "#", base)


def _is_endpoint(cell: str, port: str, cell_types: dict) -> bool:
    kind = cell_types.get(cell)
    if kind == "TRELLIS_COMB" or (kind is None and port in _COMB_PORTS):
        return port not in _COMB_PORTS and port not in ("WAD0", "WAD1", "WAD2", "WAD3", "WD", "WRE")
    return True


def slow_endpoints(rep: dict, over_ns: float) -> list[EndpointGroup]:
    """Endpoint groups with an arrival above `over_ns`, worst first."""
    nets = rep.get("detailed_net_timings")
    if not nets:
        raise TimingReportError("the report has no per-sink timing ('detailed_net_timings'): rebuild with "
                                "`python -m hw.build ... --detailed-timing`")
    cell_types = {}
    for c in rep.get("cells", []) if isinstance(rep.get("cells"), list) else []:
        if isinstance(c, dict) and "name" in c and "type" in c:
            cell_types[c["name"]] = c["type"]
    groups: dict[tuple[str, str, str], EndpointGroup] = {}
    for net in nets:
        drv = cell_group(str(net.get("driver", "?")))
        for ep in net.get("endpoints", []):
            d = ep.get("delay")
            arrival = float(d[-1] if isinstance(d, list) else d)
            if arrival <= over_ns:
                continue
            cell, port = str(ep.get("cell", "?")), str(ep.get("port", "?"))
            if not _is_endpoint(cell, port, cell_types):
                continue
            key = (cell_group(cell), port, drv)
            g = groups.get(key)
            if g is None:
                g = groups[key] = EndpointGroup(*key)
            g.count += 1
            g.nets.add(net.get("net"))
            if arrival > g.worst_ns:
                g.worst_ns, g.worst_cell = arrival, cell
    return sorted(groups.values(), key=lambda g: (-g.worst_ns, -g.count, g.cell))


def fmax(rep: dict) -> dict[str, tuple[float, float]]:
    """{clock: (achieved MHz, constraint MHz)}."""
    return {k: (float(v.get("achieved", 0.0)), float(v.get("constraint", 0.0)))
            for k, v in rep.get("fmax", {}).items()}


def critical_paths(rep: dict) -> list[dict]:
    """Each clock's critical path: {from, to, ns, steps: [(kind, cell.port, ns)]}."""
    out = []
    for cp in rep.get("critical_paths", []):
        steps, total = [], 0.0
        for s in cp.get("path", []):
            total += float(s.get("delay", 0.0))
            to = s.get("to", {})
            steps.append((s.get("type", "?"), f"{to.get('cell', '?')}.{to.get('port', '?')}", float(s.get("delay", 0.0))))
        out.append({"from": cp.get("from"), "to": cp.get("to"), "ns": total, "steps": steps})
    return out


def format_groups(groups: list[EndpointGroup], top: int, over_ns: float) -> str:
    total = sum(g.count for g in groups)
    rows = [f"{total} endpoints over {over_ns:g} ns in {len(groups)} groups"
            + (f" (worst {top} shown)" if len(groups) > top else "")]
    w = max([len(g.cell) for g in groups[:top]] + [8])
    wd = max([len(g.driver) for g in groups[:top]] + [6])
    rows.append(f"{'worst ns':>8}  {'count':>5}  {'endpoint':<{w}}  {'port':<5}  {'driver':<{wd}}")
    for g in groups[:top]:
        rows.append(f"{g.worst_ns:8.2f}  {g.count:5d}  {g.cell:<{w}}  {g.port:<5}  {g.driver:<{wd}}")
    return "\n".join(rows)


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hw.timing", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("report", help=f"build folder (<out>/<board>-<variant>/) or its {REPORT_NAME}")
    ap.add_argument("--over", type=float, default=None, metavar="NS",
                    help="list endpoints arriving later than this (default: the period of the "
                         "constrained clock, 1000 / MHz)")
    ap.add_argument("--top", type=int, default=25, help="groups to print")
    ap.add_argument("--json", metavar="PATH", help="also write the groups as JSON")
    args = ap.parse_args(argv)
    try:
        rep = load_report(args.report)
        fm = fmax(rep)
        over = args.over
        if over is None:
            goals = [c for _, c in fm.values() if c > 0]
            over = 1000.0 / max(goals) if goals else 10.0
        if over <= 0 or args.top <= 0:
            raise TimingReportError(f"--over and --top must be positive (got {over:g}, {args.top})")
        groups = slow_endpoints(rep, over)
    except TimingReportError as e:
        print(f"hw.timing: {e}", file=sys.stderr)
        return 2
    for clk, (a, c) in fm.items():
        print(f"Fmax {clk}: {a:.2f} MHz (constraint {c:.2f} MHz)")
    for cp in critical_paths(rep):
        print(f"critical path {cp['from']} -> {cp['to']}: {cp['ns']:.2f} ns, {len(cp['steps'])} steps")
    print(format_groups(groups, args.top, over))
    if args.json:
        out = {"fmax": {k: {"achieved": a, "constraint": c} for k, (a, c) in fm.items()}, "over_ns": over,
               "groups": [g.to_dict() for g in groups]}
        _atomic_write_text(Path(args.json), json.dumps(out, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
