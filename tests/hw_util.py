"""Shared helpers of the tests/test_hw_*.py Amaranth-simulator tests."""

from __future__ import annotations

import os

import numpy as np
from amaranth.sim import Simulator


def seed_for(name: str) -> int:
    """The seed of a randomized test: STF_SEED overrides; printed so a failure can be replayed."""
    s = int(os.environ.get("STF_SEED", sum(map(ord, name)) * 7919 % 100003))
    print(f"{name}: seed {s} (replay with STF_SEED={s})")
    return s


def run_sim(dut, bench, vcd: str | None = None, platform=None) -> None:
    """Simulate `dut` elaborated for `platform` (None: no platform, as Amaranth's simulator)."""
    from amaranth.hdl import Fragment, Module, Signal

    m = Module()  # a wrapper with a register, so a purely combinational DUT still has `sync`
    m.submodules.dut = dut
    toggle = Signal()
    m.d.sync += toggle.eq(~toggle)
    sim = Simulator(Fragment.get(m, platform))
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()


def raw(ctx, port) -> int:
    """Integer value of a port (a plain signal or a data.View) as its raw bits."""
    v = port.as_value() if hasattr(port, "as_value") else port
    return ctx.get(v)


def set_raw(ctx, port, value: int) -> None:
    v = port.as_value() if hasattr(port, "as_value") else port
    ctx.set(v, int(value))


def lanes_of(word: int, bits: int, count: int, signed: bool = True) -> np.ndarray:
    from hw.common import unpack
    return np.array(unpack(word, bits, count, signed), np.int64)
