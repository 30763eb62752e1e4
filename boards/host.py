"""The host side of the UART link: requests, timeouts, retries and resynchronisation.

`Host` speaks boards/protocol.py over any *transport*: an object with

* ``write(data: bytes) -> None``
* ``read(n: int, timeout: float) -> bytes``: up to `n` bytes, waiting at most `timeout`
  seconds for the first ones (fewer, or none, when the line stays quiet)

`SerialTransport` wraps a pyserial port; `boards.simboard.SimTransport` is the simulated board.

Every request carries a fresh sequence number and waits for the response with that number; a
response that does not arrive within ``timeout``, a NAK that says the frame was damaged
(BAD_CRC, BAD_LENGTH, TIMEOUT), or garbage on the line makes the host drain the line and send
the request again, up to ``retries`` more times; then `LinkTimeout`. NAKs that a retry cannot
fix (CONFIG_MISMATCH, UNSUPPORTED, UNKNOWN_COMMAND, BAD_VERSION, BAD_PAYLOAD) raise
`DeviceRefused` at once, with a hint. A NAK is matched to the request by its sequence number,
except the three "damaged frame" NAKs, whose sequence number may itself be the damaged byte.
Nothing waits without a bound: the worst case per request is (retries + 1) x timeout plus the
drains (each ends after ``drain`` seconds of quiet, or after ``timeout`` at most).

Checks that need no device are made before anything is sent: an image of the wrong size or
pixel range, an artifact whose config hash is not the bitstream's (`ConfigMismatch`), and
LOAD_WEIGHTS to a bitstream whose IDENTITY says its weights are baked in (`WeightsBaked`).

`Host.load_weights` sends an artifact's parameter image (`hw.param_image.ParamImage` for the
device's lane count) in chunks of whole rows and checks every LOADED answer: the chunk's offset
and length, the CRC-16 of the bytes the datapath took, and the device's image size.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from boards.protocol import (
    LOAD_CHUNK_MAX, VERSION, Cmd, Frame, FrameDecoder, Identity, Loaded, Nak, ProtocolError, Result,
    classify_payload, crc16, encode_frame, load_weights_payload, parse_nak,
)

__all__ = [
    "Host", "HostError", "LinkTimeout", "DeviceRefused", "ConfigMismatch", "WeightsBaked",
    "SerialTransport", "open_serial", "LinkStats", "REBUILD_HINT", "rebuild_hint",
]

def rebuild_hint(artifact: str | None = None, board: str = "ulx3s") -> str:
    """The command that builds (and programs) a bitstream for `artifact` on `board`."""
    return f"python -m hw.build --board {board} --artifact {artifact or 'ARTIFACT'} --program"


REBUILD_HINT = rebuild_hint()

RETRYABLE = {Nak.BAD_CRC, Nak.BAD_LENGTH, Nak.TIMEOUT}


class HostError(Exception):
    """The link failed; the message says what happened and what to try."""


class LinkTimeout(HostError):
    """No valid response after every retry."""


class ConfigMismatch(HostError):
    """The artifact's config hash is not the bitstream's; nothing was sent."""


class WeightsBaked(HostError):
    """LOAD_WEIGHTS asked of a bitstream with baked weights (IDENTITY flags); nothing was sent."""


class DeviceRefused(HostError):
    """The device answered with a NAK that retrying cannot fix; ``code`` is the `Nak` code."""

    def __init__(self, code: int, cmd: int, hint: str = ""):
        self.code = code
        self.cmd = cmd
        self.hint = hint
        try:
            meaning = Nak(code).meaning
            name = Nak(code).name
        except ValueError:
            meaning, name = "unknown NAK code", str(code)
        super().__init__(f"device refused {_cmd_name(cmd)}: NAK {name} ({meaning}){hint}")


def _cmd_name(cmd: int) -> str:
    try:
        return Cmd(cmd).name
    except ValueError:
        return f"command 0x{cmd:02x}"


@dataclass
class LinkStats:
    requests: int = 0
    retries: int = 0
    timeouts: int = 0
    naks: int = 0
    bad_frames: int = 0      # responses dropped for a bad CRC or length
    stale: int = 0           # responses to an earlier sequence number, dropped
    nak_codes: dict = field(default_factory=dict)  # Nak name (or number) -> count


class Host:
    """A request/response client for one device.

    Parameters
    ----------
    transport : object with ``write`` and ``read`` (see the module doc)
    timeout : float
        Seconds to wait for each response.
    retries : int
        Extra attempts after a timeout or a damaged frame.
    drain : float
        Quiet time (seconds) that ends the draining of the line before a retry.
    board : str
        The `hw.platforms.BOARDS` name the rebuild hints in error messages name.
    """

    def __init__(self, transport, *, timeout: float = 1.0, retries: int = 3, drain: float = 0.05,
                 board: str = "ulx3s"):
        if timeout <= 0 or drain <= 0 or retries < 0:
            raise ValueError(f"timeout and drain must be > 0 and retries >= 0; got {timeout}, {drain}, {retries}")
        self.transport = transport
        self.timeout = timeout
        self.retries = retries
        self.drain = drain
        self.board = board
        self.stats = LinkStats()
        self._seq = 0
        self._identity: Identity | None = None

    # --- framing ----------------------------------------------------------------------------
    def _drain(self) -> None:
        """Read and drop bytes until the line has been quiet for ``drain`` seconds (at most ``timeout``)."""
        end = self._clock() + self.timeout
        while self._clock() < end and self.transport.read(4096, self.drain):
            pass

    def _await(self, seq: int, cmd: int, expect: int, deadline: float) -> Frame | None:
        dec = FrameDecoder()
        while True:
            left = deadline - self._clock()
            if left <= 0:
                return None
            chunk = self.transport.read(1, left)
            if not chunk:
                continue
            chunk += self.transport.read(4096, 0)  # whatever else is already waiting
            before = dec.bad
            frames = dec.feed(chunk)
            self.stats.bad_frames += dec.bad - before
            for f in frames:
                if f.cmd == Cmd.NAK and self._nak_is_ours(f, seq, cmd):
                    return f
                if f.cmd == expect and f.seq == seq:
                    return f
                self.stats.stale += 1

    @staticmethod
    def _nak_is_ours(f: Frame, seq: int, cmd: int) -> bool:
        if f.seq == seq:
            return True
        # a NAK for a damaged frame echoes what the device received: the damage may be the seq
        return len(f.payload) == 2 and f.payload[0] in RETRYABLE

    def _clock(self) -> float:
        # a simulated transport keeps its own (simulated) time
        clock = getattr(self.transport, "clock", None)
        return clock() if clock else time.monotonic()

    def request(self, cmd: int, payload: bytes, expect: int) -> Frame:
        """Send one request and return its response frame, retrying as the module doc says."""
        self.stats.requests += 1
        last = "no response"
        for attempt in range(self.retries + 1):
            if attempt:
                self.stats.retries += 1
                self._drain()
            self._seq = (self._seq + 1) & 0xFF
            seq = self._seq
            self.transport.write(encode_frame(cmd, payload, seq))
            f = self._await(seq, cmd, expect, self._clock() + self.timeout)
            if f is None:
                self.stats.timeouts += 1
                last = f"no response within {self.timeout:g} s"
                continue
            if f.cmd == Cmd.NAK:
                self.stats.naks += 1
                try:
                    code, ncmd = parse_nak(f.payload)
                except ProtocolError as e:
                    last = str(e)
                    continue
                name = Nak(code).name if code in Nak._value2member_map_ else str(code)
                self.stats.nak_codes[name] = self.stats.nak_codes.get(name, 0) + 1
                if code in RETRYABLE:
                    last = f"NAK {Nak(code).name} ({Nak(code).meaning})"
                    continue
                raise DeviceRefused(code, cmd, self._hint(code, cmd))
            return f
        raise LinkTimeout(
            f"{_cmd_name(cmd)} failed after {self.retries + 1} attempts (last: {last}); check the "
            "port, the baud rate (both ends must agree) and that the board holds an STF-FPGA bitstream"
        )

    def _hint(self, code: int, cmd: int = 0) -> str:
        if code == Nak.BAD_PAYLOAD and cmd == Cmd.LOAD_WEIGHTS:
            return ("; the chunk is not whole rows inside the device's parameter image (hw.param_image): "
                    "send Host.load_weights' chunks, or rebuild the bitstream from this checkout")
        if code == Nak.CONFIG_MISMATCH:
            return f"; the bitstream was built for another model config: rebuild it for this artifact ({rebuild_hint(board=self.board)})"
        if code == Nak.UNSUPPORTED:
            return f"; this bitstream has its weights baked in: rebuild it with the artifact instead ({rebuild_hint(board=self.board)})"
        if code == Nak.BAD_VERSION:
            return "; update the host tool or the bitstream so both speak the same protocol version"
        if code == Nak.UNKNOWN_COMMAND:
            return "; the bitstream is older than this host tool: rebuild it from this checkout"
        if code == Nak.BAD_PAYLOAD:
            return "; scale the image to the model's pixel range (IDENTITY pixel_bits)"
        return ""

    # --- commands ---------------------------------------------------------------------------
    def identify(self) -> Identity:
        f = self.request(Cmd.IDENTIFY, b"", Cmd.IDENTITY)
        try:
            ident = Identity.decode(f.payload)
        except ProtocolError as e:
            raise HostError(f"the device's IDENTITY answer is malformed: {e}") from None
        if ident.protocol != VERSION:
            raise HostError(
                f"the device speaks protocol version {ident.protocol}, this host tool {VERSION}; "
                "update the host tool or rebuild the bitstream from this checkout"
            )
        self._identity = ident
        return ident

    def check_config(self, config_hash32: int, name: str | None = None) -> None:
        """Raise `ConfigMismatch` (sending nothing) unless the bitstream has this config hash."""
        dev = self.identity.config_hash32
        if config_hash32 != dev:
            shell = " (hash 0: a shell bitstream without the network)" if dev == 0 else ""
            raise ConfigMismatch(
                f"{name or 'the artifact'} has config hash {config_hash32:08x}, the bitstream {dev:08x}{shell}; "
                f"rebuild the bitstream for it: {rebuild_hint(name, self.board)}"
            )

    @property
    def identity(self) -> Identity:
        return self._identity if self._identity is not None else self.identify()

    def classify(self, image, config_hash32: int | None = None) -> Result:
        """Classify one image: integers in [0, 2**pixel_bits), any shape of IDENTITY's pixel count.

        `config_hash32`, when given, is the config hash the caller's artifact has: a bitstream
        with another raises `ConfigMismatch` before anything is sent.
        """
        ident = self.identity
        if config_hash32 is not None:
            self.check_config(config_hash32)
        px = np.asarray(image)
        if not np.issubdtype(px.dtype, np.integer):
            raise HostError(f"image pixels must be integers, not {px.dtype}")
        px = px.reshape(-1)
        if px.size != ident.pixels:
            raise HostError(f"image has {px.size} pixels; the device's model takes {ident.pixels}")
        hi = (1 << ident.pixel_bits) - 1
        if px.size and (px.min() < 0 or px.max() > hi):
            raise HostError(f"pixel values must be in [0, {hi}] (pixel_bits={ident.pixel_bits}); got [{px.min()}, {px.max()}]")
        f = self.request(Cmd.CLASSIFY, classify_payload(ident.config_hash32, px.astype(np.uint8).tobytes()), Cmd.RESULT)
        try:
            r = Result.decode(f.payload)
        except ProtocolError as e:
            raise HostError(f"the device's RESULT answer is malformed: {e}") from None
        if len(r.logits) != ident.classes:
            raise HostError(f"RESULT carries {len(r.logits)} logits; the device said it has {ident.classes} classes")
        if len(r.spike_counts) != ident.spike_layers:
            raise HostError(f"RESULT carries {len(r.spike_counts)} spike counts; the device said it reports "
                            f"{ident.spike_layers} spike layers")
        return r

    def load_weights(self, artifact, name: str | None = None, *, chunk_size: int = LOAD_CHUNK_MAX,
                     progress=None) -> list[Loaded]:
        """Send an artifact's parameters to a bitstream with loadable weights, and verify them.

        Checked before anything is sent: the artifact's config hash against the device's
        (`ConfigMismatch`), the LOADABLE flag (`WeightsBaked`, with the rebuild command) and
        `chunk_size` (whole rows of at most LOAD_CHUNK_MAX bytes). The image is
        ``hw.param_image.ParamImage(config, IDENTITY lanes).pack(artifact)``, sent as
        LOAD_WEIGHTS chunks of whole rows; each LOADED answer must echo the chunk's offset and
        length, the CRC-16 of its bytes and the image size, else `HostError`.
        ``progress(sent_bytes, total_bytes)`` is called after every chunk. Returns the LOADED
        answers. The device keeps the weights until it is reprogrammed or powered off.
        """
        ident = self.identity
        self.check_config(artifact.config.hash32, name)
        if not ident.loadable:
            raise WeightsBaked(
                f"this bitstream has its weights baked in (IDENTITY flags 0x{ident.flags:02x}: not loadable), "
                f"so {name or 'the artifact'} cannot be loaded at run time; rebuild the bitstream with it: "
                f"{rebuild_hint(name, self.board)}, or build a loadable one (--hw-config '{{\"weights\": \"loadable\"}}')"
            )
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or not 1 <= chunk_size <= LOAD_CHUNK_MAX:
            raise HostError(f"chunk_size must be an integer in 1..{LOAD_CHUNK_MAX} (the device's chunk buffer), "
                            f"not {chunk_size!r}")
        from hw.param_image import ImageError, ParamImage

        image = ParamImage(artifact.config, ident.lanes)
        try:
            data = image.pack(artifact)
            chunks = image.chunks(chunk_size)
        except ImageError as e:
            raise HostError(f"cannot send {name or 'the artifact'}: {e}; use a larger chunk_size") from None
        total = sum(n for _, n in chunks)
        sent, answers = 0, []
        for off, n in chunks:
            part = data[off:off + n]
            f = self.request(Cmd.LOAD_WEIGHTS, load_weights_payload(ident.config_hash32, off, part), Cmd.LOADED)
            try:
                ack = Loaded.decode(f.payload)
            except ProtocolError as e:
                raise HostError(f"the device's LOADED answer is malformed: {e}") from None
            want = Loaded(off, n, crc16(part), image.size)
            if ack != want:
                raise HostError(
                    f"weight load not verified at offset {off}: the device answered {ack}, expected {want}; "
                    f"the device's parameter image ({ack.image_size} bytes) and this host tool's "
                    f"({image.size} bytes for {ident.lanes} lanes) disagree, or bytes were lost inside the device: "
                    "rebuild the bitstream from this checkout")
            answers.append(ack)
            sent += n
            if progress is not None:
                progress(sent, total)
        return answers


class SerialTransport:
    """A pyserial port as a transport."""

    def __init__(self, port):
        self.port = port

    def write(self, data: bytes) -> None:
        self.port.write(data)
        self.port.flush()

    def read(self, n: int, timeout: float) -> bytes:
        """Up to `n` bytes: what is waiting, or else the first to arrive within `timeout` s."""
        waiting = self.port.in_waiting
        if waiting or timeout <= 0:
            return self.port.read(min(n, waiting)) if waiting else b""
        self.port.timeout = timeout
        first = self.port.read(1)
        if not first or n == 1:
            return first
        return first + self.port.read(min(n - 1, self.port.in_waiting))

    def close(self) -> None:
        self.port.close()


def open_serial(path: str, baud: int, where: str = "ULX3S: its FTDI port, usually /dev/ttyUSB0") -> SerialTransport:
    """Open a serial port; a missing pyserial, or a missing or busy port, raises `HostError`.

    `where` says where the board's port is (the missing-port message quotes it)."""
    import os

    try:
        import serial
    except ImportError:
        raise HostError(
            "pyserial is not installed; install the project (bash scripts/setup-env.sh) or "
            "'pip install pyserial', or try the simulated board with --sim"
        ) from None
    if isinstance(baud, bool) or not isinstance(baud, int) or baud <= 0:
        raise HostError(f"baud rate must be a positive integer, not {baud!r}")
    if not os.path.exists(path):
        raise HostError(
            f"serial port {path} does not exist; is the board plugged in? ({where}; "
            "list ports with: python -m serial.tools.list_ports; or use --sim)"
        )
    try:
        return SerialTransport(serial.Serial(path, baud, timeout=0.1))
    except (serial.SerialException, OSError, ValueError) as e:
        raise HostError(
            f"cannot open {path}: {e} (another program using it? permission: add yourself to the "
            "dialout group)"
        ) from None
