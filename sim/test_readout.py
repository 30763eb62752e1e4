"""Readout (hw/readout.py) in simulation against quant.golden and quant.contract.argmax_lowest.

Per image: ``clear``, then for every timestep t, every group of `token_lanes` head-spike rows
(the last group zero-padded where TL does not divide N) and every chunk of `lanes` classes (the
last chunk zero-padded where P does not divide C), the TL partial logit vectors the head's
SpikeLinear would leave (``spike_linear(S_head[t, n], W_head[:, chunk])``) on ``i_acc``, with
``i_add_bias`` on the first group of each t only (the bias once per t), in the Sequencer's order
with random idle cycles; then ``start`` exactly `latency` cycles after the last ``i_valid``.

The images come from two sources: the golden model itself (``quant.golden.forward`` on a random
artifact of a small ModelConfig with the Readout's sizes: its ``head`` spikes drive the bench and
its ``logits`` and ``pred`` are the expectation) and crafted cases with the same formula
(``counts[t] @ W + b`` summed over t): all-zero spikes (equal logits: the tie goes to class 0),
all-one spikes with every weight and bias at the most negative / most positive value (the widest
logit, ``T*(N*D*2^(wb-1) + 2^(bias_bits-1))``), ties between two classes that are the maximum
(the lower one wins), a maximum on the last class, and random ones.

Checked: the logits exactly at ``done``; ``cls`` = argmax_lowest; ``done`` a one-cycle pulse
exactly ``Readout.argmax_latency(C)`` = ceil(log2 C) + 1 cycles after ``start``; the logits in
the cycles around the last ``i_valid`` and right after ``clear`` equal the sum of exactly those items issued at least `latency` cycles
earlier (the documented accumulate latency, tree latency + 2); ``cls`` held until the next
argmax. The ``tree_input`` fault (drops token lane TL - 1) must be caught.
"""

import numpy as np
import pytest

from hw.adder_tree import tree_latency
from hw.common import sbits
from model.config import ModelConfig
from quant.artifact import random_artifact
from quant.contract import argmax_lowest, signed_range, spike_linear, widths
from quant.golden import forward
from sim import runner
from sim.program import Program, array, fields

readout = pytest.importorskip("hw.readout", reason="hw/readout.py has not landed yet")

# (model config fields, lanes P, token_lanes TL, register_every)
CONFIGS = [
    # N 9, D 6, C 5: TL 4 does not divide N, P 2 does not divide C
    (dict(image_shape=(6, 6, 1), patch=2, dim=6, classes=5, timesteps=3, weight_bits=4, bias_bits=6), 2, 4, 1),
    # N 4, D 4, C 4: TL 2 and P 4 divide; 8-bit weights; combinational trees
    (dict(image_shape=(4, 4, 1), patch=2, dim=4, classes=4, timesteps=2, weight_bits=8, bias_bits=12), 4, 2, 0),
    # one class and one token per cycle
    (dict(image_shape=(4, 2, 1), patch=2, dim=3, classes=3, timesteps=2, weight_bits=3, bias_bits=4), 1, 1, 2),
]


def _model_cfg(cfg):
    return ModelConfig(name="readout_bench", mlp_ratio=1, **cfg[0])


def _cfg_id(c):
    m = _model_cfg(c)
    return f"c{m.classes}n{m.tokens}d{m.dim}t{m.timesteps}w{m.weight_bits}_p{c[1]}tl{c[2]}k{c[3]}"


def _widths(cfg):
    m = _model_cfg(cfg)
    acc_bits = sbits(m.dim * (1 << (m.weight_bits - 1)))  # SpikeLinear's acc_bits for D inputs
    return m, acc_bits, widths(m).logit_bits


def _design(sim, cfg, fault=None):
    m, acc_bits, logit_bits = _widths(cfg)
    _, P, TL, k = cfg
    return runner.build(
        lambda: readout.Readout(m.classes, P, TL, acc_bits, m.bias_bits, logit_bits, register_every=k, fault=fault),
        name=f"readout_{_cfg_id(cfg)}" + (f"_{fault}" if fault else ""), sim=sim, key=(repr(cfg), fault))


def _cases(rng, m):
    """[(head spikes [T, N, D], W [D, C], b [C], expected logits [C] or None, expected pred or None)]"""
    T, N, D, C = m.timesteps, m.tokens, m.dim, m.classes
    wlo, whi = signed_range(m.weight_bits)
    blo, bhi = signed_range(m.bias_bits)
    cases = []
    # the golden model end to end: its head spikes in, its logits and class out
    art = random_artifact(m, int(rng.integers(1 << 30)))
    images = rng.integers(0, m.pixel_max + 1, (3, *m.image_shape[:2]))
    rec = forward(art, images)
    for i in range(len(images)):
        cases.append((rec["head"][i], art.params["head.weight"], art.params["head.bias"], rec["logits"][i],
                      int(rec["pred"][i])))
    zeros, ones = np.zeros((T, N, D), np.uint8), np.ones((T, N, D), np.uint8)
    cases.append((zeros, rng.integers(wlo, whi + 1, (D, C)), np.full(C, int(rng.integers(blo, bhi + 1))), None, None))
    cases.append((ones, np.full((D, C), wlo), np.full(C, blo), None, None))  # widest negative, all tied
    cases.append((ones, np.full((D, C), whi), np.full(C, bhi), None, None))  # widest positive, all tied
    w = rng.integers(wlo, 1, (D, C))
    j1, j2 = sorted(rng.choice(C, 2, replace=False))
    w[:, j1] = w[:, j2] = whi
    cases.append(((rng.random((T, N, D)) < 0.5).astype(np.uint8), w, np.zeros(C, np.int64), None, None))  # tie j1, j2
    w = np.full((D, C), wlo)
    w[:, -1] = 0
    cases.append(((rng.random((T, N, D)) < 0.7).astype(np.uint8), w, np.full(C, blo), None, None))  # last class
    for _ in range(3):
        cases.append(((rng.random((T, N, D)) < rng.choice([0.1, 0.5, 0.9])).astype(np.uint8),
                      rng.integers(wlo, whi + 1, (D, C)), rng.integers(blo, bhi + 1, C), None, None))
    return cases


def _golden_logits(s, w, b):
    """quant.golden.forward's readout: logits_t = counts[t] @ W + b, summed over t."""
    counts = s.astype(np.int64).sum(axis=1)
    return (counts @ w.astype(np.int64) + b.astype(np.int64)).sum(axis=0)


def _run(sim, seed, waves, cfg, fault=None, n_cases=None):
    m, acc_bits, logit_bits = _widths(cfg)
    _, P, TL, k = cfg
    T, N, D, C = m.timesteps, m.tokens, m.dim, m.classes
    chunks = -(-C // P)
    lat = tree_latency(TL, k) + 2  # the docstring's accumulate latency
    design = _design(sim, cfg, fault)
    rng = np.random.default_rng(seed)
    cases = _cases(rng, m)[:n_cases]
    prog = Program().init(clear=0, i_valid=0, start=0, i_add_bias=0)
    prog.monitor("done", valid="done", ports=["cls"])
    zero_acc = fields(np.zeros((TL, P), np.int64))
    checks = []  # per case: [(sample index name, cycle offset from the image mark, contributions cut)]
    items_of = []
    for ci, (s, w, b, _, _) in enumerate(cases):
        wp = np.zeros((D, chunks * P), np.int64)
        wp[:, :C] = w
        bp = np.zeros(chunks * P, np.int64)
        bp[:C] = b
        prog.mark(f"img{ci}")
        prog.set(clear=1).tick().set(clear=0)
        cycle = 1  # cycles since the image mark
        items = []  # (cycle, contribution to logits [C])
        prog.sample(["logits", "cls"], name="after_clear")  # at cycle 1: all 0, cls still the last one
        cycle += 1
        for t in range(T):
            for g in range(-(-N // TL)):
                rows = np.zeros((TL, D), np.int64)
                part = s[t, g * TL:(g + 1) * TL]
                rows[:len(part)] = part
                for ch in range(chunks):
                    if rng.random() < 0.25:
                        prog.set(i_valid=0).tick()
                        cycle += 1
                    acc = spike_linear(rows, wp[:, ch * P:(ch + 1) * P])  # [TL, P]
                    add_bias = int(g == 0)
                    contrib = np.zeros(chunks * P, np.int64)
                    contrib[ch * P:(ch + 1) * P] = acc.sum(axis=0) + add_bias * bp[ch * P:(ch + 1) * P]
                    items.append((cycle, contrib[:C]))
                    prog.set(i_valid=1, i_ch=ch, i_add_bias=add_bias, i_acc=fields(acc),
                             i_bias=fields(bp[ch * P:(ch + 1) * P] if g == 0 else rng.integers(
                                 *signed_range(m.bias_bits), P)))  # the bias is ignored without i_add_bias
                    last = (t == T - 1 and g == -(-N // TL) - 1 and ch == chunks - 1)
                    if last:
                        prog.sample(["logits"], name="tail")  # the last item's own cycle
                        checks.append((ci, "tail", cycle))
                    else:
                        prog.tick()
                    cycle += 1
        prog.set(i_valid=0, i_acc=zero_acc)
        for _ in range(lat - 1):
            prog.sample(["logits"], name="tail")
            checks.append((ci, "tail", cycle))
            cycle += 1
        prog.mark(f"start{ci}")  # exactly `lat` cycles after the last i_valid
        prog.set(start=1).sample(["logits"], name="tail").set(start=0)
        checks.append((ci, "tail", cycle))
        prog.wait("done", timeout=C + 10, sample=["logits", "cls"], name="done")
        if rng.random() < 0.5:
            prog.tick(int(rng.integers(1, 3)))
        items_of.append(items)
    prog.tick(2)
    seen = prog.run(design, seed=seed, tag="random" + (f"-{fault}" if fault else ""), waves=waves)
    return design, m, cases, items_of, checks, seen, lat


def _first_error(m, cases, items_of, checks, seen, lat):
    C = m.classes
    done = seen.samples("done")
    if len(done) != len(cases):
        return f"{len(done)} done samples for {len(cases)} argmaxes"
    tails = seen.samples("tail")
    tail_i = 0
    for ci, (s, w, b, logits, pred) in enumerate(cases):
        want = _golden_logits(s, w, b)
        if logits is not None:
            assert np.array_equal(want, logits), "the bench's readout formula disagrees with quant.golden"
        want_cls = int(argmax_lowest(want)) if pred is None else pred
        got = np.array(array(done[ci]["logits"], C), np.int64)
        if not np.array_equal(got, want):
            j = int(np.argmax(got != want))
            return f"case {ci}: logit {j}: expected {want[j]} got {got[j]} (all: {want.tolist()} vs {got.tolist()})"
        if done[ci]["cls"] != want_cls:
            return f"case {ci}: class expected {want_cls} got {done[ci]['cls']} (logits {want.tolist()})"
        after = seen.samples("after_clear")[ci]
        if any(array(after["logits"], C)):
            return f"case {ci}: logits {array(after['logits'], C)} the cycle after clear, expected 0"
        prev_cls = 0 if ci == 0 else (int(argmax_lowest(_golden_logits(*cases[ci - 1][:3]))))
        if after["cls"] != prev_cls:
            return f"case {ci}: cls {after['cls']} before the argmax, expected the previous {prev_cls} held"
        for cj, _, cyc in [c for c in checks if c[0] == ci]:
            partial = sum((c for ic, c in items_of[ci] if ic <= cyc - lat), np.zeros(C, np.int64))
            g = np.array(array(tails[tail_i]["logits"], C), np.int64)
            tail_i += 1
            if not np.array_equal(g, partial):
                return (f"case {ci}: logits at cycle {cyc} of the image {g.tolist()}, expected those of the items "
                        f"issued {lat}+ cycles earlier {partial.tolist()} (documented latency {lat})")
    return None


@pytest.mark.parametrize("cfg", CONFIGS, ids=_cfg_id)
def test_readout(sim, seed, waves, cfg):
    design, m, cases, items_of, checks, seen, lat = _run(sim, seed, waves, cfg)
    assert seen.passed, seen.failure_text()
    err = _first_error(m, cases, items_of, checks, seen, lat)
    assert err is None, f"{design.name}: {err} (seed {seed})"
    starts = [seen.mark(f"start{ci}") for ci in range(len(cases))]
    got = seen.monitor_cycles("done")
    want = (m.classes - 1).bit_length() + 1
    assert readout.Readout.argmax_latency(m.classes) == want
    assert [d - s for d, s in zip(got, starts)] == [want] * len(cases) and len(got) == len(cases), \
        f"done at {[d - s for d, s in zip(got, starts)]} cycles after start ({len(got)} pulses), documented " \
        f"ceil(log2 C) + 1 = {want}, one pulse per argmax"
    # the widest logits were really reached
    lmax = widths(m).logit_max
    all_logits = [_golden_logits(*c[:3]) for c in cases]
    assert min(x.min() for x in all_logits) == -lmax


def test_tree_input_fault_is_caught(sim, seed):
    cfg = CONFIGS[0]
    design, m, cases, items_of, checks, seen, lat = _run(sim, seed, False, cfg, fault="tree_input")
    assert seen.passed, seen.failure_text()
    assert _first_error(m, cases, items_of, checks, seen, lat) is not None, \
        "the tree_input fault matched the contract on every logit: the bench has no teeth"
