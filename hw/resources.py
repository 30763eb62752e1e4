"""Resource estimates from the parameters alone, before any tool runs (docs/hardware.md 4.2, 5).

* `memories(prog)`: (name, depth, width) of every memory Top instantiates, and `ebr_count` the
  DP16KD blocks one of them takes at the best single aspect ratio. A tiling count, not a
  synthesis result: Yosys may put shallow memories in LUT RAM or logic.
* `mult18_lower_bound(prog)`: MULT18X18D blocks any synthesis of the design needs, so that a
  sweep can refuse, without building, a point that cannot fit a device.

Used by ``python -m bench hw`` (pre-check) and ``docs/figures/hardware_tables.py`` (tables).
"""

from __future__ import annotations

from hw.common import ceil_div, sbits
from hw.sequencer import Program
from quant.contract import widths

__all__ = ["EBR_BITS", "EBR_SHAPES", "ebr_count", "memories", "mult18_lower_bound"]

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
    B = prog.hw.input_banks  # SpikeLinear's weights: B memories, row r in bank r mod B
    banks = [(f"spike_linear.weights{f' bank {b}' if B > 1 else ''}", ceil_div(len(prog.weight_rows), B),
              P * cfg.weight_bits) for b in range(B)]
    out = [
        *banks,
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


def mult18_lower_bound(prog: Program) -> int:
    """MULT18X18D blocks any ``synth_ecp5`` of the design needs at least.

    Each of the P lanes has three multipliers (docs/hardware.md section 5): the encoder's pixel x
    weight MAC, the encoder's Requant and the Sequencer's Requant (accumulator x mult). Yosys'
    ``synth_ecp5`` maps every multiplier whose operands are 2 to 18 bits wide onto one
    MULT18X18D (wider ones onto several). Only multipliers whose both operands vary are counted:
    a ROM of one row is a constant after synthesis, and a product with a constant may shrink
    below 2 bits or into shifts. So the encoder's Requant counts only with chD >= 2 (its mult
    ROM has chD rows), the MAC only with K·chD >= 2 weight rows and pixel_bits >= 2, the
    Sequencer's Requant always (its parameter ROM has a row per output chunk of every pass).
    Every build measured so far used 3·P + 1 (the extra one forms the Sequencer's membrane
    address), so the bound is tight up to that one and the constant case.
    """
    cfg, P = prog.cfg, prog.P
    per_lane = 1                                                          # Sequencer Requant
    per_lane += int(cfg.patch_dim * prog.chD >= 2 and cfg.pixel_bits >= 2)  # encoder MAC
    per_lane += int(prog.chD >= 2)                                        # encoder Requant
    return per_lane * P
