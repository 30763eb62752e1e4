"""`SpikeDrivenAttention`: the V1 spike-driven self-attention (AND, popcount, kv LIF, mask)."""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Mux, Module, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hw.adder_tree import AdderTree, tree_latency
from hw.common import (BROADCAST_LATENCY, baked_read_port, broadcast, ceil_div, check_bool, check_fault, check_int,
                       pack, replicas, sbits, ubits)
from hw.lif import LIF_LATENCY, LIFArray
from hw.spike_linear import LANES_PER_REPLICA

__all__ = ["FIRE_LATENCY", "SpikeDrivenAttention", "count_latency", "theta_rows"]

FIRE_LATENCY = LIF_LATENCY + 2  # `fire` -> `kv_valid`: theta read, the LIF, kv register


def count_latency(rows: int, register_every: int) -> int:
    """Cycles from the last `i_valid` to final counts: the input register (the K AND V rows), the
    popcount tree, the count register."""
    return tree_latency(rows, register_every) + 2


def theta_rows(theta, theta_bits: int) -> list[int]:
    """The kv threshold memory's rows: one per block, D lanes of `theta_bits` (its init, and the
    ``attn.theta`` segment of `hw.param_image.ParamImage`)."""
    return [pack(r, theta_bits) for r in np.asarray(theta)]


class SpikeDrivenAttention(wiring.Component):
    """quant.contract.sdsa_v1 for one timestep, one block at a time.

    ``count[c] = sum over tokens n of K[n, c] AND V[n, c]`` (per-channel popcount),
    ``kv = LIF_attn(count)`` with the block's own per-channel thresholds and membranes (one
    membrane row per block), ``attn[n, c] = Q[n, c] AND kv[c]``.

    Parameters
    ----------
    dim : int >= 1              D, channels.
    tokens : int >= 1           N, tokens summed (bounds the count: N).
    theta : array [blocks, D]   the kv thresholds of every block (kv.theta), baked in a memory
                                (a constant when one block and not loadable: hw.common.ConstantReadPort).
    theta_bits : int            unsigned bits of a threshold.
    rows : int >= 1             K/V token rows accepted per cycle (a popcount tree of `rows`
                                inputs per channel).
    register_every : int        the popcount trees' pipeline spacing (HardwareConfig).
    fault : test-only defect passed to the trees ("tree_input") and the LIF ("leak_round").
    loadable : bool             add a write port to the theta memory (``w_*`` below).

    Ports
    -----
    clear : In(1)               all kv membranes 0 (start of an image).
    count_clear : In(1)         restart the counts (start of a block's attention at a timestep):
                                they count the tree outputs from the cycle after `count_clear`
                                on (its kept copies, one per LANES_PER_REPLICA channels, clear
                                them then: the FSM decode reaching all D counters was the 54 MHz
                                critical path). An `i_valid` in the `count_clear` cycle itself
                                is not counted.
    i_valid : In(1), i_k, i_v : In(ArrayLayout(unsigned(D), rows))
        Add the AND of `rows` token rows to the counts.
    fire : In(1), block : In(range(blocks))
        Run the kv LIF of `block` on the counts (the counts must be final: issue `fire` at
        least ``count_latency`` cycles after the last ``i_valid``).
    kv_valid : Out(1)           pulse, ``fire_latency`` cycles after `fire`; `kv` is then valid
    kv : Out(unsigned(D))       and held until the next fire.
    q : In(unsigned(D)), attn : Out(unsigned(D))   attn = q AND kv (combinational).
    w_en : In(1), w_addr : In(range(blocks)), w_data : In(unsigned(D*theta_bits))   loadable only
        Write the thresholds of block `w_addr` (while no kv LIF fires).

    Latency: count_latency = tree latency + 2 (input register, tree, count); fire_latency =
    LIF_LATENCY + 2 = 6 (theta read, LIF, kv register).

    Resources: D x rows registers of K AND V, D popcount trees of `rows` inputs, D counters of
    ubits(N) bits, ceil(D / 8) kept copies of `i_valid`, a `broadcast` tree of `count_clear`
    (ceil(D / 8) copies behind ceil(D / 64)), a D-lane LIF
    (membranes blocks x D x x_bits), the theta memory blocks x D*theta_bits bits.
    """

    def __init__(self, dim: int, tokens: int, theta, theta_bits: int, *, rows: int = 1,
                 register_every: int = 0, fault=None, loadable: bool = False):
        owner = "SpikeDrivenAttention"
        check_int(owner, "dim", dim, 1, 4096)
        check_int(owner, "tokens", tokens, 1, 1 << 16)
        check_int(owner, "theta_bits", theta_bits, 1, 32)
        check_int(owner, "rows", rows, 1, tokens)
        check_int(owner, "register_every", register_every, 0, 64)
        check_fault(owner, fault)
        check_bool(owner, "loadable", loadable)
        self.loadable = loadable
        theta = np.asarray(theta)
        if theta.ndim != 2 or theta.shape[1] != dim or theta.shape[0] < 1:
            raise ValueError(f"{owner}: theta must have shape [blocks >= 1, {dim}], got {theta.shape}")
        if theta.min() < 1 or theta.max() >= (1 << theta_bits):
            raise ValueError(f"{owner}: thresholds must be in [1, {(1 << theta_bits) - 1}], got [{theta.min()}, {theta.max()}]")
        self.dim, self.tokens, self.rows, self.fault = dim, tokens, rows, fault
        self.blocks = theta.shape[0]
        self.theta_bits = theta_bits
        self.theta_rows = theta_rows(theta, theta_bits)
        self.count_bits = ubits(tokens)
        self.x_bits = sbits(tokens)
        self.register_every = register_every
        self.count_latency = count_latency(rows, register_every)
        self.fire_latency = FIRE_LATENCY
        members = {
            "clear": In(1), "count_clear": In(1),
            "i_valid": In(1),
            "i_k": In(data.ArrayLayout(unsigned(dim), rows)),
            "i_v": In(data.ArrayLayout(unsigned(dim), rows)),
            "fire": In(1), "block": In(range(self.blocks)),
            "kv_valid": Out(1), "kv": Out(unsigned(dim)),
            "q": In(unsigned(dim)), "attn": Out(unsigned(dim)),
        }
        if loadable:
            members.update({"w_en": In(1), "w_addr": In(range(self.blocks)),
                            "w_data": In(unsigned(theta_bits * dim))})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        D, R = self.dim, self.rows
        # reset-less: `count_clear` restarts them before every use, and the domain reset into
        # their LSR was a 12.7 ns net on the 85F (s22a)
        counts = [Signal(self.count_bits, name=f"count{c}", reset_less=True) for c in range(D)]
        # K and V arrive straight from the planes' EBR (5.8 ns clock-to-out on the 85F), and
        # Yosys folded their AND into the counters' clock enables (11.8 ns at c50dac1): their AND
        # and `i_valid` (kept copies, one per LANES_PER_REPLICA channels) are registered first,
        # and the restart one cycle later to match (a broadcast tree's two cycles instead of a
        # copy's one), so the counting window is unchanged.
        groups = ceil_div(D, LANES_PER_REPLICA)
        valid1 = replicas(m, self.i_valid, groups, "attn_valid")
        assert BROADCAST_LATENCY == 2
        restart = broadcast(m, self.count_clear, groups, "attn_count_clear")
        for c in range(D):
            tree = AdderTree(R, register_every=self.register_every, popcount=True, fault=self.fault)
            m.submodules[f"pop{c}"] = tree
            m.d.comb += [tree.i_valid.eq(valid1[c // LANES_PER_REPLICA])]
            for r in range(R):
                kv1 = Signal(name=f"kv1_{r}_{c}", reset_less=True)
                m.d.sync += kv1.eq(self.i_k[r][c] & self.i_v[r][c])
                m.d.comb += tree.inputs[r].eq(kv1)
            with m.If(restart[c // LANES_PER_REPLICA]):
                m.d.sync += counts[c].eq(Mux(tree.o_valid, tree.sum, 0))
            with m.Elif(tree.o_valid):
                m.d.sync += counts[c].eq(counts[c] + tree.sum)

        tmem, trp = baked_read_port(m, "theta", self.theta_rows, self.theta_bits * D, writable=self.loadable)
        if self.loadable:
            twp = tmem.write_port()
            m.d.comb += [twp.en.eq(self.w_en), twp.addr.eq(self.w_addr), twp.data.eq(self.w_data)]
        m.d.comb += trp.addr.eq(self.block)

        m.submodules.lif = lif = LIFArray(D, self.blocks, self.x_bits, self.theta_bits, fault=self.fault)
        fire1 = Signal()
        block1 = Signal.like(self.block)
        m.d.sync += [fire1.eq(self.fire), block1.eq(self.block)]
        m.d.comb += [lif.clear.eq(self.clear), lif.i_valid.eq(fire1), lif.i_addr.eq(block1),
                     lif.i_theta.eq(trp.data)]
        for c in range(D):
            m.d.comb += lif.i_x[c].eq(counts[c])
        m.d.sync += self.kv_valid.eq(lif.o_valid)
        with m.If(lif.o_valid):
            m.d.sync += self.kv.eq(lif.o_s)
        m.d.comb += self.attn.eq(self.q & self.kv)
        return m
