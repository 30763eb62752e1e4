"""`LIFArray`: P integer LIF neurons per cycle over a membrane memory."""

from __future__ import annotations

from amaranth.hdl import Mux, Const, Module, Signal, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from hw.common import check_fault, check_int

__all__ = ["LIFArray"]


class LIFArray(wiring.Component):
    """`lanes` neurons of the contract's LIF per cycle (quant.contract.lif_step), tau = 2, hard reset.

    For every lane j: ``w = v + x[j]``; ``s[j] = w >= theta[j]``; ``v' = 0 if s[j] else w >>> 1``
    (arithmetic shift: floor). The membranes ``v`` of `depth` groups of `lanes` neurons live in a
    `lib.memory.Memory` of `depth` rows (``i_addr`` picks the group). ``clear`` makes every
    membrane 0 in one cycle (a per-row "fresh" bit, so no sweep over the memory).

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
    clear : In(1)                                   all membranes 0 from the next cycle on.
    i_valid : In(1)                                 a group update this cycle.
    i_addr : In(range(depth))
    i_x : In(ArrayLayout(signed(x_bits), lanes))
    i_theta : In(ArrayLayout(unsigned(theta_bits), lanes))
    o_valid : Out(1)                                i_valid delayed by 2.
    o_addr : Out(range(depth))                      i_addr delayed by 2.
    o_s : Out(unsigned(lanes))                      the spikes, bit j = lane j.

    Latency: 2 cycles (membrane read, then compute + write back + output register); one group
    per cycle; back-to-back updates of the same group are exact (transparent read).

    Resources: memory lanes*x_bits x depth bits (EBR when large), `depth` flip-flops of fresh
    bits, per lane one (x_bits+1)-bit adder, one comparator and a mux.
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
        self.latency = 2
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
        rp = mem.read_port(transparent_for=(wp,))

        fresh = Signal(self.depth, init=(1 << self.depth) - 1)  # 1: the row reads as 0

        # Stage 1: the membrane row arrives; x, theta and the address wait one cycle for it.
        valid1 = Signal()
        addr1 = Signal(range(self.depth))
        x1 = Signal.like(self.i_x)
        theta1 = Signal.like(self.i_theta)
        m.d.comb += rp.addr.eq(self.i_addr)
        m.d.sync += [valid1.eq(self.i_valid), addr1.eq(self.i_addr), x1.eq(self.i_x), theta1.eq(self.i_theta)]

        is_fresh = fresh.bit_select(addr1, 1)
        spikes = Signal(P)
        new_v = Signal.like(rp.data)
        for j in range(P):
            v = Signal(signed(xb), name=f"v{j}")
            w = Signal(signed(xb + 1), name=f"w{j}")
            m.d.comb += [v.eq(Mux(is_fresh, 0, rp.data[j])), w.eq(v + x1[j])]
            s = w >= theta1[j]
            if self.fault == "leak_round":
                half = (w + w[-1]) >> 1  # toward zero: the wrong rounding the contract forbids
            else:
                half = w >> 1  # arithmetic shift on a signed value: floor
            m.d.comb += [spikes[j].eq(s), new_v[j].eq(Mux(s, 0, half))]

        m.d.comb += [wp.addr.eq(addr1), wp.data.eq(new_v), wp.en.eq(valid1)]
        with m.If(self.clear):
            m.d.sync += fresh.eq((1 << self.depth) - 1)
        with m.Elif(valid1):
            m.d.sync += fresh.bit_select(addr1, 1).eq(0)

        m.d.sync += [self.o_valid.eq(valid1), self.o_addr.eq(addr1), self.o_s.eq(spikes)]
        return m
