"""Cycles of the Sequencer's schedule: the exact model of docs/hardware.md section 3.2.

`image_cycles(prog, rec, b)` is the number Top reports in its result's ``cycles`` field for one
image (pixels streamed back to back), split by part. It re-states the Sequencer FSM state by
state from a `hw.sequencer.Program` (passes, chunks, token groups) and, for an event-driven
design, the golden model's spike record of the image (the inputs each token group visits).
``python -m bench latency`` checks it against Verilator's count on every image it runs, so a
change to the FSM that this model does not follow fails there.

Used by ``python -m bench latency`` (per-pass check), ``python -m bench hw`` (printed beside the
measured cycles) and ``docs/figures/hardware_tables.py`` (the tables of docs/hardware.md).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from hw.attention import FIRE_LATENCY, count_latency
from hw.encoder import STFEncoder
from hw.readout import Readout
from hw.spike_linear import ACC_OVERHEAD, visits
from hw.sequencer import DRAIN_DEPTH, ENC, HEAD, KV, Program

__all__ = ["pass_sources", "flush_cycles", "pass_cycles", "visited_inputs", "image_cycles"]


def pass_sources(cfg) -> dict[str, str]:
    """Spike-driven (LIN/HEAD) pass -> the golden record key of its input plane, by Program pass
    name: what the event-driven skip looks at."""
    src = {}
    for l in range(cfg.blocks):
        p = f"b{l}."
        src[p + "qkv"] = "enc" if l == 0 else p + "in"
        src[p + "o"] = p + "attn"
        src[p + "fc1"] = p + "mlp_in"
        src[p + "fc2"] = p + "fc1"
    src["head"] = "head"
    return src


def flush_cycles(prog: Program) -> int:
    """FLUSH: long enough for both the LIF drain and the Readout (its latency + 1)."""
    return max(DRAIN_DEPTH, Readout.accumulate_latency(prog.TL, prog.hw.tree_register_every) + 1)


def pass_cycles(prog: Program, ps, visited: Callable[[int], int]) -> int:
    """Cycles of one pass at one timestep. `visited(g)`: the cycles of inputs SpikeLinear takes
    per chunk for token group g (the v of docs/hardware.md 3.2: the most inputs one weight
    bank visits)."""
    N, flush = prog.cfg.tokens, flush_cycles(prog)
    if ps.kind == ENC:
        return 1 + N * prog.chD + flush                                  # BEGIN, ENC, FLUSH
    if ps.kind == KV:
        count = count_latency(1, prog.hw.tree_register_every)
        return 1 + N + (count + 1) + FIRE_LATENCY                       # BEGIN, COUNT, CWAIT, FIRE
    nch = len(ps.chunks)
    TL, G = prog.group_lanes(ps), prog.pass_groups(ps)                   # per-token head: 1, N
    if ps.kind == HEAD:
        total = 1 + flush                                                # BEGIN, FLUSH
        for g in range(G):
            v = visited(g)
            total += TL + 2                                              # LOAD, LOADW, LOADW2
            total += nch * (1 + v + ACC_OVERHEAD + 1) + (nch - 1)        # START, ACC, DRAIN; HWAIT
        return total
    # LIN: BEGIN; per group LOAD, LOADW, LOADW2, START and ACC up to the first chunk's `done`, each
    # later chunk starting as its predecessor drains and done max(v + 6, TL) after it (SpikeLinear
    # holds `done` until the drain buffer is free); the drain engine drains the group's last
    # chunk while the next group loads (O: GWAIT, TL + DRAIN_DEPTH, first) or, after the last
    # group, during FLUSH (DRAIN_DEPTH) and the next pass.
    total = 1 + DRAIN_DEPTH
    for g in range(G):
        v = visited(g)
        total += TL + 2 + (1 + v + ACC_OVERHEAD) + (nch - 1) * max(v + ACC_OVERHEAD + 1, TL)
        if ps.masked and g < G - 1:
            total += TL + DRAIN_DEPTH                                    # GWAIT (O pass)
    return total


def visited_inputs(prog: Program, ps, rec: dict | None, b: int, t: int, g: int) -> int:
    """Cycles of inputs of pass `ps` for token group g at timestep t of image b. With one weight
    bank: all n_in for a dense design (or without a record), else the inputs on which some token
    of the group spikes. With B banks, the most of those in one residue class of the input index
    mod B (`hw.spike_linear.visits`; which class a bank serves depends on the chunk's first row,
    the most per class does not)."""
    B = prog.hw.input_banks
    if not prog.hw.event_driven or rec is None:
        return visits(None, ps.n_in, B)
    N, TL = prog.cfg.tokens, prog.group_lanes(ps)
    s = np.asarray(rec[pass_sources(prog.cfg)[ps.name]][b, t, g * TL:min(N, (g + 1) * TL), :ps.n_in])
    return visits(s.any(axis=0), ps.n_in, B)


def image_cycles(prog: Program, rec: dict | None = None, b: int = 0) -> dict[str, int]:
    """Cycles Top reports for image b (pixels streamed back to back), by part, plus "total".

    rec: golden.forward record (event-driven: visited inputs = OR of the group's spikes);
    None or a dense design: every input is visited.
    """
    cfg = prog.cfg
    N, T, C = cfg.tokens, cfg.timesteps, cfg.classes
    n_pix = cfg.image_shape[0] * cfg.image_shape[1] * cfg.image_shape[2]
    # EMBED: STFEncoder.latency_e (one MAC step a cycle, then its MAC_DEPTH pipeline, Requant
    # and `done`; sim/test_encoder.py checks it exactly)
    embed = N * prog.chD * cfg.patch_dim + STFEncoder.MAC_DEPTH + STFEncoder.REQUANT_LATENCY + 1
    parts = {"pixels": n_pix, "start": 1, "embed": embed}
    for ps in prog.passes:
        parts[ps.name] = 0
    for t in range(T):
        for ps in prog.passes:
            parts[ps.name] += pass_cycles(prog, ps, lambda g, ps=ps, t=t: visited_inputs(prog, ps, rec, b, t, g))
    parts["t_next"] = T
    parts["argmax"] = Readout.argmax_latency(C)  # ceil(log2 C) + 1
    parts["total"] = sum(parts.values())
    return parts
