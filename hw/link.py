"""The host link in gateware: frame parser and responder between the UART and the datapath.

Speaks exactly the protocol of boards/protocol.py (docs/host-protocol.md): it hunts for the sync
bytes, reads the header, stores a CLASSIFY's pixels (or a LOAD_WEIGHTS chunk) in a small memory
while the CRC-16 runs over the frame, and only when the whole frame checks (CRC, version,
command, length, config hash, pixel range or chunk placement) streams the pixels (the chunk's
bytes) into the datapath, so a corrupted frame never reaches it. Every
rejected frame is answered with a NAK naming the reason; a frame that stops arriving part-way
(a dropped byte) is abandoned after ``timeout_cycles`` of silence with NAK TIMEOUT.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, Cat, C, Const, unsigned, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from boards.protocol import (
    LOAD_CHUNK_MAX, LOAD_HEADER_LEN, MAX_PAYLOAD, SYNC, VERSION, Cmd, Identity, Loaded, Nak, Result, RESPONSE_BIT,
)
from hw.common import ceil_div, replicas

__all__ = ["HostLink", "crc16_update", "pixel_layout", "result_layout", "LOGIT_BITS"]

LOGIT_BITS = 32  # logits travel sign-extended to 32 bits (RESULT payload, little-endian int32)




def crc16_update(crc, byte):
    """CRC-16/CCITT-FALSE after one more byte: a 16-bit expression (MSB first, poly 0x1021).

    The bit-serial form, one shift and a conditional XOR per bit. Written this way on purpose:
    the flat XOR-matrix form of the same function makes Yosys 0.70's abc9 (synth_ecp5) abort
    with ``Assert GetSize(conn.first) == GetSize(conn.second)`` on the whole-network build, and
    a ``replicate``-masked form grows exponentially during elaboration.
    """
    c = crc
    for i in range(8):
        fb = c[15] ^ byte[7 - i]
        c = Cat(C(0, 1), c[:15]) ^ Mux(fb, C(0x1021, 16), C(0, 16))
    return c


def pixel_layout(pixel_bits: int) -> data.StructLayout:
    """One pixel in raster order (row, column, channel); ``last`` marks the image's final pixel."""
    return data.StructLayout({"data": unsigned(pixel_bits), "last": 1})


def result_layout(classes: int, spike_layers: int = 0) -> data.StructLayout:
    """What the datapath hands back per image: class, logits summed over T, cycle count, and
    (when `spike_layers` > 0) the spike count of every spike layer, 32 bits each."""
    fields = {
        "cls": unsigned(16),
        "cycles": unsigned(32),
        "logits": data.ArrayLayout(signed(LOGIT_BITS), classes),
    }
    if spike_layers:
        fields["spikes"] = data.ArrayLayout(unsigned(32), spike_layers)
    return data.StructLayout(fields)


#: What the response register does in a cycle (HostLink's resp_op): keep, shift a byte out, load.
_RESP_OPS = ("hold", "shift", "nak", "identity", "result", "loaded")
#: Bytes of the response register per kept copy of its operation (a copy drives 64 enables).
RESP_SLICE_BYTES = 8


def _const_bytes(b: bytes) -> Const:
    return Const(int.from_bytes(b, "little"), 8 * max(1, len(b)))


class HostLink(wiring.Component):
    """Frame parser and responder for the UART host protocol.

    Parameters
    ----------
    identity : boards.protocol.Identity
        What IDENTIFY answers; also fixes the image size (``pixels`` bytes), ``pixel_bits``,
        ``classes`` and the config hash a CLASSIFY must carry.
    timeout_cycles : int
        Silence (cycles without a byte) after which a partly received frame is abandoned.
    image : hw.param_image.ParamImage or None
        The datapath's parameter image layout when its weights are loadable (IDENTITY's LOADABLE
        flag must then be set); None: LOAD_WEIGHTS is answered NAK UNSUPPORTED.

    Members
    -------
    rx : In(stream.Signature(8))
        Bytes from the UART receiver; always accepted (ready is held high), because the UART
        cannot be paused. Bytes arriving while a request is being served are dropped.
    tx : Out(stream.Signature(8))
        Response bytes to the UART transmitter.
    pixels : Out(stream.Signature(pixel_layout(pixel_bits)))
        The image of an accepted CLASSIFY, ``pixels`` beats in raster order, ``last`` on the final one.
    result : In(stream.Signature(result_layout(classes, spike_layers)))
        The datapath's answer; taken only while a CLASSIFY waits for it.
    wload : Out(stream.Signature(hw.param_image.wload_layout(image)))   only with `image`
        The bytes of an accepted LOAD_WEIGHTS chunk, each with its image byte address, in order.
    busy : Out(1)
        High from an accepted CLASSIFY until its RESULT is sent (an LED).
    naks : Out(8)
        Count of NAKs sent, wrapping (LEDs show it).

    Latency: a CLASSIFY's first pixel leaves 3 cycles after its last CRC byte; the RESULT's first
    byte leaves 4 cycles after ``result.valid`` (taken with ``result.ready`` in the second), then one byte every 2 cycles while ``tx.ready``. A LOAD_WEIGHTS chunk's first byte leaves 2 cycles
    after its last CRC byte, then one byte per cycle while ``wload.ready``; LOADED's first byte
    leaves 3 cycles after the last byte was taken.
    Resources: one memory of ``pixels`` x ``pixel_bits`` (an EBR, or LUT RAM when small); a
    response shift register of 8 x max(payload) FF (49 + 4 x spike_layers bytes for 10 classes),
    its load mux and one kept copy of its 3-bit operation per RESP_SLICE_BYTES bytes; the CRC and the FSM: a few hundred LUT4. With `image`: a chunk memory of
    LOAD_CHUNK_MAX x 8 bits (one EBR), a second CRC-16, the chunk placement check (two compares
    per image segment on the offset and the chunk's end).
    """

    def __init__(self, identity: Identity, *, timeout_cycles: int, image=None):
        if not isinstance(identity, Identity):
            raise TypeError(f"identity must be a boards.protocol.Identity, not {identity!r}")
        if isinstance(timeout_cycles, bool) or not isinstance(timeout_cycles, int) or timeout_cycles < 16:
            raise ValueError(f"timeout_cycles must be an integer >= 16, not {timeout_cycles!r}")
        if identity.pixels < 1 or identity.pixels + 4 > MAX_PAYLOAD:
            raise ValueError(f"an image of {identity.pixels} pixels does not fit a {MAX_PAYLOAD}-byte payload")
        if not 1 <= identity.pixel_bits <= 8:
            raise ValueError(f"pixels travel as single bytes; pixel_bits={identity.pixel_bits} must be 1..8")
        if not 0 <= identity.spike_layers <= 255:
            raise ValueError(f"spike_layers={identity.spike_layers} does not fit the RESULT's u8 count")
        if identity.loadable != (image is not None):
            raise ValueError(
                f"IDENTITY says weights are {'loadable' if identity.loadable else 'baked'} but the link was given "
                f"{'no parameter image' if image is None else 'a parameter image'}; build both from the same "
                "HardwareConfig.weights (boards.simboard.identity_for, NetworkCore.image)")
        if image is not None and image.size > (1 << 32) - 1:
            raise ValueError(f"a parameter image of {image.size} bytes does not fit LOAD_WEIGHTS' u32 offset")
        self.identity = identity
        self.timeout_cycles = timeout_cycles
        self.image = image
        members = {
            "rx": In(stream.Signature(8)),
            "tx": Out(stream.Signature(8)),
            "pixels": Out(stream.Signature(pixel_layout(identity.pixel_bits))),
            "result": In(stream.Signature(result_layout(identity.classes, identity.spike_layers))),
            "busy": Out(1),
            "naks": Out(8),
        }
        if image is not None:
            from hw.param_image import wload_layout

            members["wload"] = Out(stream.Signature(wload_layout(image)))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        ident = self.identity
        npix = ident.pixels
        classify_len = 4 + npix
        result_len = Result.length(ident.classes, ident.spike_layers)
        ident_bytes = ident.encode()
        image = self.image
        resp_bytes = max(result_len, len(ident_bytes), 2, Loaded.length_bytes() if image is not None else 0)
        assert resp_bytes < 256  # the LEN_HI byte of every response is 0

        m.submodules.mem = mem = Memory(shape=unsigned(ident.pixel_bits), depth=npix, init=[])
        wr = mem.write_port()
        rd = mem.read_port(transparent_for=())

        # --- receive side ----------------------------------------------------------------
        byte = self.rx.payload
        got = Signal()
        m.d.comb += [self.rx.ready.eq(1), got.eq(self.rx.valid)]

        crc = Signal(16, init=0xFFFF)
        hdr = Signal(range(5))
        version = Signal(8)
        cmd = Signal(8)
        seq = Signal(8)
        length = Signal(16)
        idx = Signal(16)              # payload byte index
        crc_idx = Signal()
        hash_reg = Signal(32)
        off_reg = Signal(32)          # LOAD_WEIGHTS offset
        pixel_oob = Signal()          # some pixel byte exceeded pixel_bits
        silence = Signal(range(self.timeout_cycles + 1))

        # --- response side ---------------------------------------------------------------
        resp_cmd = Signal(8)
        resp_len = Signal(range(resp_bytes + 1))
        resp = Signal(8 * resp_bytes, reset_less=True)  # loaded before each send: no reset net
        # The FSM does not write `resp`: it names the operation (resp_op_next) and kept copies of
        # that choice, one per RESP_SLICE_BYTES bytes, apply it a cycle later. Decoded straight from
        # the FSM, the enable of all 8 x resp_bytes flip-flops was the 17.96 ns critical path
        # (link.length -> resp CE, 658 endpoints; 85F, 55.69 MHz).
        resp_op_next = Signal(range(len(_RESP_OPS)))
        resp_ops = replicas(m, resp_op_next, ceil_div(resp_bytes, RESP_SLICE_BYTES), "resp_op")
        nak_word = Signal(16)
        tx_idx = Signal(range(7 + resp_bytes + 2 + 1))
        tx_crc = Signal(16, init=0xFFFF)
        tx_byte = Signal(8)           # the byte offered to the UART (chosen the cycle before)
        tx_full = Signal()            # tx_byte holds the byte at tx_idx
        tx_in_crc = Signal()          # ... which the CRC covers
        tx_last = Signal()            # ... which is the frame's last

        nak_code = Signal(8)

        def send_nak(code):
            m.d.sync += [
                resp_cmd.eq(Cmd.NAK), resp_len.eq(2), nak_word.eq(Cat(C(code, 8), cmd)),
                self.naks.eq(self.naks + 1),
            ]
            m.d.comb += resp_op_next.eq(_RESP_OPS.index("nak"))
            m.next = "SEND"

        # pixel feed
        fidx = Signal(range(npix + 1))
        issued = Signal()
        load = ~self.pixels.valid | self.pixels.ready
        last_reg = Signal()
        m.d.comb += [
            self.pixels.valid.eq(issued),
            self.pixels.payload.data.eq(rd.data),
            self.pixels.payload.last.eq(last_reg),
            rd.addr.eq(fidx),
        ]

        in_frame = Signal()
        with m.If(got | ~in_frame):
            m.d.sync += silence.eq(0)
        with m.Elif(silence != self.timeout_cycles):
            m.d.sync += silence.eq(silence + 1)
        timed_out = in_frame & (silence == self.timeout_cycles)

        wrote_pixel = Signal()
        m.d.comb += [
            wr.addr.eq(idx - 4),
            wr.data.eq(byte),
            wrote_pixel.eq((cmd == Cmd.CLASSIFY) & (idx >= 4) & (idx < classify_len)),
        ]

        if image is not None:
            self._chunk_logic(m, ident, byte, idx, length, off_reg)
            wbuf_wr, wbuf_rd = self._wbuf_wr, self._wbuf_rd
            chunk_ok, chunk_len = self._chunk_ok, self._chunk_len
            wfidx, w_issued, w_addr, wcrc, wload_load = self._wfidx, self._w_issued, self._w_addr, self._wcrc, \
                self._wload_load

        with m.FSM():
            with m.State("HUNT"):
                with m.If(got & (byte == SYNC[0])):
                    m.next = "SYNC1"
            with m.State("SYNC1"):
                with m.If(got):
                    with m.If(byte == SYNC[1]):
                        m.d.sync += [crc.eq(0xFFFF), hdr.eq(0), idx.eq(0), crc_idx.eq(0),
                                     pixel_oob.eq(0)]
                        m.next = "HEADER"
                    with m.Elif(byte != SYNC[0]):
                        m.next = "HUNT"
            with m.State("HEADER"):
                m.d.comb += in_frame.eq(1)
                with m.If(timed_out):
                    send_nak(Nak.TIMEOUT)
                with m.Elif(got):
                    m.d.sync += [crc.eq(crc16_update(crc, byte)), hdr.eq(hdr + 1)]
                    with m.Switch(hdr):
                        with m.Case(0):
                            m.d.sync += version.eq(byte)
                        with m.Case(1):
                            m.d.sync += cmd.eq(byte)
                        with m.Case(2):
                            m.d.sync += seq.eq(byte)
                        with m.Case(3):
                            m.d.sync += length[:8].eq(byte)
                        with m.Case(4):
                            m.d.sync += length[8:].eq(byte)
                            with m.If(Cat(length[:8], byte) > MAX_PAYLOAD):
                                send_nak(Nak.BAD_LENGTH)
                            with m.Elif(Cat(length[:8], byte) == 0):
                                m.next = "CRC"
                            with m.Else():
                                m.next = "PAYLOAD"
            with m.State("PAYLOAD"):
                m.d.comb += in_frame.eq(1)
                with m.If(timed_out):
                    send_nak(Nak.TIMEOUT)
                with m.Elif(got):
                    m.d.sync += [crc.eq(crc16_update(crc, byte)), idx.eq(idx + 1)]
                    with m.If(idx < 4):
                        m.d.sync += hash_reg.word_select(idx[:2], 8).eq(byte)
                    with m.Elif(idx < LOAD_HEADER_LEN):
                        m.d.sync += off_reg.word_select(idx[:2], 8).eq(byte)
                    if image is not None:
                        with m.If((cmd == Cmd.LOAD_WEIGHTS) & (idx >= LOAD_HEADER_LEN)
                                  & (idx < LOAD_HEADER_LEN + LOAD_CHUNK_MAX)):
                            m.d.comb += wbuf_wr.en.eq(1)
                    with m.If(wrote_pixel):
                        m.d.comb += wr.en.eq(1)
                        with m.If(byte > (1 << ident.pixel_bits) - 1):
                            m.d.sync += pixel_oob.eq(1)
                    with m.If(idx + 1 == length):
                        m.next = "CRC"
            with m.State("CRC"):
                m.d.comb += in_frame.eq(1)
                with m.If(timed_out):
                    send_nak(Nak.TIMEOUT)
                with m.Elif(got):
                    m.d.sync += [crc.eq(crc16_update(crc, byte)), crc_idx.eq(1)]
                    with m.If(crc_idx):
                        m.next = "CHECK"
            with m.State("CHECK"):
                # the CRC register ran over the CRC bytes too: 0 means the frame is intact
                with m.If(crc != 0):
                    send_nak(Nak.BAD_CRC)
                with m.Elif(version != VERSION):
                    send_nak(Nak.BAD_VERSION)
                with m.Elif(cmd == Cmd.IDENTIFY):
                    with m.If(length != 0):
                        send_nak(Nak.BAD_LENGTH)
                    with m.Else():
                        m.d.sync += [resp_cmd.eq(Cmd.IDENTITY), resp_len.eq(len(ident_bytes))]
                        m.d.comb += resp_op_next.eq(_RESP_OPS.index("identity"))
                        m.next = "SEND"
                with m.Elif(cmd == Cmd.CLASSIFY):
                    with m.If(length != classify_len):
                        send_nak(Nak.BAD_LENGTH)
                    with m.Elif(hash_reg != ident.config_hash32):
                        send_nak(Nak.CONFIG_MISMATCH)
                    with m.Elif(pixel_oob):
                        send_nak(Nak.BAD_PAYLOAD)
                    with m.Else():
                        m.d.sync += [fidx.eq(0), issued.eq(0), self.busy.eq(1)]
                        m.next = "FEED"
                with m.Elif(cmd == Cmd.LOAD_WEIGHTS):
                    if image is None:
                        # the datapath has no weight write port: weights are baked into the bitstream
                        send_nak(Nak.UNSUPPORTED)
                    else:
                        with m.If((length <= LOAD_HEADER_LEN) | (length > LOAD_HEADER_LEN + LOAD_CHUNK_MAX)):
                            send_nak(Nak.BAD_LENGTH)
                        with m.Elif(hash_reg != ident.config_hash32):
                            send_nak(Nak.CONFIG_MISMATCH)
                        with m.Elif(~chunk_ok):
                            send_nak(Nak.BAD_PAYLOAD)
                        with m.Else():
                            m.d.sync += [wfidx.eq(0), w_issued.eq(0), wcrc.eq(0xFFFF)]
                            m.next = "WFEED"
                with m.Else():
                    send_nak(Nak.UNKNOWN_COMMAND)
            with m.State("FEED"):
                with m.If(load):
                    m.d.comb += rd.en.eq(1)
                    m.d.sync += [issued.eq(fidx != npix), last_reg.eq(fidx == npix - 1)]
                    with m.If(fidx != npix):
                        m.d.sync += fidx.eq(fidx + 1)
                    with m.Elif(~issued | self.pixels.ready):
                        m.next = "WAIT"
            with m.State("WAIT"):
                with m.If(self.result.valid):
                    m.d.sync += [resp_cmd.eq(Cmd.RESULT), resp_len.eq(result_len)]
                    m.d.comb += resp_op_next.eq(_RESP_OPS.index("result"))
                    m.next = "TAKE"
            with m.State("TAKE"):
                # the result is taken in the cycle `resp` loads it (the stream holds it till then)
                m.d.comb += self.result.ready.eq(1)
                m.next = "SEND"
            if image is not None:
                with m.State("WFEED"):
                    with m.If(wload_load):
                        m.d.comb += wbuf_rd.en.eq(1)
                        m.d.sync += [w_issued.eq(wfidx != chunk_len), w_addr.eq(off_reg + wfidx)]
                        with m.If(wfidx != chunk_len):
                            m.d.sync += wfidx.eq(wfidx + 1)
                        with m.Elif(~w_issued | self.wload.ready):
                            m.next = "LOADED"
                with m.State("LOADED"):  # the last byte's CRC step is in
                    m.d.sync += [resp_cmd.eq(Cmd.LOADED), resp_len.eq(Loaded.length_bytes())]
                    m.d.comb += resp_op_next.eq(_RESP_OPS.index("loaded"))
                    m.next = "SEND"
            with m.State("SEND"):
                # byte at tx_idx: 0,1 sync; 2 ver; 3 cmd; 4 seq; 5,6 len; payload; crc hi, lo.
                # The byte is chosen into `tx_byte` one cycle and offered the next: the byte mux
                # feeding the CRC step and the UART's shift register in one cycle was the
                # link's 15.5 ns path (e9bf161). A UART byte takes 10 bit times, so the extra
                # cycle per byte costs no throughput.
                out = Signal(8)
                with m.If(tx_idx == 0):
                    m.d.comb += out.eq(SYNC[0])
                with m.Elif(tx_idx == 1):
                    m.d.comb += out.eq(SYNC[1])
                with m.Elif(tx_idx == 2):
                    m.d.comb += out.eq(VERSION)
                with m.Elif(tx_idx == 3):
                    m.d.comb += out.eq(resp_cmd)
                with m.Elif(tx_idx == 4):
                    m.d.comb += out.eq(seq)
                with m.Elif(tx_idx == 5):
                    m.d.comb += out.eq(resp_len)
                with m.Elif(tx_idx == 6):
                    m.d.comb += out.eq(0)
                with m.Elif(tx_idx < 7 + resp_len):
                    # the payload leaves as a shift register, byte 0 first: a resp_bytes:1
                    # byte mux in front of tx_byte was a 15.7 ns path on the 85F
                    m.d.comb += out.eq(resp[:8])
                    with m.If(~tx_full):  # shifted next cycle, before the next byte is chosen
                        m.d.comb += resp_op_next.eq(_RESP_OPS.index("shift"))
                with m.Elif(tx_idx == 7 + resp_len):
                    m.d.comb += out.eq(tx_crc[8:])
                with m.Else():
                    m.d.comb += out.eq(tx_crc[:8])
                with m.If(~tx_full):
                    m.d.sync += [tx_byte.eq(out), tx_full.eq(1),
                                 tx_in_crc.eq((tx_idx >= 2) & (tx_idx < 7 + resp_len)),
                                 tx_last.eq(tx_idx == 7 + resp_len + 1)]
                m.d.comb += [self.tx.valid.eq(tx_full), self.tx.payload.eq(tx_byte)]
                with m.If(tx_full & self.tx.ready):
                    m.d.sync += [tx_idx.eq(tx_idx + 1), tx_full.eq(0)]
                    with m.If(tx_in_crc):
                        m.d.sync += tx_crc.eq(crc16_update(tx_crc, tx_byte))
                    with m.If(tx_last):
                        m.d.sync += [tx_idx.eq(0), tx_crc.eq(0xFFFF), self.busy.eq(0)]
                        m.next = "HUNT"

        # --- the response register, one slice per kept copy of the operation ----------------
        # The sources are stable in the cycle the copies apply: nak_word, off_reg, chunk_len and
        # wcrc change only while a request is received, and the result is taken (TAKE) then.
        r = self.result.payload
        spikes = [r.spikes[i] for i in range(ident.spike_layers)]
        sources = {
            "shift": resp >> 8,
            "nak": nak_word,
            "identity": _const_bytes(ident_bytes),
            # cls u16, cycles u32, n_logits u16, logits int32 x C, n_spike_layers u8, u32 x K
            "result": Cat(r.cls, r.cycles, C(ident.classes, 16), *[r.logits[i] for i in range(ident.classes)],
                          C(ident.spike_layers, 8), *spikes),
        }
        if image is not None:
            sources["loaded"] = Cat(off_reg, chunk_len, C(0, 16 - len(chunk_len)), wcrc, C(image.size, 32))
        words = {}  # each source zero-extended to the register's width, sliced below
        for name, value in sources.items():
            words[name] = Signal(len(resp), name=f"resp_{name}")
            m.d.comb += words[name].eq(value)
        for i, op in enumerate(resp_ops):
            lo, hi = 8 * RESP_SLICE_BYTES * i, min(8 * RESP_SLICE_BYTES * (i + 1), len(resp))
            with m.Switch(op):
                for name, word in words.items():
                    with m.Case(_RESP_OPS.index(name)):
                        m.d.sync += resp[lo:hi].eq(word[lo:hi])
        return m

    def _chunk_logic(self, m, ident, byte, idx, length, off_reg):
        """LOAD_WEIGHTS: the chunk memory, the placement check and the wload stream's feed."""
        image = self.image
        m.submodules.wbuf = wbuf = Memory(shape=unsigned(8), depth=LOAD_CHUNK_MAX, init=[])
        self._wbuf_wr = wr = wbuf.write_port()
        self._wbuf_rd = rd = wbuf.read_port(transparent_for=())
        m.d.comb += [wr.addr.eq(idx - LOAD_HEADER_LEN), wr.data.eq(byte)]

        # Placement: the chunk [offset, end) starts at a row start and ends at a row start or a
        # segment's end (hw.param_image.ParamImage.check_chunk). Bases and ends are multiples of
        # each segment's power-of-two stride, so a row start is a range compare and zero low bits.
        nb = max(1, image.size.bit_length())
        self._chunk_len = chunk_len = Signal(range(LOAD_CHUNK_MAX + 1))
        m.d.comb += chunk_len.eq(length - LOAD_HEADER_LEN)
        off = off_reg[:nb]
        end = Signal(nb + 1)
        m.d.comb += end.eq(off + chunk_len)
        small = off_reg[nb:] == 0
        start_ok = C(0, 1)
        end_ok = C(0, 1)
        for sg in image.segments:
            low_off = (off[:sg.shift] == 0) if sg.shift else C(1, 1)
            low_end = (end[:sg.shift] == 0) if sg.shift else C(1, 1)
            start_ok = start_ok | ((off >= sg.base) & (off < sg.end) & low_off)
            end_ok = end_ok | ((end > sg.base) & (end <= sg.end) & low_end)
        self._chunk_ok = chunk_ok = Signal()
        m.d.comb += chunk_ok.eq(small & start_ok & end_ok)

        # feed: as the pixel feed, a registered read one beat ahead
        self._wfidx = Signal(range(LOAD_CHUNK_MAX + 1))
        self._w_issued = issued = Signal()
        self._w_addr = w_addr = Signal.like(self.wload.payload.addr)
        self._wcrc = wcrc = Signal(16, init=0xFFFF)
        self._wload_load = ~self.wload.valid | self.wload.ready
        m.d.comb += [
            rd.addr.eq(self._wfidx),
            self.wload.valid.eq(issued),
            self.wload.payload.data.eq(rd.data),
            self.wload.payload.addr.eq(w_addr),
        ]
        with m.If(self.wload.valid & self.wload.ready):
            m.d.sync += wcrc.eq(crc16_update(wcrc, rd.data))
