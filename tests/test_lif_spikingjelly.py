"""The claim of docs/integer-semantics.md (section LIF): the contract's integer LIF equals
SpikingJelly's ``LIFNode(tau=2., decay_input=False, v_reset=0.)`` (hard reset, Heaviside
``H >= V_th``) with the membrane stored halved and floored:

* spikes are identical at every step for integer inputs and integer thresholds >= 1, whenever
  SpikingJelly's float arithmetic is exact (always in exact arithmetic; in a float with p
  mantissa bits when bits(max|x|) + T + 1 <= p);
* the contract's membrane v[t] equals floor(V[t] / 2), and w[t] = v[t-1] + x[t] equals floor(H[t]).

SpikingJelly is not a dependency: its single-step equations (activation_based/neuron.py,
``LIFNode.neuronal_charge_no_decay_input_reset0`` / ``..._decay_input_reset0``,
``BaseNode.neuronal_fire`` = heaviside(v - v_threshold) with heaviside(0) = 1, and
``jit_hard_reset`` v = (1 - s) * v + s * v_reset) are reimplemented below in numpy floats.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from quant.contract import lif_step


def sj_lif(x_seq, v_threshold, tau=2.0, decay_input=False, v_reset=0.0, dtype=np.float64):
    """SpikingJelly LIFNode, single-step mode, run over a sequence [T, ...]; returns (S, H, V)."""
    x_seq = np.asarray(x_seq, dtype=dtype)
    th = np.asarray(v_threshold, dtype=dtype)
    tau = dtype(tau)
    v = np.zeros(x_seq.shape[1:], dtype)  # v_reset (0) before the first step, as SpikingJelly's reset()
    spikes, charged, after = [], [], []
    for x in x_seq:
        if decay_input:
            h = v + (x - v) / tau  # neuronal_charge_decay_input_reset0
        else:
            h = v * (dtype(1.0) - dtype(1.0) / tau) + x  # neuronal_charge_no_decay_input_reset0
        s = (h - th >= 0).astype(dtype)  # surrogate heaviside forward: (x >= 0)
        if v_reset is None:
            v = h - s * th  # soft reset
        else:
            v = (dtype(1.0) - s) * h + s * dtype(v_reset)  # jit_hard_reset
        spikes.append(s)
        charged.append(h)
        after.append(v)
    return np.array(spikes), np.array(charged), np.array(after)


def contract_lif(x_seq, theta):
    v = np.zeros(np.shape(x_seq)[1:], np.int64)
    spikes, ws, vs = [], [], []
    for x in np.asarray(x_seq, np.int64):
        ws.append(v + x)
        s, v = lif_step(v, x, theta)
        spikes.append(s)
        vs.append(v)
    return np.array(spikes), np.array(ws), np.array(vs)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("scale", [4, 60, 3000])
def test_spikes_equal_spikingjelly_float64(seed, scale):
    print(f"seed={seed} scale={scale}")
    rng = np.random.default_rng(seed)
    T, n = 16, 512
    x = rng.integers(-scale, scale + 1, (T, n))
    theta = rng.integers(1, max(2, scale), n)
    s_sj, h_sj, v_sj = sj_lif(x, theta)
    s, w, v = contract_lif(x, theta)
    assert np.array_equal(s, s_sj.astype(np.uint8))
    assert np.array_equal(w, np.floor(h_sj).astype(np.int64))  # w[t] = floor(H[t])
    assert np.array_equal(v, np.floor(v_sj / 2).astype(np.int64))  # stored halved, floored
    assert 0 < s.mean() < 1


def test_spikes_equal_spikingjelly_in_float32_within_its_exact_range():
    # bits(max|x|) + T + 1 <= 24: float32 (SpikingJelly's default dtype) is exact here.
    seed = 5
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    T = 8
    xmax = 2 ** (24 - T - 2)
    x = rng.integers(-xmax, xmax + 1, (T, 4096))
    theta = rng.integers(1, xmax, 4096)
    s_sj, h_sj, _ = sj_lif(x, theta, dtype=np.float32)
    s, w, _ = contract_lif(x, theta)
    assert np.array_equal(s, s_sj.astype(np.uint8))
    assert np.array_equal(w, np.floor(h_sj.astype(np.float64)).astype(np.int64))


def test_exact_rational_argument():
    # The proof in the doc: w[t] = floor(H[t]) by induction (floor(floor(y) / 2) = floor(y / 2)),
    # and for integer theta, H >= theta iff floor(H) >= theta. Checked with exact rationals.
    seed = 9
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    for _ in range(200):
        T = int(rng.integers(1, 30))
        x = rng.integers(-40, 41, T).tolist()
        theta = int(rng.integers(1, 50))
        V, v = Fraction(0), 0
        for t in range(T):
            H = V / 2 + x[t]
            w = v + x[t]
            assert w == (H.numerator // H.denominator)
            assert (H >= theta) == (w >= theta)
            s, v_arr = lif_step(np.array([v]), np.array([x[t]]), np.array([theta]))
            V = Fraction(0) if H >= theta else H
            v = int(v_arr[0])
            assert s[0] == (H >= theta)
            assert v == (V / 2).numerator // (V / 2).denominator


def test_documented_difference_the_stored_membrane_is_floored():
    # x = [3, 0, 0]: SpikingJelly's V = 3, 1.5, 0.75; the contract keeps floor(V/2) = 1, 0, 0.
    # The membranes differ, the spikes cannot (threshold integer): no spike either way.
    _, h, V = sj_lif([[3], [0], [0]], [4])
    s, w, v = contract_lif([[3], [0], [0]], [4])
    assert h[:, 0].tolist() == [3.0, 1.5, 0.75]
    assert w[:, 0].tolist() == [3, 1, 0]
    assert v[:, 0].tolist() == [1, 0, 0]
    assert V[:, 0].tolist() == [3.0, 1.5, 0.75]
    # a negative example: floor, not truncation toward zero
    _, h, _ = sj_lif([[-3], [1]], [10])
    _, w, _ = contract_lif([[-3], [1]], [10])
    assert h[1, 0] == -0.5 and w[1, 0] == -1


def test_documented_difference_float32_rounding_can_add_a_spike():
    # Outside float32's exact range SpikingJelly (float32) rounds H = 8388606.75 to 8388607.0
    # (round half to even at ulp 0.5) and fires at theta = 2^23 - 1 (threshold_bits = 24 allows
    # it); the exact value, the integer contract and float64 SpikingJelly do not fire.
    x = [[1], [1], [8388606]]
    theta = [8388607]
    s32, h32, _ = sj_lif(x, theta, dtype=np.float32)
    s64, h64, _ = sj_lif(x, theta, dtype=np.float64)
    s, w, _ = contract_lif(x, theta)
    assert h64[2, 0] == 8388606.75 and h32[2, 0] == np.float32(8388607.0)
    assert s32[:, 0].tolist() == [0, 0, 1]
    assert s64[:, 0].tolist() == [0, 0, 0]
    assert s[:, 0].tolist() == [0, 0, 0] and w[2, 0] == 8388606


def test_the_other_variants_differ():
    # The claim names one variant; the neighbours give other spikes on a simple input.
    x = [[3], [0], [2]]
    theta = [2]
    s, _, _ = contract_lif(x, theta)
    assert s[:, 0].tolist() == [1, 0, 1]
    s_di, _, _ = sj_lif(x, theta, decay_input=True)  # H = (V + X) / 2: input halved too
    assert s_di[:, 0].tolist() == [0, 0, 0]  # H = 1.5, 0.75, 1.375
    s_soft, _, _ = sj_lif([[5], [1]], theta, v_reset=None)  # soft reset keeps V = 5 - 2 = 3
    s_hard, _, _ = contract_lif([[5], [1]], theta)
    assert s_soft[:, 0].tolist() == [1, 1] and s_hard[:, 0].tolist() == [1, 0]


def test_threshold_boundary_heaviside_at_zero_fires():
    # SpikingJelly's heaviside(0) = 1, the contract's w >= theta: both fire at H == theta exactly.
    for theta in (1, 2, 5):
        s_sj, _, _ = sj_lif([[theta]], [theta])
        s, _, _ = contract_lif([[theta]], [theta])
        assert s_sj[0, 0] == 1 and s[0, 0] == 1
        s_sj, _, _ = sj_lif([[theta - 1]], [theta])
        s, _, _ = contract_lif([[theta - 1]], [theta])
        assert s_sj[0, 0] == 0 and s[0, 0] == 0
