"""``python -m bench energy``: an analytical ESTIMATE of energy per inference, SNN vs quantized ANN.

THIS IS AN ESTIMATE FROM OPERATION COUNTS, NOT A POWER MEASUREMENT. It follows the convention of
SNN papers (e.g. Spike-driven Transformer, Yao et al. 2023): energy = E_AC x (synaptic
accumulates) + E_MAC x (multiply-accumulates), with Horowitz's 45 nm figures (M. Horowitz,
"Computing's energy problem (and what we can do about it)", ISSCC 2014): E_AC = 0.9 pJ (32-bit
float add), E_MAC = 4.6 pJ (32-bit float multiply 3.7 + add 0.9). Those are float figures that the
papers apply to integer networks too; the same paper gives 8-bit / 32-bit integer adds of 0.03 /
0.1 pJ and multiplies of 0.2 / 3.1 pJ, so an integer datapath would cost less for both networks.
Nothing here is specific to the ECP5: an FPGA spends most of its power in routing and clocking.

Counted on the golden model's spike record (`quant.golden.forward`) of the digits test images,
exact integers, then averaged per image:

* **AC, SNN**: one per input spike x fan-out of each spike-driven linear layer: the q/k/v input
  (``enc`` or ``bL.in``) x 3D, ``bL.attn`` x D (o), ``bL.mlp_in`` x H (fc1), ``bL.fc1`` x D (fc2),
  ``head`` x C (the readout adds a weight row per head spike); plus one per K AND V coincidence
  (the attention's per-channel popcount). The Q AND kv mask is a gate, counted as nothing.
* **MAC, SNN**: the encoder's pixel x weight products N*K*D (once per image: E is reused at every
  timestep) and the requantization multiplies: encoder N*D (once), o and fc2 N*D each per block
  per timestep.
* **Neuron updates** (reported, and in the "with memory and neurons" total, but not in the papers'
  formula): one add per LIF neuron per timestep (N*D per token-wise LIF, N*H for fc1, D for kv).
* **Memory**: on-chip SRAM at 10 pJ per 64-bit read of an 8 KB SRAM (Horowitz, same paper),
  scaled per bit: 0.15625 pJ/bit, charged for reads and writes alike. Bits moved: one weight
  (weight_bits) per synaptic op (AC or MAC of a linear layer, the encoder's also one pixel
  of pixel_bits); the requant's multiplier and bias (mult_bits + bias_bits) per requant multiply;
  the membrane (x_bits, the hardware's LIF width) read and written per neuron update; one spike
  bit read per layer input per token per timestep (the spike planes are scanned); the residual
  stream (residual_bits) read and written per element per update (encoder, o, fc2). Wider
  memories and ECP5 block RAM differ; this is the papers' level of detail, stated.

**The ANN baseline** is the same network with multi-bit activations instead of spikes (same
layers and fan-outs): every synapse is a MAC. Main figure: run once, without T ("ANN, T=1");
also given: every synapse a MAC at each of the T timesteps ("ANN x T", the encoder still once).
Its K-V interaction becomes one MAC per (token, channel) (K*V summed over tokens) and the mask a
multiply per (token, channel); the readout one MAC per (token, channel, class). Requant
multiplies: one per output of every linear layer (activations are re-scaled integers). Memory:
one weight per MAC, input activations read and outputs written at ``--act-bits`` (8) per
element, the residual stream as for the SNN; no membranes.

``--smoke``: 16 images; writes JSON only with ``--out-dir``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import RESULTS, save_results, table
from quant.artifact import SHIPPED_ARTIFACT

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = SHIPPED_ARTIFACT

E_AC_PJ = 0.9
E_MAC_PJ = 4.6
SRAM_PJ_PER_BIT = 10.0 / 64
SOURCE = ("M. Horowitz, 'Computing's energy problem (and what we can do about it)', ISSCC 2014, 45 nm: "
          "32-bit float add 0.9 pJ, float multiply 3.7 pJ (MAC 4.6 pJ), 8 KB SRAM 64-bit read 10 pJ")
BANNER = "ESTIMATE from operation counts (Horowitz 45 nm figures), NOT a power measurement"


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m bench energy", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--artifact", default=str(SHIPPED), help="artifact .npz (an 8x8 digits config)")
    ap.add_argument("--images", type=int, default=0, help="digits test images (0: all 360)")
    ap.add_argument("--act-bits", type=int, default=8, help="activation width of the ANN baseline")
    ap.add_argument("--smoke", action="store_true", help="16 images; no JSON unless --out-dir")
    ap.add_argument("--out-dir", default=None, help=f"where energy.json goes (default {RESULTS})")
    return ap


def synaptic_ops(cfg, rec: dict[str, np.ndarray]) -> dict[str, int]:
    """Exact AC counts (over all images of `rec`) per spike-driven layer."""
    D, H, C = cfg.dim, cfg.hidden, cfg.classes
    out: dict[str, int] = {}
    for l in range(cfg.blocks):
        p = f"b{l}."
        src = "enc" if l == 0 else p + "in"
        out[p + "qkv"] = int(rec[src].sum(dtype=np.int64)) * 3 * D
        out[p + "kv_popcount"] = int(np.logical_and(rec[p + "k"], rec[p + "v"]).sum(dtype=np.int64))
        out[p + "o"] = int(rec[p + "attn"].sum(dtype=np.int64)) * D
        out[p + "fc1"] = int(rec[p + "mlp_in"].sum(dtype=np.int64)) * H
        out[p + "fc2"] = int(rec[p + "fc1"].sum(dtype=np.int64)) * D
    out["head"] = int(rec["head"].sum(dtype=np.int64)) * C
    return out


def counts(cfg, rec: dict[str, np.ndarray], B: int, x_bits: int, act_bits: int) -> dict[str, Any]:
    """Every count of the module doc, per image (floats: means over the B images), both networks."""
    T, N, K, D, H, C, L = cfg.timesteps, cfg.tokens, cfg.patch_dim, cfg.dim, cfg.hidden, cfg.classes, cfg.blocks
    wb, mb, bb, pb = cfg.weight_bits, cfg.mult_bits, cfg.bias_bits, cfg.pixel_bits
    from quant.contract import widths

    rb = widths(cfg).residual_bits
    ac = synaptic_ops(cfg, rec)
    ac_total = sum(ac.values())
    ac_syn = ac_total - sum(v for k, v in ac.items() if k.endswith("kv_popcount"))
    enc_mac = N * K * D
    requant = N * D + L * T * 2 * N * D
    snn_mac = enc_mac + requant
    neurons = T * (N * D + L * (3 * N * D + D + N * D + N * H) + (L - 1) * N * D + N * D)
    spike_reads = T * (L * (N * D + N * D + N * D + N * H) + N * D)  # qkv in, o in, fc1 in, fc2 in; head in
    residual_rw = 2 * T * N * D * (1 + 2 * L)  # read + write per element: U_0 = I, then o and fc2 per block
    snn_bits = {
        "weights": (ac_syn / B) * wb + enc_mac * (wb + pb),
        "requant params": requant * (mb + bb),
        "membranes": neurons * 2 * x_bits,
        "spike planes": spike_reads,
        "residual stream": residual_rw * rb,
    }
    snn = {
        "ac": ac_total / B, "ac_by_layer": {k: v / B for k, v in ac.items()}, "mac": snn_mac,
        "mac_by_part": {"encoder patch MACs": enc_mac, "requant multiplies": requant},
        "neuron_updates": neurons, "memory_bits": snn_bits,
    }

    def ann(times: int) -> dict[str, Any]:
        per_t = L * (N * 3 * D * D + N * D + N * D + N * D * D + N * D * H + N * H * D) + N * D * C
        rq_t = L * N * (3 * D + D + D + H + D)
        mac = enc_mac + N * D + times * (per_t + rq_t)
        syn = times * per_t
        act_in = times * (L * (N * D + N * D + N * D + N * H) + N * D)   # inputs of qkv, o, fc1, fc2, head
        act_out = times * (L * (3 * N * D + N * D + N * H) + N * D)       # q/k/v, attn, hidden, head outputs
        bits = {"weights": syn * wb + enc_mac * (wb + pb), "requant params": (N * D + times * rq_t) * (mb + bb),
                "activations": (act_in + act_out) * act_bits,
                "residual stream": 2 * times * N * D * (1 + 2 * L) * rb}
        return {"timesteps": times, "mac": mac, "mac_synapses": syn, "memory_bits": bits}

    return {"snn": snn, "ann_t1": ann(1), "ann_xT": ann(T), "ac_total": ac_total, "ac_total_by_layer": ac}


def energies(c: dict[str, Any]) -> dict[str, Any]:
    """pJ per image from the counts."""
    s = c["snn"]
    snn = {"ac_pj": s["ac"] * E_AC_PJ, "mac_pj": s["mac"] * E_MAC_PJ, "neurons_pj": s["neuron_updates"] * E_AC_PJ,
           "memory_pj": sum(s["memory_bits"].values()) * SRAM_PJ_PER_BIT}
    snn["compute_pj"] = snn["ac_pj"] + snn["mac_pj"]
    snn["total_pj"] = snn["compute_pj"] + snn["neurons_pj"] + snn["memory_pj"]
    out = {"snn": snn}
    for k in ("ann_t1", "ann_xT"):
        a = c[k]
        e = {"mac_pj": a["mac"] * E_MAC_PJ, "memory_pj": sum(a["memory_bits"].values()) * SRAM_PJ_PER_BIT}
        e["compute_pj"] = e["mac_pj"]
        e["total_pj"] = e["compute_pj"] + e["memory_pj"]
        e["ann_over_snn_compute"] = e["compute_pj"] / snn["compute_pj"]
        e["ann_over_snn_total"] = e["total_pj"] / snn["total_pj"]
        out[k] = e
    return out


def run(args) -> dict[str, Any]:
    from hw.sequencer import Program
    from model.config import HW_PRESETS
    from model.data import load_dataset
    from quant import golden
    from quant.artifact import load_artifact

    art = load_artifact(args.artifact)
    cfg = art.config
    x, _ = load_dataset("digits", "test")
    if cfg.image_shape[:2] != x.shape[1:]:
        raise SystemExit(f"bench energy: {args.artifact} has config {cfg.name}, not an 8x8 digits config")
    if args.images:
        x = x[: args.images]
    rec = golden.forward(art, x)
    x_bits = Program(art, HW_PRESETS["default"]).x_bits
    c = counts(cfg, rec, len(x), x_bits, args.act_bits)
    e = energies(c)
    return {
        "estimate": BANNER,
        "artifact": str(Path(args.artifact).resolve().relative_to(ROOT)) if Path(args.artifact).resolve().is_relative_to(ROOT)
        else str(args.artifact),
        "config": cfg.name, "dataset": "digits test split", "images": len(x),
        "assumptions": {"e_ac_pj": E_AC_PJ, "e_mac_pj": E_MAC_PJ, "sram_pj_per_bit": SRAM_PJ_PER_BIT,
                        "source": SOURCE, "x_bits": x_bits, "act_bits_ann": args.act_bits,
                        "weight_bits": cfg.weight_bits, "timesteps": cfg.timesteps,
                        "ann": "same layers, multi-bit activations, every synapse a MAC; ann_t1 once, ann_xT "
                               "at each timestep (encoder once)"},
        "ac_total": c["ac_total"], "ac_total_by_layer": c["ac_total_by_layer"],
        "per_image": {"snn": c["snn"], "ann_t1": c["ann_t1"], "ann_xT": c["ann_xT"]},
        "energy_pj_per_image": e,
    }


def report(res: dict[str, Any]) -> str:
    p, e = res["per_image"], res["energy_pj_per_image"]
    s = p["snn"]
    nj = lambda v: round(v / 1000, 3)  # noqa: E731
    lines = [f"*** {res['estimate']} ***",
             f"energy per inference, {res['config']} ({res['artifact']}), {res['images']} digits test images "
             f"(counts from the golden model's spikes, per image mean)",
             table(["network", "AC", "MAC", "neuron updates", "memory bits", "compute nJ (AC+MAC)", "memory nJ",
                    "total nJ", "ANN/SNN compute", "ANN/SNN total"],
                   [["SNN (this network)", round(s["ac"]), s["mac"], s["neuron_updates"],
                     round(sum(s["memory_bits"].values())), nj(e["snn"]["compute_pj"]), nj(e["snn"]["memory_pj"]),
                     nj(e["snn"]["total_pj"]), 1.0, 1.0]]
                   + [["ANN, T=1" if k == "ann_t1" else f"ANN x T={p[k]['timesteps']}", 0, p[k]["mac"], 0,
                       round(sum(p[k]["memory_bits"].values())), nj(e[k]["compute_pj"]), nj(e[k]["memory_pj"]),
                       nj(e[k]["total_pj"]), round(e[k]["ann_over_snn_compute"], 2),
                       round(e[k]["ann_over_snn_total"], 2)] for k in ("ann_t1", "ann_xT")]),
             "SNN total = AC + MAC + neuron updates (at E_AC) + memory; the papers' figure is the compute column.",
             "SNN ACs per image by layer: " + ", ".join(f"{k} {v:.0f}" for k, v in s["ac_by_layer"].items()),
             "SNN memory bits per image: " + ", ".join(f"{k} {v:.0f}" for k, v in s["memory_bits"].items()),
             f"AC total over the {res['images']} images: {res['ac_total']} (exact)",
             f"assumed: E_AC {E_AC_PJ} pJ, E_MAC {E_MAC_PJ} pJ, SRAM {SRAM_PJ_PER_BIT} pJ/bit; source: {SOURCE}"]
    return "\n".join(lines)


def plot(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    e = res["energy_pj_per_image"]
    nets = [("SNN", e["snn"]), ("ANN T=1", e["ann_t1"]), (f"ANN x T={res['assumptions']['timesteps']}", e["ann_xT"])]
    parts = [("AC", "ac_pj"), ("MAC", "mac_pj"), ("neurons", "neurons_pj"), ("memory", "memory_pj")]
    fig, ax = plt.subplots(figsize=(7, 4))
    bottom = np.zeros(len(nets))
    for label, key in parts:
        vals = np.array([n.get(key, 0.0) / 1000 for _, n in nets])
        ax.bar([n for n, _ in nets], vals, bottom=bottom, label=label)
        bottom += vals
    ax.set_ylabel("nJ per inference (ESTIMATE)")
    ax.set_title(f"{res['config']}: analytical energy estimate (Horowitz 45 nm)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.smoke:
        args.images = 16
    if args.images < 0 or args.act_bits < 1:
        print("bench energy: --images must be >= 0 and --act-bits >= 1", file=sys.stderr)
        return 1
    if not Path(args.artifact).is_file():
        print(f"bench energy: artifact {args.artifact} not found; export one with python -m quant.export",
              file=sys.stderr)
        return 2
    res = run(args)
    print(report(res))
    save_results("energy", res, args, plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
