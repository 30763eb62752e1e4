"""The STF spiking transformer in PyTorch, computing exactly the integers of `quant.golden`.

Two layers of code:

* `run(cfg, P, images)`: the integer network of `quant.golden.forward`, written with torch ops
  on integer-valued float tensors ``P`` (named as in `quant.artifact.param_spec`, weights
  ``[in, out]``). Rounding is straight-through and spikes use the surrogate gradient of
  `model.lif`, so the same code trains and reproduces the golden model bit for bit.
* `STFNet`: the trainable parameters (Brevitas weights, folded norms in float units) and
  `STFNet.integer_params`, which turns them into the integers ``P``; `quant.export` writes
  exactly those integers into the artifact.

Exactness: every value is an integer below 2^24 in magnitude (checked against
`quant.contract.widths` at construction), so float32 adds and matmuls are exact; the one
product that can exceed 2^24, ``acc * M`` of a requantization, is done in float64 (exact below
2^53). On CUDA, TF32 matmuls would round and are switched off by `model.train`.

Units of the trainable parameters (docs/training.md, "Folded norms"):

* residual stream (float value = integer * 2^-residual_frac_bits): encoder bias, positions,
  feedback gains, thresholds of LIFs that read the stream, biases after a requantization;
* spike-input linears (q, k, v, fc1): bias and threshold in the float units of the layer's
  output, ``acc * s_w[c]``, so integer = float / s_w[c] with the current weight scale;
* the kv attention LIF counts spikes: threshold in units of ``kv_unit`` = max(1, N / 4) counts;
* requantization multipliers: ``M = round(g * s_in * s_w * 2^(frac + shift))`` with a learned
  per-channel gain g (the folded norm's scale, init 1) and s_in = 1 / pixel_max for pixels,
  1 for spikes;
* the head: bias in logit units (integer = float / s_head, per-tensor scale); the loss reads
  ``logits_int * s_head * exp(log_temp) / T``.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from model.config import ConfigError, ModelConfig
from model.layers import IntLinear, to_int
from model.lif import floor_ste, lif_step
from quant.artifact import param_spec
from quant.contract import widths

__all__ = ["STFNet", "run", "patchify", "spike_layers", "firing_rates"]

F32_EXACT = 1 << 24

Calib = Callable[[str, torch.Tensor], torch.Tensor]


def spike_layers(cfg: ModelConfig) -> list[str]:
    from quant.golden import spike_layers as names

    return names(cfg)


def patchify(cfg: ModelConfig, images: torch.Tensor) -> torch.Tensor:
    """[B, H, W(, C)] integer pixels -> float [B, N, K], in `quant.golden.patchify`'s order."""
    x = images
    h, w, c = cfg.image_shape
    if x.dim() == 3:
        x = x.unsqueeze(-1)
    if tuple(x.shape[1:]) != (h, w, c):
        raise ValueError(f"images must have shape [batch, {h}, {w}] for config {cfg.name}; got {tuple(images.shape)}")
    b, p = x.shape[0], cfg.patch
    gh, gw = cfg.grid
    x = x.reshape(b, gh, p, gw, p, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, gh * gw, cfg.patch_dim).to(torch.float32)


def run(cfg: ModelConfig, P: dict[str, torch.Tensor], images: torch.Tensor, record: bool = False,
        calib: Calib | None = None) -> dict[str, torch.Tensor]:
    """The integer network of `quant.golden.forward` on torch tensors (differentiable).

    ``calib(theta_name, w)``, when given, is called for every LIF at t = 0 with its input
    ``w = v + x`` and returns the threshold to use (and to keep): threshold initialisation.
    Returns ``logits_t`` [B, T, C], ``logits`` [B, C] and, with ``record``, the spike record
    under the golden model's keys (float 0./1. tensors).
    """
    x = patchify(cfg, images)
    B, T, N, D = x.shape[0], cfg.timesteps, cfg.tokens, cfg.dim
    two_sh = float(1 << cfg.requant_shift)
    rec: dict[str, list] = {}

    def put(key, value):
        if record:
            rec.setdefault(key, []).append(value)

    def requant(acc, mult, bias):
        prod = acc.to(torch.float64) * mult.to(torch.float64)
        return floor_ste(prod / two_sh).to(acc.dtype) + bias

    def lif(t, v, inp, theta_name):
        theta = P[theta_name]
        if calib is not None and t == 0:
            theta = calib(theta_name, (v + inp).detach())
        return lif_step(v, inp, theta)

    e = requant(x @ P["enc.weight"], P["enc.mult"], P["enc.bias"])
    zeros = x.new_zeros((B, N, D))
    v_enc, s_enc = zeros, zeros
    state = [dict(v_in=zeros, q=zeros, k=zeros, v=zeros, kv=x.new_zeros((B, D)), mlp_in=zeros,
                  fc1=x.new_zeros((B, N, cfg.hidden))) for _ in range(cfg.blocks)]
    v_head = zeros
    logits_t = []
    for t in range(T):
        u = e + P["enc.pos"][t] + P["enc.gain"] * s_enc
        s_enc, v_enc = lif(t, v_enc, u, "enc.theta")
        put("u0", u)
        put("enc", s_enc)
        for l, m in enumerate(state):
            p = f"b{l}."
            if l == 0:
                s = s_enc
            else:
                s, m["v_in"] = lif(t, m["v_in"], u, p + "in.theta")
                put(p + "in", s)
            qkv = {}
            for name in ("q", "k", "v"):
                acc = s @ P[p + name + ".weight"] + P[p + name + ".bias"]
                qkv[name], m[name] = lif(t, m[name], acc, p + name + ".theta")
                put(p + name, qkv[name])
            count = (qkv["k"] * qkv["v"]).sum(dim=1)
            kv, m["kv"] = lif(t, m["kv"], count, p + "kv.theta")
            attn = qkv["q"] * kv.unsqueeze(1)
            put(p + "kv", kv)
            put(p + "attn", attn)
            u = u + requant(attn @ P[p + "o.weight"], P[p + "o.mult"], P[p + "o.bias"])
            put(p + "u_attn", u)
            s2, m["mlp_in"] = lif(t, m["mlp_in"], u, p + "mlp_in.theta")
            put(p + "mlp_in", s2)
            hid, m["fc1"] = lif(t, m["fc1"], s2 @ P[p + "fc1.weight"] + P[p + "fc1.bias"], p + "fc1.theta")
            put(p + "fc1", hid)
            u = u + requant(hid @ P[p + "fc2.weight"], P[p + "fc2.mult"], P[p + "fc2.bias"])
            put(p + "u_mlp", u)
        s_head, v_head = lif(t, v_head, u, "head.theta")
        put("head", s_head)
        feats = s_head.reshape(B, N * D) if cfg.readout == "token" else s_head.sum(dim=1)
        logits_t.append(feats @ P["head.weight"] + P["head.bias"])
    out = {k: torch.stack(v, dim=1) for k, v in rec.items()}
    if record:
        out["enc.e"] = e
    out["logits_t"] = torch.stack(logits_t, dim=1)
    out["logits"] = out["logits_t"].sum(dim=1)
    return out


def firing_rates(cfg: ModelConfig, record: dict[str, torch.Tensor]) -> dict[str, float]:
    """Mean spike rate of every spiking layer of a record."""
    return {k: float(record[k].float().mean()) for k in spike_layers(cfg) if k in record}


class _Block(nn.Module):
    def __init__(self, cfg: ModelConfig, first: bool):
        super().__init__()
        D, H, wb = cfg.dim, cfg.hidden, cfg.weight_bits
        one = lambda n: nn.Parameter(torch.ones(n))  # noqa: E731
        zero = lambda n: nn.Parameter(torch.zeros(n))  # noqa: E731
        if not first:
            self.in_theta = one(D)
        for name in ("q", "k", "v"):
            setattr(self, name, IntLinear(D, D, wb))
            setattr(self, name + "_bias", zero(D))
            setattr(self, name + "_theta", nn.Parameter(torch.full((D,), 0.1)))
        self.kv_theta = one(D)
        self.o = IntLinear(D, D, wb)
        self.o_gain, self.o_bias = one(D), zero(D)
        self.mlp_in_theta = one(D)
        self.fc1 = IntLinear(D, H, wb)
        self.fc1_bias, self.fc1_theta = zero(H), nn.Parameter(torch.full((H,), 0.1))
        self.fc2 = IntLinear(H, D, wb)
        self.fc2_gain, self.fc2_bias = one(D), zero(D)


class STFNet(nn.Module):
    """The trainable spiking transformer of ``cfg`` (see the module doc for the units)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        w = widths(cfg)
        worst = max(w.residual_max * 2, w.enc_acc_max, w.lin_h_max * 2, w.logit_max, 2 * w.theta_max)
        if worst >= F32_EXACT:
            raise ConfigError(
                f"config {cfg.name}: integers up to {worst} do not fit float32 exactly (< 2^24); "
                "lower bias_bits / threshold_bits / pos_bits or the shapes"
            )
        self.cfg = cfg
        T, N, D, K, C = cfg.timesteps, cfg.tokens, cfg.dim, cfg.patch_dim, cfg.classes
        self.res_unit = float(1 << cfg.residual_frac_bits)
        self.kv_unit = float(max(1, N // 4))
        self.enc = IntLinear(K, D, cfg.weight_bits)
        self.enc_gain = nn.Parameter(torch.ones(D))
        self.enc_bias = nn.Parameter(torch.zeros(D))
        self.pos = nn.Parameter(torch.zeros(T if cfg.tspe else 1, N, D))
        self.fb_gain = nn.Parameter(torch.zeros(D)) if cfg.feedback else None
        self.enc_theta = nn.Parameter(torch.ones(D))
        self.blocks = nn.ModuleList(_Block(cfg, first=(l == 0)) for l in range(cfg.blocks))
        self.head_theta = nn.Parameter(torch.ones(D))
        self.head = IntLinear(cfg.head_inputs, C, cfg.weight_bits, per_channel=False)
        self.head_bias = nn.Parameter(torch.zeros(C))
        self.log_temp = nn.Parameter(torch.zeros(()))
        self._spec = param_spec(cfg)

    # Integers --------------------------------------------------------------------------------
    def _mult(self, gain: torch.Tensor, s_in: float, s_w: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        _, lo, hi = self._spec["enc.mult"]
        return to_int(gain * s_in * s_w * float(1 << (cfg.residual_frac_bits + cfg.requant_shift)), lo, hi)

    def _int(self, name: str, value: torch.Tensor) -> torch.Tensor:
        _, lo, hi = self._spec[name]
        return to_int(value, lo, hi)

    def _units(self) -> dict[str, Callable[[], torch.Tensor | float]]:
        """Threshold name -> integer units per float unit (for threshold initialisation)."""
        units: dict[str, Callable] = {"enc.theta": lambda: self.res_unit, "head.theta": lambda: self.res_unit}
        for l, b in enumerate(self.blocks):
            p = f"b{l}."
            if l > 0:
                units[p + "in.theta"] = lambda: self.res_unit
            for name in ("q", "k", "v", "fc1"):
                units[p + name + ".theta"] = lambda lin=getattr(b, name): 1.0 / lin.int_weight()[1]
            units[p + "kv.theta"] = lambda: self.kv_unit
            units[p + "mlp_in.theta"] = lambda: self.res_unit
        return units

    def _theta_params(self) -> dict[str, nn.Parameter]:
        th = {"enc.theta": self.enc_theta, "head.theta": self.head_theta}
        for l, b in enumerate(self.blocks):
            p = f"b{l}."
            if l > 0:
                th[p + "in.theta"] = b.in_theta
            for name in ("q", "k", "v", "kv", "mlp_in", "fc1"):
                th[p + name + ".theta"] = getattr(b, name + "_theta")
        return th

    def integer_params(self) -> dict[str, torch.Tensor]:
        """Every parameter of the artifact as an integer-valued float tensor (with gradients).

        Also returns ``_head_scale`` (the head's per-tensor weight scale, a 0-d tensor), which
        is not part of the artifact.
        """
        cfg = self.cfg
        T, N, D = cfg.timesteps, cfg.tokens, cfg.dim
        r = self.res_unit
        P: dict[str, torch.Tensor] = {}
        w, s = self.enc.int_weight()
        P["enc.weight"] = w
        P["enc.mult"] = self._mult(self.enc_gain, 1.0 / cfg.pixel_max, s)
        P["enc.bias"] = self._int("enc.bias", self.enc_bias * r)
        P["enc.pos"] = self._int("enc.pos", self.pos * r).expand(T, N, D)
        if self.fb_gain is not None:
            P["enc.gain"] = self._int("enc.gain", self.fb_gain * r)
        else:
            P["enc.gain"] = self.enc_bias.new_zeros(D)
        units = self._units()
        for name, param in self._theta_params().items():
            P[name] = self._int(name, param * units[name]())
        for l, b in enumerate(self.blocks):
            p = f"b{l}."
            for name in ("q", "k", "v", "fc1"):
                w, s = getattr(b, name).int_weight()
                P[p + name + ".weight"] = w
                P[p + name + ".bias"] = self._int(p + name + ".bias", getattr(b, name + "_bias") / s)
            for name in ("o", "fc2"):
                w, s = getattr(b, name).int_weight()
                P[p + name + ".weight"] = w
                P[p + name + ".mult"] = self._mult(getattr(b, name + "_gain"), 1.0, s)
                P[p + name + ".bias"] = self._int(p + name + ".bias", getattr(b, name + "_bias") * r)
        w, s = self.head.int_weight()
        P["head.weight"] = w
        P["head.bias"] = self._int("head.bias", self.head_bias / s[0])
        P["_head_scale"] = s[0]
        return P

    def weight_layers(self) -> dict[str, IntLinear]:
        """Artifact weight name -> the Brevitas layer it comes from."""
        layers = {"enc.weight": self.enc, "head.weight": self.head}
        for l, b in enumerate(self.blocks):
            for name in ("q", "k", "v", "o", "fc1", "fc2"):
                layers[f"b{l}.{name}.weight"] = getattr(b, name)
        return layers

    # Forward ---------------------------------------------------------------------------------
    def forward(self, images: torch.Tensor, record: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``(float logits for the loss, run()'s output)`` for integer images [B, H, W(, C)].

        The output also holds ``float_logits_t`` [B, T, C], the per-timestep logits in the same
        float units (their mean over T is the first result), for a per-timestep loss.
        """
        P = self.integer_params()
        out = run(self.cfg, P, images, record=record)
        scale = P["_head_scale"] * torch.exp(self.log_temp)
        out["float_logits_t"] = out["logits_t"] * scale
        return out["logits"] * (scale / self.cfg.timesteps), out

    @torch.no_grad()
    def init_thresholds(self, images: torch.Tensor, rate: float = 0.2, pos_std: float = 1.0) -> dict[str, float]:
        """Data-dependent initialisation of the position table and of every threshold.

        The position table starts as Gaussian noise with ``pos_std`` times the standard
        deviation of the patch embedding E: with a zero table the network is blind to where a
        patch is (the readout sums over tokens), and learning positions from zero is slow.

        Each LIF's per-channel threshold is set to the (1 - rate) quantile of its t = 0 input
        over the batch and tokens (at least 1), so every channel fires at about ``rate`` at
        t = 0; later timesteps fire somewhat more (the membrane carries half of what stayed
        below threshold). Returns the measured firing rate of every spiking layer.
        """
        P = self.integer_params()
        acc = patchify(self.cfg, images) @ P["enc.weight"]
        e = torch.floor(acc.double() * P["enc.mult"] / float(1 << self.cfg.requant_shift))
        self.pos.normal_(0.0, pos_std * float(e.std()) / self.res_unit)
        units = self._units()
        params = self._theta_params()
        _, lo, hi = self._spec["enc.theta"]

        def calib(name: str, w: torch.Tensor) -> torch.Tensor:
            flat = w.reshape(-1, w.shape[-1])
            q = torch.quantile(flat, 1.0 - rate, dim=0)
            theta = torch.clamp(torch.floor(q) + 1, lo, hi)
            params[name].copy_(theta / units[name]())
            return self.integer_params()[name]

        run(self.cfg, self.integer_params(), images, calib=calib)
        out = run(self.cfg, self.integer_params(), images, record=True)
        return firing_rates(self.cfg, out)
