"""Requant against quant.contract.requantize, including the extreme products."""

import numpy as np
import pytest

from hw.common import pack
from hw.requant import Requant, requant_out_bits
from quant.contract import requantize, signed_range
from tests.hw_util import lanes_of, raw, run_sim, seed_for, set_raw


def run_requant(dut, rows, platform=None):
    """Feed `rows` of (acc, mult, bias) lane arrays back to back; returns (outputs, the cycle
    index of each o_valid)."""
    got, first = [], []

    async def bench(ctx):
        for i in range(len(rows) + 4):
            ctx.set(dut.i_valid, i < len(rows))
            if i < len(rows):
                a, mu, b = rows[i]
                set_raw(ctx, dut.i_acc, pack(a, dut.acc_bits))
                set_raw(ctx, dut.i_mult, pack(mu, dut.mult_bits))
                set_raw(ctx, dut.i_bias, pack(b, len(dut.i_bias[0])))
            if ctx.get(dut.o_valid):
                first.append(i)
                got.append(lanes_of(raw(ctx, dut.o_y), dut.out_bits, dut.lanes))
            await ctx.tick()

    run_sim(dut, bench, platform=platform)
    return got, first


@pytest.mark.parametrize("multipliers", ["dsp", "lut"])
@pytest.mark.parametrize("input_register", [False, True])
@pytest.mark.parametrize("P,acc_bits,mult_bits,bias_bits,shift", [(3, 10, 12, 12, 8), (2, 16, 18, 14, 0), (4, 6, 4, 3, 11),
                                                                  (2, 5, 3, 4, 1)])
def test_requant_matches_contract(P, acc_bits, mult_bits, bias_bits, shift, input_register, multipliers):
    rng = np.random.default_rng(seed_for(f"requant_{acc_bits}_{mult_bits}_{shift}"))
    dut = Requant(P, acc_bits, mult_bits, bias_bits, shift, input_register=input_register,
                  multipliers=multipliers)
    ranges = [signed_range(b) for b in (acc_bits, mult_bits, bias_bits)]
    rows = [tuple(np.full(P, r[0]) for r in ranges), tuple(np.full(P, r[1]) for r in ranges),
            (np.full(P, ranges[0][0]), np.full(P, ranges[1][1]), np.full(P, ranges[2][0]))]
    rows += [tuple(rng.integers(lo, hi + 1, P) for lo, hi in ranges) for _ in range(60)]
    got, first = run_requant(dut, rows)
    want = [requantize(a, mu, shift, b) for a, mu, b in rows]
    np.testing.assert_array_equal(np.array(got), np.array(want))
    assert dut.latency == (3 if input_register else 2)
    assert first[0] == dut.latency and first == list(range(dut.latency, dut.latency + len(rows)))


def test_requant_out_bits_and_errors():
    assert requant_out_bits(10, 12, 12, 8) == 15
    with pytest.raises(ValueError, match="shift"):
        Requant(1, 8, 8, 8, -1)
    with pytest.raises(TypeError, match="lanes"):
        Requant(None, 8, 8, 8, 1)
    with pytest.raises(ValueError, match="multipliers must be one of"):
        Requant(1, 8, 8, 8, 1, multipliers="mult18")
