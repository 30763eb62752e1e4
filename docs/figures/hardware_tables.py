"""Numbers quoted in docs/hardware.md: bit widths, memory map, EBR estimate, cycle model.

    .venv/bin/python docs/figures/hardware_tables.py            # widths, memories, schedule
    .venv/bin/python docs/figures/hardware_tables.py --images 4 # + cycles on digits test images

Everything comes from the code: `hw.sequencer.Program` (passes, chunks, memory map),
`quant.contract.widths`, the components' latency attributes. The cycle model `image_cycles`
re-states the Sequencer FSM state by state (docs/hardware.md section 3); with ``--images`` it is
evaluated on the golden model's spike record (event-driven skips) for digits test images and a
random artifact, to compare with the cycles Top reports in simulation.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from hw.adder_tree import tree_latency  # noqa: E402
from hw.common import ceil_div, sbits, ubits  # noqa: E402
from hw.sequencer import DRAIN_DEPTH, ENC, HEAD, KV, LIN, PL_ENC, PL_FC1, PL_MLP, PL_Q, PL_RES, Program  # noqa: E402
from model.config import HW_PRESETS, PRESETS  # noqa: E402
from quant import golden  # noqa: E402
from quant.artifact import random_artifact  # noqa: E402
from quant.contract import widths  # noqa: E402

EBR_BITS = 18 * 1024
# DP16KD aspect ratios (depth x width) in pseudo-dual-port use: 512x36 is the widest.
EBR_SHAPES = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))


def ebr_count(depth: int, width: int) -> int:
    """DP16KD blocks for a depth x width memory, best single aspect ratio (Yosys-style tiling)."""
    return min(ceil_div(depth, d) * ceil_div(width, w) for d, w in EBR_SHAPES)


def memories(prog: Program) -> list[tuple[str, int, int]]:
    """(name, depth, width) of every memory the Sequencer and its components instantiate
    (the HostLink's pixel buffer, outside Top, is not listed)."""
    cfg, P = prog.cfg, prog.P
    wd = widths(cfg)
    N, T, K = cfg.tokens, cfg.timesteps, cfg.patch_dim
    chD = prog.chD
    out = [
        ("spike_linear.weights", len(prog.weight_rows), P * cfg.weight_bits),
        ("params (bias, mult, theta)", len(prog.param_rows), P * (cfg.bias_bits + cfg.mult_bits + prog.theta_bits)),
        ("lif.membranes", prog.mdepth, P * prog.x_bits),
        ("residual u", N * chD, P * prog.res_bits),
    ]
    for name, w in zip(("enc", "res", "q", "k", "v", "mlp", "fc1"), prog.plane_width):
        out.append((f"plane_{name}", N, ceil_div(w, P) * P))
    n_pix = cfg.image_shape[0] * cfg.image_shape[1] * cfg.image_shape[2]
    out += [
        ("enc.pixels", n_pix, cfg.pixel_bits),
        ("enc.weights", K * chD, P * cfg.weight_bits),
        ("enc.mult", chD, P * cfg.mult_bits),
        ("enc.bias", chD, P * cfg.bias_bits),
        ("enc.e", N * chD, P * sbits(wd.requant_enc_max)),
        ("enc.pos (TSPE table)", (T if cfg.tspe else 1) * N * chD, P * cfg.pos_bits),
        ("enc.gain", chD, P * cfg.feedback_bits),
        ("attn.theta", cfg.blocks, cfg.dim * cfg.threshold_bits),
        ("attn.lif.membranes", cfg.blocks, cfg.dim * sbits(N)),
    ]
    return out


def pass_sources(cfg):
    """Record key each LIN/HEAD pass reads (event-driven skip), by Program pass name."""
    src = {}
    for l in range(cfg.blocks):
        p = f"b{l}."
        src[p + "qkv"] = "enc" if l == 0 else p + "in"
        src[p + "o"] = p + "attn"
        src[p + "fc1"] = p + "mlp_in"
        src[p + "fc2"] = p + "fc1"
    src["head"] = "head"
    return src


def pass_cycles(prog: Program, ps, visited) -> int:
    """Cycles of one pass at one timestep. `visited(g)`: inputs visited for token group g."""
    cfg, P, TL, N, G = prog.cfg, prog.P, prog.TL, prog.cfg.tokens, prog.groups
    flush = max(DRAIN_DEPTH, tree_latency(TL, prog.hw.tree_register_every) + 2)  # Readout latency + 1
    if ps.kind == ENC:
        return 1 + N * prog.chD + flush                                  # BEGIN, ENC, FLUSH
    if ps.kind == KV:
        count_latency = tree_latency(1, prog.hw.tree_register_every) + 1
        return 1 + N + (count_latency + 1) + 4                           # BEGIN, COUNT, CWAIT, FIRE
    nch = len(ps.chunks)
    total = 1 + flush                                                    # BEGIN, FLUSH
    for g in range(G):
        v = visited(g)
        total += TL + 1                                                  # LOAD, LOADW
        if ps.kind == HEAD:
            total += nch * (1 + v + 2 + 1) + (nch - 1)                   # START, ACC, DRAIN; HWAIT
        else:
            total += nch * (1 + v + 2 + TL)                              # START, ACC, DRAIN
            if ps.masked and g < G - 1:
                total += DRAIN_DEPTH                                     # GWAIT (O pass)
    return total


def image_cycles(prog: Program, rec: dict | None = None, b: int = 0) -> dict[str, int]:
    """Cycles Top reports for one image (pixels streamed back to back), by part.

    rec: golden.forward record (event-driven: visited inputs = OR of the group's spikes);
    None or a dense design: every input is visited.
    """
    cfg = prog.cfg
    N, T, TL, C = cfg.tokens, cfg.timesteps, prog.TL, cfg.classes
    n_pix = cfg.image_shape[0] * cfg.image_shape[1] * cfg.image_shape[2]
    src = pass_sources(cfg)
    parts = {"pixels": n_pix, "start": 1, "embed": N * prog.chD * (cfg.patch_dim + 2) + 4}
    for ps in prog.passes:
        parts[ps.name] = 0
    for t in range(T):
        for ps in prog.passes:
            def visited(g, ps=ps, t=t):
                if not prog.hw.event_driven or rec is None:
                    return ps.n_in
                s = np.asarray(rec[src[ps.name]][b, t, g * TL:min(N, (g + 1) * TL), :ps.n_in])
                return int(s.any(axis=0).sum())
            parts[ps.name] += pass_cycles(prog, ps, visited)
    parts["t_next"] = T
    parts["argmax"] = C + 1
    parts["total"] = sum(parts.values())
    return parts


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
    mems = [memories(p) for p in progs]
    print("| memory | " + " | ".join(f"{c} / {h}" for c, h in cols) + " |")
    print("|---|" + "---|" * len(cols))
    deep = [0] * len(cols)
    for i, (name, _, _) in enumerate(mems[0]):
        cells = []
        for k, ms in enumerate(mems):
            _, d, w = ms[i]
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
    rows = ceil_div(cfg.classes, P) * cfg.dim
    out.append(("head", base, rows))
    assert base + rows == len(prog.weight_rows)
    return out


if __name__ == "__main__":
    sys.exit(main())
