"""AdderTree (hw/adder_tree.py) in simulation against quant.contract.spike_linear.

A masked tree is the spike-driven linear unit's sum: ``spike_linear(mask, x)``; an unmasked
tree is ``spike_linear(ones, x)``; popcount is ``spike_linear(bits, ones)``. Each design gets
random inputs with random valid gaps plus the edge cases (all zero, all one / all max, all min:
the widest sum), and the measured latency must equal the documented ``tree_latency``.
"""

import numpy as np
import pytest

from quant.contract import signed_range, spike_linear
from sim import runner
from sim.program import Program, fields

adder_tree = pytest.importorskip("hw.adder_tree", reason="hw/adder_tree.py has not landed yet")

# (n_inputs, width, register_every, popcount, masked): odd sizes (a lone odd input per level),
# every register spacing, the three modes.
CONFIGS = [
    (1, 4, 1, False, False),
    (7, 4, 0, False, True),
    (13, 8, 1, False, True),
    (16, 3, 2, False, False),
    (33, 1, 3, True, False),
]


def _design(sim, n, width, k, popcount, masked, fault=None):
    return runner.build(lambda: adder_tree.AdderTree(n, width, k, popcount=popcount, masked=masked, fault=fault),
                        name=f"adder_tree_n{n}_w{width}_k{k}_{'pop' if popcount else 'sum'}{'_m' if masked else ''}"
                             + (f"_{fault}" if fault else ""),
                        sim=sim, key=(n, width, k, popcount, masked, fault))


def _stimulus(rng, n, width, popcount, masked, count):
    lo, hi = signed_range(width)
    rows, masks = [], []
    edge = [np.zeros(n, np.int64), np.full(n, 1 if popcount else hi), np.full(n, 1 if popcount else lo)]
    for x in edge:
        rows.append(x)
        masks.append(np.ones(n, np.int64))
    if masked:
        rows.append(np.full(n, lo))
        masks.append(np.zeros(n, np.int64))  # everything masked off: must be exactly 0
    for _ in range(count):
        rows.append(rng.integers(0, 2, n) if popcount else rng.integers(lo, hi + 1, n))
        masks.append(rng.integers(0, 2, n))
    return rows, masks


def _expected(row, mask, popcount, masked):
    if popcount:
        return int(spike_linear(row[None, :], np.ones((len(row), 1), np.int64))[0, 0])
    s = mask if masked else np.ones_like(row)
    return int(spike_linear(s[None, :], row[:, None])[0, 0])


def _run(sim, seed, waves, cfg, fault=None, count=60):
    n, width, k, popcount, masked = cfg
    design = _design(sim, n, width, k, popcount, masked, fault)
    rng = np.random.default_rng(seed)
    rows, masks = _stimulus(rng, n, width, popcount, masked, count)
    prog = Program().init(i_valid=0)
    prog.monitor("out", valid="o_valid", ports=["sum"])
    prog.mark("start")
    in_cycles, cycle = [], 0
    for row, mask in zip(rows, masks):
        while rng.random() < 0.3:  # a bubble: the pipeline must not invent an output
            prog.set(i_valid=0).tick()
            cycle += 1
        word = sum(int(b) << i for i, b in enumerate(row)) if popcount else fields(row)
        ports = {"i_valid": 1, "inputs": word}
        if masked:
            ports["mask"] = sum(int(b) << i for i, b in enumerate(mask))
        prog.set(**ports).tick()
        in_cycles.append(cycle)
        cycle += 1
    prog.set(i_valid=0).tick(adder_tree.tree_latency(n, k) + 4)
    seen = prog.run(design, seed=seed, tag=f"random{'-' + fault if fault else ''}", waves=waves)
    return design, rows, masks, in_cycles, seen


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"n{c[0]}w{c[1]}k{c[2]}{'pop' if c[3] else ''}{'m' if c[4] else ''}")
def test_adder_tree(sim, seed, waves, cfg):
    n, width, k, popcount, masked = cfg
    design, rows, masks, in_cycles, seen = _run(sim, seed, waves, cfg)
    assert seen.passed, seen.failure_text()
    got = [o["sum"] for o in seen.monitor("out")]
    assert len(got) == len(rows), f"{len(got)} outputs for {len(rows)} valid inputs (seed {seed})"
    for i, (row, mask) in enumerate(zip(rows, masks)):
        want = _expected(row, mask, popcount, masked)
        assert got[i] == want, f"{design.name} item {i}: expected {want} got {got[i]} (inputs {row.tolist()}, " \
                               f"mask {mask.tolist()}, seed {seed})"
    start = seen.mark("start")
    lat = {c - (start + ic) for c, ic in zip(seen.monitor_cycles("out"), in_cycles)}
    assert lat == {adder_tree.tree_latency(n, k)}, f"measured latencies {sorted(lat)}, documented " \
                                                   f"{adder_tree.tree_latency(n, k)}"


def test_tree_input_fault_is_caught(sim, seed):
    """The test-only fault drops the last input: the same comparison must see it."""
    cfg = (7, 4, 0, False, True)
    design, rows, masks, _, seen = _run(sim, seed, False, cfg, fault="tree_input", count=20)
    assert seen.passed, seen.failure_text()
    got = [o["sum"] for o in seen.monitor("out")]
    wrong = [i for i, (r, m) in enumerate(zip(rows, masks)) if got[i] != _expected(r, m, False, True)]
    assert wrong, "the faulty tree matched the contract on every input: the bench has no teeth"
