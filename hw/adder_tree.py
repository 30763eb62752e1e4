"""`AdderTree`: a pipelined binary adder tree (signed sum, masked sum or popcount)."""

from __future__ import annotations

from amaranth.hdl import Mux, Module, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hw.common import check_bool, check_fault, check_int

__all__ = ["AdderTree", "tree_levels", "tree_latency"]


def tree_levels(n_inputs: int) -> int:
    """Adder levels of a binary tree over `n_inputs` values: ceil(log2(n_inputs))."""
    return (n_inputs - 1).bit_length()


def tree_latency(n_inputs: int, register_every: int) -> int:
    """Cycles from `i_valid` to `o_valid`: one register after every `register_every` levels
    and after the last level (0 when `register_every` is 0 or the tree has no level)."""
    levels = tree_levels(n_inputs)
    if register_every == 0 or levels == 0:
        return 0
    return -(-levels // register_every)


class AdderTree(wiring.Component):
    """Sum of `n_inputs` values in a binary tree, widths growing one bit per level.

    Parameters
    ----------
    n_inputs : int >= 1
    width : int >= 1
        Bits of each input: signed two's complement, or (``popcount=True``) ignored and 1.
    register_every : int >= 0
        A pipeline register after levels k, 2k, ... and after the last level; 0: combinational.
    popcount : bool
        Inputs are the bits of one ``n_inputs``-bit vector; the sum is their count (unsigned).
    masked : bool
        Adds a ``mask`` input: input i counts only where ``mask[i]`` is 1 (the masked adder tree
        of a spike-driven linear layer: mask = spikes, inputs = one weight column).
    fault : None or "tree_input"
        Test only: "tree_input" drops input ``n_inputs - 1`` (a single-input defect).

    Ports
    -----
    i_valid : In(1)
    inputs : In(ArrayLayout(signed(width), n_inputs)); popcount: In(unsigned(n_inputs))
    mask : In(unsigned(n_inputs)), only when ``masked``
    o_valid : Out(1)
        ``i_valid`` delayed by the latency.
    sum : Out(signed(width + levels)); popcount: Out(unsigned(levels + 1))
        Exact: a level of 2^l inputs needs at most l more bits, so it cannot overflow.

    Latency: ``tree_latency(n_inputs, register_every)`` = ceil(levels / k) cycles (0 if k = 0),
    levels = ceil(log2(n_inputs)). Throughput one sum per cycle.

    Resources: n_inputs - 1 adders, the one at level l of (width + l) bits (popcount: l + 1);
    registers: the live partial sums at every registered level (at most n_inputs/2^l of them).
    """

    def __init__(self, n_inputs: int, width: int = 1, register_every: int = 0, *,
                 popcount: bool = False, masked: bool = False, fault=None):
        owner = "AdderTree"
        check_int(owner, "n_inputs", n_inputs, 1)
        check_int(owner, "width", width, 1, 64)
        check_int(owner, "register_every", register_every, 0, 64)
        check_bool(owner, "popcount", popcount)
        check_bool(owner, "masked", masked)
        check_fault(owner, fault)
        if fault not in (None, "tree_input"):
            fault = None  # other faults do not concern the tree
        self.n_inputs = n_inputs
        self.popcount = popcount
        self.masked = masked
        self.width = 1 if popcount else width
        self.register_every = register_every
        self.fault = fault
        self.levels = tree_levels(n_inputs)
        self.latency = tree_latency(n_inputs, register_every)
        if popcount:
            in_shape = unsigned(n_inputs)
            out_shape = unsigned(self.levels + 1)
        else:
            in_shape = data.ArrayLayout(signed(width), n_inputs)
            out_shape = signed(width + self.levels)
        members = {"i_valid": In(1), "inputs": In(in_shape), "o_valid": Out(1), "sum": Out(out_shape)}
        if masked:
            members["mask"] = In(unsigned(n_inputs))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        n = self.n_inputs
        # Level 0: the (masked) inputs at their own width.
        level = []
        for i in range(n):
            if self.popcount:
                v = self.inputs[i]
                shape = unsigned(1)
            else:
                v = self.inputs[i]
                shape = signed(self.width)
            if self.masked:
                v = Mux(self.mask[i], v, 0)
            if self.fault == "tree_input" and i == n - 1:
                v = 0
            s = Signal(shape, name=f"l0_{i}")
            m.d.comb += s.eq(v)
            level.append(s)
        valid = self.i_valid
        for lvl in range(1, self.levels + 1):
            reg = self.register_every and (lvl % self.register_every == 0 or lvl == self.levels)
            shape = unsigned(lvl + 1) if self.popcount else signed(self.width + lvl)
            nxt = []
            for i in range(0, len(level), 2):
                s = Signal(shape, name=f"l{lvl}_{i // 2}", reset_less=bool(reg))  # data: no reset net
                val = level[i] + level[i + 1] if i + 1 < len(level) else level[i]
                (m.d.sync if reg else m.d.comb).__iadd__(s.eq(val))
                nxt.append(s)
            if reg:
                v = Signal(name=f"valid_l{lvl}")
                m.d.sync += v.eq(valid)
                valid = v
            level = nxt
        m.d.comb += [self.sum.eq(level[0]), self.o_valid.eq(valid)]
        return m
