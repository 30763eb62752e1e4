"""STFEncoder (hw/encoder.py) in simulation against the encoder part of quant.golden.forward.

Per image: the pixels are written through ``pix_*`` (row-major y, x, channel), ``start``
computes E (patch MACs + requantization) and then two tap passes read the encoder LIF input:

* in the Sequencer's order (t, token, chunk), with ``tap_s`` = the golden model's own encoder
  spikes S[t-1] presented one cycle after ``tap_valid``: ``tap_x`` must equal the record's
  ``u0`` (= I[t] = E + P[t] + g*S[t-1]) exactly;
* in random order with random ``tap_s`` bits: ``tap_x`` must equal ``enc.e + P[t] + g*s`` (the
  formula of docs/integer-semantics.md section 3, with E from the record's ``enc.e``).

Taps come back to back or with random idle cycles (``tap_s`` is junk in a cycle that follows no
tap). The parameters are baked, from a fixed seed, with the extremes of every width in fixed
channels (weights all most-negative / all most-positive, multiplier most negative / positive,
bias, position and gain at both ends), so an all-max image reaches the widest MAC accumulator
(``-K * pixel_max * 2^(weight_bits-1)``) and, through the most negative multiplier, the
largest requantized value; the images: all zero, all max, random. Configs cover D not divisible
by P, several channels per pixel, TSPE (T tables) and shared tables with feedback, K = 1 and a
zero requant shift.

Latency: ``tap_o_valid`` exactly ``TAP_LATENCY`` = 3 cycles after ``tap_valid``; ``busy`` exactly from the cycle
after ``start`` for N*chunks*K + 8 cycles (one MAC step per cycle back to back, then the
4-stage MAC pipeline and the 3-cycle requant drain into E) and ``done`` (one pulse) the cycle
after, i.e. N*chunks*K + 9 cycles after ``start``, as the STFEncoder docstring states.
"""

import numpy as np
import pytest

from model.config import ModelConfig
from quant.artifact import Artifact, random_artifact
from quant.contract import signed_range, widths
from quant.golden import forward
from sim import runner
from sim.program import Program, array

encoder = pytest.importorskip("hw.encoder", reason="hw/encoder.py has not landed yet")

# (model config fields, lanes P)
CONFIGS = [
    # N 4, K 4, D 5 in chunks of 2 (not dividing), TSPE + feedback, narrow widths
    (dict(image_shape=(4, 4, 1), patch=2, timesteps=3, dim=5, pixel_bits=3, weight_bits=3, mult_bits=5, bias_bits=6,
          pos_bits=5, feedback_bits=5, requant_shift=3, stf="both"), 2),
    # N 6, K 8 (two channels per pixel), one chunk of 4, shared table + feedback, wide widths
    (dict(image_shape=(4, 6, 2), patch=2, timesteps=2, dim=4, pixel_bits=8, weight_bits=8, mult_bits=16,
          bias_bits=16, pos_bits=14, feedback_bits=14, requant_shift=4, stf="tf"), 4),
    # K = 1 (1x1 patches), one lane, no shift, TSPE without feedback
    (dict(image_shape=(2, 2, 1), patch=1, timesteps=2, dim=3, pixel_bits=1, weight_bits=2, mult_bits=3, bias_bits=3,
          pos_bits=3, feedback_bits=3, requant_shift=0, stf="tspe"), 1),
]


def _model_cfg(cfg):
    return ModelConfig(name="encoder_bench", blocks=1, mlp_ratio=1, classes=2, **cfg[0])


def _cfg_id(c):
    m = _model_cfg(c)
    return f"n{m.tokens}k{m.patch_dim}d{m.dim}p{c[1]}t{m.timesteps}_{m.stf}_s{m.requant_shift}"


def _artifact(m: ModelConfig) -> Artifact:
    """A valid artifact whose encoder parameters hold every width's extremes in fixed channels."""
    art = random_artifact(m, 7)
    rng = np.random.default_rng(3000 + m.dim)  # baked: fixed seed
    p = dict(art.params)
    T, N, D, K = m.timesteps, m.tokens, m.dim, m.patch_dim
    wlo, whi = signed_range(m.weight_bits)
    mlo, mhi = signed_range(m.mult_bits)
    blo, bhi = signed_range(m.bias_bits)
    plo, phi = signed_range(m.pos_bits)
    glo, ghi = signed_range(m.feedback_bits)
    w = rng.integers(wlo, whi + 1, (K, D))
    w[:, 0], w[:, 1 % D] = wlo, whi
    mult = rng.integers(mlo, mhi + 1, D)
    mult[0], mult[-1] = mlo, mhi
    bias = rng.integers(blo, bhi + 1, D)
    bias[0], bias[-1] = bhi, blo
    pos = rng.integers(plo, phi + 1, (T, N, D))
    pos[:, :, 0], pos[:, 0, -1] = phi, plo
    if not m.tspe:
        pos[:] = pos[:1]
    gain = rng.integers(glo, ghi + 1, D)
    gain[0], gain[-1] = ghi, glo
    if not m.feedback:
        gain[:] = 0
    p.update({"enc.weight": w, "enc.mult": mult, "enc.bias": bias, "enc.pos": pos, "enc.gain": gain,
              "enc.theta": np.maximum(1, np.abs(rng.integers(-8, 9, D) * 7))})
    return Artifact(m, p)


def _design(sim, cfg, multipliers="dsp"):
    m, P = _model_cfg(cfg), cfg[1]
    art = _artifact(m)
    return runner.build(lambda: encoder.STFEncoder(m, art.params, P, multipliers=multipliers),
                        name=f"encoder_{_cfg_id(cfg)}_{multipliers}", sim=sim,
                        key=(repr(cfg), art.checksum, multipliers)), m, art


def _images(rng, m, n_random=2):
    h, w, c = m.image_shape
    imgs = [np.zeros((h, w, c), np.int64), np.full((h, w, c), m.pixel_max)]
    imgs += [rng.integers(0, m.pixel_max + 1, (h, w, c)) for _ in range(n_random)]
    return np.stack(imgs)


def _bits(v):
    return sum(int(b) << j for j, b in enumerate(v))


def _run(sim, seed, waves, cfg, n_random=2, multipliers="dsp"):
    design, m, art = _design(sim, cfg, multipliers)
    P = cfg[1]
    T, N, D, K = m.timesteps, m.tokens, m.dim, m.patch_dim
    chunks = -(-D // P)
    rng = np.random.default_rng(seed)
    images = _images(rng, m, n_random)
    rec = forward(art, images)
    pos = art.params["enc.pos"].astype(np.int64)
    gain = art.params["enc.gain"].astype(np.int64)
    e_cycles = N * chunks * K  # MAC steps, one per cycle
    prog = Program().init(pix_en=0, start=0, tap_valid=0, tap_s=0)
    prog.monitor("tap", valid="tap_o_valid", ports=["tap_x"])
    prog.monitor("busy", valid="busy", ports=[])
    prog.monitor("done", valid="done", ports=[])
    taps = []  # (cycle offset from the pass mark, pass name, expected [P] with None for padding lanes)
    for i, img in enumerate(images):
        for a, x in enumerate(img.reshape(-1)):
            prog.set(pix_en=1, pix_addr=a, pix_data=int(x)).tick()
        prog.set(pix_en=0)
        prog.mark(f"start{i}")
        prog.set(start=1).tick().set(start=0)
        prog.wait("done", timeout=e_cycles + 20, name="done")

        def tap_pass(name, items):
            """items: (t, n, ch, s bits [P], expected [P]); random idle cycles between them."""
            prog.mark(name)
            cycle, prev = 0, None
            for t, n, ch, s, want in items:
                while rng.random() < 0.2:
                    prog.set(tap_valid=0, tap_s=int(rng.integers(0, 1 << P)) if prev is None else prev)
                    prog.tick()
                    cycle += 1
                    prev = None  # junk from here on: no tap to answer
                prog.set(tap_valid=1, tap_t=t, tap_n=n, tap_ch=ch,
                         tap_s=prev if prev is not None else int(rng.integers(0, 1 << P))).tick()
                taps.append((name, cycle, want, (t, n, ch)))
                cycle += 1
                prev = s
            prog.set(tap_valid=0, tap_s=prev).tick().set(tap_s=0).tick(3)

        golden = []
        for t in range(T):
            for n in range(N):
                for ch in range(chunks):
                    lanes = range(ch * P, min(D, (ch + 1) * P))
                    s = [int(rec["enc"][i, t - 1, n, c]) if t else 0 for c in lanes]
                    golden.append((t, n, ch, _bits(s), [int(rec["u0"][i, t, n, c]) for c in lanes]))
        tap_pass(f"golden{i}", golden)
        rand = []
        for _ in range(T * N * chunks):
            t, n, ch = int(rng.integers(T)), int(rng.integers(N)), int(rng.integers(chunks))
            lanes = list(range(ch * P, min(D, (ch + 1) * P)))
            s = rng.integers(0, 2, P)
            want = [int(rec["enc.e"][i, n, c] + pos[t, n, c] + gain[c] * s[j]) for j, c in enumerate(lanes)]
            rand.append((t, n, ch, _bits(s), want))
        tap_pass(f"random{i}", rand)
    seen = prog.run(design, seed=seed, tag="random", waves=waves)
    return design, m, art, images, rec, taps, seen, e_cycles


def _check(design, m, cfg, images, rec, taps, seen, e_cycles, seed):
    assert seen.passed, seen.failure_text()
    got, cyc = seen.monitor("tap"), seen.monitor_cycles("tap")
    assert len(got) == len(taps), f"{len(got)} tap outputs for {len(taps)} taps (seed {seed})"
    for (name, c, want, where), g, gc in zip(taps, got, cyc):
        x = array(g["tap_x"], len(want))
        assert x == want, f"{design.name} {name} tap (t, n, ch) = {where}: tap_x {x}, expected {want} (seed {seed})"
        assert gc - seen.mark(name) - c == encoder.STFEncoder.TAP_LATENCY == 3, \
            f"{design.name} {name} tap {where}: tap_o_valid {gc - seen.mark(name) - c} cycles after tap_valid, documented 3"
    starts = [seen.mark(f"start{i}") for i in range(len(images))]
    dones = seen.monitor_cycles("done")
    assert len(dones) == len(images), f"{len(dones)} done pulses for {len(images)} starts"
    busy = set(seen.monitor_cycles("busy"))
    want_busy = set().union(*(range(s + 1, s + e_cycles + 9) for s in starts))
    assert busy == want_busy, f"busy differs from start+1 .. start+N*chunks*K+7 in cycles {sorted(busy ^ want_busy)[:6]}"
    lat = [d - s for d, s in zip(dones, starts)]
    assert lat == [e_cycles + 9] * len(images), \
        f"done {lat} cycles after start; N*chunks*K = {e_cycles}, STFEncoder docstring: {e_cycles + 9}"
    return lat


@pytest.mark.parametrize("multipliers", ["dsp", "lut"])
@pytest.mark.parametrize("cfg", CONFIGS, ids=_cfg_id)
def test_encoder(sim, seed, waves, cfg, multipliers):
    design, m, art, images, rec, taps, seen, e_cycles = _run(sim, seed, waves, cfg, multipliers=multipliers)
    _check(design, m, cfg, images, rec, taps, seen, e_cycles, seed)
    # the all-max image really reached the widest MAC accumulator (channel 0: all most-negative weights)
    from quant.golden import patchify
    acc = patchify(m, images) @ art.params["enc.weight"].astype(np.int64)
    assert acc.min() == -widths(m).enc_acc_max
