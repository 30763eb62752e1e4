"""`STFEncoder`: patch embedding MACs + requant, TSPE table and temporal feedback input."""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Mux, Array, Module, Signal, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from hw.common import ceil_div, check_bool, check_int, pack, sbits
from hw.requant import Requant
from model.config import ModelConfig
from quant.contract import widths

__all__ = ["STFEncoder", "pixel_offsets", "encoder_rows", "ENCODER_MEMORIES"]

# The encoder memories a loadable encoder can write, in the order of its one-hot ``w_en``.
ENCODER_MEMORIES = ("weights", "mult", "bias", "pos", "gain")


def pixel_offsets(cfg: ModelConfig) -> tuple[list[int], list[int]]:
    """(token base address [N], patch element offset [K]) in the row-major pixel memory, so that
    pixel k of token n (quant.golden.patchify order) is at ``base[n] + offset[k]``."""
    h, w, c = cfg.image_shape
    p = cfg.patch
    gh, gw = cfg.grid
    base = [((gy * p) * w + gx * p) * c for gy in range(gh) for gx in range(gw)]
    off = [(py * w + px) * c + ch for py in range(p) for px in range(p) for ch in range(c)]
    return base, off


def encoder_rows(cfg: ModelConfig, params: dict, lanes: int) -> dict[str, list[int]]:
    """The row words of the encoder memories (``weights``, ``mult``, ``bias``, ``pos``, ``gain``):
    the memories' init, and the encoder segments of `hw.param_image.ParamImage`."""
    P, K, N, D = lanes, cfg.patch_dim, cfg.tokens, cfg.dim
    chunks = ceil_div(D, P)

    def padded(vec):
        out = np.zeros(chunks * P, np.int64)
        out[:D] = vec
        return out.reshape(chunks, P)

    W = np.asarray(params["enc.weight"])
    pos = np.asarray(params["enc.pos"])
    tables = cfg.timesteps if cfg.tspe else 1
    return {
        "weights": [pack(padded(W[k])[ch], cfg.weight_bits) for ch in range(chunks) for k in range(K)],
        "mult": [pack(r, cfg.mult_bits) for r in padded(params["enc.mult"])],
        "bias": [pack(r, cfg.bias_bits) for r in padded(params["enc.bias"])],
        "pos": [pack(padded(pos[t, n])[ch], cfg.pos_bits) for t in range(tables) for n in range(N)
                for ch in range(chunks)],
        "gain": [pack(r, cfg.feedback_bits) for r in padded(params["enc.gain"])],
    }


class STFEncoder(wiring.Component):
    """The encoding layer's integer arithmetic (quant.golden.forward, ``enc.*`` parameters).

    Once per image: ``E[n, c] = requantize(sum_k x[n, k] * W[k, c], mult, shift, bias)`` over the
    pixels of each patch (the only multiplies of the network, pixel x weight, P lanes per cycle),
    stored in the E memory. Then at every (t, n, chunk) a tap returns the encoder LIF input
    ``I = E[n] + P[t, n] + (S[t-1, n] ? g : 0)`` (TSPE table P in memory: T tables when the config
    has TSPE, one shared table otherwise; the feedback gain g only where the config has TF).

    Parameters
    ----------
    cfg : ModelConfig
    params : dict with enc.weight [K, D], enc.mult [D], enc.bias [D], enc.pos [T, N, D],
             enc.gain [D] (an artifact's params)
    lanes : int >= 1          P, channels per cycle (D is cut into ceil(D/P) chunks).
    loadable : bool           add a write port to the five parameter memories (`w_*` below).

    Ports
    -----
    pix_en : In(1), pix_addr : In(range(H*W*C)), pix_data : In(unsigned(pixel_bits))
        Pixel memory write (row-major y, x, channel).
    start : In(1)             compute E from the pixel memory.
    busy : Out(1), done : Out(1)   done pulses when E is complete.
    tap_valid : In(1), tap_t : In(range(T)), tap_n : In(range(N)), tap_ch : In(range(chunks)),
    tap_s : In(unsigned(P))   previous spikes S[t-1] of those P channels, presented one cycle
                              after tap_valid (the spike plane memory's read latency).
    tap_o_valid : Out(1), tap_x : Out(ArrayLayout(signed(x_bits), P))   2 cycles later.
    w_en : In(5), w_addr : In(range(max depth)), w_data : In(unsigned(max width))   loadable only
        Write row `w_addr` of the memories whose bit is set (ENCODER_MEMORIES order: weights,
        mult, bias, pos, gain), ``w_data`` truncated to the memory's width. Only while idle.

    Latency: E: ``busy`` for N * chunks * (K + 2) + 3 cycles from the cycle after ``start``, ``done``
    N * chunks * (K + 2) + 4 cycles after ``start`` (K = patch elements); the tap 2 cycles.

    Resources: P multipliers pixel_bits x weight_bits (LUTs or MULT18), P requant multipliers
    (MULT18), memories: pixels H*W*C x pixel_bits, weights K*chunks x P*weight_bits,
    E N*chunks x P*e_bits, P table (T or 1)*N*chunks x P*pos_bits, gain/mult/bias chunks rows.
    """

    def __init__(self, cfg: ModelConfig, params: dict, lanes: int, *, loadable: bool = False):
        owner = "STFEncoder"
        if not isinstance(cfg, ModelConfig):
            raise TypeError(f"{owner}: cfg must be a ModelConfig, not {type(cfg).__name__}")
        check_int(owner, "lanes", lanes, 1, 4096)
        check_bool(owner, "loadable", loadable)
        for k in ("enc.weight", "enc.mult", "enc.bias", "enc.pos", "enc.gain"):
            if k not in params:
                raise ValueError(f"{owner}: params lacks {k}; pass an artifact's params")
        self.cfg, self.lanes = cfg, lanes
        wd = widths(cfg)
        D, K, N, T, P = cfg.dim, cfg.patch_dim, cfg.tokens, cfg.timesteps, lanes
        self.chunks = ceil_div(D, P)
        self.acc_bits = sbits(wd.enc_acc_max)
        self.e_bits = sbits(wd.requant_enc_max)
        self.x_bits = sbits(wd.enc_in_max)
        self.n_pixels = cfg.image_shape[0] * cfg.image_shape[1] * cfg.image_shape[2]
        self.latency_tap = 2

        rows = encoder_rows(cfg, params, P)
        self.w_rows, self.mult_rows, self.bias_rows = rows["weights"], rows["mult"], rows["bias"]
        self.pos_rows, self.gain_rows = rows["pos"], rows["gain"]
        self.pos_tables = T if cfg.tspe else 1
        self.loadable = bool(loadable)
        self.mem_shapes = {"weights": (len(self.w_rows), P * cfg.weight_bits),
                           "mult": (self.chunks, P * cfg.mult_bits), "bias": (self.chunks, P * cfg.bias_bits),
                           "pos": (len(self.pos_rows), P * cfg.pos_bits),
                           "gain": (self.chunks, P * cfg.feedback_bits)}
        members = {
            "pix_en": In(1), "pix_addr": In(range(self.n_pixels)), "pix_data": In(unsigned(cfg.pixel_bits)),
            "start": In(1), "busy": Out(1), "done": Out(1),
            "tap_valid": In(1), "tap_t": In(range(T)), "tap_n": In(range(N)), "tap_ch": In(range(self.chunks)),
            "tap_s": In(unsigned(P)),
            "tap_o_valid": Out(1), "tap_x": Out(data.ArrayLayout(signed(self.x_bits), P)),
        }
        if self.loadable:
            members.update({
                "w_en": In(len(ENCODER_MEMORIES)),
                "w_addr": In(range(max(d for d, _ in self.mem_shapes.values()))),
                "w_data": In(unsigned(max(w for _, w in self.mem_shapes.values()))),
            })
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        cfg, P, C = self.cfg, self.lanes, self.chunks
        N, K, wb = cfg.tokens, cfg.patch_dim, cfg.weight_bits

        def rom(name, rows, width):
            mem = memory.Memory(shape=unsigned(width), depth=len(rows), init=rows)
            m.submodules[name] = mem
            if self.loadable:  # the parameter image's write path (hw.param_image); idle-time only
                wp = mem.write_port()
                m.d.comb += [wp.en.eq(self.w_en[ENCODER_MEMORIES.index(name)]), wp.addr.eq(self.w_addr),
                             wp.data.eq(self.w_data[:width])]
            return mem

        m.submodules.pixels = pmem = memory.Memory(shape=unsigned(cfg.pixel_bits), depth=self.n_pixels, init=[])
        pwp = pmem.write_port()
        prp = pmem.read_port()
        m.d.comb += [pwp.en.eq(self.pix_en), pwp.addr.eq(self.pix_addr), pwp.data.eq(self.pix_data)]
        wrp = rom("weights", self.w_rows, P * wb).read_port()
        mrp = rom("mult", self.mult_rows, P * cfg.mult_bits).read_port()
        brp = rom("bias", self.bias_rows, P * cfg.bias_bits).read_port()
        m.submodules.e = emem = memory.Memory(shape=unsigned(P * self.e_bits), depth=N * C, init=[])
        ewp = emem.write_port()
        erp = emem.read_port()
        posrp = rom("pos", self.pos_rows, P * cfg.pos_bits).read_port()
        grp = rom("gain", self.gain_rows, P * cfg.feedback_bits).read_port()

        # ---- E = requant(patch MACs), token by token, chunk by chunk -------------------------
        base, off = pixel_offsets(cfg)
        n = Signal(range(N))
        ch = Signal(range(C))
        k = Signal(range(K + 1))
        issue = Signal()
        feed = Signal()
        m.d.comb += [prp.addr.eq(Array(base)[n] + Array(off)[k]), wrp.addr.eq(ch * K + k),
                     mrp.addr.eq(ch), brp.addr.eq(ch)]
        valid1 = Signal()
        m.d.sync += valid1.eq(issue)
        acc = [Signal(signed(self.acc_bits), name=f"acc{j}") for j in range(P)]
        for j in range(P):
            prod = prp.data * wrp.data.word_select(j, wb).as_signed()
            with m.If(feed):
                m.d.sync += acc[j].eq(0)
            with m.Elif(valid1):
                m.d.sync += acc[j].eq(acc[j] + prod)

        m.submodules.rq = rq = Requant(P, self.acc_bits, cfg.mult_bits, cfg.bias_bits, cfg.requant_shift)
        m.d.comb += rq.i_valid.eq(feed)
        for j in range(P):
            m.d.comb += [rq.i_acc[j].eq(acc[j]), rq.i_mult[j].eq(mrp.data.word_select(j, cfg.mult_bits).as_signed()),
                         rq.i_bias[j].eq(brp.data.word_select(j, cfg.bias_bits).as_signed())]
        e_addr = Signal(range(N * C))
        e_addr_q = [Signal(range(N * C), name=f"e_addr_q{i}") for i in range(2)]
        m.d.sync += [e_addr_q[0].eq(e_addr), e_addr_q[1].eq(e_addr_q[0])]
        m.d.comb += [ewp.en.eq(rq.o_valid), ewp.addr.eq(e_addr_q[1])]
        for j in range(P):
            m.d.comb += ewp.data.word_select(j, self.e_bits).eq(rq.o_y[j])  # fits: |E| <= requant_enc_max

        tail = Signal(range(4))
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [n.eq(0), ch.eq(0), k.eq(0), e_addr.eq(0)]
                    m.next = "MAC"
            with m.State("MAC"):
                m.d.comb += [self.busy.eq(1), issue.eq(1)]
                m.d.sync += k.eq(k + 1)
                with m.If(k == K - 1):
                    m.next = "LAST"
            with m.State("LAST"):  # the last product is being added
                m.d.comb += self.busy.eq(1)
                m.next = "FEED"
            with m.State("FEED"):
                m.d.comb += [self.busy.eq(1), feed.eq(1)]
                m.d.sync += [k.eq(0), e_addr.eq(e_addr + 1)]
                with m.If(ch == C - 1):
                    m.d.sync += ch.eq(0)
                    with m.If(n == N - 1):
                        m.d.sync += tail.eq(0)
                        m.next = "TAIL"
                    with m.Else():
                        m.d.sync += n.eq(n + 1)
                        m.next = "MAC"
                with m.Else():
                    m.d.sync += ch.eq(ch + 1)
                    m.next = "MAC"
            with m.State("TAIL"):  # the requant pipeline drains into E
                m.d.comb += self.busy.eq(1)
                m.d.sync += tail.eq(tail + 1)
                with m.If(tail == 2):
                    m.d.sync += self.done.eq(1)
                    m.next = "IDLE"
        with m.If(self.done):
            m.d.sync += self.done.eq(0)

        # ---- the tap: E + P[t] + (S[t-1] ? g : 0) ----------------------------------------------
        t_sel = self.tap_t if self.pos_tables > 1 else 0
        m.d.comb += [erp.addr.eq(self.tap_n * C + self.tap_ch),
                     posrp.addr.eq((t_sel * N + self.tap_n) * C + self.tap_ch),
                     grp.addr.eq(self.tap_ch)]
        s1 = Signal(P)
        v1 = Signal()
        m.d.comb += s1.eq(self.tap_s)  # arrives one cycle after tap_valid, with the memories' data
        m.d.sync += [v1.eq(self.tap_valid), self.tap_o_valid.eq(v1)]
        for j in range(P):
            e = erp.data.word_select(j, self.e_bits).as_signed()
            pos = posrp.data.word_select(j, cfg.pos_bits).as_signed()
            g = grp.data.word_select(j, cfg.feedback_bits).as_signed()
            m.d.sync += self.tap_x[j].eq(e + pos + Mux(s1[j], g, 0))
        return m
