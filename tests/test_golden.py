"""The integer golden model: primitives, invariants, bounds, STF modes, and equality with a
plain-Python reference implementation of the whole network (tests/reference_model.py)."""

from __future__ import annotations

import numpy as np
import pytest

import quant.golden as golden
from model.config import PRESETS, ConfigError, ModelConfig
from quant.artifact import random_artifact
from quant.contract import (
    argmax_lowest,
    bits_for,
    lif_step,
    requantize,
    sdsa_v1,
    signed_range,
    spike_linear,
    widths,
)
from reference_model import forward_one, lif as ref_lif

DIGITS = PRESETS["digits-tiny"]
SMALL = DIGITS.replace(name="small", dim=8, timesteps=3)


def images_for(cfg: ModelConfig, n: int, seed: int) -> np.ndarray:
    """Random images plus the two corner cases (all zero, all at the largest pixel value)."""
    rng = np.random.default_rng(seed)
    h, w, c = cfg.image_shape
    x = rng.integers(0, cfg.pixel_max + 1, (n, h, w, c))
    x[0] = 0
    if n > 1:
        x[1] = cfg.pixel_max
    return x.astype(np.uint16 if cfg.pixel_bits > 8 else np.uint8)


# Primitives ------------------------------------------------------------------------------------


def test_lif_hard_reset_and_leak_floor():
    v = np.array([-3, 3, -1, 1, -4, 0, 5, 10], np.int64)
    x = np.zeros_like(v)
    s, v2 = lif_step(v, x, np.full(8, 100))
    assert s.tolist() == [0] * 8 and s.dtype == np.uint8
    assert v2.tolist() == [-2, 1, -1, 0, -2, 0, 2, 5]  # floor: -3 >> 1 == -2, -1 >> 1 == -1
    s, v2 = lif_step(np.array([4, 4, -7]), np.array([5, 6, 20]), np.array([10, 10, 10]))
    assert s.tolist() == [0, 1, 1]
    assert v2.tolist() == [4, 0, 0]  # hard reset to 0, not subtract-threshold


@pytest.mark.parametrize("theta", [1, 2, 7, 2047])
def test_lif_spikes_exactly_at_threshold(theta):
    w = np.array([theta - 2, theta - 1, theta, theta + 1])
    s, v = lif_step(np.zeros(4, np.int64), w, np.full(4, theta))
    assert s.tolist() == [0, 0, 1, 1]
    assert v.tolist() == [(theta - 2) >> 1, (theta - 1) >> 1, 0, 0]


def test_lif_threshold_broadcasts_over_channels():
    v = np.zeros((2, 3, 4), np.int64)
    x = np.arange(24).reshape(2, 3, 4)
    theta = np.array([1, 5, 10, 100])
    s, _ = lif_step(v, x, theta)
    assert np.array_equal(s, (x >= theta).astype(np.uint8))


def test_lif_matches_scalar_reference_on_random_sequences():
    seed = 11
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    x = rng.integers(-50, 80, (20, 64))
    theta = rng.integers(1, 60, 64)
    v = np.zeros(64, np.int64)
    vr = [0] * 64
    for t in range(20):
        s, v = lif_step(v, x[t], theta)
        for c in range(64):
            sr, vr[c] = ref_lif(vr[c], int(x[t, c]), int(theta[c]))
            assert s[c] == sr and v[c] == vr[c], (t, c)
        assert np.all(v[s == 1] == 0)


def test_requantize_floors():
    acc = np.array([-1, 1, -3, 3, 0, -256, 255])
    out = requantize(acc, np.ones(7, np.int64), 1, np.zeros(7, np.int64))
    assert out.tolist() == [-1, 0, -2, 1, 0, -128, 127]
    assert requantize(np.array([7]), np.array([-3]), 2, np.array([5])).tolist() == [(-21 >> 2) + 5]
    assert requantize(np.array([7]), np.array([3]), 0, np.array([-1])).tolist() == [20]


def test_spike_linear_adds_selected_rows():
    w = np.array([[1, -2], [3, 4], [-8, 7]])
    s = np.array([[1, 0, 1], [0, 0, 0], [1, 1, 1]], np.uint8)
    assert spike_linear(s, w).tolist() == [[-7, 5], [0, 0], [-4, 9]]


def test_sdsa_v1_one_step():
    q = np.array([[1, 1, 0], [0, 1, 1]], np.uint8)
    k = np.array([[1, 1, 0], [1, 0, 1]], np.uint8)
    v = np.array([[1, 1, 1], [1, 0, 1]], np.uint8)
    # popcount(k & v) per channel = [2, 1, 1]
    out, kv, vkv = sdsa_v1(q, k, v, np.array([0, 0, -5]), np.array([2, 2, 1]))
    assert kv.tolist() == [1, 0, 0]
    assert vkv.tolist() == [0, 0, -2]
    assert out.tolist() == [[1, 0, 0], [0, 0, 0]]


def test_argmax_ties_go_to_the_lowest_index():
    assert argmax_lowest(np.array([[3, 5, 5, 1], [0, 0, 0, 0], [-1, -2, -1, -3], [1, 2, 3, 3]])).tolist() == [1, 0, 0, 2]


def test_signed_range_and_bits_for():
    assert signed_range(4) == (-8, 7)
    assert signed_range(2) == (-2, 1)
    assert bits_for(-8, 7) == 4 and bits_for(-8, 8) == 5 and bits_for(-9, 0) == 5 and bits_for(0, 0) == 1
    assert bits_for(0, 1) == 2 and bits_for(-1, 0) == 1
    for b in range(1, 40):
        lo, hi = signed_range(b) if b > 1 else (-1, 0)
        assert bits_for(lo, hi) == b


def test_widths_digits_tiny_values():
    # Hand-derived from docs/integer-semantics.md ("Bounds") for digits-tiny.
    w = widths(DIGITS)
    assert w.enc_acc_max == 4 * 31 * 8 == 992
    assert w.requant_enc_max == -((-992 * 2048) >> 8) + 2048 == 9984
    assert w.enc_in_max == 9984 + 512 + 512
    assert w.lin_d_max == 32 * 8 + 2048
    assert w.requant_d_max == 32 * 8 * 8 + 2048
    assert w.requant_h_max == 64 * 8 * 8 + 2048
    assert w.residual_max == 11008 + (4096 + 6144)
    assert w.logit_t_max == 16 * 32 * 8 + 2048
    assert w.logit_max == 4 * w.logit_t_max
    assert w.residual_bits == bits_for(-21248, 21248) == 16
    assert w.membrane_bits(w.residual_max) == 17


def _int64_headroom(cfg):
    w = widths(cfg)
    hidden_acc = cfg.hidden * w.weight_max
    return [w.enc_acc_max * w.mult_max + w.bias_max, hidden_acc * w.mult_max + w.bias_max,
            2 * w.enc_in_max, 2 * w.residual_max, 2 * w.lin_d_max, w.logit_max]


# The largest value of every field at once: its integers would overflow int64, so the config refuses it.
LARGEST_FIELDS = dict(image_shape=(1024, 1024, 1024), pixel_bits=16, patch=64, timesteps=64, dim=4096,
                      blocks=64, mlp_ratio=16, classes=65536, weight_bits=8, bias_bits=24,
                      threshold_bits=24, pos_bits=24, feedback_bits=24, mult_bits=18, requant_shift=0)
# A large config that is still allowed (3 channels instead of 1024).
LARGE_RGB = ModelConfig(**{**LARGEST_FIELDS, "image_shape": (1024, 1024, 3)})


@pytest.mark.parametrize("cfg", [*PRESETS.values(), LARGE_RGB], ids=[*PRESETS, "large-rgb"])
def test_widths_fit_int64(cfg):
    # quant.contract.ACC is int64: every value, LIF membrane sum (v + x, up to 2 * bound) and
    # product (acc * mult) must fit it.
    assert all(v < 2**63 for v in _int64_headroom(cfg))
    assert widths(cfg).largest_intermediate < 2**62


def test_config_refuses_integers_beyond_int64():
    with pytest.raises(ConfigError, match=r"grow to \d+ bits, more than the 62"):
        ModelConfig(**LARGEST_FIELDS)


# The whole network against the plain-Python reference --------------------------------------

REF_CASES = {
    "both-2blocks-2heads": (SMALL.replace(blocks=2, heads=2, stf="both"), None),
    "off-w2": (SMALL.replace(stf="off", weight_bits=2), None),
    "tf-w8-shift0-noblock": (SMALL.replace(stf="tf", weight_bits=8, requant_shift=0, blocks=0, timesteps=4), None),
    "tspe-rgb-3x": (SMALL.replace(image_shape=(4, 6, 2), pixel_bits=3, stf="tspe", mlp_ratio=3, classes=3), None),
    "both-max": (SMALL.replace(timesteps=2), "max"),
    "both-min": (SMALL.replace(timesteps=2, blocks=2), "min"),
    # small thresholds and biases: membranes near zero, so the leak's rounding decides spikes
    "both-small-values": (SMALL.replace(blocks=2, weight_bits=2, timesteps=6), "small"),
}


def ref_artifact(cfg, seed, kind):
    if kind != "small":
        return random_artifact(cfg, seed=seed, extreme=kind)
    art = random_artifact(cfg, seed=seed)
    rng = np.random.default_rng(seed)
    for name, a in art.params.items():
        if name.endswith(".theta"):
            art.params[name] = rng.integers(1, 4, a.shape).astype(np.int32)
        elif name.endswith(".bias") or name == "enc.pos":
            art.params[name] = rng.integers(-3, 3, a.shape).astype(np.int32)
        elif name.endswith(".mult"):
            art.params[name] = rng.integers(1, 2 << cfg.requant_shift >> 4, a.shape).astype(np.int32)
    art.validate()
    return art


@pytest.mark.parametrize("case", sorted(REF_CASES))
def test_golden_equals_plain_python_reference(case):
    cfg, extreme = REF_CASES[case]
    seed = sum(map(ord, case))
    print(f"case={case} seed={seed}")
    art = ref_artifact(cfg, seed, extreme)
    x = images_for(cfg, 4, seed)
    rec = golden.forward(art, x)
    assert set(rec) == set(forward_one(cfg, art.params, x[0].tolist()))
    for b in range(len(x)):
        ref = forward_one(cfg, art.params, x[b].tolist())
        for key, want in ref.items():
            got = rec[key][b].tolist()
            assert got == want, f"{case}: image {b}, record {key!r} differs"


def test_reference_comparison_is_not_vacuous():
    # With the typical random artifact, the reference cases exercise both spike values in every
    # spiking layer of at least one case, so the equality above is about real activity.
    seen = {}
    for case, (cfg, extreme) in REF_CASES.items():
        if extreme:
            continue
        art = random_artifact(cfg, seed=sum(map(ord, case)))
        rec = golden.forward(art, images_for(cfg, 4, 1))
        for layer in golden.spike_layers(cfg):
            kind = layer.split(".")[-1]
            seen.setdefault(kind, set()).update(np.unique(rec[layer]).tolist())
    assert all(v == {0, 1} for v in seen.values()), seen


# Invariants ------------------------------------------------------------------------------------


def test_determinism_and_batch_independence():
    art = random_artifact(DIGITS, seed=7)
    x = images_for(DIGITS, 9, 7)
    a = golden.forward(art, x)
    b = golden.forward(art, x)
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    for i in range(len(x)):
        one = golden.forward(art, x[i : i + 1])
        for k in a:
            assert np.array_equal(one[k][0], a[k][i]), (i, k)
    lean = golden.forward(art, x, record=False)
    assert set(lean) == {"logits_t", "logits", "pred"}
    for k in lean:
        assert np.array_equal(lean[k], a[k])
    pred, logits = golden.predict(art, x, batch=4)
    assert np.array_equal(pred, a["pred"]) and np.array_equal(logits, a["logits"])


def test_predict_empty_batch():
    pred, logits = golden.predict(random_artifact(DIGITS), np.zeros((0, 8, 8), np.uint8))
    assert pred.shape == (0,) and logits.shape == (0, 10)


def test_accepts_hwc_and_hw_images_and_any_integer_dtype():
    art = random_artifact(DIGITS, seed=1)
    x = images_for(DIGITS, 3, 1)
    ref = golden.forward(art, x)["logits"]
    assert np.array_equal(golden.forward(art, x[..., 0])["logits"], ref)
    assert np.array_equal(golden.forward(art, x.astype(np.int32))["logits"], ref)
    assert np.array_equal(golden.forward(art, x.astype(np.uint64))["logits"], ref)


def test_record_shapes_and_dtypes():
    cfg = SMALL.replace(blocks=2, mlp_ratio=3, classes=7)
    B, T, N, D, H, C = 3, cfg.timesteps, cfg.tokens, cfg.dim, cfg.hidden, cfg.classes
    rec = golden.forward(random_artifact(cfg, seed=0), images_for(cfg, B, 0))
    want = {"enc.e": (B, N, D), "u0": (B, T, N, D), "enc": (B, T, N, D), "head": (B, T, N, D),
            "logits_t": (B, T, C), "logits": (B, C), "pred": (B,)}
    for l in range(2):
        p = f"b{l}."
        for k in ("q", "k", "v", "attn", "u_attn", "mlp_in", "u_mlp"):
            want[p + k] = (B, T, N, D)
        want[p + "kv"] = (B, T, D)
        want[p + "fc1"] = (B, T, N, H)
    want["b1.in"] = (B, T, N, D)
    assert {k: v.shape for k, v in rec.items()} == want
    spikes = set(golden.spike_layers(cfg))
    assert spikes == {k for k in want if k not in ("enc.e", "u0", "logits_t", "logits", "pred")
                      and not k.endswith(("u_attn", "u_mlp"))}
    for k, v in rec.items():
        assert np.issubdtype(v.dtype, np.integer), f"{k} has dtype {v.dtype}"
        if k in spikes:
            assert v.dtype == np.uint8 and set(np.unique(v)) <= {0, 1}, k


def test_no_float_in_the_inference_path(monkeypatch):
    # Every array that any numpy ufunc or matmul produces during forward must be integer or bool.
    seen = []
    real_matmul = np.matmul

    def checked_matmul(a, b, *args, **kw):
        out = real_matmul(a, b, *args, **kw)
        seen.append(out.dtype)
        return out

    monkeypatch.setattr(golden.np, "matmul", checked_matmul)
    import quant.contract as contract

    monkeypatch.setattr(contract.np, "matmul", checked_matmul)
    rec = golden.forward(random_artifact(DIGITS, seed=2), images_for(DIGITS, 2, 2))
    assert seen and all(np.issubdtype(d, np.integer) for d in seen), seen
    assert all(not np.issubdtype(v.dtype, np.floating) for v in rec.values())


def test_blocks_zero_reads_the_encoder_input():
    cfg = SMALL.replace(blocks=0)
    art = random_artifact(cfg, seed=3)
    x = images_for(cfg, 3, 3)
    # With no block the head LIF sees the encoder LIF input; same theta -> same spikes.
    art.params["head.theta"] = art.params["enc.theta"].copy()
    rec = golden.forward(art, x)
    assert np.array_equal(rec["head"], rec["enc"])


# Bounds: every value within quant.contract.widths, LIF membranes included --------------------


def _lif_spy(monkeypatch, cfg, w):
    """Wrap golden.lif_step; check |x|, |v| and |v + x| of every call against its layer's bound."""
    order = ["enc"]
    for l in range(cfg.blocks):
        order += (["in"] if l else []) + ["q", "k", "v", "mlp_in", "fc1"]
    order.append("head")
    bound = {"enc": w.enc_in_max, "in": w.residual_max, "q": w.lin_d_max, "k": w.lin_d_max,
             "v": w.lin_d_max, "mlp_in": w.residual_max, "fc1": w.lin_d_max, "head": w.residual_max}
    calls = []
    real = golden.lif_step

    def spy(v, x, theta):
        layer = order[len(calls) % len(order)]
        b = bound[layer]
        calls.append(layer)
        assert np.abs(x).max() <= b, (layer, "input", np.abs(x).max(), b)
        assert np.abs(v).max() <= b, (layer, "membrane", np.abs(v).max(), b)
        assert np.abs(v + x).max() <= 2 * b
        assert bits_for(int((v + x).min()), int((v + x).max())) <= w.membrane_bits(b)
        return real(v, x, theta)

    monkeypatch.setattr(golden, "lif_step", spy)
    return calls


def check_bounds(cfg, art, x):
    w = widths(cfg)
    rec = golden.forward(art, x)
    assert np.abs(rec["enc.e"]).max() <= w.requant_enc_max
    assert np.abs(rec["u0"]).max() <= w.enc_in_max
    for l in range(cfg.blocks):
        before = w.enc_in_max + l * (w.requant_d_max + w.requant_h_max)
        assert np.abs(rec[f"b{l}.u_attn"]).max() <= before + w.requant_d_max
        assert np.abs(rec[f"b{l}.u_mlp"]).max() <= before + w.requant_d_max + w.requant_h_max <= w.residual_max
    assert np.abs(rec["logits_t"]).max() <= w.logit_t_max
    assert np.abs(rec["logits"]).max() <= w.logit_max
    for k in golden.spike_layers(cfg):
        assert set(np.unique(rec[k])) <= {0, 1}
    return rec


BOUND_CONFIGS = {
    "digits-tiny": DIGITS,
    "digits-w2-off": DIGITS.replace(weight_bits=2, stf="off"),
    "digits-w8-tf": DIGITS.replace(weight_bits=8, stf="tf", blocks=2),
    "digits-tspe-shift0": DIGITS.replace(stf="tspe", requant_shift=0, mult_bits=4),
    "fmnist-small": PRESETS["fmnist-small"],
}


@pytest.mark.parametrize("extreme", ["max", "min", None])
@pytest.mark.parametrize("name", sorted(BOUND_CONFIGS))
def test_every_value_within_widths(monkeypatch, name, extreme):
    cfg = BOUND_CONFIGS[name]
    seed = 5
    print(f"config={name} extreme={extreme} seed={seed}")
    calls = _lif_spy(monkeypatch, cfg, widths(cfg))
    art = random_artifact(cfg, seed=seed, extreme=extreme)
    check_bounds(cfg, art, images_for(cfg, 3, seed))
    assert len(calls) == cfg.timesteps * (2 + 5 * cfg.blocks + max(0, cfg.blocks - 1))


def _adversarial(cfg, sign):
    """Every parameter pushed so that values run toward +inf (sign=1) or -inf (sign=-1): pixels
    are >= 0, so a product's sign follows weight * mult; thresholds at their largest."""
    from quant.artifact import Artifact, param_spec

    params = {}
    for name, (shape, lo, hi) in param_spec(cfg).items():
        kind = name.rsplit(".", 1)[1]
        if kind in ("theta", "mult"):
            v = hi
        elif name == "enc.gain" and not cfg.feedback:
            v = 0
        else:
            v = hi if sign > 0 else lo
        params[name] = np.full(shape, v)
    return Artifact(cfg, params)


@pytest.mark.parametrize("sign", [1, -1])
@pytest.mark.parametrize("name", ["digits-tiny", "digits-w8-tf"])
def test_bounds_hold_and_are_nearly_reached(monkeypatch, name, sign):
    cfg = BOUND_CONFIGS[name]
    _lif_spy(monkeypatch, cfg, widths(cfg))
    art = _adversarial(cfg, sign)
    x = np.full((1, *cfg.image_shape), cfg.pixel_max, np.uint8)
    rec = check_bounds(cfg, art, x)
    w = widths(cfg)
    wlo, whi = signed_range(cfg.weight_bits)
    blo, bhi = signed_range(cfg.bias_bits)
    m = signed_range(cfg.mult_bits)[1]
    acc = cfg.patch_dim * cfg.pixel_max * (whi if sign > 0 else wlo)
    e = ((acc * m) >> cfg.requant_shift) + (bhi if sign > 0 else blo)
    assert np.all(rec["enc.e"] == e)
    # The bound is within a few percent of what an artifact can really reach.
    assert abs(e) <= w.requant_enc_max and abs(e) >= 0.85 * w.requant_enc_max


# STF modes -------------------------------------------------------------------------------------


@pytest.mark.parametrize("stf", ["off", "tspe", "tf", "both"])
def test_stf_modes(stf):
    cfg = DIGITS.with_stf(stf)
    art = random_artifact(cfg, seed=13)
    rec = golden.forward(art, images_for(cfg, 5, 13))
    e, u0, s = rec["enc.e"], rec["u0"], rec["enc"]
    pos = art.params["enc.pos"].astype(np.int64)
    gain = art.params["enc.gain"].astype(np.int64)
    for t in range(cfg.timesteps):
        expect = e + (pos[t] if cfg.tspe else pos[0])
        if cfg.feedback and t > 0:
            expect = expect + gain * s[:, t - 1]
        assert np.array_equal(u0[:, t], expect), t
    if stf == "off":
        assert all(np.array_equal(u0[:, t], u0[:, 0]) for t in range(cfg.timesteps))
    if cfg.feedback:
        # the feedback term really acts: somewhere u0 changes by exactly g where S[t-1] fired
        diff = u0[:, 1] - u0[:, 0] - (pos[1] - pos[0] if cfg.tspe else 0)
        assert np.array_equal(diff, gain * s[:, 0]) and np.any(diff != 0)


def test_kv_is_lif_of_popcount_recomputed_with_loops():
    cfg = SMALL.replace(blocks=1)
    art = random_artifact(cfg, seed=17)
    rec = golden.forward(art, images_for(cfg, 3, 17))
    theta = art.params["b0.kv.theta"].tolist()
    k, v, q, kv, attn = (rec["b0." + n] for n in ("k", "v", "q", "kv", "attn"))
    fired = 0
    for b in range(k.shape[0]):
        for c in range(cfg.dim):
            mem = 0
            for t in range(cfg.timesteps):
                count = sum(int(k[b, t, n, c]) & int(v[b, t, n, c]) for n in range(cfg.tokens))
                spike, mem = ref_lif(mem, count, theta[c])
                fired += spike
                assert kv[b, t, c] == spike
                for n in range(cfg.tokens):
                    assert attn[b, t, n, c] == (q[b, t, n, c] & spike)
    assert 0 < fired < k.shape[0] * cfg.dim * cfg.timesteps


def test_network_argmax_tie_goes_to_lowest_class():
    art = random_artifact(DIGITS, seed=0)
    art.params["head.weight"][:] = 0
    bias = np.zeros(10, np.int32)
    bias[[2, 7]] = 5
    art.params["head.bias"] = bias
    rec = golden.forward(art, images_for(DIGITS, 4, 0))
    assert rec["pred"].tolist() == [2, 2, 2, 2]
    assert np.all(rec["logits"][:, 2] == rec["logits"][:, 7])


# Image checks ----------------------------------------------------------------------------------


def test_check_images_errors():
    cfg = DIGITS
    with pytest.raises(ValueError, match=r"shape \[batch, 8, 8\] or \[batch, 8, 8, 1\] for config digits-tiny; got \(2, 8, 7\)"):
        golden.check_images(cfg, np.zeros((2, 8, 7), np.uint8))
    with pytest.raises(ValueError, match=r"got \(8, 8\)"):
        golden.check_images(cfg, np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match=r"got \(1, 8, 8, 3\)"):
        golden.check_images(cfg, np.zeros((1, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match=r"integers in \[0, 31\] \(pixel_bits=5\); got dtype float32"):
        golden.check_images(cfg, np.zeros((1, 8, 8), np.float32))
    with pytest.raises(ValueError, match="got dtype bool"):
        golden.check_images(cfg, np.zeros((1, 8, 8), bool))
    x = np.zeros((2, 8, 8), np.int16)
    x[1, 3, 3] = 32
    with pytest.raises(ValueError, match=r"pixel values must be in \[0, 31\] for pixel_bits=5; got \[0, 32\]"):
        golden.check_images(cfg, x)
    x[1, 3, 3] = -1
    with pytest.raises(ValueError, match=r"got \[-1, 0\]"):
        golden.check_images(cfg, x)
    assert golden.check_images(cfg, np.full((1, 8, 8), 31, np.uint8)).dtype == np.int64


def test_check_images_message_for_multichannel_config():
    rgb = DIGITS.replace(image_shape=(4, 4, 3))
    with pytest.raises(ValueError, match=r"shape \[batch, 4, 4, 3\] for config"):
        golden.check_images(rgb, np.zeros((1, 4, 4), np.uint8))


def test_patchify_order():
    cfg = ModelConfig(image_shape=(4, 4, 2), patch=2, dim=4)
    img = np.arange(32).reshape(1, 4, 4, 2) % 32
    p = golden.patchify(cfg.replace(pixel_bits=5), img)
    # token 1 = grid row 0, column 1: pixels (0,2),(0,3),(1,2),(1,3), channels interleaved
    assert p[0, 1].tolist() == [4, 5, 6, 7, 12, 13, 14, 15]
    assert p[0, 2].tolist() == [16, 17, 18, 19, 24, 25, 26, 27]


# docs/integer-semantics.md stays in step with the code ----------------------------------------


def test_doc_bounds_table_matches_widths():
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "integer-semantics.md").read_text()
    rows = {}
    for line in doc.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`") and cells[1].isdigit() and cells[2].isdigit():
            rows[cells[0].strip("`")] = (int(cells[1]), int(cells[2]))
    assert len(rows) == 14, sorted(rows)
    for i, name in enumerate(("digits-tiny", "fmnist-small")):
        w = widths(PRESETS[name])
        derived = {
            "residual_bits": w.residual_bits,
            "membrane_bits(residual_max)": w.membrane_bits(w.residual_max),
            "membrane_bits(lin_d_max)": w.membrane_bits(w.lin_d_max),
            "logit_bits": w.logit_bits,
        }
        for key, values in rows.items():
            want = derived[key] if key in derived else getattr(w, key)
            assert values[i] == want, f"docs/integer-semantics.md says {key} = {values[i]} for {name}; widths() gives {want}"
