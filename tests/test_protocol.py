"""boards/protocol.py: frame encode/decode, CRC-16, resynchronisation, payloads."""

from __future__ import annotations

import random
import struct

from pathlib import Path

import pytest

from boards.protocol import (
    doc_examples, hex_lines, HEADER_LEN, MAX_PAYLOAD, SYNC, VERSION, Cmd, Frame, FrameDecoder, Identity, Nak, ProtocolError,
    Result, classify_payload, crc16, encode_frame, nak_payload, parse_nak,
)


def test_crc16_check_value():
    # CRC-16/CCITT-FALSE's catalogue check value
    assert crc16(b"123456789") == 0x29B1
    assert crc16(b"") == 0xFFFF
    # continuing a running CRC equals one pass over the concatenation
    assert crc16(b"56789", crc16(b"1234")) == 0x29B1


def test_crc_over_frame_and_its_crc_is_zero():
    f = encode_frame(Cmd.CLASSIFY, bytes(range(40)), seq=7)
    assert crc16(f[2:]) == 0  # what the gateware checks


def test_encode_layout():
    f = encode_frame(Cmd.IDENTIFY, b"\x01\x02\x03", seq=0x42)
    assert f[:2] == SYNC
    assert f[2:7] == bytes([VERSION, Cmd.IDENTIFY, 0x42, 3, 0])  # little-endian length
    assert f[7:10] == b"\x01\x02\x03"
    assert f[10:] == struct.pack(">H", crc16(f[2:10]))  # CRC most significant byte first
    assert len(f) == 2 + HEADER_LEN + 3 + 2
    assert Frame(Cmd.IDENTIFY, 0x42, b"\x01\x02\x03").encode() == f


@pytest.mark.parametrize("payload", [b"", b"\x00", bytes(range(256)) * 3, bytes(MAX_PAYLOAD)])
def test_roundtrip(payload):
    f = encode_frame(Cmd.CLASSIFY, payload, seq=255)
    (got,) = FrameDecoder().feed(f)
    assert got == Frame(Cmd.CLASSIFY, 255, payload, VERSION)


def test_roundtrip_byte_by_byte_and_back_to_back():
    frames = [Frame(Cmd.RESULT, i, bytes([i]) * i) for i in range(20)]
    stream = b"".join(f.encode() for f in frames)
    dec = FrameDecoder()
    got = []
    for b in stream:
        got += dec.feed(bytes([b]))
    assert got == frames and dec.pending == 0 and dec.bad == 0 and dec.skipped == 0


def test_max_payload_enforced():
    with pytest.raises(ProtocolError, match=f"longer than the {MAX_PAYLOAD} bytes"):
        encode_frame(Cmd.CLASSIFY, bytes(MAX_PAYLOAD + 1))
    # an over-long header (built on purpose) is dropped by the decoder, and the next frame is found
    long = encode_frame(Cmd.CLASSIFY, bytes(MAX_PAYLOAD + 1), max_payload=0xFFFF)
    good = encode_frame(Cmd.IDENTIFY, seq=3)
    dec = FrameDecoder()
    assert dec.feed(long[:7] + good) == [Frame(Cmd.IDENTIFY, 3)]
    assert dec.bad == 1
    with pytest.raises(ProtocolError, match="does not fit|longer than"):
        encode_frame(Cmd.CLASSIFY, bytes(0x10000), max_payload=1 << 20)


@pytest.mark.parametrize("field,kw", [("cmd", {"cmd": 256}), ("seq", {"seq": -1}), ("version", {"version": 300}),
                                      ("seq", {"seq": True})])
def test_bad_fields(field, kw):
    args = {"cmd": Cmd.IDENTIFY, "payload": b"", "seq": 0, "version": VERSION, **kw}
    with pytest.raises(ProtocolError, match=f"{field} must be a byte"):
        encode_frame(**args)


def test_resync_after_garbage():
    good = encode_frame(Cmd.IDENTIFY, seq=9)
    garbage = b"\x00\xff\xa5\x13\xa5\xa5" + bytes(range(50))
    dec = FrameDecoder()
    assert dec.feed(garbage + good) == [Frame(Cmd.IDENTIFY, 9)]
    assert dec.skipped > 0 and dec.pending == 0


def test_random_garbage_then_frames():
    rng = random.Random(1234)
    dec = FrameDecoder()
    frames = [Frame(Cmd.RESULT, i, bytes(rng.randrange(256) for _ in range(rng.randrange(60)))) for i in range(30)]
    got = []
    for f in frames:
        # garbage without the sync pattern, then an intact frame: every frame must come out
        junk = bytes(rng.choice([0x00, 0x13, 0xA5, 0xFF]) for _ in range(rng.randrange(10)))
        got += dec.feed(junk + f.encode())
    assert got == frames


def test_bad_crc_dropped_and_sync_inside_found():
    good = encode_frame(Cmd.IDENTIFY, seq=1)
    bad = bytearray(encode_frame(Cmd.CLASSIFY, b"\x01\x02" + SYNC + b"\x03", seq=2))
    bad[-1] ^= 0x01
    dec = FrameDecoder()
    assert dec.feed(bytes(bad) + good) == [Frame(Cmd.IDENTIFY, 1)]
    assert dec.bad >= 1


def test_every_single_bit_flip_detected():
    f = encode_frame(Cmd.CLASSIFY, bytes(range(68)), seq=5)
    for i in range(2, len(f)):  # every covered byte (a broken sync simply is not a frame)
        for bit in range(8):
            bad = bytearray(f)
            bad[i] ^= 1 << bit
            assert FrameDecoder().feed(bytes(bad)) == [], (i, bit)


def test_partial_frame_waits():
    f = encode_frame(Cmd.CLASSIFY, bytes(10), seq=1)
    dec = FrameDecoder()
    assert dec.feed(f[:-1]) == []
    assert dec.pending == len(f) - 1
    assert dec.feed(f[-1:]) == [Frame(Cmd.CLASSIFY, 1, bytes(10))]
    # a lone first sync byte at the end of a chunk is kept for the next chunk
    dec = FrameDecoder()
    assert dec.feed(b"\x00\x01" + f[:1]) == [] and dec.pending == 1
    assert dec.feed(f[1:]) == [Frame(Cmd.CLASSIFY, 1, bytes(10))]


def test_other_version_decodes_with_its_version():
    (f,) = FrameDecoder().feed(encode_frame(Cmd.IDENTIFY, version=9))
    assert f.version == 9


def test_identity_roundtrip_and_bad_length():
    ident = Identity(protocol=1, config_hash32=0xDEADBEEF, weight_bits=4, lanes=8, token_lanes=4, classes=10,
                     pixels=64, pixel_bits=5, spike_layers=0, flags=0, clock_khz=25000)
    assert Identity.decode(ident.encode()) == ident
    assert not ident.loadable
    with pytest.raises(ProtocolError, match="IDENTITY payload is 3 bytes"):
        Identity.decode(b"abc")


def test_result_roundtrip_and_errors():
    r = Result(cls=3, cycles=11594, logits=(17, -529, 2**31 - 1, -(2**31)), spike_counts=(1, 2))
    assert Result.decode(r.encode()) == r
    assert len(r.encode()) == Result.length(4, 2)
    r0 = Result(cls=0, cycles=1, logits=(0,) * 10)
    assert len(r0.encode()) == Result.length(10)
    with pytest.raises(ProtocolError, match="shorter than"):
        Result.decode(b"\x00" * 5)
    with pytest.raises(ProtocolError, match="logits need"):
        Result.decode(r0.encode()[:20])
    with pytest.raises(ProtocolError, match="spike counts need"):
        Result.decode(r0.encode() + b"\x00")


def test_nak_and_classify_payloads():
    assert parse_nak(nak_payload(Nak.BAD_CRC, Cmd.CLASSIFY)) == (Nak.BAD_CRC, Cmd.CLASSIFY)
    with pytest.raises(ProtocolError, match="NAK payload is 1 bytes"):
        parse_nak(b"\x01")
    assert classify_payload(0x01020304, b"\x05\x06") == b"\x04\x03\x02\x01\x05\x06"
    for code in Nak:
        assert code.meaning  # every code has its explanation


def test_doc_examples_are_the_codes_output():
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "host-protocol.md").read_text()
    shown = dict(re.findall(r"<!-- frame: (\S+) -->\s*```text\n(.*?)```", doc, re.S))
    examples = doc_examples()
    assert set(shown) == set(examples), "docs/host-protocol.md: regenerate with python -m boards.protocol"
    for name, data in examples.items():
        assert bytes.fromhex(shown[name].replace("\n", " ")) == data, name
        assert shown[name].strip() == hex_lines(data), name
        # every example is a valid frame
        (f,) = FrameDecoder().feed(data)
        assert f.encode() == data
    ident = Identity.decode(FrameDecoder().feed(examples["identity-response"])[0].payload)
    assert ident.clock_khz == 25000 and ident.config_hash32 == 0x966FB61C
    assert "fad9" in doc and examples["identify-request"][-2:].hex() == "fad9"


def test_doc_example_result_is_the_shipped_artifacts():
    """The example RESULT and LOAD_WEIGHTS chunk of docs/host-protocol.md are what the shipped
    artifact gives on the example image: the golden model's class, logits and spike counts, the
    cycle model's count for HW "small", the parameter image's first bytes."""
    import numpy as np

    from boards import protocol as pr
    from hw.cycles import image_cycles
    from hw.param_image import ParamImage
    from hw.sequencer import Program
    from model.config import HW_PRESETS
    from quant import golden
    from quant.artifact import load_artifact

    art = load_artifact(Path(__file__).resolve().parent.parent / "artifacts" / "digits-tiny.npz")
    x = np.array([i % 17 for i in range(64)], np.int64).reshape(1, 8, 8, 1)
    rec = golden.forward(art, x)
    assert int(np.argmax(rec["logits"][0])) == pr.EXAMPLE_CLASS
    assert tuple(rec["logits"][0].tolist()) == pr.EXAMPLE_LOGITS
    assert tuple(golden.spike_counts(art.config, rec)[0].tolist()) == pr.EXAMPLE_SPIKE_COUNTS
    assert image_cycles(Program(art, HW_PRESETS["small"]), rec, 0)["total"] == pr.CYCLES_EXAMPLE
    image = ParamImage(art.config, HW_PRESETS["small"].lanes)
    assert image.pack(art)[:16] == pr.EXAMPLE_IMAGE_HEAD and image.size == pr.EXAMPLE_IMAGE_SIZE
