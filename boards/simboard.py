"""The simulated board: `BoardTop` in Amaranth's simulator, driven through its UART pins.

`SimTransport` is a transport for `boards.host.Host`: ``write`` queues bytes that a testbench
shifts into the ``uart_rx`` pin bit by bit (8N1, ``divisor`` cycles per bit); a second
testbench decodes the ``uart_tx`` pin back into bytes; ``read`` advances the simulation until
bytes arrive or its timeout (in *simulated* seconds) passes. The host therefore runs unchanged,
with its timeouts and retries, against the gateware link (hw/link.py) and UART (hw/uart.py).

Time: the board runs at a nominal ``clock_hz`` (default 1 MHz, so IDENTITY says 1000 kHz); with
the default ``divisor`` 4 a bit takes 4 cycles (250 kbaud nominal) and a byte 40 cycles. The
host's timeouts count simulated seconds (`SimBoard.host` picks ones that fit the core), and
every `read` also checks a wall-clock limit, so a wedged simulation fails with `SimWallLimit`
instead of hanging.

Fault injection for tests (`SimTransport.drop`, `.flip`): indices of host->device bytes never
sent, and index -> XOR mask, counted over all bytes written since the transport was made.

Cores: `SimBoard` takes any core with the link's streams (`hw.platforms.core_signature`).

* ``"rtl"``: `hw.core.NetworkCore`, the real network datapath (hw/top.py), baked with the
  artifact. Bit-exact with quant.golden; about 12k cycles per digits image with the "small"
  hardware preset; 11 to 15 s of wall time per image (12.7k core cycles + 5.9k UART cycles) in
  Amaranth's Python simulator on 2 shared cores, measured.
* ``"golden"``: `GoldenCore`, a behavioural stand-in whose answers the testbench computes with
  quant.golden.forward after a fixed latency: it exercises the UART, link and host only, 1.0 to
  1.8 s per image.

With ``monitor=True`` a testbench watches the core's ports and records, per image, the pixels
the core accepted and the clock edges from the one accepting the first pixel to the one raising
``result.valid`` (`SimBoard.core_log`): an independent check of the RESULT's ``cycles`` field.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from amaranth.lib import wiring
from amaranth.sim import Simulator

from boards.host import Host, HostError
from boards.protocol import (
    FLAG_LOADABLE, FLAG_SPIKE_COUNTS, LOAD_CHUNK_MAX, LOAD_HEADER_LEN, MAX_PAYLOAD, VERSION, Identity, Result,
)
from hw.platforms import BoardTop, core_signature
from quant.artifact import SHIPPED_ARTIFACT

__all__ = [
    "SimTransport", "SimBoard", "GoldenCore", "identity_for", "default_artifact", "SimWallLimit",
    "CoreRecord", "DEFAULT_ARTIFACT",
]

DEFAULT_ARTIFACT = SHIPPED_ARTIFACT


class SimWallLimit(HostError):
    """The simulated board ran past its wall-clock limit (a wedged simulation)."""


def identity_for(cfg, hw_cfg=None, *, clock_khz: int = 1000, config_hash32: int | None = None,
                 spike_layers: int | None = None, loadable: bool | None = None) -> Identity:
    """The IDENTITY a bitstream for `cfg` answers (lanes from `hw_cfg`, default: the "default" preset).

    Spike counts: one per layer of ``quant.golden.spike_layers(cfg)`` (flag SPIKE_COUNTS);
    LOADABLE when ``hw_cfg.weights == "loadable"``. A core without them (the shell) passes
    ``spike_layers=0, loadable=False``.
    """
    from model.config import HW_PRESETS
    from quant.golden import spike_layers as layers_of

    hw_cfg = hw_cfg or HW_PRESETS["default"]
    if spike_layers is None:
        spike_layers = len(layers_of(cfg))
    if loadable is None:
        loadable = hw_cfg.weights == "loadable"
    flags = (FLAG_LOADABLE if loadable else 0) | (FLAG_SPIKE_COUNTS if spike_layers else 0)
    h, w, c = cfg.image_shape
    return Identity(
        protocol=VERSION,
        config_hash32=cfg.hash32 if config_hash32 is None else config_hash32,
        weight_bits=cfg.weight_bits,
        lanes=hw_cfg.lanes,
        token_lanes=hw_cfg.token_lanes,
        classes=cfg.classes,
        pixels=h * w * c,
        pixel_bits=cfg.pixel_bits,
        spike_layers=spike_layers,
        flags=flags,
        clock_khz=clock_khz,
    )


def default_artifact(seed: int = 0):
    """(artifact, description): the shipped artifacts/digits-tiny.npz when present, else
    ``random_artifact(PRESETS["digits-tiny"], seed)``."""
    from quant.artifact import load_artifact, random_artifact

    if DEFAULT_ARTIFACT.is_file():
        return load_artifact(DEFAULT_ARTIFACT), str(DEFAULT_ARTIFACT)
    from model.config import PRESETS

    return random_artifact(PRESETS["digits-tiny"], seed), f"random_artifact(digits-tiny, seed={seed})"


async def _ticks(ctx, n: int) -> None:
    # plain one-shot ticks: TickTrigger.repeat() keeps an async iterator open, which complains
    # ("aclose(): asynchronous generator is already running") when a background testbench
    # suspended inside it is garbage-collected
    for _ in range(n):
        await ctx.tick()


class GoldenCore(wiring.Component):
    """Behavioural core: the simulator answers each image with quant.golden's result.

    No gateware of its own; `SimBoard` adds its `testbench`, which takes the pixels, runs the
    golden model and presents the result ``latency`` cycles after the last pixel. Its ``cycles``
    follow `hw.top.Top`'s count (clock edges from the one that accepts the first pixel to the
    one that raises ``result.valid``): pixels + latency - 1; its spike counts are
    quant.golden.spike_counts. Its weights are baked (no ``wload``).

    Members: ``pixels`` In, ``result`` Out (see `hw.platforms.core_signature`).
    """

    def __init__(self, artifact, latency: int = 50):
        cfg = artifact.config
        self.artifact = artifact
        self.latency = latency
        from quant.golden import spike_layers

        self.spike_layers = len(spike_layers(cfg))
        super().__init__(core_signature(cfg.pixel_bits, cfg.classes, self.spike_layers))

    def elaborate(self, platform):
        from amaranth import Module

        return Module()

    async def testbench(self, ctx):
        from quant.golden import forward, spike_counts

        cfg = self.artifact.config
        h, w, c = cfg.image_shape
        while True:
            px = []
            ctx.set(self.pixels.ready, 1)
            while True:
                _, _, valid, data, last = await ctx.tick().sample(
                    self.pixels.valid, self.pixels.payload.data, self.pixels.payload.last
                )
                if valid:
                    px.append(data)
                    if last:
                        break
            ctx.set(self.pixels.ready, 0)
            if len(px) != h * w * c:
                raise AssertionError(f"GoldenCore: an image of {len(px)} pixels, expected {h * w * c}")
            image = np.array(px, np.int64).reshape(1, h, w, c)
            r = forward(self.artifact, image, record=True)
            counts = spike_counts(cfg, r)[0]
            await _ticks(ctx, self.latency)
            ctx.set(self.result.payload.cls, int(r["pred"][0]))
            ctx.set(self.result.payload.cycles, self.latency + len(px) - 1)
            for i, v in enumerate(r["logits"][0]):
                ctx.set(self.result.payload.logits[i], int(v))
            for i, v in enumerate(counts):
                ctx.set(self.result.payload.spikes[i], int(v))
            ctx.set(self.result.valid, 1)
            while True:
                _, _, ready = await ctx.tick().sample(self.result.ready)
                if ready:
                    break
            ctx.set(self.result.valid, 0)


class SimTransport:
    """Bytes to and from the simulated board's UART pins (see the module doc)."""

    def __init__(self, board: "SimBoard", *, wall_limit: float = 600.0):
        self.board = board
        self.to_device: deque[int] = deque()
        self.from_device: deque[int] = deque()
        self.written = 0
        self.drop: set[int] = set()
        self.flip: dict[int, int] = {}
        self.wall_limit = wall_limit
        self._t0 = time.monotonic()

    def clock(self) -> float:
        """Simulated seconds: the host's timeouts count these."""
        return self.board.now

    def write(self, data: bytes) -> None:
        for b in data:
            i = self.written
            self.written += 1
            if i in self.drop:
                continue
            self.to_device.append(b ^ self.flip.get(i, 0))

    def read(self, n: int, timeout: float) -> bytes:
        board = self.board
        # at least one cycle for any timeout > 0: a caller's deadline a float error past a whole
        # cycle (e.g. 15730.000000000002 cycles) must still advance time, or its retry loop spins
        deadline = board.cycles + (math.ceil(timeout / board.period) if timeout > 0 else 0)
        step = 16 * 10 * board.divisor  # 16 byte times
        while len(self.from_device) < n and board.cycles < deadline:
            board.run_cycles(min(deadline, board.cycles + step) - board.cycles)
            if time.monotonic() - self._t0 > self.wall_limit:
                raise SimWallLimit(
                    f"the simulated board ran past its wall-clock limit of {self.wall_limit:g} s "
                    f"(at {board.cycles} simulated cycles); the simulation is wedged or too slow"
                )
            if self.from_device and not self.to_device and not board.receiving:
                break  # a response is complete for now: hand over what we have
        return bytes(self.from_device.popleft() for _ in range(min(n, len(self.from_device))))


@dataclass
class CoreRecord:
    """What the monitor saw at the core's ports for one image."""

    pixels: list[int] = field(default_factory=list)
    # clock edges from the one that accepts the first pixel to the one that raises result.valid:
    # what hw.top.Top counts in its ``cycles``
    cycles: int | None = None
    result: tuple | None = None  # (cls, cycles field, logits) as the core presented them


class SimBoard:
    """`BoardTop` around a core in Amaranth's simulator, at a nominal ``clock_hz``.

    Parameters
    ----------
    core : a wiring.Component with `core_signature`'s members (NetworkCore, GoldenCore, ...)
    identity : Identity     what IDENTIFY answers (and the link checks CLASSIFY against)
    divisor : int           UART cycles per bit (>= 4)
    clock_hz : float        the nominal clock, for the simulated seconds of the host's timeouts
    timeout_cycles : int    the link's frame timeout (default: BoardTop's, 64 bit times)
    answer_cycles : int     the longest a request may keep the core busy; `host` adds it to the
                            response timeout (a timeout that fires costs that much simulation)
    monitor : bool          record each image at the core's ports in `core_log`
    vcd : str               write a waveform
    wall_limit : float      wall-clock seconds after which a `read` raises `SimWallLimit`
    """

    def __init__(self, core, identity: Identity, *, divisor: int = 4, clock_hz: float = 1e6,
                 timeout_cycles: int | None = None, answer_cycles: int = 1000, monitor: bool = False,
                 vcd: str | None = None, wall_limit: float = 600.0):
        self.core = core
        self.identity = identity
        self.divisor = divisor
        self.clock_hz = clock_hz
        self.period = 1.0 / clock_hz
        self.answer_cycles = answer_cycles
        self.top = BoardTop(core, identity, uart_divisor=divisor, timeout_cycles=timeout_cycles)
        self.transport = SimTransport(self, wall_limit=wall_limit)
        self.receiving = False
        self.cycles = 0
        self.core_log: list[CoreRecord] = []
        self.sim = Simulator(self.top)
        self.sim.add_clock(self.period)
        self.sim.add_testbench(self._drive_rx, background=True)
        self.sim.add_testbench(self._sample_tx, background=True)
        if hasattr(core, "testbench"):
            self.sim.add_testbench(core.testbench, background=True)
        if monitor:
            self.sim.add_testbench(self._monitor, background=True)
        self._vcd = None
        if vcd:
            self._vcd = self.sim.write_vcd(vcd)
            self._vcd.__enter__()

    @classmethod
    def for_artifact(cls, artifact, core: str = "rtl", hw="small", **kw) -> "SimBoard":
        """A board for `artifact`: ``core="rtl"`` (NetworkCore with HW preset or config `hw`; with
        ``weights="loadable"`` the artifact is only the power-on contents) or ``"golden"``
        (GoldenCore, weights fixed); keyword arguments go to `SimBoard`."""
        from model.config import HW_PRESETS

        hw_cfg = HW_PRESETS[hw] if isinstance(hw, str) else hw
        if core == "rtl":
            from hw.core import NetworkCore

            kw.setdefault("answer_cycles", 200_000)
            c = NetworkCore(artifact, hw_cfg)
        elif core == "golden":
            c = GoldenCore(artifact)
            kw.setdefault("answer_cycles", c.latency + 2000)
        else:
            raise ValueError(f"core must be 'rtl' or 'golden', not {core!r}")
        clock_hz = kw.get("clock_hz", 1e6)
        # GoldenCore's weights are the artifact's, fixed: it never advertises LOADABLE
        loadable = getattr(c, "image", None) is not None
        return cls(c, identity_for(artifact.config, hw_cfg, clock_khz=round(clock_hz / 1000), loadable=loadable), **kw)

    # --- time ---------------------------------------------------------------------------
    @property
    def now(self) -> float:
        """Simulated seconds since the start."""
        return self.cycles * self.period

    @property
    def byte_time(self) -> float:
        """Simulated seconds per UART byte (10 bits)."""
        return 10 * self.divisor * self.period

    def run_cycles(self, n: int) -> None:
        n = max(1, int(n))
        self.cycles += n
        # deadlines on whole cycles (a half period in), so float rounding never lands on an edge
        self.sim.run_until((self.cycles + 0.5) * self.period)

    def host(self, **kw) -> Host:
        """A `Host` on this board with timeouts in simulated time that fit it.

        Response timeout: the longest request and response on the line plus `answer_cycles`;
        drain: 16 quiet byte times. Both can be overridden by keyword.
        """
        request = 4 + self.identity.pixels
        if self.identity.loadable:  # a LOAD_WEIGHTS frame can be longer than a CLASSIFY
            request = max(request, LOAD_HEADER_LEN + LOAD_CHUNK_MAX)
        frame_bytes = (2 + 5 + 2) * 2 + request + Result.length(self.identity.classes, self.identity.spike_layers)
        kw.setdefault("timeout", 2 * frame_bytes * self.byte_time + self.answer_cycles * self.period)
        kw.setdefault("drain", 16 * self.byte_time)
        return Host(self.transport, **kw)

    # --- testbenches --------------------------------------------------------------------
    async def _drive_rx(self, ctx):
        q = self.transport.to_device
        d = self.divisor
        ctx.set(self.top.uart_rx, 1)
        while True:
            if not q:
                await _ticks(ctx, d)
                continue
            b = q.popleft()
            for bit in [0] + [(b >> i) & 1 for i in range(8)] + [1]:
                ctx.set(self.top.uart_rx, bit)
                await _ticks(ctx, d)

    async def _sample_tx(self, ctx):
        d = self.divisor
        while True:
            await ctx.negedge(self.top.uart_tx)
            self.receiving = True
            await _ticks(ctx, d // 2)
            value = 0
            for i in range(8):
                await _ticks(ctx, d)
                value |= ctx.get(self.top.uart_tx) << i
            await _ticks(ctx, d)
            stop = ctx.get(self.top.uart_tx)
            self.receiving = False
            if stop:
                self.transport.from_device.append(value)

    async def _monitor(self, ctx):
        px, res = self.core.pixels, self.core.result
        layout = res.payload.shape()
        rec, first = None, None
        n = 0
        while True:
            _, _, pv, pr, pd, rv, rr, raw = await ctx.tick().sample(
                px.valid, px.ready, px.payload.data, res.valid, res.ready, res.payload.as_value()
            )
            n += 1
            if pv and pr:
                if rec is None:
                    rec, first = CoreRecord(), n
                rec.pixels.append(pd)
            if rv and rec is not None and rec.cycles is None:
                r = layout.from_bits(raw)
                rec.cycles = n - first - 1  # valid is first *sampled* one edge after it rose
                rec.result = (r.cls, r.cycles, tuple(r.logits[i] for i in range(len(res.payload.logits))))
            if rv and rr and rec is not None:
                self.core_log.append(rec)
                rec = None

    def close(self):
        if self.cycles == 0:
            self.run_cycles(1)  # start the testbench coroutines, so none is left never awaited
        if self._vcd is not None:
            self._vcd.__exit__(None, None, None)
            self._vcd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
