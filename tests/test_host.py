"""boards/host.py against a scripted fake device: retries, timeouts, NAKs, checks before sending.

The fake keeps its own clock (``clock()``), like the simulated board, so the host's timeouts
cost no wall time.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from boards.host import (
    ConfigMismatch, DeviceRefused, Host, HostError, LinkTimeout, SerialTransport, WeightsBaked, open_serial,
)
from boards.protocol import (
    VERSION, Cmd, FrameDecoder, Identity, Nak, Result, classify_payload, encode_frame, nak_payload,
)

IDENT = Identity(protocol=VERSION, config_hash32=0x12345678, weight_bits=4, lanes=8, token_lanes=4, classes=10,
                 pixels=64, pixel_bits=5, spike_layers=0, flags=0, clock_khz=25000)
RESULT = Result(cls=7, cycles=12345, logits=tuple(range(-5, 5)))


class FakeDevice:
    """A transport whose device answers by a script.

    ``script``: a list consumed one entry per request frame received; each entry is a function
    ``(frame) -> bytes`` (the bytes the device sends back) or None (the default answer).
    """

    def __init__(self, script=(), latency: float = 0.001, ident: Identity = IDENT):
        self.script = list(script)
        self.ident = ident
        self.latency = latency
        self.t = 0.0
        self.pending: list[tuple[float, bytes]] = []
        self.requests = []
        self.dec = FrameDecoder()
        self.raw_written = b""

    def clock(self) -> float:
        return self.t

    def answer(self, f) -> bytes:
        if f.cmd == Cmd.IDENTIFY:
            return encode_frame(Cmd.IDENTITY, self.ident.encode(), f.seq)
        if f.cmd == Cmd.CLASSIFY:
            if f.payload[:4] != self.ident.config_hash32.to_bytes(4, "little"):
                return encode_frame(Cmd.NAK, nak_payload(Nak.CONFIG_MISMATCH, f.cmd), f.seq)
            return encode_frame(Cmd.RESULT, RESULT.encode(), f.seq)
        if f.cmd == Cmd.LOAD_WEIGHTS:
            return encode_frame(Cmd.NAK, nak_payload(Nak.UNSUPPORTED, f.cmd), f.seq)
        return encode_frame(Cmd.NAK, nak_payload(Nak.UNKNOWN_COMMAND, f.cmd), f.seq)

    def write(self, data: bytes) -> None:
        self.raw_written += data
        for f in self.dec.feed(data):
            self.requests.append(f)
            step = self.script.pop(0) if self.script else None
            out = self.answer(f) if step is None else step(f)
            if out:
                self.pending.append((self.t + self.latency, out))

    def read(self, n: int, timeout: float) -> bytes:
        ready = [p for p in self.pending if p[0] <= self.t + timeout]
        if not ready:
            self.t += timeout
            return b""
        at, data = ready[0]
        self.t = max(self.t, at)
        self.pending.remove(ready[0])
        if len(data) > n:
            self.pending.insert(0, (at, data[n:]))
            data = data[:n]
        return data


def silent(f):
    return b""


def nak(code):
    return lambda f: encode_frame(Cmd.NAK, nak_payload(code, f.cmd), f.seq)


def test_identify_and_classify():
    dev = FakeDevice()
    h = Host(dev)
    assert h.identify() == IDENT
    r = h.classify(np.zeros((8, 8, 1), np.uint8))
    assert r == RESULT
    assert dev.requests[1].payload == classify_payload(IDENT.config_hash32, bytes(64))
    assert h.stats.requests == 2 and h.stats.retries == 0


def test_retry_after_silence_then_success():
    dev = FakeDevice([None, silent, None])
    h = Host(dev, timeout=0.5, retries=2)
    h.identify()
    r = h.classify(np.ones(64, np.int64))
    assert r == RESULT
    assert h.stats.timeouts == 1 and h.stats.retries == 1
    # each attempt carries a fresh sequence number
    assert dev.requests[1].seq != dev.requests[2].seq


def test_timeouts_raise_link_timeout_after_all_retries():
    dev = FakeDevice([silent] * 10)
    h = Host(dev, timeout=0.25, retries=3, drain=0.01)
    t0 = time.monotonic()
    with pytest.raises(LinkTimeout, match=r"IDENTIFY failed after 4 attempts \(last: no response within 0.25 s\).*baud"):
        h.identify()
    assert len(dev.requests) == 4 and h.stats.timeouts == 4
    # bounded: (retries + 1) x timeout plus drains, in the fake's time
    assert dev.t <= 4 * 0.25 + 3 * 0.25 + 1e-9
    assert time.monotonic() - t0 < 5


@pytest.mark.parametrize("code", [Nak.BAD_CRC, Nak.BAD_LENGTH, Nak.TIMEOUT])
def test_retryable_naks_are_retried(code):
    dev = FakeDevice([None, nak(code), nak(code), None])
    h = Host(dev, retries=3)
    h.identify()
    assert h.classify(np.zeros(64, np.uint8)) == RESULT
    assert h.stats.naks == 2 and h.stats.retries == 2


def test_retryable_nak_with_damaged_seq_is_taken():
    # the device NAKs what it received: a damaged seq byte comes back damaged
    dev = FakeDevice([lambda f: encode_frame(Cmd.NAK, nak_payload(Nak.BAD_CRC, f.cmd), f.seq ^ 0x40), None])
    h = Host(dev, timeout=0.5)
    assert h.identify() == IDENT
    assert h.stats.naks == 1 and h.stats.timeouts == 0


def test_retryable_naks_exhaust_retries():
    dev = FakeDevice([nak(Nak.BAD_CRC)] * 5)
    h = Host(dev, retries=2)
    with pytest.raises(LinkTimeout, match="after 3 attempts.*NAK BAD_CRC"):
        h.identify()


@pytest.mark.parametrize("code,hint", [
    (Nak.CONFIG_MISMATCH, "rebuild it for this artifact"),
    (Nak.UNSUPPORTED, "weights baked in"),
    (Nak.BAD_VERSION, "same protocol version"),
    (Nak.UNKNOWN_COMMAND, "older than this host tool"),
    (Nak.BAD_PAYLOAD, "pixel range"),
])
def test_refusals_raise_at_once_with_hint(code, hint):
    dev = FakeDevice([None, nak(code), None])
    h = Host(dev, retries=3)
    h.identify()
    with pytest.raises(DeviceRefused, match=f"device refused CLASSIFY: NAK {code.name}.*{hint}") as e:
        h.classify(np.zeros(64, np.uint8))
    assert e.value.code == code and e.value.cmd == Cmd.CLASSIFY and hint in e.value.hint
    assert len(dev.requests) == 2 and h.stats.retries == 0


def test_stale_and_garbage_responses_are_skipped():
    def late_then_right(f):
        old = encode_frame(Cmd.IDENTITY, IDENT.encode(), (f.seq - 1) & 0xFF)        # an earlier request's
        refusal = encode_frame(Cmd.NAK, nak_payload(Nak.CONFIG_MISMATCH, f.cmd), f.seq ^ 1)  # not ours
        broken = bytearray(encode_frame(Cmd.IDENTITY, IDENT.encode(), f.seq))
        broken[9] ^= 0xFF
        return b"\x00\x13" + old + refusal + bytes(broken) + encode_frame(Cmd.IDENTITY, IDENT.encode(), f.seq)

    dev = FakeDevice([late_then_right])
    h = Host(dev)
    assert h.identify() == IDENT
    assert h.stats.stale == 2 and h.stats.bad_frames == 1 and h.stats.retries == 0


def test_wrong_config_hash_refused_before_sending():
    dev = FakeDevice()
    h = Host(dev)
    h.identify()
    sent = len(dev.raw_written)
    with pytest.raises(ConfigMismatch, match="config hash 0badcafe, the bitstream 12345678.*hw.build"):
        h.classify(np.zeros(64, np.uint8), config_hash32=0x0BADCAFE)
    assert len(dev.raw_written) == sent  # nothing left the host
    assert h.classify(np.zeros(64, np.uint8), config_hash32=IDENT.config_hash32) == RESULT


def test_load_weights_on_baked_bitstream_says_rebuild():
    from model.config import PRESETS
    from quant.artifact import random_artifact

    art = random_artifact(PRESETS["digits-tiny"], 0)
    dev = FakeDevice(ident=Identity(**{**IDENT.__dict__, "config_hash32": art.config.hash32}))
    h = Host(dev)
    h.identify()
    sent = len(dev.raw_written)
    with pytest.raises(WeightsBaked, match=r"weights baked in \(IDENTITY flags 0x00: not loadable\).*"
                                           r"rebuild the bitstream with it: python -m hw.build"):
        h.load_weights(art, "x.npz")
    assert len(dev.raw_written) == sent
    with pytest.raises(ConfigMismatch):
        h.load_weights(random_artifact(PRESETS["fmnist-small"], 0))


@pytest.mark.parametrize("image,msg", [
    (np.zeros(63, np.uint8), "image has 63 pixels; the device's model takes 64"),
    (np.full(64, 32), r"pixel values must be in \[0, 31\]"),
    (np.full(64, -1), r"pixel values must be in \[0, 31\]"),
    (np.zeros(64, np.float32), "pixels must be integers"),
])
def test_bad_images_refused_before_sending(image, msg):
    dev = FakeDevice()
    h = Host(dev)
    h.identify()
    sent = len(dev.raw_written)
    with pytest.raises(HostError, match=msg):
        h.classify(image)
    assert len(dev.raw_written) == sent


def test_malformed_answers():
    dev = FakeDevice([lambda f: encode_frame(Cmd.IDENTITY, b"\x01\x02", f.seq)])
    with pytest.raises(HostError, match="IDENTITY answer is malformed"):
        Host(dev).identify()
    other = Identity(**{**IDENT.__dict__, "protocol": VERSION + 1})
    dev = FakeDevice([lambda f: encode_frame(Cmd.IDENTITY, other.encode(), f.seq)])
    with pytest.raises(HostError, match=f"protocol version {VERSION + 1}"):
        Host(dev).identify()
    dev = FakeDevice([None, lambda f: encode_frame(Cmd.RESULT, b"\x00" * 3, f.seq)])
    h = Host(dev)
    h.identify()
    with pytest.raises(HostError, match="RESULT answer is malformed"):
        h.classify(np.zeros(64, np.uint8))


def test_bad_parameters():
    with pytest.raises(ValueError, match="timeout and drain must be > 0"):
        Host(FakeDevice(), timeout=0)
    with pytest.raises(ValueError, match="retries >= 0"):
        Host(FakeDevice(), retries=-1)


class FakePort:
    """The part of pyserial's Serial that SerialTransport uses."""

    def __init__(self, data: bytes):
        self.data = bytearray(data)
        self.timeout = None
        self.out = b""
        self.flushed = 0

    @property
    def in_waiting(self):
        return len(self.data)

    def read(self, n):
        out = bytes(self.data[:n])
        del self.data[:n]
        return out

    def write(self, b):
        self.out += b

    def flush(self):
        self.flushed += 1

    def close(self):
        pass


def test_serial_transport():
    port = FakePort(b"abcdef")
    t = SerialTransport(port)
    assert t.read(4, 0) == b"abcd"      # timeout 0: what is waiting
    assert t.read(100, 1.0) == b"ef"
    assert t.read(10, 0) == b""
    assert t.read(10, 0.01) == b"" and port.timeout == 0.01
    t.write(b"xy")
    assert port.out == b"xy" and port.flushed == 1


def test_open_serial_errors(tmp_path):
    with pytest.raises(HostError, match="serial port /nonexistent/ttyUSB9 does not exist.*--sim"):
        open_serial("/nonexistent/ttyUSB9", 115200)
    with pytest.raises(HostError, match="baud rate must be a positive integer"):
        open_serial("/dev/null", 0)
    notatty = tmp_path / "plainfile"
    notatty.write_text("")
    with pytest.raises(HostError, match=f"cannot open {notatty}"):
        open_serial(str(notatty), 115200)
