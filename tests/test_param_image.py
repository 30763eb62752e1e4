"""hw.param_image: the parameter image layout, packing, chunk rules, and the loadable Top's write
path in Amaranth's simulator (every memory kind rewritten, results equal the new artifact's golden
model, spike counts included)."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from hw.common import ceil_div
from hw.param_image import SEGMENTS, ImageError, ParamImage, random_rows
from model.config import PRESETS, HardwareConfig, ModelConfig
from quant import golden
from quant.artifact import random_artifact
from tests.hw_util import seed_for


def _tiny(**kw) -> ModelConfig:
    base = dict(name="rnd", image_shape=(4, 4, 1), pixel_bits=4, patch=2, timesteps=3, dim=8, blocks=1,
                mlp_ratio=2, classes=4, weight_bits=4, bias_bits=8, threshold_bits=8, pos_bits=6,
                feedback_bits=6, mult_bits=8, requant_shift=6, stf="both")
    base.update(kw)
    return ModelConfig(**base)


def test_digits_tiny_layout_widths_from_the_config():
    cfg = PRESETS["digits-tiny"]
    img = ParamImage(cfg, 32)
    seg = {s.name: s for s in img.segments}
    assert tuple(seg) == SEGMENTS
    P, D, H, N, K, C = 32, cfg.dim, cfg.hidden, cfg.tokens, cfg.patch_dim, cfg.classes
    chD, chH, chC = ceil_div(D, P), ceil_div(H, P), ceil_div(C, P)
    expect = {
        "weights": (4 * chD * D + chH * D + chD * H + chC * D, P * cfg.weight_bits),   # 288 x 128
        "params": (chD + 5 * chD + chH + chC, P * (cfg.bias_bits + cfg.mult_bits + cfg.threshold_bits)),
        "enc.weights": (K * chD, P * cfg.weight_bits),
        "enc.mult": (chD, P * cfg.mult_bits),
        "enc.bias": (chD, P * cfg.bias_bits),
        "enc.pos": (cfg.timesteps * N * chD, P * cfg.pos_bits),
        "enc.gain": (chD, P * cfg.feedback_bits),
        "attn.theta": (cfg.blocks, D * cfg.threshold_bits),
    }
    assert {n: (s.depth, s.width) for n, s in seg.items()} == expect
    assert (seg["weights"].depth, seg["weights"].width) == (288, 128)
    prev_end = 0
    for s in img.segments:
        assert s.stride & (s.stride - 1) == 0 and s.stride >= s.row_bytes and s.stride < 2 * s.row_bytes
        assert s.base % s.stride == 0 and s.base >= prev_end
        prev_end = s.end
    assert img.size == prev_end == 11328  # 8504 bytes of rows; the rest padding


@pytest.mark.parametrize("cfg,lanes", [(PRESETS["digits-tiny"], 32), (PRESETS["digits-tiny"], 8),
                                       (PRESETS["fmnist-small"], 32), (_tiny(stf="off", blocks=2), 3),
                                       (_tiny(weight_bits=2, stf="tf"), 4)])
def test_rows_are_the_memories_init_and_pack_round_trips(cfg, lanes):
    from hw.attention import SpikeDrivenAttention
    from hw.encoder import STFEncoder
    from hw.sequencer import Program

    art = random_artifact(cfg, 1)
    img = ParamImage(cfg, lanes)
    rows = img.rows(art)
    prog = Program(art, HardwareConfig(lanes=lanes))
    enc = STFEncoder(cfg, art.params, lanes)
    attn = SpikeDrivenAttention(cfg.dim, cfg.tokens, prog.kv_theta, cfg.threshold_bits)
    assert rows["weights"] == prog.weight_rows and rows["params"] == prog.param_rows
    assert [rows[f"enc.{k}"] for k in ("weights", "mult", "bias", "pos", "gain")] == \
        [enc.w_rows, enc.mult_rows, enc.bias_rows, enc.pos_rows, enc.gain_rows]
    assert rows["attn.theta"] == attn.theta_rows
    data = img.pack(art)
    assert len(data) == img.size
    assert img.unpack(data) == rows
    # padding and gaps are zero bytes
    covered = np.zeros(img.size, bool)
    for s in img.segments:
        for r in range(s.depth):
            covered[s.base + r * s.stride: s.base + r * s.stride + s.row_bytes] = True
    assert not any(np.frombuffer(data, np.uint8)[~covered])
    for unit in (enc, attn):  # built only to read their init rows: no UnusedElaboratable warning
        unit._MustUse__silence = True


def test_random_rows_round_trip_and_bad_rows_refused():
    img = ParamImage(_tiny(), 4)
    seed = seed_for("param_image_random_rows")
    rows = random_rows(img, seed)
    assert img.unpack(img.pack_rows(rows)) == rows
    bad = dict(rows)
    bad["params"] = rows["params"][:-1]
    with pytest.raises(ImageError, match="segment params: 16 rows, the layout has 17"):
        img.pack_rows(bad)
    bad = dict(rows)
    bad["enc.gain"] = [1 << 24] + rows["enc.gain"][1:]
    with pytest.raises(ImageError, match="segment enc.gain row 0: value does not fit 24 bits"):
        img.pack_rows(bad)
    with pytest.raises(ImageError, match="an image of 3 bytes; this layout has 688"):
        img.unpack(b"abc")
    with pytest.raises(ImageError, match="is not this image's"):
        img.rows(random_artifact(_tiny(dim=4), 0))


def test_chunk_rules():
    img = ParamImage(_tiny(), 4)
    seg = {s.name: s for s in img.segments}
    chunks = img.chunks(256)
    for off, n in chunks:
        img.check_chunk(off, n)
        assert n <= 256
    # every row is covered exactly once, in order
    starts = [s.base + r * s.stride for s in img.segments for r in range(s.depth)]
    got = sorted(o for off, n in chunks for o in starts if off <= o < off + n)
    assert got == starts
    assert sum(n for _, n in img.chunks(4096)) == img.size and len(img.chunks(4096)) == 1
    p = seg["params"]  # 12-byte rows, 16-byte stride
    img.check_chunk(p.base, 2 * p.stride)
    img.check_chunk(p.base + p.stride, p.end - p.base - p.stride)
    for off, n, msg in [(p.base + 4, p.stride, "not the start of a row"),
                        (p.base, p.row_bytes, "does not end at a row boundary"),
                        (img.size, 4, "outside the 688-byte image"),
                        (img.size - 4, 8, "outside"),
                        (0, 0, "at least one byte")]:
        with pytest.raises(ImageError, match=msg):
            img.check_chunk(off, n)
    with pytest.raises(ImageError, match="cannot hold a whole row of 16 bytes"):
        img.chunks(8)


def test_image_depends_on_lanes_not_on_other_hardware_fields():
    cfg = PRESETS["digits-tiny"]
    art = random_artifact(cfg, 2)
    assert ParamImage(cfg, 8).pack(art) != ParamImage(cfg, 32).pack(art)
    assert [s.width for s in ParamImage(cfg, 8).segments][0] == 8 * cfg.weight_bits
    with pytest.raises(ValueError, match="lanes must be an integer >= 1"):
        ParamImage(cfg, 0)


def firing_artifact_differing_everywhere(cfg, base, images, lanes, first_seed):
    """The first random artifact from `first_seed` whose network fires on `images` (encoder,
    attention and head spikes) and whose parameter image differs from `base`'s in every segment:
    a load of it provably rewrites every memory kind. random_artifact gives every artifact the
    same kv thresholds (tokens // 4), so they are drawn here, per channel, in 1..tokens // 2."""
    from quant.artifact import Artifact

    img = ParamImage(cfg, lanes)
    rows_a = img.rows(base)
    for s in range(first_seed, first_seed + 200):
        params = dict(random_artifact(cfg, s).params)
        rng = np.random.default_rng(s)
        for l in range(cfg.blocks):
            params[f"b{l}.kv.theta"] = rng.integers(1, max(2, cfg.tokens // 2) + 1, cfg.dim)
        art = Artifact(cfg, params, {"source": f"random_artifact({cfg.name}, {s}) with random kv thresholds"})
        rec = golden.forward(art, images)
        rows_b = img.rows(art)
        if (rec["enc"].any() and rec["head"].any() and rec["b0.attn"].any()
                and all(rows_a[n] != rows_b[n] for n in SEGMENTS)):
            print(f"artifact B: {art.info['source']}")
            return art
    raise AssertionError(f"no random artifact of seeds {first_seed}..{first_seed + 199} fires and differs")


def _run_top(top, image_bytes, images, cfg):
    out = []

    async def bench(ctx):
        for a, b in enumerate(image_bytes):
            ctx.set(top.wload.valid, 1)
            ctx.set(top.wload.payload.addr, a)
            ctx.set(top.wload.payload.data, b)
            await ctx.tick()
            if a % 97 == 5:  # a gap in the byte stream changes nothing
                ctx.set(top.wload.valid, 0)
                await ctx.tick()
        ctx.set(top.wload.valid, 0)
        for im in images:
            for p in im.reshape(-1):
                ctx.set(top.pixels.valid, 1)
                ctx.set(top.pixels.payload, int(p))
                await ctx.tick()
            ctx.set(top.pixels.valid, 0)
            ctx.set(top.result.ready, 1)
            while True:
                _, _, v, r = await ctx.tick().sample(top.result.valid, top.result.payload)
                if v:
                    break
            out.append((r.cls, [r.logits[i] for i in range(cfg.classes)],
                        [r.spikes[i] for i in range(len(golden.spike_layers(cfg)))], r.cycles))
            ctx.set(top.result.ready, 0)

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return out


def test_loadable_top_takes_a_whole_new_artifact_over_wload():
    """Top built with artifact A's init, then B's parameter image over ``wload``: class, logits
    and spike counts equal B's golden model; the same images on the baked Top of A differ."""
    from hw.top import Top

    cfg = _tiny()
    seed = seed_for("loadable_top_wload")
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 1 << cfg.pixel_bits, (2, *cfg.image_shape))
    a = random_artifact(cfg, 0)
    b = firing_artifact_differing_everywhere(cfg, a, images, 4, seed % 1000)
    top = Top(a, HardwareConfig(lanes=4, token_lanes=2, weights="loadable"))
    got = _run_top(top, ParamImage(cfg, 4).pack(b), images, cfg)
    rec = golden.forward(b, images)
    counts = golden.spike_counts(cfg, rec)
    for i, (cls, logits, spikes, cycles) in enumerate(got):
        assert (cls, logits) == (rec["pred"][i], rec["logits"][i].tolist()), i
        assert spikes == counts[i].tolist(), (i, spikes, counts[i].tolist())
        assert 0 < cycles < 20_000
    ref_a = golden.forward(a, images, record=False)["logits"]
    assert not np.array_equal(ref_a, rec["logits"])  # the load changed the answers


def test_spike_counts_are_the_record_summed():
    cfg = _tiny()
    art = random_artifact(cfg, 3)
    x = np.random.default_rng(0).integers(0, 16, (3, *cfg.image_shape))
    rec = golden.forward(art, x)
    c = golden.spike_counts(cfg, rec)
    assert c.shape == (3, len(golden.spike_layers(cfg)))
    assert c[:, golden.spike_layers(cfg).index("b0.kv")].tolist() == rec["b0.kv"].sum(axis=(1, 2)).tolist()
    assert c[1, 0] == rec["enc"][1].sum()
    with pytest.raises(ValueError, match="record=True"):
        golden.spike_counts(cfg, golden.forward(art, x, record=False))
