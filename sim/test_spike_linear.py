"""SpikeLinear (hw/spike_linear.py) in simulation against quant.contract.spike_linear.

Two weight matrices share one memory, as the Sequencer's layers do: M1 with the full fan-in
(``n_in == inputs``) and M2 with a shorter one, whose spike vectors carry random bits at and
above ``n_in`` that must be ignored. Tokens go through in groups of `token_lanes` (the last
group is partial where TL does not divide the token count; its missing lanes are loaded with
zeros), every output chunk of `lanes` channels in turn (the last chunk zero-padded where P does
not divide the outputs). Stimulus: all-zero and all-one spike rows, random densities, single
spikes, against weights that hold the extremes (a column of the most negative weight and one of
the most positive: an all-one row gives the widest accumulator, ``inputs * -2^(wb-1)``). The
loadable design also rewrites its whole memory through ``w_en`` with seeded random weights.

Checked per job: every accumulator exactly; ``done`` exactly ``v + 5`` cycles after ``start``
(v = the most inputs one weight bank visits, ``hw.spike_linear.visits``: ceil(n_in / banks)
dense, event-driven those where any token lane spikes: the zero-skipping is visible in the
cycle count); ``busy`` exactly from the cycle after ``start``
until ``done``; ``acc`` held after ``done``; with ``drain`` the drain buffer takes the token
lanes at ``done`` and moves down one a cycle: ``drained`` is lane 0 in cycle done + 1 and lane 1
in done + 2 (still lane 0 with one token lane). The back-to-back schedule (a start in done + 1
while the buffer drains) is tests/test_hw_spike_linear.py's.
The weight memory is baked, so the matrices come from a fixed seed (one build per config); the
spikes (and the loaded weights) come from the session seed.
"""

import hashlib

import numpy as np
import pytest

from quant.contract import signed_range, spike_linear
from sim import runner
from sim.program import Program, array

sl_mod = pytest.importorskip("hw.spike_linear", reason="hw/spike_linear.py has not landed yet")

# (inputs, lanes P, token_lanes TL, weight_bits, event_driven, loadable,
#  tokens, M1 outputs, M2 fan-in, M2 outputs, weight banks)
CONFIGS = [
    (12, 4, 4, 4, True, False, 10, 8, 9, 6, 2),   # TL does not divide 10 tokens; P divides M1, not M2;
                                                  # two banks; M2's second chunk starts at odd row 33
    (7, 3, 3, 2, False, False, 6, 5, 4, 3, 4),    # dense scan; TL divides 6 tokens; P divides M2, not M1
    (9, 5, 1, 8, True, True, 3, 5, 6, 7, 1),      # one token lane, 8-bit weights, write port
]


def _cfg_id(c):
    return (f"in{c[0]}p{c[1]}tl{c[2]}w{c[3]}{'ev' if c[4] else 'dense'}{'_load' if c[5] else ''}"
            f"_n{c[6]}_b{c[10]}")


def _matrices(cfg, rng):
    """M1 [inputs, o1], M2 [n2, o2] with the extremes of weight_bits in fixed columns and rows."""
    inputs, P, TL, wb, _, _, _, o1, n2, o2 = cfg[:10]
    lo, hi = signed_range(wb)
    w1 = rng.integers(lo, hi + 1, (inputs, o1))
    w1[:, 0] = lo  # all-one spikes: the widest negative accumulator
    w1[:, 1] = hi  # and the widest positive one
    w1[0, 2:] = lo
    w2 = rng.integers(lo, hi + 1, (n2, o2))
    w2[:, -1] = lo
    w2[1, :] = hi
    return w1.astype(np.int64), w2.astype(np.int64)


def _rows(cfg, w1, w2):
    P, wb = cfg[1], cfg[3]
    r1 = sl_mod.pack_matrix(w1, P, wb)
    return r1 + sl_mod.pack_matrix(w2, P, wb), len(r1)


def _design(sim, cfg):
    inputs, P, TL, wb, event, loadable = cfg[:6]
    w1, w2 = _matrices(cfg, np.random.default_rng(1000 + sum(cfg[:4])))  # baked: fixed seed
    rows, base2 = _rows(cfg, w1, w2)
    digest = hashlib.sha256(repr(rows).encode()).hexdigest()[:12]
    banks = cfg[10]
    design = runner.build(lambda: sl_mod.SpikeLinear(inputs, P, TL, wb, rows, event_driven=event, loadable=loadable,
                                                     banks=banks),
                          name=f"spike_linear_{_cfg_id(cfg)}", sim=sim, key=(cfg, digest))
    return design, w1, w2, base2


def _patterns(rng, n_tok, n_in, inputs):
    """Spike matrices [n_tok, inputs] (bits >= n_in are junk the design must ignore)."""
    def junk():
        return rng.integers(0, 2, (n_tok, inputs))

    pats = []
    for core in (np.zeros((n_tok, n_in), np.int64), np.ones((n_tok, n_in), np.int64),
                 np.eye(n_tok, n_in, k=int(rng.integers(0, n_in)), dtype=np.int64)):
        pats.append(core)
    for p in (0.1, 0.5, 0.9):
        pats.append((rng.random((n_tok, n_in)) < p).astype(np.int64))
    out = []
    for core in pats:
        s = junk()
        s[:, :n_in] = core
        out.append(s)
    return out


def _padded(w, P):
    n_in, n_out = w.shape
    chunks = -(-n_out // P)
    out = np.zeros((n_in, chunks * P), np.int64)
    out[:, :n_out] = w
    return out, chunks


def _run(sim, seed, waves, cfg):
    inputs, P, TL, wb, event, loadable, n_tok = cfg[:7]
    design, w1, w2, base2 = _design(sim, cfg)
    rng = np.random.default_rng(seed)
    prog = Program().init(load_en=0, start=0, drain=0, **({"w_en": 0} if loadable else {}))
    prog.monitor("busy", valid="busy", ports=[])
    jobs = []  # (expected acc [TL, P], visited v, mark name)

    def layer(w, base, n_in, patterns, tag):
        wp, chunks = _padded(w, P)
        for pi, s in enumerate(patterns):
            for g in range(-(-n_tok // TL)):
                lanes = np.zeros((TL, inputs), np.int64)
                part = s[g * TL:(g + 1) * TL]
                lanes[:len(part)] = part
                for k in range(TL):
                    prog.set(load_en=1, load_lane=k, load_row=sum(int(b) << i for i, b in enumerate(lanes[k]))).tick()
                prog.set(load_en=0)
                used = lanes[:, :n_in]
                v = sl_mod.visits(np.any(used, axis=0) if event else None, n_in, cfg[10])
                for ch in range(chunks):
                    if rng.random() < 0.3:
                        prog.tick(int(rng.integers(1, 3)))
                    want = spike_linear(used, wp[:, ch * P:(ch + 1) * P])
                    name = f"{tag}{pi}g{g}c{ch}"
                    prog.mark(name)
                    prog.set(start=1, base=base + ch * n_in, n_in=n_in, drain=1).tick().set(start=0, drain=0)
                    prog.wait("done", timeout=inputs + 10, sample=["acc"], name="done")
                    # the drain the Sequencer reads: drained = lane 0 at done + 1, lane 1 at done + 2
                    # (a wait continues after the edge of its cycle; a sample lets its cycle pass)
                    prog.sample(["acc", "drained"], name="held").sample(["drained"], name="shifted")
                    jobs.append((want, v, name))

    n2 = cfg[8]
    layer(w1, 0, inputs, _patterns(rng, n_tok, inputs, inputs), "a")
    layer(w2, base2, n2, _patterns(rng, n_tok, n2, inputs), "b")
    if loadable:  # rewrite the whole memory with seeded random weights, then use them
        lo, hi = signed_range(wb)
        v1 = rng.integers(lo, hi + 1, w1.shape)
        v1[:, 0] = lo
        v2 = rng.integers(lo, hi + 1, w2.shape)
        v2[:, 0] = hi
        rows, _ = _rows(cfg, v1, v2)
        for addr, word in enumerate(rows):
            prog.set(w_en=1, w_addr=addr, w_data=word).tick()
        prog.set(w_en=0)
        layer(v1, 0, inputs, _patterns(rng, n_tok, inputs, inputs)[:4], "la")
        layer(v2, base2, n2, _patterns(rng, n_tok, n2, inputs)[:4], "lb")
    prog.tick(3)
    seen = prog.run(design, seed=seed, tag="random", waves=waves)
    return design, jobs, seen


@pytest.mark.parametrize("cfg", CONFIGS, ids=_cfg_id)
def test_spike_linear(sim, seed, waves, cfg):
    inputs, P, TL = cfg[:3]
    design, jobs, seen = _run(sim, seed, waves, cfg)
    assert seen.passed, seen.failure_text()
    done, done_cyc = seen.samples("done"), seen.sample_cycles("done")
    shifted = seen.samples("shifted")
    assert len(done) == len(jobs), f"{len(done)} done pulses for {len(jobs)} jobs (seed {seed})"
    busy_want = set()
    for i, (want, v, name) in enumerate(jobs):
        got = np.array([array(done[i]["acc"], P, f"{k}.") for k in range(TL)], np.int64)
        bad = np.argwhere(got != want)
        if len(bad):
            k, j = bad[0]
            pytest.fail(f"{design.name} job {name}: token lane {k} channel {j}: expected {want[k, j]} got {got[k, j]} "
                        f"(seed {seed})")
        h = seen.samples("held")[i]
        held = np.array([array(h["acc"], P, f"{k}.") for k in range(TL)], np.int64)
        assert np.array_equal(held, want), f"{design.name} job {name}: acc changed after done (seed {seed})"
        d0 = np.array(array(h["drained"], P), np.int64)
        assert np.array_equal(d0, want[0]), f"{design.name} job {name}: drained {d0.tolist()} at done + 1, " \
                                            f"expected lane 0 {want[0].tolist()} (seed {seed})"
        d1 = np.array(array(shifted[i]["drained"], P), np.int64)
        want_d1 = want[1] if TL > 1 else want[0]
        assert np.array_equal(d1, want_d1), f"{design.name} job {name}: drained {d1.tolist()} at done + 2, " \
                                            f"expected {want_d1.tolist()} (seed {seed})"
        start = seen.mark(name)
        lat = v + sl_mod.ACC_OVERHEAD  # the docstring: v + 5
        assert done_cyc[i] - start == lat, f"{design.name} job {name}: done {done_cyc[i] - start} cycles after " \
                                           f"start, documented v + 5 = {lat} (seed {seed})"
        busy_want |= set(range(start + 1, start + lat))
    busy = set(seen.monitor_cycles("busy"))
    assert busy == busy_want, f"busy in cycles {sorted(busy ^ busy_want)[:5]} differs from 'after start until the cycle before done'"
    # the edge cases really reached the accumulator's bounds
    lo, hi = signed_range(cfg[3])
    all_want = np.stack([w for w, _, _ in jobs])
    assert all_want.min() == inputs * lo, "no job reached the widest negative accumulator"
    assert all_want.max() == inputs * hi, "no job reached the widest positive accumulator"
