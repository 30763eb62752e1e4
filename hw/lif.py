"""`LIFArray`: P integer LIF neurons per cycle over a membrane memory."""

from __future__ import annotations

from amaranth.hdl import Mux, Const, Module, Signal, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from hw.common import check_fault, check_int

__all__ = ["LIFArray", "LIF_LATENCY"]


LIF_LATENCY = 4  # cycles from an update's i_valid to its o_valid (see LIFArray)


class LIFArray(wiring.Component):
    """`lanes` neurons of the contract's LIF per cycle (quant.contract.lif_step), tau = 2, hard reset.

    For every lane j: ``w = v + x[j]``; ``s[j] = w >= theta[j]``; ``v' = 0 if s[j] else w >>> 1``
    (arithmetic shift: floor). The membranes ``v`` of `depth` groups of `lanes` neurons live in a
    `lib.memory.Memory` of `depth` rows (``i_addr`` picks the group). ``clear`` makes every
    membrane 0 in one cycle (a per-row "fresh" bit, so no sweep over the memory).

    The read-modify-write of a membrane row is spread over four stages so that no stage holds
    more than one carry chain: S0 issues the row read and looks up the fresh bit, S1 registers
    the memory's output and forms theta - x, S2 adds x and compares v with theta - x (the same
    spike, w >= theta), S3 leaks or resets under the registered spike and writes back.
    There is no forwarding between updates in flight (a forwarding path would put the compare,
    the reset mux and the next add into one cycle, the 23 ns path this pipeline removes), so:

    **Hazard rule:** two updates of the same group must be at least ``LIF_LATENCY`` cycles apart
    (issue cycles c and c' >= c + LIF_LATENCY). The Sequencer meets it by construction: it updates
    a membrane row once per pass and timestep, and every pass ends with a drain of at least
    ``LIF_LATENCY`` cycles before the next pass issues (hw.sequencer.DRAIN_DEPTH); the attention's
    kv LIF fires once per block and timestep. Updates of different groups may come every cycle.

    Parameters
    ----------
    lanes : int >= 1          neurons per cycle (P).
    depth : int >= 1          neuron groups (membrane memory rows).
    x_bits : int >= 2         signed bits of the input x; ``|x| <= X`` with X < 2^(x_bits-1).
    theta_bits : int >= 1     unsigned bits of the thresholds (theta >= 1).
    fault : None or "leak_round"
        Test only: "leak_round" halves w rounding toward zero instead of floor.

    Membrane bound: |v| <= X, since v' = floor(w/2) with |w| <= |v| + |x| <= 2X; so v is stored in
    x_bits and w needs x_bits + 1 (no overflow for any input sequence within the x bound).

    Ports
    -----
    clear : In(1)                                   all membranes 0 for updates issued from this
                                                    cycle on; updates issued earlier and still in
                                                    flight return their spikes but write nothing.
    i_valid : In(1)                                 a group update this cycle.
    i_addr : In(range(depth))
    i_x : In(ArrayLayout(signed(x_bits), lanes))
    i_theta : In(ArrayLayout(unsigned(theta_bits), lanes))
    o_valid : Out(1)                                i_valid delayed by LIF_LATENCY.
    o_addr : Out(range(depth))                      i_addr delayed by LIF_LATENCY.
    o_s : Out(unsigned(lanes))                      the spikes, bit j = lane j.

    Latency: ``LIF_LATENCY`` = 4 cycles; one group per cycle (within the hazard rule).

    Resources: memory lanes*x_bits x depth bits (EBR when large; Yosys 0.70 adds its read-first
    emulation for the read port, lanes*x_bits flip-flops and muxes and a registered row match,
    though the hazard rule never reads a row in the cycle it is written), `depth` flip-flops of
    fresh bits, per lane one (x_bits+1)-bit adder, a theta - x subtractor, one comparator, a mux,
    and about 2*lanes*x_bits + lanes*theta_bits pipeline flip-flops.
    """

    def __init__(self, lanes: int, depth: int, x_bits: int, theta_bits: int, *, fault=None):
        owner = "LIFArray"
        check_int(owner, "lanes", lanes, 1, 4096)
        check_int(owner, "depth", depth, 1, 1 << 20)
        check_int(owner, "x_bits", x_bits, 2, 64)
        check_int(owner, "theta_bits", theta_bits, 1, 64)
        check_fault(owner, fault)
        self.lanes, self.depth, self.x_bits, self.theta_bits = lanes, depth, x_bits, theta_bits
        self.fault = fault
        self.latency = LIF_LATENCY
        super().__init__({
            "clear": In(1),
            "i_valid": In(1),
            "i_addr": In(range(depth)),
            "i_x": In(data.ArrayLayout(signed(x_bits), lanes)),
            "i_theta": In(data.ArrayLayout(unsigned(theta_bits), lanes)),
            "o_valid": Out(1),
            "o_addr": Out(range(depth)),
            "o_s": Out(unsigned(lanes)),
        })

    def elaborate(self, platform):
        m = Module()
        P, xb = self.lanes, self.x_bits
        m.submodules.mem = mem = memory.Memory(shape=data.ArrayLayout(signed(xb), P), depth=self.depth, init=[])
        wp = mem.write_port()
        rp = mem.read_port()  # not transparent: the hazard rule keeps reads off rows being written

        fresh = Signal(self.depth, init=(1 << self.depth) - 1)  # 1: the row reads as 0

        # Data registers are reset-less: only the valid/live chain and `fresh` need a reset, and a
        # reset net to every membrane bit was a 15k-fanout, 14 ns net on the 85F.
        def stage(sig, name, reset_less=True):
            r = Signal.like(sig, name=name, reset_less=reset_less)
            m.d.sync += r.eq(sig)
            return r

        # S0: row read issued; fresh bit looked up here, a cycle before the data needs it, so the
        # depth-wide bit select is off the arithmetic path. An update issued with `clear` starts
        # from 0.
        m.d.comb += rp.addr.eq(self.i_addr)
        fresh1 = stage(self.clear | fresh.bit_select(self.i_addr, 1), "fresh1", reset_less=False)
        valid1, addr1 = stage(self.i_valid, "valid1", reset_less=False), stage(self.i_addr, "addr1")
        x1, theta1 = stage(self.i_x, "x1"), stage(self.i_theta, "theta1")

        # S1: the memory's output registered (EBR clock-to-out is slow); a fresh row reads 0.
        v2 = Signal(data.ArrayLayout(signed(xb), P), name="v2", reset_less=True)
        for j in range(P):
            m.d.sync += v2[j].eq(Mux(fresh1, 0, rp.data[j]))
        valid2, addr2 = stage(valid1, "valid2", reset_less=False), stage(addr1, "addr2")
        x2 = stage(x1, "x2")
        d2 = Signal(data.ArrayLayout(signed(max(xb, self.theta_bits + 1) + 1), P), name="d2", reset_less=True)
        for j in range(P):
            m.d.sync += d2[j].eq(theta1[j] - x1[j])
        # `live`: no clear since the update was issued (an update issued with the clear is live); a
        # cleared update must not write back (its row is fresh again and has to stay 0).
        live2 = stage(valid1 & ~self.clear, "live2", reset_less=False)

        # S2: w = v + x, and the spike as v >= theta - x (the difference formed in S1), so S3
        # muxes under a registered spike: the compare in S3 drove the reset of every membrane bit
        # (a 14.5 ns path at e9bf161).
        w3 = Signal(data.ArrayLayout(signed(xb + 1), P), name="w3", reset_less=True)
        s3 = Signal(P, name="s3", reset_less=True)
        for j in range(P):
            m.d.sync += [w3[j].eq(v2[j] + x2[j]), s3[j].eq(v2[j] >= d2[j])]
        valid3, addr3 = stage(valid2, "valid3", reset_less=False), stage(addr2, "addr3")
        live3 = stage(live2 & ~self.clear, "live3", reset_less=False)

        # S3: spike, leak or reset, write back.
        spikes = Signal(P)
        new_v = Signal.like(rp.data)
        for j in range(P):
            w = w3[j]
            s = s3[j]
            if self.fault == "leak_round":
                half = (w + w[-1]) >> 1  # toward zero: the wrong rounding the contract forbids
            else:
                half = w >> 1  # arithmetic shift on a signed value: floor
            m.d.comb += [spikes[j].eq(s), new_v[j].eq(Mux(s, 0, half))]
        write = Signal()
        m.d.comb += write.eq(live3 & ~self.clear)
        m.d.comb += [wp.addr.eq(addr3), wp.data.eq(new_v), wp.en.eq(write)]
        with m.If(self.clear):
            m.d.sync += fresh.eq((1 << self.depth) - 1)
        with m.Elif(write):
            m.d.sync += fresh.bit_select(addr3, 1).eq(0)

        o_addr = Signal.like(self.o_addr, name="o_addr_r", reset_less=True)
        o_s = Signal.like(self.o_s, name="o_s_r", reset_less=True)
        m.d.sync += [self.o_valid.eq(valid3), o_addr.eq(addr3), o_s.eq(spikes)]
        m.d.comb += [self.o_addr.eq(o_addr), self.o_s.eq(o_s)]
        return m
