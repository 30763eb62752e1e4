"""hw.cycles (the Sequencer's cycle model) and hw.resources (EBR tiling, MULT18 bound).

The model's agreement with the design itself, cycle for cycle on every image, is checked by
``python -m bench latency`` (sim/test_bench_latency.py, Verilator). These tests pin what holds
whatever the pipeline depths are: the event-driven skip counts exactly one ACC cycle per visited
input per chunk and token group, the fixed parts, and the structure of docs/hardware.md 3.2.
"""

from __future__ import annotations

import numpy as np
import pytest

from hw.cycles import flush_cycles, image_cycles, pass_cycles, pass_sources, visited_inputs
from hw.resources import ebr_count, memories, mult18_lower_bound
from hw.sequencer import DRAIN_DEPTH, HEAD, LIN, Program
from model.config import HW_PRESETS, PRESETS, HardwareConfig
from quant import golden
from quant.artifact import random_artifact

DIGITS = PRESETS["digits-tiny"]
FMNIST = PRESETS["fmnist-small"]


def record(cfg, fill: int, B: int = 1) -> dict:
    """A golden-record stand-in: every spike plane all `fill`."""
    rec = golden.forward(random_artifact(cfg, 0), np.zeros((B, *cfg.image_shape[:2]), np.int64))
    return {k: np.full_like(v, fill) for k, v in rec.items()}


def skippable(prog: Program) -> int:
    """Cycles of one image that the event-driven skip can remove, per spike-driven pass, group
    and timestep, with v = ceil(fan-in / B) the dense ACC cycles of a chunk (B weight banks: a
    dense bank visits every B-th input): HEAD all of every chunk's v; LIN all of the first
    chunk's v, and of each later chunk only what its accumulation (v + 6) exceeds the TL-cycle
    drain it overlaps: max(v + 6, TL) - max(6, TL)."""
    B, TL, total = prog.hw.input_banks, prog.TL, 0
    for ps in prog.passes:
        if ps.kind not in (LIN, HEAD):
            continue
        c, v = len(ps.chunks), -(-ps.n_in // B)
        per_group = c * v if ps.kind == HEAD else v + (c - 1) * (max(v + 6, TL) - max(6, TL))
        total += per_group * prog.pass_groups(ps)
    return prog.cfg.timesteps * total


def test_pass_sources_two_blocks():
    assert pass_sources(FMNIST) == {
        "b0.qkv": "enc", "b0.o": "b0.attn", "b0.fc1": "b0.mlp_in", "b0.fc2": "b0.fc1",
        "b1.qkv": "b1.in", "b1.o": "b1.attn", "b1.fc1": "b1.mlp_in", "b1.fc2": "b1.fc1", "head": "head"}


def test_every_spike_driven_pass_has_a_source_in_the_record():
    prog = Program(random_artifact(DIGITS, 0), HW_PRESETS["default"])
    lin = {ps.name for ps in prog.passes if ps.kind in (LIN, HEAD)}
    assert set(pass_sources(DIGITS)) == lin
    rec = record(DIGITS, 0)
    assert set(pass_sources(DIGITS).values()) <= set(rec)


@pytest.mark.parametrize("hw", ["default", "small"])
def test_fixed_parts_digits(hw):
    prog = Program(random_artifact(DIGITS, 0), HW_PRESETS[hw])
    parts = image_cycles(prog)
    # pixels 8x8, START 1, EMBED N·chD·K + 9, one T_NEXT per timestep, ARGMAX ceil(log2 C) + 1
    assert (parts["pixels"], parts["start"], parts["t_next"], parts["argmax"]) == (64, 1, 4, 5)
    assert parts["embed"] == {"default": 16 * 1 * 4 + 9, "small": 16 * 4 * 4 + 9}[hw]
    assert parts["total"] == sum(v for k, v in parts.items() if k != "total")
    assert list(parts)[3:-3] == [ps.name for ps in prog.passes]


@pytest.mark.parametrize("hw", ["default", "small"])
def test_lin_pass_formula(hw):
    """docs/hardware.md 3.2: LIN = 1 + DRAIN_DEPTH + Σ_g [TL + 2 + (v_g + 6) + (c−1)·max(v_g + 6, TL)]
    (+ (TL + DRAIN_DEPTH)·(G−1) for O): each later chunk overlaps its predecessor's drain, the
    last chunk's drain the next group's load or the pass's end."""
    prog = Program(random_artifact(DIGITS, 0), HW_PRESETS[hw])
    F, TL, G = flush_cycles(prog), prog.TL, prog.groups
    by = {ps.name: ps for ps in prog.passes}
    v = [3, 0, 7, 1][:G]
    for name, extra in (("b0.qkv", 0), ("b0.fc1", 0), ("b0.fc2", 0), ("b0.o", (TL + DRAIN_DEPTH) * (G - 1))):
        c = len(by[name].chunks)
        want = 1 + DRAIN_DEPTH + sum(TL + 2 + (vg + 6) + (c - 1) * max(vg + 6, TL) for vg in v) + extra
        assert pass_cycles(prog, by[name], lambda g: v[g]) == want, name
    c = len(by["head"].chunks)
    assert pass_cycles(prog, by["head"], lambda g: v[g]) == 1 + F + sum(TL + 2 + c * (vg + 7) + c - 1 for vg in v)


@pytest.mark.parametrize("hw", ["default", "small"])
def test_per_token_head_pass_formula(hw):
    """Readout "token": N groups of one token: HEAD = 1 + F + Σ_n [3 + c·(v_n + 7) + c − 1]."""
    assert FMNIST.readout == "token"
    prog = Program(random_artifact(FMNIST, 0), HW_PRESETS[hw])
    head = next(ps for ps in prog.passes if ps.kind == HEAD)
    assert head.per_token and prog.pass_groups(head) == FMNIST.tokens and prog.group_lanes(head) == 1
    F, c = flush_cycles(prog), len(head.chunks)
    v = [(7 * n) % 13 for n in range(FMNIST.tokens)]
    want = 1 + F + sum(3 + c * (vn + 7) + c - 1 for vn in v)
    assert pass_cycles(prog, head, lambda g: v[g]) == want
    # token n's weights follow token n-1's: N blocks of chC·D rows
    assert len(prog.weight_rows) == prog.image.segment("weights").depth
    assert prog.head_stride == c * FMNIST.dim


@pytest.mark.parametrize("cfg", [DIGITS, FMNIST], ids=lambda c: c.name)
@pytest.mark.parametrize("hw", ["default", "small"])
def test_event_driven_skip_is_exact(cfg, hw):
    art = random_artifact(cfg, 0)
    ev = Program(art, HW_PRESETS[hw])
    dn = Program(art, HW_PRESETS[hw].replace(event_driven=False))
    ones, zeros = record(cfg, 1), record(cfg, 0)
    dense = image_cycles(dn)["total"]
    assert image_cycles(dn, zeros)["total"] == dense          # a dense design ignores the record
    assert image_cycles(ev)["total"] == dense                  # no record: every input visited
    assert image_cycles(ev, ones)["total"] == dense            # every input spikes
    assert dense - image_cycles(ev, zeros)["total"] == skippable(ev)


def test_one_spike_costs_one_acc_cycle_per_chunk():
    """A single spike on input i of token n at timestep t of the enc plane: the QKV pass at t
    visits one input in n's token group, nothing else changes."""
    cfg = DIGITS
    prog = Program(random_artifact(cfg, 0), HW_PRESETS["small"])
    zeros = record(cfg, 0)
    one = {k: v.copy() for k, v in zeros.items()}
    one["enc"][0, 2, 5, 7] = 1
    qkv = next(ps for ps in prog.passes if ps.name == "b0.qkv")
    assert visited_inputs(prog, qkv, one, 0, 2, 5 // prog.TL) == 1
    assert visited_inputs(prog, qkv, one, 0, 2, 0) == 0 and visited_inputs(prog, qkv, one, 0, 1, 1) == 0
    a, b = image_cycles(prog, zeros), image_cycles(prog, one)
    assert b["b0.qkv"] - a["b0.qkv"] == len(qkv.chunks) == 12   # q, k, v x chD 4
    assert {k: b[k] - a[k] for k in a if k not in ("b0.qkv", "total")} == {k: 0 for k in a if k not in ("b0.qkv", "total")}


def test_visited_is_the_union_over_the_token_group():
    cfg = DIGITS
    prog = Program(random_artifact(cfg, 0), HW_PRESETS["small"])  # TL 4
    rec = record(cfg, 0, B=2)
    rec["b0.mlp_in"][1, 3, 4, [0, 1]] = 1   # tokens 4..7 form group 1
    rec["b0.mlp_in"][1, 3, 7, [1, 2]] = 1
    rec["b0.mlp_in"][0, 3, 4, 9] = 1        # another image
    fc1 = next(ps for ps in prog.passes if ps.name == "b0.fc1")
    assert [visited_inputs(prog, fc1, rec, 1, 3, g) for g in range(4)] == [0, 3, 0, 0]
    assert [visited_inputs(prog, fc1, rec, 0, 3, g) for g in range(4)] == [0, 1, 0, 0]


def test_ebr_count_tiling():
    # docs/hardware.md 4.2, digits-tiny / default
    assert ebr_count(288, 128) == 4     # 512x36 x 4
    assert ebr_count(128, 512) == 15    # 512x36: 15 wide
    assert ebr_count(1088, 32) == 3     # 2048x9 x 4 = 4, 1024x18 x 2 x 2 = 4, 512x36 x 3 = 3
    assert ebr_count(16384, 1) == 1 and ebr_count(16385, 1) == 2


def test_memories_digits_default():
    prog = Program(random_artifact(DIGITS, 0), HW_PRESETS["default"])
    mem = {name: (d, w) for name, d, w in memories(prog)}
    # 288 weight rows in two banks (row r in bank r mod 2)
    assert mem["spike_linear.weights bank 0"] == mem["spike_linear.weights bank 1"] == (144, 32 * 4)
    assert mem["enc.pixels"] == (64, 5)
    assert mem["plane_fc1"] == (16, 64)
    assert len(memories(prog)) == 5 + 7 + 9
    small = {name: (d, w) for name, d, w in memories(Program(random_artifact(DIGITS, 0), HW_PRESETS["small"]))}
    assert small["spike_linear.weights"] == (1088, 8 * 4)


@pytest.mark.parametrize("lanes,token_lanes,bound", [(8, 4, 24), (16, 8, 48), (32, 16, 64), (64, 16, 128),
                                                     (1, 1, 3)])
def test_mult18_lower_bound_digits(lanes, token_lanes, bound):
    """3 per lane while the encoder's mult ROM has >= 2 rows (chD = ceil(32 / P) >= 2); at
    chD = 1 that ROM is a constant and only the MAC and the Sequencer's Requant count."""
    prog = Program(random_artifact(DIGITS, 0), HardwareConfig(lanes=lanes, token_lanes=token_lanes))
    assert mult18_lower_bound(prog) == bound


def test_two_banks_visit_the_busiest_residue_class():
    """HW "default" reads two weight rows a cycle: row r from bank r mod 2. The ACC cycles of a
    chunk are the most spiking inputs of one parity, whatever the chunk's first row."""
    cfg = DIGITS
    prog = Program(random_artifact(cfg, 0), HW_PRESETS["default"])
    assert prog.hw.input_banks == 2 and prog.groups == 1
    rec = record(cfg, 0)
    rec["b0.mlp_in"][0, 1, 0, [0, 2, 4]] = 1     # three even inputs on token 0
    rec["b0.mlp_in"][0, 1, 9, [1, 4]] = 1        # one odd input (4 again) on token 9
    fc1 = next(ps for ps in prog.passes if ps.name == "b0.fc1")
    assert {c.wbase % 2 for c in fc1.chunks} == {0}
    assert visited_inputs(prog, fc1, rec, 0, 1, 0) == 3
    rec["b0.mlp_in"][0, 1, 3, [3, 5, 7]] = 1     # now four odd inputs
    assert visited_inputs(prog, fc1, rec, 0, 1, 0) == 4
    assert visited_inputs(prog, fc1, None, 0, 1, 0) == -(-fc1.n_in // 2) == cfg.dim // 2
