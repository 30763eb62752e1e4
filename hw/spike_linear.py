"""`SpikeLinear`: spike-driven linear layer (adds only) over a weight memory, P x TL lanes."""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Const, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from hw.common import (BROADCAST_LATENCY, broadcast, ceil_div, check_bool, check_int, lowest_set_index, pack,
                       replicas, sbits)

__all__ = ["ACC_OVERHEAD", "LANES_PER_REPLICA", "SpikeLinear", "pack_matrix", "visits"]


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


ACC_OVERHEAD = 5  # cycles from `start` to `done` beyond one per visited input
# Output lanes served by one copy of a token lane's gate, clear and shift registers: a copy then
# drives LANES_PER_REPLICA x acc_bits accumulator bits (96 for digits-tiny), not P x acc_bits.
LANES_PER_REPLICA = 8
# The spike gate's first mux level picks one bit of every 2^SEL_BITS spike bits (see SpikeLinear)
SEL_BITS = 3
# Token lanes served by one S1 copy of the issued index (see SpikeLinear)
IDX_LANES_PER_COPY = 4
# Token lanes served by one registered copy of a bank's weight row (see SpikeLinear)
W3_TOKEN_LANES = 4


def visits(union, n_in: int, banks: int) -> int:
    """Cycles of inputs one accumulation takes (the v of `SpikeLinear`'s latency): the most
    inputs i < n_in that one bank visits. Bank (base + i) mod `banks` serves input i, so the
    banks serve the residue classes of i mod `banks` in some order, and the most per bank does
    not depend on base. `union`: the OR of the token lanes' spike vectors (length >= n_in), or
    None for a dense design (every input: ceil(n_in / banks))."""
    u = np.ones(n_in, bool) if union is None else np.asarray(union[:n_in], bool)
    return max(int(u[c::banks].sum()) for c in range(banks))


class SpikeLinear(wiring.Component):
    """``acc[k][j] = sum over inputs i with spikes[k][i] = 1 of W[base + i][j]``.

    One weight row (P = `lanes` weights of one output chunk) per bank is read per cycle and
    serves all `token_lanes` (TL) tokens at once: token lane k adds it where its own spike bit is
    1. The weight memory is split into `banks` (B) memories by row: row r lives in bank r mod B,
    so each cycle every bank visits one of its own inputs (those i with (base + i) mod B equal
    to the bank) and the lanes add up to B rows at once. In event-driven mode only the inputs
    where at least one token lane spikes are visited (a find-first-set per bank over the OR of
    the lanes' spike vectors); in dense mode all ``n_in`` inputs.

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
    banks : int, a power of two  B, weight rows read per cycle (1: one input per cycle).

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
    done : Out(1)                one-cycle pulse: `acc` is final. It stays final until the next
                                 accumulation clears it (`BROADCAST_LATENCY` cycles after its start).
    acc : Out(ArrayLayout(ArrayLayout(signed(acc_bits), lanes), TL))
    drain : In(1)                sampled with `start`: at this accumulation's `done`, copy all token
                                 lanes into the drain buffer, which then moves down once a cycle,
                                 TL - 1 times, so that `drained` holds lane k in cycle done + 1 + k:
                                 the drain order the Sequencer reads.
    drained : Out(ArrayLayout(signed(acc_bits), lanes))   the drain buffer's lane 0.

    The drain buffer frees the accumulators at `done`: the next `start` may come in cycle
    done + 1, while the buffer still drains. That accumulation's `done` is then held, if need be,
    until TL cycles after the previous one (the accumulators keep their final sums meanwhile), so
    a drain is never overwritten before its last lane has been read.
    w_en : In(1), w_addr : In(range(depth)), w_data : In(unsigned(lanes*weight_bits))  (loadable)

    Latency: from `start` to `done`: v + ``ACC_OVERHEAD`` = v + 5 cycles (held to at least TL
    cycles after a draining accumulation's `done`, see above), v = the most inputs one
    bank visits (`visits`): ceil(n_in / B) dense; event-driven, the most inputs i < n_in in one
    residue class (base + i) mod B where any token lane spikes. Five stages: choose the input
    (find-first-set or counter), address the row, register the row out of the memory and the
    spike gates, register the masked weights (the sum over banks of W or 0 per token lane and
    output lane), accumulate. The memory never sits in a combinational path with the gates or
    adders, and no enable or gate fans out to a whole token lane: gates are registered copies
    per `LANES_PER_REPLICA` output lanes (`hw.common.replicas`), clear and the drain's moves
    reach the same copy groups through a two-level tree (`hw.common.broadcast`). The
    accumulators are cleared `BROADCAST_LATENCY` = 2 cycles after `start`; the drain buffer's
    copy is requested two cycles before `done` and lands at its end, its moves are requested
    from the cycle before `done`, so the first lands at the end of done + 1.

    Resources: weight memory depth x lanes*weight_bits bits in B memories (EBR); TL*lanes
    accumulators of acc_bits (flip-flops + one adder each), as many drain-buffer registers
    (flip-flops + a 2:1 mux each) and as many masked-weight registers of weight_bits + log2(B)
    (a B-input adder each when B > 1); with G = ceil(lanes / LANES_PER_REPLICA): B x TL x G
    gate copies, 4 x (TL x G + ceil(TL x G / 8)) clear, copy, move and drain-enable copies,
    B x TL copies of the valid, B x ceil(TL / 4) of the issued index and B x ceil(TL / 4) of
    the weight row (lanes x weight_bits each); for the spike gates B x TL x ceil(inputs / 8)
    registered 8:1 bit muxes and B x TL ceil(inputs / 8):1 muxes; in event-driven mode B
    `inputs`-bit lowest-set-bit finders (a radix-4 priority tree for the index, a carry chain
    for the update each).
    """

    def __init__(self, inputs: int, lanes: int, token_lanes: int, weight_bits: int, rows, *,
                 event_driven: bool = True, loadable: bool = False, banks: int = 1):
        owner = "SpikeLinear"
        check_int(owner, "inputs", inputs, 1, 1 << 16)
        check_int(owner, "lanes", lanes, 1, 4096)
        check_int(owner, "token_lanes", token_lanes, 1, 4096)
        check_int(owner, "weight_bits", weight_bits, 2, 8)
        check_bool(owner, "event_driven", event_driven)
        check_bool(owner, "loadable", loadable)
        check_int(owner, "banks", banks, 1, 64)
        if banks & (banks - 1):
            raise ValueError(f"{owner}: banks must be a power of two (the bank of a row is its low bits), got {banks}")
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
        self.banks = banks
        self.acc_bits = sbits(inputs * (1 << (weight_bits - 1)))
        members = {
            "load_en": In(1), "load_lane": In(range(token_lanes)), "load_row": In(unsigned(inputs)),
            "load_solo": In(1),
            "start": In(1), "base": In(range(self.depth)), "n_in": In(range(inputs + 1)),
            "busy": Out(1), "done": Out(1),
            "acc": Out(data.ArrayLayout(data.ArrayLayout(signed(self.acc_bits), lanes), token_lanes)),
            "drain": In(1), "drained": Out(data.ArrayLayout(signed(self.acc_bits), lanes)),
        }
        if loadable:
            members.update({"w_en": In(1), "w_addr": In(range(self.depth)), "w_data": In(unsigned(word))})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        P, TL, n, wb, B = self.lanes, self.token_lanes, self.inputs, self.weight_bits, self.banks
        lb = B.bit_length() - 1
        bank_depth = ceil_div(self.depth, B)
        rps = []
        for b in range(B):
            init = self.rows[b::B]
            mem = memory.Memory(shape=unsigned(P * wb), depth=bank_depth, init=init + [0] * (bank_depth - len(init)))
            m.submodules[f"weights{b}" if B > 1 else "weights"] = mem
            rps.append(mem.read_port())
            if self.loadable:
                wp = mem.write_port()
                m.d.comb += [wp.en.eq(self.w_en & (self.w_addr[:lb] == b if lb else 1)),
                             wp.addr.eq(self.w_addr[lb:]), wp.data.eq(self.w_data)]

        # Every pass loads all TL lanes (or zeroes them under load_solo) before its start, so the
        # spike registers need no reset (the reset net was a 15k-fanout 14 ns net on the 85F).
        spikes = [Signal(n, name=f"spikes{k}", reset_less=True) for k in range(TL)]
        with m.If(self.load_en):
            for k in range(TL):
                with m.If(self.load_lane == k):
                    m.d.sync += spikes[k].eq(self.load_row)
                with m.Elif(self.load_solo):
                    m.d.sync += spikes[k].eq(0)

        running = Signal()
        base = Signal.like(self.base)
        n_in = Signal.like(self.n_in)
        # S0 (issue): each bank chooses its next input and registers its index. S1: the row
        # address goes to the bank. S2: the rows are here (S3 .. S5: see Latency). The
        # find-first-set, its encoder, the address adder and the EBR address were one 19 ns path
        # before. Only the index is registered,
        # not the one-hot choice: a registered one-hot fanning out into TL AND-ORs did not
        # route on the 85F default (docs/build.md).
        issue = [Signal(name=f"issue{b}") for b in range(B)]
        any_issue = Signal()
        idx0 = [Signal(range(max(n, 2)), name=f"idx0_{b}") for b in range(B)]
        idx1 = [Signal(range(max(n, 2)), name=f"idx1_{b}", reset_less=True) for b in range(B)]  # data
        valid1 = [Signal(name=f"valid1_{b}") for b in range(B)]
        for b in range(B):
            m.d.sync += [valid1[b].eq(issue[b]), idx1[b].eq(idx0[b])]
        if self.event_driven:
            union = Signal(n)
            for k in range(TL):
                union = union | spikes[k]
            in_range = Signal(n)
            for i in range(n):
                m.d.comb += in_range[i].eq(i < self.n_in)
            for b in range(B):
                # no reset: `issue` reads it only while `running`, and `start` loads it first
                pending = Signal(n, name=f"pending{b}", reset_less=True)
                # The index comes from a radix-4 priority tree over `pending` (about log4(n) x 2
                # LUT levels), not from the one-hot's carry chain: carry chain, then an OR tree
                # per index bit, then the route to the index copies was the 13.4 ns critical
                # path on the 85F (c50dac1). The update keeps the carry form, which is off that
                # path: pending & (pending - 1) clears the lowest set bit.
                nz, low = lowest_set_index(pending)
                m.d.comb += [idx0[b].eq(low), issue[b].eq(running & nz)]
                # the inputs i of bank b: (base + i) mod B == b, a pattern chosen by base's low bits
                mine = Signal(n, name=f"mine{b}")
                if lb:
                    with m.Switch(self.base[:lb]):
                        for r in range(B):
                            with m.Case(r):
                                m.d.comb += mine.eq(sum(1 << i for i in range(n) if (r + i) % B == b))
                else:
                    m.d.comb += mine.eq(-1)
                with m.If(self.start):
                    m.d.sync += pending.eq(union & in_range & mine)
                with m.Elif(issue[b]):
                    m.d.sync += pending.eq(pending & (pending - 1)[:n])
            m.d.comb += any_issue.eq(Cat(*issue).any())
        else:
            # step s visits inputs sB .. sB+B-1; bank b takes the one with (base + i) mod B == b
            steps = Signal(range(ceil_div(n, B) + 1))
            with m.If(self.start):
                m.d.sync += steps.eq(0)
            with m.Elif(any_issue):
                m.d.sync += steps.eq(steps + 1)
            m.d.comb += any_issue.eq(running & ((steps << lb) < n_in))
            for b in range(B):
                off = (b - base[:lb])[:lb] if lb else 0  # (b - base) mod B
                at = Signal(range(ceil_div(n, B) * B + B), name=f"at{b}")  # not wrapped at `inputs`
                m.d.comb += [at.eq((steps << lb) | off), idx0[b].eq(at), issue[b].eq(running & (at < n_in))]

        # S2 -> S3 -> S4 -> S5 (see Latency). The bank's row arrives at S2 with the EBR's slow
        # clock-to-output (5.8 ns on the 85F) and feeds TL x P masked weights spread over the
        # accumulators' area: registered first (S3), beside the gates (per copy group of lanes).
        # One copy per W3_TOKEN_LANES token lanes: a single w3 per bank fanning out to all TL
        # token lanes' masked weights was the 12.6 ns `mw` family on the 85F (c50dac1).
        w3 = [replicas(m, rps[b].data, ceil_div(TL, W3_TOKEN_LANES), f"w3b{b}") for b in range(B)]
        # The spike gate spikes[k][idx] is a `inputs`:1 mux, cut in two registered halves: at S1
        # a copy of the index per IDX_LANES_PER_COPY token lanes (registered from S0, so no one
        # index net selects in all TL spike vectors) picks bit idx mod 2^SEL_BITS of every
        # 2^SEL_BITS-bit slice, at S2 the lane's own copy of the high index bits picks the slice.
        # The whole mux in one stage behind a per-lane index copy was the 13.8 ns gate path on
        # the 85F (050bd56); a copy per lane made at S1 put 16 loads on the find-first-set's
        # output (13.7 ns).
        valid2 = [replicas(m, valid1[b], TL, f"valid2b{b}") for b in range(B)]
        idx1g = [replicas(m, idx0[b], ceil_div(TL, IDX_LANES_PER_COPY), f"idx1b{b}") for b in range(B)]
        idx1c = [[idx1g[b][k // IDX_LANES_PER_COPY] for k in range(TL)] for b in range(B)]
        lo = min(SEL_BITS, len(idx0[0]))
        n_slices = ceil_div(n, 1 << lo)
        part2 = [[Signal(n_slices, name=f"part2_{k}b{b}", reset_less=True) for k in range(TL)] for b in range(B)]
        hi2 = [[Signal(len(idx0[0]) - lo, name=f"hi2_{k}b{b}", reset_less=True) for k in range(TL)] for b in range(B)]
        padded = [Cat(spikes[k], Const(0, n_slices * (1 << lo) - n)) for k in range(TL)]
        for b in range(B):
            for k in range(TL):
                for g in range(n_slices):
                    m.d.sync += part2[b][k][g].eq(padded[k][g << lo:(g + 1) << lo].bit_select(idx1c[b][k][:lo], 1))
                m.d.sync += hi2[b][k].eq(idx1c[b][k][lo:])
        # `ends[0]` is the cycle after the last issue; `done` follows the last of `ends`
        ends = [Signal(name=f"ending{i}") for i in range(ACC_OVERHEAD - 2)]
        groups = ceil_div(P, LANES_PER_REPLICA)
        gate3 = [[replicas(m, valid2[b][k] & part2[b][k].bit_select(hi2[b][k], 1), groups, f"gate{k}b{b}" if B > 1 else
                           f"gate{k}") for k in range(TL)] for b in range(B)]
        clear = broadcast(m, self.start, TL * groups, "clear")
        # The drain buffer's copy lands at the end of `done`, its TL - 1 moves at the ends of
        # cycles done + 1 .. done + TL - 1; through the trees they are requested
        # BROADCAST_LATENCY cycles earlier: the copy from ends[-2], the moves from the last of
        # `ends` (the cycle before `done`) on.
        assert BROADCAST_LATENCY == 2 and len(ends) >= 2
        drain = Signal()
        copy_req = ends[-2] & drain
        copy = broadcast(m, copy_req, TL * groups, "copy")
        move_req = Signal()
        if TL > 1:
            left = Signal(range(TL))
            m.d.comb += move_req.eq((ends[-1] & drain) | (left != 0))
            with m.If(ends[-1] & drain):
                m.d.sync += left.eq(TL - 2)
            with m.Elif(left != 0):
                m.d.sync += left.eq(left - 1)
        shift = broadcast(m, move_req, TL * groups, "shift")
        # the drain buffer's clock enable as its own copies: copy | shift formed in a LUT in
        # front of 8 lanes x acc_bits enables was an 11.5-16 ns family on the 85F
        dbuf_en = broadcast(m, copy_req | move_req, TL * groups, "dbuf_en")
        for b in range(B):
            m.d.comb += rps[b].addr.eq((base + idx1[b])[lb:])

        with m.If(self.start):
            m.d.sync += [running.eq(1), base.eq(self.base), n_in.eq(self.n_in), drain.eq(self.drain)]
        with m.Elif(running & ~any_issue):
            m.d.sync += running.eq(0)
        # `running` drops the cycle after the last issue; the last row is applied four cycles
        # after that issue (S1 address, S2 row, S3 row and gates registered, S4 masked weights),
        # so `done` comes ACC_OVERHEAD - 2 cycles after `ends[0]`.
        # Hold: `done` (len(ends) cycles after ends[0]) may come no earlier than TL cycles after
        # a draining accumulation's `done`, when its last lane has left the buffer. `gap` counts
        # down from that `done`; the finish waits in `fin_wait` (sums final and held) until it
        # runs out. The earliest finish after a drain without a hold is 2 cycles after that
        # `done` (start the cycle after, running the next), so short buffers never wait.
        finish = Signal()
        m.d.comb += finish.eq(running & ~any_issue & ~self.start)
        hold = TL - len(ends) - 2  # cycles of `gap` after `done`
        if hold > 0:
            gap = Signal(range(hold + 1))
            fin_wait = Signal()
            loaded = Signal()
            m.d.sync += loaded.eq(ends[-1] & drain)  # high in the cycle of a draining `done`
            with m.If(loaded):
                m.d.sync += gap.eq(hold)
            with m.Elif(gap != 0):
                m.d.sync += gap.eq(gap - 1)
            go = (gap == 0) & ~loaded
            m.d.sync += [ends[0].eq((finish | fin_wait) & go), fin_wait.eq((finish | fin_wait) & ~go)]
        else:
            fin_wait = Const(0)
            m.d.sync += ends[0].eq(finish)
        for e0, e1 in zip(ends, ends[1:]):
            m.d.sync += e1.eq(e0)
        m.d.sync += self.done.eq(ends[-1])
        m.d.comb += self.busy.eq(running | fin_wait | Cat(*ends).any())

        # The accumulators, drain buffer, masked weights and the registered rows take no domain
        # reset: `start` clears the accumulators before every accumulation, and the reset OR-ed
        # into their clear was a 19.5 ns net on the 85F (41.77 MHz).
        acc = [[Signal(signed(self.acc_bits), name=f"acc{k}_{j}", reset_less=True) for j in range(P)]
               for k in range(TL)]
        dbuf = [[Signal(signed(self.acc_bits), name=f"dbuf{k}_{j}", reset_less=True) for j in range(P)]
                for k in range(TL)]
        for j in range(P):
            m.d.comb += self.drained[j].eq(dbuf[0][j])
        for k in range(TL):
            for j in range(P):
                m.d.comb += self.acc[k][j].eq(acc[k][j])
                g = j // LANES_PER_REPLICA
                mw = Signal(signed(wb + lb), name=f"mw{k}_{j}", reset_less=True)
                # zero where the lane does not spike: the accumulator adds every cycle, no enable
                m.d.sync += mw.eq(sum(Mux(gate3[b][k][g], w3[b][k // W3_TOKEN_LANES].word_select(j, wb).as_signed(), 0)
                                      for b in range(B)))
                with m.If(clear[k * groups + g]):
                    m.d.sync += acc[k][j].eq(0)
                with m.Else():
                    m.d.sync += acc[k][j].eq(acc[k][j] + mw)
                with m.If(dbuf_en[k * groups + g]):
                    m.d.sync += dbuf[k][j].eq(Mux(copy[k * groups + g], acc[k][j],
                                                  dbuf[k + 1][j] if k + 1 < TL else 0))
        return m

