"""`Requant`: P lanes of the contract's requantization ``((acc * mult) >> shift) + bias``."""

from __future__ import annotations

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hw.common import check_int

__all__ = ["Requant", "requant_out_bits"]


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
    registered). Throughput one row per cycle. Bias is registered with the product.

    Resources: `lanes` multipliers acc_bits x mult_bits (one MULT18 each while both are <= 18
    bits), `lanes` adders of the output width, 2*lanes registers.
    """

    def __init__(self, lanes: int, acc_bits: int, mult_bits: int, bias_bits: int, shift: int):
        owner = "Requant"
        check_int(owner, "lanes", lanes, 1, 4096)
        check_int(owner, "acc_bits", acc_bits, 2, 48)
        check_int(owner, "mult_bits", mult_bits, 2, 36)
        check_int(owner, "bias_bits", bias_bits, 2, 48)
        check_int(owner, "shift", shift, 0, 62)
        self.lanes, self.shift, self.acc_bits, self.mult_bits = lanes, shift, acc_bits, mult_bits
        self.out_bits = requant_out_bits(acc_bits, mult_bits, bias_bits, shift)
        self.latency = 2
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
        valid1 = Signal()
        bias1 = Signal.like(self.i_bias)
        m.d.sync += [valid1.eq(self.i_valid), bias1.eq(self.i_bias), self.o_valid.eq(valid1)]
        for j in range(self.lanes):
            prod = Signal(signed(self.acc_bits + self.mult_bits), name=f"prod{j}")
            m.d.sync += prod.eq(self.i_acc[j] * self.i_mult[j])
            m.d.sync += self.o_y[j].eq((prod >> self.shift) + bias1[j])
        return m
