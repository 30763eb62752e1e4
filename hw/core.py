"""`NetworkCore`: the network (`hw.top.Top`) behind the host link's streams, for `BoardTop`.

The link speaks `hw.link.pixel_layout` (pixel + ``last``) and `hw.link.result_layout` (16-bit
class, 32-bit cycle count, logits sign-extended to `hw.link.LOGIT_BITS`, 32-bit spike counts);
`Top` speaks bare pixels, logits of `Widths.logit_bits` and spike counts of
`hw.sequencer.spike_count_bits`. This adapter only renames and sign-extends: it adds no
register and no cycle, so the core's latency is `Top`'s.
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring

from hw.link import LOGIT_BITS
from hw.platforms import core_signature
from hw.top import Top
from quant.contract import widths
from quant.golden import spike_layers

__all__ = ["NetworkCore"]


class NetworkCore(wiring.Component):
    """The spiking transformer of an artifact with the members of `hw.platforms.core_signature`.

    Parameters
    ----------
    artifact_or_cfg, hw_cfg : as `hw.top.Top` (a ModelConfig bakes in ``random_artifact(cfg, 0)``).

    Ports
    -----
    pixels : In(stream.Signature(pixel_layout(pixel_bits)))
        H*W*C pixels per image in raster order; ``last`` is ignored (Top counts the pixels of an
        image itself, and the link always sends whole images).
    result : Out(stream.Signature(result_layout(classes, len(spike_layers(cfg)))))
        ``cls`` zero-extended to 16 bits, ``cycles`` as Top counts them, ``logits`` sign-extended
        from Widths.logit_bits to LOGIT_BITS, ``spikes`` zero-extended to 32 bits.
    config_hash : Out(32)   the ModelConfig's hash32.
    wload : In(stream.Signature(hw.param_image.wload_layout(image)))   weights="loadable" only
        Top's parameter image byte stream; ``image`` (attribute) is its ParamImage, else None.

    Latency: Top's (combinational pass-through). Resources: Top's.
    """

    def __init__(self, artifact_or_cfg, hw_cfg=None):
        self.top = Top(artifact_or_cfg, hw_cfg)
        cfg = self.top.cfg
        wd = widths(cfg)
        if wd.logit_bits > LOGIT_BITS:
            raise ValueError(f"NetworkCore: logits need {wd.logit_bits} bits, the host link carries {LOGIT_BITS}; "
                             f"use a config with smaller logit bounds (docs/integer-semantics.md section 11)")
        self.spike_layers = len(spike_layers(cfg))
        sig = dict(core_signature(cfg.pixel_bits, cfg.classes, self.spike_layers).members)
        sig["config_hash"] = wiring.Out(32)
        self.image = None
        if self.top.hw_cfg.weights == "loadable":
            self.image = self.top.image
            sig["wload"] = self.top.signature.members["wload"]
        super().__init__(sig)

    @property
    def cfg(self):
        return self.top.cfg

    def elaborate(self, platform):
        m = Module()
        m.submodules.top = top = self.top
        cfg = top.cfg
        m.d.comb += [
            top.pixels.valid.eq(self.pixels.valid),
            top.pixels.payload.eq(self.pixels.payload.data),
            self.pixels.ready.eq(top.pixels.ready),
            self.result.valid.eq(top.result.valid),
            top.result.ready.eq(self.result.ready),
            self.result.payload.cls.eq(top.result.payload.cls),
            self.result.payload.cycles.eq(top.result.payload.cycles),
            self.config_hash.eq(top.config_hash),
        ]
        for i in range(self.spike_layers):
            m.d.comb += self.result.payload.spikes[i].eq(top.result.payload.spikes[i])
        if self.image is not None:
            wiring.connect(m, wiring.flipped(self.wload), top.wload)
        for c in range(cfg.classes):
            # .as_signed() of a signed view keeps the sign through the widening assignment
            m.d.comb += self.result.payload.logits[c].eq(top.result.payload.logits[c])
        return m
