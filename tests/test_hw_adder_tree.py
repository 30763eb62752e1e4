"""AdderTree against quant.contract.spike_linear: sums, masked sums, popcounts, pipelining."""

import numpy as np
import pytest

from hw.adder_tree import AdderTree, tree_latency
from hw.common import pack
from quant.contract import signed_range, spike_linear
from tests.hw_util import raw, run_sim, seed_for, set_raw

CONFIGS = [  # (n_inputs, width, register_every, popcount, masked)
    (1, 4, 1, False, False),
    (5, 4, 0, False, False),
    (7, 4, 1, False, True),
    (16, 3, 2, False, True),
    (13, 8, 3, False, False),
    (33, 1, 2, True, False),
    (8, 1, 0, True, False),
]


def _vectors(rng, n, width, popcount, count=40):
    lo, hi = signed_range(width)
    vecs = [np.zeros(n, np.int64), np.full(n, 1 if popcount else hi), np.full(n, 1 if popcount else lo)]
    masks = [np.ones(n, np.int64)] * 3 + [np.zeros(n, np.int64)]
    vecs.append(np.full(n, 1 if popcount else lo))
    for _ in range(count):
        vecs.append(rng.integers(0, 2, n) if popcount else rng.integers(lo, hi + 1, n))
        masks.append(rng.integers(0, 2, n))
    return vecs, masks


def _simulate(dut, vecs, masks, gaps):
    n, lat = dut.n_inputs, dut.latency
    got = []

    async def bench(ctx):
        schedule = []
        for v, mk, gap in zip(vecs, masks, gaps):
            schedule += [None] * gap + [(v, mk)]
        schedule += [None] * (lat + 2)
        for item in schedule:
            if item is None:
                ctx.set(dut.i_valid, 0)
            else:
                v, mk = item
                ctx.set(dut.i_valid, 1)
                set_raw(ctx, dut.inputs, pack(v, 1) if dut.popcount else pack(v, dut.width))
                if dut.masked:
                    ctx.set(dut.mask, pack(mk, 1))
            if ctx.get(dut.o_valid):
                got.append(ctx.get(dut.sum))
            await ctx.tick()

    run_sim(dut, bench)
    return got


def _expected(vecs, masks, popcount, masked):
    out = []
    for v, mk in zip(vecs, masks):
        if popcount:
            out.append(int(spike_linear(v[None], np.ones((len(v), 1), np.int64))[0, 0]))
        else:
            s = mk if masked else np.ones_like(v)
            out.append(int(spike_linear(s[None], v[:, None])[0, 0]))
    return out


@pytest.mark.parametrize("n,width,k,popcount,masked", CONFIGS)
def test_adder_tree_matches_contract(n, width, k, popcount, masked):
    rng = np.random.default_rng(seed_for(f"adder_tree_{n}_{width}_{k}_{popcount}_{masked}"))
    dut = AdderTree(n, width, k, popcount=popcount, masked=masked)
    assert dut.latency == tree_latency(n, k)
    vecs, masks = _vectors(rng, n, width, popcount)
    gaps = rng.integers(0, 2, len(vecs)) * rng.integers(0, 3, len(vecs))  # bubbles too
    assert _simulate(dut, vecs, masks, gaps) == _expected(vecs, masks, popcount, masked)


def test_adder_tree_latency_and_widths():
    assert [tree_latency(n, 2) for n in (1, 2, 3, 4, 5, 16, 17)] == [0, 1, 1, 1, 2, 2, 3]
    assert tree_latency(64, 0) == 0
    t = AdderTree(16, 4, 2)
    assert t.sum.shape().width == 4 + 4 and t.sum.shape().signed
    p = AdderTree(33, popcount=True)
    assert p.sum.shape().width == 7 and not p.sum.shape().signed  # holds 33


def test_adder_tree_fault_drops_an_input():
    dut = AdderTree(4, 4, 1, fault="tree_input")
    vecs = [np.array([1, 2, 3, 4])]
    assert _simulate(dut, vecs, [np.ones(4, np.int64)], [0]) == [6]


@pytest.mark.parametrize("kw,exc,msg", [
    (dict(n_inputs=0), ValueError, "n_inputs"),
    (dict(n_inputs=2.5), TypeError, "n_inputs"),
    (dict(n_inputs=4, width=0), ValueError, "width"),
    (dict(n_inputs=4, register_every=-1), ValueError, "register_every"),
    (dict(n_inputs=4, popcount=1), TypeError, "popcount"),
    (dict(n_inputs=4, fault="nope"), ValueError, "fault"),
])
def test_adder_tree_rejects_bad_parameters(kw, exc, msg):
    with pytest.raises(exc, match=msg):
        AdderTree(**kw)
