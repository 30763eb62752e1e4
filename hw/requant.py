"""`Requant`: P lanes of the contract's requantization ``((acc * mult) >> shift) + bias``."""

from __future__ import annotations

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hw.common import check_int, replicas
from hw.dsp import RegisteredMultiplier
from hw.multiplier import MULTIPLIERS, partial_sums

__all__ = ["Requant", "requant_out_bits", "LUT_RUN_BITS"]

#: Bits of the multiplier per registered partial sum with multipliers="lut" (a 2-level add tree).
LUT_RUN_BITS = 4


def requant_out_bits(acc_bits: int, mult_bits: int, bias_bits: int, shift: int) -> int:
    """Signed bits of ``((acc*mult) >> shift) + bias`` for full-range inputs of those widths."""
    prod_bits = acc_bits + mult_bits
    return max(prod_bits - shift, 1, bias_bits) + 1


class Requant(wiring.Component):
    """``y[j] = ((acc[j] * mult[j]) >>> shift) + bias[j]`` (quant.contract.requantize), P lanes.

    Parameters
    ----------
    lanes : int >= 1
    acc_bits, mult_bits, bias_bits : signed widths of the inputs (>= 2)
    shift : int >= 0         the config's requant_shift (a constant: a wire shift, no logic).
    input_register : bool    register acc, mult and bias first (one more cycle): the multiplier
                             blocks sit in fixed columns, and a memory's output routed straight
                             into them was a 9.5 ns net on the 85F (the Sequencer's drain).
    multipliers : "dsp" or "lut" "dsp": ``acc * mult`` in a hw.dsp.RegisteredMultiplier per lane
                             (on ECP5 one MULT18X18D whose own registers hold the operands
                             and the product); "lut": the product's partial sums over runs of
                             4 bits of `mult` registered in place of the product, added with
                             the shift and bias in the next stage (hw.multiplier). Same latency
                             and result.

    Ports
    -----
    i_valid : In(1)
    i_acc : In(ArrayLayout(signed(acc_bits), lanes))
    i_mult : In(ArrayLayout(signed(mult_bits), lanes))
    i_bias : In(ArrayLayout(signed(bias_bits), lanes))
    o_valid : Out(1)
    o_y : Out(ArrayLayout(signed(requant_out_bits(...)), lanes))
        Exact: |acc*mult| < 2^(acc_bits+mult_bits-2), shifted and biased it fits the output.

    Latency: 2 cycles (the product is registered, the MULT18 output register; then shift + add,
    registered), 3 with `input_register` (acc and mult registered first: the MULT18's input
    registers). Throughput one row per cycle. Bias is registered with the product.

    Resources: `lanes` multipliers acc_bits x mult_bits (one MULT18 each while both are <= 18
    bits), `lanes` adders of the output width, 2*lanes registers (+ the inputs with
    `input_register`).
    """

    def __init__(self, lanes: int, acc_bits: int, mult_bits: int, bias_bits: int, shift: int, *,
                 input_register: bool = False, multipliers: str = "dsp"):
        owner = "Requant"
        check_int(owner, "lanes", lanes, 1, 4096)
        check_int(owner, "acc_bits", acc_bits, 2, 48)
        check_int(owner, "mult_bits", mult_bits, 2, 36)
        check_int(owner, "bias_bits", bias_bits, 2, 48)
        check_int(owner, "shift", shift, 0, 62)
        if multipliers not in MULTIPLIERS:
            raise ValueError(f"{owner}: multipliers must be one of {MULTIPLIERS}, not {multipliers!r}")
        self.multipliers = multipliers
        self.lanes, self.shift, self.acc_bits, self.mult_bits = lanes, shift, acc_bits, mult_bits
        self.out_bits = requant_out_bits(acc_bits, mult_bits, bias_bits, shift)
        self.input_register = bool(input_register)
        self.latency = 3 if self.input_register else 2
        super().__init__({
            "i_valid": In(1),
            "i_acc": In(data.ArrayLayout(signed(acc_bits), lanes)),
            "i_mult": In(data.ArrayLayout(signed(mult_bits), lanes)),
            "i_bias": In(data.ArrayLayout(signed(bias_bits), lanes)),
            "o_valid": Out(1),
            "o_y": Out(data.ArrayLayout(signed(self.out_bits), lanes)),
        })

    def elaborate(self, platform):
        m = Module()
        valid, bias = self.i_valid, self.i_bias
        # the product: "dsp" a RegisteredMultiplier per lane, whose registers (acc, mult, then the
        # product) are the MULT18X18D's own on ECP5 (hw.dsp); "lut" registered partial sums
        dsp = self.multipliers == "dsp"
        if self.input_register:
            # Kept registers (hw.common.replicas, one copy each): Yosys's opt_merge otherwise
            # folds them into equal flip-flops elsewhere (a ROM column equal to a threshold
            # column), and that shared flip-flop, placed between its loads, reached the MULT18
            # through 9.9 ns of routing (61.31 MHz, 85F, heap placer). With "dsp" the operands'
            # registers are the RegisteredMultiplier's (kept alike in fabric).
            valid0 = Signal(name="valid0")
            m.d.sync += valid0.eq(valid)
            (bias0,) = replicas(m, bias, 1, "rq_bias")
            valid, bias = valid0, bias0
            if not dsp:
                (acc0,) = replicas(m, self.i_acc, 1, "rq_acc")
                (mult0,) = replicas(m, self.i_mult, 1, "rq_mult")
        valid1 = Signal()
        bias1 = Signal.like(self.i_bias, reset_less=True)
        m.d.sync += [valid1.eq(valid), bias1.eq(bias), self.o_valid.eq(valid1)]
        y = Signal.like(self.o_y, name="y", reset_less=True)  # data: no reset net (see LIFArray)
        m.d.comb += self.o_y.eq(y)
        for j in range(self.lanes):
            if dsp:
                mul = RegisteredMultiplier(signed(self.acc_bits), signed(self.mult_bits),
                                           input_registers=self.input_register, name=f"prod{j}")
                m.submodules[f"mul{j}"] = mul
                m.d.comb += [mul.a.eq(self.i_acc[j]), mul.b.eq(self.i_mult[j])]
                prod = mul.p
            else:
                acc, mult = (acc0, mult0) if self.input_register else (self.i_acc, self.i_mult)
                parts = []
                for g, ps in enumerate(partial_sums(acc[j], mult[j], -(-self.mult_bits // LUT_RUN_BITS))):
                    part = Signal(signed(self.acc_bits + self.mult_bits), name=f"prod{j}_{g}", reset_less=True)
                    m.d.sync += part.eq(ps)  # |each part| <= |the product's range|
                    parts.append(part)
                prod = sum(parts[1:], parts[0])
            m.d.sync += y[j].eq((prod >> self.shift) + bias1[j])
        return m
