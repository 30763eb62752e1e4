"""The schedule of the whole network (`Program`) and the `Sequencer` that runs it.

Schedule (timestep-major, as quant.golden.forward; every pass below runs for t = 0 .. T-1):

=========  =========================================================================================
pass       what
=========  =========================================================================================
ENC        for n, for chunk: I = E[n] + P[t, n] + (S_enc[t-1, n] ? g : 0) -> residual u[n];
           LIF enc -> plane ENC
QKV (l)    for token group, for chunk of q, k, v: SpikeLinear over the input plane (ENC for
           block 0, RES after) -> + bias -> LIF -> planes Q, K, V
KV (l)     for n: count += K[n] AND V[n]; kv = LIF_attn(count)
O (l)      for token group (spikes Q AND kv), for chunk: SpikeLinear(W_o) -> requant -> u += ;
           LIF mlp_in -> plane MLP
FC1 (l)    for token group, for chunk: SpikeLinear(W_1) + bias -> LIF fc1 -> plane FC1
FC2 (l)    for token group, for chunk: SpikeLinear(W_2) -> requant -> u += ; LIF of the next
           block's input (or the head LIF after the last block) -> plane RES
HEAD       for token group, for class chunk: SpikeLinear(W_head) over plane RES; Readout adds the
           token lanes (and the bias once per t) into the logits. Readout "token": one token
           per group (lane 0, the other lanes zeroed) and token n's own rows of W_head
=========  =========================================================================================

After the last timestep the Readout's argmax gives the class. Every pass ends by waiting for the
drain pipeline to empty, so a pass always reads complete planes.

A token group is TL = token_lanes tokens (the last group zero-padded); a chunk is P = lanes
output channels. The SpikeLinear reads one weight row per cycle (one input channel, P outputs)
for all TL tokens at once, then the drain pipeline takes the TL accumulator vectors one per cycle:

    S0 issue (param ROM, encoder tap, plane reads) -> S1 data, residual address -> S1..S4
    requant (inputs registered) / bias add / encoder sum -> S4 x = (u +) y; residual write; LIF
    in -> S8 spikes (S4 + LIF_LATENCY): plane write, trace record
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from hw.attention import SpikeDrivenAttention
from hw.common import ceil_div, check_fault, kept_register, pack, replicas, sbits, ubits
from hw.encoder import STFEncoder
from hw.lif import LIF_LATENCY, LIFArray
from hw.param_image import SEGMENTS, ParamImage
from hw.readout import Readout
from hw.requant import Requant
from hw.spike_linear import LANES_PER_REPLICA, SpikeLinear, pack_matrix
from model.config import HardwareConfig, ModelConfig
from quant.artifact import Artifact
from quant.contract import widths
from quant.golden import spike_layers

__all__ = ["Program", "Sequencer", "trace_layout", "trace_signature", "PLANES", "popcount", "spike_count_bits"]

# Spike planes (one memory each, a row per token).
PL_ENC, PL_RES, PL_Q, PL_K, PL_V, PL_MLP, PL_FC1 = range(7)
PLANES = ("enc", "res", "q", "k", "v", "mlp", "fc1")
# Pass kinds and drain modes.
ENC, LIN, KV, HEAD = "ENC", "LIN", "KV", "HEAD"
MODE_ENC, MODE_BIAS, MODE_RQ = 0, 1, 2
# S0 issue, S1-S4 operands (param/residual reads, requant with registered inputs), the LIF, then
# the plane write. It is also the drain every pass ends with, which keeps LIFArray's hazard rule
# (DRAIN_DEPTH > LIF_LATENCY).
LIF_STAGE = 4
DRAIN_DEPTH = LIF_STAGE + LIF_LATENCY


def trace_layout(cfg: ModelConfig) -> data.StructLayout:
    """Payload of one trace record: a LIF row (see hw.trace)."""
    return data.StructLayout({
        "layer": unsigned(ubits(len(spike_layers(cfg)) - 1)),
        "t": unsigned(ubits(cfg.timesteps - 1)),
        "token": unsigned(ubits(cfg.tokens - 1)),
        "spikes": unsigned(max(cfg.dim, cfg.hidden)),
    })


def spike_count_bits(cfg: ModelConfig) -> int:
    """Bits of one layer's spike count per image: at most T*N*max(D, H) spikes (kv: T*D)."""
    return ubits(cfg.timesteps * cfg.tokens * max(cfg.dim, cfg.hidden))


def popcount(bits) -> "Value":
    """Number of ones of `bits` (a Value), as a balanced tree of adds (depth ceil(log2 n))."""
    items = [bits[i] for i in range(len(bits))]
    if not items:
        return Const(0, 1)
    while len(items) > 1:
        nxt = [items[i] + items[i + 1] for i in range(0, len(items) - 1, 2)]
        if len(items) % 2:
            nxt.append(items[-1])
        items = nxt
    return items[0]


#: Bits per group of `registered_popcount`'s first stage (a 4-level add tree of 1-bit inputs).
POPCOUNT_GROUP = 16
#: Cycles from a `registered_popcount` input to its output.
POPCOUNT_LATENCY = 2


def registered_popcount(m: Module, bits, name: str) -> Signal:
    """Number of ones of `bits`, POPCOUNT_LATENCY cycles later: groups of POPCOUNT_GROUP bits
    counted and registered, then the group counts added and registered. Splitting the count keeps
    each stage to a few short carry chains (one 32-bit popcount in one cycle was 19 ns)."""
    groups = [bits[i:i + POPCOUNT_GROUP] for i in range(0, len(bits), POPCOUNT_GROUP)] or [Const(0, 1)]
    parts = []
    for g, grp in enumerate(groups):
        part = Signal(ubits(len(grp)), name=f"{name}_part{g}")
        m.d.sync += part.eq(popcount(grp))
        parts.append(part)
    total = Signal(ubits(len(bits)), name=f"{name}_count")
    m.d.sync += total.eq(sum(parts[1:], parts[0]))
    return total


def trace_signature(cfg: ModelConfig) -> wiring.Signature:
    """A valid-only stream (no ready: the network never waits for the trace): members
    ``valid : Out(1)`` and ``payload : Out(trace_layout(cfg))``."""
    return wiring.Signature({"valid": Out(1), "payload": Out(trace_layout(cfg))})


@dataclass
class Chunk:
    layer: int      # trace layer id (index into spike_layers), -1 for the head's logits
    lif: str        # membrane region name
    ch: int         # chunk index within the layer
    nch: int        # chunks of the layer
    width: int      # channels of the layer
    wbase: int      # first weight row (LIN/HEAD)
    prow: int       # param ROM row
    dest: int       # plane written
    last: bool      # last chunk of the layer's row


@dataclass
class Pass:
    kind: str
    name: str
    block: int = 0
    source: int = PL_ENC
    masked: bool = False   # source spikes AND kv (the O pass)
    per_token: bool = False  # HEAD of readout "token": one token per group, a head matrix per token
    n_in: int = 0
    mode: int = MODE_BIAS
    chunks: list = field(default_factory=list)


class Program:
    """Everything the Sequencer bakes in, derived from an artifact and a HardwareConfig.

    Memory map (rows; P = lanes, TL = token_lanes, chD/chH/chC = ceil(D/P), ceil(H/P), ceil(C/P)):

    - weights (SpikeLinear): per block q, k, v, o (chD*D rows each), fc1 (chH*D), fc2 (chD*H),
      then head (chC*D; readout "token": N such blocks, token n's at n*chC*D); rows of
      P x weight_bits (`pack_matrix` order).
    - params: one row per output chunk of every pass: bias | mult | theta, P lanes each.
    - membranes (LIFArray): enc, per block q, k, v, mlp_in, fc1, then the RES-plane LIF of each
      block (next block's `in`, or `head`): N*nch rows each, row n*nch + ch.
    - residual u: N*chD rows of P x residual bits; planes: N rows of nch*P bits.
    """

    def __init__(self, artifact: Artifact, hw: HardwareConfig):
        if not isinstance(artifact, Artifact):
            raise TypeError(f"Program: artifact must be a quant.artifact.Artifact, not {type(artifact).__name__}")
        if not isinstance(hw, HardwareConfig):
            raise TypeError(f"Program: hw must be a model.config.HardwareConfig, not {type(hw).__name__}")
        cfg = artifact.config
        if cfg.blocks < 1:
            raise ValueError("the hardware needs blocks >= 1 (the golden model's blocks=0 case, the head LIF on "
                             "the encoder input, is not built)")
        if cfg.heads != 1:
            raise ValueError(f"the hardware computes heads=1 only (the golden model's sdsa_v1 is per channel, "
                             f"so heads do not change results; use heads=1); got heads={cfg.heads}")
        self.cfg, self.hw, self.artifact = cfg, hw, artifact
        P_ = artifact.params
        self.P = P = hw.lanes
        self.TL = TL = min(hw.token_lanes, cfg.tokens)
        D, H, N, C = cfg.dim, cfg.hidden, cfg.tokens, cfg.classes
        self.chD, self.chH, self.chC = ceil_div(D, P), ceil_div(H, P), ceil_div(C, P)
        self.groups = ceil_div(N, TL)
        self.wd = wd = widths(cfg)
        self.layers = spike_layers(cfg)
        lid = {name: i for i, name in enumerate(self.layers)}
        self.plane_width = [D, D, D, D, D, D, H]
        self.x_bits = sbits(max(wd.enc_in_max, wd.lin_d_max, wd.lin_h_max, wd.residual_max))
        self.res_bits = wd.residual_bits
        self.theta_bits = cfg.threshold_bits

        # Weight memory image.
        self.weight_rows: list[int] = []

        def add_matrix(w):
            base = len(self.weight_rows)
            self.weight_rows += pack_matrix(w, P, cfg.weight_bits)
            return base

        # Param ROM: bias | mult | theta.
        self.param_rows: list[int] = []

        def pad(vec, fill=0):
            out = np.full(ceil_div(len(vec), P) * P, fill, np.int64)
            out[:len(vec)] = vec
            return out.reshape(-1, P)

        def add_params(n_out, bias=None, mult=None, theta=None):
            base = len(self.param_rows)
            z = np.zeros(n_out, np.int64)
            b = pad(bias if bias is not None else z)
            mu = pad(mult if mult is not None else z)
            th = pad(theta if theta is not None else np.ones(n_out, np.int64), fill=1)
            for ch in range(len(b)):
                word = pack(b[ch], cfg.bias_bits)
                word |= pack(mu[ch], cfg.mult_bits) << (P * cfg.bias_bits)
                word |= pack(th[ch], self.theta_bits) << (P * (cfg.bias_bits + cfg.mult_bits))
                self.param_rows.append(word)
            return base

        # Membrane regions.
        self.mbase: dict[str, int] = {}
        self.mdepth = 0

        def region(name, nch):
            self.mbase[name] = self.mdepth
            self.mdepth += N * nch

        def chunks_of(layer, lif, width, wbase, n_in, prow, dest):
            nch = ceil_div(width, P)
            return [Chunk(layer, lif, ch, nch, width, wbase + ch * n_in, prow + ch, dest, ch == nch - 1)
                    for ch in range(nch)]

        self.passes: list[Pass] = []
        region("enc", self.chD)
        prow = add_params(D, theta=P_["enc.theta"])
        self.passes.append(Pass(ENC, "enc", chunks=chunks_of(lid["enc"], "enc", D, 0, 0, prow, PL_ENC)))
        for l in range(cfg.blocks):
            p = f"b{l}."
            qkv = Pass(LIN, p + "qkv", l, PL_ENC if l == 0 else PL_RES, n_in=D, mode=MODE_BIAS)
            for name, dest in (("q", PL_Q), ("k", PL_K), ("v", PL_V)):
                region(p + name, self.chD)
                wb = add_matrix(P_[p + name + ".weight"])
                prow = add_params(D, bias=P_[p + name + ".bias"], theta=P_[p + name + ".theta"])
                qkv.chunks += chunks_of(lid[p + name], p + name, D, wb, D, prow, dest)
            self.passes.append(qkv)
            self.passes.append(Pass(KV, p + "kv", l))
            region(p + "mlp_in", self.chD)
            wb = add_matrix(P_[p + "o.weight"])
            prow = add_params(D, bias=P_[p + "o.bias"], mult=P_[p + "o.mult"], theta=P_[p + "mlp_in.theta"])
            self.passes.append(Pass(LIN, p + "o", l, PL_Q, masked=True, n_in=D, mode=MODE_RQ,
                                    chunks=chunks_of(lid[p + "mlp_in"], p + "mlp_in", D, wb, D, prow, PL_MLP)))
            region(p + "fc1", self.chH)
            wb = add_matrix(P_[p + "fc1.weight"])
            prow = add_params(H, bias=P_[p + "fc1.bias"], theta=P_[p + "fc1.theta"])
            self.passes.append(Pass(LIN, p + "fc1", l, PL_MLP, n_in=D, mode=MODE_BIAS,
                                    chunks=chunks_of(lid[p + "fc1"], p + "fc1", H, wb, D, prow, PL_FC1)))
            nxt = f"b{l + 1}.in" if l + 1 < cfg.blocks else "head"
            region(nxt, self.chD)
            wb = add_matrix(P_[p + "fc2.weight"])
            prow = add_params(D, bias=P_[p + "fc2.bias"], mult=P_[p + "fc2.mult"], theta=P_[nxt + ".theta"])
            self.passes.append(Pass(LIN, p + "fc2", l, PL_FC1, n_in=H, mode=MODE_RQ,
                                    chunks=chunks_of(lid[nxt], nxt, D, wb, H, prow, PL_RES)))
        per_token = cfg.readout == "token"
        # token n's [D, C] block at wbase + n * head_stride (one block when pooled)
        wb = [add_matrix(w) for w in P_["head.weight"].reshape(-1, D, C)][0]
        self.head_stride = self.chC * D
        prow = add_params(C, bias=P_["head.bias"])
        self.passes.append(Pass(HEAD, "head", 0, PL_RES, n_in=D, per_token=per_token,
                                chunks=chunks_of(-1, "", C, wb, D, prow, PL_RES)))
        self.kv_theta = np.stack([P_[f"b{l}.kv.theta"] for l in range(cfg.blocks)])
        self.inputs = max(D, H)
        self.image = ParamImage(cfg, P)

    def group_lanes(self, ps: Pass) -> int:
        """Tokens a pass loads per group: TL, or 1 for the per-token head."""
        return 1 if ps.per_token else self.TL

    def pass_groups(self, ps: Pass) -> int:
        """Token groups of a pass: ceil(N / TL), or N for the per-token head."""
        return ceil_div(self.cfg.tokens, self.group_lanes(ps))

    def memory_map(self) -> dict[str, int]:
        """Rows and bits of every memory (for docs and reports)."""
        cfg, P = self.cfg, self.P
        return {
            "weight_rows": len(self.weight_rows), "weight_bits": P * cfg.weight_bits,
            "param_rows": len(self.param_rows), "param_bits": P * (cfg.bias_bits + cfg.mult_bits + self.theta_bits),
            "membrane_rows": self.mdepth, "membrane_bits": P * self.x_bits,
            "residual_rows": cfg.tokens * self.chD, "residual_bits": P * self.res_bits,
        }


class Sequencer(wiring.Component):
    """The network core: runs `Program` on the image in the encoder's pixel memory.

    Parameters
    ----------
    program : Program
    trace : bool                 add the `trace` port (one record per LIF row, see hw.trace).
    fault : test-only defect ("leak_round", "tree_input") passed to the LIFs and trees.

    Ports
    -----
    pix_en : In(1), pix_addr : In(range(H*W*C)), pix_data : In(unsigned(pixel_bits))
    start : In(1)                run the network on the stored image.
    done : Out(1)                pulse; `cls` and `logits` valid and held until the next start.
    cls : Out(range(C)), logits : Out(ArrayLayout(signed(logit_bits), C))
    trace : Out(trace_signature(cfg))   valid + payload, no ready (trace=True only)
    spike_counts : Out(ArrayLayout(unsigned(spike_count_bits(cfg)), len(spike_layers(cfg))))
        per image, the spikes of every spike layer (quant.golden.spike_layers order) summed over
        t, tokens and channels (kv: over t and channels); final when `done` pulses, held until
        the next start.
    w_en : In(1), w_seg : In(range(8)), w_addr : In(range(max depth)), w_data : In(max width)
        HardwareConfig.weights="loadable" only: write row `w_addr` of parameter image segment
        `w_seg` (hw.param_image.SEGMENTS: SpikeLinear weights, param memory, the encoder's five
        memories, the kv thresholds), ``w_data`` truncated to the segment's width. Only while idle.

    Latency (cycles per image, dense mode): E: N*chD*K+8; per timestep: ENC N*chD+6;
    per block QKV 1 + DRAIN_DEPTH + G*(TL+2 + (n+6) + (3chD-1)*max(n+6, TL)) (each later chunk
    accumulates while its predecessor drains; the last drain overlaps the next group or pass),
    KV N+1+count+fire, O/FC1/FC2 alike with their chunk counts and fan-ins n (D or H); HEAD G*(TL+2 + chC*(D+6) - 1) + flush (readout "token":
    G = N groups of one lane, N*(3 + chC*(D+6) - 1) + flush); argmax ceil(log2 C) + 1.
    Event-driven: n becomes the number of inputs where any token of the group spikes.
    Measured numbers: docs/hardware.md.

    Resources: see the component docstrings; the Sequencer adds the spike planes (7 memories
    of N rows), the residual memory, the param ROM and the drain pipeline (about 6 x P x
    x_bits flip-flops); spike counters: one of spike_count_bits per layer with a registered
    addend, a P-bit and two D-bit two-stage popcounts (about P + 2D + 3 x 2 x popcount-bits
    flip-flops). Loadable: a write port on every parameter memory.
    """

    def __init__(self, program: Program, *, trace: bool = False, fault=None):
        if not isinstance(program, Program):
            raise TypeError(f"Sequencer: program must be a hw.sequencer.Program, not {type(program).__name__}")
        check_fault("Sequencer", fault)
        self.program, self.trace_enabled, self.fault = program, bool(trace), fault
        cfg = program.cfg
        self.cfg = cfg
        n_pix = cfg.image_shape[0] * cfg.image_shape[1] * cfg.image_shape[2]
        members = {
            "pix_en": In(1), "pix_addr": In(range(n_pix)), "pix_data": In(unsigned(cfg.pixel_bits)),
            "start": In(1), "done": Out(1), "busy": Out(1),
            "cls": Out(range(cfg.classes)),
            "logits": Out(data.ArrayLayout(signed(program.wd.logit_bits), cfg.classes)),
            "spike_counts": Out(data.ArrayLayout(unsigned(spike_count_bits(cfg)), len(program.layers))),
        }
        if trace:
            members["trace"] = Out(trace_signature(cfg))
        if program.hw.weights == "loadable":
            img = program.image
            members.update({"w_en": In(1), "w_seg": In(range(len(SEGMENTS))), "w_addr": In(range(img.max_depth)),
                            "w_data": In(unsigned(img.max_width))})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        prog, cfg = self.program, self.cfg
        P, TL, N, D, T = prog.P, prog.TL, cfg.tokens, cfg.dim, cfg.timesteps
        hw = prog.hw
        chD = prog.chD

        # ---- components ------------------------------------------------------------------
        loadable = hw.weights == "loadable"
        m.submodules.enc = enc = STFEncoder(cfg, prog.artifact.params, P, loadable=loadable,
                                                  multipliers=hw.multipliers)
        m.d.comb += [enc.pix_en.eq(self.pix_en), enc.pix_addr.eq(self.pix_addr), enc.pix_data.eq(self.pix_data)]
        m.submodules.sl = sl = SpikeLinear(prog.inputs, P, TL, cfg.weight_bits, prog.weight_rows,
                                           event_driven=hw.event_driven, loadable=loadable, banks=hw.input_banks)
        m.submodules.lif = lif = LIFArray(P, prog.mdepth, prog.x_bits, prog.theta_bits, fault=self.fault)
        m.submodules.attn = attn = SpikeDrivenAttention(D, N, prog.kv_theta, prog.theta_bits, rows=1,
                                                        register_every=hw.tree_register_every, fault=self.fault,
                                                        loadable=loadable)

        def seg_en(name):
            return self.w_en & (self.w_seg == SEGMENTS.index(name))

        if loadable:  # the parameter image's write bus, fanned out to every parameter memory
            m.d.comb += [sl.w_en.eq(seg_en("weights")), sl.w_addr.eq(self.w_addr),
                         sl.w_data.eq(self.w_data[:len(sl.w_data)]),
                         attn.w_en.eq(seg_en("attn.theta")), attn.w_addr.eq(self.w_addr),
                         attn.w_data.eq(self.w_data[:len(attn.w_data)]),
                         enc.w_addr.eq(self.w_addr), enc.w_data.eq(self.w_data[:len(enc.w_data)])]
            for i, name in enumerate(("enc.weights", "enc.mult", "enc.bias", "enc.pos", "enc.gain")):
                m.d.comb += enc.w_en[i].eq(seg_en(name))
        # inputs registered: the param ROM's multipliers routed straight into the MULT18 columns
        # were the 58.34 MHz critical path (9.5 ns of routing)
        m.submodules.rq = rq = Requant(P, sl.acc_bits, cfg.mult_bits, cfg.bias_bits, cfg.requant_shift,
                                       input_register=True, multipliers=hw.multipliers)
        assert rq.latency == LIF_STAGE - 1  # S1 in, S4 out
        m.submodules.readout = ro = Readout(cfg.classes, P, TL, sl.acc_bits, cfg.bias_bits, prog.wd.logit_bits,
                                            register_every=hw.tree_register_every, fault=self.fault)
        m.d.comb += [self.cls.eq(ro.cls), self.logits.eq(ro.logits)]

        # ---- memories ----------------------------------------------------------------------
        planes = []
        for i, name in enumerate(PLANES):
            nch = ceil_div(prog.plane_width[i], P)
            mem = memory.Memory(shape=unsigned(nch * P), depth=N, init=[])
            m.submodules[f"plane_{name}"] = mem
            planes.append((mem.read_port(), mem.write_port(granularity=P), nch))
        # The parameter ROM and the residual memory are split by groups of LANES_PER_REPLICA
        # lanes, each part with its own registered copy of its addresses. The parameter ROM's
        # one address, decoded from the FSM's state and fanned out to every lane's ROM LUTs, was
        # the 72.25 MHz critical path (7 ns of routing after the state mux, docs/build.md).
        lane_groups = [range(g, min(P, g + LANES_PER_REPLICA)) for g in range(0, P, LANES_PER_REPLICA)]
        p_fields = [(cfg.bias_bits, 0), (cfg.mult_bits, P * cfg.bias_bits),
                    (prog.theta_bits, P * (cfg.bias_bits + cfg.mult_bits))]

        def p_slice(word, lanes):
            """The bias, mult and theta fields of `lanes` out of a full parameter row (an int, or a
            Value for the write data), in the row's own layout."""
            if isinstance(word, int):
                out, at = 0, 0
                for bits, off in p_fields:
                    n_bits = bits * len(lanes)
                    out |= ((word >> (off + lanes.start * bits)) & ((1 << n_bits) - 1)) << at
                    at += n_bits
                return out
            return Cat(*(word[off + lanes.start * bits: off + lanes.stop * bits] for bits, off in p_fields))

        p_ports = []
        for gi, lanes in enumerate(lane_groups):
            gmem = memory.Memory(shape=unsigned(len(lanes) * (cfg.bias_bits + cfg.mult_bits + prog.theta_bits)),
                                 depth=len(prog.param_rows), init=[p_slice(r, lanes) for r in prog.param_rows])
            m.submodules[f"params{gi}"] = gmem
            p_ports.append(gmem.read_port())
            if loadable:
                pwp = gmem.write_port()
                m.d.comb += [pwp.en.eq(seg_en("params")), pwp.addr.eq(self.w_addr),
                             pwp.data.eq(p_slice(self.w_data, lanes))]
        # The residual memory's one address net reaching all P lanes' LUT RAM was the 64.99 MHz
        # critical path (10.7 ns of routing).
        u_ports = []
        for gi, lanes in enumerate(lane_groups):
            umem = memory.Memory(shape=unsigned(len(lanes) * prog.res_bits), depth=N * chD, init=[])
            m.submodules[f"residual{gi}"] = umem
            u_ports.append((umem.write_port(), umem.read_port()))

        def p_field(j, f):
            gi, i = divmod(j, LANES_PER_REPLICA)
            n = len(lane_groups[gi])
            at = sum(bits * n for bits, _ in p_fields[:f])
            return p_ports[gi].data[at:].word_select(i, p_fields[f][0])

        def p_bias(j):
            return p_field(j, 0).as_signed()

        def p_mult(j):
            return p_field(j, 1).as_signed()

        def p_theta(j):
            return p_field(j, 2)

        # ---- drain pipeline, stage 0 (driven by the FSM) ------------------------------------
        d_valid = Signal()
        d_mode = Signal(range(3))
        d_n = Signal(range(max(N, 2)))
        d_lane = Signal(range(max(TL, 2)))
        d_ch = Signal(range(max(prog.chH, chD, prog.chC, 2)))
        d_layer = Signal(range(len(prog.layers)))
        d_dest = Signal(range(len(PLANES)))
        d_last = Signal()
        d_mask = Signal(P)
        # The membrane address mbase + n * nch + ch is formed between S1 and S3 from staged
        # operands, not at S0 behind the FSM's state mux: that path (state -> mux -> multiply-add
        # -> register) was the design's critical path (27 ns, docs/build.md).
        d_mbase = Signal(range(prog.mdepth))
        d_nch = Signal(range(max(prog.chH, chD, prog.chC, 2) + 1))
        d_uaddr = Signal(range(N * chD))
        t = Signal(range(T))

        # The parameter row of the update at S0 comes from registers set a cycle ahead, one copy
        # per ROM group: `prow_next` holds by default, and the FSM names the next row where it
        # changes (a LIN chunk's `done`, the ENC state's chunk step, a HEAD chunk's `done`).
        prow_next = Signal(range(len(prog.param_rows)))
        prow = replicas(m, prow_next, len(lane_groups), "prow")
        m.d.comb += prow_next.eq(prow[0])
        for gi, rp in enumerate(p_ports):
            m.d.comb += rp.addr.eq(prow[gi])

        # Data registers are reset-less (`data_reg=True`): only valid bits and modes need the reset,
        # and the reset net to every pipeline bit was a 15k-fanout, 14 ns net on the 85F.
        def stage(sig, name, data_reg=False):
            r = Signal.like(sig, name=name, reset_less=data_reg)
            m.d.sync += r.eq(sig)
            return r

        # S1
        v1, mode1, ch1, t1 = stage(d_valid, "v1"), stage(d_mode, "mode1"), stage(d_ch, "ch1"), stage(t, "t1")
        acc1 = stage(sl.drained, "acc1", data_reg=True)
        enc_rp = planes[PL_ENC][0]
        s_prev = Signal(P)
        m.d.comb += s_prev.eq(enc_rp.data.word_select(ch1, P) & (t1 != 0).replicate(P))
        m.d.comb += enc.tap_s.eq(s_prev)
        m.d.comb += rq.i_valid.eq(v1 & (mode1 == MODE_RQ))
        y2 = Signal(data.ArrayLayout(signed(prog.x_bits), P), reset_less=True)
        for j in range(P):
            m.d.comb += [rq.i_acc[j].eq(acc1[j]), rq.i_mult[j].eq(p_mult(j)),
                         rq.i_bias[j].eq(p_bias(j))]
            m.d.sync += y2[j].eq(acc1[j] + p_bias(j))
        theta1 = Signal(data.ArrayLayout(unsigned(prog.theta_bits), P))
        for j in range(P):
            m.d.comb += theta1[j].eq(p_theta(j))
        # residual read: address copies registered at S1, data at S2
        uaddr1 = replicas(m, d_uaddr, len(lane_groups), "uaddr1")
        u2 = Signal(data.ArrayLayout(signed(prog.res_bits), P), name="u2")
        for gi, lanes in enumerate(lane_groups):
            wp, rp = u_ports[gi]
            m.d.comb += rp.addr.eq(uaddr1[gi])
            for i, j in enumerate(lanes):
                m.d.comb += u2[j].eq(rp.data.word_select(i, prog.res_bits).as_signed())
        # S2
        mode2 = stage(mode1, "mode2")
        theta2 = stage(theta1, "theta2", data_reg=True)
        # S3
        mode3 = stage(mode2, "mode3")
        theta3, u3 = stage(theta2, "theta3", data_reg=True), stage(u2, "u3", data_reg=True)
        y3 = stage(y2, "y3", data_reg=True)
        # S4: x = (u +) y, into the LIF and the residual memory
        theta4, u4 = stage(theta3, "theta4", data_reg=True), stage(u3, "u4", data_reg=True)
        assert STFEncoder.TAP_LATENCY == 3  # the tap issued at S0 is read at S3
        y4 = Signal.like(y3, name="y4", reset_less=True)  # the encoder's tap comes out at S3
        with m.If(mode3 == MODE_ENC):
            for j in range(P):
                m.d.sync += y4[j].eq(enc.tap_x[j])
        with m.Else():
            m.d.sync += y4.eq(y3)
        x4 = Signal(data.ArrayLayout(signed(prog.x_bits), P))
        # the select per lane group, a kept copy each: one mode register driving every lane's
        # x mux sat on the 13.3 ns residual write-data paths
        rq4 = replicas(m, mode3 == MODE_RQ, len(lane_groups), "rq_sel4")
        for j in range(P):
            with m.If(rq4[j // LANES_PER_REPLICA]):
                m.d.comb += x4[j].eq(u4[j] + rq.o_y[j])  # fits x_bits: |u| <= residual_max
            with m.Else():
                m.d.comb += x4[j].eq(y4[j])

        meta = {"v": d_valid, "mode": d_mode, "n": d_n, "lane": d_lane, "ch": d_ch, "layer": d_layer,
                "dest": d_dest, "last": d_last, "mask": d_mask, "uaddr": d_uaddr, "t": t}
        at2 = {k: v for k, v in meta.items()}
        for i in range(2):
            at2 = {k: stage(v, f"{k}_s{i + 1}") for k, v in at2.items()}
        at3 = {k: stage(v, f"{k}_s3") for k, v in at2.items()}
        at4 = {k: stage(v, f"{k}_s4") for k, v in at3.items()}
        mbase1, nch1, n1 = stage(d_mbase, "mbase1"), stage(d_nch, "nch1"), stage(d_n, "n1")
        # the row offset n * nch + ch at S2, the region base added at S3: both in one stage were
        # a 12.3 ns path (050bd56)
        row2 = Signal(range(prog.mdepth), name="mrow_s2")
        m.d.sync += row2.eq(n1 * nch1 + ch1)
        maddr3 = Signal(range(prog.mdepth), name="maddr_s3")
        m.d.sync += maddr3.eq(stage(mbase1, "mbase2") + row2)
        at4["maddr"] = stage(maddr3, "maddr_s4")
        # residual write at S4: address and enable copies per lane group (registered from S3)
        uwaddr4 = replicas(m, at3["uaddr"], len(lane_groups), "uwaddr4")
        uwen4 = replicas(m, at3["v"] & (at3["mode"] != MODE_BIAS), len(lane_groups), "uwen4")
        for gi, lanes in enumerate(lane_groups):
            wp, rp = u_ports[gi]
            m.d.comb += [wp.addr.eq(uwaddr4[gi]), wp.en.eq(uwen4[gi])]
            for i, j in enumerate(lanes):
                m.d.comb += wp.data.word_select(i, prog.res_bits).eq(x4[j])
        m.d.comb += [lif.i_valid.eq(at4["v"]), lif.i_addr.eq(at4["maddr"]), lif.i_x.eq(x4), lif.i_theta.eq(theta4)]
        at_out = at4  # the stage where the LIF's spikes come out (S4 + LIF_LATENCY)
        for i in range(LIF_STAGE, DRAIN_DEPTH):
            at_out = {k: stage(v, f"{k}_s{i + 1}") for k, v in at_out.items()}
        s_out = Signal(P)
        m.d.comb += s_out.eq(lif.o_s & at_out["mask"])
        for i, (rp, wp, nch) in enumerate(planes):
            m.d.comb += [wp.addr.eq(at_out["n"]), wp.data.eq(s_out.replicate(nch))]
            with m.If(at_out["v"] & (at_out["dest"] == i)):
                for c in range(nch):
                    m.d.comb += wp.en[c].eq(at_out["ch"] == c)

        # ---- trace ---------------------------------------------------------------------------
        tr_valid = Signal()
        tr_layer = Signal.like(d_layer)
        tr_t = Signal.like(t)
        tr_token = Signal(range(max(N, 2)))
        tr_spikes = Signal(prog.inputs)
        if self.trace_enabled:
            max_ch = max(prog.chH, chD)
            row = Signal(max_ch * P)
            if max_ch > 1:
                bufs = Array([Signal(max_ch * P, name=f"rowbuf{k}") for k in range(TL)])
                cur = bufs[at_out["lane"]]
                for c in range(max_ch):
                    m.d.comb += row.word_select(c, P).eq(Mux(at_out["ch"] == c, s_out, cur.word_select(c, P)))
                with m.If(at_out["v"]):
                    with m.If(at_out["last"]):
                        m.d.sync += cur.eq(0)
                    with m.Else():
                        m.d.sync += cur.eq(row)
            else:
                m.d.comb += row.eq(s_out)
            m.d.sync += [self.trace.valid.eq(tr_valid), self.trace.payload.layer.eq(tr_layer),
                         self.trace.payload.t.eq(tr_t), self.trace.payload.token.eq(tr_token),
                         self.trace.payload.spikes.eq(tr_spikes)]
            with m.If(at_out["v"] & at_out["last"]):
                m.d.comb += [tr_valid.eq(1), tr_layer.eq(at_out["layer"]), tr_t.eq(at_out["t"]),
                             tr_token.eq(at_out["n"]), tr_spikes.eq(row)]

        # ---- spike counts per layer ---------------------------------------------------------
        # Three sources, each registered before its popcount so the count adds stay off the
        # drain and load paths: the drain's LIF output spikes (every LIF layer), the O pass's row loads
        # (attn = Q AND kv) and kv_valid (kv). Each layer takes exactly one of them. The counts
        # are side outputs, so they are pipelined freely: source register, a two-stage popcount,
        # a per-layer registered addend (which keeps the count's fan-out to every layer's counter
        # off the carry chains; that route was the 52.81 MHz critical path), the counter. The last
        # spike of an image reaches its counter POPCOUNT_LATENCY + 3 cycles after the drain, well
        # before the HEAD pass and argmax end (`done`).
        cnt_clear = Signal()
        a_v, a_bits, a_layer = Signal(), Signal(P), Signal.like(d_layer)
        m.d.sync += [a_v.eq(at_out["v"]), a_bits.eq(s_out), a_layer.eq(at_out["layer"])]
        b_v, b_bits, b_blk = Signal(), Signal(D), Signal(range(max(cfg.blocks, 2)))
        c_v, c_bits, c_blk = Signal(), Signal(D), Signal(range(max(cfg.blocks, 2)))
        a_pc = registered_popcount(m, a_bits, "cnt_a")
        b_pc = registered_popcount(m, b_bits, "cnt_b")
        c_pc = registered_popcount(m, c_bits, "cnt_c")

        def delayed(sig, name):
            for k in range(POPCOUNT_LATENCY):
                nxt = Signal.like(sig, name=f"{name}_d{k + 1}")
                m.d.sync += nxt.eq(sig)
                sig = nxt
            return sig

        a_v2, a_layer2 = delayed(a_v, "cnt_a_v"), delayed(a_layer, "cnt_a_layer")
        b_v2, b_blk2 = delayed(b_v, "cnt_b_v"), delayed(b_blk, "cnt_b_blk")
        c_v2, c_blk2 = delayed(c_v, "cnt_c_v"), delayed(c_blk, "cnt_c_blk")
        # the clear a cycle late, a kept copy per counter: decoded from the FSM and `start` it
        # reached all counters' bits (11.9 ns on the 85F, s22a); the first spike comes after EMBED
        clear_copies = replicas(m, cnt_clear, len(prog.layers), "cnt_clear")
        for i, name in enumerate(prog.layers):
            cnt = self.spike_counts[i]
            if name.endswith(".attn"):
                add_next = Mux(b_v2 & (b_blk2 == int(name[1:name.index(".")])), b_pc, 0)
            elif name.endswith(".kv"):
                add_next = Mux(c_v2 & (c_blk2 == int(name[1:name.index(".")])), c_pc, 0)
            else:
                add_next = Mux(a_v2 & (a_layer2 == i), a_pc, 0)
            add = Signal(len(add_next), name=f"cnt_add{i}")
            m.d.sync += add.eq(add_next)
            with m.If(clear_copies[i]):
                m.d.sync += cnt.eq(0)
            with m.Else():
                m.d.sync += cnt.eq(cnt + add)

        # ---- the schedule -------------------------------------------------------------------
        n_ctr = Signal(range(N + 1))
        ch_ctr = Signal(range(max(len(c.chunks) for c in prog.passes) + 1))
        # The chunk SpikeLinear accumulates (LIN passes): one ahead of ch_ctr, the chunk being
        # drained, while a drain overlaps the next chunk's accumulation.
        ich = Signal.like(ch_ctr)
        # The row is a counter the FSM steps itself (0 at every pass's BEGIN, +1 per ENC token,
        # COUNT row and LOAD row: n_ctr or g_ctr * lanes + k_ctr, which it equals in those
        # states), kept in one copy per plane and one for the encoder's tap: the state mux of
        # those counters into every plane's LUT RAM address was a 12.7 ns path.
        read_rows = [kept_register(range(max(N, 2)), f"read_row_{i}") for i in range(len(planes) + 1)]
        for i, (rp, wp, nch) in enumerate(planes):
            m.d.comb += rp.addr.eq(read_rows[i])

        def step_read_row(first=False):
            m.d.sync += [r.eq(0 if first else r + 1) for r in read_rows]

        # Encoder tap (S0 issue, S1 previous spikes from the ENC plane, S3 result). Its token
        # is its own copy of the row counter (n_ctr in the ENC state), not the FSM's mux of the
        # drain signals: that path into the E memory's read address (LUT RAM, a wide fan-out)
        # was the 50.64 MHz critical path. Other states read E for nothing; `tap_valid` says
        # when it counts.
        m.d.comb += [enc.tap_valid.eq(d_valid & (d_mode == MODE_ENC)), enc.tap_t.eq(t), enc.tap_n.eq(read_rows[-1]),
                     enc.tap_ch.eq(ch_ctr)]
        g_ctr = Signal(range(max(prog.pass_groups(ps) for ps in prog.passes) + 1))
        # Per-token head: token g's weight rows start g * head_stride after the chunk's; a
        # register stepped with g_ctr keeps the multiply off the START path.
        w_off = Signal(range(N * prog.head_stride + 1))
        k_ctr = Signal(range(TL + 1))
        wait = Signal(range(max(32, TL + DRAIN_DEPTH + 1)))
        blk = Signal(range(max(cfg.blocks, 2)))  # the block of the pass being run
        m.d.comb += attn.block.eq(blk)
        load1 = Signal()
        load_lane1 = Signal.like(k_ctr)
        load_n1 = Signal(range(N + TL + 1))
        load_src = Signal(range(len(PLANES)))
        load_masked = Signal()
        load_solo1 = Signal()
        m.d.sync += [load1.eq(0), load_solo1.eq(0)]
        flush_cycles = max(DRAIN_DEPTH, ro.latency + 1)

        # Plane reads (addressed by `read_rows`): the drain's ENC read, the loads, the KV count.
        kv_read = Signal()
        src_data = Signal(prog.inputs)
        with m.Switch(load_src):
            for i, (rp, wp, nch) in enumerate(planes):
                with m.Case(i):
                    m.d.comb += src_data.eq(rp.data[:prog.plane_width[i]])
        m.d.comb += attn.q.eq(src_data[:D])
        loaded = Signal(prog.inputs)
        m.d.comb += loaded.eq(Mux(load_masked, attn.attn, src_data))
        valid_row = load_n1 < N
        # The row goes to SpikeLinear one cycle later, registered: plane read -> plane mux ->
        # attention mask -> the TL x n spike registers was one 14-16 ns path on the 85F.
        load2 = Signal()
        load_lane2 = Signal.like(load_lane1)
        load_solo2 = Signal()
        load_row2 = Signal(prog.inputs, reset_less=True)  # data: SpikeLinear takes it under load2
        m.d.sync += [load2.eq(load1), load_lane2.eq(load_lane1), load_solo2.eq(load_solo1),
                     load_row2.eq(Mux(valid_row, loaded, 0))]
        m.d.comb += [sl.load_en.eq(load2), sl.load_lane.eq(load_lane2), sl.load_solo.eq(load_solo2),
                     sl.load_row.eq(load_row2)]
        if self.trace_enabled:
            attn_ids = Array([prog.layers.index(f"b{l}.attn") for l in range(cfg.blocks)])
            with m.If(load1 & load_masked & valid_row):
                m.d.comb += [tr_valid.eq(1), tr_layer.eq(attn_ids[attn.block]), tr_t.eq(t),
                             tr_token.eq(load_n1), tr_spikes.eq(attn.attn)]
            kv_ids = Array([prog.layers.index(f"b{l}.kv") for l in range(cfg.blocks)])
            with m.If(attn.kv_valid):
                m.d.comb += [tr_valid.eq(1), tr_layer.eq(kv_ids[attn.block]), tr_t.eq(t),
                             tr_token.eq(0), tr_spikes.eq(attn.kv)]
        m.d.comb += [attn.i_valid.eq(kv_read), attn.i_k[0].eq(planes[PL_K][0].data[:D]),
                     attn.i_v[0].eq(planes[PL_V][0].data[:D])]
        m.d.sync += kv_read.eq(0)
        m.d.sync += [b_v.eq(load1 & load_masked & valid_row), b_bits.eq(attn.attn), b_blk.eq(attn.block),
                     c_v.eq(attn.kv_valid), c_bits.eq(attn.kv), c_blk.eq(attn.block)]

        # HEAD drain: the Readout takes all token lanes at S1 (param row read at S0).
        head1 = Signal()
        head_ch1 = Signal(range(max(prog.chC, 2)))
        head_bias1 = Signal()
        m.d.comb += [ro.i_valid.eq(head1), ro.i_ch.eq(head_ch1), ro.i_add_bias.eq(head_bias1),
                     ro.i_acc.eq(sl.acc)]
        for j in range(P):
            m.d.comb += ro.i_bias[j].eq(p_bias(j))
        m.d.sync += head1.eq(0)
        # SpikeLinear's `start` is driven from a register set on the FSM transitions into START
        # (and, in LIN passes, on `done` when a chunk follows), not from the state decode (the
        # 23.6 ns critical path at 753ace3). SpikeLinear moves the token lanes through its drain
        # buffer itself (`drain`), in step with the DRAIN state's reads, while it accumulates the
        # next chunk. Its operands (first weight row, fan-in, drain) are registers set with it:
        # driven from the state mux they reached SpikeLinear's pending-input vectors through the
        # range and bank masks (12.6 ns at s21a).
        sl_start = Signal()
        sl_base = Signal.like(sl.base, name="sl_base", reset_less=True)
        sl_n_in = Signal.like(sl.n_in, name="sl_n_in", reset_less=True)
        sl_drain = Signal(name="sl_drain", reset_less=True)
        m.d.comb += [sl.start.eq(sl_start), sl.base.eq(sl_base), sl.n_in.eq(sl_n_in), sl.drain.eq(sl_drain)]
        m.d.sync += sl_start.eq(0)

        # ---- the LIN drain engine ---------------------------------------------------------------
        # A LIN chunk's TL lanes go down the drain pipeline from the cycle after its `done`, one a
        # cycle, with the chunk's metadata latched at `done` (`latch_drain` in the FSM's ACC
        # states). The FSM does not wait for it: the next chunk accumulates meanwhile, the next
        # group loads, and the next pass begins DRAIN_DEPTH + 1 cycles after the last `done`
        # (its reads of plane row n then follow this drain's write of row n). SpikeLinear holds
        # every `done` until TL cycles after the previous one, so the engine is free whenever a
        # `done` latches. Its outputs are registers, not the FSM's state decode.
        dr_active = Signal()
        dr_k = Signal(range(max(TL, 2)))
        dr_n = Signal(range(N + TL + 1))
        dr_uaddr = Signal(range((N + TL) * chD + 1))
        dr_mode, dr_ch, dr_layer = Signal.like(d_mode), Signal.like(d_ch), Signal.like(d_layer)
        dr_dest, dr_last, dr_mask = Signal.like(d_dest), Signal(), Signal.like(d_mask)
        dr_mbase, dr_nch = Signal.like(d_mbase), Signal.like(d_nch)
        with m.If(dr_active):
            m.d.comb += [d_valid.eq(dr_n < N), d_mode.eq(dr_mode), d_n.eq(dr_n), d_lane.eq(dr_k),
                         d_ch.eq(dr_ch), d_layer.eq(dr_layer), d_dest.eq(dr_dest), d_last.eq(dr_last),
                         d_mask.eq(dr_mask), d_mbase.eq(dr_mbase), d_nch.eq(dr_nch), d_uaddr.eq(dr_uaddr)]
            m.d.sync += [dr_k.eq(dr_k + 1), dr_n.eq(dr_n + 1), dr_uaddr.eq(dr_uaddr + chD)]
            with m.If(dr_k == TL - 1):
                m.d.sync += dr_active.eq(0)

        # The image's clear reaches the LIFs, the attention and the Readout one cycle after
        # `start`, from a kept register per receiver: decoded from the FSM it drove the reset and
        # enable of every kv membrane bit (16.3 ns at e86cb03), and one register for all three
        # was a 13 ns net (lif.fresh at 050bd56). EMBED runs for N*chD*K + 9 cycles before any
        # of them is used.
        img_clear = Signal()
        clear_lif, clear_attn, clear_ro = replicas(m, img_clear, 3, "img_clear")
        m.d.comb += [lif.clear.eq(clear_lif), attn.clear.eq(clear_attn), ro.clear.eq(clear_ro)]
        # The scan's start comes from a register set on the last FLUSH cycle of the last
        # timestep, high in its T_NEXT cycle: decoded from the state and `t` it drove the
        # Readout's logit queue loads (12.6 ns at 050bd56).
        ro_start = Signal()
        m.d.sync += ro_start.eq(0)
        m.d.comb += ro.start.eq(ro_start)
        m.d.comb += self.busy.eq(1)
        m.d.sync += self.done.eq(0)
        n_pass = len(prog.passes)
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.busy.eq(0)
                with m.If(self.start):
                    m.d.comb += [enc.start.eq(1), cnt_clear.eq(1)]
                    m.d.comb += img_clear.eq(1)
                    m.d.sync += t.eq(0)
                    m.next = "EMBED"
            with m.State("EMBED"):
                with m.If(enc.done):
                    m.next = "P0_BEGIN"
            for pi, ps in enumerate(prog.passes):
                nxt_begin = f"P{pi + 1}_BEGIN" if pi + 1 < n_pass else "T_NEXT"
                ch_list = ps.chunks
                nch_pass = len(ch_list)
                if ch_list:
                    c_layer = Array([max(c.layer, 0) for c in ch_list])
                    c_ch = Array([c.ch for c in ch_list])
                    c_nch = Array([c.nch for c in ch_list])
                    c_wbase = Array([c.wbase for c in ch_list])
                    c_prow = Array([c.prow for c in ch_list])
                    c_dest = Array([c.dest for c in ch_list])
                    c_last = Array([int(c.last) for c in ch_list])
                    c_mbase = Array([prog.mbase.get(c.lif, 0) for c in ch_list])
                    c_mask = Array([(1 << (min(P, c.width - c.ch * P))) - 1 for c in ch_list])
                n_groups, g_lanes = prog.pass_groups(ps), prog.group_lanes(ps)
                with m.State(f"P{pi}_BEGIN"):
                    m.d.sync += [n_ctr.eq(0), ch_ctr.eq(0), ich.eq(0), g_ctr.eq(0), k_ctr.eq(0), wait.eq(0),
                                 blk.eq(ps.block), w_off.eq(0)]
                    step_read_row(first=True)
                    if ps.kind == ENC:
                        m.d.comb += prow_next.eq(c_prow[0])
                        m.next = f"P{pi}_ENC"
                    elif ps.kind == KV:
                        m.d.comb += attn.count_clear.eq(1)
                        m.next = f"P{pi}_COUNT"
                    else:
                        m.d.sync += [load_src.eq(ps.source), load_masked.eq(int(ps.masked))]
                        m.next = f"P{pi}_LOAD"
                if ps.kind == ENC:
                    with m.State(f"P{pi}_ENC"):
                        m.d.comb += [d_valid.eq(1), d_mode.eq(MODE_ENC), d_n.eq(n_ctr), d_lane.eq(0),
                                     d_ch.eq(ch_ctr), d_layer.eq(c_layer[ch_ctr]), d_dest.eq(PL_ENC),
                                     d_last.eq(c_last[ch_ctr]), d_mask.eq(c_mask[ch_ctr]),
                                     d_mbase.eq(prog.mbase["enc"]), d_nch.eq(chD),
                                     d_uaddr.eq(n_ctr * chD + ch_ctr)]
                        with m.If(ch_ctr == chD - 1):
                            m.d.sync += [ch_ctr.eq(0), n_ctr.eq(n_ctr + 1)]
                            step_read_row()
                            m.d.comb += prow_next.eq(c_prow[0])
                            with m.If(n_ctr == N - 1):
                                m.next = f"P{pi}_FLUSH"
                        with m.Else():
                            m.d.sync += ch_ctr.eq(ch_ctr + 1)
                            m.d.comb += prow_next.eq(c_prow[ch_ctr + 1])
                elif ps.kind == KV:
                    with m.State(f"P{pi}_COUNT"):
                        step_read_row()
                        m.d.sync += [kv_read.eq(1), n_ctr.eq(n_ctr + 1)]
                        with m.If(n_ctr == N - 1):
                            m.next = f"P{pi}_CWAIT"
                    with m.State(f"P{pi}_CWAIT"):
                        m.d.sync += wait.eq(wait + 1)
                        with m.If(wait == attn.count_latency):
                            m.d.comb += [attn.fire.eq(1)]
                            m.d.sync += wait.eq(0)
                            m.next = f"P{pi}_FIRE"
                    with m.State(f"P{pi}_FIRE"):
                        with m.If(attn.kv_valid):
                            m.next = nxt_begin
                else:
                    with m.State(f"P{pi}_LOAD"):
                        n_load = g_ctr * g_lanes + k_ctr
                        step_read_row()
                        m.d.sync += [load1.eq(1), load_lane1.eq(k_ctr), load_n1.eq(n_load), k_ctr.eq(k_ctr + 1)]
                        if ps.per_token:
                            m.d.sync += load_solo1.eq(1)
                        with m.If(k_ctr == g_lanes - 1):
                            m.next = f"P{pi}_LOADW"
                    with m.State(f"P{pi}_LOADW"):  # the last row is in the load register
                        m.next = f"P{pi}_LOADW2"
                    def set_start(base):
                        """SpikeLinear's `start` next cycle, with its operands: in START (a group's
                        first chunk, and every HEAD chunk) or, in LIN passes, in the cycle after a
                        `done` (the next chunk)."""
                        m.d.sync += [sl_start.eq(1), sl_base.eq(base), sl_n_in.eq(ps.n_in),
                                     sl_drain.eq(int(ps.kind != HEAD))]

                    def head_base():
                        return c_wbase[ch_ctr] + w_off if ps.per_token else c_wbase[ch_ctr]

                    with m.State(f"P{pi}_LOADW2"):  # ... and goes into SpikeLinear
                        set_start(head_base() if ps.kind == HEAD else c_wbase[ich])
                        m.next = f"P{pi}_START"

                    def latch_drain():
                        """On SpikeLinear's `done` (LIN): hand chunk `ich` of group g_ctr to the
                        drain engine, start the group's next chunk in the next cycle if there
                        is one; after the group's last chunk, load the next group (GWAIT first
                        in the O pass: its loads' attn trace records must not meet this
                        drain's), or end the pass (FLUSH)."""
                        m.d.sync += [dr_active.eq(1), dr_k.eq(0), dr_n.eq(g_ctr * TL),
                                     dr_uaddr.eq(g_ctr * (TL * chD) + c_ch[ich]), dr_mode.eq(ps.mode),
                                     dr_ch.eq(c_ch[ich]), dr_layer.eq(c_layer[ich]), dr_dest.eq(c_dest[ich]),
                                     dr_last.eq(c_last[ich]), dr_mask.eq(c_mask[ich]), dr_mbase.eq(c_mbase[ich]),
                                     dr_nch.eq(c_nch[ich])]
                        m.d.comb += prow_next.eq(c_prow[ich])
                        with m.If(ich != nch_pass - 1):
                            m.d.sync += ich.eq(ich + 1)
                            set_start(c_wbase[ich + 1])
                        with m.Else():
                            m.d.sync += [ich.eq(0), g_ctr.eq(g_ctr + 1), k_ctr.eq(0), wait.eq(0)]
                            with m.If(g_ctr == n_groups - 1):
                                m.next = f"P{pi}_FLUSH"
                            with m.Else():
                                m.next = f"P{pi}_GWAIT" if ps.masked else f"P{pi}_LOAD"

                    with m.State(f"P{pi}_START"):
                        m.next = f"P{pi}_ACC"
                    with m.State(f"P{pi}_ACC"):
                        if ps.kind == HEAD:
                            with m.If(sl.done):
                                m.d.sync += k_ctr.eq(0)
                                m.d.comb += prow_next.eq(c_prow[ch_ctr])  # the Readout's bias, read in DRAIN
                                m.next = f"P{pi}_DRAIN"
                        else:
                            with m.If(sl.done):
                                latch_drain()
                    if ps.kind == HEAD:
                        with m.State(f"P{pi}_DRAIN"):
                            m.d.sync += [head1.eq(1), head_ch1.eq(c_ch[ch_ctr]), head_bias1.eq(g_ctr == 0)]
                            m.d.sync += [k_ctr.eq(0)]
                            with m.If(ch_ctr == nch_pass - 1):
                                m.d.sync += [ch_ctr.eq(0), g_ctr.eq(g_ctr + 1)]
                                if ps.per_token:
                                    m.d.sync += w_off.eq(w_off + prog.head_stride)
                                with m.If(g_ctr == n_groups - 1):
                                    m.next = f"P{pi}_FLUSH"
                                with m.Else():
                                    m.next = f"P{pi}_LOAD"
                            with m.Else():
                                m.d.sync += ch_ctr.eq(ch_ctr + 1)
                                m.next = f"P{pi}_HWAIT"
                    if ps.kind == HEAD:
                        with m.State(f"P{pi}_HWAIT"):  # the Readout reads acc at S1
                            set_start(head_base())
                            m.next = f"P{pi}_START"
                    if ps.masked:
                        # from the group's last `done`: its drain (TL) and the pipeline behind it
                        with m.State(f"P{pi}_GWAIT"):
                            m.d.sync += wait.eq(wait + 1)
                            with m.If(wait == TL + DRAIN_DEPTH - 1):
                                m.d.sync += wait.eq(0)
                                m.next = f"P{pi}_LOAD"
                if ps.kind != KV:
                    # ENC and HEAD: from the cycle after the last drain cycle; LIN: from the cycle
                    # after the last `done`, while the engine drains (see the drain engine)
                    n_flush = DRAIN_DEPTH if ps.kind == LIN else flush_cycles
                    with m.State(f"P{pi}_FLUSH"):
                        m.d.sync += wait.eq(wait + 1)
                        with m.If(wait == n_flush - 1):
                            m.d.sync += wait.eq(0)
                            if nxt_begin == "T_NEXT":
                                m.d.sync += ro_start.eq(t == T - 1)
                            m.next = nxt_begin
            with m.State("T_NEXT"):
                with m.If(t == T - 1):
                    m.next = "ARGMAX"
                with m.Else():
                    m.d.sync += t.eq(t + 1)
                    m.next = "P0_BEGIN"
            with m.State("ARGMAX"):
                with m.If(ro.done):
                    m.d.sync += self.done.eq(1)
                    m.next = "IDLE"

        return m
