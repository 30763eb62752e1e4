"""Drivers, monitors and the scoreboard shared by the cocotb benches.

Two sides use this module:

* the **cocotb side** (inside the simulator): `load_inputs` / `load_params` / `save_outputs`
  move data through the run folder that `sim.runner.run` made; `StreamDriver` feeds a
  ``lib.stream``-style input (Amaranth flattens ``i.valid`` / ``i.ready`` / ``i.payload`` into
  ports ``i__valid``, ``i__ready``, ``i__payload``), `StreamMonitor` collects what leaves an
  output stream; both can stall at random (seeded) to exercise backpressure;
* the **pytest side**: `compare_layers` / `first_mismatch` check what the monitors collected
  against the golden model and report the first difference as
  ``layer/t/token/channel: expected x got y (seed S)``.

Handshake timing used by driver and monitor: inputs are written just after a rising edge,
``valid AND ready`` is sampled in the ReadOnly phase of the same cycle (combinational paths
settled), and a transfer happens at the next rising edge. That is the ``lib.stream`` rule.
"""

from __future__ import annotations

import io
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

__all__ = [
    "run_dir",
    "load_inputs",
    "load_params",
    "load_ports",
    "save_outputs",
    "pack",
    "unpack",
    "to_int",
    "start_clock_and_reset",
    "StreamDriver",
    "StreamMonitor",
    "CycleCounter",
    "Mismatch",
    "first_mismatch",
    "compare_layers",
    "compare_arrays",
]


# --------------------------------------------------------------------------------------------
# Files between pytest and cocotb


def run_dir() -> Path:
    d = os.environ.get("STF_SIM_RUN")
    if not d:
        raise RuntimeError("STF_SIM_RUN is not set: start cocotb benches through sim.runner.run")
    return Path(d)


def load_inputs() -> dict[str, np.ndarray]:
    with np.load(run_dir() / "inputs.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def load_params() -> dict[str, Any]:
    return json.loads((run_dir() / "params.json").read_text())


def load_ports() -> dict[str, dict]:
    """Port manifest of the design under test: name -> {width, direction, signed, fields}."""
    path = os.environ.get("STF_SIM_PORTS")
    if not path:
        raise RuntimeError("STF_SIM_PORTS is not set: start cocotb benches through sim.runner.run")
    return {p["name"]: p for p in json.loads(Path(path).read_text())}


def drive_inputs_low(dut, ports: dict[str, dict]) -> None:
    """Drive every input port (but the clock) to 0 before a bench starts.

    Verilator starts undriven inputs at 0, Icarus at Z, which then spreads as X through the
    datapath (and a bench that passes on one simulator hangs on the other); a bench drives
    what it uses afterwards.
    """
    for name, port in ports.items():
        if port["direction"] == "in" and port["width"] > 0 and name != "clk":
            getattr(dut, name).value = 0


def save_outputs(**arrays: Any) -> Path:
    """Write outputs.npz into the run folder (atomically: a crash leaves no half file)."""
    from quant.artifact import atomic_write_bytes

    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return atomic_write_bytes(run_dir() / "outputs.npz", buf.getvalue(), overwrite=True)


# --------------------------------------------------------------------------------------------
# Packing struct payloads


def pack(port: Mapping[str, Any], values: Mapping[str, int]) -> int:
    """Flat unsigned integer for a struct/array port from {field: value} (fields as in the manifest)."""
    fields = port["fields"]
    unknown = set(values) - set(fields)
    if unknown:
        raise KeyError(f"port {port['name']} has no field(s) {sorted(unknown)}; fields: {sorted(fields)}")
    word = 0
    for name, value in values.items():
        off, width, signed = fields[name]
        v = int(value)
        lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
        if not lo <= v <= hi:
            raise ValueError(f"{port['name']}.{name} = {v} does not fit {width} {'signed' if signed else 'unsigned'} bits")
        word |= (v & ((1 << width) - 1)) << off
    return word


def unpack(port: Mapping[str, Any], word: int) -> dict[str, int]:
    out = {}
    for name, (off, width, signed) in port["fields"].items():
        out[name] = to_int((word >> off) & ((1 << width) - 1), width, signed)
    return out


def to_int(raw: int, width: int, signed: bool) -> int:
    if signed and width and raw >> (width - 1) & 1:
        return raw - (1 << width)
    return raw


# --------------------------------------------------------------------------------------------
# cocotb: clock, reset, streams (cocotb is imported lazily so the pytest side needs no simulator)


async def start_clock_and_reset(dut, period_ns: int = 10, cycles: int = 2):
    """Start ``clk`` and hold ``rst`` (when the design has one) for `cycles` rising edges."""
    from cocotb.clock import Clock
    from cocotb.triggers import RisingEdge

    Clock(dut.clk, period_ns, unit="ns").start(start_high=False)
    has_rst = hasattr(dut, "rst")
    if has_rst:
        dut.rst.value = 1
    for _ in range(cycles):
        await RisingEdge(dut.clk)
    if has_rst:
        dut.rst.value = 0


def _read(handle, signed: bool, where: str) -> int:
    v = handle.value
    if not v.is_resolvable:
        raise AssertionError(f"{where} is not a defined value (X/Z): {v}")
    if not hasattr(v, "to_unsigned"):  # a 1-bit port reads as a Logic
        return int(v)
    return v.to_signed() if signed else v.to_unsigned()


def _high(handle) -> bool:
    """A 1-bit handshake signal is 1. X/Z (Icarus shows X before reset settles registers that
    Verilator would start at 0) counts as not asserted; a stuck X then ends in the bench timeout."""
    v = handle.value
    return v.is_resolvable and int(v) == 1


class CycleCounter:
    """Counts rising edges from its start; `cycles` is read by the test when it finishes."""

    def __init__(self, dut):
        import cocotb
        from cocotb.triggers import RisingEdge

        self.cycles = 0

        async def count():
            while True:
                await RisingEdge(dut.clk)
                self.cycles += 1

        self._task = cocotb.start_soon(count())


class StreamDriver:
    """Drives stream `prefix` of `dut` (``<prefix>__valid/__ready/__payload``).

    ``stall``: probability of an idle cycle (valid low) before each item, from a
    ``random.Random(seed)`` so a failing pattern replays with the same seed. Items are integers
    (the flat payload) or dicts of fields for struct payloads.
    """

    def __init__(self, dut, prefix: str, ports: Mapping[str, dict], *, stall: float = 0.0, seed: int = 0):
        self.dut = dut
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready", None)
        pname = f"{prefix}__payload"
        self.payload = getattr(dut, pname)
        self.port = ports[pname]
        self.stall = stall
        self.rng = random.Random(seed)
        self.sent = 0
        self.valid.value = 0

    def _word(self, item) -> int:
        if isinstance(item, Mapping):
            return pack(self.port, item)
        width = self.port["width"]
        v = int(item)
        return v & ((1 << width) - 1)

    async def send(self, items: Iterable[Any]) -> None:
        from cocotb.triggers import ReadOnly, RisingEdge

        clk = self.dut.clk
        for item in items:
            while self.stall and self.rng.random() < self.stall:
                self.valid.value = 0
                await RisingEdge(clk)
            self.payload.value = self._word(item)
            self.valid.value = 1
            await ReadOnly()
            while self.ready is not None and not _high(self.ready):
                await RisingEdge(clk)
                await ReadOnly()
            await RisingEdge(clk)
            self.sent += 1
        self.valid.value = 0


class StreamMonitor:
    """Collects every transfer of output stream `prefix` into `items` (ints, or dicts of fields).

    Drives ``<prefix>__ready`` when the stream has one: low with probability ``stall`` each
    cycle (seeded). Runs until `stop` is called; `wait(n, timeout_cycles)` waits for n items.
    """

    def __init__(self, dut, prefix: str, ports: Mapping[str, dict], *, stall: float = 0.0, seed: int = 0,
                 decode_fields: bool = True):
        import cocotb

        self.dut = dut
        self.prefix = prefix
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready", None)
        pname = f"{prefix}__payload"
        self.payload = getattr(dut, pname)
        self.port = ports[pname]
        self.fields = decode_fields and bool(self.port["fields"])
        self.stall = stall
        self.rng = random.Random(seed)
        self.items: list[Any] = []
        self.cycle_of: list[int] = []
        self._cycle = 0
        self._task = cocotb.start_soon(self._run())

    async def _run(self):
        from cocotb.triggers import ReadOnly, RisingEdge

        clk = self.dut.clk
        width, signed = self.port["width"], self.port["signed"]
        while True:
            if self.ready is not None:
                self.ready.value = 0 if (self.stall and self.rng.random() < self.stall) else 1
            await ReadOnly()
            if _high(self.valid) and (self.ready is None or _high(self.ready)):
                raw = _read(self.payload, False, f"{self.prefix}__payload at cycle {self._cycle}")
                self.items.append(unpack(self.port, raw) if self.fields else to_int(raw, width, signed))
                self.cycle_of.append(self._cycle)
            await RisingEdge(clk)
            self._cycle += 1

    async def wait(self, count: int, timeout_cycles: int) -> None:
        """Return once `count` items arrived; fail naming the stream after `timeout_cycles`."""
        from cocotb.triggers import RisingEdge

        for _ in range(timeout_cycles):
            if len(self.items) >= count:
                return
            await RisingEdge(self.dut.clk)
        if len(self.items) < count:
            raise AssertionError(
                f"{self.prefix}: {len(self.items)} of {count} expected transfers after {timeout_cycles} cycles "
                "(the design hangs or drops data)"
            )

    def stop(self):
        self._task.cancel()


# --------------------------------------------------------------------------------------------
# Scoreboard (pytest side)


@dataclass(frozen=True)
class Mismatch:
    """The first difference between golden and hardware values, with its coordinates."""

    layer: str
    t: int | None
    token: int | None
    channel: int | None
    expected: Any
    got: Any
    seed: int | None = None
    image: int | None = None

    def __str__(self) -> str:
        coords = "/".join("-" if c is None else str(c) for c in (self.t, self.token, self.channel))
        where = f"image {self.image}: " if self.image is not None else ""
        seed = f" (seed {self.seed})" if self.seed is not None else ""
        return f"{where}{self.layer}/{coords}: expected {self.expected} got {self.got}{seed}"


def compare_arrays(name: str, expected: np.ndarray, got: np.ndarray, axes: Sequence[str],
                   seed: int | None = None, image: int | None = None) -> Mismatch | None:
    """First differing element of two arrays whose axes are named from ("t", "token", "channel").

    A shape difference is itself a mismatch (reported with the shapes as values).
    """
    expected = np.asarray(expected)
    got = np.asarray(got)
    if expected.shape != got.shape:
        return Mismatch(name, None, None, None, f"shape {expected.shape}", f"shape {got.shape}", seed, image)
    diff = np.argwhere(expected != got)
    if len(diff) == 0:
        return None
    idx = tuple(int(i) for i in diff[0])  # argwhere is in C order: earliest t, then token, then channel
    coord = dict(zip(axes, idx))
    return Mismatch(name, coord.get("t"), coord.get("token"), coord.get("channel"),
                    expected[idx].item(), got[idx].item(), seed, image)


def _axes_for(ndim: int, name: str) -> tuple[str, ...]:
    if ndim == 3:
        return ("t", "token", "channel")
    if ndim == 2:
        return ("t", "channel")
    if ndim == 1:
        return ("channel",)
    raise ValueError(f"record {name} has {ndim} axes; expected [T, N, C], [T, C] or [C]")


def compare_layers(expected: Mapping[str, np.ndarray], got: Mapping[str, np.ndarray], layers: Sequence[str],
                   seed: int | None = None, image: int | None = None) -> Mismatch | None:
    """First mismatch over `layers` in network order (one image: arrays [T, N, C] or [T, C]).

    Layers are checked in the given order and, inside a layer, t, token, channel ascending: with
    a layer-major schedule the first wrong layer is where a fault entered. A layer missing from
    `got` is a mismatch too.
    """
    for name in layers:
        if name not in got:
            return Mismatch(name, None, None, None, "a record", "nothing (layer missing from the hardware trace)",
                            seed, image)
        e = np.asarray(expected[name])
        m = compare_arrays(name, e, got[name], _axes_for(e.ndim, name), seed, image)
        if m is not None:
            return m
    return None


def first_mismatch(golden: Mapping[str, np.ndarray], hw: Mapping[str, np.ndarray], layers: Sequence[str],
                   extra: Sequence[str] = ("logits_t", "logits", "pred"), seed: int | None = None,
                   image: int | None = None) -> Mismatch | None:
    """Spikes of every layer, then the integer outputs named in `extra` that `hw` has."""
    m = compare_layers(golden, hw, layers, seed, image)
    if m is not None:
        return m
    for name in extra:
        if name in hw:
            e = np.asarray(golden[name])
            m = compare_arrays(name, e, hw[name], _axes_for(max(e.ndim, 1), name) if e.ndim else (), seed, image)
            if m is not None:
                return m
    return None
