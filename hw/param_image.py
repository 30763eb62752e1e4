"""The parameter image: every parameter memory of the network as one byte string.

One definition, used by both sides of a run-time weight load, so they cannot disagree:

* the gateware (`hw.top.Top` with ``HardwareConfig(weights="loadable")``) decodes the byte
  address of each incoming byte into (segment, row, byte) with `ParamImage.segments` and writes
  a row into the segment's memory when its last byte arrives;
* the host (`boards.host.Host.load_weights`) sends ``ParamImage.pack(artifact)`` in chunks
  (`ParamImage.chunks`).

Layout. The image is the segments below, in this order; segment s holds ``depth`` rows of
``width`` bits (exactly the words its memory is initialised with), each row little-endian in
``row_bytes = ceil(width / 8)`` bytes and padded with zero bytes to a power-of-two ``stride``;
a segment starts at a multiple of its stride (zero bytes fill any gap). Powers of two make the
gateware's address decode a compare, a subtraction and a shift (no divider), at the cost of
the padding (about 30 % for digits-tiny).

==============  =====================================  =======================================
segment         memory (owner)                         row
==============  =====================================  =======================================
weights         SpikeLinear weight memory              `Program.weight_rows` (P x weight_bits)
params          Sequencer param memory                 bias | mult | theta lanes of a chunk
enc.weights     STFEncoder weights                     P x weight_bits, row ch*K + k
enc.mult        STFEncoder requant multipliers         P x mult_bits, row ch
enc.bias        STFEncoder requant biases              P x bias_bits, row ch
enc.pos         STFEncoder TSPE table                  P x pos_bits, row (t*N + n)*chD + ch
enc.gain        STFEncoder feedback gains              P x feedback_bits, row ch
attn.theta      SpikeDrivenAttention kv thresholds     D x threshold_bits, row = block
==============  =====================================  =======================================

The image depends on the ModelConfig and the lane count P only (IDENTITY reports P), never on
the other HardwareConfig fields.

A chunk of a load (LOAD_WEIGHTS) covers whole rows: it starts at a row start and ends at the
start of a later row or at the end of a segment (`ParamImage.check_chunk`); it may span
segments (gaps included).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hw.common import ceil_div
from model.config import ModelConfig

__all__ = ["Segment", "ParamImage", "SEGMENTS", "ImageError", "wload_layout"]

SEGMENTS = ("weights", "params", "enc.weights", "enc.mult", "enc.bias", "enc.pos", "enc.gain", "attn.theta")


def wload_layout(image: "ParamImage"):
    """Payload of a ``wload`` stream (hw.top.Top, hw.core.NetworkCore, hw.link.HostLink): one
    byte of the parameter image and its byte address."""
    from amaranth.hdl import unsigned
    from amaranth.lib import data

    return data.StructLayout({"addr": unsigned(max(1, (image.size - 1).bit_length())), "data": unsigned(8)})


class ImageError(ValueError):
    """A parameter image, offset or chunk that does not fit the layout; the message says how."""


@dataclass(frozen=True)
class Segment:
    name: str
    depth: int       # rows
    width: int       # bits per row
    base: int        # byte offset of row 0 in the image
    stride: int      # bytes per row in the image (a power of two >= row_bytes)

    @property
    def row_bytes(self) -> int:
        return ceil_div(self.width, 8)

    @property
    def end(self) -> int:
        return self.base + self.depth * self.stride

    @property
    def shift(self) -> int:
        return self.stride.bit_length() - 1


def _pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


class ParamImage:
    """The layout of the parameter image of `cfg` computed with `lanes` output lanes (P).

    ``segments``: the `Segment` list (module doc); ``size``: bytes of the whole image.
    """

    def __init__(self, cfg: ModelConfig, lanes: int):
        if not isinstance(cfg, ModelConfig):
            raise TypeError(f"ParamImage: cfg must be a ModelConfig, not {type(cfg).__name__}")
        if isinstance(lanes, bool) or not isinstance(lanes, int) or lanes < 1:
            raise ValueError(f"ParamImage: lanes must be an integer >= 1, not {lanes!r}")
        self.cfg, self.lanes = cfg, lanes
        P, D, H, N, C, K, L = lanes, cfg.dim, cfg.hidden, cfg.tokens, cfg.classes, cfg.patch_dim, cfg.blocks
        chD, chH, chC = ceil_div(D, P), ceil_div(H, P), ceil_div(C, P)
        shapes = {
            "weights": (L * (4 * chD * D + chH * D + chD * H) + chC * cfg.head_inputs, P * cfg.weight_bits),
            "params": (chD + L * (5 * chD + chH) + chC, P * (cfg.bias_bits + cfg.mult_bits + cfg.threshold_bits)),
            "enc.weights": (K * chD, P * cfg.weight_bits),
            "enc.mult": (chD, P * cfg.mult_bits),
            "enc.bias": (chD, P * cfg.bias_bits),
            "enc.pos": ((cfg.timesteps if cfg.tspe else 1) * N * chD, P * cfg.pos_bits),
            "enc.gain": (chD, P * cfg.feedback_bits),
            "attn.theta": (L, D * cfg.threshold_bits),
        }
        segs, at = [], 0
        for name in SEGMENTS:
            depth, width = shapes[name]
            stride = _pow2(ceil_div(width, 8))
            base = ceil_div(at, stride) * stride
            segs.append(Segment(name, depth, width, base, stride))
            at = segs[-1].end
        self.segments: tuple[Segment, ...] = tuple(segs)
        self.size = at
        self.max_width = max(s.width for s in segs)
        self.max_row_bytes = max(s.row_bytes for s in segs)
        self.max_depth = max(s.depth for s in segs)

    def __repr__(self) -> str:
        return f"ParamImage({self.cfg.name}, lanes={self.lanes}: {self.size} bytes)"

    def segment(self, name: str) -> Segment:
        for s in self.segments:
            if s.name == name:
                return s
        raise KeyError(f"no segment {name!r}; segments: {', '.join(SEGMENTS)}")

    # --- packing ---------------------------------------------------------------------------
    def rows(self, artifact) -> dict[str, list[int]]:
        """The row words of every segment for `artifact`: exactly what the memories of a Top
        built from it are initialised with."""
        from hw.attention import theta_rows
        from hw.encoder import encoder_rows
        from hw.sequencer import Program
        from model.config import HardwareConfig

        if artifact.config != self.cfg:
            raise ImageError(f"the artifact's config {artifact.config.name!r} (hash {artifact.config.hash32:08x}) "
                             f"is not this image's {self.cfg.name!r} ({self.cfg.hash32:08x})")
        prog = Program(artifact, HardwareConfig(lanes=self.lanes))
        enc = encoder_rows(self.cfg, artifact.params, self.lanes)
        out = {"weights": prog.weight_rows, "params": prog.param_rows,
               "enc.weights": enc["weights"], "enc.mult": enc["mult"], "enc.bias": enc["bias"],
               "enc.pos": enc["pos"], "enc.gain": enc["gain"],
               "attn.theta": theta_rows(prog.kv_theta, self.cfg.threshold_bits)}
        for s in self.segments:  # the formulas of __init__ and the packers must agree
            assert len(out[s.name]) == s.depth, (s.name, len(out[s.name]), s.depth)
        return out

    def pack(self, artifact) -> bytes:
        """The whole image of `artifact` (`size` bytes)."""
        return self.pack_rows(self.rows(artifact))

    def pack_rows(self, rows: dict[str, list[int]]) -> bytes:
        out = bytearray(self.size)
        for s in self.segments:
            r = rows[s.name]
            if len(r) != s.depth:
                raise ImageError(f"segment {s.name}: {len(r)} rows, the layout has {s.depth}")
            for i, word in enumerate(r):
                word = int(word)
                if not 0 <= word < (1 << s.width):
                    raise ImageError(f"segment {s.name} row {i}: value does not fit {s.width} bits")
                at = s.base + i * s.stride
                out[at:at + s.row_bytes] = word.to_bytes(s.row_bytes, "little")
        return bytes(out)

    def unpack(self, data: bytes) -> dict[str, list[int]]:
        """Row words of every segment from an image (the inverse of `pack_rows`)."""
        if len(data) != self.size:
            raise ImageError(f"an image of {len(data)} bytes; this layout has {self.size}")
        rows = {}
        for s in self.segments:
            rows[s.name] = [int.from_bytes(data[s.base + i * s.stride: s.base + i * s.stride + s.row_bytes], "little")
                            & ((1 << s.width) - 1) for i in range(s.depth)]
        return rows

    # --- addresses ---------------------------------------------------------------------------
    def locate(self, offset: int) -> tuple[Segment, int, int] | None:
        """(segment, row, byte in the row's stride) of a byte offset; None in a gap or past the end."""
        for s in self.segments:
            if s.base <= offset < s.end:
                return s, (offset - s.base) >> s.shift, (offset - s.base) & (s.stride - 1)
        return None

    def is_row_start(self, offset: int) -> bool:
        """Where a LOAD_WEIGHTS chunk may start: the first byte of a row."""
        loc = self.locate(offset)
        return loc is not None and loc[2] == 0

    def is_chunk_end(self, end: int) -> bool:
        """Where a LOAD_WEIGHTS chunk may end (exclusive): the start of a later row of the same
        segment, or the segment's end (bases and ends are multiples of the stride)."""
        return any(s.base < end <= s.end and end & (s.stride - 1) == 0 for s in self.segments)

    def check_chunk(self, offset: int, length: int) -> None:
        """Raise `ImageError` unless [offset, offset + length) is a loadable chunk: whole rows,
        inside the image (the device answers NAK BAD_PAYLOAD otherwise)."""
        if length < 1:
            raise ImageError("a chunk must carry at least one byte")
        if not 0 <= offset < self.size or offset + length > self.size:
            raise ImageError(f"chunk [{offset}, {offset + length}) is outside the {self.size}-byte image")
        if not self.is_row_start(offset):
            raise ImageError(f"chunk offset {offset} is not the start of a row")
        if not self.is_chunk_end(offset + length):
            raise ImageError(f"chunk [{offset}, {offset + length}) does not end at a row boundary")

    def chunks(self, max_len: int) -> list[tuple[int, int]]:
        """(offset, length) pairs covering every row of the image, each chunk whole rows of at
        most `max_len` bytes, in address order. A chunk may span segments (the zero bytes of a
        gap between them travel along and are ignored); none starts in a gap."""
        widest = max(s.stride for s in self.segments)
        if max_len < widest:
            raise ImageError(f"a chunk of at most {max_len} bytes cannot hold a whole row of {widest} bytes "
                             "(with padding)")
        out: list[tuple[int, int]] = []
        start = end = None
        for s in self.segments:
            for r in range(s.depth):
                row = s.base + r * s.stride
                if start is not None and row + s.stride - start > max_len:
                    out.append((start, end - start))
                    start = None
                if start is None:
                    start = row
                end = row + s.stride
        out.append((start, end - start))
        return out

    def summary(self) -> list[dict]:
        """One dict per segment (for docs and reports)."""
        return [{"segment": s.name, "depth": s.depth, "width": s.width, "row_bytes": s.row_bytes,
                 "stride": s.stride, "base": s.base, "bytes": s.depth * s.stride} for s in self.segments]


def random_rows(image: ParamImage, seed: int) -> dict[str, list[int]]:
    """Seeded random row words of every segment (tests of the write path alone)."""
    rng = np.random.default_rng(seed)
    return {s.name: [int.from_bytes(rng.bytes(s.row_bytes), "little") & ((1 << s.width) - 1) for _ in range(s.depth)]
            for s in image.segments}
