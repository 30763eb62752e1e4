"""The PyTorch model computes exactly the golden model's integers (every spike, every logit)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model.config import PRESETS, ConfigError, ModelConfig
from model.lif import floor_ste, lif_step, round_ste, spike
from model.network import STFNet, patchify, run
from quant import contract, golden
from quant.export import model_to_artifact

STF = ("off", "tspe", "tf", "both")
# Small but complete: 2 blocks (so block 1's input LIF exists), 4 tokens, T = 3.
TINY = ModelConfig(name="tiny", image_shape=(8, 8, 1), pixel_bits=5, patch=4, timesteps=3, dim=8,
                   blocks=2, mlp_ratio=2, classes=10)


def _images(cfg: ModelConfig, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, cfg.pixel_max + 1, (n, *cfg.image_shape[:2]), dtype=np.int64)


def _model(cfg: ModelConfig, seed: int, images: np.ndarray) -> STFNet:
    torch.manual_seed(seed)
    m = STFNet(cfg)
    m.init_thresholds(torch.from_numpy(images))
    with torch.no_grad():  # exercise every term: feedback, nonzero biases
        if m.fb_gain is not None:
            m.fb_gain.normal_(0, 2.0)
        m.enc_bias.normal_(0, 0.5)
        for b in m.blocks:
            b.o_bias.normal_(0, 0.5)
            b.fc2_bias.normal_(0, 0.5)
            b.q_bias.normal_(0, 0.05)
        m.head_bias.normal_(0, 0.2)
    return m


def _assert_exact(m: STFNet, images: np.ndarray) -> dict:
    art = model_to_artifact(m)
    g = golden.forward(art, images)
    with torch.no_grad():
        logits, out = m(torch.from_numpy(images), record=True)
    for key in [*golden.spike_layers(m.cfg), "u0", "enc.e", "logits_t", "logits"]:
        mine = out[key].numpy()
        assert np.all(mine == np.round(mine)), key
        np.testing.assert_array_equal(mine.astype(np.int64), g[key], err_msg=key)
    # the per-tensor positive head scale keeps the argmax of the float logits
    np.testing.assert_array_equal(np.argmax(logits.numpy(), -1), g["pred"])
    return g


@pytest.mark.parametrize("stf", STF)
def test_random_model_equals_golden(stf):
    seed = 11
    print("seed", seed)
    cfg = TINY.with_stf(stf)
    x = _images(cfg, 64, seed)
    g = _assert_exact(_model(cfg, seed, x), x)
    # the comparison is not vacuous: layers spike, but not everywhere
    for key in golden.spike_layers(cfg):
        assert 0 < g[key].mean() < 1, key


def test_token_readout_model_equals_golden():
    seed = 12
    print("seed", seed)
    cfg = TINY.replace(readout="token")
    x = _images(cfg, 64, seed)
    m = _model(cfg, seed, x)
    assert tuple(m.head.int_weight()[0].shape) == (cfg.tokens * cfg.dim, cfg.classes)
    g = _assert_exact(m, x)
    assert 0 < g["head"].mean() < 1
    # the head weights are per token: the pooled readout of the same spikes gives other logits
    art = model_to_artifact(m)
    W = art.params["head.weight"].reshape(cfg.tokens, cfg.dim, cfg.classes)
    assert not np.array_equal(W[0], W[1])


@pytest.mark.parametrize("stf", STF)
def test_trained_model_equals_golden(stf):
    seed = 5
    print("seed", seed)
    cfg = TINY.with_stf(stf)
    x = _images(cfg, 64, seed)
    y = torch.from_numpy(np.random.default_rng(seed).integers(0, 10, 64))
    m = _model(cfg, seed, x)
    opt = torch.optim.Adam(m.parameters(), lr=3e-2)
    before = {k: v.detach().clone() for k, v in m.integer_params().items()}
    for _ in range(5):
        logits, _ = m(torch.from_numpy(x))
        loss = torch.nn.functional.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = m.integer_params()
    changed = [k for k in before if not torch.equal(before[k], after[k].detach())]
    assert len(changed) >= 10, changed  # the training steps moved the integers
    _assert_exact(m, x)


def test_digits_preset_equals_golden_on_digits():
    from model.data import load_dataset

    cfg = PRESETS["digits-tiny"]
    x, _ = load_dataset("digits", "test")
    x = x[:100].astype(np.int64)
    _assert_exact(_model(cfg, 3, x), x)


def test_patchify_matches_golden():
    cfg = ModelConfig(name="p", image_shape=(4, 6, 2), patch=2, dim=4)
    x = _images(ModelConfig(name="q", image_shape=(4, 6, 1), patch=2), 3, 1)
    x = np.stack([x, 31 - x], axis=-1)
    np.testing.assert_array_equal(patchify(cfg, torch.from_numpy(x)).numpy(), golden.patchify(cfg, x))


def test_lif_forward_equals_contract():
    seed = 7
    print("seed", seed)
    rng = np.random.default_rng(seed)
    v = rng.integers(-300, 300, (50, 16))
    x = rng.integers(-300, 300, (50, 16))
    theta = rng.integers(1, 200, (16,))
    s_ref, v_ref = contract.lif_step(v, x, theta)
    s, v2 = lif_step(*(torch.tensor(a, dtype=torch.float32) for a in (v, x, theta)))
    np.testing.assert_array_equal(s.numpy().astype(np.int64), s_ref)
    np.testing.assert_array_equal(v2.numpy().astype(np.int64), v_ref)
    # boundary: w == theta spikes, w == theta - 1 does not; negative halving floors
    s, v2 = lif_step(torch.tensor([0.0, 0.0, 0.0]), torch.tensor([5.0, 4.0, -3.0]), torch.tensor(5.0))
    assert s.tolist() == [1.0, 0.0, 0.0] and v2.tolist() == [0.0, 2.0, -2.0]


def test_surrogate_gradient():
    w = torch.tensor([9.0, 10.0, 11.0, 100.0], requires_grad=True)
    theta = torch.tensor(10.0, requires_grad=True)
    s = spike(w, theta)
    assert s.tolist() == [0.0, 1.0, 1.0, 1.0]
    s.sum().backward()
    # sigmoid derivative of alpha * (w - theta) / theta, alpha = 4: peak alpha / 4 / theta at w = theta
    assert w.grad[1].item() == pytest.approx(0.1)
    assert 0 < w.grad[0].item() < 0.1 and 0 < w.grad[2].item() < 0.1
    assert w.grad[3].item() < 1e-6
    assert theta.grad.item() < 0  # a higher threshold means fewer spikes


def test_ste_roundings():
    x = torch.tensor([-1.5, -0.5, 0.4, 2.5, -2.7], requires_grad=True)
    assert round_ste(x).tolist() == [-2.0, -0.0, 0.0, 2.0, -3.0]
    assert floor_ste(x).tolist() == [-2.0, -1.0, 0.0, 2.0, -3.0]
    (round_ste(x) + floor_ste(x)).sum().backward()
    assert x.grad.tolist() == [2.0] * 5


def test_gradients_reach_every_parameter():
    cfg = TINY
    x = _images(cfg, 32, 2)
    m = _model(cfg, 2, x)
    logits, _ = m(torch.from_numpy(x))
    torch.nn.functional.cross_entropy(logits, torch.arange(32) % 10).backward()
    dead = [n for n, p in m.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert dead == []


def test_threshold_init_rates():
    from model.data import load_dataset

    x, _ = load_dataset("digits", "train")
    torch.manual_seed(0)
    m = STFNet(PRESETS["digits-tiny"])
    rates = m.init_thresholds(torch.from_numpy(x[:256].astype(np.int64)), rate=0.2)
    for k, r in rates.items():
        if k.endswith("attn"):  # q AND kv: the product of two rates
            assert 0.005 < r < 0.2, (k, r)
        else:
            assert 0.08 < r < 0.35, (k, r)


def test_config_too_wide_for_float32_is_refused():
    cfg = ModelConfig(name="wide", bias_bits=24, threshold_bits=24)
    with pytest.raises(ConfigError, match="float32"):
        STFNet(cfg)


def test_run_accepts_artifact_integers():
    """`run` on a random artifact's integers (not from a model) also equals the golden model."""
    from quant.artifact import random_artifact

    cfg = TINY
    art = random_artifact(cfg, seed=4)
    x = _images(cfg, 16, 4)
    P = {k: torch.tensor(v, dtype=torch.float32) for k, v in art.params.items()}
    out = run(cfg, P, torch.from_numpy(x), record=True)
    g = golden.forward(art, x)
    for key in golden.spike_layers(cfg) + ["logits"]:
        np.testing.assert_array_equal(out[key].numpy().astype(np.int64), g[key], err_msg=key)
