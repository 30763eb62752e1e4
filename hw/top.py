"""`Top`: the whole network behind a pixel stream in and a result stream out."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.common import check_bool, check_fault, ubits
from hw.param_image import SEGMENTS, wload_layout
from hw.sequencer import Program, Sequencer, spike_count_bits, trace_layout, trace_signature
from model.config import HardwareConfig, HW_PRESETS, ModelConfig
from quant.artifact import Artifact, random_artifact
from quant.contract import widths
from quant.golden import spike_layers

__all__ = ["Top", "result_layout", "wload_layout", "CYCLE_BITS"]

CYCLE_BITS = 32


def result_layout(cfg: ModelConfig) -> data.StructLayout:
    """Payload of the result stream: class, integer logits (summed over T), cycles per image,
    spikes per layer (quant.golden.spike_layers order)."""
    return data.StructLayout({
        "cls": unsigned(ubits(cfg.classes - 1)),
        "logits": data.ArrayLayout(signed(widths(cfg).logit_bits), cfg.classes),
        "cycles": unsigned(CYCLE_BITS),
        "spikes": data.ArrayLayout(unsigned(spike_count_bits(cfg)), len(spike_layers(cfg))),
    })



class Top(wiring.Component):
    """The spiking transformer of an artifact, bit-exact with quant.golden.forward.

    Parameters
    ----------
    artifact_or_cfg : Artifact, or ModelConfig (then ``random_artifact(cfg, 0)`` is baked in:
                      for area estimates, or with weights="loadable")
    hw_cfg : HardwareConfig or a HW_PRESETS name (default "default")
    trace : bool      add the `trace` port (verification; it never stalls the network).
    fault : None, "leak_round" or "tree_input": test-only single defects (see hw.common.FAULTS).

    Ports
    -----
    pixels : In(stream.Signature(unsigned(pixel_bits)))
        H*W*C pixels per image, row-major (y, x, channel), the integers of model.data.
        Accepted (ready=1) only while no image is being computed.
    result : Out(stream.Signature(result_layout(cfg)))
        One payload per image: ``cls`` (argmax, ties to the lowest class), ``logits`` (the
        integer logits summed over T, signed Widths.logit_bits each), ``cycles`` (clock cycles
        from the first pixel's handshake to result.valid), ``spikes`` (per spike layer, the
        spikes of the image over t, tokens and channels: quant.golden.spike_counts). Held until ready.
    trace : Out(trace_signature(cfg))   only with trace=True
        ``valid`` Out(1) and ``payload`` Out(trace_layout(cfg)), no ready: the network never
        waits for it, so tracing cannot change timing. One record per LIF row computed, at most
        one per cycle; see hw.trace.decode_trace.
    config_hash : Out(32)   the ModelConfig's hash32 (the host refuses a mismatch).
    wload : In(stream.Signature(wload_layout(image)))   only with weights="loadable"
        Bytes of the parameter image (hw.param_image.ParamImage(cfg, lanes)), each with its byte
        address; ready while no image is being computed (in the pixel-loading state). The bytes
        of a row must come in address order, one row after the other (a row's bytes may be
        spread over time); padding bytes are taken and ignored. A row is written into its
        memory the cycle after its last byte.

    Latency: H*W*C pixel cycles + the Sequencer's schedule + 2; see docs/hardware.md for measured
    cycles per image. wload: 1 byte per cycle, a row written 1 cycle after its last byte.
    Resources: the Sequencer's; loadable: a row buffer of 8 x max row bytes flip-flops, the
    address decode (two compares per segment) and a write port on every parameter memory.
    """

    def __init__(self, artifact_or_cfg, hw_cfg=None, trace: bool = False, fault=None):
        if isinstance(artifact_or_cfg, ModelConfig):
            artifact = random_artifact(artifact_or_cfg, 0)
        elif isinstance(artifact_or_cfg, Artifact):
            artifact = artifact_or_cfg
        else:
            raise TypeError(f"Top: artifact_or_cfg must be an Artifact or a ModelConfig, not {type(artifact_or_cfg).__name__}")
        if hw_cfg is None:
            hw_cfg = HW_PRESETS["default"]
        elif isinstance(hw_cfg, str):
            if hw_cfg not in HW_PRESETS:
                raise ValueError(f"Top: unknown hardware preset {hw_cfg!r}; presets: {', '.join(HW_PRESETS)}")
            hw_cfg = HW_PRESETS[hw_cfg]
        elif not isinstance(hw_cfg, HardwareConfig):
            raise TypeError(f"Top: hw_cfg must be a HardwareConfig or a preset name, not {type(hw_cfg).__name__}")
        check_bool("Top", "trace", trace)
        check_fault("Top", fault)
        self.artifact, self.cfg, self.hw_cfg = artifact, artifact.config, hw_cfg
        self.trace_enabled, self.fault = trace, fault
        self.program = Program(artifact, hw_cfg)
        cfg = self.cfg
        self.n_pixels = cfg.image_shape[0] * cfg.image_shape[1] * cfg.image_shape[2]
        members = {
            "pixels": In(stream.Signature(unsigned(cfg.pixel_bits))),
            "result": Out(stream.Signature(result_layout(cfg))),
            "config_hash": Out(32),
        }
        if trace:
            members["trace"] = Out(trace_signature(cfg))
        self.image = self.program.image
        if hw_cfg.weights == "loadable":
            members["wload"] = In(stream.Signature(wload_layout(self.image)))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        m.submodules.core = core = Sequencer(self.program, trace=self.trace_enabled, fault=self.fault)
        m.d.comb += self.config_hash.eq(cfg.hash32)
        if self.trace_enabled:
            m.d.comb += [self.trace.valid.eq(core.trace.valid), self.trace.payload.eq(core.trace.payload)]

        idx = Signal(range(self.n_pixels + 1))
        counting = Signal()
        cycles = Signal(CYCLE_BITS)
        with m.If(counting):
            m.d.sync += cycles.eq(cycles + 1)
        m.d.comb += [core.pix_addr.eq(idx), core.pix_data.eq(self.pixels.payload)]
        take_byte = Signal()
        if self.hw_cfg.weights == "loadable":
            self._elaborate_wload(m, core, take_byte)
        # The payload is held in a reset-less register (read only under result.valid): a reset
        # net to its ~300 bits was part of a 15k-fanout reset net on the 85F.
        payload = Signal.like(self.result.payload, name="result_payload", reset_less=True)
        m.d.comb += self.result.payload.eq(payload)
        with m.FSM():
            with m.State("LOAD"):
                m.d.comb += self.pixels.ready.eq(1)
                if self.hw_cfg.weights == "loadable":
                    m.d.comb += [self.wload.ready.eq(1), take_byte.eq(self.wload.valid)]
                with m.If(self.pixels.valid):
                    m.d.comb += core.pix_en.eq(1)
                    m.d.sync += idx.eq(idx + 1)
                    with m.If(idx == 0):
                        m.d.sync += [counting.eq(1), cycles.eq(1)]
                    with m.If(idx == self.n_pixels - 1):
                        m.d.sync += idx.eq(0)
                        m.next = "START"
            with m.State("START"):
                m.d.comb += core.start.eq(1)
                m.next = "RUN"
            with m.State("RUN"):
                with m.If(core.done):
                    m.d.sync += [counting.eq(0), self.result.valid.eq(1), payload.cls.eq(core.cls),
                                 payload.logits.eq(core.logits), payload.cycles.eq(cycles),
                                 payload.spikes.eq(core.spike_counts)]
                    m.next = "OUT"
            with m.State("OUT"):
                with m.If(self.result.ready):
                    m.d.sync += self.result.valid.eq(0)
                    m.next = "LOAD"
        return m

    def _elaborate_wload(self, m, core, take_byte):
        """Parameter image bytes -> rows -> the Sequencer's write bus (hw.param_image layout)."""
        img = self.image
        addr, byte = self.wload.payload.addr, self.wload.payload.data
        # The last max_row_bytes bytes taken, the newest on top: after a row's row_bytes bytes its
        # word is the top 8*row_bytes bits, byte 0 lowest (little-endian rows).
        buf = Signal(8 * img.max_row_bytes)
        commit = Signal()
        c_seg = Signal(range(len(SEGMENTS)))
        c_row = Signal(range(img.max_depth))
        m.d.sync += commit.eq(0)
        with m.If(take_byte):
            for i, sg in enumerate(img.segments):
                rel = (addr - sg.base)[:max(1, (sg.end - sg.base - 1).bit_length())]
                b = rel[:sg.shift] if sg.shift else Const(0, 1)
                with m.If((addr >= sg.base) & (addr < sg.end)):
                    with m.If(b < sg.row_bytes):  # a padding byte is taken and dropped
                        m.d.sync += buf.eq(Cat(buf[8:], byte))
                    with m.If(b == sg.row_bytes - 1):
                        m.d.sync += [commit.eq(1), c_seg.eq(i), c_row.eq(rel[sg.shift:])]
        m.d.comb += [core.w_en.eq(commit), core.w_seg.eq(c_seg), core.w_addr.eq(c_row)]
        with m.Switch(c_seg):
            for i, sg in enumerate(img.segments):
                lo = 8 * (img.max_row_bytes - sg.row_bytes)
                with m.Case(i):
                    m.d.comb += core.w_data.eq(buf[lo:lo + sg.width])
