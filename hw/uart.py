"""8N1 UART receiver and transmitter with `lib.stream` byte ports.

Both count a fixed ``divisor`` of clock cycles per bit (``divisor = round(f_clk / baud)``; the
baud error is ``|f_clk / divisor - baud| / baud`` and should stay below about 2 %, which
`divisor_for` checks). No oversampling: the receiver re-times on every start bit and samples
each bit in its middle, which tolerates the usual few percent of clock mismatch over 10 bits.
"""

from __future__ import annotations

from amaranth import Module, Signal, Cat, C
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UARTRx", "UARTTx", "divisor_for", "MIN_DIVISOR"]

MIN_DIVISOR = 4  # the 2-flop synchronizer plus a mid-bit sample need a few cycles per bit


def _check_divisor(divisor) -> int:
    if isinstance(divisor, bool) or not isinstance(divisor, int):
        raise TypeError(f"UART divisor must be an integer number of cycles per bit, not {divisor!r}")
    if divisor < MIN_DIVISOR:
        raise ValueError(f"UART divisor must be at least {MIN_DIVISOR} cycles per bit, not {divisor}")
    return divisor


def divisor_for(clk_hz: float, baud: int, max_error: float = 0.02) -> int:
    """Cycles per bit for `baud` at `clk_hz`; raises if the rounding error exceeds `max_error`."""
    if baud <= 0:
        raise ValueError(f"baud rate must be positive, not {baud}")
    divisor = round(clk_hz / baud)
    if divisor < MIN_DIVISOR:
        raise ValueError(
            f"baud rate {baud} is too fast for a {clk_hz / 1e6:g} MHz clock (needs >= {MIN_DIVISOR} "
            f"cycles per bit; at most {int(clk_hz // MIN_DIVISOR)} baud)"
        )
    err = abs(clk_hz / divisor - baud) / baud
    if err > max_error:
        raise ValueError(
            f"baud rate {baud} is {100 * err:.1f} % off at {clk_hz / 1e6:g} MHz (divisor {divisor}); "
            "choose another baud rate or clock"
        )
    return divisor


class UARTRx(wiring.Component):
    """UART receiver, 8 data bits, no parity, 1 stop bit, LSB first.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (>= 4).

    Members
    -------
    rx : In(1)
        The line (idle high); asynchronous, synchronized inside by two flops.
    o : Out(stream.Signature(8))
        Received bytes. ``valid`` rises one cycle after the middle of the stop bit and stays
        until ``ready``.
    overrun : Out(1)
        Pulses for one cycle when a byte completes while the previous one is still not taken;
        the new byte is dropped.
    frame_error : Out(1)
        Pulses for one cycle when a stop bit reads 0 (noise, break or wrong baud); the byte is dropped.

    Latency: 2 (synchronizer) + 9.5 bit times from the start edge to ``o.valid``.
    Resources: about 20 FF + log2(divisor) FF, a few tens of LUT4.
    """

    def __init__(self, divisor: int):
        self.divisor = _check_divisor(divisor)
        super().__init__({
            "rx": In(1, init=1),
            "o": Out(stream.Signature(8)),
            "overrun": Out(1),
            "frame_error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        rx = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, rx, init=1)

        timer = Signal(range(self.divisor))
        bits = Signal(range(9))
        shreg = Signal(8)
        tick = timer == 0
        m.d.sync += timer.eq(timer - 1)  # wraps harmlessly in IDLE, where it is reloaded

        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        m.d.sync += [self.overrun.eq(0), self.frame_error.eq(0)]

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += timer.eq(self.divisor // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(tick):
                    with m.If(rx):  # a glitch, not a start bit
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += [timer.eq(self.divisor - 1), bits.eq(0)]
                        m.next = "DATA"
            with m.State("DATA"):
                with m.If(tick):
                    m.d.sync += [
                        timer.eq(self.divisor - 1),
                        shreg.eq(Cat(shreg[1:], rx)),
                        bits.eq(bits + 1),
                    ]
                    with m.If(bits == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(tick):
                    with m.If(~rx):
                        m.d.sync += self.frame_error.eq(1)
                    with m.Elif(self.o.valid & ~self.o.ready):
                        m.d.sync += self.overrun.eq(1)
                    with m.Else():
                        m.d.sync += [self.o.payload.eq(shreg), self.o.valid.eq(1)]
                    # leave at mid-stop-bit so the next start edge is seen without delay
                    m.next = "IDLE"
        return m


class UARTTx(wiring.Component):
    """UART transmitter, 8N1, LSB first.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (>= 4).

    Members
    -------
    i : In(stream.Signature(8))
        Bytes to send; ``ready`` is high while the transmitter is idle (one byte in flight).
    tx : Out(1)
        The line, idle high, registered (no glitches).

    Latency: 1 cycle from ``i.valid & i.ready`` to the start bit; a byte takes 10 bit times.
    Resources: about 14 FF + log2(divisor) FF.
    """

    def __init__(self, divisor: int):
        self.divisor = _check_divisor(divisor)
        super().__init__({
            "i": In(stream.Signature(8)),
            "tx": Out(1, init=1),
        })

    def elaborate(self, platform):
        m = Module()
        timer = Signal(range(self.divisor))
        shreg = Signal(10, init=0x3FF)
        bits = Signal(range(11))
        busy = bits != 0

        m.d.comb += [self.i.ready.eq(~busy), self.tx.eq(shreg[0])]
        with m.If(self.i.valid & ~busy):
            # stop bit (1), data LSB first, start bit (0) in shreg[0]
            m.d.sync += [
                shreg.eq(Cat(C(0, 1), self.i.payload, C(1, 1))),
                bits.eq(10),
                timer.eq(self.divisor - 1),
            ]
        with m.Elif(busy):
            with m.If(timer == 0):
                m.d.sync += [
                    shreg.eq(Cat(shreg[1:], C(1, 1))),
                    bits.eq(bits - 1),
                    timer.eq(self.divisor - 1),
                ]
            with m.Else():
                m.d.sync += timer.eq(timer - 1)
        return m
