"""Shift-add multipliers in logic (LUT4 + carry chains), the alternative to the MULT18 blocks.

Why: Yosys maps ``*`` onto a MULT18X18D with its registers bypassed, which nextpnr-ecp5 times
as a combinational A/B -> P path (``MULT18X18D_REGS_NONE``); with the routing into and out of
the multiplier columns every product through one was a 14 to 15 ns register-to-register path
on the 85F default (e9bf161, `python -m hw.build --detailed-timing`). A product written as a
sum of shifted, gated copies of one operand is never mapped to a MULT18 by Yosys and can be
split over pipeline stages. (The "dsp" default now instantiates the block with its own
registers instead, hw.dsp; this module is the "lut" alternative.)

`partial_sums(a, b, groups)` forms ``a * b`` as `groups` partial sums (each the gated shifts of
`a` for a run of the bits of `b`, the sign bit of a signed `b` subtracted), so that
``sum(partial_sums(a, b, g)) == a * b`` exactly for every a, b; the caller registers them and
adds them in the next stage.
"""

from __future__ import annotations

from amaranth.hdl import Mux, Value, signed

__all__ = ["MULTIPLIERS", "partial_sums"]

#: HardwareConfig.multipliers: "dsp" (`*`, Yosys maps it to MULT18X18D) or "lut" (this module).
MULTIPLIERS = ("dsp", "lut")


def _tree(terms):
    while len(terms) > 1:
        nxt = [terms[i] + terms[i + 1] for i in range(0, len(terms) - 1, 2)]
        if len(terms) % 2:
            nxt.append(terms[-1])
        terms = nxt
    return terms[0]


def partial_sums(a: Value, b: Value, groups: int) -> list[Value]:
    """``a * b`` (either signed or unsigned) as `groups` values whose sum is the product.

    Bit i of `b` contributes ``a << i`` when set (minus that for the sign bit of a signed `b`);
    the bits are split into `groups` runs of consecutive bits, each summed by a balanced add
    tree (ceil(log2(run)) adder levels). Widths grow as Amaranth's arithmetic does, so nothing
    is truncated.
    """
    n = len(b)
    if n == 0:
        return [a * 0]
    groups = max(1, min(groups, n))
    b_signed = b.shape().signed
    terms = []
    for i in range(n):
        shifted = a.as_signed() << i if a.shape().signed else a << i
        term = Mux(b[i], shifted, 0)
        terms.append((i, term))
    per = -(-n // groups)
    out = []
    for g in range(0, n, per):
        run = []
        for i, term in terms[g:g + per]:
            if b_signed and i == n - 1:
                run.append(-term)
            else:
                run.append(term)
        out.append(_tree(run))
    return out
