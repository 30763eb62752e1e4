"""Numbers quoted in docs/hardware.md: bit widths, memory map, EBR estimate, cycle model.

    .venv/bin/python docs/figures/hardware_tables.py            # widths, memories, schedule
    .venv/bin/python docs/figures/hardware_tables.py --images 4 # + cycles on digits test images

Everything comes from the code: `hw.sequencer.Program` (passes, chunks, memory map),
`quant.contract.widths`, the memory list and EBR tiling of `hw.resources`, and the cycle model
`hw.cycles.image_cycles`, which re-states the Sequencer FSM state by state (docs/hardware.md
section 3); with ``--images`` it is evaluated on the golden model's spike record (event-driven
skips) for digits test images and a random artifact, to compare with the cycles Top reports in
simulation.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from hw.common import ceil_div, sbits, ubits  # noqa: E402
from hw.cycles import image_cycles  # noqa: E402
from hw.resources import ebr_count, memories  # noqa: E402
from hw.sequencer import Program  # noqa: E402
from model.config import HW_PRESETS, PRESETS  # noqa: E402
from quant import golden  # noqa: E402
from quant.artifact import random_artifact  # noqa: E402
from quant.contract import widths  # noqa: E402

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=0, help="digits test images for the cycle model")
    ap.add_argument("--seed", type=int, default=0, help="random_artifact seed")
    ap.add_argument("--markdown", action="store_true", help="print the memory table of docs/hardware.md")
    args = ap.parse_args(argv)
    if args.markdown:
        markdown_memories()
        return 0

    for cname in ("digits-tiny", "fmnist-small"):
        cfg = PRESETS[cname]
        wd = widths(cfg)
        print(f"== {cname}: T={cfg.timesteps} N={cfg.tokens} K={cfg.patch_dim} D={cfg.dim} H={cfg.hidden} "
              f"L={cfg.blocks} C={cfg.classes}")
        print(f"  widths: enc_acc {sbits(wd.enc_acc_max)}  E {sbits(wd.requant_enc_max)}  enc_in {sbits(wd.enc_in_max)}"
              f"  residual {wd.residual_bits}  lin_d {sbits(wd.lin_d_max)}  lin_h {sbits(wd.lin_h_max)}"
              f"  logit {wd.logit_bits}  kv count {ubits(cfg.tokens)}")
        art = random_artifact(cfg, args.seed)
        for hname, hw in HW_PRESETS.items():
            prog = Program(art, hw)
            sl_acc = sbits(prog.inputs * (1 << (cfg.weight_bits - 1)))
            print(f"  -- HW {hname}: P={prog.P} TL={prog.TL} chD={prog.chD} chH={prog.chH} chC={prog.chC} "
                  f"G={prog.groups} x_bits={prog.x_bits} res_bits={prog.res_bits} sl.acc_bits={sl_acc}")
            total = 0
            for name, depth, width in memories(prog):
                e = ebr_count(depth, width)
                total += e
                print(f"     {name:26s} {depth:6d} x {width:5d} = {depth * width:8d} bit  ~{e:3d} EBR")
            print(f"     total if every memory is EBR: ~{total} DP16KD")
            print("     weight-row map:", weight_map(prog))
            print("     dense cycles:", image_cycles(prog))
    if args.images:
        from model.data import load_dataset

        cfg = PRESETS["digits-tiny"]
        art = random_artifact(cfg, args.seed)
        x, _ = load_dataset("digits", "test")
        imgs = np.asarray(x[:args.images])
        rec = golden.forward(art, imgs)
        for hname, hw in HW_PRESETS.items():
            prog = Program(art, hw)
            per = [image_cycles(prog, rec, b) for b in range(len(imgs))]
            print(f"digits-tiny HW {hname}, random_artifact seed {args.seed}: model cycles per image "
                  f"{[p['total'] for p in per]}")
            print("   image 0 parts:", per[0])
    return 0


def markdown_memories() -> None:
    """Memory table: depth x width and DP16KD tiles per preset (shallow memories marked)."""
    cols = [(c, h) for c in ("digits-tiny", "fmnist-small") for h in HW_PRESETS]
    progs = [Program(random_artifact(PRESETS[c], 0), HW_PRESETS[h]) for c, h in cols]
    mems = [{name: (d, w) for name, d, w in memories(p)} for p in progs]
    names = list(dict.fromkeys(name for ms in mems for name in ms))  # a preset's banks: rows of their own
    names.sort(key=lambda n: not n.startswith("spike_linear.weights"))
    print("| memory | " + " | ".join(f"{c} / {h}" for c, h in cols) + " |")
    print("|---|" + "---|" * len(cols))
    deep = [0] * len(cols)
    for name in names:
        cells = []
        for k, ms in enumerate(mems):
            if name not in ms:
                cells.append("–")
                continue
            d, w = ms[name]
            e = ebr_count(d, w)
            mark = "" if d > 16 else " †"
            if d > 16:
                deep[k] += e
            cells.append(f"{d} x {w}: {e}{mark}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("| **DP16KD, memories > 16 rows** | " + " | ".join(f"**{x}**" for x in deep) + " |")


def weight_map(prog: Program) -> list[tuple[str, int, int]]:
    """(matrix, first row, rows) of the SpikeLinear weight memory, in Program order."""
    cfg, P = prog.cfg, prog.P
    out, base = [], 0
    for l in range(cfg.blocks):
        for name, n_in, n_out in (("q", cfg.dim, cfg.dim), ("k", cfg.dim, cfg.dim), ("v", cfg.dim, cfg.dim),
                                  ("o", cfg.dim, cfg.dim), ("fc1", cfg.dim, cfg.hidden),
                                  ("fc2", cfg.hidden, cfg.dim)):
            rows = ceil_div(n_out, P) * n_in
            out.append((f"b{l}.{name}", base, rows))
            base += rows
    rows = ceil_div(cfg.classes, P) * cfg.head_inputs
    out.append(("head" if cfg.readout == "pool" else "head (N per-token blocks)", base, rows))
    assert base + rows == len(prog.weight_rows)
    return out


if __name__ == "__main__":
    sys.exit(main())
