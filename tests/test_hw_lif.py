"""LIFArray against quant.contract.lif_step: random and boundary inputs, clear, faults."""

import numpy as np
import pytest

from hw.common import pack
from hw.lif import LIF_LATENCY, LIFArray
from quant.contract import lif_step
from tests.hw_util import raw, run_sim, seed_for, set_raw


def spaced(ops, gap=LIF_LATENCY):
    """`ops` with idle cycles inserted so that updates of one row are >= `gap` cycles apart
    (LIFArray's hazard rule). A clear forgets the rows in flight: updates issued before it write
    nothing, so the next update of the row may follow at once (which tests exactly that)."""
    out, last = [], {}
    for op in ops:
        if op[0] == "clear":
            last.clear()
        elif op[0] == "upd" and op[1] in last:
            out += [("idle",)] * max(0, last[op[1]] + gap - len(out))
        if op[0] == "upd":
            last[op[1]] = len(out)
        out.append(op)
    return out


def test_spaced_inserts_exactly_the_idles_the_hazard_rule_needs():
    u0, u1 = ("upd", 0, [0], [1]), ("upd", 1, [0], [1])
    assert spaced([u0, u0], 4) == [u0, ("idle",), ("idle",), ("idle",), u0]
    assert spaced([u0, u1, u0], 4) == [u0, u1, ("idle",), ("idle",), u0]
    assert spaced([u0, ("clear",), u0], 4) == [u0, ("clear",), u0]


def _run(dut, ops):
    """ops: list of ("upd", addr, x[P], theta[P]) | ("clear",) | ("idle",); returns the spikes of
    every update in order. Idles are inserted where the hazard rule needs them (`spaced`)."""
    P = dut.lanes
    got = []

    async def bench(ctx):
        for op in spaced(ops) + [("idle",)] * (LIF_LATENCY + 1):
            ctx.set(dut.clear, 0)
            ctx.set(dut.i_valid, 0)
            if op[0] == "upd":
                _, addr, x, th = op
                ctx.set(dut.i_valid, 1)
                ctx.set(dut.i_addr, addr)
                set_raw(ctx, dut.i_x, pack(x, dut.x_bits))
                set_raw(ctx, dut.i_theta, pack(th, dut.theta_bits))
            elif op[0] == "clear":
                ctx.set(dut.clear, 1)
            if ctx.get(dut.o_valid):
                s = ctx.get(dut.o_s)
                got.append([(s >> j) & 1 for j in range(P)])
            await ctx.tick()

    run_sim(dut, bench)
    return np.array(got, np.int64)


def _model(depth, P, ops, fault=None):
    v = np.zeros((depth, P), np.int64)
    out = []
    for op in ops:
        if op[0] == "clear":
            v[:] = 0
        elif op[0] == "upd":
            _, a, x, th = op
            s, nv = lif_step(v[a], np.asarray(x, np.int64), np.asarray(th, np.int64))
            if fault == "leak_round":
                w = v[a] + np.asarray(x)
                nv = np.where(s == 1, 0, np.trunc(w / 2).astype(np.int64))
            v[a] = nv
            out.append(s.astype(np.int64))
    return np.array(out, np.int64)


def _random_ops(rng, depth, P, x_bits, theta_bits, count):
    xmax = (1 << (x_bits - 1)) - 1
    tmax = (1 << theta_bits) - 1
    ops = []
    for i in range(count):
        r = rng.random()
        if r < 0.04:
            ops.append(("clear",))
        elif r < 0.12:
            ops.append(("idle",))
        else:
            a = int(rng.integers(0, depth)) if rng.random() < 0.7 or not ops else (
                ops[-1][1] if ops[-1][0] == "upd" else 0)  # back-to-back same row too
            x = rng.integers(-xmax, xmax + 1, P)
            if rng.random() < 0.2:
                x = rng.choice([-xmax, xmax, 0, -1, 1], P)
            th = rng.integers(1, tmax + 1, P)
            ops.append(("upd", a, x, th))
    return ops


@pytest.mark.parametrize("P,depth,x_bits,theta_bits", [(1, 1, 4, 3), (4, 5, 8, 6), (7, 3, 13, 12)])
def test_lif_matches_contract(P, depth, x_bits, theta_bits):
    rng = np.random.default_rng(seed_for(f"lif_{P}_{depth}_{x_bits}"))
    dut = LIFArray(P, depth, x_bits, theta_bits)
    ops = _random_ops(rng, depth, P, x_bits, theta_bits, 150)
    np.testing.assert_array_equal(_run(dut, ops), _model(depth, P, ops))


def test_lif_threshold_boundary_and_reset():
    # w == theta fires, w == theta - 1 does not; the fired neuron restarts from 0, the other
    # keeps floor(w/2); negative odd w floors (-3 -> -2).
    dut = LIFArray(3, 1, 6, 5)
    ops = [("upd", 0, [5, 4, -3], [5, 5, 5]), ("upd", 0, [0, 0, 0], [1, 1, 1]),
           ("upd", 0, [1, 0, 2], [1, 2, 1])]
    got = _run(dut, ops)
    np.testing.assert_array_equal(got, _model(1, 3, ops))
    np.testing.assert_array_equal(got, [[1, 0, 0], [0, 1, 0], [1, 0, 1]])


def test_lif_clear_zeroes_every_row():
    dut = LIFArray(2, 4, 6, 5)
    ops = [("upd", a, [7, -9], [20, 20]) for a in range(4)] + [("clear",)] + \
          [("upd", a, [0, 0], [1, 1]) for a in range(4)]
    got = _run(dut, ops)
    np.testing.assert_array_equal(got, _model(4, 2, ops))
    assert got[4:].sum() == 0


def test_lif_clear_drops_the_writes_in_flight():
    # Updates issued 1..3 cycles before a clear are still in the pipeline when it comes: their
    # spikes come out, but their membranes must not be written back over the cleared rows.
    dut = LIFArray(1, 4, 6, 5)
    for before in range(1, LIF_LATENCY):
        ops = [("upd", a, [9], [20]) for a in range(before)] + [("clear",)] + \
              [("upd", a, [0], [1]) for a in range(before)]
        got = _run(dut, ops)
        np.testing.assert_array_equal(got, _model(4, 1, ops))
        assert got.sum() == 0, f"{before} updates in flight at the clear left a membrane behind"


def test_lif_latency_is_the_documented_constant():
    dut = LIFArray(2, 3, 6, 5)
    seen = []

    async def bench(ctx):
        for cyc in range(LIF_LATENCY + 3):
            ctx.set(dut.i_valid, cyc == 0)
            ctx.set(dut.i_addr, 2)
            if ctx.get(dut.o_valid):
                seen.append((cyc, ctx.get(dut.o_addr)))
            await ctx.tick()

    run_sim(dut, bench)
    assert dut.latency == LIF_LATENCY == 4
    assert seen == [(LIF_LATENCY, 2)]


def test_lif_fault_leak_round_changes_a_spike():
    ops = [("upd", 0, [-3], [1]), ("upd", 0, [2], [1])]  # floor(-3/2) = -2: -2+2=0 no spike; trunc: -1+2=1 spike
    good = _run(LIFArray(1, 1, 5, 4), ops)
    bad = _run(LIFArray(1, 1, 5, 4, fault="leak_round"), ops)
    np.testing.assert_array_equal(good, [[0], [0]])
    np.testing.assert_array_equal(bad, _model(1, 1, ops, "leak_round"))
    assert bad[1, 0] == 1


@pytest.mark.parametrize("args,exc,msg", [
    ((0, 1, 4, 3), ValueError, "lanes"), ((1, 0, 4, 3), ValueError, "depth"),
    ((1, 1, 1, 3), ValueError, "x_bits"), ((1, 1, 4, "3"), TypeError, "theta_bits"),
])
def test_lif_rejects_bad_parameters(args, exc, msg):
    with pytest.raises(exc, match=msg):
        LIFArray(*args)
