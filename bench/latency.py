"""``python -m bench latency``: cycles per image in RTL simulation, per pass, dense vs event-driven.

The shipped ``artifacts/digits-tiny.npz`` is built into ``hw.top.Top`` (trace port on) twice: the
HW preset (``--hw-config``, default ``default``: event-driven) and its dense variant
(``event_driven=False``, nothing else changed). The first ``--images`` digits test images go
through both under Verilator with ``sim.network.rtl_forward``, and every image is checked bit-exact
against ``quant.golden.forward`` (``sim.network.check_images``) before any cycle is counted.

**Total cycles** are the design's own ``cycles`` field of the result (first pixel handshake to
``done``; docs/hardware.md section 2), per image.

**Per pass, from the trace.** ``rtl_forward`` splits the trace records by image; the clock
cycle of every record (``run_streams``'s ``cycles_of["trace"]``) is kept by watching the
``run_streams`` call that ``rtl_forward`` makes. The passes run one after another, each to
completion (timestep-major, docs/hardware.md 3.1), and each LIF pass's records come out of its
drain, so the *last* record of a pass's output layer at timestep t marks the end of that pass
(up to a fixed drain-to-FLUSH offset). Per image and timestep the markers are: q/k/v (end of
QKV), kv (KV), mlp_in (O), fc1 (FC1), the next block's ``in`` or ``head`` (FC2), enc (ENC). A
span is the distance from the previous marker. The HEAD pass writes no spike row (its output is
the logits), so the trace cannot separate it from what follows; the one segment
"enc+head+io" holds everything outside the block passes: pixel load, START and EMBED before the
first enc marker, HEAD(t-1) + T_NEXT + ENC(t) between timesteps, and HEAD(T-1) + T_NEXT +
ARGMAX after the last marker (to the image's end, taken as the result's cycle stamp). Summed
over t, the spans add up to the image's ``cycles`` field exactly, because the image's start is
defined as its result's stamp minus that field.

Each span is compared with the cycle model of docs/hardware.md section 3.2
(``hw.cycles.image_cycles``, evaluated on the golden record of the same image, aggregated in the
same segments): the model's total must equal the ``cycles`` field for every image (else the
bench fails), and ``trace - model`` per segment is the record-to-pass-end offset difference, a
constant (reported with its spread over images and both variants; a spread of 0 means the trace
agrees with the model pass by pass).

**Spike rates** per layer are the golden record's means on the same images. Per spike-driven
pass the input spike rate r (the input plane's density) gives the ideal event-driven speedup
1/r; the hardware skips an input only when none of the TL token lanes of a group spikes on it,
so the "visited" rate (the union over a token group) is also given. Overall, the ideal bound is
1/r over all spike-driven passes, r weighted by each pass's dense accumulate cycles
(chunks x fan-in per token group); achieved = dense cycles / event-driven cycles.

**Time** per image is cycles / Fmax, with Fmax taken from the board build's
``build/ulx3s-85F/report.json`` (``fmax_mhz[core_clock].achieved``, written by ``python -m
hw.build``) when it exists, else ``--fmax``, else the HW config's ``clock_mhz``; the JSON says
which. Images are processed one after another (Top takes the next image after the result), so
images/s = Fmax / cycles. The UART link of the board is not counted.

``--smoke``: HW preset ``small``, 2 images; writes JSON only with ``--out-dir``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import RESULTS, save_results, table
from quant.artifact import SHIPPED_ARTIFACT

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = SHIPPED_ARTIFACT
BOARD_REPORT = ROOT / "build" / "ulx3s-85F" / "report.json"
MODEL_FILE = ROOT / "hw" / "cycles.py"
OTHER = "enc+head+io"


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m bench latency", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--artifact", default=str(SHIPPED), help="artifact .npz (an 8x8 digits config)")
    ap.add_argument("--hw-config", default="default", help="HW_PRESETS name, JSON object or JSON file (event-driven)")
    ap.add_argument("--images", type=int, default=64, help="digits test images")
    ap.add_argument("--fmax", type=float, default=None, metavar="MHZ",
                    help=f"clock for the time figures when {BOARD_REPORT.relative_to(ROOT)} is absent")
    ap.add_argument("--board-report", default=str(BOARD_REPORT), help="hw.build report.json to read Fmax from")
    ap.add_argument("--smoke", action="store_true", help="HW 'small', 2 images; no JSON unless --out-dir")
    ap.add_argument("--out-dir", default=None, help=f"where latency.json goes (default {RESULTS})")
    return ap


# -- Fmax ------------------------------------------------------------------------------------------
def fmax_source(report_path: Path, fmax: float | None, hw_clock: float) -> tuple[float, str]:
    """(MHz, where it came from): the board build's achieved core clock, --fmax, or the HW target."""
    if report_path.is_file():
        try:
            r = json.loads(report_path.read_text())
            clk = r.get("core_clock")
            f = r["fmax_mhz"][clk]["achieved"] if clk else None
            if f:
                return float(f), (f"board build {report_path}: nextpnr Fmax of core clock {clk} "
                                  f"(PLL runs at {r.get('clock', {}).get('pll_mhz')} MHz)")
        except (ValueError, KeyError, TypeError):
            pass
    if fmax is not None:
        return float(fmax), "--fmax (no board build report)"
    return float(hw_clock), "HW config clock_mhz target (no board build report, no --fmax)"


# -- the cycle model (hw.cycles) in the trace's segments ------------------------------------------
def segments(cfg) -> list[tuple[str, list[str]]]:
    """Per timestep, (segment name, record keys whose last record ends it), in schedule order.
    Segment names are the Program pass names (b0.qkv, ...), plus OTHER for the enc marker."""
    segs = [(OTHER, ["enc"])]
    for l in range(cfg.blocks):
        p = f"b{l}."
        nxt = f"b{l + 1}.in" if l + 1 < cfg.blocks else "head"
        segs += [(p + "qkv", [p + "q", p + "k", p + "v"]), (p + "kv", [p + "kv"]), (p + "o", [p + "mlp_in"]),
                 (p + "fc1", [p + "fc1"]), (p + "fc2", [nxt])]
    return segs


def trace_spans(cfg, recs: list[tuple[int, int, int]], end_cycle: int, total: int) -> dict[str, int]:
    """Cycles per segment (summed over t) of one image from its trace records (layer, t, cycle)."""
    from quant.golden import spike_layers

    names = spike_layers(cfg)
    last: dict[tuple[str, int], int] = {}
    for layer, t, cyc in recs:
        key = (names[layer], t)
        last[key] = max(last.get(key, -1), cyc)
    out = {name: 0 for name, _ in segments(cfg)}
    prev = end_cycle - total  # the image's first cycle, by the cycles field's definition
    for t in range(cfg.timesteps):
        for name, keys in segments(cfg):
            m = max(last[(k, t)] for k in keys)
            out[name] += m - prev
            prev = m
    out[OTHER] += end_cycle - prev
    return out


def model_spans(prog, rec, b) -> dict[str, int]:
    """The cycle model's parts aggregated into the trace's segments."""
    from hw.cycles import image_cycles

    parts = image_cycles(prog, rec, b)
    out = {name: 0 for name, _ in segments(prog.cfg)}
    for k, v in parts.items():
        if k == "total":
            continue
        out[k if k in out else OTHER] += v
    assert sum(out.values()) == parts["total"]
    return out


# -- one design ------------------------------------------------------------------------------------
def simulate(art, hw, images: np.ndarray, tag: str) -> dict[str, Any]:
    """Run `images` through Top(art, hw) under Verilator; per-image cycles, spans and records."""
    import sim.network as net

    captured: list[Any] = []
    orig = net.run_streams

    def spy(*a, **k):
        r = orig(*a, **k)
        captured.append(r)
        return r

    t0 = time.perf_counter()
    design = net.top_design(art, hw, "verilator")
    build_s = time.perf_counter() - t0
    net.run_streams = spy
    try:
        run = net.rtl_forward(design, art.config, images, seed=0, tag=tag)
    finally:
        net.run_streams = orig
    if not run.passed:
        raise SystemExit(f"bench latency: the RTL run failed: {run.failure.strip().splitlines()[0]}")
    bad = net.check_images(art, images, run, seed=0)
    if bad:
        raise SystemExit(f"bench latency: RTL is not bit-exact: {bad[0]}")
    (sr,) = captured
    tr, tc = sr.outputs["trace"], list(sr.cycles_of["trace"])
    rc = list(sr.cycles_of["result"])
    spans, j = [], 0
    for b in range(len(images)):
        mine = []
        while j < len(tr) and tc[j] <= rc[b]:
            mine.append((int(tr[j]["layer"]), int(tr[j]["t"]), int(tc[j])))
            j += 1
        spans.append(trace_spans(art.config, mine, int(rc[b]), int(run.cycles[b])))
    return {"cycles": [int(c) for c in run.cycles], "spans": spans, "build_s": round(build_s, 2),
            "sim_s": round(run.sim_seconds, 2)}


# -- spike rates and the ideal bound ---------------------------------------------------------------
def spike_stats(art, hw, rec) -> dict[str, Any]:
    """Per-layer spike rates; per spike-driven pass its input rate, visited (token-group union)
    rate and dense accumulate weight; the weighted ideal speedup bound."""
    from hw.cycles import pass_sources
    from hw.sequencer import Program
    from quant.golden import spike_layers

    cfg = art.config
    prog = Program(art, hw)
    N = cfg.tokens
    layers = {k: float(np.mean(rec[k])) for k in spike_layers(cfg)}
    passes, num, den = {}, 0.0, 0.0
    by_name = {ps.name: ps for ps in prog.passes}
    for name, key in pass_sources(cfg).items():
        ps = by_name[name]
        s = np.asarray(rec[key])[..., : ps.n_in]  # [B, T, N, n_in]
        rate = float(s.mean())
        TL, G = prog.group_lanes(ps), prog.pass_groups(ps)  # the per-token head: 1, N
        vis = []
        for g in range(G):
            vis.append(s[:, :, g * TL: min(N, (g + 1) * TL)].any(axis=2).mean())
        visited = float(np.mean(vis))
        weight = len(ps.chunks) * ps.n_in * G  # dense accumulate cycles per timestep
        passes[name] = {"input": key, "fan_in": ps.n_in, "chunks": len(ps.chunks), "input_spike_rate": rate,
                        "visited_rate": visited, "ideal_speedup": (1 / rate) if rate else None}
        num += weight * rate
        den += weight
    r = num / den
    return {"layers": layers, "passes": passes, "weighted_input_rate": r, "ideal_speedup": 1 / r if r else None,
            "token_lanes": prog.TL, "groups": prog.groups}


# -- main ------------------------------------------------------------------------------------------
def run(args) -> dict[str, Any]:
    from hw.cycles import image_cycles
    from hw.sequencer import Program
    from hw.verilog import parse_hw_config
    from model.data import load_dataset
    from quant import golden
    from quant.artifact import load_artifact
    from sim import runner

    runner.setup_verilator_env()
    why = runner.simulator_missing("verilator")
    if why:
        raise SystemExit(f"bench latency: Verilator cannot run here: {why}")
    art = load_artifact(args.artifact)
    cfg = art.config
    hw_ev = parse_hw_config(args.hw_config).replace(event_driven=True)
    hw_dn = hw_ev.replace(event_driven=False)
    x, _ = load_dataset("digits", "test")
    if cfg.image_shape[:2] != x.shape[1:]:
        raise SystemExit(f"bench latency: {args.artifact} has config {cfg.name}, not an 8x8 digits config")
    x = x[: args.images]
    rec = golden.forward(art, x)
    fmax, fsrc = fmax_source(Path(args.board_report), args.fmax, hw_ev.clock_mhz)

    variants = {}
    for label, hw in (("dense", hw_dn), ("event_driven", hw_ev)):
        print(f"bench latency: {label}: building and simulating {len(x)} images ...", file=sys.stderr)
        r = simulate(art, hw, x, f"latency-{label}")
        v: dict[str, Any] = {"hw_config": hw.to_dict(), "cycles_per_image": r["cycles"],
                             "cycles_mean": float(np.mean(r["cycles"])), "cycles_min": int(min(r["cycles"])),
                             "cycles_max": int(max(r["cycles"])), "build_s": r["build_s"], "sim_s": r["sim_s"],
                             "bit_exact": len(x)}
        names = list(r["spans"][0])
        v["trace_spans_mean"] = {n: float(np.mean([s[n] for s in r["spans"]])) for n in names}
        prog = Program(art, hw)
        ms = [model_spans(prog, rec, b) for b in range(len(x))]
        mt = [sum(m.values()) for m in ms]
        v["model_cycles_per_image"] = mt
        v["model_agrees"] = mt == r["cycles"]
        if not v["model_agrees"]:
            bad = next(b for b in range(len(x)) if mt[b] != r["cycles"][b])
            raise SystemExit(f"bench latency: {label}: the cycle model (hw/cycles.py, docs/hardware.md 3.2) gives "
                             f"{mt[bad]} cycles for image {bad}, the design reports {r['cycles'][bad]}: the "
                             f"Sequencer's schedule changed; update hw/cycles.py to match it")
        v["model_spans_mean"] = {n: float(np.mean([m[n] for m in ms])) for n in names}
        parts = [image_cycles(prog, rec, b) for b in range(len(x))]
        v["model_parts_mean"] = {k: float(np.mean([p[k] for p in parts])) for k in parts[0]}
        v["_offsets"] = {n: [s[n] - m[n] for s, m in zip(r["spans"], ms)] for n in names}
        v["us_per_image"] = v["cycles_mean"] / fmax
        v["images_per_s"] = fmax * 1e6 / v["cycles_mean"]
        variants[label] = v

    offsets = {}
    for n in variants["dense"]["_offsets"]:
        vals = variants["dense"]["_offsets"][n] + variants["event_driven"]["_offsets"][n]
        offsets[n] = {"trace_minus_model_min": int(min(vals)), "trace_minus_model_max": int(max(vals))}
    for v in variants.values():
        del v["_offsets"]
    stats = spike_stats(art, hw_ev, rec)
    dn, ev = variants["dense"], variants["event_driven"]
    speed = dn["cycles_mean"] / ev["cycles_mean"]
    per_pass = {}
    for n in dn["trace_spans_mean"]:
        p = stats["passes"].get(n, {})
        d, e = dn["trace_spans_mean"][n], ev["trace_spans_mean"][n]
        per_pass[n] = {"dense_cycles": d, "event_cycles": e, "speedup": d / e if e else None,
                       "input": p.get("input"), "input_spike_rate": p.get("input_spike_rate"),
                       "visited_rate": p.get("visited_rate"), "ideal_speedup": p.get("ideal_speedup")}
        per_pass[n]["source"] = "trace"
        if p.get("ideal_speedup"):
            per_pass[n]["achieved_over_ideal"] = (d / e) / p["ideal_speedup"]
    # the model's split of the segment the trace cannot split (it agrees above)
    split = {"  enc (model)": ["enc"], "  head (model)": ["head"],
             "  io+embed+argmax (model)": ["pixels", "start", "embed", "t_next", "argmax"]}
    for n, keys in split.items():
        d = sum(dn["model_parts_mean"][k] for k in keys)
        e = sum(ev["model_parts_mean"][k] for k in keys)
        p = stats["passes"].get(keys[0], {})
        per_pass[n] = {"dense_cycles": d, "event_cycles": e, "speedup": d / e if e else None,
                       "input": p.get("input"), "input_spike_rate": p.get("input_spike_rate"),
                       "visited_rate": p.get("visited_rate"), "ideal_speedup": p.get("ideal_speedup"),
                       "source": f"cycle model, part of {OTHER}"}
        if p.get("ideal_speedup"):
            per_pass[n]["achieved_over_ideal"] = (d / e) / p["ideal_speedup"]
    return {
        "artifact": str(Path(args.artifact).resolve().relative_to(ROOT)) if Path(args.artifact).resolve().is_relative_to(ROOT)
        else str(args.artifact),
        "config": cfg.name, "config_hash": cfg.hash, "dataset": "digits test split", "images": len(x),
        "simulator": "verilator",
        "fmax_mhz": fmax, "fmax_source": fsrc,
        "cycle_model": str(MODEL_FILE.relative_to(ROOT)),
        "cycle_model_agrees": all(v.get("model_agrees") for v in variants.values()),
        "variants": variants,
        "speedup": speed,
        "spike_rates": stats["layers"],
        "ideal_speedup": stats["ideal_speedup"], "weighted_input_spike_rate": stats["weighted_input_rate"],
        "achieved_over_ideal": speed / stats["ideal_speedup"] if stats["ideal_speedup"] else None,
        "per_pass": per_pass, "trace_offsets": offsets,
        "method": "totals: the design's cycles field; per pass: spans between the last trace records of "
                  "consecutive passes (HEAD, pixel load, EMBED, ARGMAX folded into " + OTHER + ")",
    }


def plot(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pp = {n: p for n, p in res["per_pass"].items() if p["source"] == "trace"}
    names = list(pp)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 2]})
    xs = np.arange(len(names))
    ax.bar(xs - 0.2, [pp[n]["dense_cycles"] for n in names], 0.4, label="dense")
    ax.bar(xs + 0.2, [pp[n]["event_cycles"] for n in names], 0.4, label="event-driven")
    ax.set_xticks(xs, names, rotation=20)
    ax.set_ylabel("cycles per image (mean, summed over t)")
    ax.set_title(f"{res['config']}, {res['images']} digits test images (Verilator trace)")
    ax.legend()
    layers = list(res["spike_rates"])
    ax2.barh(np.arange(len(layers)), [res["spike_rates"][k] for k in layers], color="tab:gray")
    ax2.set_yticks(np.arange(len(layers)), layers)
    ax2.invert_yaxis()
    ax2.set_xlabel("spike rate (golden record)")
    ax2.set_title(f"speedup {res['speedup']:.2f}x, ideal 1/r {res['ideal_speedup']:.2f}x")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(res: dict[str, Any]) -> str:
    f = res["fmax_mhz"]
    lines = [f"RTL latency, {res['config']} ({res['artifact']}), {res['images']} digits test images, "
             f"Verilator, bit-exact on every image",
             table(["variant", "cycles/image mean", "min-max", f"us/image @ {f:.4g} MHz", "images/s",
                    "model agrees"],
                   [[k, f"{v['cycles_mean']:.1f}", f"{v['cycles_min']}-{v['cycles_max']}",
                     round(v["us_per_image"], 3), round(v["images_per_s"]),
                     {None: "skipped", True: "yes", False: "NO"}[v.get("model_agrees")]]
                    for k, v in res["variants"].items()]),
             f"Fmax {f:.4g} MHz from: {res['fmax_source']}",
             "",
             "per pass (cycles per image, mean over images, summed over timesteps; from trace record stamps):",
             table(["pass", "input", "spike rate", "visited rate", "dense", "event", "speedup", "ideal 1/r",
                    "achieved/ideal"],
                   [[n, p["input"] or "-", "-" if p["input_spike_rate"] is None else round(p["input_spike_rate"], 3),
                     "-" if p["visited_rate"] is None else round(p["visited_rate"], 3), f"{p['dense_cycles']:.1f}",
                     f"{p['event_cycles']:.1f}", round(p["speedup"], 2),
                     "-" if not p["ideal_speedup"] else round(p["ideal_speedup"], 2),
                     "-" if "achieved_over_ideal" not in p else round(p["achieved_over_ideal"], 3)]
                    for n, p in res["per_pass"].items()]),
             f"whole image: speedup {res['speedup']:.3f}x; ideal bound 1/r = {res['ideal_speedup']:.3f}x "
             f"(r = {res['weighted_input_spike_rate']:.4f}, input spike rate of the spike-driven passes weighted "
             f"by dense accumulate cycles); achieved/ideal = {res['achieved_over_ideal']:.3f}",
             "spike rates per layer: " + ", ".join(f"{k} {v:.3f}" for k, v in res["spike_rates"].items())]
    lines.append("trace - model per pass (drain-to-pass-end offsets; min..max over images and both variants): "
                 + ", ".join(f"{n} {o['trace_minus_model_min']}..{o['trace_minus_model_max']}"
                             for n, o in res["trace_offsets"].items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.smoke:
        args.images, args.hw_config = 2, "small"
    if args.images < 1:
        print(f"bench latency: --images must be at least 1, got {args.images}", file=sys.stderr)
        return 1
    if not Path(args.artifact).is_file():
        print(f"bench latency: artifact {args.artifact} not found; export one with python -m quant.export",
              file=sys.stderr)
        return 2
    res = run(args)
    print(report(res))
    save_results("latency", res, args, plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
