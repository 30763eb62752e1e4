"""``python -m bench summary``: write ``bench/results/SUMMARY.md`` from the JSON results present.

One short Markdown table per ``*.json`` of the results folder (``--dir``), each headed by the
benchmark's name, the date it was measured and the machine (from the ``machine`` field that
`bench.common.write_json` adds). The benchmarks this repository knows (golden, sim, latency, cpu,
energy, hw, stf, accuracy and their ``-smoke`` variants) get a table of their headline figures; any other JSON gets
its top-level numbers and strings, or its ``rows`` when it has them. `write_summary` is what
``python -m bench all`` calls at its end.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

from bench.common import RESULTS, table
from quant.artifact import atomic_write_bytes


def _f(v: Any, nd: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def _golden(d):
    return table(["artifact", "record", "batch", "images/s", "us/image"],
                 [[r["artifact"], _f(r["record"]), r["batch"], round(r["images_per_s"]), _f(r["us_per_image"])]
                  for r in d["rows"]])


def _sim(d):
    return table(["simulator", "bit-exact", "images/s", "sim cycles/s", "cycles/image", "RTL accuracy"],
                 [[r["simulator"], "skipped" if "skipped" in r else f"{r['bit_exact']}/{r['images']}",
                   _f(r.get("images_per_s")), _f(r.get("sim_cycles_per_s")), _f(r.get("cycles_per_image_mean")),
                   _f(100 * r["rtl_accuracy"], 2) + " %" if "rtl_accuracy" in r else "-"] for r in d["rows"]])


def _latency(d):
    rows = [[k, _f(v["cycles_mean"]), f"{v['cycles_min']}-{v['cycles_max']}", _f(v["us_per_image"], 2),
             round(v["images_per_s"]), _f(v.get("model_agrees"))] for k, v in d["variants"].items()]
    return (table(["variant", "cycles/image", "min-max", f"us/image @ {d['fmax_mhz']:.4g} MHz", "images/s",
                   "cycle model agrees"], rows)
            + f"\n\n{d['images']} images; speedup {d['speedup']:.2f}x, ideal 1/spike-rate {d['ideal_speedup']:.2f}x, "
              f"achieved/ideal {d['achieved_over_ideal']:.3f}. Fmax from: {d['fmax_source']}.")


def _cpu(d):
    rows = [[r["engine"], r["batch"], round(r["images_per_s"]), _f(r["us_per_image"])] for r in d["rows"]]
    if d.get("rtl"):
        rows.append([f"RTL event-driven @ {d['rtl']['fmax_mhz']:.4g} MHz", 1, round(d["rtl"]["images_per_s"]),
                     _f(d["rtl"]["us_per_image"], 2)])
    out = table(["engine", "batch", "images/s", "us/image"], rows)
    if d.get("rtl_vs_pytorch_batch1") is not None:
        out += (f"\n\nPyTorch batch-1 latency / RTL latency = {d['rtl_vs_pytorch_batch1']:.1f}x "
                f"(goal >= {d['goal_ratio']:g}x: {'met' if d['goal_met'] else 'not met'}). {d['note']}.")
    return out


def _energy(d):
    e = d["energy_pj_per_image"]
    rows = [[name, _f(e[k]["compute_pj"] / 1000, 2), _f(e[k]["memory_pj"] / 1000, 2), _f(e[k]["total_pj"] / 1000, 2)]
            for name, k in (("SNN", "snn"), ("ANN, T=1", "ann_t1"), ("ANN x T", "ann_xT"))]
    return (f"**{d['estimate']}.**\n\n"
            + table(["network", "compute nJ (AC+MAC)", "memory nJ", "total nJ"], rows)
            + f"\n\n{d['images']} images; SNN ACs per image {d['per_image']['snn']['ac']:.0f}, "
              f"MACs {d['per_image']['snn']['mac']}.")


def _generic(d):
    if isinstance(d.get("rows"), list) and d["rows"] and isinstance(d["rows"][0], dict):
        keys = [k for k, v in d["rows"][0].items() if isinstance(v, (int, float, str, bool)) or v is None][:8]
        return table(keys, [[_f(r.get(k), 3) for k in keys] for r in d["rows"]])
    items = [(k, v) for k, v in d.items() if k not in ("benchmark", "machine")
             and (isinstance(v, (int, float, str, bool)) or v is None)][:16]
    return table(["field", "value"], [[k, _f(v, 3)] for k, v in items])


def _hw(d):
    def res(r, k):
        x = (r.get("resources") or {}).get(k)
        return "-" if not x or x["used"] is None else (f"{x['used']} / {x['available']}" if x["available"] else str(x["used"]))

    rows = [[r["variant"], r["point"] + (f" ({r['preset']})" if r.get("preset") else ""), r["status"],
             res(r, "LUT4"), res(r, "FF"), res(r, "EBR"), res(r, "MULT18"), _f(r.get("fmax_mhz"), 2),
             _f(r.get("cycles_mean")), _f(r.get("us_per_image"), 1),
             "-" if r.get("images_per_s") is None else round(r["images_per_s"])] for r in d["rows"]]
    return (table(["variant", "lanes x token lanes", "status", "LUT4", "FF", "EBR", "MULT18", "Fmax MHz",
                   "cycles/image", "us/image", "images/s"], rows)
            + f"\n\n{d['mode']}; requested clock {d['clock_mhz']:g} MHz; cycles: Verilator, {d['images']} images, "
              f"bit-exact; us/image = cycles / Fmax. Built from commit {str(d.get('commit'))[:12]}"
            + (" with uncommitted design changes" if d.get("uncommitted_design_sources") else "") + ".")


def _stf(d):
    parts = []
    for ds, e in d["datasets"].items():
        b = e["budget"]
        modes = list(e["modes"])
        fg = [k for k in e["modes"][modes[0]]["aggregate"]["fgsm"] if k != "clean"]
        tk = list(e["modes"][modes[0]]["aggregate"]["temporal"])
        pm = lambda x: f"{100 * x['mean']:.2f} ± {100 * x['std']:.2f}"  # noqa: E731
        rows = []
        for m in modes:
            a = e["modes"][m]["aggregate"]
            rows.append([m, pm(a["golden_accuracy"]), _f(a["layers"]["enc"]["neuron_entropy_bits"]["mean"], 3),
                         _f(a["mean_neuron_entropy_bits"]["mean"], 3), _f(100 * a["mean_rate"]["mean"], 1),
                         pm(a["fgsm"][fg[-1]]) if fg else "-", pm(a["temporal"][tk[0]]), pm(a["temporal"][tk[-1]])])
        parts.append(f"{ds}: {b['config']}, {b['epochs']} epochs on {b['train_images']} training images, "
                     f"{len(b['seeds'])} seed(s), {b['test_images']} test images\n\n"
                     + table(["stf", "integer acc %", "enc per-neuron H (bits)", "all-layer per-neuron H", "mean rate %",
                              f"FGSM k={fg[-1] if fg else '-'} acc %", f"T'={tk[0]} acc %", f"T'={tk[-1]} acc %"], rows))
    return "\n\n".join(parts) + "\n\nFull tables: `stf.md`."


def _accuracy(d):
    def pct(v):
        return "-" if v is None else f"{100 * v:.2f}"

    def rtl(r):
        if "skipped" in r or "error" in r:
            return "skipped" if "skipped" in r else "error"
        return f"{r['bit_exact']}/{r['images']} bit-exact"

    return table(["dataset", "config", "weight bits", "T", "float %", "QAT %", "golden %", "RTL sample"],
                 [[r["dataset"], r["config"], r["weight_bits"], r["timesteps"], pct(r["float_accuracy"]),
                   pct(r["qat_accuracy"]), pct(r["golden_accuracy"]), rtl(r["rtl"])] for r in d["rows"]])


def _fmax(d):
    from bench.fmax import report

    return report(d)


FORMATTERS: dict[str, Callable[[dict], str]] = {"golden": _golden, "sim": _sim, "latency": _latency, "cpu": _cpu,
                                                "energy": _energy, "hw": _hw, "stf": _stf, "accuracy": _accuracy,
                                                "fmax": _fmax}


def render(folder: Path) -> str:
    """The Markdown text for every JSON in `folder`."""
    import platform

    parts = [f"# Benchmark summary\n\nWritten {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on "
             f"{platform.node() or 'unknown host'} ({platform.machine()}, Python {platform.python_version()}) "
             f"from the JSON files in `{folder.name}/`. Each section names when and where it was measured; "
             f"regenerate with `python -m bench all` (or `python -m bench summary`).\n"]
    files = sorted(folder.glob("*.json"))
    if not files:
        parts.append("No results yet.\n")
    for p in files:
        try:
            d = json.loads(p.read_text())
        except (OSError, ValueError) as e:
            parts.append(f"## {p.stem}\n\nunreadable: {e}\n")
            continue
        if not isinstance(d, dict):
            parts.append(f"## {p.stem}\n\nnot a JSON object\n")
            continue
        m = d.get("machine", {})
        when = m.get("when", "date unknown")
        where = ", ".join(f"{k} {m[k]}" for k in ("machine", "cpus", "python") if k in m) or "machine unknown"
        name = str(d.get("benchmark", p.stem))
        fmt = FORMATTERS.get(name.removesuffix("-smoke"), _generic)
        try:
            body = fmt(d)
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as e:
            body = f"(fields not as expected: {type(e).__name__}: {e})\n\n" + _generic(d)
        parts.append(f"## {name}\n\n`{p.name}`, measured {when} ({where}).\n\n{body}\n")
    return "\n".join(parts)


def write_summary(folder: Path = RESULTS) -> Path:
    """Write `<folder>/SUMMARY.md` (atomically) and return its path."""
    return atomic_write_bytes(folder / "SUMMARY.md", render(folder).encode(), overwrite=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench summary", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--dir", type=Path, default=RESULTS, help="folder of the JSON results (SUMMARY.md goes there)")
    ap.add_argument("--smoke", action="store_true", help="accepted for bench all; the same work")
    ap.add_argument("--out-dir", type=Path, default=None, help="alias of --dir")
    args = ap.parse_args(argv)
    folder = args.out_dir or args.dir
    if not folder.is_dir():
        print(f"bench summary: {folder}: no such folder", file=sys.stderr)
        return 1
    print(f"wrote {write_summary(folder)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
