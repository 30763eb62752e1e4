"""`STFEncoder`: patch embedding MACs + requant, TSPE table and temporal feedback input."""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from hw.common import baked_read_port, ceil_div, check_bool, check_int, delay, pack, replicas, sbits
from hw.dsp import RegisteredMultiplier
from hw.multiplier import MULTIPLIERS, partial_sums
from hw.requant import Requant
from hw.spike_linear import LANES_PER_REPLICA
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
    busy : Out(1), done : Out(1)   done pulses the cycle after the last E row is written.
    tap_valid : In(1), tap_t : In(range(T)), tap_n : In(range(N)), tap_ch : In(range(chunks)),
    tap_s : In(unsigned(P))   previous spikes S[t-1] of those P channels, presented one cycle
                              after tap_valid (the spike plane memory's read latency).
    tap_o_valid : Out(1), tap_x : Out(ArrayLayout(signed(x_bits), P))   `TAP_LATENCY` = 3
                              cycles after tap_valid.
    w_en : In(5), w_addr : In(range(max depth)), w_data : In(unsigned(max width))   loadable only
        Write row `w_addr` of the memories whose bit is set (ENCODER_MEMORIES order: weights,
        mult, bias, pos, gain), ``w_data`` truncated to the memory's width. Only while idle.

    Latency: E: one (token, chunk, patch element) MAC step issued per cycle, M = N * chunks * K
    of them back to back (K = patch elements); the last E row is written MAC_DEPTH = 5 (S0
    addresses -> S1 memory data -> S2 operand registers -> S3 product (MULT18 output, or the
    partial sums with multipliers="lut") -> S4 product registered again (or summed) -> S5
    accumulator) + REQUANT_LATENCY = 3 (input registers, product, output) = 8 cycles after the
    last issue. ``busy`` for N * chunks * K + 8 cycles from the cycle after ``start``, ``done``
    (one pulse, the cycle after the last E write) N * chunks * K + 9 cycles after ``start``
    (`latency_e`); the tap `TAP_LATENCY` = 3 cycles (S1 memory data, S2 E + P and the gated g
    registered, S3 their sum).

    Resources: P multipliers pixel_bits x weight_bits (LUTs or MULT18), P requant multipliers
    (MULT18), memories: pixels H*W*C x pixel_bits, weights K*chunks x P*weight_bits,
    E N*chunks x P*e_bits, P table (T or 1)*N*chunks x P*pos_bits, gain/mult/bias chunks rows.
    MAC pipeline registers: P kept pixel copies (pixel_bits each), ceil(P / LANES_PER_REPLICA)
    kept accumulator controls (2 bits each), P weights (weight_bits), 2P products (pixel_bits +
    weight_bits; "lut": 2 partial sums and the product), P accumulators (acc_bits); the step's
    valid / first / last / chunk per stage and the E row delayed MAC_DEPTH + 2 cycles.
    """

    # cycles from issuing a MAC step (S0) to its sum being in the accumulator (S5)
    MAC_DEPTH = 5
    # cycles from tap_valid to tap_x: the two adds in one stage behind the memories' outputs
    # were 362 endpoints at 12.5 ns on the 85F (050bd56)
    TAP_LATENCY = 3
    # the E Requant registers its inputs (the mult ROM's output routed straight into the MULT18
    # columns is the Sequencer's former 58 MHz path, and this one has the same shape)
    REQUANT_LATENCY = 3

    def __init__(self, cfg: ModelConfig, params: dict, lanes: int, *, loadable: bool = False,
                 multipliers: str = "dsp"):
        owner = "STFEncoder"
        if not isinstance(cfg, ModelConfig):
            raise TypeError(f"{owner}: cfg must be a ModelConfig, not {type(cfg).__name__}")
        check_int(owner, "lanes", lanes, 1, 4096)
        check_bool(owner, "loadable", loadable)
        if multipliers not in MULTIPLIERS:
            raise ValueError(f"{owner}: multipliers must be one of {MULTIPLIERS}, not {multipliers!r}")
        self.multipliers = multipliers
        for k in ("enc.weight", "enc.mult", "enc.bias", "enc.pos", "enc.gain"):
            if k not in params:
                raise ValueError(f"{owner}: params lacks {k}; pass an artifact's params")
        self.cfg, self.lanes = cfg, lanes
        self.loadable = bool(loadable)
        wd = widths(cfg)
        D, K, N, T, P = cfg.dim, cfg.patch_dim, cfg.tokens, cfg.timesteps, lanes
        self.chunks = ceil_div(D, P)
        self.acc_bits = sbits(wd.enc_acc_max)
        self.e_bits = sbits(wd.requant_enc_max)
        self.x_bits = sbits(wd.enc_in_max)
        self.n_pixels = cfg.image_shape[0] * cfg.image_shape[1] * cfg.image_shape[2]
        self.latency_tap = 2
        # start -> done: 1 to the first issue, N*chunks*K issues, the last one's E row written
        # MAC_DEPTH + Requant latency later, done the cycle after that write
        self.latency_e = N * self.chunks * K + self.MAC_DEPTH + self._requant().latency + 1

        rows = encoder_rows(cfg, params, P)
        self.w_rows, self.mult_rows, self.bias_rows = rows["weights"], rows["mult"], rows["bias"]
        self.pos_rows, self.gain_rows = rows["pos"], rows["gain"]
        self.pos_tables = T if cfg.tspe else 1
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

    def _requant(self) -> Requant:
        """The E requantizer; __init__ builds one only to read its latency (never elaborated, so
        it is silenced: the encoder's own UnusedElaboratable warning covers an unused encoder)."""
        rq = Requant(self.lanes, self.acc_bits, self.cfg.mult_bits, self.cfg.bias_bits, self.cfg.requant_shift,
                     input_register=True, multipliers=self.multipliers)
        rq._MustUse__silence = True
        assert rq.latency == self.REQUANT_LATENCY
        return rq

    def elaborate(self, platform):
        m = Module()
        cfg, P, C = self.cfg, self.lanes, self.chunks
        N, K, wb = cfg.tokens, cfg.patch_dim, cfg.weight_bits

        def rom(name, rows, width):
            mem, rp = baked_read_port(m, name, rows, width, writable=self.loadable)
            if self.loadable:  # the parameter image's write path (hw.param_image); idle-time only
                wp = mem.write_port()
                m.d.comb += [wp.en.eq(self.w_en[ENCODER_MEMORIES.index(name)]), wp.addr.eq(self.w_addr),
                             wp.data.eq(self.w_data[:width])]
            return rp

        m.submodules.pixels = pmem = memory.Memory(shape=unsigned(cfg.pixel_bits), depth=self.n_pixels, init=[])
        pwp = pmem.write_port()
        prp = pmem.read_port()
        m.d.comb += [pwp.en.eq(self.pix_en), pwp.addr.eq(self.pix_addr), pwp.data.eq(self.pix_data)]
        wrp = rom("weights", self.w_rows, P * wb)
        mrp = rom("mult", self.mult_rows, P * cfg.mult_bits)
        brp = rom("bias", self.bias_rows, P * cfg.bias_bits)
        m.submodules.e = emem = memory.Memory(shape=unsigned(P * self.e_bits), depth=N * C, init=[])
        ewp = emem.write_port()
        erp = emem.read_port()
        posrp = rom("pos", self.pos_rows, P * cfg.pos_bits)
        grp = rom("gain", self.gain_rows, P * cfg.feedback_bits)

        # ---- E = requant(patch MACs), token by token, chunk by chunk -------------------------
        # One (n, ch, k) step is issued per cycle, back to back over all (n, ch) pairs; each step
        # carries valid, first (k == 0), last (k == K-1), its chunk and its E row down the pipeline:
        #   S0 issue: pixel memory / weight ROM addresses
        #   S1 their data (registered read ports)
        #   S2 the pixel in one kept copy per lane (no net from one read port
        #      to all P multipliers across the chip) and each lane's weight
        #   S3 each lane's operands, S4 its product: a hw.dsp.RegisteredMultiplier (on ECP5 the
        #      MULT18X18D's own input and output registers)
        #   S5 acc <= prod (first) or acc + prod: after a last product acc holds the pair's sum for
        #      one cycle, presented to Requant (which registers it), while the next pair's first
        #      product already overwrites acc.
        base, off = pixel_offsets(cfg)
        n = Signal(range(N))
        ch = Signal(range(C))
        k = Signal(range(K))
        e_addr = Signal(range(N * C))
        issue = Signal()
        m.d.comb += [prp.addr.eq(Array(base)[n] + Array(off)[k]), wrp.addr.eq(ch * K + k)]
        # the step's control, staged: index i of each list = the value at stage S<i>
        valid = [issue] + [Signal(name=f"mac_valid{i}") for i in range(1, self.MAC_DEPTH)]
        first = [k == 0] + [Signal(name=f"mac_first{i}") for i in range(1, self.MAC_DEPTH - 1)]
        last = [k == K - 1] + [Signal(name=f"mac_last{i}") for i in range(1, self.MAC_DEPTH)]
        chs = [ch] + [Signal(range(C), name=f"mac_ch{i}") for i in range(1, self.MAC_DEPTH)]
        for i in range(1, self.MAC_DEPTH):
            m.d.sync += [valid[i].eq(valid[i - 1]), last[i].eq(last[i - 1]), chs[i].eq(chs[i - 1])]
            if i < self.MAC_DEPTH - 1:
                m.d.sync += first[i].eq(first[i - 1])

        groups = ceil_div(P, LANES_PER_REPLICA)
        # one copy per lane, placed beside its MULT18: a copy per 8 lanes reached MULT18s in
        # different rows of the DSP columns (16.5 ns through the multiplier, 85F static placer)
        pix2 = replicas(m, prp.data, P, "enc_pix")  # S2
        # S4 accumulator control, one kept copy per lane group (valid, first) like the pixel: one
        # register would drive the enables and muxes of all P accumulators across the chip
        ctl4 = replicas(m, Cat(valid[3], first[3]), groups, "enc_acc_ctl")
        # |pixel * weight| <= (2^pixel_bits - 1) * 2^(weight_bits-1): fits signed(pixel_bits + weight_bits)
        prod_bits = cfg.pixel_bits + wb
        acc = [Signal(signed(self.acc_bits), name=f"acc{j}", reset_less=True) for j in range(P)]
        for j in range(P):
            g = j // LANES_PER_REPLICA
            w2 = Signal(signed(wb), name=f"mac_w{j}", reset_less=True)  # S2
            m.d.sync += w2.eq(wrp.data.word_select(j, wb).as_signed())
            if self.multipliers == "lut":  # two partial sums over the narrower operand, then their sum
                a, b = (pix2[j], w2) if len(w2) <= len(pix2[j]) else (w2, pix2[j])
                parts = [Signal(signed(prod_bits), name=f"mac_part{j}_{i}", reset_less=True)  # S3
                         for i in range(min(2, len(b)))]
                m.d.sync += [pt.eq(ps) for pt, ps in zip(parts, partial_sums(a, b, len(parts)))]
                prod4 = Signal(signed(prod_bits), name=f"mac_prod{j}", reset_less=True)  # S4
                m.d.sync += prod4.eq(sum(parts[1:], parts[0]))
            else:
                # S3 the operands, S4 the product: on ECP5 the MULT18X18D's own input and output
                # registers (hw.dsp). Through a combinational MULT18 between fabric registers this
                # was the 11.9-17.1 ns family of every 85F placement (docs/build.md).
                mul = RegisteredMultiplier(pix2[j].shape(), w2.shape(), name=f"mac_mul{j}")
                m.submodules[f"mac_mul{j}"] = mul
                m.d.comb += [mul.a.eq(pix2[j]), mul.b.eq(w2)]
                prod4 = mul.p  # S4; |product| fits prod_bits (above)
            with m.If(ctl4[g][0]):  # S5
                m.d.sync += acc[j].eq(Mux(ctl4[g][1], prod4, acc[j] + prod4))

        # the pair's sum is in acc the cycle after its last product was at S4
        rq_valid = Signal()
        m.d.sync += rq_valid.eq(valid[4] & last[4])
        m.submodules.rq = rq = self._requant()
        # the mult / bias read ports take one cycle: address them with the S4 chunk so that their
        # rows arrive with the S5 sum
        m.d.comb += [mrp.addr.eq(chs[4]), brp.addr.eq(chs[4]), rq.i_valid.eq(rq_valid)]
        for j in range(P):
            m.d.comb += [rq.i_acc[j].eq(acc[j]), rq.i_mult[j].eq(mrp.data.word_select(j, cfg.mult_bits).as_signed()),
                         rq.i_bias[j].eq(brp.data.word_select(j, cfg.bias_bits).as_signed())]
        # the E row travels with its data: S0 -> S5 sum -> Requant output
        e_addr_q = delay(m, e_addr, self.MAC_DEPTH + rq.latency, "e_addr")
        m.d.comb += [ewp.en.eq(rq.o_valid), ewp.addr.eq(e_addr_q)]
        for j in range(P):
            m.d.comb += ewp.data.word_select(j, self.e_bits).eq(rq.o_y[j])  # fits: |E| <= requant_enc_max

        # after the last issue the last row is written MAC_DEPTH + rq.latency cycles later
        drain = self.MAC_DEPTH + rq.latency
        tail = Signal(range(drain))
        with m.FSM():
            # The step counters are zeroed in every cycle of IDLE and DRAIN (where nothing reads
            # them: the E write address travels in its own delay line), not on `start`: `start`
            # comes from the Sequencer's FSM, and through the counters' enables it was an 11.9 ns
            # family on the 85F (s22a).
            steps = (n, ch, k, e_addr)
            with m.State("IDLE"):
                m.d.sync += [s.eq(0) for s in steps]
                with m.If(self.start):
                    m.next = "MAC"
            with m.State("MAC"):
                m.d.comb += [self.busy.eq(1), issue.eq(1)]
                m.d.sync += k.eq(k + 1)
                with m.If(k == K - 1):
                    m.d.sync += [k.eq(0), e_addr.eq(e_addr + 1)]
                    with m.If(ch == C - 1):
                        m.d.sync += ch.eq(0)
                        with m.If(n == N - 1):
                            m.d.sync += tail.eq(0)
                            m.next = "DRAIN"
                        with m.Else():
                            m.d.sync += n.eq(n + 1)
                    with m.Else():
                        m.d.sync += ch.eq(ch + 1)
            with m.State("DRAIN"):  # the pipeline and Requant drain into E
                m.d.comb += self.busy.eq(1)
                m.d.sync += [s.eq(0) for s in steps]
                m.d.sync += tail.eq(tail + 1)
                with m.If(tail == drain - 1):  # the last row is written at the end of this cycle
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
        v2 = Signal()
        m.d.sync += [v1.eq(self.tap_valid), v2.eq(v1), self.tap_o_valid.eq(v2)]
        tap_x = Signal.like(self.tap_x, name="tap_x_r", reset_less=True)  # data: no reset net
        m.d.comb += self.tap_x.eq(tap_x)
        for j in range(P):
            e = erp.data.word_select(j, self.e_bits).as_signed()
            pos = posrp.data.word_select(j, cfg.pos_bits).as_signed()
            g = grp.data.word_select(j, cfg.feedback_bits).as_signed()
            ep2 = Signal(signed(max(self.e_bits, cfg.pos_bits) + 1), name=f"tap_ep{j}", reset_less=True)
            g2 = Signal(signed(cfg.feedback_bits), name=f"tap_g{j}", reset_less=True)
            m.d.sync += [ep2.eq(e + pos), g2.eq(Mux(s1[j], g, 0)), tap_x[j].eq(ep2 + g2)]
        return m
