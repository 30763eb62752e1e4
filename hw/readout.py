"""`Readout`: per-timestep logits from the head spikes, summed over T; argmax."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Mux, Module, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hw.adder_tree import AdderTree, tree_latency
from hw.common import ceil_div, check_fault, check_int

__all__ = ["Readout"]


class Readout(wiring.Component):
    """``logits[c] += sum over token lanes k of acc[k][c] (+ bias[c])``, then an argmax.

    The head's spike-driven linear layer (`SpikeLinear` over the head weights) leaves, for a group
    of TL tokens, TL partial logit vectors of P classes (one output chunk); an `AdderTree` per
    class lane sums them over the token lanes and the result is added to the logit registers.
    Adding the bias once per timestep makes ``logits = sum over t of (counts[t] @ W + b)`` as in
    quant.golden.forward. The argmax keeps the lowest class of the largest logit, so a tie goes
    to the lowest index (quant.contract.argmax_lowest): a registered tournament of ceil(log2 C)
    levels, each comparing neighbours and keeping the right one only when it is strictly larger.

    Parameters
    ----------
    classes : int >= 2            C.
    lanes : int >= 1              P, classes per chunk (ceil(C/P) chunks).
    token_lanes : int >= 1        TL, partial sums reduced per cycle.
    acc_bits : int                signed bits of one partial logit (SpikeLinear.acc_bits).
    bias_bits : int
    logit_bits : int              signed bits of a logit summed over T (Widths.logit_bits).
    register_every : int          adder tree pipelining (HardwareConfig.tree_register_every).
    fault : passed to the trees ("tree_input" drops a token lane).

    Ports
    -----
    clear : In(1)                 logits <= 0 (start of an image).
    i_valid : In(1), i_ch : In(range(chunks)), i_add_bias : In(1)
    i_acc : In(ArrayLayout(ArrayLayout(signed(acc_bits), P), TL))
    i_bias : In(ArrayLayout(signed(bias_bits), P))
    start : In(1)                 begin the argmax (logits must be final).
    done : Out(1)                 pulse; `cls` is valid and held.
    cls : Out(range(C))
    logits : Out(ArrayLayout(signed(logit_bits), C))

    Latency: accumulate: tree latency + 2 cycles, one chunk per cycle; argmax (`argmax_latency`):
    ceil(log2 C) + 1 cycles from `start` to `done` (5 for 10 classes).

    Resources: P adder trees of TL inputs, C logit registers with adders; for the argmax C - 1
    comparators of logit_bits with their (logit, class) registers and muxes.
    """

    def __init__(self, classes: int, lanes: int, token_lanes: int, acc_bits: int, bias_bits: int,
                 logit_bits: int, *, register_every: int = 0, fault=None):
        owner = "Readout"
        check_int(owner, "classes", classes, 2, 1 << 16)
        check_int(owner, "lanes", lanes, 1, 4096)
        check_int(owner, "token_lanes", token_lanes, 1, 4096)
        check_int(owner, "acc_bits", acc_bits, 2, 48)
        check_int(owner, "bias_bits", bias_bits, 2, 48)
        check_int(owner, "logit_bits", logit_bits, 2, 64)
        check_fault(owner, fault)
        self.classes, self.lanes, self.token_lanes = classes, lanes, token_lanes
        self.acc_bits, self.bias_bits, self.logit_bits = acc_bits, bias_bits, logit_bits
        self.register_every, self.fault = register_every, fault
        self.chunks = ceil_div(classes, lanes)
        self.latency = self.accumulate_latency(token_lanes, register_every)
        super().__init__({
            "clear": In(1),
            "i_valid": In(1), "i_ch": In(range(self.chunks)), "i_add_bias": In(1),
            "i_acc": In(data.ArrayLayout(data.ArrayLayout(signed(acc_bits), lanes), token_lanes)),
            "i_bias": In(data.ArrayLayout(signed(bias_bits), lanes)),
            "start": In(1), "done": Out(1), "cls": Out(range(classes)),
            "logits": Out(data.ArrayLayout(signed(logit_bits), classes)),
        })

    @staticmethod
    def argmax_levels(classes: int) -> int:
        """Compare levels of the argmax tournament: ceil(log2 C)."""
        return max(1, (classes - 1).bit_length())

    @staticmethod
    def argmax_latency(classes: int) -> int:
        """Cycles from `start` to `done`: the levels, then `cls` registered."""
        return Readout.argmax_levels(classes) + 1

    @staticmethod
    def accumulate_latency(token_lanes: int, register_every: int) -> int:
        """Cycles from an `i_valid` to its logits: the tree, the bias/enable stage, the add."""
        return tree_latency(token_lanes, register_every) + 2

    def elaborate(self, platform):
        m = Module()
        P, TL, C = self.lanes, self.token_lanes, self.classes
        trees = []
        for j in range(P):
            tree = AdderTree(TL, self.acc_bits, self.register_every, fault=self.fault)
            m.submodules[f"sum{j}"] = tree
            m.d.comb += tree.i_valid.eq(self.i_valid)
            for k in range(TL):
                m.d.comb += tree.inputs[k].eq(self.i_acc[k][j])
            trees.append(tree)
        lat = trees[0].latency
        ch, bias, add_bias = self.i_ch, self.i_bias, self.i_add_bias
        for i in range(lat):  # the chunk index and bias travel with the tree
            ch2, bias2, ab2 = (Signal.like(ch, name=f"ch_d{i}", reset_less=True),
                             Signal.like(bias, name=f"bias_d{i}", reset_less=True), Signal(name=f"ab_d{i}", reset_less=True))
            m.d.sync += [ch2.eq(ch), bias2.eq(bias), ab2.eq(add_bias)]
            ch, bias, add_bias = ch2, bias2, ab2
        # One more stage adds the bias to the tree's sum and decodes the chunk, so a logit
        # register sees one two-input add under a registered enable (the three-input add behind
        # the chunk compare was a 13.3 ns path at e9bf161).
        addend = [Signal(signed(len(trees[j].sum) + 1), name=f"addend{j}", reset_less=True) for j in range(P)]
        for j in range(P):
            m.d.sync += addend[j].eq(trees[j].sum + Mux(add_bias, bias[j], 0))
        hit = Signal(self.chunks)
        for k in range(self.chunks):
            m.d.sync += hit[k].eq(trees[0].o_valid & (ch == k))
        for c in range(C):
            chunk, j = divmod(c, P)
            with m.If(self.clear):
                m.d.sync += self.logits[c].eq(0)
            with m.Elif(hit[chunk]):
                m.d.sync += self.logits[c].eq(self.logits[c] + addend[j])

        # The argmax is a registered tournament: each level compares neighbouring (value, class)
        # pairs and keeps the right one only when it is strictly larger, so the lower class
        # wins a tie at every level and the lowest class wins overall. The serial scan it
        # replaces (C + 1 cycles) had a loop through one comparator into its own enables
        # (11-12 ns on the 85F at 050bd56); a level here is one compare and a mux.
        cls_bits = len(self.cls)
        level = [(self.logits[c], Const(c, cls_bits)) for c in range(C)]
        for lv in range(self.argmax_levels(C)):
            nxt = []
            for i in range(0, len(level), 2):
                v = Signal(signed(self.logit_bits), name=f"am{lv}_{i // 2}_v", reset_less=True)
                c = Signal(cls_bits, name=f"am{lv}_{i // 2}_c", reset_less=True)
                (a_v, a_c) = level[i]
                if i + 1 < len(level):  # an odd one out passes to the next level as it is
                    (b_v, b_c) = level[i + 1]
                    right = b_v > a_v
                    a_v, a_c = Mux(right, b_v, a_v), Mux(right, b_c, a_c)
                m.d.sync += [v.eq(a_v), c.eq(a_c)]
                nxt.append((v, c))
            level = nxt
        busy = Signal(self.argmax_levels(C))  # the start's way through the levels
        m.d.sync += busy.eq(Cat(self.start, busy[:-1]))
        m.d.sync += self.done.eq(busy[-1])
        with m.If(busy[-1]):
            m.d.sync += self.cls.eq(level[0][1])
        return m
