"""The host link's framing: pure Python encode/decode and CRC, shared by the host and the tests.

docs/host-protocol.md is the prose form of this module; hw/link.py is its gateware twin.

Frame (both directions)::

    SYNC0 SYNC1 | VER CMD SEQ LEN_LO LEN_HI | PAYLOAD (LEN bytes) | CRC_HI CRC_LO
    0xA5  0x5A  |<------------- covered by the CRC ------------->|

The CRC is CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF, no reflection, no final
XOR; check value 0x29B1 for b"123456789"), sent most significant byte first, so that running the
CRC over the covered bytes *and* the two CRC bytes leaves 0 (the gateware checks exactly that).
``SEQ`` is chosen by the host and echoed in the response, so a late answer to an earlier,
retried request is recognised and dropped. Multi-byte fields are little-endian.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field

__all__ = [
    "SYNC",
    "VERSION",
    "HEADER_LEN",
    "MAX_PAYLOAD",
    "Cmd",
    "Nak",
    "ProtocolError",
    "crc16",
    "Frame",
    "encode_frame",
    "FrameDecoder",
    "Identity",
    "Result",
    "Loaded",
    "LOAD_CHUNK_MAX",
    "LOAD_HEADER_LEN",
    "classify_payload",
    "load_weights_payload",
    "nak_payload",
    "parse_nak",
    "RESPONSE_BIT",
]

SYNC = b"\xA5\x5A"
VERSION = 1
HEADER_LEN = 5  # VER CMD SEQ LEN_LO LEN_HI
# Longest payload either side accepts: a 28x28x3 image plus the 4-byte config hash fits with room
# to spare. A header announcing more is answered with NAK BAD_LENGTH at once.
MAX_PAYLOAD = 4096
RESPONSE_BIT = 0x80
# LOAD_WEIGHTS: config hash u32 + offset u32, then at most LOAD_CHUNK_MAX bytes of the parameter
# image (the device buffers a chunk in one block RAM until its CRC checks).
LOAD_HEADER_LEN = 8
LOAD_CHUNK_MAX = 2048


class Cmd(enum.IntEnum):
    IDENTIFY = 0x01
    LOAD_WEIGHTS = 0x02
    CLASSIFY = 0x03
    # responses: the request's command with RESPONSE_BIT set, or NAK
    IDENTITY = 0x81
    LOADED = 0x82
    RESULT = 0x83
    NAK = 0xFF


class Nak(enum.IntEnum):
    """Codes carried by a NAK response (payload: code, offending command)."""

    BAD_CRC = 1          # the frame's CRC did not match
    BAD_LENGTH = 2       # LEN above MAX_PAYLOAD, or not the length the command needs
    UNKNOWN_COMMAND = 3
    BAD_VERSION = 4      # VER is not the device's protocol version
    CONFIG_MISMATCH = 5  # the request's config hash is not the one this bitstream was built for
    UNSUPPORTED = 6      # the command exists but this bitstream cannot do it (e.g. baked weights)
    TIMEOUT = 7          # a frame stopped arriving part-way (a dropped byte): abandoned
    BAD_PAYLOAD = 8      # an intact frame whose payload is invalid (a pixel above the pixel range,
                         # a LOAD_WEIGHTS chunk that does not start and end on row boundaries of the image)

    @property
    def meaning(self) -> str:
        return {
            Nak.BAD_CRC: "the frame's CRC-16 did not match (corrupted on the line)",
            Nak.BAD_LENGTH: "the frame's length field is wrong for its command",
            Nak.UNKNOWN_COMMAND: "the device does not know this command",
            Nak.BAD_VERSION: "the device speaks another protocol version",
            Nak.CONFIG_MISMATCH: "the config hash does not match the bitstream's model config",
            Nak.UNSUPPORTED: "this bitstream cannot do that (weights are baked in)",
            Nak.TIMEOUT: "the frame stopped arriving part-way (a byte was lost)",
            Nak.BAD_PAYLOAD: "a pixel above the model's pixel range, or a LOAD_WEIGHTS chunk that is not whole "
                             "rows inside the parameter image",
        }[self]


class ProtocolError(Exception):
    """A frame or payload cannot be decoded; the message says which field is wrong."""


def _crc_table() -> list[int]:
    table = []
    for b in range(256):
        c = b << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x1021) if c & 0x8000 else (c << 1)
        table.append(c & 0xFFFF)
    return table


_CRC_TABLE = _crc_table()


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE of `data` (continue a running CRC by passing it as `crc`)."""
    for b in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC_TABLE[((crc >> 8) ^ b) & 0xFF]
    return crc


@dataclass(frozen=True)
class Frame:
    cmd: int
    seq: int = 0
    payload: bytes = b""
    version: int = VERSION

    def encode(self) -> bytes:
        return encode_frame(self.cmd, self.payload, self.seq, self.version)


def encode_frame(cmd: int, payload: bytes = b"", seq: int = 0, version: int = VERSION, *,
                 max_payload: int = MAX_PAYLOAD) -> bytes:
    """The bytes of one frame (sync, header, payload, CRC); see the module doc.

    Raises `ProtocolError` for a field that is not a byte or a payload above `max_payload`
    (pass ``max_payload=0xFFFF`` to build an over-long frame on purpose, for tests).
    """
    for name, v in (("cmd", cmd), ("seq", seq), ("version", version)):
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 0xFF:
            raise ProtocolError(f"{name} must be a byte (0..255), not {v!r}")
    if len(payload) > min(max_payload, 0xFFFF):
        raise ProtocolError(
            f"payload of {len(payload)} bytes is longer than the {min(max_payload, 0xFFFF)} bytes a frame may carry"
        )
    body = bytes([version, cmd, seq]) + struct.pack("<H", len(payload)) + bytes(payload)
    return SYNC + body + struct.pack(">H", crc16(body))


class FrameDecoder:
    """Incremental frame parser: feed bytes as they come, take complete frames out.

    Bytes before a sync pattern are skipped (counted in ``skipped``); a frame whose CRC does
    not match, or whose length exceeds `max_payload`, is dropped (counted in ``bad``) and the
    search restarts one byte after its sync, so a sync pattern inside a broken frame is found.
    """

    def __init__(self, max_payload: int = MAX_PAYLOAD):
        self.max_payload = max_payload
        self.buf = bytearray()
        self.skipped = 0
        self.bad = 0

    def feed(self, data: bytes) -> list[Frame]:
        self.buf += data
        frames = []
        while True:
            i = self.buf.find(SYNC)
            if i < 0:
                # keep a trailing first sync byte: its partner may be in the next chunk
                keep = 1 if self.buf[-1:] == SYNC[:1] else 0
                self.skipped += len(self.buf) - keep
                del self.buf[: len(self.buf) - keep]
                return frames
            if i:
                self.skipped += i
                del self.buf[:i]
            if len(self.buf) < 2 + HEADER_LEN:
                return frames
            length = struct.unpack_from("<H", self.buf, 5)[0]
            if length > self.max_payload:
                self.bad += 1
                del self.buf[:1]
                continue
            total = 2 + HEADER_LEN + length + 2
            if len(self.buf) < total:
                return frames
            body = bytes(self.buf[2 : total - 2])
            if crc16(bytes(self.buf[2:total])) != 0:
                self.bad += 1
                del self.buf[:1]
                continue
            frames.append(Frame(version=body[0], cmd=body[1], seq=body[2], payload=body[HEADER_LEN:]))
            del self.buf[:total]

    @property
    def pending(self) -> int:
        return len(self.buf)


# Payloads ------------------------------------------------------------------------------------

IDENTITY_FMT = "<BIBHHHHBBBI"
IDENTITY_LEN = struct.calcsize(IDENTITY_FMT)
FLAG_LOADABLE = 0x01
FLAG_SPIKE_COUNTS = 0x02


@dataclass(frozen=True)
class Identity:
    """The IDENTITY payload: what bitstream answers (see docs/host-protocol.md)."""

    protocol: int
    config_hash32: int
    weight_bits: int
    lanes: int
    token_lanes: int
    classes: int
    pixels: int        # bytes of pixels a CLASSIFY carries (H*W*channels)
    pixel_bits: int
    spike_layers: int  # spike counts per layer in a RESULT (0: the datapath does not expose them)
    flags: int
    clock_khz: int

    @property
    def loadable(self) -> bool:
        return bool(self.flags & FLAG_LOADABLE)

    @property
    def spike_counts(self) -> bool:
        return bool(self.flags & FLAG_SPIKE_COUNTS)

    def encode(self) -> bytes:
        return struct.pack(
            IDENTITY_FMT, self.protocol, self.config_hash32, self.weight_bits, self.lanes,
            self.token_lanes, self.classes, self.pixels, self.pixel_bits, self.spike_layers,
            self.flags, self.clock_khz,
        )

    @classmethod
    def decode(cls, payload: bytes) -> "Identity":
        if len(payload) != IDENTITY_LEN:
            raise ProtocolError(f"IDENTITY payload is {len(payload)} bytes, expected {IDENTITY_LEN}")
        return cls(*struct.unpack(IDENTITY_FMT, payload))


@dataclass(frozen=True)
class Result:
    """The RESULT payload: class, integer logits (summed over T), cycles, spike counts."""

    cls: int
    cycles: int
    logits: tuple[int, ...]
    spike_counts: tuple[int, ...] = field(default=())

    def encode(self) -> bytes:
        return (
            struct.pack("<HIH", self.cls, self.cycles, len(self.logits))
            + struct.pack(f"<{len(self.logits)}i", *self.logits)
            + struct.pack("<B", len(self.spike_counts))
            + struct.pack(f"<{len(self.spike_counts)}I", *self.spike_counts)
        )

    @classmethod
    def decode(cls, payload: bytes) -> "Result":
        if len(payload) < 9:
            raise ProtocolError(f"RESULT payload is {len(payload)} bytes, shorter than its 9-byte minimum")
        c, cycles, n = struct.unpack_from("<HIH", payload, 0)
        need = 8 + 4 * n + 1
        if len(payload) < need:
            raise ProtocolError(f"RESULT payload is {len(payload)} bytes, {n} logits need at least {need}")
        logits = struct.unpack_from(f"<{n}i", payload, 8)
        k = payload[8 + 4 * n]
        if len(payload) != need + 4 * k:
            raise ProtocolError(f"RESULT payload is {len(payload)} bytes, {n} logits and {k} spike counts need {need + 4 * k}")
        counts = struct.unpack_from(f"<{k}I", payload, need)
        return cls(c, cycles, tuple(logits), tuple(counts))

    @staticmethod
    def length(classes: int, spike_layers: int = 0) -> int:
        return 8 + 4 * classes + 1 + 4 * spike_layers


LOADED_FMT = "<IHHI"


@dataclass(frozen=True)
class Loaded:
    """The LOADED payload (12 bytes): which chunk the device wrote, the CRC-16 of the bytes its
    datapath took (CRC-16/CCITT-FALSE, as the frame CRC), and the size of its parameter image."""

    offset: int
    length: int
    crc: int
    image_size: int

    def encode(self) -> bytes:
        return struct.pack(LOADED_FMT, self.offset, self.length, self.crc, self.image_size)

    @classmethod
    def decode(cls, payload: bytes) -> "Loaded":
        if len(payload) != struct.calcsize(LOADED_FMT):
            raise ProtocolError(f"LOADED payload is {len(payload)} bytes, expected {struct.calcsize(LOADED_FMT)}")
        return cls(*struct.unpack(LOADED_FMT, payload))

    @staticmethod
    def length_bytes() -> int:
        return struct.calcsize(LOADED_FMT)


def classify_payload(config_hash32: int, pixels: bytes) -> bytes:
    """CLASSIFY: the config hash the host expects, then one byte per pixel in raster order."""
    return struct.pack("<I", config_hash32) + bytes(pixels)


def load_weights_payload(config_hash32: int, offset: int, data: bytes) -> bytes:
    """LOAD_WEIGHTS: config hash, byte offset into the parameter image (hw.param_image), a chunk
    of it (whole rows, at most LOAD_CHUNK_MAX bytes)."""
    return struct.pack("<II", config_hash32, offset) + bytes(data)


def nak_payload(code: int, cmd: int) -> bytes:
    return bytes([code, cmd])


def parse_nak(payload: bytes) -> tuple[int, int]:
    if len(payload) != 2:
        raise ProtocolError(f"NAK payload is {len(payload)} bytes, expected 2")
    return payload[0], payload[1]


# Documentation ---------------------------------------------------------------------------------

# The example image (pixels 0, 1, .., 16, 0, 1, ..) through the shipped artifacts/digits-tiny.npz:
# quant.golden's class, logits and spike counts, hw.cycles' count for HW "small", the first 16
# bytes of the parameter image for 8 lanes (tests/test_protocol.py recomputes every one).
EXAMPLE_CLASS = 5
EXAMPLE_LOGITS = (260, -360, -55, 178, -18, 406, 74, 165, 71, 180)
EXAMPLE_SPIKE_COUNTS = (352, 361, 200, 210, 15, 31, 407, 451, 322)
CYCLES_EXAMPLE = 11455
EXAMPLE_IMAGE_HEAD = bytes.fromhex("d1cdeef5ea11f02feddaaf19defeec66")
EXAMPLE_IMAGE_SIZE = 10944


def doc_examples() -> dict[str, bytes]:
    """The example frames of docs/host-protocol.md (a test checks the doc against these).

    ``python -m boards.protocol`` prints them as the doc shows them.
    """
    ident = Identity(protocol=VERSION, config_hash32=0x966FB61C, weight_bits=4, lanes=8, token_lanes=4,
                     classes=10, pixels=64, pixel_bits=5, spike_layers=9, flags=FLAG_SPIKE_COUNTS, clock_khz=25000)
    result = Result(cls=EXAMPLE_CLASS, cycles=CYCLES_EXAMPLE, logits=EXAMPLE_LOGITS, spike_counts=EXAMPLE_SPIKE_COUNTS)
    # 4 rows of b0.q weights
    chunk = EXAMPLE_IMAGE_HEAD
    return {
        "identify-request": encode_frame(Cmd.IDENTIFY, b"", seq=1),
        "identity-response": encode_frame(Cmd.IDENTITY, ident.encode(), seq=1),
        "classify-request": encode_frame(Cmd.CLASSIFY, classify_payload(0x966FB61C, bytes(i % 17 for i in range(64))), seq=2),
        "result-response": encode_frame(Cmd.RESULT, result.encode(), seq=2),
        "nak-bad-crc": encode_frame(Cmd.NAK, nak_payload(Nak.BAD_CRC, Cmd.CLASSIFY), seq=2),
        "load-weights-request": encode_frame(Cmd.LOAD_WEIGHTS, load_weights_payload(0x966FB61C, 0, chunk), seq=3),
        "loaded-response": encode_frame(Cmd.LOADED, Loaded(0, len(chunk), crc16(chunk), EXAMPLE_IMAGE_SIZE).encode(),
                                        seq=3),
    }


def hex_lines(data: bytes, width: int = 16) -> str:
    """Bytes as lines of space-separated hex pairs, as docs/host-protocol.md shows them."""
    return "\n".join(data[i: i + width].hex(" ") for i in range(0, len(data), width))


if __name__ == "__main__":
    for name, data in doc_examples().items():
        print(f"<!-- frame: {name} -->\n```text\n{hex_lines(data)}\n```\n")
