"""`NetworkCore`: the network (`hw.top.Top`) behind the host link's streams, for `BoardTop`.

The link speaks `hw.link.pixel_layout` (pixel + ``last``) and `hw.link.result_layout` (16-bit
class, 32-bit cycle count, logits sign-extended to `hw.link.LOGIT_BITS`); `Top` speaks bare
pixels and logits of `Widths.logit_bits`. This adapter only renames and sign-extends: it adds no
register and no cycle, so the core's latency is `Top`'s.
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring

from hw.link import LOGIT_BITS
from hw.platforms import core_signature
from hw.top import Top
from quant.contract import widths

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
    result : Out(stream.Signature(result_layout(classes)))
        ``cls`` zero-extended to 16 bits, ``cycles`` as Top counts them, ``logits`` sign-extended
        from Widths.logit_bits to LOGIT_BITS.
    config_hash : Out(32)   the ModelConfig's hash32.

    Latency: Top's (combinational pass-through). Resources: Top's.
    """

    def __init__(self, artifact_or_cfg, hw_cfg=None):
        self.top = Top(artifact_or_cfg, hw_cfg)
        cfg = self.top.cfg
        wd = widths(cfg)
        if wd.logit_bits > LOGIT_BITS:
            raise ValueError(f"NetworkCore: logits need {wd.logit_bits} bits, the host link carries {LOGIT_BITS}; "
                             f"use a config with smaller logit bounds (docs/integer-semantics.md section 11)")
        sig = core_signature(cfg.pixel_bits, cfg.classes).members
        super().__init__({**dict(sig), "config_hash": wiring.Out(32)})

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
        for c in range(cfg.classes):
            # .as_signed() of a signed view keeps the sign through the widening assignment
            m.d.comb += self.result.payload.logits[c].eq(top.result.payload.logits[c])
        return m
