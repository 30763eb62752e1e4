"""The integer contract: the primitive operations and the bit width of every value.

docs/integer-semantics.md is the prose form of this module. Every function here works on
numpy integer arrays and uses integer arithmetic only; the golden model (`quant.golden`) is
built from them, the PyTorch model reproduces them with integer-valued float tensors, and the
RTL derives its register widths from `Widths`.

Rounding: every right shift is arithmetic (floor toward minus infinity), as numpy's `>>` on
signed integers and Verilog's `>>>` on signed values.
"""

from __future__ import annotations

from dataclasses import dataclass

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # only an annotation; a real import would be circular (model.config's presets call widths())
    from model.config import ModelConfig

__all__ = [
    "lif_step",
    "spike_linear",
    "requantize",
    "sdsa_v1",
    "signed_range",
    "bits_for",
    "Widths",
    "widths",
    "argmax_lowest",
]

ACC = np.int64  # the golden model's integer type; every bound below is far inside it


def signed_range(bits: int) -> tuple[int, int]:
    """Closed range of a two's complement integer of `bits` bits."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def bits_for(lo: int, hi: int) -> int:
    """Fewest two's complement bits that hold every integer in [lo, hi]."""
    n = 1
    while not (-(1 << (n - 1)) <= lo and hi <= (1 << (n - 1)) - 1):
        n += 1
    return n


def lif_step(v: np.ndarray, x: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One timestep of the integer LIF (tau = 2, hard reset to 0).

    ``w = v + x``; ``s = w >= theta``; ``v' = 0 if s else w >> 1`` (floor).
    Returns ``(s, v')`` with ``s`` as uint8. ``theta`` broadcasts over the last axis (channels).
    Equals SpikingJelly's LIFNode(tau=2, decay_input=False, v_reset=0) with the membrane stored
    halved and the halving floored (see docs/integer-semantics.md, section LIF).
    """
    w = v + x
    s = w >= theta
    return s.astype(np.uint8), np.where(s, 0, w >> 1)


def spike_linear(s: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``acc[..., j] = sum over i with s[..., i] = 1 of weight[i, j]``: adds only, no multiply."""
    return np.matmul(s.astype(ACC), weight.astype(ACC))


def requantize(acc: np.ndarray, mult: np.ndarray, shift: int, bias: np.ndarray) -> np.ndarray:
    """Bring an accumulator into residual-stream units: ``((acc * mult) >> shift) + bias``."""
    return ((acc.astype(ACC) * mult.astype(ACC)) >> shift) + bias.astype(ACC)


def sdsa_v1(q: np.ndarray, k: np.ndarray, v: np.ndarray, v_kv: np.ndarray, theta_kv: np.ndarray):
    """Spike-driven self-attention, V1 form, one timestep.

    ``q, k, v``: spikes [..., N, D]; ``v_kv``: the kv LIF membrane [..., D].
    ``kv[c] = LIF(popcount over tokens n of (k[n, c] AND v[n, c]))``; ``out[n, c] = q[n, c] AND kv[c]``.
    Returns ``(out, kv, v_kv')``.
    """
    count = np.sum(k & v, axis=-2, dtype=ACC)
    kv, v_kv = lif_step(v_kv, count, theta_kv)
    return q & kv[..., None, :], kv, v_kv


def argmax_lowest(logits: np.ndarray) -> np.ndarray:
    """Argmax over the last axis; a tie goes to the lowest class index (numpy's rule)."""
    return np.argmax(logits, axis=-1)


@dataclass(frozen=True)
class Widths:
    """Worst-case magnitude bounds and register widths (bits, signed) of every value.

    Derived from the config alone, so they hold for *every* artifact valid for it; the proofs
    are in docs/integer-semantics.md ("Bounds"). ``*_max`` are bounds on the absolute value.
    """

    weight_max: int      # |W| <= 2^(weight_bits-1)
    bias_max: int
    theta_max: int
    pos_max: int
    gain_max: int
    mult_max: int
    enc_acc_max: int     # |sum_k x_k W_kc|
    requant_enc_max: int # |requant(enc acc)| including bias
    enc_in_max: int      # |I| = |E + P + g*s|
    lin_d_max: int       # |spike_linear over D inputs + bias|
    lin_h_max: int       # |spike_linear over H inputs + bias|
    requant_d_max: int   # |requant(acc over D inputs)|
    requant_h_max: int   # |requant(acc over H inputs)|
    residual_max: int    # |U| anywhere in the stream
    logit_t_max: int     # |logits at one timestep|
    logit_max: int       # |logits summed over T|

    @property
    def residual_bits(self) -> int:
        return bits_for(-self.residual_max, self.residual_max)

    def membrane_bits(self, input_max: int) -> int:
        """Bits of the LIF's ``w = v + x`` when |x| <= input_max (then |v| <= input_max)."""
        return bits_for(-2 * input_max, 2 * input_max)

    @property
    def largest_intermediate(self) -> int:
        """The largest magnitude the golden model ever forms: products acc*M, LIF sums v + x."""
        return max(
            self.enc_acc_max * self.mult_max, (self.lin_h_max - self.bias_max) * self.mult_max,
            2 * self.enc_in_max, 2 * self.residual_max, 2 * self.lin_h_max, 2 * self.lin_d_max,
            self.logit_max,
        )

    @property
    def logit_bits(self) -> int:
        return bits_for(-self.logit_max, self.logit_max)


def widths(cfg: ModelConfig) -> Widths:
    wmax = 1 << (cfg.weight_bits - 1)
    bmax = 1 << (cfg.bias_bits - 1)
    tmax = (1 << (cfg.threshold_bits - 1)) - 1
    pmax = 1 << (cfg.pos_bits - 1)
    gmax = 1 << (cfg.feedback_bits - 1)
    mmax = 1 << (cfg.mult_bits - 1)
    sh = cfg.requant_shift

    def rq(acc_max: int) -> int:
        # floor((a*m) / 2^sh) for |a*m| <= A lies in [-ceil(A/2^sh), floor(A/2^sh)]
        return -((-acc_max * mmax) >> sh) + bmax

    enc_acc = cfg.patch_dim * cfg.pixel_max * wmax
    rq_enc = rq(enc_acc)
    enc_in = rq_enc + pmax + gmax
    acc_d = cfg.dim * wmax
    acc_h = cfg.hidden * wmax
    rq_d = rq(acc_d)
    rq_h = rq(acc_h)
    residual = enc_in + cfg.blocks * (rq_d + rq_h)
    logit_t = cfg.tokens * cfg.dim * wmax + bmax
    return Widths(
        weight_max=wmax, bias_max=bmax, theta_max=tmax, pos_max=pmax, gain_max=gmax,
        mult_max=mmax, enc_acc_max=enc_acc, requant_enc_max=rq_enc, enc_in_max=enc_in,
        lin_d_max=acc_d + bmax, lin_h_max=acc_h + bmax, requant_d_max=rq_d,
        requant_h_max=rq_h, residual_max=residual, logit_t_max=logit_t,
        logit_max=cfg.timesteps * logit_t,
    )
