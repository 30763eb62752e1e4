"""`SpikeLinear`: spike-driven linear layer (adds only) over a weight memory, P x TL lanes."""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from hw.common import ceil_div, check_bool, check_int, pack, replicas, sbits

__all__ = ["ACC_OVERHEAD", "LANES_PER_REPLICA", "SpikeLinear", "pack_matrix"]


def pack_matrix(weight: np.ndarray, lanes: int, weight_bits: int) -> list[int]:
    """Memory image of one weight matrix W[in, out] for `SpikeLinear`.

    Output chunk ch (channels ch*lanes ... ch*lanes+lanes-1, the last one zero-padded) is the
    block of rows ``[ch*in_dim, (ch+1)*in_dim)``; row i of a chunk packs W[i, chunk] lane by
    lane (lane j at bits [j*weight_bits, (j+1)*weight_bits)).
    """
    w = np.asarray(weight)
    if w.ndim != 2:
        raise ValueError(f"pack_matrix: weight must be 2-D [in, out], got shape {w.shape}")
    n_in, n_out = w.shape
    rows = []
    for ch in range(ceil_div(n_out, lanes)):
        block = w[:, ch * lanes:(ch + 1) * lanes]
        for i in range(n_in):
            rows.append(pack(block[i], weight_bits))
    return rows


ACC_OVERHEAD = 4  # cycles from `start` to `done` beyond one per visited input
# Output lanes served by one copy of a token lane's gate, clear and shift registers: a copy then
# drives LANES_PER_REPLICA x acc_bits accumulator bits (96 for digits-tiny), not P x acc_bits.
LANES_PER_REPLICA = 8


class SpikeLinear(wiring.Component):
    """``acc[k][j] = sum over inputs i with spikes[k][i] = 1 of W[base + i][j]``.

    One weight row (P = `lanes` weights of one output chunk) is read per cycle and serves all
    `token_lanes` (TL) tokens at once: token lane k adds it where its own spike bit is 1. In
    event-driven mode only the inputs where at least one token lane spikes are visited (a
    find-first-set over the OR of the lanes' spike vectors); in dense mode all ``n_in`` inputs.

    Parameters
    ----------
    inputs : int >= 1            the widest input vector (max fan-in of the layers served).
    lanes : int >= 1             P, output channels per weight row.
    token_lanes : int >= 1       TL, token accumulators fed by each row.
    weight_bits : int in 2..8
    rows : list[int]             the weight memory image (see `pack_matrix`); its length is the
                                 memory depth. Baked in as the memory's init.
    event_driven : bool
    loadable : bool              adds a write port (``w_en``, ``w_addr``, ``w_data``).

    Accumulator width: ``acc_bits = bits for +-inputs * 2^(weight_bits-1)``: a sum of at most
    `inputs` weights each |W| <= 2^(weight_bits-1) cannot leave that range.

    Ports
    -----
    load_en : In(1), load_lane : In(range(TL)), load_row : In(unsigned(inputs))
        Write token lane `load_lane`'s spike vector (held until overwritten).
    load_solo : In(1)            with `load_en`: zero every other lane in the same cycle (one
                                 token at a time, as the per-token readout's head pass runs).
    start : In(1), base : In(range(depth)), n_in : In(range(inputs + 1))
        Start one accumulation: zero the accumulators, then visit inputs 0 .. n_in-1 (bits of
        the spike vectors at and above n_in are ignored) reading rows base + i.
    busy : Out(1)                from the cycle after `start` until the cycle before `done`.
    done : Out(1)                one-cycle pulse: `acc` is final.
    acc : Out(ArrayLayout(ArrayLayout(signed(acc_bits), lanes), TL))
    shift : In(1)                drain: acc[k] <= acc[k+1], the last lane <= 0, at the end of the
                                 *next* cycle (`shift` is registered into per-lane-group copies),
                                 so acc[0] shows lane k+1 two cycles after the shift request.
    w_en : In(1), w_addr : In(range(depth)), w_data : In(unsigned(lanes*weight_bits))  (loadable)

    Latency: from `start` to `done`: v + ``ACC_OVERHEAD`` = v + 4 cycles, v = n_in (dense) or the
    number of inputs where any token lane spikes (event-driven); one input per cycle. Four
    stages: choose the input (find-first-set or counter), address the row and register the spike
    gates, register the masked weights (W or 0 per token lane and output lane), accumulate. The
    weight read is registered, so the memory never sits in a combinational path with the
    adders, and no enable or gate fans out to a whole token lane: gates, clear and shift are
    registered copies per `LANES_PER_REPLICA` output lanes (`hw.common.replicas`). The
    accumulators are cleared the cycle after `start`.

    Resources: weight memory depth x lanes*weight_bits bits (EBR); TL*lanes accumulators of
    acc_bits (flip-flops + one adder each) and as many masked-weight registers of weight_bits;
    3 x TL x ceil(lanes / LANES_PER_REPLICA) control copies; a TL-way `inputs`:1 bit mux for the spike gates;
    in event-driven mode an `inputs`-bit find-first-set (one carry chain + an OR encoder).
    """

    def __init__(self, inputs: int, lanes: int, token_lanes: int, weight_bits: int, rows, *,
                 event_driven: bool = True, loadable: bool = False):
        owner = "SpikeLinear"
        check_int(owner, "inputs", inputs, 1, 1 << 16)
        check_int(owner, "lanes", lanes, 1, 4096)
        check_int(owner, "token_lanes", token_lanes, 1, 4096)
        check_int(owner, "weight_bits", weight_bits, 2, 8)
        check_bool(owner, "event_driven", event_driven)
        check_bool(owner, "loadable", loadable)
        rows = [int(r) for r in rows]
        if not rows:
            raise ValueError(f"{owner}: rows (the weight memory image) must not be empty")
        word = lanes * weight_bits
        bad = [r for r in rows if not 0 <= r < (1 << word)]
        if bad:
            raise ValueError(f"{owner}: weight row value {bad[0]} does not fit {lanes} lanes x {weight_bits} bits; "
                             "build rows with hw.spike_linear.pack_matrix")
        self.inputs, self.lanes, self.token_lanes, self.weight_bits = inputs, lanes, token_lanes, weight_bits
        self.rows = rows
        self.depth = len(rows)
        self.acc_overhead = ACC_OVERHEAD
        self.event_driven = event_driven
        self.loadable = loadable
        self.acc_bits = sbits(inputs * (1 << (weight_bits - 1)))
        members = {
            "load_en": In(1), "load_lane": In(range(token_lanes)), "load_row": In(unsigned(inputs)),
            "load_solo": In(1),
            "start": In(1), "base": In(range(self.depth)), "n_in": In(range(inputs + 1)),
            "busy": Out(1), "done": Out(1),
            "acc": Out(data.ArrayLayout(data.ArrayLayout(signed(self.acc_bits), lanes), token_lanes)),
            "shift": In(1),
        }
        if loadable:
            members.update({"w_en": In(1), "w_addr": In(range(self.depth)), "w_data": In(unsigned(word))})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        P, TL, n, wb = self.lanes, self.token_lanes, self.inputs, self.weight_bits
        m.submodules.weights = mem = memory.Memory(shape=unsigned(P * wb), depth=self.depth, init=self.rows)
        rp = mem.read_port()
        if self.loadable:
            wp = mem.write_port()
            m.d.comb += [wp.en.eq(self.w_en), wp.addr.eq(self.w_addr), wp.data.eq(self.w_data)]

        spikes = [Signal(n, name=f"spikes{k}") for k in range(TL)]
        with m.If(self.load_en):
            for k in range(TL):
                with m.If(self.load_lane == k):
                    m.d.sync += spikes[k].eq(self.load_row)
                with m.Elif(self.load_solo):
                    m.d.sync += spikes[k].eq(0)

        running = Signal()
        base = Signal.like(self.base)
        n_in = Signal.like(self.n_in)
        # S0 (issue): choose the next input and register its index. S1: the row address
        # (base + index) goes to the memory and the TL spike gates (an index mux) are registered.
        # S2: the row is here (S3, S4: see Latency). The find-first-set, its encoder, the address
        # adder and the EBR address were one 19 ns path before. Only the index is registered, not the
        # one-hot choice: a registered one-hot fanning out into TL AND-ORs did not route on the
        # 85F default (docs/build.md).
        issue = Signal()
        idx0 = Signal(range(max(n, 2)))
        idx1 = Signal.like(idx0)
        valid1 = Signal()
        m.d.sync += [valid1.eq(issue), idx1.eq(idx0)]
        if self.event_driven:
            pending = Signal(n)
            onehot = Signal(n)
            m.d.comb += onehot.eq(pending & (~pending + 1)[:n])  # lowest set bit
            for b in range(len(idx0)):
                m.d.comb += idx0[b].eq(0 if not [i for i in range(n) if (i >> b) & 1]
                                       else _or_bits(onehot, [i for i in range(n) if (i >> b) & 1]))
            m.d.comb += issue.eq(running & (pending != 0))
            union = Signal(n)
            for k in range(TL):
                union = union | spikes[k]
            in_range = Signal(n)
            for i in range(n):
                m.d.comb += in_range[i].eq(i < self.n_in)
            with m.If(self.start):
                m.d.sync += pending.eq(union & in_range)
            with m.Elif(issue):
                m.d.sync += pending.eq(pending & ~onehot)
        else:
            counter = Signal(range(n + 1))
            m.d.comb += [idx0.eq(counter), issue.eq(running & (counter < n_in))]
            with m.If(self.start):
                m.d.sync += counter.eq(0)
            with m.Elif(issue):
                m.d.sync += counter.eq(counter + 1)
        # S2 -> S3 -> S4 (see Latency): gates and masked weights per copy group of output lanes.
        groups = ceil_div(P, LANES_PER_REPLICA)
        gate2 = [replicas(m, valid1 & spikes[k].bit_select(idx1, 1), groups, f"gate{k}") for k in range(TL)]
        clear = [replicas(m, self.start, groups, f"clear{k}") for k in range(TL)]
        shift = [replicas(m, self.shift, groups, f"shift{k}") for k in range(TL)]

        m.d.comb += rp.addr.eq(base + idx1)

        with m.If(self.start):
            m.d.sync += [running.eq(1), base.eq(self.base), n_in.eq(self.n_in)]
        with m.Elif(running & ~issue):
            m.d.sync += running.eq(0)
        # `running` drops the cycle after the last issue; the last row is applied three cycles
        # after that issue, so `done` comes two cycles after `ending`.
        ending, ending2 = Signal(), Signal()
        m.d.sync += [ending.eq(running & ~issue & ~self.start), ending2.eq(ending), self.done.eq(ending2)]
        m.d.comb += self.busy.eq(running | ending | ending2)

        for k in range(TL):
            for j in range(P):
                g = j // LANES_PER_REPLICA
                w = rp.data.word_select(j, wb).as_signed()
                mw = Signal(signed(wb), name=f"mw{k}_{j}")
                # zero where the lane does not spike: the accumulator adds every cycle, no enable
                m.d.sync += mw.eq(Mux(gate2[k][g], w, 0))
                with m.If(clear[k][g]):
                    m.d.sync += self.acc[k][j].eq(0)
                with m.Elif(shift[k][g]):
                    m.d.sync += self.acc[k][j].eq(self.acc[k + 1][j] if k + 1 < TL else 0)
                with m.Else():
                    m.d.sync += self.acc[k][j].eq(self.acc[k][j] + mw)
        return m


def _or_bits(vec, positions):
    out = vec[positions[0]]
    for p in positions[1:]:
        out = out | vec[p]
    return out
