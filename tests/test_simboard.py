"""The same `boards.host.Host` against the simulated board: BoardTop in Amaranth's simulator,
driven through its UART pins (boards/simboard.py).

* RTL core (hw.core.NetworkCore, HW preset "small", the shipped artifacts/digits-tiny.npz when
  present, else a random digits-tiny artifact): IDENTIFY, then test digits whose class and
  integer logits equal quant.golden.forward's and whose cycle count equals what a monitor on
  the core's ports counted; a corrupted frame on the way is NAKed, retried, and answered.
  3 images by default; the 20-image run is marked slow (Amaranth's Python simulator takes
  11-15 s per image on 2 shared cores: ``pytest -m slow tests/test_simboard.py``).
* Loadable RTL core (weights="loadable"): parameter images loaded over the link with
  LOAD_WEIGHTS, then classified: class, logits and spike counts equal the loaded artifact's
  golden model; two loads in a row, each rewriting every memory kind; a corrupted and a
  truncated LOAD_WEIGHTS frame on the way; every refusal (hash, offset, chunk length) answered
  with its NAK and a clear host error, and nothing written. A tiny config in CI; the shipped
  digits artifact and a random one, 10 digits each, under ``-m slow``.
* Golden core (GoldenCore: the link and host without the datapath, ~10x faster): corrupted,
  truncated and over-long frames, wrong config hash, wrong version, unknown command,
  LOAD_WEIGHTS, out-of-range pixels, garbage on the line, a board that stops answering.

Every board has a wall-clock limit (SimWallLimit), so nothing hangs.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from boards.host import ConfigMismatch, DeviceRefused, HostError, LinkTimeout
from boards.protocol import (
    LOAD_CHUNK_MAX, MAX_PAYLOAD, VERSION, Cmd, FrameDecoder, Loaded, Nak, classify_payload, crc16, encode_frame,
    load_weights_payload, parse_nak,
)
from boards.simboard import SimBoard, SimWallLimit, default_artifact, identity_for
from hw.param_image import ParamImage
from model.config import HW_PRESETS, HardwareConfig
from model.data import load_digits_split
from quant.artifact import random_artifact
from quant.golden import forward, spike_counts
from tests.hw_util import seed_for
from tests.test_param_image import _tiny, firing_artifact_differing_everywhere

N_RTL = 20


@pytest.fixture(scope="module")
def artifact():
    art, source = default_artifact()
    print(f"artifact: {source}")
    return art


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits_split("test")
    return x, y


@pytest.fixture
def golden_board(artifact):
    with SimBoard.for_artifact(artifact, core="golden", monitor=True, wall_limit=120) as b:
        yield b


def _frame_len(board) -> int:
    return 2 + 5 + 4 + board.identity.pixels + 2


# --- the real datapath ----------------------------------------------------------------------

def _rtl_board_classifies(artifact, digits, n: int, flip_at: int):
    x, _ = digits
    hw = HW_PRESETS["small"]
    t0 = time.monotonic()
    board = SimBoard.for_artifact(artifact, core="rtl", hw=hw, monitor=True, wall_limit=60 + 60 * n)
    host = board.host()
    ident = host.identify()
    assert ident == identity_for(artifact.config, hw)
    assert ident.config_hash32 == artifact.config.hash32 and not ident.loadable

    images = x[:n]
    ref = forward(artifact, images)
    counts = spike_counts(artifact.config, ref)
    t1 = time.monotonic()
    results = []
    for i, img in enumerate(images):
        if i == flip_at:
            # a flipped pixel byte on the way to the device: NAK BAD_CRC, retried, answered
            board.transport.flip[board.transport.written + 7 + 4 + 10] = 0x04
        results.append(host.classify(img, config_hash32=artifact.config.hash32))
    dt = time.monotonic() - t1
    print(f"RTL board: {n} images in {dt:.1f} s ({n / dt:.3f} images/s, "
          f"{board.cycles} simulated cycles, divisor {board.divisor}); setup {t1 - t0:.1f} s")

    assert host.stats.nak_codes == {"BAD_CRC": 1} and host.stats.retries == 1
    assert len(board.core_log) == n  # the corrupted frame never reached the datapath
    for i, (r, rec) in enumerate(zip(results, board.core_log)):
        assert r.cls == ref["pred"][i], (i, r.cls, ref["pred"][i])
        assert list(r.logits) == ref["logits"][i].tolist(), i
        assert list(r.spike_counts) == counts[i].tolist(), (i, r.spike_counts, counts[i].tolist())
        assert rec.pixels == images[i].reshape(-1).tolist(), i
        assert r.cycles == rec.cycles == rec.result[1], (i, r.cycles, rec.cycles)
        assert 0 < r.cycles < 200_000
    board.close()


def test_rtl_board_identify_and_classify(artifact, digits):
    """IDENTIFY and 3 digits through the real datapath (11-15 s of wall time per image)."""
    _rtl_board_classifies(artifact, digits, 3, flip_at=1)


@pytest.mark.slow
def test_rtl_board_classifies_20_digits(artifact, digits):
    """20 digits through the real datapath: 255-299 s measured on 2 shared cores, hence slow."""
    _rtl_board_classifies(artifact, digits, N_RTL, flip_at=3)


# --- run-time weight loading: the loadable datapath ------------------------------------------

def _classify_equals_golden(host, art, images, tag):
    ref = forward(art, images)
    counts = spike_counts(art.config, ref)
    for i, img in enumerate(images):
        r = host.classify(img, config_hash32=art.config.hash32)
        assert (r.cls, list(r.logits)) == (ref["pred"][i], ref["logits"][i].tolist()), (tag, i)
        assert list(r.spike_counts) == counts[i].tolist(), (tag, i, r.spike_counts, counts[i].tolist())
    return ref


def _frame_bytes(n_data: int) -> int:
    return 2 + 5 + 8 + n_data + 2


@pytest.fixture(scope="module")
def tiny_load():
    """(config, power-on artifact, A, B, images): A and B fire and differ from each other and from
    the power-on contents in every parameter image segment."""
    cfg = _tiny()
    seed = seed_for("simboard_tiny_load")
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 1 << cfg.pixel_bits, (2, *cfg.image_shape))
    init = random_artifact(cfg, 0)
    a = firing_artifact_differing_everywhere(cfg, init, images, 4, seed % 1000)
    b = firing_artifact_differing_everywhere(cfg, a, images, 4, seed % 1000 + 300)
    assert firing_artifact_differing_everywhere(cfg, init, images, 4, seed % 1000 + 300) is not None
    return cfg, init, a, b, images


def _tiny_board(init, **kw):
    hw = HardwareConfig(lanes=4, token_lanes=2, weights="loadable")
    return SimBoard.for_artifact(init, core="rtl", hw=hw, answer_cycles=20_000, wall_limit=300, **kw)


def test_load_weights_over_the_link_then_classify(tiny_load):
    """A then B over the UART pins, each verified by LOADED; a corrupted and a truncated
    LOAD_WEIGHTS frame are NAKed and retried; results equal each artifact's golden model."""
    cfg, init, a, b, images = tiny_load
    with _tiny_board(init) as board:
        host = board.host()
        ident = host.identify()
        assert ident.loadable and ident.spike_counts and ident.spike_layers == 9
        image = ParamImage(cfg, ident.lanes)
        chunks = image.chunks(256)
        t = board.transport
        w0 = t.written
        t.flip[w0 + 7 + 8 + 5] = 0x20                                   # a data byte of chunk 0: BAD_CRC
        first = _frame_bytes(chunks[0][1])
        t.drop.add(w0 + 2 * first + 7 + 8 + 3)                          # a byte of chunk 1: TIMEOUT
        seen = []
        acks = host.load_weights(a, "A", chunk_size=256, progress=lambda sent, total: seen.append((sent, total)))
        data = image.pack(a)
        assert acks == [Loaded(o, n, crc16(data[o:o + n]), image.size) for o, n in chunks]
        assert seen[-1] == (sum(n for _, n in chunks), sum(n for _, n in chunks)) and len(seen) == len(chunks)
        assert host.stats.nak_codes == {"BAD_CRC": 1, "TIMEOUT": 1} and host.stats.retries == 2
        ref_a = _classify_equals_golden(host, a, images, "A")
        host.load_weights(b, "B")                                       # default chunks: one frame here
        ref_b = _classify_equals_golden(host, b, images, "B")
        assert not np.array_equal(ref_a["logits"], ref_b["logits"])
        assert not np.array_equal(forward(init, images, record=False)["logits"], ref_a["logits"])


def test_load_weights_refusals(tiny_load):
    """Wrong hash, misaligned / out-of-range / ragged chunks, too long and empty chunks: each
    answered with its NAK (the host raises a clear error), nothing written."""
    cfg, init, a, b, images = tiny_load
    with _tiny_board(init) as board:
        host = board.host()
        ident = host.identify()
        image = ParamImage(cfg, ident.lanes)
        data = image.pack(a)
        h32 = cfg.hash32
        params = image.segment("params")
        cases = [
            (load_weights_payload(h32 ^ 1, 0, data[:64]), Nak.CONFIG_MISMATCH),
            (load_weights_payload(h32, params.base + 4, data[:params.stride]), Nak.BAD_PAYLOAD),   # misaligned
            (load_weights_payload(h32, image.size, data[:8]), Nak.BAD_PAYLOAD),                   # past the end
            (load_weights_payload(h32, 1 << 31, data[:8]), Nak.BAD_PAYLOAD),                      # far past it
            (load_weights_payload(h32, image.size - 8, data[:16]), Nak.BAD_PAYLOAD),              # runs over
            (load_weights_payload(h32, params.base, data[:params.row_bytes]), Nak.BAD_PAYLOAD),   # ragged end
            (load_weights_payload(h32, 0, bytes(LOAD_CHUNK_MAX + 1)), Nak.BAD_LENGTH),            # too long
            (load_weights_payload(h32, 0, b""), Nak.BAD_LENGTH),                                  # empty
        ]
        for seq, (payload, code) in enumerate(cases, start=10):
            frames = _exchange(board, encode_frame(Cmd.LOAD_WEIGHTS, payload, seq=seq))
            assert len(frames) == 1, (code, frames)
            assert frames[0].cmd == Cmd.NAK and frames[0].seq == seq, (code, frames[0])
            assert parse_nak(frames[0].payload) == (code, Cmd.LOAD_WEIGHTS), (seq, code)
        # what the host makes of them
        with pytest.raises(DeviceRefused, match="NAK BAD_PAYLOAD.*whole rows inside the device's parameter image"):
            host.request(Cmd.LOAD_WEIGHTS, load_weights_payload(h32, params.base + 4, data[:16]), Cmd.LOADED)
        with pytest.raises(DeviceRefused, match="NAK CONFIG_MISMATCH.*rebuild"):
            host.request(Cmd.LOAD_WEIGHTS, load_weights_payload(h32 ^ 1, 0, data[:16]), Cmd.LOADED)
        sent = board.transport.written
        with pytest.raises(HostError, match=f"chunk_size must be an integer in 1..{LOAD_CHUNK_MAX}"):
            host.load_weights(a, chunk_size=LOAD_CHUNK_MAX + 1)
        with pytest.raises(HostError, match="cannot hold a whole row of 16 bytes"):
            host.load_weights(a, chunk_size=8)
        with pytest.raises(ConfigMismatch, match="config hash .* the bitstream .*hw.build"):
            host.load_weights(random_artifact(_tiny(dim=4), 0), "other.npz")
        assert board.transport.written == sent  # refused before sending
        # nothing was written: the power-on parameters still answer
        _classify_equals_golden(host, init, images[:1], "init")


@pytest.mark.slow
def test_rtl_board_loads_shipped_then_random_artifact(artifact, digits):
    """digits-tiny, HW small, loadable, power-on random_artifact(cfg, 0): load the shipped
    artifact A over the link, 10 digits equal A's golden model; load B (a random artifact that
    fires and differs from A in every segment), 10 digits equal B's. About 15 minutes."""
    x, _ = digits
    cfg = artifact.config
    images = x[:10]
    hw = HardwareConfig(lanes=8, token_lanes=4, weights="loadable")
    init = random_artifact(cfg, 0)
    b = firing_artifact_differing_everywhere(cfg, artifact, images, 8, seed_for("simboard_digits_b") % 1000)
    t0 = time.monotonic()
    with SimBoard.for_artifact(init, core="rtl", hw=hw, wall_limit=3000) as board:
        host = board.host()
        assert host.identify() == identity_for(cfg, hw)
        host.load_weights(artifact, "A")
        t1 = time.monotonic()
        _classify_equals_golden(host, artifact, images, "A")
        host.load_weights(b, "B")
        _classify_equals_golden(host, b, images, "B")
        print(f"loadable RTL board: 2 loads of {ParamImage(cfg, 8).size} bytes and 20 digits in "
              f"{time.monotonic() - t0:.0f} s (first load {t1 - t0:.0f} s), {board.cycles} simulated cycles")
        assert host.stats.retries == 0


# --- the link and host, with the behavioural core ---------------------------------------------

def test_golden_board_classifies_like_golden(artifact, digits, golden_board):
    x, _ = digits
    host = golden_board.host()
    ref = forward(artifact, x[:3])
    counts = spike_counts(artifact.config, ref)
    for i in range(3):
        r = host.classify(x[i])
        assert (r.cls, list(r.logits)) == (ref["pred"][i], ref["logits"][i].tolist())
        assert list(r.spike_counts) == counts[i].tolist() and len(r.spike_counts) == 9
        rec = golden_board.core_log[i]
        assert r.cycles == rec.cycles == artifact.config.image_shape[0] ** 2 + golden_board.core.latency - 1


@pytest.mark.parametrize("where", ["payload", "crc", "seq", "length"])
def test_corrupted_frame_is_naked_and_retried(artifact, digits, golden_board, where):
    x, _ = digits
    host = golden_board.host()
    host.identify()
    offset = {"payload": 7 + 20, "crc": _frame_len(golden_board) - 1, "seq": 4, "length": 5}[where]
    t = golden_board.transport
    t.flip[t.written + offset] = 0x10
    r = host.classify(x[0])
    ref = forward(artifact, x[:1], record=False)
    assert (r.cls, list(r.logits)) == (ref["pred"][0], ref["logits"][0].tolist())
    # a longer length field leaves the device waiting for bytes that never come: its timeout
    expect = "TIMEOUT" if where == "length" else "BAD_CRC"
    assert host.stats.nak_codes == {expect: 1}, host.stats
    assert host.stats.retries == 1 and host.stats.timeouts == 0
    assert len(golden_board.core_log) == 1  # only the good frame reached the core


def test_dropped_byte_times_out_on_device_and_host_resyncs(artifact, digits, golden_board):
    x, _ = digits
    host = golden_board.host()
    host.identify()
    t = golden_board.transport
    t.drop.add(t.written + 30)  # a pixel byte lost mid-frame
    r = host.classify(x[1])
    ref = forward(artifact, x[1:2], record=False)
    assert (r.cls, list(r.logits)) == (ref["pred"][0], ref["logits"][0].tolist())
    assert host.stats.nak_codes == {"TIMEOUT": 1} and host.stats.retries == 1 and host.stats.timeouts == 0


def test_wrong_config_hash_refused_by_device(artifact, digits, golden_board):
    x, _ = digits
    host = golden_board.host()
    wrong = artifact.config.hash32 ^ 0x1
    with pytest.raises(DeviceRefused, match="NAK CONFIG_MISMATCH.*rebuild") as e:
        host.request(Cmd.CLASSIFY, classify_payload(wrong, x[0].astype(np.uint8).tobytes()), Cmd.RESULT)
    assert e.value.code == Nak.CONFIG_MISMATCH and host.stats.retries == 0
    assert golden_board.core_log == []
    # and the board carries on
    assert host.classify(x[0]).cls == forward(artifact, x[:1], record=False)["pred"][0]


def _exchange(board, data: bytes) -> list:
    """Write raw bytes, return the frames the device answers (within 20 ms of simulated time
    after the bytes are on the line)."""
    board.transport.write(data)
    dec = FrameDecoder()
    frames = []
    end = board.now + 0.02 + len(data) * board.byte_time  # long frames take their time on the line
    while not frames and board.now < end:
        frames += dec.feed(board.transport.read(4096, 16 * board.byte_time))
    return frames


def test_device_refusals(artifact, golden_board):
    b = golden_board
    h32 = artifact.config.hash32
    px = bytes(b.identity.pixels)
    cases = [
        (encode_frame(Cmd.IDENTIFY, seq=1, version=VERSION + 1), Nak.BAD_VERSION, Cmd.IDENTIFY),
        (encode_frame(0x42, seq=2), Nak.UNKNOWN_COMMAND, 0x42),
        (encode_frame(Cmd.IDENTIFY, b"\x00", seq=3), Nak.BAD_LENGTH, Cmd.IDENTIFY),
        (encode_frame(Cmd.CLASSIFY, classify_payload(h32, px[:-1]), seq=4), Nak.BAD_LENGTH, Cmd.CLASSIFY),
        (encode_frame(Cmd.CLASSIFY, classify_payload(h32, px[:-1] + b"\x20"), seq=5), Nak.BAD_PAYLOAD, Cmd.CLASSIFY),
        (encode_frame(Cmd.LOAD_WEIGHTS, bytes(8 + 16), seq=6), Nak.UNSUPPORTED, Cmd.LOAD_WEIGHTS),
        # a header announcing more than MAX_PAYLOAD: refused as soon as the length is in
        (encode_frame(Cmd.CLASSIFY, seq=7)[:5] + (MAX_PAYLOAD + 1).to_bytes(2, "little"), Nak.BAD_LENGTH,
         Cmd.CLASSIFY),
    ]
    for data, code, cmd in cases:
        frames = _exchange(b, data)
        assert len(frames) == 1, (code, frames)
        f = frames[0]
        assert f.cmd == Cmd.NAK and f.version == VERSION and f.seq == data[4], (code, f)
        assert parse_nak(f.payload) == (code, cmd)
    assert b.core_log == []
    (ok,) = _exchange(b, encode_frame(Cmd.IDENTIFY, seq=9))
    assert ok.cmd == Cmd.IDENTITY and ok.seq == 9


def test_garbage_on_the_line_then_requests(artifact, digits, golden_board):
    x, _ = digits
    t = golden_board.transport
    t.write(bytes([0xA5, 0x00, 0xA5, 0xA5, 0x13, 0xFF]))  # noise, incl. half sync patterns
    host = golden_board.host()
    assert host.identify().config_hash32 == artifact.config.hash32
    assert host.classify(x[2]).cls == forward(artifact, x[2:3], record=False)["pred"][0]


def test_board_that_stops_answering_raises_link_timeout(golden_board):
    host = golden_board.host(retries=1)
    t = golden_board.transport
    t.drop.update(range(t.written, t.written + 2 * 9))  # every byte of both 9-byte attempts lost
    t0 = time.monotonic()
    with pytest.raises(LinkTimeout, match="IDENTIFY failed after 2 attempts"):
        host.identify()
    assert host.stats.timeouts == 2
    assert time.monotonic() - t0 < 60
    assert host.identify().protocol == VERSION  # and it comes back


def test_wall_limit_stops_a_wedged_simulation(artifact):
    with SimBoard.for_artifact(artifact, core="golden", wall_limit=0.0) as b:
        with pytest.raises(SimWallLimit, match="wall-clock limit of 0 s"):
            b.host().identify()


# --- the UART on its own ---------------------------------------------------------------------

@pytest.mark.parametrize("divisor,skew", [(4, 1.0), (7, 1.0), (16, 1.03), (16, 0.97), (217, 1.02)])
def test_uart_rx_tx_bytes_with_clock_skew(divisor, skew):
    """UARTRx receives bytes sent `skew` times the nominal bit time; UARTTx sends at exactly it."""
    from amaranth import Module
    from amaranth.sim import Simulator

    from hw.uart import UARTRx, UARTTx

    rng = np.random.default_rng(divisor)
    data = [0x00, 0xFF, 0xA5, 0x5A] + [int(v) for v in rng.integers(0, 256, 6 if divisor > 100 else 12)]
    m = Module()
    m.submodules.rx = rx = UARTRx(divisor)
    m.submodules.tx = tx = UARTTx(divisor)
    got_rx, got_tx = [], []
    sim = Simulator(m)
    sim.add_clock(1e-8)
    bit = divisor * skew

    async def send(ctx):
        ctx.set(rx.rx, 1)
        t = 3.0
        await _ticks_n(ctx, 3)
        for b in data:
            for level in [0] + [(b >> i) & 1 for i in range(8)] + [1]:
                ctx.set(rx.rx, level)
                t += bit
                await _ticks_n(ctx, int(t) - int(t - bit))
        await _ticks_n(ctx, 3 * divisor)

    async def take(ctx):
        ctx.set(rx.o.ready, 1)
        while True:
            _, _, valid, payload, ferr, ovr = await ctx.tick().sample(rx.o.valid, rx.o.payload, rx.frame_error,
                                                                     rx.overrun)
            assert not ferr and not ovr
            if valid:
                got_rx.append(payload)

    async def transmit(ctx):
        for b in data:
            ctx.set(tx.i.payload, b)
            ctx.set(tx.i.valid, 1)
            while True:
                _, _, ready = await ctx.tick().sample(tx.i.ready)
                if ready:
                    break
        ctx.set(tx.i.valid, 0)
        await _ticks_n(ctx, 12 * divisor)  # let the last byte leave the pin

    async def listen(ctx):
        while True:
            await ctx.negedge(tx.tx)
            await _ticks_n(ctx, divisor // 2)
            v = 0
            for i in range(8):
                await _ticks_n(ctx, divisor)
                v |= ctx.get(tx.tx) << i
            await _ticks_n(ctx, divisor)
            assert ctx.get(tx.tx) == 1  # stop bit
            got_tx.append(v)

    sim.add_testbench(send)
    sim.add_testbench(take, background=True)
    sim.add_testbench(transmit)
    sim.add_testbench(listen, background=True)
    sim.run()
    assert got_rx == data
    assert got_tx == data


async def _ticks_n(ctx, n):
    for _ in range(n):
        await ctx.tick()


def test_uart_divisor_checks():
    from hw.uart import _check_divisor, divisor_for

    assert divisor_for(25e6, 115200) == 217
    with pytest.raises(ValueError, match="too fast"):
        divisor_for(1e6, 500_000)
    with pytest.raises(ValueError, match="% off"):
        divisor_for(1e6, 115200)
    # what UARTRx/UARTTx check first (calling them here would leave unused elaboratables)
    with pytest.raises(ValueError, match="at least 4"):
        _check_divisor(3)
    with pytest.raises(TypeError, match="integer number of cycles"):
        _check_divisor(4.0)
