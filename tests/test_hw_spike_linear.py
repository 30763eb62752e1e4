"""SpikeLinear against quant.contract.spike_linear: every token lane, chunk, mode; cycle counts."""

import numpy as np
import pytest

from hw.common import ceil_div, lowest_set_index, pack
from hw.spike_linear import ACC_OVERHEAD, SpikeLinear, pack_matrix, visits
from quant.contract import signed_range, spike_linear
from tests.hw_util import lanes_of, raw, run_sim, seed_for, set_raw


def _run(dut, jobs, writes=(), solo=(), keep=()):
    """jobs: list of (spikes [TL, n_in_max], base, n_in); returns (acc per job [TL, P], cycles).
    solo: indices of jobs loaded as the per-token head does: lane 0 only, with `load_solo`.
    keep: indices of jobs started without `drain` (the head pass): the drain buffer must then
    stay put. Every job checks that acc stays final until the next start; every other job
    checks the drain: `drained` holds lane k in cycle done + 1 + k."""
    TL, P = dut.token_lanes, dut.lanes
    results, cycles = [], []

    def acc_now(ctx):
        return lanes_of(raw(ctx, dut.acc), dut.acc_bits, TL * P).reshape(TL, P)

    def drained_now(ctx):
        return lanes_of(raw(ctx, dut.drained), dut.acc_bits, P)

    async def bench(ctx):
        for addr, word in writes:
            ctx.set(dut.w_en, 1)
            ctx.set(dut.w_addr, addr)
            ctx.set(dut.w_data, word)
            await ctx.tick()
        if writes:
            ctx.set(dut.w_en, 0)
        for j, (spikes, base, n_in) in enumerate(jobs):
            for k in range(1 if j in solo else TL):
                ctx.set(dut.load_en, 1)
                ctx.set(dut.load_solo, int(j in solo))
                ctx.set(dut.load_lane, k)
                ctx.set(dut.load_row, pack(spikes[k], 1))
                await ctx.tick()
            ctx.set(dut.load_en, 0)
            ctx.set(dut.load_solo, 0)
            ctx.set(dut.start, 1)
            ctx.set(dut.base, base)
            ctx.set(dut.n_in, n_in)
            ctx.set(dut.drain, int(j not in keep))
            await ctx.tick()
            ctx.set(dut.start, 0)
            ctx.set(dut.drain, 0)
            n = 1
            while not ctx.get(dut.done):
                await ctx.tick()
                n += 1
            cycles.append(n)
            acc = acc_now(ctx)
            results.append(acc)
            before = drained_now(ctx)
            for k in range(TL + 2):
                await ctx.tick()
                np.testing.assert_array_equal(acc_now(ctx), acc, err_msg=f"job {j}: acc changed after done")
                if j in keep:
                    np.testing.assert_array_equal(drained_now(ctx), before, err_msg=f"job {j}: drained without drain")
                elif k < TL:
                    np.testing.assert_array_equal(drained_now(ctx), acc[k], err_msg=f"job {j}: lane {k} at done + {k + 1}")

    run_sim(dut, bench)
    return results, cycles


def _setup(rng, n_in, n_out, P, wb):
    lo, hi = signed_range(wb)
    W = rng.integers(lo, hi + 1, (n_in, n_out))
    W[0, :] = lo  # the widest negative sum
    W[1, :] = hi
    return W


@pytest.mark.parametrize("event_driven", [True, False])
@pytest.mark.parametrize("n_in,n_out,P,TL,wb,banks", [(7, 5, 2, 3, 4, 1), (16, 8, 8, 1, 2, 1), (12, 10, 4, 4, 8, 1),
                                                      (7, 5, 2, 3, 4, 2), (12, 10, 4, 4, 8, 2), (9, 9, 4, 2, 3, 4)])
def test_spike_linear_matches_contract(n_in, n_out, P, TL, wb, banks, event_driven):
    rng = np.random.default_rng(seed_for(f"spike_linear_{n_in}_{n_out}_{P}_{TL}_{wb}_{banks}_{event_driven}"))
    W = _setup(rng, n_in, n_out, P, wb)
    rows = pack_matrix(W, P, wb)
    dut = SpikeLinear(n_in, P, TL, wb, rows, event_driven=event_driven, banks=banks)
    chunks = ceil_div(n_out, P)
    patterns = [np.zeros((TL, n_in), np.int64), np.ones((TL, n_in), np.int64)]
    patterns += [(rng.random((TL, n_in)) < p).astype(np.int64) for p in (0.1, 0.3, 0.6)]
    jobs, want = [], []
    for s in patterns:
        for ch in range(chunks):
            jobs.append((s, ch * n_in, n_in))
            Wc = np.zeros((n_in, P), np.int64)
            blk = W[:, ch * P:(ch + 1) * P]
            Wc[:, :blk.shape[1]] = blk
            want.append(spike_linear(s, Wc))
    # a shorter fan-in than the spike vector: bits at and above n_in are ignored
    s = np.ones((TL, n_in), np.int64)
    jobs.append((s, 0, n_in - 2))
    Wc = np.zeros((n_in, P), np.int64)
    Wc[: n_in - 2, : min(P, n_out)] = W[: n_in - 2, :P]
    want.append(spike_linear(s, Wc))
    got, cycles = _run(dut, jobs, keep={1})
    for i, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_array_equal(g, w, err_msg=f"job {i}")
    for (s, base, nin), c in zip(jobs, cycles):
        union = np.any(s[:, :nin], axis=0)
        # per bank b the inputs i with (base + i) mod B == b, one per cycle: the busiest bank
        per_bank = [sum(1 for i in range(nin) if (union[i] or not event_driven) and (base + i) % banks == b)
                    for b in range(banks)]
        assert visits(union if event_driven else None, nin, banks) == max(per_bank)
        assert c == max(per_bank) + ACC_OVERHEAD == max(per_bank) + 5, (c, per_bank, base)


@pytest.mark.parametrize("event_driven", [True, False])
@pytest.mark.parametrize("TL,banks", [(16, 2), (9, 1), (6, 1), (3, 2)])
def test_spike_linear_overlaps_a_drain_with_the_next_accumulation(TL, banks, event_driven):
    # The Sequencer's LIN schedule: each chunk starts the cycle after the previous `done`, while
    # that chunk drains. `done` must come max(v + ACC_OVERHEAD + 1, TL) after the previous one
    # (held until the drain buffer is free), every drained lane must be the previous chunk's
    # and every accumulation exact. Sparse chunks (v = 0, 1) make the hold bite.
    rng = np.random.default_rng(seed_for(f"spike_linear_overlap_{TL}_{banks}_{event_driven}"))
    n_in, P, wb = 10, 3, 4
    chunks = 4
    W = _setup(rng, n_in, chunks * P, P, wb)
    dut = SpikeLinear(n_in, P, TL, wb, pack_matrix(W, P, wb), event_driven=event_driven, banks=banks)
    groups = [np.zeros((TL, n_in), np.int64), (rng.random((TL, n_in)) < 0.5).astype(np.int64)]
    one = np.zeros((TL, n_in), np.int64)
    one[TL - 1, 3] = 1  # v = 1: one visited input
    groups.append(one)
    groups.append(np.ones((TL, n_in), np.int64))
    seen = []  # per group: (done cycles, accs, drained lanes per chunk)

    def acc_now(ctx):
        return lanes_of(raw(ctx, dut.acc), dut.acc_bits, TL * P).reshape(TL, P)

    async def bench(ctx):
        cycle = 0
        for s in groups:
            for k in range(TL):
                ctx.set(dut.load_en, 1)
                ctx.set(dut.load_lane, k)
                ctx.set(dut.load_row, pack(s[k], 1))
                await ctx.tick()
                cycle += 1
            ctx.set(dut.load_en, 0)
            dones, accs, drains = [], [], {}
            started, start_next = 0, True
            drain_at = {}  # cycle -> (chunk, lane)
            while len(dones) < chunks or any(c >= cycle for c in drain_at):
                if start_next and started < chunks:
                    ctx.set(dut.start, 1)
                    ctx.set(dut.base, started * n_in)
                    ctx.set(dut.n_in, n_in)
                    ctx.set(dut.drain, 1)
                    started += 1
                else:
                    ctx.set(dut.start, 0)
                start_next = False
                if cycle in drain_at:
                    c, k = drain_at[cycle]
                    drains.setdefault(c, []).append(lanes_of(raw(ctx, dut.drained), dut.acc_bits, P))
                if ctx.get(dut.done):
                    dones.append(cycle)
                    accs.append(acc_now(ctx))
                    for k in range(TL):
                        drain_at[cycle + 1 + k] = (len(dones) - 1, k)
                    start_next = True
                await ctx.tick()
                cycle += 1
            ctx.set(dut.start, 0)
            seen.append((dones, accs, drains))

    run_sim(dut, bench)
    for gi, (s, (dones, accs, drains)) in enumerate(zip(groups, seen)):
        union = np.any(s, axis=0)
        v = visits(union if event_driven else None, n_in, banks)
        for c in range(chunks):
            want = spike_linear(s, W[:, c * P:(c + 1) * P])
            np.testing.assert_array_equal(accs[c], want, err_msg=f"group {gi} chunk {c}")
            np.testing.assert_array_equal(np.array(drains[c]), want, err_msg=f"group {gi} chunk {c} drain")
        gaps = np.diff(dones).tolist()
        assert gaps == [max(v + ACC_OVERHEAD + 1, TL)] * (chunks - 1), (gi, v, gaps)


@pytest.mark.parametrize("event_driven", [True, False])
def test_spike_linear_solo_load_zeroes_the_other_lanes(event_driven):
    # After a full load of all-one lanes, a solo load of lane 0 must leave lanes 1.. at zero:
    # their accumulators stay 0 and (event-driven) only lane 0's spikes are visited.
    rng = np.random.default_rng(seed_for(f"spike_linear_solo_{event_driven}"))
    n_in, P, TL, wb = 9, 4, 3, 4
    W = _setup(rng, n_in, P, P, wb)
    dut = SpikeLinear(n_in, P, TL, wb, pack_matrix(W, P, wb), event_driven=event_driven)
    full = np.ones((TL, n_in), np.int64)
    one = np.zeros((TL, n_in), np.int64)
    one[0] = (rng.random(n_in) < 0.4).astype(np.int64)
    one[0, 2] = 1
    got, cycles = _run(dut, [(full, 0, n_in), (one, 0, n_in), (full, 0, n_in)], solo={1})
    np.testing.assert_array_equal(got[0], spike_linear(full, W))
    np.testing.assert_array_equal(got[1], spike_linear(one, W))  # rows 1.. of `one` are zero
    assert not got[1][1:].any()
    assert cycles[1] == (int(one[0].sum()) if event_driven else n_in) + ACC_OVERHEAD
    np.testing.assert_array_equal(got[2], spike_linear(full, W))  # a normal load refills every lane


@pytest.mark.parametrize("banks", [1, 2])
def test_spike_linear_loadable_write_port(banks):
    rng = np.random.default_rng(seed_for(f"spike_linear_loadable_{banks}"))
    W0 = np.zeros((6, 4), np.int64)
    W1 = _setup(rng, 6, 4, 4, 4)
    dut = SpikeLinear(6, 4, 2, 4, pack_matrix(W0, 4, 4), loadable=True, banks=banks)
    s = (rng.random((2, 6)) < 0.5).astype(np.int64)
    s[0] = 1
    got, _ = _run(dut, [(s, 0, 6)], writes=list(enumerate(pack_matrix(W1, 4, 4))))
    np.testing.assert_array_equal(got[0], spike_linear(s, W1))


@pytest.mark.parametrize("kw,exc,msg", [
    (dict(inputs=0), ValueError, "inputs"), (dict(weight_bits=9), ValueError, "weight_bits"),
    (dict(rows=[]), ValueError, "rows"), (dict(rows=[1 << 40]), ValueError, "does not fit"),
    (dict(event_driven="yes"), TypeError, "event_driven"), (dict(banks=3), ValueError, "power of two"),
    (dict(banks=0), ValueError, "banks"),
])
def test_spike_linear_rejects_bad_parameters(kw, exc, msg):
    args = dict(inputs=4, lanes=2, token_lanes=2, weight_bits=4, rows=[0, 0])
    args.update(kw)
    rows = args.pop("rows")
    with pytest.raises(exc, match=msg):
        SpikeLinear(args["inputs"], args["lanes"], args["token_lanes"], args["weight_bits"], rows,
                    event_driven=args.get("event_driven", True), banks=args.get("banks", 1))


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 16, 17, 63, 64, 65, 100])
def test_lowest_set_index_is_the_lowest_set_bit(n):
    """The event-driven issue's priority tree: every single bit, all-ones, and random vectors
    (at any length, padded groups included); `any` is 0 only for the zero vector."""
    from amaranth.hdl import Module, Signal

    rng = np.random.default_rng(seed_for(f"lowest_set_index{n}"))
    m = Module()
    vec = Signal(n)
    nz, idx = lowest_set_index(vec)
    o_nz, o_idx = Signal(), Signal(len(idx))
    m.d.comb += [o_nz.eq(nz), o_idx.eq(idx)]
    assert len(idx) == max(1, (n - 1).bit_length())
    values = [0, (1 << n) - 1] + [1 << i for i in range(n)]
    values += [int("".join(map(str, rng.integers(0, 2, n))), 2) for _ in range(100)]

    async def bench(ctx):
        for v in values:
            ctx.set(vec, v)
            assert ctx.get(o_nz) == (v != 0), v
            if v:
                assert ctx.get(o_idx) == (v & -v).bit_length() - 1, v

    run_sim(m, bench)
