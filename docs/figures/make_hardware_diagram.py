"""Draw docs/figures/hardware.png, the block diagram of docs/hardware.md.

    .venv/bin/python docs/figures/make_hardware_diagram.py [--out docs/figures/hardware.png]

Hand-placed boxes (matplotlib only); the blocks and the signals between them follow hw/ (see the
component table of docs/hardware.md). The PNG is palette-quantized to stay small.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

HERE = Path(__file__).resolve().parent

C_SHELL = "#e8e8e8"
C_DATA = "#dbe9f6"
C_MEM = "#fde9c9"
C_CTRL = "#e3f1dc"
C_TOP = "#fbfbfb"


def box(ax, x, y, w, h, title, body="", color=C_DATA, title_size=10.5, body_size=8.2, lw=1.2, ls="-",
        edge="#333333", title_dy=0.0):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.08",
                                fc=color, ec=edge, lw=lw, ls=ls, zorder=2))
    ax.text(x + w / 2, y + h - 0.17 - title_dy, title, ha="center", va="top", fontsize=title_size,
            fontweight="bold", zorder=3)
    if body:
        ax.text(x + w / 2, y + h - 0.47 - title_dy, body, ha="center", va="top", fontsize=body_size,
                linespacing=1.25, zorder=3)


def arrow(ax, p, q, text="", color="#1f4e8c", lw=1.6, ls="-", rad=0.0, tx=None, ty=None, size=8,
          ha="center", style="-|>", zorder=4):
    ax.add_patch(FancyArrowPatch(p, q, arrowstyle=style, mutation_scale=13, color=color, lw=lw, ls=ls,
                                 connectionstyle=f"arc3,rad={rad}", zorder=zorder, shrinkA=1, shrinkB=1))
    if text:
        x = tx if tx is not None else (p[0] + q[0]) / 2
        y = ty if ty is not None else (p[1] + q[1]) / 2
        ax.text(x, y, text, fontsize=size, ha=ha, va="center", color=color, zorder=5,
                bbox=dict(fc="white", ec="none", pad=0.6, alpha=0.9))


def path(ax, pts, text="", color="#1f4e8c", lw=1.6, ls="-", tx=None, ty=None, size=7.8, ha="center",
         style="-|>"):
    """An orthogonal polyline through `pts`, arrowhead at the end; optional label."""
    xs, ys = zip(*pts)
    ax.plot(xs[:-1], ys[:-1], color=color, lw=lw, ls=ls, zorder=4, solid_capstyle="butt")
    arrow(ax, pts[-2], pts[-1], color=color, lw=lw, ls=ls, style=style)
    if text:
        ax.text(tx, ty, text, fontsize=size, ha=ha, va="center", color=color, zorder=5,
                bbox=dict(fc="white", ec="none", pad=0.6, alpha=0.9))


def draw(out: Path) -> None:
    fig, ax = plt.subplots(figsize=(17.4, 10.2))
    ax.set_xlim(0, 17.4)
    ax.set_ylim(0, 10.2)
    ax.axis("off")

    ax.text(0.15, 10.0, "STF-FPGA hardware (hw/): BoardTop > NetworkCore > Top > Sequencer",
            fontsize=14, fontweight="bold", va="top")
    ax.text(0.15, 9.64, "blue: data   green dashed: control (Sequencer FSM)   orange: memories   "
            "P = lanes (output channels / cycle), TL = token_lanes (tokens / weight row)",
            fontsize=9, va="top", color="#444444")

    # ---- board shell ------------------------------------------------------------------------
    box(ax, 0.1, 0.15, 3.0, 9.1, "", color="#f4f4f4", lw=1.0, ls="--", edge="#777777")
    ax.text(1.6, 9.15, "BoardTop (hw.platforms)", ha="center", va="top", fontsize=11, fontweight="bold")
    box(ax, 0.3, 7.25, 2.6, 1.35, "ECP5PLL", "EHXPLLL: clk25 -> core clock\n(hw.pll.pll_params)\n"
        "reset held until LOCK", C_SHELL)
    box(ax, 0.3, 5.55, 2.6, 1.25, "UARTRx", "8N1, divisor = f_clk / baud\n2-flop sync, mid-bit sample",
        C_SHELL)
    box(ax, 0.3, 2.45, 2.6, 2.65, "HostLink", "frames: sync, header, CRC-16\nchecks version, length,\n"
        "config hash, pixel range\npixel buffer memory\nNAK on error / timeout\nRESULT: cls, cycles,\n"
        "int32 logits", C_SHELL)
    box(ax, 0.3, 0.95, 2.6, 1.1, "UARTTx", "8N1, one byte in flight", C_SHELL)
    ax.text(1.6, 0.55, "LEDs: heartbeat, busy, lock, NAKs", ha="center", fontsize=8, color="#444444")
    arrow(ax, (1.6, 7.25), (1.6, 6.8), "sync clock", color="#555555", size=7.5)
    arrow(ax, (-0.05, 6.15), (0.3, 6.15), color="#555555")
    ax.text(0.0, 6.4, "rx", fontsize=8)
    arrow(ax, (1.6, 5.55), (1.6, 5.1), "bytes", size=7.5)
    arrow(ax, (1.6, 2.45), (1.6, 2.05), "bytes", size=7.5)
    arrow(ax, (0.3, 1.5), (-0.05, 1.5), color="#555555")
    ax.text(0.0, 1.75, "tx", fontsize=8)

    # ---- Top frame ------------------------------------------------------------------------------
    box(ax, 3.3, 0.15, 14.0, 9.1, "", color=C_TOP, lw=1.0, ls="--", edge="#777777")
    ax.text(10.3, 9.15, "NetworkCore (hw.core) = Top (hw.top): pixel stream in, result stream out, "
            "cycle counter, config_hash", ha="center", va="top", fontsize=11, fontweight="bold")

    # row A: the spike path
    yA, hA = 6.35, 2.5
    box(ax, 3.65, yA, 2.65, hA, "STFEncoder",
        "pixel memory (H*W*C)\npatch MACs: P pixel*weight\n-> Requant -> E memory\n"
        "TSPE table Ptab (T or 1)\ngain g; tap (2 cycles):\nI = E[n]+Ptab[t,n]+g*S[t-1]")
    box(ax, 6.7, yA, 2.4, hA, "spike planes",
        "7 memories, N rows:\nenc res q k v mlp fc1\nceil(w/P)*P bits/row\n\nresidual u:\n"
        "N*chD rows x P*res_bits", C_MEM)
    box(ax, 9.5, yA, 2.4, hA, "SpikeDrivenAttention",
        "KV pass: count[c] +=\nK[n,c] AND V[n,c]\nkv = LIF_kv(count)\nload path: plane row,\n"
        "O pass: Q AND kv", body_size=7.9, title_size=9.3)
    box(ax, 12.3, yA, 2.45, hA, "SpikeLinear",
        "weight memory: rows of\nP x weight_bits, 1 row/cycle\nTL spike registers\n"
        "event-driven: find-first-\nset over OR of TL rows\nTL x P accumulators", body_size=7.6)
    box(ax, 15.15, yA, 1.95, hA, "Readout", "P adder trees over\nTL token lanes\n+ bias once per t\n"
        "C logit registers\nargmax: log2 C + 1 cycles,\nties -> lowest", body_size=7.9)

    # row B: the drain pipeline
    yB0, yB1 = 3.35, 5.85
    box(ax, 6.45, yB0, 10.65, yB1 - yB0, "", color=C_DATA)
    ax.text(11.35, yB1 - 0.12, "drain pipeline S0..S5\n(1 token lane / cycle)", ha="center", va="top",
            fontsize=9.5, fontweight="bold", zorder=3)
    ys, hs = 3.85, 1.5
    box(ax, 6.65, ys, 2.3, hs, "LIFArray", "P LIFs / cycle (2 cyc)\nmembranes of every\nLIF in one memory",
        "#c9dcf0", title_size=9.5, body_size=7.6)
    box(ax, 9.5, ys, 2.1, hs - 0.2, "x select", "ENC: x = I\no, fc2: x = u + y\nq,k,v,fc1: x = y",
        "#c9dcf0", title_size=9.5, body_size=7.6)
    box(ax, 12.2, ys, 2.3, hs, "Requant", "o, fc2: (acc*M >> s) + b\n(P x MULT18)\nq,k,v,fc1: acc + b",
        "#c9dcf0", title_size=9.5, body_size=7.6)
    box(ax, 14.95, ys, 2.15, hs, "param ROM", "row per out chunk:\nbias | mult | theta", C_MEM,
        title_size=9.5, body_size=7.6)

    # ---- data arrows ----------------------------------------------------------------------------
    path(ax, [(2.9, 4.2), (3.45, 4.2), (3.45, 7.6), (3.65, 7.6)], "pixels", tx=3.45, ty=5.4, size=7.5)
    arrow(ax, (6.7, 6.8), (6.3, 6.8), "", size=7)
    ax.text(6.5, 6.55, "S[t-1]", fontsize=6.8, ha="center", color="#1f4e8c")
    arrow(ax, (9.1, 7.9), (9.5, 7.9))
    ax.text(9.3, 8.12, "rows", fontsize=6.8, ha="center", color="#1f4e8c")
    arrow(ax, (11.9, 7.9), (12.3, 7.9))
    ax.text(12.1, 8.12, "LOAD", fontsize=6.8, ha="center", color="#1f4e8c")
    arrow(ax, (14.75, 7.9), (15.15, 7.9))
    ax.text(14.95, 8.12, "acc", fontsize=6.8, ha="center", color="#1f4e8c")
    path(ax, [(5.0, 6.35), (5.0, 3.6), (10.55, 3.6), (10.55, 3.85)], "I (ENC pass)", tx=5.0, ty=4.6, size=7.5)
    arrow(ax, (13.35, 6.35), (13.35, 5.35), "acc (TL x P)", tx=13.35, ty=5.85, size=7.3)
    arrow(ax, (14.95, 4.6), (14.5, 4.6))
    arrow(ax, (16.0, 5.35), (16.0, 6.35), "bias", tx=16.0, ty=5.85, size=7.3)
    ax.text(13.0, 3.62, "theta -> LIFArray", fontsize=7, ha="center", color="#1f4e8c", zorder=5)
    arrow(ax, (12.2, 4.5), (11.6, 4.5), "y", tx=11.9, ty=4.72, size=7.3)
    arrow(ax, (9.5, 4.5), (8.95, 4.5), "x", tx=9.22, ty=4.72, size=7.3)
    arrow(ax, (7.8, 5.35), (7.8, 6.35), "spikes", tx=7.8, ty=5.85, size=7.3)
    arrow(ax, (9.0, 6.35), (9.9, 5.15), "u / u<-x", tx=9.45, ty=5.75, size=7.3, style="<|-|>")
    path(ax, [(17.1, 7.2), (17.2, 7.2), (17.2, 0.75), (3.2, 0.75), (3.2, 3.2), (2.9, 3.2)],
         "result stream: cls, logits (summed over T), cycles", tx=10.3, ty=0.75, size=8.5)

    # ---- Sequencer and control --------------------------------------------------------------------
    box(ax, 3.65, 1.2, 10.3, 1.75, "Sequencer (hw.sequencer): Program + FSM",
        "per image: EMBED (encoder E); for t = 0..T-1: ENC, per block QKV, KV, O, FC1, FC2, then HEAD; ARGMAX\n"
        "LIN/HEAD pass: for token group (TL tokens): LOAD TL rows; for output chunk (P channels):\n"
        "START, ACC (visited inputs + 2), DRAIN (TL cycles); then FLUSH the pipeline",
        C_CTRL, body_size=8.3)
    ctrl = dict(color="#3a7d2c", lw=1.2, ls="--")
    for x in (7.8, 10.55, 13.35):
        arrow(ax, (x, 2.95), (x, 3.35), **ctrl)
    arrow(ax, (4.2, 2.95), (4.2, 6.35), **ctrl)
    ax.text(4.28, 3.3, "start,\ntap", fontsize=7, color="#3a7d2c")

    box(ax, 14.3, 1.2, 2.8, 1.2, "trace port", "(trace=True) layer, t, token,\nspikes; valid only, no ready",
        "#f6dfe9", title_size=9, body_size=7.4)
    arrow(ax, (13.95, 1.8), (14.3, 1.8), color="#8c1f5a", lw=1.2)

    buf = io.BytesIO()
    fig.savefig(buf, dpi=100, bbox_inches="tight", facecolor="white")
    plt.close(fig)
    from PIL import Image

    buf.seek(0)
    img = Image.open(buf).convert("RGB").quantize(colors=64, method=Image.Quantize.MEDIANCUT)
    img.save(out, optimize=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(HERE / "hardware.png"))
    args = ap.parse_args(argv)
    draw(Path(args.out))
    print(f"wrote {args.out} ({Path(args.out).stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
