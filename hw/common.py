"""Small helpers shared by the hardware components: parameter checks, packing, delays.

Packing convention (used by every memory image in hw/): lane ``j`` of a packed word occupies
bits ``[j*bits, (j+1)*bits)``, two's complement for signed values. `pack` builds memory init
values in Python, `lane` reads them back in hardware.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from amaranth.hdl import Cat, Const, Mux, Signal, signed, unsigned, Value

from quant.contract import bits_for

__all__ = ["check_int", "check_bool", "pack", "unpack", "lane", "delay", "sbits", "ubits", "ceil_div", "FAULTS",
           "REPLICA_PREFIX", "KEEP_REPLICAS", "BROADCAST_LATENCY", "kept_register", "replicas", "broadcast",
           "lowest_set_index", "ConstantReadPort", "baked_read_port"]

# Test-only deliberate defects (see hw.top.Top): each flips a single detail of the contract.
FAULTS = (None, "leak_round", "tree_input")


def check_int(owner: str, name: str, value, lo: int, hi: int | None = None) -> int:
    """Raise TypeError for a non-integer and ValueError outside [lo, hi] (hi None: unbounded)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{owner}: {name} must be an integer, not {value!r}")
    if value < lo or (hi is not None and value > hi):
        rng = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise ValueError(f"{owner}: {name} must be {rng}, got {value}")
    return value


def check_bool(owner: str, name: str, value) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{owner}: {name} must be True or False, not {value!r}")
    return value


def check_fault(owner: str, fault) -> None:
    if fault not in FAULTS:
        raise ValueError(f"{owner}: fault must be one of {FAULTS}, not {fault!r}")


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def sbits(bound: int) -> int:
    """Signed bits that hold every integer in [-bound, bound]."""
    return bits_for(-bound, bound)


def ubits(bound: int) -> int:
    """Unsigned bits that hold every integer in [0, bound]."""
    return max(1, int(bound).bit_length())


def pack(values: Iterable[int], bits: int) -> int:
    """Lane j of the result holds values[j] in `bits` bits (two's complement)."""
    mask = (1 << bits) - 1
    word = 0
    for j, v in enumerate(values):
        v = int(v)
        if not -(1 << (bits - 1)) <= v < (1 << bits):
            raise ValueError(f"value {v} does not fit in {bits} bits")
        word |= (v & mask) << (j * bits)
    return word


def unpack(word: int, bits: int, count: int, is_signed: bool = True) -> list[int]:
    out = []
    for j in range(count):
        v = (word >> (j * bits)) & ((1 << bits) - 1)
        if is_signed and v >> (bits - 1):
            v -= 1 << bits
        out.append(v)
    return out


def lane(word: Value, j: int, bits: int, is_signed: bool = True) -> Value:
    """Lane j of a packed word (see the module doc)."""
    v = word.word_select(j, bits)
    return v.as_signed() if is_signed else v


def delay(m, value: Value, cycles: int, name: str) -> Value:
    """`value` delayed by `cycles` clock cycles through a chain of registers in `sync`."""
    cur = value
    for i in range(cycles):
        r = Signal.like(cur, name=f"{name}_d{i + 1}") if isinstance(cur, Signal) else Signal(cur.shape(), name=f"{name}_d{i + 1}")
        m.d.sync += r.eq(cur)
        cur = r
    return cur


# Registers named REPLICA_PREFIX + ... are copies of one value made to split a high fan-out net
# (`replicas`). Yosys's opt_merge folds registers with identical inputs back into one, and a
# `keep` on the wire does not stop it; a `keep` on the flip-flop cell does. KEEP_REPLICAS is the
# Yosys step hw.build runs right after reading the design to put it there. It starts from the
# copies' wires and from every wire with a `keep` attribute: where a copy drives a submodule's
# port, Amaranth may name the flip-flop's output after the port and leave the copy's own name as
# an alias (a `connect`), which the cell search does not follow; the alias's wire inherits the
# copy's `keep`. Starting from the prefix alone left 58 copies of the 85F default unkept (the
# encoder's 32 pixel copies, the image clears, memory address copies), and Yosys merged them
# (s23a: the three image-clear copies into one flip-flop with 441 loads).
REPLICA_PREFIX = "frep_"
KEEP_REPLICAS = ("proc", f"setattr -set keep 1 w:{REPLICA_PREFIX}* w:* a:keep %i %u %ci1:+[Q] c:* %i")


def replicas(m, value: Value, copies: int, name: str) -> list[Signal]:
    """`copies` registers in `sync`, each holding `value` one cycle later.

    Each copy drives a share of the loads, so no single net spans all of them: a registered
    enable driving 384 accumulator bits across the chip was a 19 ns route on the 85F. The
    copies are named ``frep_<name>_<i>`` and carry a `keep` attribute (Verilog consumers);
    hw.build keeps them apart in Yosys with `KEEP_REPLICAS`. They are reset-less (the domain
    reset would otherwise reach every copy: a net as wide as the one being split); they start at
    0 from the bitstream and follow `value` one cycle after a reset.
    """
    check_int("replicas", "copies", copies, 1)
    return [_kept_copy(m, value, f"{name}_{i}") for i in range(copies)]


def kept_register(shape, name: str) -> Signal:
    """A reset-less signal named and marked for `KEEP_REPLICAS`: for copies of one register
    that the caller updates alike (a counter kept once per reader), which Yosys must not fold."""
    return Signal(shape, name=f"{REPLICA_PREFIX}{name}", attrs={"keep": 1}, reset_less=True)


def _kept_copy(m, value: Value, name: str) -> Signal:
    """One register holding `value` a cycle later, named and marked for `KEEP_REPLICAS`."""
    r = kept_register(value.shape(), name)
    m.d.sync += r.eq(value)
    return r


BROADCAST_LATENCY = 2  # cycles from a `broadcast` value to its copies


def broadcast(m, value: Value, copies: int, name: str, fanout: int = 8) -> list[Signal]:
    """`copies` registers holding `value` `BROADCAST_LATENCY` = 2 cycles later, through a tree of
    kept copies (`replicas`): ceil(copies / fanout) first-level registers, each driving at
    most `fanout` of the copies. For a control that reaches every accumulator: one register
    driving 64 copies spread over the accumulators' area was a 10.7 ns route on the 85F."""
    check_int("broadcast", "copies", copies, 1)
    check_int("broadcast", "fanout", fanout, 1)
    first = replicas(m, value, ceil_div(copies, fanout), f"{name}_t")
    return [_kept_copy(m, first[i // fanout], f"{name}_{i}") for i in range(copies)]


def lowest_set_index(vec: Value) -> tuple[Value, Value]:
    """(any bit set, index of the lowest set bit) of `vec`, as a radix-4 priority tree: each level
    picks the first of four groups that has a bit set and appends that group's number above the
    group's own index, so the depth is about log4(len) two-LUT levels with no carry chain. The
    index has max(1, ceil(log2 len)) bits and is meaningless when no bit is set."""
    n = len(vec)
    width = max(1, (n - 1).bit_length())
    nodes = [(vec[i], Const(0, 0)) for i in range(n)]
    while len(nodes) > 1:
        nodes += [(Const(0, 1), Const(0, len(nodes[0][1])))] * (-len(nodes) % 4)
        level = []
        for g in range(0, len(nodes), 4):
            (z0, i0), (z1, i1), (z2, i2), (z3, i3) = nodes[g:g + 4]
            low = Mux(z0, i0, Mux(z1, i1, Mux(z2, i2, i3)))
            group = Mux(z0, 0, Mux(z1, 1, Mux(z2, 2, 3)))
            level.append((z0 | z1 | z2 | z3, Cat(low, group[:2])))
        nodes = level
    nz, idx = nodes[0]
    return nz, Cat(idx, Const(0, width))[:width]


class ConstantReadPort:
    """What the read port of a baked one-row ROM reads: its row, always (``addr`` is ignored).

    Why: Yosys keeps such a read port as flip-flops with constant inputs (their init is 0, so it
    cannot fold them into constants), and opt_merge then merges equal constant bits all over the
    design into one flip-flop: on the 85F a single constant-1 bit (of the encoder's one-row bias
    ROM) fed 93 loads across the chip, an 11.3 ns route into the attention LIF (s23a). As a
    constant it folds into the logic it feeds. It differs from the memory only before the first
    read (the memory's read register powers up at 0), which no component looks at.
    """

    def __init__(self, row: int, width: int, name: str):
        self.addr = Signal(0, name=f"{name}_addr_unused")
        self.data = Const(row, width)


def baked_read_port(m, name: str, rows: Sequence[int], width: int, *, writable: bool):
    """A registered read port of a memory of `rows` (its init), or a `ConstantReadPort` when it
    has one row and no write port (`writable` False). Returns (memory or None, read port)."""
    from amaranth.lib import memory
    if len(rows) == 1 and not writable:
        return None, ConstantReadPort(rows[0], width, name)
    mem = memory.Memory(shape=unsigned(width), depth=len(rows), init=rows)
    m.submodules[name] = mem
    return mem, mem.read_port()
